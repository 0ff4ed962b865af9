//! The Redis store against a real server, by its layout: what a Go Micro
//! redis store writes (`SET <table><key>`) micro reads, and what micro
//! writes Go reads. Run inside `netns-run --services redis`.
#![cfg(feature = "redis")]

use std::time::Duration;

use micro::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, RedisStore, Store, StoreError, Table, WriteOptions,
};
use redis::aio::MultiplexedConnection;

fn url() -> String {
    std::env::var("MICRO_TEST_REDIS_URL").expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`")
}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

async fn raw() -> MultiplexedConnection {
    redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn get(conn: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

async fn pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

async fn set(conn: &mut MultiplexedConnection, key: &str, value: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn a_value_go_wrote_reads_as_its_key_in_table_micro() {
    let mut conn = raw().await;
    let store = RedisStore::connect(&url()).await.unwrap();
    let foo = unique("foo");
    // What Go Micro's redis store does for Write(Record{Key: foo}) in table micro.
    set(&mut conn, &format!("micro{foo}"), b"bar").await;

    let record = store.read(&foo, ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!(record.key, foo);
    assert_eq!(record.value, b"bar");
    assert_eq!(
        (record.version, record.expiry),
        (0, None),
        "Go gives no version, no expiry"
    );
    assert!(record.metadata.is_empty());
    assert_eq!(
        store.list(ListOptions::default().prefix(foo.clone())).await.unwrap(),
        [foo.as_str()],
        "read once by key, it is listed"
    );

    let exists = store
        .write(
            Record::new(foo.clone(), b"x".to_vec()),
            WriteOptions::default().create_only(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(exists, StoreError::Conflict { found: Some(0), .. }),
        "{exists:?}"
    );
    let version = store
        .write(
            Record::new(foo.clone(), b"mine".to_vec()),
            WriteOptions::default().if_version(0),
        )
        .await
        .unwrap();
    assert!(version > 0);
    assert_eq!(get(&mut conn, &format!("micro{foo}")).await.unwrap(), b"mine");
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn micro_writes_the_raw_value_where_go_reads_it() {
    let mut conn = raw().await;
    let store = RedisStore::connect(&url()).await.unwrap();
    let k = unique("k");
    let record = Record::new(k.clone(), b"\x00raw\xff".to_vec()).metadata("owner", "micro");
    store
        .write(record, WriteOptions::default().ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    let key = format!("micro{k}");
    assert_eq!(get(&mut conn, &key).await.unwrap(), b"\x00raw\xff");
    let left = pttl(&mut conn, &key).await;
    assert!((55_000..=60_000).contains(&left), "PTTL {left}");
    let read = store.read(&k, ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!(read.metadata["owner"], "micro", "micro keeps metadata (Go drops it)");
    let remaining = read.remaining().unwrap();
    assert!(remaining > Duration::from_secs(55) && remaining <= Duration::from_secs(60));

    store
        .write(Record::new(k.clone(), b"forever".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn, &key).await, -1, "a write without expiry clears the TTL");

    let database = unique("db");
    let other = RedisStore::with_defaults(&url(), Table::new(database.clone(), "t"))
        .await
        .unwrap();
    other
        .write(Record::new("k", b"v".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        get(
            &mut conn,
            &format!("~micro-store:value:{}:{database}:1:t:k", database.len())
        )
        .await
        .unwrap(),
        b"v",
        "another database (Go has none): names apart by their lengths"
    );
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn what_go_writes_over_or_deletes_micro_sees() {
    let mut conn = raw().await;
    let store = RedisStore::connect(&url()).await.unwrap();
    let k = unique("k");
    let key = format!("micro{k}");
    let version = store
        .write(
            Record::new(k.clone(), b"micro".to_vec()).metadata("m", 1),
            WriteOptions::default(),
        )
        .await
        .unwrap();

    set(&mut conn, &key, b"go").await;
    let read = store.read(&k, ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!(read.value, b"go");
    assert_eq!(read.version, 0, "Go wrote it since: micro's version no longer holds");
    assert!(read.metadata.is_empty());
    let stale = store
        .write(
            Record::new(k.clone(), b"x".to_vec()),
            WriteOptions::default().if_version(version),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(stale, StoreError::Conflict { found: Some(0), .. }),
        "{stale:?}"
    );

    redis::cmd("DEL").arg(&key).query_async::<i64>(&mut conn).await.unwrap();
    assert!(store.read(&k, ReadOptions::default()).await.unwrap_err().is_not_found());
    assert!(
        store
            .list(ListOptions::default().prefix(k.clone()))
            .await
            .unwrap()
            .is_empty()
    );
    store.delete(&k, DeleteOptions::default()).await.unwrap();
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn go_listing_a_table_sees_only_its_values() {
    let mut conn = raw().await;
    let table = unique("tbl");
    let store = RedisStore::with_defaults(&url(), Table::new("micro", table.clone()))
        .await
        .unwrap();
    for key in ["a", "b"] {
        store
            .write(
                Record::new(key, key.as_bytes().to_vec()).metadata("m", true),
                WriteOptions::default().ttl(Duration::from_secs(60)),
            )
            .await
            .unwrap();
    }
    // Go Micro's List for this table: SCAN MATCH <table>*.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{table}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    seen.sort();
    assert_eq!(seen, [format!("{table}a"), format!("{table}b")]);
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn records_gone_by_expiry_leave_the_index_as_writes_come() {
    let mut conn = raw().await;
    let database = unique("db");
    let store = RedisStore::with_defaults(&url(), Table::new(database.clone(), "t"))
        .await
        .unwrap();
    for i in 0..10 {
        store
            .write(
                Record::new(format!("s{i}"), b"x".to_vec()),
                WriteOptions::default().ttl(Duration::from_millis(50)),
            )
            .await
            .unwrap();
    }
    let index = format!("~micro-store:index:{}:{database}:t", database.len());
    let card = redis::cmd("ZCARD").arg(&index).clone();
    assert_eq!(card.query_async::<u64>(&mut conn).await.unwrap(), 10);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Only exact reads and writes come: no list walks the index.
    store
        .write(Record::new("kept", b"x".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        card.query_async::<u64>(&mut conn).await.unwrap(),
        1,
        "the expired were forgotten by the write"
    );
    assert_eq!(store.list(ListOptions::default()).await.unwrap(), ["kept"]);
}

#[tokio::test]
#[ignore = "connects to 127.0.0.1: run inside netns-run"]
async fn no_server_is_an_error_not_a_hang() {
    // Nothing listens on port 1 in the test namespace.
    let started = std::time::Instant::now();
    let err = RedisStore::connect("redis://127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, StoreError::Backend { backend: "redis", .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn tables_whose_names_run_into_each_other_stay_apart() {
    let store = RedisStore::connect(&url()).await.unwrap();
    let a = unique("a");
    let ab = format!("{a}b");
    // Go's key `<a>bc` is key `bc` of table `<a>` and key `c` of table `<a>b`.
    let version = store
        .write(Record::new("c", b"ab's".to_vec()), WriteOptions::default().table(&ab))
        .await
        .unwrap();
    let missing = store.read("bc", ReadOptions::default().table(&a)).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    let taken = store
        .write(Record::new("bc", b"a's".to_vec()), WriteOptions::default().table(&a))
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::InvalidName(_)), "{taken:?}");
    store.delete("bc", DeleteOptions::default().table(&a)).await.unwrap();
    assert!(store.list(ListOptions::default().table(&a)).await.unwrap().is_empty());
    let kept = store
        .read("c", ReadOptions::default().table(&ab))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((kept.value.as_slice(), kept.version), (&b"ab's"[..], version));
}
