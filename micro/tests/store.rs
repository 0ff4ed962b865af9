//! One conformance suite over every store backend (RELIABILITY.md R23):
//! Go Micro's operations and options with one semantics everywhere, plus
//! versions, conditional writes, cursor paging, watches and typed values.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use micro::store::{
    Change, DeleteOptions, FileStore, ListOptions, MemoryStore, ReadOptions, Record, Scope, Store, StoreError,
    WriteOptions,
};

type Stores = fn() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>>>>;

fn memory() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>>>> {
    Box::pin(async { Arc::new(MemoryStore::new()) as Arc<dyn Store> })
}

fn file() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>>>> {
    Box::pin(async {
        let dir = std::env::temp_dir().join(format!("micro-store-{}", uuid::Uuid::new_v4().simple()));
        Arc::new(FileStore::open(dir).unwrap()) as Arc<dyn Store>
    })
}

/// A store on the test server, in a database (a schema) of its own.
#[cfg(feature = "postgres")]
fn postgres() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>>>> {
    Box::pin(async {
        let url = std::env::var("MICRO_TEST_POSTGRES_URL")
            .expect("MICRO_TEST_POSTGRES_URL: run inside `netns-run --services postgres`");
        let database = format!("t{}", uuid::Uuid::new_v4().simple());
        let defaults = micro::store::Table::new(database, "micro");
        Arc::new(
            micro::store::PostgresStore::with_defaults(&url, defaults)
                .await
                .unwrap(),
        ) as Arc<dyn Store>
    })
}

/// A store on the test server, in a database of its own (micro's layout,
/// not Go's), so that tests do not see each other.
#[cfg(feature = "redis")]
fn redis() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>>>> {
    Box::pin(async {
        let url = std::env::var("MICRO_TEST_REDIS_URL")
            .expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`");
        let database = format!("t{}", uuid::Uuid::new_v4().simple());
        let defaults = micro::store::Table::new(database, "micro");
        Arc::new(micro::store::RedisStore::with_defaults(&url, defaults).await.unwrap()) as Arc<dyn Store>
    })
}

/// A store on the test server in Go Micro's layout (the database
/// `micro`, values at `<table><key>`), in a table of its own.
#[cfg(feature = "redis")]
fn redis_go() -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn Store>>>> {
    Box::pin(async {
        let url = std::env::var("MICRO_TEST_REDIS_URL")
            .expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`");
        let defaults = micro::store::Table::new("micro", format!("t{}", uuid::Uuid::new_v4().simple()));
        Arc::new(micro::store::RedisStore::with_defaults(&url, defaults).await.unwrap()) as Arc<dyn Store>
    })
}

async fn write(store: &dyn Store, keys: &[&str]) {
    for key in keys {
        store
            .write(Record::new(*key, key.as_bytes().to_vec()), WriteOptions::default())
            .await
            .unwrap();
    }
}

fn keys(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.key.as_str()).collect()
}

async fn list(store: &dyn Store, options: ListOptions) -> Vec<String> {
    store.list(options).await.unwrap()
}

