//! Redis interop with real Go Micro: the Go peer (`tests/gomicro/`) runs the
//! Go Micro v4 redis store plugin (`github.com/go-micro/plugins/v4/store/redis`
//! v1.2.0) and Go Micro v5.9.0's core Redis cache
//! (`go-micro.dev/v5/cache/redis`), both on go-redis v8, against the Redis
//! server micro's `RedisStore` and `RedisCache` use. Records Go writes are
//! read by micro and the other way round, values Go's cache puts micro's
//! cache gets and the other way round, with their TTLs, and deletes are
//! seen both ways. Ignored unless `MICRO_TEST_GOMICRO` names the built
//! peer; run inside `netns-run --services redis`.
//!
//! What Go does, as these tests pin it: its store writes `SET <table><key>`
//! with the record's `Expiry` and drops the metadata; reads give `Expiry`
//! from `TTL`, whole seconds (and -1 ns for a key without one); a prefix
//! read is `KEYS <table><prefix>*`, unordered, and gives every record the
//! query as its key (GM#2452); `List` is `KEYS *`, every key of the Redis
//! database, table in front, whatever the options. Its cache is raw `SET`
//! / `GET` + `TTL` / `DEL` of the key as given, its expiry whole seconds.
//!
//! Each test has a table (or, for the cache, a key prefix) of its own, so
//! that they run side by side on one server.
#![cfg(feature = "redis")]

mod peer;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use micro::cache::{Cache, RedisCache, Ttl};
use micro::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, RedisStore, Store, StoreError, Table, WriteOptions,
};
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use peer::{go, go_ok};

/// The database whose values are in Go's layout (see micro's redis store).
const DATABASE: &str = "micro";

/// What micro's own keys start with: Go's `List` lists them too.
const MICROS: &str = "~micro-store:";

