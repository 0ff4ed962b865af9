//! Store interop with real Go Micro: the Go peer (`tests/gomicro/`) runs Go
//! Micro v5.9.0's core PostgreSQL store (`go-micro.dev/v5/store/postgres`,
//! lib/pq), and a micro `PostgresStore` shares its table both ways: records
//! Go writes are read by micro with their metadata and expiry, records
//! micro writes are read by Go, and micro's conditional writes hold against
//! Go's writes. Ignored unless `MICRO_TEST_GOMICRO` names the built peer;
//! run inside `netns-run --services postgres`.
//!
//! Go splices the database (a schema here) and table names unquoted, so
//! PostgreSQL folds them to lower case; micro quotes them lower-cased. The
//! names used here are lower case, so both sides name one table by
//! construction, not by folding. Each test has a database of its own; Go's
//! store also creates a PostgreSQL database of that name (its `CREATE
//! DATABASE`), which the test drops at the end with the schema.
#![cfg(feature = "postgres")]

mod peer;

use std::time::{Duration, Instant, SystemTime};

use micro::store::{ListOptions, PostgresStore, ReadOptions, Record, Store, StoreError, Table, WriteOptions};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_postgres::NoTls;

use peer::{go, go_ok};

/// The table every test uses, in a database (schema) of its own.
const TABLE: &str = "records";

fn url() -> String {
    std::env::var("MICRO_TEST_POSTGRES_URL")
        .expect("MICRO_TEST_POSTGRES_URL: run inside `netns-run --services postgres`")
}

/// A database name of this test's own, lower case (see the module's doc).
fn unique_database() -> String {
    format!("gointerop{}", uuid::Uuid::new_v4().simple())
}

async fn micro_store(database: &str) -> PostgresStore {
    PostgresStore::with_defaults(&url(), Table::new(database, TABLE))
        .await
        .unwrap()
}

/// A record as the Go peer prints it: what Go Micro's `Read` gave.
#[derive(Debug, Deserialize)]
struct GoRecord {
    key: String,
    value: String,
    metadata: Map<String, Value>,
    /// `Record.Expiry`, the time left, in milliseconds; `None`: no expiry.
    expiry_ms: Option<i64>,
}

/// Go Micro's `Write(&Record{key, value, metadata, ttl})`.
async fn go_write(database: &str, key: &str, value: &str, metadata: &[(&str, &str)], ttl: Option<&str>) {
    let pairs: Vec<String> = metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec![
        "store-write",
        "--database",
        database,
        "--table",
        TABLE,
        "--key",
        key,
        "--value",
        value,
    ];
    for pair in &pairs {
        args.extend(["--metadata", pair.as_str()]);
    }
    if let Some(ttl) = ttl {
        args.extend(["--ttl", ttl]);
    }
    let lines = go_ok(&args).await;
    // Go's store may log (its startup sweep racing the exit) among the
    // peer's lines: the confirmation is looked for, not taken as the last.
    let written = format!("written {key}");
    assert!(lines.contains(&written), "{written}: {lines:?}");
}

/// Go Micro's `Read(key)` or `Read(key, ReadPrefix())`.
async fn go_read(database: &str, key: &str, prefix: bool) -> Vec<GoRecord> {
    let mut args = vec!["store-read", "--database", database, "--table", TABLE, "--key", key];
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
async fn go_read_one(database: &str, key: &str) -> GoRecord {
    let mut found = go_read(database, key, false).await;
    assert_eq!(found.len(), 1, "{key}: {found:?}");
    found.remove(0)
}

/// What Go Micro's `Read(key)` failed with (the peer's `error ...` line).
async fn go_read_error(database: &str, key: &str) -> String {
    let (ok, lines, _) = go(&["store-read", "--database", database, "--table", TABLE, "--key", key]).await;
    assert!(!ok, "{key} was read: {lines:?}");
    lines
        .into_iter()
        .find_map(|line| line.strip_prefix("error ").map(str::to_owned))
        .expect("an error line")
}

/// Go Micro's `List()` or `List(ListPrefix(prefix))`.
async fn go_list(database: &str, prefix: &str) -> Vec<String> {
    go_ok(&[
        "store-read",
        "--database",
        database,
        "--table",
        TABLE,
        "--list",
        "--key",
        prefix,
    ])
    .await
    .iter()
    .filter(|line| line.starts_with('"'))
    .map(|line| serde_json::from_str(line).unwrap())
    .collect()
}

fn keys_of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<&'a str> {
    records.into_iter().map(|r| r.key.as_str()).collect()
}

fn strings(metadata: &[(&str, &str)]) -> Map<String, Value> {
    metadata.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()
}

