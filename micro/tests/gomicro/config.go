// Go Micro's config, the other side of micro's config interop tests: the
// same environment, JSON files and etcd keys, loaded by Go Micro, printed
// as Go sees them.
//
//	gomicro-peer config [--env | --env-prefix P | --env-stripped-prefix P | --file PATH]...
//	gomicro-peer config-etcd [--etcd host:port] [--etcd-prefix P] [--etcd-strip]
//
// config builds a Go Micro v5 config (go-micro.dev/v5/config, watcher
// disabled) and loads one source per flag, in the order given: --env is
// env.NewSource() (every variable of the environment), --env-prefix P is
// env.NewSource(env.WithPrefix(P)), --env-stripped-prefix P is
// env.NewSource(env.WithStrippedPrefix(P)), --file PATH is
// file.NewSource(file.WithPath(PATH)). Later sources win, merged by Go
// Micro's JSON reader.
//
// config-etcd loads one source, the etcd plugin of Go Micro v4
// (github.com/go-micro/plugins/v4/config/source/etcd v1.2.0; there is no
// v5 config plugin to be had) into a go-micro.dev/v4/config config:
// etcd.NewSource(etcd.WithAddress(A), etcd.WithPrefix(P), etcd.StripPrefix(S)),
// A defaulting to MICRO_TEST_ETCD_ENDPOINTS (its first endpoint, scheme
// removed), P to the plugin's own default (/micro/config/).
//
// Output, on stdout: config.Map() as one JSON line ({} when empty). Go
// Micro's log, and anything else printed while loading, goes to stderr. A
// source that fails to load prints
//
//	error <message>
//
// and exits 2.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	etcdsource "github.com/go-micro/plugins/v4/config/source/etcd"
	configv4 "go-micro.dev/v4/config"
	sourcev4 "go-micro.dev/v4/config/source"
	"go-micro.dev/v5/config"
	"go-micro.dev/v5/config/source"
	"go-micro.dev/v5/config/source/env"
	"go-micro.dev/v5/config/source/file"
)

// configSource is one source flag: its kind and its argument.
type configSource struct {
	kind, arg string
}

// sourceFlag appends a source of its kind to a shared list each time its
// flag is given, so the list keeps the order of the command line.
type sourceFlag struct {
	list   *[]configSource
	kind   string
	isBool bool
}

func (f sourceFlag) String() string   { return "" }
func (f sourceFlag) IsBoolFlag() bool { return f.isBool }
func (f sourceFlag) Set(v string) error {
	*f.list = append(*f.list, configSource{f.kind, v})
	return nil
}

// configFail prints the failure on stdout, where the tests read, and exits 2.
func configFail(out *os.File, err error) {
	fmt.Fprintf(out, "error %v\n", err)
	os.Exit(2)
}

// quietStdout sends whatever else prints to stdout (Go Micro's config
// prints a watcher's Stop error there) to stderr, and returns the real
// stdout for the result.
func quietStdout() *os.File {
	out := os.Stdout
	os.Stdout = os.Stderr
	return out
}

// printMap prints Go's view of the config as one JSON line.
func printMap(out *os.File, m map[string]interface{}) {
	if m == nil {
		m = map[string]interface{}{}
	}
	line, err := json.Marshal(m)
	if err != nil {
		configFail(out, err)
	}
	fmt.Fprintln(out, string(line))
}

func configCmd(args []string) {
	out := quietStdout()
	var list []configSource
	fs := flag.NewFlagSet("config", flag.ExitOnError)
	fs.Var(sourceFlag{&list, "env", true}, "env", "every environment variable")
	fs.Var(sourceFlag{&list, "env-prefix", false}, "env-prefix", "variables starting with P_, P kept")
	fs.Var(sourceFlag{&list, "env-stripped-prefix", false}, "env-stripped-prefix", "variables starting with P_, P removed")
	fs.Var(sourceFlag{&list, "file", false}, "file", "a config file")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		configFail(out, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	var sources []source.Source
	for _, s := range list {
		switch s.kind {
		case "env":
			if s.arg != "true" {
				continue
			}
			sources = append(sources, env.NewSource())
		case "env-prefix":
			sources = append(sources, env.NewSource(env.WithPrefix(s.arg)))
		case "env-stripped-prefix":
			sources = append(sources, env.NewSource(env.WithStrippedPrefix(s.arg)))
		case "file":
			sources = append(sources, file.NewSource(file.WithPath(s.arg)))
		}
	}
	c, err := config.NewConfig(config.WithWatcherDisabled())
	if err != nil {
		configFail(out, err)
	}
	if err := c.Load(sources...); err != nil {
		configFail(out, err)
	}
	printMap(out, c.Map())
}

func configEtcd(args []string) {
	out := quietStdout()
	fs := flag.NewFlagSet("config-etcd", flag.ExitOnError)
	endpoint := fs.String("etcd", "", "etcd host:port (default: the first of MICRO_TEST_ETCD_ENDPOINTS)")
	prefix := fs.String("etcd-prefix", "", "the key prefix (default: the plugin's, /micro/config/)")
	strip := fs.Bool("etcd-strip", false, "remove the prefix from the keys (StripPrefix(true))")
	_ = fs.Parse(args)
	if *endpoint == "" {
		*endpoint = strings.Split(os.Getenv("MICRO_TEST_ETCD_ENDPOINTS"), ",")[0]
	}
	address := strings.TrimPrefix(strings.TrimPrefix(*endpoint, "http://"), "https://")
	opts := []sourcev4.Option{etcdsource.WithAddress(address), etcdsource.StripPrefix(*strip)}
	if *prefix != "" {
		opts = append(opts, etcdsource.WithPrefix(*prefix))
	}
	c, err := configv4.NewConfig(configv4.WithWatcherDisabled())
	if err != nil {
		configFail(out, err)
	}
	if err := c.Load(etcdsource.NewSource(opts...)); err != nil {
		configFail(out, err)
	}
	printMap(out, c.Map())
}
