// Records through a Go Micro store, the other side of micro's store interop
// tests: both write and read one table. Two backends: postgres (the
// default), Go Micro v5's core PostgreSQL store
// (go-micro.dev/v5/store/postgres, lib/pq), and redis, the Go Micro v4 redis
// store plugin (github.com/go-micro/plugins/v4/store/redis v1.2.0, go-redis
// v8).
//
//	gomicro-peer store-write [--backend postgres|redis] --database D --table T --key K
//	        [--value V] [--metadata k=v]... [--ttl 1m] [--dsn URL | --address URL]
//	gomicro-peer store-read  [--backend postgres|redis] --database D --table T --key K
//	        [--prefix] [--dsn URL | --address URL]
//	gomicro-peer store-read  [--backend postgres|redis] --database D --table T --list
//	        [--key P] [--dsn URL | --address URL]
//
// postgres: the store is postgres.NewStore(store.Nodes(dsn), store.Database(D),
// store.Table(T)), used as a Go Micro user uses it: NewStore itself creates
// the database D (CREATE DATABASE, "already exists" ignored), the schema D
// and the table D.T, names spliced unquoted (so PostgreSQL folds them to
// lower case). --dsn defaults to MICRO_TEST_POSTGRES_URL. lib/pq's default
// sslmode is "require", which a server without TLS refuses, so a DSN that
// names no sslmode gets sslmode=disable added.
//
// redis: the store is redis.NewStore(store.Nodes(address), store.Database(D),
// store.Table(T)); the plugin parses its one node with go-redis's ParseURL
// (redis://host:port[/db]; a bare host:port works too). --address defaults
// to MICRO_TEST_REDIS_URL. What the plugin does, as v1.2.0 has it: Write is
// SET <T><K> <value> with the record's Expiry (EX, or PX when not whole
// seconds; metadata and the write options are dropped); Read(K) is GET and
// TTL of <T><K> (so Expiry is whole seconds, and -1ns for a key without a
// TTL: go-redis's answer -1 as a Duration); Read(K, ReadPrefix()) is KEYS
// <T><K>* then GET and TTL of each, every record's Key being K, the query,
// not its own; List is KEYS * whatever the options: every key in the Redis
// database, the table in front of Go's own. The database is ignored.
//
// Output, on stdout (Go Micro's own log lines go to stderr):
//
//	store-write: Write(&Record{K, V, metadata, ttl}), metadata values as
//	    strings (an empty map when none is given), then
//	        written <key>
//	store-read: Read(K) or, with --prefix, Read(K, ReadPrefix()), then one
//	    line per record, in the order Go returned them,
//	        {"key":"...","value":"<value bytes as a string>","metadata":{...},"expiry_ms":n|null,"expiry_ns":n}
//	    (expiry_ms: the record's Expiry, the time left, in milliseconds, when
//	    it is positive, null otherwise; expiry_ns: the Expiry as Go has it,
//	    in nanoseconds, 0 or negative included). With --list: List() or,
//	    with a non-empty --key, List(ListPrefix(K)), then one line per key,
//	    the key as a JSON string.
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
	"time"

	redisstore "github.com/go-micro/plugins/v4/store/redis"
	storev4 "go-micro.dev/v4/store"
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
	backend, dsn, address, database, table *string
}

func newStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		backend:  fs.String("backend", "postgres", "postgres (Go Micro v5's core store) or redis (the v4 plugin)"),
		dsn:      fs.String("dsn", "", "postgres: the PostgreSQL URL (default: MICRO_TEST_POSTGRES_URL)"),
		address:  fs.String("address", "", "redis: the Redis URL (default: MICRO_TEST_REDIS_URL)"),
		database: fs.String("database", "micro", "the store's database (a schema on PostgreSQL; ignored by redis)"),
		table:    fs.String("table", "micro", "the store's table"),
	}
}

// kv is what the store-* commands do with a store, whichever Go Micro
// major version its backend is written against.
type kv interface {
	write(key string, value []byte, metadata map[string]interface{}, ttl time.Duration) error
	read(key string, prefix bool) ([]ReadRecord, error)
	list(prefix string) ([]string, error)
	close() error
}

// open is the Go Micro store of the backend, database and table asked.
func (f storeFlags) open() kv {
	switch *f.backend {
	case "postgres":
		return f.openPostgres()
	case "redis":
		return f.openRedis()
	}
	storeFail(fmt.Errorf("unknown backend %q", *f.backend))
	return nil
}

// openPostgres is Go Micro's core PostgreSQL store.
func (f storeFlags) openPostgres() kv {
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
	return v5Store{postgres.NewStore(store.Nodes(dsn), store.Database(*f.database), store.Table(*f.table))}
}