async fn reads_writes_and_deletes(stores: Stores) {
    let store = stores().await;
    let missing = store.read("nope", ReadOptions::default()).await.unwrap_err();
    assert!(
        matches!(&missing, StoreError::NotFound { key } if key == "nope"),
        "{missing:?}"
    );
    assert_eq!(missing.to_string(), "not found", "Go Micro's ErrNotFound text");
    store.delete("nope", DeleteOptions::default()).await.unwrap();

    let record = Record::new("user/1", b"\x00\xffbytes".to_vec())
        .metadata("name", "alice")
        .metadata("age", 30)
        .metadata("tags", serde_json::json!(["a", "b"]));
    let version = store.write(record.clone(), WriteOptions::default()).await.unwrap();
    assert!(version > 0);
    let read = store.read("user/1", ReadOptions::default()).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].value, record.value);
    assert_eq!(read[0].metadata, record.metadata);
    assert_eq!(read[0].expiry, None);
    assert_eq!(read[0].remaining(), None);
    assert_eq!(read[0].version, version);

    let again = store
        .write(Record::new("user/1", b"v2".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    assert!(again > version, "versions increase: {again} after {version}");
    let read = store.read("user/1", ReadOptions::default()).await.unwrap();
    assert_eq!(read[0].value, b"v2");
    assert!(read[0].metadata.is_empty(), "a write replaces the metadata");

    store.delete("user/1", DeleteOptions::default()).await.unwrap();
    assert!(
        store
            .read("user/1", ReadOptions::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(list(&*store, ListOptions::default()).await.is_empty());
    let empty = store
        .write(Record::new("", b"x".to_vec()), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(empty, StoreError::InvalidName(_)), "{empty:?}");
}

#[tokio::test]
async fn the_default_database_and_table_are_micro() {
    let store = MemoryStore::new();
    store
        .write(Record::new("k", b"v".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    let scoped = store
        .read("k", ReadOptions::default().scope("micro", "micro"))
        .await
        .unwrap();
    assert_eq!(scoped[0].value, b"v");
}

async fn prefix_suffix_limit_offset(stores: Stores) {
    let store = stores().await;
    write(
        &*store,
        &["b/2.json", "a/1.json", "b/1.txt", "b/3.json", "c/1.json", "b/1.json"],
    )
    .await;
    let read = |key: &'static str, options: ReadOptions| {
        let store = Arc::clone(&store);
        async move { store.read(key, options).await.unwrap() }
    };
    let prefix = read("b/", ReadOptions::default().prefix()).await;
    assert_eq!(
        keys(&prefix),
        ["b/1.json", "b/1.txt", "b/2.json", "b/3.json"],
        "ascending"
    );
    let suffix = read(".json", ReadOptions::default().suffix()).await;
    assert_eq!(
        keys(&suffix),
        ["a/1.json", "b/1.json", "b/2.json", "b/3.json", "c/1.json"]
    );
    // Limit counts matches after filtering; offset skips matches.
    let page = read(".json", ReadOptions::default().suffix().offset(1).limit(2)).await;
    assert_eq!(keys(&page), ["b/1.json", "b/2.json"]);
    let offset_only = read("b/", ReadOptions::default().prefix().offset(3)).await;
    assert_eq!(
        keys(&offset_only),
        ["b/3.json"],
        "an offset alone pages (Go's memory store panics)"
    );
    assert!(read("b/", ReadOptions::default().prefix().offset(10)).await.is_empty());
    assert!(
        read("zz", ReadOptions::default().prefix()).await.is_empty(),
        "no match, no error"
    );
    // Both: the same string at both ends.
    write(&*store, &["x", "xax", "xa", "ax"]).await;
    let both = read("x", ReadOptions::default().prefix().suffix()).await;
    assert_eq!(keys(&both), ["x", "xax"]);

    let all = list(&*store, ListOptions::default()).await;
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "lists are ascending");
    assert_eq!(
        list(&*store, ListOptions::default().prefix("b/").suffix(".json").limit(2)).await,
        ["b/1.json", "b/2.json"]
    );
    assert_eq!(
        list(&*store, ListOptions::default().prefix("b/").offset(2)).await,
        ["b/2.json", "b/3.json"]
    );
    assert!(list(&*store, ListOptions::default().offset(100)).await.is_empty());
}

async fn pages_by_cursor(stores: Stores) {
    let store = stores().await;
    let all: Vec<String> = (0..25).map(|i| format!("item/{i:03}")).collect();
    for key in all.iter().rev() {
        store
            .write(Record::new(key.clone(), b"x".to_vec()), WriteOptions::default())
            .await
            .unwrap();
    }
    write(&*store, &["other"]).await;
    let mut seen = Vec::new();
    let mut options = ListOptions::default().prefix("item/").limit(10);
    loop {
        let page = store.list_page(options.clone()).await.unwrap();
        seen.extend(page.keys);
        match page.next {
            Some(cursor) => options = options.after(cursor),
            None => break,
        }
    }
    assert_eq!(seen, all, "every key once, in order");
}

async fn databases_and_tables_are_apart(stores: Stores) {
    let store = stores().await;
    store
        .write(Record::new("k", b"default".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    store
        .write(Record::new("k", b"t2".to_vec()), WriteOptions::default().table("t2"))
        .await
        .unwrap();
    store
        .write(
            Record::new("k", b"db2".to_vec()),
            WriteOptions::default().scope("db2", "micro"),
        )
        .await
        .unwrap();
    let value = |options: ReadOptions| {
        let store = Arc::clone(&store);
        async move { store.read("k", options).await.unwrap().remove(0).value }
    };
    assert_eq!(value(ReadOptions::default()).await, b"default");
    assert_eq!(
        value(ReadOptions::default().scope("", "")).await,
        b"default",
        "empty: the store's"
    );
    assert_eq!(value(ReadOptions::default().table("t2")).await, b"t2");
    assert_eq!(value(ReadOptions::default().scope("db2", "micro")).await, b"db2");
    store.delete("k", DeleteOptions::default().table("t2")).await.unwrap();
    assert_eq!(value(ReadOptions::default()).await, b"default");
    assert!(list(&*store, ListOptions::default().table("t2")).await.is_empty());
    assert!(list(&*store, ListOptions::default().scope("db3", "t")).await.is_empty());
}

async fn expiry(stores: Stores) {
    let store = stores().await;
    let write = |key: &'static str, record: Record, options: WriteOptions| {
        let store = Arc::clone(&store);
        let mut record = record;
        record.key = key.into();
        async move { store.write(record, options).await.unwrap() }
    };
    write(
        "ttl",
        Record::default(),
        WriteOptions::default().ttl(Duration::from_secs(1)),
    )
    .await;
    write(
        "own",
        Record::default().ttl(Duration::from_secs(1)),
        WriteOptions::default(),
    )
    .await;
    // WriteTTL beats WriteExpiry, which beats the record's own.
    let far = std::time::SystemTime::now() + Duration::from_secs(3600);
    write(
        "both",
        Record::default().ttl(Duration::from_secs(3600)),
        WriteOptions::default().expiry(far).ttl(Duration::from_secs(1)),
    )
    .await;
    write(
        "at",
        Record::default().ttl(Duration::from_secs(1)),
        WriteOptions::default().expiry(far),
    )
    .await;
    write("forever", Record::default(), WriteOptions::default()).await;
    let ttl = store.read("ttl", ReadOptions::default()).await.unwrap().remove(0);
    let left = ttl.remaining().unwrap();
    assert!(
        left <= Duration::from_secs(1) && left > Duration::from_millis(500),
        "{left:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for key in ["ttl", "own", "both"] {
        let err = store.read(key, ReadOptions::default()).await.unwrap_err();
        assert!(err.is_not_found(), "{key} expired: {err:?}");
    }
    assert_eq!(list(&*store, ListOptions::default()).await, ["at", "forever"]);
    assert!(
        store
            .read("", ReadOptions::default().prefix())
            .await
            .unwrap()
            .iter()
            .all(|r| r.key == "at" || r.key == "forever")
    );
    // A record that has expired is absent for a create-only write too.
    write("ttl", Record::default(), WriteOptions::default().create_only()).await;
}

async fn conditional_writes(stores: Stores) {
    let store = stores().await;
    let record = || Record::new("k", b"1".to_vec());
    let first = store
        .write(record(), WriteOptions::default().create_only())
        .await
        .unwrap();
    let err = store
        .write(record(), WriteOptions::default().create_only())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { found: Some(v), .. } if v == first),
        "{err:?}"
    );
    let second = store
        .write(record(), WriteOptions::default().if_version(first))
        .await
        .unwrap();
    assert!(second > first);
    let stale = store
        .write(record(), WriteOptions::default().if_version(first))
        .await
        .unwrap_err();
    assert!(stale.is_conflict(), "{stale:?}");
    let missing = store
        .write(
            Record::new("other", b"x".to_vec()),
            WriteOptions::default().if_version(first),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::Conflict { found: None, .. }),
        "{missing:?}"
    );
    let err = store
        .delete("k", DeleteOptions::default().if_version(first))
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(
        store.read("k", ReadOptions::default()).await.unwrap()[0].version,
        second
    );
    store
        .delete("k", DeleteOptions::default().if_version(second))
        .await
        .unwrap();
    assert!(
        store
            .read("k", ReadOptions::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// Tasks incrementing one counter by read, then write-if-version, retrying
/// on a conflict, lose no increment.
async fn no_lost_increments(stores: Stores) {
    let store = stores().await;
    store.put("counter", &0u64).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..25 {
                    loop {
                        let record = store.get_record("counter", ReadOptions::default()).await.unwrap();
                        let n: u64 = serde_json::from_slice(&record.value).unwrap();
                        let options = WriteOptions::default().if_version(record.version);
                        match store.put_with("counter", &(n + 1), options).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get::<u64>("counter").await.unwrap(), 200);
}

async fn keys_are_taken_literally(stores: Stores) {
    let store = stores().await;
    write(
        &*store,
        &["user_1", "userX1", "user%1", "user\\1", "user1", "a*b", "a?b"],
    )
    .await;
    let read = |key: &'static str| {
        let store = Arc::clone(&store);
        async move { store.read(key, ReadOptions::default().prefix()).await.unwrap() }
    };
    assert_eq!(keys(&read("user_").await), ["user_1"]);
    assert_eq!(keys(&read("user%").await), ["user%1"]);
    assert_eq!(keys(&read("user\\").await), ["user\\1"]);
    assert_eq!(keys(&read("a*").await), ["a*b"]);
    assert_eq!(list(&*store, ListOptions::default().suffix("_1")).await, ["user_1"]);
}

async fn typed_values(stores: Stores) {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Todo {
        title: String,
        done: bool,
    }
    let store = stores().await;
    let todo = Todo {
        title: "write docs".into(),
        done: false,
    };
    store.put("todo/1", &todo).await.unwrap();
    assert_eq!(store.get::<Todo>("todo/1").await.unwrap(), todo);
    let raw = store.read("todo/1", ReadOptions::default()).await.unwrap();
    assert_eq!(
        raw[0].value, br#"{"title":"write docs","done":false}"#,
        "JSON, as Go's Record.Encode"
    );
    let wrong = store.get::<u64>("todo/1").await.unwrap_err();
    assert!(matches!(wrong, StoreError::Codec { action: "decode", .. }), "{wrong:?}");
}

async fn watches_a_prefix(stores: Stores) {
    let store = stores().await;
    let mut watch = store.watch("todo/", Scope::default()).await.unwrap();
    write(&*store, &["todo/1", "other/1"]).await;
    store
        .write(
            Record::new("todo/1", b"x".to_vec()),
            WriteOptions::default().table("elsewhere"),
        )
        .await
        .unwrap();
    store.delete("todo/1", DeleteOptions::default()).await.unwrap();
    store.delete("todo/never", DeleteOptions::default()).await.unwrap();
    write(&*store, &["todo/2"]).await;
    let mut changes = Vec::new();
    for _ in 0..3 {
        let change = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("a change within 5 s")
            .expect("the watch is live")
            .unwrap();
        changes.push(change);
    }
    match &changes[0] {
        Change::Put(record) => assert_eq!(
            (record.key.as_str(), record.value.as_slice()),
            ("todo/1", &b"todo/1"[..])
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(changes[1], Change::Delete { key: "todo/1".into() });
    assert_eq!(changes[2].key(), "todo/2");
    let quiet = tokio::time::timeout(Duration::from_millis(100), watch.next()).await;
    assert!(quiet.is_err(), "nothing else: {quiet:?}");
}

/// A test on tokio's paused clock, or on the real one.
macro_rules! clock_test {
    (paused, $item:item) => {
        #[tokio::test(start_paused = true)]
        $item
    };
    (real, $item:item) => {
        #[tokio::test]
        $item
    };
}

/// The suite for one backend: `suite!(name, clock $(, #[attr])*)`, where
/// `clock` is `paused` (expiry judged by tokio's clock, paused in the
/// test) or `real` (a server's clock: the expiry test sleeps for real).
macro_rules! suite {
    ($backend:ident, $clock:ident $(, #[$attr:meta])*) => {
        mod $backend {
            $(#[$attr])*
            #[tokio::test]
            async fn reads_writes_and_deletes() {
                super::reads_writes_and_deletes(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn prefix_suffix_limit_offset() {
                super::prefix_suffix_limit_offset(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn pages_by_cursor() {
                super::pages_by_cursor(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn databases_and_tables_are_apart() {
                super::databases_and_tables_are_apart(super::$backend).await
            }
            clock_test!(
                $clock,
                $(#[$attr])*
                async fn expiry() {
                    super::expiry(super::$backend).await
                }
            );
            $(#[$attr])*
            #[tokio::test]
            async fn conditional_writes() {
                super::conditional_writes(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn no_lost_increments() {
                super::no_lost_increments(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn keys_are_taken_literally() {
                super::keys_are_taken_literally(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn typed_values() {
                super::typed_values(super::$backend).await
            }
        }
    };
}

suite!(memory, paused);
suite!(file, paused);
suite!(
    postgres,
    real,
    #[cfg(feature = "postgres")],
    #[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
);
suite!(
    redis,
    real,
    #[cfg(feature = "redis")],
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
);
suite!(
    redis_go,
    real,
    #[cfg(feature = "redis")],
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
);

/// Watching, on the backends that tell changes.
mod watch {
    #[tokio::test]
    async fn memory() {
        super::watches_a_prefix(super::memory).await
    }

    #[tokio::test]
    async fn file() {
        super::watches_a_prefix(super::file).await
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    #[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
    async fn postgres() {
        super::watches_a_prefix(super::postgres).await
    }
}

#[tokio::test]
async fn a_file_store_keeps_its_records_and_shares_its_files() {
    let dir = std::env::temp_dir().join(format!("micro-store-{}", uuid::Uuid::new_v4().simple()));
    let store = FileStore::open(&dir).unwrap();
    let version = store
        .write(
            Record::new("kept", b"1".to_vec()).metadata("m", true),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    // A second store on the same directory in this process shares the file
    // (bbolt, and redb, refuse a second open).
    let second = FileStore::open(&dir).unwrap();
    assert_eq!(
        second.read("kept", ReadOptions::default()).await.unwrap()[0].version,
        version
    );
    drop((store, second));
    let reopened = FileStore::open(&dir).unwrap();
    let record = reopened.read("kept", ReadOptions::default()).await.unwrap().remove(0);
    assert_eq!((record.value.as_slice(), record.version), (&b"1"[..], version));
    assert_eq!(record.metadata["m"], true);
    let next = reopened
        .write(Record::new("new", b"2".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    assert!(next > version, "versions go on increasing across opens");
    assert!(dir.join("micro.redb").exists(), "one file per database");
    reopened
        .write(
            Record::new("k", b"x".to_vec()),
            WriteOptions::default().scope("go.micro-srv", "t"),
        )
        .await
        .unwrap();
    assert!(dir.join("go_micro_srv.redb").exists(), "names mapped as Go maps them");
    let bad = reopened
        .write(
            Record::new("k", b"x".to_vec()),
            WriteOptions::default().scope("..", "t"),
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::InvalidName(_)), "{bad:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn keys_seen_by_a_list_match_the_model_of_writes() {
    // Quick sanity of ordering across many keys on both embedded stores.
    for store in [memory().await, file().await] {
        let mut model = BTreeSet::new();
        for i in 0..200u32 {
            let key = format!("{:x}", i.wrapping_mul(2_654_435_761));
            model.insert(key.clone());
            store
                .write(Record::new(key, b"x".to_vec()), WriteOptions::default())
                .await
                .unwrap();
        }
        let listed = list(&*store, ListOptions::default()).await;
        assert_eq!(listed, model.into_iter().collect::<Vec<_>>(), "{}", store.name());
    }
}
