// Go Micro v5's rule check, the judge of micro's auth.verify.
//
//	gomicro-peer auth-verify < cases.json
//
// stdin is a JSON array of cases,
//
//	[{"rules":[<Go auth.Rule JSON>...],"account":<auth.Account JSON>|null,"resource":<auth.Resource JSON>}]
//
// (a Rule's JSON is encoding/json's with no tags: "ID", "Scope", "Resource",
// "Access", "Priority"). For each case, in order, it prints one line: allow
// when go-micro.dev/v5/auth.Verify returns nil, forbidden when it returns
// auth.ErrForbidden, "error <message>" for any other error. No network.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"go-micro.dev/v5/auth"
)

type authCase struct {
	Rules    []*auth.Rule   `json:"rules"`
	Account  *auth.Account  `json:"account"`
	Resource *auth.Resource `json:"resource"`
}

func authVerify(args []string) {
	if len(args) != 0 {
		fail("auth-verify takes no flags; cases come on stdin")
	}
	var cases []authCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fail("error decoding cases: " + err.Error())
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, c := range cases {
		switch err := auth.Verify(c.Rules, c.Account, c.Resource); err {
		case nil:
			fmt.Fprintln(out, "allow")
		case auth.ErrForbidden:
			fmt.Fprintln(out, "forbidden")
		default:
			fmt.Fprintln(out, "error "+err.Error())
		}
	}
}
