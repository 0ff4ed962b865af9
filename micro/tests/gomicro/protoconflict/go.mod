module early.test/protoconflict

go 1.25.0