fn url() -> String {
    std::env::var("MICRO_TEST_REDIS_URL").expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`")
}

/// A table of this test's own. Go's Redis keys are the table then the key,
/// so the table ends with `:` to read them apart.
fn unique_table() -> String {
    format!("gointerop{}:", uuid::Uuid::new_v4().simple())
}

async fn micro_store(table: &str) -> RedisStore {
    RedisStore::with_defaults(&url(), Table::new(DATABASE, table))
        .await
        .unwrap()
}

async fn raw() -> MultiplexedConnection {
    redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn raw_get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

async fn raw_pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

/// A record as the Go peer prints it: what Go Micro's `Read` gave.
#[derive(Debug, Deserialize)]
struct GoRecord {
    key: String,
    value: String,
    metadata: Map<String, Value>,
    /// `Record.Expiry` in milliseconds when positive; `None` otherwise.
    expiry_ms: Option<i64>,
    /// `Record.Expiry` as Go has it, in nanoseconds.
    expiry_ns: i64,
}

/// A value as the Go peer prints it: what Go Micro's cache `Get` gave.
#[derive(Debug, Deserialize)]
struct GoCached {
    key: String,
    value: String,
    /// The expiry Go gave, as the time left, in milliseconds; `None` for
    /// Go's "never".
    expiry_ms: Option<i64>,
}

/// The message of the Go peer's `error ...` line, which must fail.
async fn go_error(args: &[&str]) -> String {
    let (ok, lines, _) = go(args).await;
    assert!(!ok, "gomicro-peer {args:?} succeeded: {lines:?}");
    lines
        .into_iter()
        .find_map(|line| line.strip_prefix("error ").map(str::to_owned))
        .expect("an error line")
}

/// The arguments of a store-* command on Go's redis store and `table`.
fn store_args<'a>(command: &'a str, table: &'a str) -> Vec<&'a str> {
    vec![command, "--backend", "redis", "--database", DATABASE, "--table", table]
}

/// Go Micro's `Write(&Record{key, value, metadata, ttl})`.
async fn go_write(table: &str, key: &str, value: &str, metadata: &[(&str, &str)], ttl: Option<&str>) {
    let pairs: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = store_args("store-write", table);
    args.extend(["--key", key, "--value", value]);
    for pair in &pairs {
        args.extend(["--metadata", pair.as_str()]);
    }
    if let Some(ttl) = ttl {
        args.extend(["--ttl", ttl]);
    }
    let lines = go_ok(&args).await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("written {key}").as_str())
    );
}

/// Go Micro's `Read(key)` or `Read(key, ReadPrefix())`.
async fn go_read(table: &str, key: &str, prefix: bool) -> Vec<GoRecord> {
    let mut args = store_args("store-read", table);
    args.extend(["--key", key]);
    if prefix {
        args.push("--prefix");
    }
    go_ok(&args)
        .await
        .iter()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a record ({e}): {line}")))
        .collect()
}

/// Go Micro's `Read(key)` of one key.
async fn go_read_one(table: &str, key: &str) -> GoRecord {
    let mut found = go_read(table, key, false).await;
    assert_eq!(found.len(), 1, "{key}: {found:?}");
    found.remove(0)
}

/// Go Micro's `List(ListPrefix(prefix))`.
async fn go_list(table: &str, prefix: &str) -> Vec<String> {
    let mut args = store_args("store-read", table);
    args.extend(["--list", "--key", prefix]);
    go_ok(&args)
        .await
        .iter()
        .filter(|line| line.starts_with('"'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Go Micro's cache `Put(key, value, ttl)`.
async fn go_cache_put(key: &str, value: &str, ttl: &str) {
    let lines = go_ok(&["cache-put", "--key", key, "--value", value, "--ttl", ttl]).await;
    assert_eq!(lines.last().map(String::as_str), Some(format!("put {key}").as_str()));
}

/// Go Micro's cache `Get(key)`, which must find it.
async fn go_cache_get(key: &str) -> GoCached {
    let lines = go_ok(&["cache-get", "--key", key]).await;
    let line = lines.iter().find(|line| line.starts_with('{')).expect("a value line");
    let cached: GoCached = serde_json::from_str(line).unwrap();
    assert_eq!(cached.key, key);
    cached
}

/// What Go Micro's cache `Get(key)` failed with.
async fn go_cache_miss(key: &str) -> String {
    go_error(&["cache-get", "--key", key]).await
}

/// Go Micro's cache `Delete(key)`.
async fn go_cache_delete(key: &str) {
    let lines = go_ok(&["cache-delete", "--key", key]).await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("deleted {key}").as_str())
    );
}

/// Whether `at` is `ttl` after a moment between `before` and `after`, to
/// within `slack`.
fn expires_after(at: SystemTime, ttl: Duration, before: SystemTime, after: SystemTime, slack: Duration) -> bool {
    at + slack >= before + ttl && at <= after + ttl + slack
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and Redis (netns-run --services redis)"]
async fn records_go_writes_are_read_by_micro() {
    let table = unique_table();
    let before = SystemTime::now();
    // Go drops the metadata: its redis store writes the value only.
    go_write(&table, "order/1", "one", &[("tenant", "acme")], None).await;
    go_write(&table, "order/2", "two", &[], Some("1m")).await;
    go_write(&table, "order/3", "", &[], None).await;
    go_write(&table, "other", "four", &[], None).await;
    let after = SystemTime::now();

    // Go's layout: the table then the key, the raw value, the TTL as EX.
    let mut conn = raw().await;
    assert_eq!(
        raw_get(&mut conn, &format!("{table}order/1")).await,
        Some(b"one".to_vec())
    );
    assert_eq!(raw_pttl(&mut conn, &format!("{table}order/1")).await, -1);
    let pttl = raw_pttl(&mut conn, &format!("{table}order/2")).await;
    assert!((50_000..=60_000).contains(&pttl), "{pttl}");

    let store = micro_store(&table).await;
    // Go's records are in no index of micro's until read by key.
    assert!(store.list(ListOptions::default()).await.unwrap().is_empty());
    assert!(
        store
            .read("order/", ReadOptions::default().prefix())
            .await
            .unwrap()
            .is_empty()
    );

    let read = |key: &'static str| {
        let store = store.clone();
        async move {
            let mut found = store.read(key, ReadOptions::default()).await.unwrap();
            assert_eq!(found.len(), 1, "{key}");
            found.remove(0)
        }
    };
    let one = read("order/1").await;
    assert_eq!((one.key.as_str(), one.value.as_slice()), ("order/1", &b"one"[..]));
    assert_eq!(one.metadata, Map::new(), "Go dropped the metadata");
    assert_eq!((one.version, one.expiry), (0, None), "a value Go wrote: version 0");

    // Go's TTL is the key's, on the server's clock, to the millisecond.
    let two = read("order/2").await;
    assert_eq!(two.value, b"two");
    let minute = Duration::from_secs(60);
    let expiry = two.expiry.expect("Go's TTL is an expiry");
    assert!(
        expires_after(expiry, minute, before, after, Duration::from_millis(100)),
        "{expiry:?} not a minute after the write"
    );
    let left = two.remaining().unwrap();
    assert!(left > Duration::from_secs(40) && left <= minute, "{left:?}");

    let three = read("order/3").await;
    assert_eq!((three.value.as_slice(), three.expiry), (&b""[..], None));
    let other = read("other").await;
    assert_eq!(other.value, b"four");
    let missing = store.read("order/9", ReadOptions::default()).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");

    // Read by key, they are indexed: listed and read by prefix, in order.
    assert_eq!(
        store.list(ListOptions::default()).await.unwrap(),
        ["order/1", "order/2", "order/3", "other"]
    );
    assert_eq!(
        store.list(ListOptions::default().prefix("order/")).await.unwrap(),
        ["order/1", "order/2", "order/3"]
    );
    let orders = store.read("order/", ReadOptions::default().prefix()).await.unwrap();
    let found: Vec<(&str, &[u8])> = orders.iter().map(|r| (r.key.as_str(), r.value.as_slice())).collect();
    assert_eq!(found, [("order/1", &b"one"[..]), ("order/2", b"two"), ("order/3", b"")]);
    // Of a value Go wrote micro knows the TTL, not the deadline: each read
    // works it out anew (the server's time plus PTTL), to a millisecond.
    let again = orders[1].expiry.expect("the TTL Go gave");
    let gap = again.duration_since(expiry).unwrap_or_else(|e| e.duration());
    assert!(gap <= Duration::from_millis(5), "{again:?} vs {expiry:?}");

    // A record Go writes later is in no list until it is read by key.
    go_write(&table, "order/4", "late", &[], None).await;
    assert_eq!(store.list(ListOptions::default()).await.unwrap().len(), 4);
    assert_eq!(read("order/4").await.value, b"late");
    assert_eq!(store.list(ListOptions::default()).await.unwrap().len(), 5);

    // Go's own List is KEYS *, whatever the prefix asked: its keys with the
    // table in front, and every other key of the server, micro's index of
    // this table among them.
    let listed = go_list(&table, "order/").await;
    let ours: BTreeSet<&str> = listed.iter().filter_map(|k| k.strip_prefix(&table)).collect();
    assert_eq!(
        ours,
        BTreeSet::from(["order/1", "order/2", "order/3", "order/4", "other"])
    );
    assert!(
        listed.iter().any(|k| k.starts_with(MICROS) && k.ends_with(&table)),
        "micro's index is listed: {listed:?}"
    );

    store.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and Redis (netns-run --services redis)"]
async fn records_micro_writes_are_read_by_go() {
    let table = unique_table();
    let store = micro_store(&table).await;
    let write = |record: Record, options: WriteOptions| {
        let store = store.clone();
        async move { store.write(record, options).await.unwrap() }
    };
    write(
        Record::new("cart/1", "apple")
            .metadata("tenant", "acme")
            .metadata("n", 3),
        WriteOptions::default(),
    )
    .await;
    write(
        Record::new("cart/2", "pear").metadata("tenant", "acme"),
        WriteOptions::default().ttl(Duration::from_secs(60)),
    )
    .await;
    write(
        Record::new("cart/3", "plum").ttl(Duration::from_secs(120)),
        WriteOptions::default(),
    )
    .await;
    write(Record::new("cart/4", Vec::new()), WriteOptions::default()).await;
    write(Record::new("carton", "box"), WriteOptions::default()).await;

    // Go reads the value; the metadata is micro's, beside it, which Go
    // does not read.
    let one = go_read_one(&table, "cart/1").await;
    assert_eq!((one.key.as_str(), one.value.as_str()), ("cart/1", "apple"));
    assert_eq!(one.metadata, Map::new());
    // No TTL: go-redis gives TTL's -1 as a Duration of -1 ns.
    assert_eq!((one.expiry_ms, one.expiry_ns), (None, -1));

    // Go's Expiry is TTL's answer, whole seconds (Redis rounds).
    let seconds = |record: &GoRecord, ttl_s: i64| {
        let ms = record.expiry_ms.expect("an expiry");
        assert!(
            ms % 1000 == 0 && ms <= ttl_s * 1000 && ms >= (ttl_s - 15) * 1000,
            "{ms} ms of {ttl_s} s"
        );
        assert_eq!(record.expiry_ns, ms * 1_000_000);
    };
    let two = go_read_one(&table, "cart/2").await;
    assert_eq!(two.value, "pear");
    seconds(&two, 60);
    let three = go_read_one(&table, "cart/3").await;
    assert_eq!(three.value, "plum");
    seconds(&three, 120);
    let four = go_read_one(&table, "cart/4").await;
    assert_eq!((four.value.as_str(), four.expiry_ns), ("", -1));
    assert_eq!(
        go_error(&[&store_args("store-read", &table)[..], &["--key", "cart/9"]].concat()).await,
        "not found"
    );

    // Go's prefix read: KEYS <table>cart/*, in no order, and the key of
    // every record it returns is the query, "cart/", not the record's own
    // (GM#2452). So the records are told apart by their values here.
    let carts = go_read(&table, "cart/", true).await;
    assert!(carts.iter().all(|r| r.key == "cart/"), "{carts:?}");
    let values: BTreeSet<&str> = carts.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, BTreeSet::from(["", "apple", "pear", "plum"]));
    assert!(
        go_read(&table, "nothing/", true).await.is_empty(),
        "no match: no records, no error"
    );

    // Go lists micro's values with the table in front, and micro's own
    // keys beside them (the metadata of this table's records among them).
    let listed = go_list(&table, "").await;
    let values: BTreeSet<&str> = listed.iter().filter_map(|k| k.strip_prefix(&table)).collect();
    assert_eq!(
        values,
        BTreeSet::from(["cart/1", "cart/2", "cart/3", "cart/4", "carton"])
    );
    assert!(
        listed
            .iter()
            .any(|k| k.starts_with(MICROS) && k.ends_with(&format!("{table}cart/1"))),
        "micro's metadata hash is listed: {listed:?}"
    );

    // Go writes over micro's records: micro reads Go's value, with no
    // metadata, at version 0, and Go's SET took the TTL away.
    go_write(&table, "cart/1", "banana", &[("by", "go")], None).await;
    go_write(&table, "cart/2", "grape", &[], None).await;
    let one = store.read("cart/1", ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!(one.value, b"banana");
    assert_eq!((one.metadata.len(), one.version, one.expiry), (0, 0, None));
    let two = store.read("cart/2", ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!((two.value.as_slice(), two.expiry), (&b"grape"[..], None));

    // micro deletes: Go finds nothing.
    store.delete("cart/3", DeleteOptions::default()).await.unwrap();
    assert_eq!(
        go_error(&[&store_args("store-read", &table)[..], &["--key", "cart/3"]].concat()).await,
        "not found"
    );
    let values: BTreeSet<String> = go_read(&table, "cart/", true)
        .await
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        values,
        BTreeSet::from(["".to_owned(), "banana".to_owned(), "grape".to_owned()])
    );
    assert_eq!(
        store.list(ListOptions::default()).await.unwrap(),
        ["cart/1", "cart/2", "cart/4", "carton"]
    );

    store.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and Redis (netns-run --services redis)"]
async fn go_and_micro_caches_share_values_ttls_and_deletes() {
    // Go's cache uses keys as given; micro's puts its prefix in front.
    let prefix = format!("gointerop:{}:", uuid::Uuid::new_v4().simple());
    let go_key = |key: &str| format!("{prefix}{key}");
    let cache = RedisCache::connect(&url()).await.unwrap().prefix(prefix.clone());

    // Short TTLs first, each read by the other side at once (one Go
    // process start, well within them); they are seen gone at the end.
    // Go's sub-second TTL is PX: micro reads it to the millisecond.
    let brief = Duration::from_millis(1400);
    go_cache_put(&go_key("go/brief"), "brief from go", "1400ms").await;
    let (value, expiry) = cache.get("go/brief").await.unwrap();
    assert_eq!(value, Bytes::from("brief from go"));
    let left = expiry
        .expect("Go's PX")
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(left <= brief && left > Duration::ZERO, "{left:?}");
    cache
        .put("rs/brief", Bytes::from("brief from micro"), Ttl::After(brief))
        .await
        .unwrap();
    let gone_by = Instant::now() + brief + Duration::from_millis(100);
    // Go reads TTL, whole seconds, rounded by Redis: 1 s while 500 ms or
    // more are left, 0 s (Go's expiry "now", for a live value) below that.
    let seen = go_cache_get(&go_key("rs/brief")).await;
    assert_eq!(seen.value, "brief from micro");
    let ms = seen.expiry_ms.expect("an expiry");
    assert!(
        matches!(ms, 990..=1000 | -10..=0),
        "{ms} ms: not whole seconds of 1400 ms"
    );

    // Go puts, micro gets: the raw value, Go's TTL to the millisecond.
    let before = SystemTime::now();
    go_cache_put(&go_key("go/ttl"), "from go", "30s").await;
    go_cache_put(&go_key("go/forever"), "for ever", "0").await;
    let after = SystemTime::now();
    let (value, expiry) = cache.get("go/ttl").await.unwrap();
    assert_eq!(value, Bytes::from("from go"));
    let expiry = expiry.expect("Go's TTL");
    assert!(
        expires_after(
            expiry,
            Duration::from_secs(30),
            before,
            after,
            Duration::from_millis(100)
        ),
        "{expiry:?} not 30 s after the put"
    );
    assert_eq!(
        cache.get("go/forever").await.unwrap(),
        (Bytes::from("for ever"), None),
        "Go's 0: no TTL"
    );

    // micro puts, Go gets: Go's expiry is now plus TTL's whole seconds.
    cache
        .put("rs/ttl", Bytes::from("from micro"), Ttl::After(Duration::from_secs(45)))
        .await
        .unwrap();
    cache.put("rs/forever", Bytes::from("kept"), Ttl::Never).await.unwrap();
    let ttl = go_cache_get(&go_key("rs/ttl")).await;
    assert_eq!(ttl.value, "from micro");
    let ms = ttl.expiry_ms.expect("an expiry");
    assert!(
        (30_000..=45_000).contains(&ms) && (ms % 1000 == 0 || ms % 1000 >= 990),
        "{ms} ms: not whole seconds of 45 s"
    );
    let forever = go_cache_get(&go_key("rs/forever")).await;
    assert_eq!((forever.value.as_str(), forever.expiry_ms), ("kept", None));

    // Deletes, both ways.
    assert!(cache.delete("go/ttl").await.unwrap(), "micro deletes Go's value");
    assert_eq!(go_cache_miss(&go_key("go/ttl")).await, "key not found in cache");
    go_cache_delete(&go_key("rs/ttl")).await;
    assert!(cache.get("rs/ttl").await.unwrap_err().is_not_found());
    assert!(!cache.delete("rs/ttl").await.unwrap(), "gone already");
    // Go's Delete of a missing key is no error (DEL of nothing).
    go_cache_delete(&go_key("rs/ttl")).await;

    // A put over the other's value replaces it, TTL and all.
    go_cache_put(&go_key("rs/forever"), "go's now", "1m").await;
    let (value, expiry) = cache.get("rs/forever").await.unwrap();
    assert_eq!(value, Bytes::from("go's now"));
    assert!(expiry.is_some(), "Go's TTL replaced micro's none");
    cache
        .put("go/forever", Bytes::from("micro's now"), Ttl::Never)
        .await
        .unwrap();
    let replaced = go_cache_get(&go_key("go/forever")).await;
    assert_eq!((replaced.value.as_str(), replaced.expiry_ms), ("micro's now", None));

    // The brief values are gone, for both.
    tokio::time::sleep_until(gone_by).await;
    for key in ["go/brief", "rs/brief"] {
        assert!(cache.get(key).await.unwrap_err().is_not_found(), "{key}");
        assert_eq!(go_cache_miss(&go_key(key)).await, "key not found in cache", "{key}");
    }

    for key in ["go/forever", "rs/forever"] {
        cache.delete(key).await.unwrap();
    }
}
