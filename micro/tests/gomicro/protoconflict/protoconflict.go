// Package protoconflict lets Go Micro v4 and v5 live in one binary.
//
// Both register their protorpc envelope (codec/protorpc/envelope.proto,
// messages protorpc.Request, protorpc.Response, ...) under the same names in
// the protobuf global registry, and google.golang.org/protobuf panics at
// start-up on such a conflict unless GOLANG_PROTOBUF_REGISTRATION_CONFLICT
// says otherwise. The registry reads that variable when a conflict happens,
// so this package sets it (to "ignore", unless it is set already) in its
// init: the first registration, v4's, stands, and v5's messages are still
// encoded by their own generated code.
//
// Its import path is what makes it work: Go initializes, among the packages
// whose imports are initialized, the one first by import path, and
// "early.test/..." sorts before "github.com/..." and "go-micro.dev/...",
// while this package needs nothing but os. So it runs before either
// protorpc package registers anything. The module is local, required
// through a replace directive in ../go.mod.
package protoconflict

import "os"

const policy = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"

func init() {
	if os.Getenv(policy) == "" {
		os.Setenv(policy, "ignore")
	}
}
