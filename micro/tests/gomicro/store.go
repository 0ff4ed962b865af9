// Records through Go Micro v5's core PostgreSQL store
// (go-micro.dev/v5/store/postgres, lib/pq), the other side of micro's store
// interop tests: both write and read one table.
//
//	gomicro-peer store-write --database D --table T --key K [--value V]
//	        [--metadata k=v]... [--ttl 1m] [--dsn URL]
//	gomicro-peer store-read  --database D --table T --key K [--prefix] [--dsn URL]
//	gomicro-peer store-read  --database D --table T --list [--key P] [--dsn URL]
//
// The store is postgres.NewStore(store.Nodes(dsn), store.Database(D),
// store.Table(T)), used as a Go Micro user uses it: NewStore itself creates
// the database D (CREATE DATABASE, "already exists" ignored), the schema D
// and the table D.T, names spliced unquoted (so PostgreSQL folds them to
// lower case).
//
// --dsn defaults to MICRO_TEST_POSTGRES_URL. lib/pq's default sslmode is
// "require", which a server without TLS refuses, so a DSN that names no
// sslmode gets sslmode=disable added.
//
// Output, on stdout (Go Micro's own log lines go to stderr):
//
//	store-write: Write(&Record{K, V, metadata, ttl}), metadata values as
//	    strings (an empty map when none is given), then
//	        written <key>
//	store-read: Read(K) or, with --prefix, Read(K, ReadPrefix()), then one
//	    line per record, in the order Go returned them,
//	        {"key":"...","value":"<value bytes as a string>","metadata":{...},"expiry_ms":n|null}
//	    (expiry_ms: the record's Expiry, the time left, in milliseconds; null
//	    when it has none). With --list: List() or, with a non-empty --key,
//	    List(ListPrefix(K)), then one line per key, the key as a JSON string.
//
// Any failure (a missing key included) prints
//
//	error <message>
//
// and exits 2.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"

	"go-micro.dev/v5/store"
	"go-micro.dev/v5/store/postgres"

	// Go Micro v4 and v5 register the same protobuf names: without this
	// the binary panics before main (see its package comment).
	_ "early.test/protoconflict"
)

// storeFail prints the failure on stdout, where the tests read, and exits 2.
func storeFail(err error) {
	fmt.Printf("error %v\n", err)
	os.Exit(2)
}

// storeFlags are the flags every store-* command takes.
type storeFlags struct {
	dsn, database, table *string
}

func newStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		dsn:      fs.String("dsn", "", "PostgreSQL URL (default: MICRO_TEST_POSTGRES_URL)"),
		database: fs.String("database", "micro", "the store's database (a schema on PostgreSQL)"),
		table:    fs.String("table", "micro", "the store's table"),
	}
}

// open is Go Micro's core PostgreSQL store on the database and table asked.
func (f storeFlags) open() store.Store {
	dsn := *f.dsn
	if dsn == "" {
		dsn = os.Getenv("MICRO_TEST_POSTGRES_URL")
	}
	if dsn == "" {
		storeFail(fmt.Errorf("no --dsn and no MICRO_TEST_POSTGRES_URL"))
	}
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Query().Get("sslmode") == "" {
		q := u.Query()
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	return postgres.NewStore(store.Nodes(dsn), store.Database(*f.database), store.Table(*f.table))
}

func storeWrite(args []string) {
	fs := flag.NewFlagSet("store-write", flag.ExitOnError)
	sf := newStoreFlags(fs)
	key := fs.String("key", "", "the record's key")
	value := fs.String("value", "", "the record's value")
	md := pairs{}
	fs.Var(md, "metadata", "record metadata k=v (repeatable; values are strings)")
	ttl := fs.Duration("ttl", 0, "the record's Expiry (0: none)")
	_ = fs.Parse(args)
	if *key == "" {
		fail("store-write needs --key")
	}
	s := sf.open()
	defer s.Close()
	metadata := map[string]interface{}{}
	for k, v := range md {
		metadata[k] = v
	}
	record := &store.Record{
		Key:      *key,
		Value:    []byte(*value),
		Metadata: metadata,
		Expiry:   *ttl,
	}
	if err := s.Write(record); err != nil {
		storeFail(err)
	}
	fmt.Printf("written %s\n", *key)
}

// ReadRecord is what store-read prints of each record.
type ReadRecord struct {
	Key      string                 `json:"key"`
	Value    string                 `json:"value"`
	Metadata map[string]interface{} `json:"metadata"`
	ExpiryMs *int64                 `json:"expiry_ms"`
}

func storeRead(args []string) {
	fs := flag.NewFlagSet("store-read", flag.ExitOnError)
	sf := newStoreFlags(fs)
	key := fs.String("key", "", "the key (with --prefix: the prefix; with --list: the prefix listed, if any)")
	prefix := fs.Bool("prefix", false, "Read(key, ReadPrefix())")
	list := fs.Bool("list", false, "List the keys instead")
	_ = fs.Parse(args)
	s := sf.open()
	defer s.Close()
	if *list {
		var opts []store.ListOption
		if *key != "" {
			opts = append(opts, store.ListPrefix(*key))
		}
		keys, err := s.List(opts...)
		if err != nil {
			storeFail(err)
		}
		for _, k := range keys {
			line, _ := json.Marshal(k)
			fmt.Println(string(line))
		}
		return
	}
	var opts []store.ReadOption
	if *prefix {
		opts = append(opts, store.ReadPrefix())
	}
	records, err := s.Read(*key, opts...)
	if err != nil {
		storeFail(err)
	}
	for _, r := range records {
		md := r.Metadata
		if md == nil {
			md = map[string]interface{}{}
		}
		out := ReadRecord{Key: r.Key, Value: string(r.Value), Metadata: md}
		if r.Expiry != 0 {
			ms := r.Expiry.Milliseconds()
			out.ExpiryMs = &ms
		}
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	}
}
