//! trybuild cases: every misuse of the macros is a compile error at the
//! offending tokens, and the pass cases compile and run.

#[test]
fn pass() {
    trybuild::TestCases::new().pass("tests/ui/pass/*.rs");
}

#[test]
fn compile_fail() {
    trybuild::TestCases::new().compile_fail("tests/ui/fail/**/*.rs");
}