/// Drops what the test created: the schema micro and Go share, and the
/// database Go's `CREATE DATABASE` made.
async fn drop_database(database: &str) {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    // One statement each: DROP DATABASE cannot run in a transaction.
    for statement in [
        format!("DROP SCHEMA IF EXISTS \"{database}\" CASCADE"),
        format!("DROP DATABASE IF EXISTS \"{database}\""),
    ] {
        client.batch_execute(&statement).await.unwrap();
    }
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and PostgreSQL (netns-run --services postgres)"]
async fn records_go_writes_are_read_by_micro() {
    let database = unique_database();
    let before = SystemTime::now();
    go_write(
        &database,
        "order/1",
        "one",
        &[("tenant", "acme"), ("kind", "order")],
        None,
    )
    .await;
    go_write(&database, "order/2", "two", &[("tenant", "acme")], Some("1m")).await;
    go_write(&database, "order_3", "three", &[], None).await;
    go_write(&database, "order%4", "four", &[], None).await;
    go_write(&database, "orderX5", "five", &[], None).await;
    go_write(&database, "other", "", &[], None).await;
    let after = SystemTime::now();

    let store = micro_store(&database).await;
    let read = |key: &'static str| {
        let store = store.clone();
        async move {
            let mut found = store.read(key, ReadOptions::default()).await.unwrap();
            assert_eq!(found.len(), 1, "{key}");
            found.remove(0)
        }
    };
    let one = read("order/1").await;
    assert_eq!(one.value, b"one");
    assert_eq!(one.metadata, strings(&[("tenant", "acme"), ("kind", "order")]));
    assert_eq!(one.expiry, None);
    assert_ne!(one.version, 0, "Go's rows have a version too (xmin)");

    // Go's expiry is its clock's now + Record.Expiry, to the microsecond.
    let two = read("order/2").await;
    assert_eq!(two.value, b"two");
    assert_eq!(two.metadata, strings(&[("tenant", "acme")]));
    let expiry = two.expiry.expect("Go's TTL is an expiry");
    let minute = Duration::from_secs(60);
    let slack = Duration::from_millis(5);
    assert!(
        expiry + slack >= before + minute && expiry <= after + minute + slack,
        "{expiry:?} not a minute after the write"
    );
    let left = two.remaining().unwrap();
    assert!(left > Duration::from_secs(40) && left <= minute, "{left:?}");

    for (key, value) in [
        ("order_3", "three"),
        ("order%4", "four"),
        ("orderX5", "five"),
        ("other", ""),
    ] {
        let record = read(key).await;
        assert_eq!(record.value, value.as_bytes(), "{key}");
        assert_eq!(record.metadata, Map::new(), "Go writes {{}} for no metadata: {key}");
        assert_eq!(record.expiry, None, "{key}");
    }
    let missing = store.read("order/9", ReadOptions::default()).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing:?}");

    // Prefix reads, ascending, with the records whole.
    let orders = store.read("order/", ReadOptions::default().prefix()).await.unwrap();
    assert_eq!(keys_of(&orders), ["order/1", "order/2"]);
    assert_eq!(orders[0].metadata, one.metadata);
    assert_eq!(orders[1].expiry, two.expiry);
    // micro takes `_` and `%` literally, Go's LIKE does not (see below).
    let underscore = store.read("order_", ReadOptions::default().prefix()).await.unwrap();
    assert_eq!(keys_of(&underscore), ["order_3"]);
    let percent = store.read("order%", ReadOptions::default().prefix()).await.unwrap();
    assert_eq!(keys_of(&percent), ["order%4"]);

    // Lists, in byte order: '%' < '/' < 'X' < '_' < 't'.
    let all = ["order%4", "order/1", "order/2", "orderX5", "order_3", "other"];
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), all);
    assert_eq!(
        store.list(ListOptions::default().prefix("order")).await.unwrap(),
        all[..5]
    );
    assert_eq!(
        store.list(ListOptions::default().prefix("order_")).await.unwrap(),
        ["order_3"]
    );

    // Go itself lists the same keys in the same order (ORDER BY key in the
    // database's collation: C.UTF-8 under netns-run, byte order for ASCII),
    // but its prefix is a raw LIKE pattern: `order_` matches any character
    // after "order".
    assert_eq!(go_list(&database, "").await, all);
    let go_underscore: Vec<String> = go_read(&database, "order_", true)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(go_underscore, ["order%4", "order/1", "order/2", "orderX5", "order_3"]);

    store.close().await.unwrap();
    drop_database(&database).await;
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and PostgreSQL (netns-run --services postgres)"]
async fn records_micro_writes_are_read_by_go() {
    let database = unique_database();
    let store = micro_store(&database).await;
    let write = |record: Record, options: WriteOptions| {
        let store = store.clone();
        async move { store.write(record, options).await.unwrap() }
    };
    let written = Instant::now();
    write(
        Record::new("cart/1", "apple")
            .metadata("tenant", "acme")
            .metadata("n", 3)
            .metadata("gift", true),
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
    write(Record::new("cart_5", "fig"), WriteOptions::default()).await;
    write(Record::new("cart%6", "kiwi"), WriteOptions::default()).await;
    // Expired already: neither side reads it.
    write(
        Record::new("cart/0", "gone"),
        WriteOptions::default().expiry(SystemTime::now() - Duration::from_secs(1)),
    )
    .await;

    let one = go_read_one(&database, "cart/1").await;
    assert_eq!((one.key.as_str(), one.value.as_str()), ("cart/1", "apple"));
    assert_eq!(
        Value::Object(one.metadata),
        json!({"tenant": "acme", "n": 3, "gift": true}),
        "metadata is one JSON object for both"
    );
    assert_eq!(one.expiry_ms, None);

    // Go reads the expiry column as the time left.
    let within = |got: Option<i64>, ttl_ms: i64| {
        let got = got.expect("an expiry");
        let elapsed = i64::try_from(written.elapsed().as_millis()).unwrap();
        assert!(
            got <= ttl_ms && got >= ttl_ms - elapsed - 1000,
            "{got} ms left of {ttl_ms}"
        );
    };
    let two = go_read_one(&database, "cart/2").await;
    assert_eq!(two.value, "pear");
    assert_eq!(Value::Object(two.metadata), json!({"tenant": "acme"}));
    within(two.expiry_ms, 60_000);
    let three = go_read_one(&database, "cart/3").await;
    assert_eq!(three.value, "plum");
    assert_eq!(three.metadata, Map::new(), "micro writes {{}} for no metadata");
    within(three.expiry_ms, 120_000);
    let four = go_read_one(&database, "cart/4").await;
    assert_eq!((four.value.as_str(), four.expiry_ms), ("", None));
    for (key, value) in [("cart_5", "fig"), ("cart%6", "kiwi")] {
        assert_eq!(go_read_one(&database, key).await.value, value);
    }
    // Go checks the expiry on its side, after the query.
    assert_eq!(go_read_error(&database, "cart/0").await, "not found");

    let carts = go_read(&database, "cart/", true).await;
    let keys: Vec<&str> = carts.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["cart/1", "cart/2", "cart/3", "cart/4"]);
    assert_eq!(carts[0].metadata["n"], json!(3));
    within(carts[2].expiry_ms, 120_000);
    // Go's prefix is a LIKE pattern: `cart_` matches every cart; micro's
    // is literal.
    let go_underscore: Vec<String> = go_read(&database, "cart_", true)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        go_underscore,
        ["cart%6", "cart/1", "cart/2", "cart/3", "cart/4", "cart_5"]
    );
    let ours = store.read("cart_", ReadOptions::default().prefix()).await.unwrap();
    assert_eq!(keys_of(&ours), ["cart_5"]);

    let all = ["cart%6", "cart/1", "cart/2", "cart/3", "cart/4", "cart_5"];
    assert_eq!(go_list(&database, "").await, all);
    assert_eq!(go_list(&database, "cart/").await, all[1..5]);
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), all);

    store.close().await.unwrap();
    drop_database(&database).await;
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and PostgreSQL (netns-run --services postgres)"]
async fn micro_overwrites_a_go_record_only_at_the_version_it_read() {
    let database = unique_database();
    go_write(&database, "doc", "v1", &[("by", "go")], None).await;
    let store = micro_store(&database).await;

    let read = store.read("doc", ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!(
        (read.value.as_slice(), read.metadata.clone()),
        (&b"v1"[..], strings(&[("by", "go")]))
    );
    let created = store
        .write(Record::new("doc", "mine"), WriteOptions::default().create_only())
        .await
        .unwrap_err();
    assert!(created.is_conflict(), "Go's record is there: {created:?}");

    let version = store
        .write(
            Record::new("doc", "v2").metadata("by", "micro"),
            WriteOptions::default().if_version(read.version),
        )
        .await
        .unwrap();
    assert_ne!(version, read.version);
    let seen = go_read_one(&database, "doc").await;
    assert_eq!(seen.value, "v2");
    assert_eq!(Value::Object(seen.metadata), json!({"by": "micro"}));

    // Go writes over it: the version micro holds is stale now.
    go_write(&database, "doc", "v3", &[("by", "go")], None).await;
    let stale = store
        .write(Record::new("doc", "lost"), WriteOptions::default().if_version(version))
        .await
        .unwrap_err();
    match &stale {
        StoreError::Conflict { found: Some(found), .. } => assert_ne!(*found, version),
        other => panic!("not a conflict at another version: {other:?}"),
    }
    assert_eq!(go_read_one(&database, "doc").await.value, "v3", "Go's write stands");

    let again = store.read("doc", ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!(again.value, b"v3");
    store
        .write(
            Record::new("doc", "v4").metadata("by", "micro"),
            WriteOptions::default().if_version(again.version),
        )
        .await
        .unwrap();
    let last = go_read_one(&database, "doc").await;
    assert_eq!(
        (last.value.as_str(), last.metadata["by"].clone()),
        ("v4", json!("micro"))
    );

    store.close().await.unwrap();
    drop_database(&database).await;
}