// openRedis is the Go Micro v4 redis store plugin.
func (f storeFlags) openRedis() kv {
	address := *f.address
	if address == "" {
		address = os.Getenv("MICRO_TEST_REDIS_URL")
	}
	if address == "" {
		storeFail(fmt.Errorf("no --address and no MICRO_TEST_REDIS_URL"))
	}
	return v4Store{redisstore.NewStore(storev4.Nodes(address), storev4.Database(*f.database), storev4.Table(*f.table))}
}

// ReadRecord is what store-read prints of each record.
type ReadRecord struct {
	Key      string                 `json:"key"`
	Value    string                 `json:"value"`
	Metadata map[string]interface{} `json:"metadata"`
	ExpiryMs *int64                 `json:"expiry_ms"`
	ExpiryNs int64                  `json:"expiry_ns"`
}

func readRecord(key string, value []byte, md map[string]interface{}, expiry time.Duration) ReadRecord {
	if md == nil {
		md = map[string]interface{}{}
	}
	out := ReadRecord{Key: key, Value: string(value), Metadata: md, ExpiryNs: int64(expiry)}
	if expiry > 0 {
		ms := expiry.Milliseconds()
		out.ExpiryMs = &ms
	}
	return out
}

// v5Store is a Go Micro v5 store.
type v5Store struct{ s store.Store }

func (s v5Store) write(key string, value []byte, md map[string]interface{}, ttl time.Duration) error {
	return s.s.Write(&store.Record{Key: key, Value: value, Metadata: md, Expiry: ttl})
}

func (s v5Store) read(key string, prefix bool) ([]ReadRecord, error) {
	var opts []store.ReadOption
	if prefix {
		opts = append(opts, store.ReadPrefix())
	}
	records, err := s.s.Read(key, opts...)
	if err != nil {
		return nil, err
	}
	out := make([]ReadRecord, 0, len(records))
	for _, r := range records {
		out = append(out, readRecord(r.Key, r.Value, r.Metadata, r.Expiry))
	}
	return out, nil
}

func (s v5Store) list(prefix string) ([]string, error) {
	var opts []store.ListOption
	if prefix != "" {
		opts = append(opts, store.ListPrefix(prefix))
	}
	return s.s.List(opts...)
}

func (s v5Store) close() error { return s.s.Close() }

// v4Store is a Go Micro v4 store.
type v4Store struct{ s storev4.Store }

func (s v4Store) write(key string, value []byte, md map[string]interface{}, ttl time.Duration) error {
	return s.s.Write(&storev4.Record{Key: key, Value: value, Metadata: md, Expiry: ttl})
}

func (s v4Store) read(key string, prefix bool) ([]ReadRecord, error) {
	var opts []storev4.ReadOption
	if prefix {
		opts = append(opts, storev4.ReadPrefix())
	}
	records, err := s.s.Read(key, opts...)
	if err != nil {
		return nil, err
	}
	out := make([]ReadRecord, 0, len(records))
	for _, r := range records {
		out = append(out, readRecord(r.Key, r.Value, r.Metadata, r.Expiry))
	}
	return out, nil
}

func (s v4Store) list(prefix string) ([]string, error) {
	var opts []storev4.ListOption
	if prefix != "" {
		opts = append(opts, storev4.ListPrefix(prefix))
	}
	return s.s.List(opts...)
}

func (s v4Store) close() error { return s.s.Close() }

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
	defer s.close()
	metadata := map[string]interface{}{}
	for k, v := range md {
		metadata[k] = v
	}
	if err := s.write(*key, []byte(*value), metadata, *ttl); err != nil {
		storeFail(err)
	}
	fmt.Printf("written %s\n", *key)
}

func storeRead(args []string) {
	fs := flag.NewFlagSet("store-read", flag.ExitOnError)
	sf := newStoreFlags(fs)
	key := fs.String("key", "", "the key (with --prefix: the prefix; with --list: the prefix listed, if any)")
	prefix := fs.Bool("prefix", false, "Read(key, ReadPrefix())")
	list := fs.Bool("list", false, "List the keys instead")
	_ = fs.Parse(args)
	s := sf.open()
	defer s.close()
	if *list {
		keys, err := s.list(*key)
		if err != nil {
			storeFail(err)
		}
		for _, k := range keys {
			line, _ := json.Marshal(k)
			fmt.Println(string(line))
		}
		return
	}
	records, err := s.read(*key, *prefix)
	if err != nil {
		storeFail(err)
	}
	for _, r := range records {
		line, _ := json.Marshal(r)
		fmt.Println(string(line))
	}
}
