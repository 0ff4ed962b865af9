// Values through Go Micro v5's core Redis cache (go-micro.dev/v5/cache/redis,
// go-redis v8), the other side of micro's cache interop tests.
//
//	gomicro-peer cache-put    --key K [--value V] [--ttl 0] [--address URL]
//	gomicro-peer cache-get    --key K [--address URL]
//	gomicro-peer cache-delete --key K [--address URL]
//
// The cache is redis.NewRedisCache(cache.WithAddress(address)), which parses
// the address with go-redis's ParseURL (redis://host:port[/db]; a bare
// host:port works too); --address defaults to MICRO_TEST_REDIS_URL. What the
// cache does, as v5.9.0 has it: Put is SET K V with the TTL (EX, or PX when
// not whole seconds; none when 0); Get is GET K then TTL K (whole seconds:
// the expiry is now plus that, a time in the far future, time.Unix(1<<63-1,
// 0), for a key without a TTL); Delete is DEL K. Keys are used as given.
//
// Output, on stdout (Go Micro's own log lines go to stderr):
//
//	cache-put:    Put(K, []byte(V), ttl), then
//	                  put <key>
//	cache-get:    Get(K), then
//	                  {"key":"...","value":"<value bytes as a string>","expiry_ms":n|null}
//	              (expiry_ms: the expiry Go gave, as the time left from now, in
//	              milliseconds; null for Go's "never", time.Unix(1<<63-1, 0))
//	cache-delete: Delete(K), then
//	                  deleted <key>
//
// Any failure (a missing key included: "key not found in cache") prints
//
//	error <message>
//
// and exits 2.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"go-micro.dev/v5/cache"
	"go-micro.dev/v5/cache/redis"
)

// never is the expiry Go's Redis cache gives a key without a TTL.
var never = time.Unix(1<<63-1, 0)

// cacheFlags are the flags every cache-* command takes.
type cacheFlags struct {
	address, key *string
}

func newCacheFlags(fs *flag.FlagSet) cacheFlags {
	return cacheFlags{
		address: fs.String("address", "", "the Redis URL (default: MICRO_TEST_REDIS_URL)"),
		key:     fs.String("key", "", "the key"),
	}
}

// open is Go Micro's Redis cache at the address asked.
func (f cacheFlags) open(command string) cache.Cache {
	if *f.key == "" {
		fail(command + " needs --key")
	}
	address := *f.address
	if address == "" {
		address = os.Getenv("MICRO_TEST_REDIS_URL")
	}
	if address == "" {
		storeFail(fmt.Errorf("no --address and no MICRO_TEST_REDIS_URL"))
	}
	return redis.NewRedisCache(cache.WithAddress(address))
}

func cachePut(args []string) {
	fs := flag.NewFlagSet("cache-put", flag.ExitOnError)
	cf := newCacheFlags(fs)
	value := fs.String("value", "", "the value")
	ttl := fs.Duration("ttl", 0, "how long the value lives (0: for ever)")
	_ = fs.Parse(args)
	c := cf.open("cache-put")
	if err := c.Put(context.Background(), *cf.key, []byte(*value), *ttl); err != nil {
		storeFail(err)
	}
	fmt.Printf("put %s\n", *cf.key)
}

// CacheValue is what cache-get prints.
type CacheValue struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	ExpiryMs *int64 `json:"expiry_ms"`
}

func cacheGet(args []string) {
	fs := flag.NewFlagSet("cache-get", flag.ExitOnError)
	cf := newCacheFlags(fs)
	_ = fs.Parse(args)
	c := cf.open("cache-get")
	value, expires, err := c.Get(context.Background(), *cf.key)
	if err != nil {
		storeFail(err)
	}
	out := CacheValue{Key: *cf.key}
	switch v := value.(type) {
	case []byte:
		out.Value = string(v)
	case string:
		out.Value = v
	default:
		storeFail(fmt.Errorf("a value of type %T", value))
	}
	if !expires.Equal(never) {
		ms := time.Until(expires).Milliseconds()
		out.ExpiryMs = &ms
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func cacheDelete(args []string) {
	fs := flag.NewFlagSet("cache-delete", flag.ExitOnError)
	cf := newCacheFlags(fs)
	_ = fs.Parse(args)
	c := cf.open("cache-delete")
	if err := c.Delete(context.Background(), *cf.key); err != nil {
		storeFail(err)
	}
	fmt.Printf("deleted %s\n", *cf.key)
}
