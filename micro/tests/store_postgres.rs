//! The PostgreSQL store's safety and outage behaviour (RELIABILITY.md R25),
//! and Go Micro's table shared both ways, against a real server (`netns-run
//! --services postgres`): hostile names never reach SQL unmapped; rows
//! written in Go's layout by plain SQL are read, and micro's rows read back
//! as Go reads them; serialization failures are retried; a server restart
//! fails calls within 5 s and the pool recovers within 5 s of its return.
#![cfg(feature = "postgres")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro::store::{ListOptions, PostgresStore, ReadOptions, Record, Store, StoreError, Table, WriteOptions};
use tokio_postgres::NoTls;

fn url() -> String {
    std::env::var("MICRO_TEST_POSTGRES_URL")
        .expect("MICRO_TEST_POSTGRES_URL: run inside `netns-run --services postgres`")
}

async fn sql() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Held by each test: one of them stops the server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
async fn hostile_names_are_mapped_or_refused_before_any_sql() {
    let _one = ONE_AT_A_TIME.lock().await;
    let store = PostgresStore::connect(&url()).await.unwrap();
    let suffix = unique("");
    let hostile = format!("a\"; DROP SCHEMA public; --{suffix}");
    store
        .write(
            Record::new("k", b"v".to_vec()),
            WriteOptions::default().scope(hostile.as_str(), "t t"),
        )
        .await
        .unwrap();
    let db = sql().await;
    let schema = format!("a_drop_schema_public_{suffix}");
    let row = db
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 't_t'",
            &[&schema],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the table is in the mapped schema");
    let public = db
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'public'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(public.get::<_, i64>(0), 1, "nothing was dropped");
    for (database, table) in [
        ("x".repeat(100), "t".to_owned()),
        ("ok".to_owned(), ";".to_owned()),
        ("9lives".to_owned(), "t".to_owned()),
    ] {
        let err = store
            .write(
                Record::new("k", b"v".to_vec()),
                WriteOptions::default().scope(database.as_str(), table.as_str()),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidName(_)), "{database}/{table}: {err:?}");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
async fn go_micros_rows_and_micros_rows_are_one_table() {
    let _one = ONE_AT_A_TIME.lock().await;
    let database = unique("go");
    let store = PostgresStore::with_defaults(&url(), Table::new(database.as_str(), "records"))
        .await
        .unwrap();
    // micro makes the table (Go's DDL), then Go's store writes as it does:
    // its upsert, metadata always an object, expiry absolute.
    store.list(ListOptions::default()).await.unwrap();
    let db = sql().await;
    let table = format!("{database}.records");
    let upsert = format!(
        "INSERT INTO {table} (key, value, metadata, expiry) VALUES ($1, $2::bytea, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, metadata = EXCLUDED.metadata, expiry = EXCLUDED.expiry"
    );
    let metadata = serde_json::json!({"owner": "go", "n": 1.5});
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    let past = std::time::SystemTime::now() - Duration::from_secs(1);
    let rows: [(&str, &[u8], Option<std::time::SystemTime>); 4] = [
        ("go/1", b"one", None),
        ("go/2", b"two", Some(later)),
        ("go/old", b"gone", Some(past)),
        ("go_3", b"three", None),
    ];
    for (key, value, expiry) in rows {
        db.execute(&upsert, &[&key, &value, &metadata, &expiry]).await.unwrap();
    }
    db.execute(
        &format!("INSERT INTO {table} (key, value, metadata) VALUES ('go/null', NULL, NULL)"),
        &[],
    )
    .await
    .unwrap();

    let read = store.read("go/", ReadOptions::default().prefix()).await.unwrap();
    let keys: Vec<&str> = read.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["go/1", "go/2", "go/null"], "expired rows hidden, `/` not `_`");
    assert_eq!(read[0].value, b"one");
    assert_eq!(read[0].metadata["owner"], "go");
    let left = read[1].remaining().unwrap();
    assert!(left > Duration::from_secs(3500), "{left:?}");
    assert!(
        read[2].value.is_empty() && read[2].metadata.is_empty(),
        "NULLs read as empty"
    );

    // micro's writes, read back the way Go's store reads them.
    store
        .write(
            Record::new("micro/1", b"\x00bin".to_vec()).metadata("by", "micro"),
            WriteOptions::default().ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    store
        .write(Record::new("micro/2", b"x".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    let row = db
        .query_one(
            &format!("SELECT key, value, metadata, expiry FROM {table} WHERE key = 'micro/1'"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<u8>>(1), b"\x00bin");
    assert_eq!(row.get::<_, serde_json::Value>(2), serde_json::json!({"by": "micro"}));
    let expiry: std::time::SystemTime = row.get(3);
    assert!(expiry > std::time::SystemTime::now(), "WriteTTL sets the expiry column");
    let empty = db
        .query_one(&format!("SELECT metadata FROM {table} WHERE key = 'micro/2'"), &[])
        .await
        .unwrap();
    assert_eq!(
        empty.get::<_, serde_json::Value>(0),
        serde_json::json!({}),
        "never NULL metadata"
    );
    // Go's list query (core postgres store): LIKE prefix%suffix, ordered.
    let listed = db
        .query(
            &format!("SELECT key FROM {table} WHERE key LIKE $1 ORDER BY key ASC"),
            &[&"micro/%"],
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);

    // An expired row is hidden; a live one of the same key in another table
    // is untouched (Go deletes the key from the default table).
    let other = PostgresStore::with_defaults(&url(), Table::new(database.as_str(), "micro"))
        .await
        .unwrap();
    other
        .write(Record::new("go/old", b"keep".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    assert!(
        store
            .read("go/old", ReadOptions::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        other.read("go/old", ReadOptions::default()).await.unwrap()[0].value,
        b"keep"
    );
}

/// Writers on a SERIALIZABLE session (CockroachDB's only isolation) get
/// serialization failures; the store retries them, so its callers see
/// conflicts at most, and no increment is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
async fn serialization_failures_are_retried() {
    let _one = ONE_AT_A_TIME.lock().await;
    let serializable = format!("{}?options=-c%20default_transaction_isolation%3Dserializable", url());
    let table = Table::new(unique("ser"), "micro");
    let store: Arc<dyn Store> = Arc::new(PostgresStore::with_defaults(&serializable, table).await.unwrap());
    store.put("n", &0u64).await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..20 {
                    loop {
                        let record = store.get_record("n", ReadOptions::default()).await.unwrap();
                        let n: u64 = serde_json::from_slice(&record.value).unwrap();
                        let options = WriteOptions::default().if_version(record.version);
                        match store.put_with("n", &(n + 1), options).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => {}
                            Err(e) => panic!("only conflicts reach the caller: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get::<u64>("n").await.unwrap(), 120);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
async fn expired_rows_are_deleted_from_their_own_table_only() {
    let _one = ONE_AT_A_TIME.lock().await;
    let database = unique("sweep");
    let a = PostgresStore::with_defaults(&url(), Table::new(database.as_str(), "a"))
        .await
        .unwrap();
    let b = PostgresStore::with_defaults(&url(), Table::new(database.as_str(), "b"))
        .await
        .unwrap();
    // Both tables made, then an expired row written into each as Go would.
    a.list(ListOptions::default()).await.unwrap();
    b.list(ListOptions::default()).await.unwrap();
    let db = sql().await;
    let past = std::time::SystemTime::now() - Duration::from_secs(5);
    for table in ["a", "b"] {
        db.execute(
            &format!("INSERT INTO {database}.{table} (key, value, metadata, expiry) VALUES ('old', 'x', '{{}}', $1)"),
            &[&past],
        )
        .await
        .unwrap();
    }
    let count = |table: &'static str| {
        let (db, database) = (&db, database.clone());
        async move {
            db.query_one(
                &format!("SELECT count(*) FROM {database}.{table} WHERE key = 'old'"),
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    // A write to `a` sweeps `a`, in a task of its own.
    a.write(Record::new("new", b"y".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    while count("a").await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the expired row of `a` is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count("b").await, 1, "`b` is not swept by a write to `a`");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
async fn a_watch_sees_every_writer_and_big_values() {
    let _one = ONE_AT_A_TIME.lock().await;
    let database = unique("watch");
    let store = PostgresStore::with_defaults(&url(), Table::new(database.as_str(), "micro"))
        .await
        .unwrap();
    let mut watch = store.watch("w/", micro::store::Scope::default()).await.unwrap();
    let big = vec![7u8; 20_000];
    let version = store
        .write(
            Record::new("w/big", big.clone()).metadata("size", "big"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let db = sql().await;
    let table = format!("{database}.micro");
    db.execute(
        &format!("INSERT INTO {table} (key, value, metadata) VALUES ('w/go', 'from go'::bytea, '{{}}')"),
        &[],
    )
    .await
    .unwrap();
    let go_version = store.read("w/go", ReadOptions::default()).await.unwrap()[0].version;
    db.execute(&format!("DELETE FROM {table} WHERE key = 'w/go'"), &[])
        .await
        .unwrap();
    match next(&mut watch).await {
        micro::store::Change::Put(record) => {
            assert_eq!(record.value, big, "too big for a notice: read");
            assert_eq!(record.version, version);
            assert_eq!(record.metadata["size"], "big");
        }
        other => panic!("{other:?}"),
    }
    match next(&mut watch).await {
        micro::store::Change::Put(record) => {
            assert_eq!(
                (record.key.as_str(), record.value.as_slice()),
                ("w/go", &b"from go"[..])
            );
            assert_eq!(record.version, go_version, "the notice's version is the row's xmin");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        next(&mut watch).await,
        micro::store::Change::Delete { key: "w/go".into() }
    );
}

/// The next change, within 5 s.
async fn next(watch: &mut micro::store::Watch) -> micro::store::Change {
    tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a change within 5 s")
        .expect("the watch is live")
        .unwrap()
}

/// The server as the test harness started it, to stop and start again.
struct Server {
    data: String,
    options: String,
}

impl Server {
    async fn find() -> Server {
        let db = sql().await;
        let show = |name: &'static str| {
            let db = &db;
            async move {
                db.query_one(&format!("SHOW {name}"), &[])
                    .await
                    .unwrap()
                    .get::<_, String>(0)
            }
        };
        let data = show("data_directory").await;
        let options = format!(
            "-c listen_addresses={} -c port={} -k {} -c fsync=off",
            show("listen_addresses").await,
            show("port").await,
            show("unix_socket_directories").await
        );
        Server { data, options }
    }

    fn pg_ctl(&self, args: &str) {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/pg_ctl"))
            .find(|p| p.exists())
            .expect("pg_ctl");
        let command = format!("{} -D {} {args}", bin.display(), self.data);
        let status = std::process::Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", &command])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
async fn a_restart_fails_calls_fast_and_the_pool_recovers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let store = PostgresStore::with_defaults(&url(), Table::new(unique("restart"), "micro"))
        .await
        .unwrap();
    store
        .write(Record::new("k", b"before".to_vec()), WriteOptions::default())
        .await
        .unwrap();
    let server = Server::find().await;
    server.pg_ctl("-m fast -w stop");
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.read("k", ReadOptions::default()).await;
        assert!(result.is_err(), "the server is down");
        assert!(
            started.elapsed() < Duration::from_millis(5500),
            "failed after {:?}",
            started.elapsed()
        );
    }
    server.pg_ctl(&format!(
        "-w -l {}/restart.log -o \"{}\" start",
        server.data, server.options
    ));
    let back = Instant::now();
    loop {
        match store.read("k", ReadOptions::default()).await {
            Ok(records) => {
                assert_eq!(records[0].value, b"before");
                break;
            }
            Err(e) => {
                assert!(
                    back.elapsed() < Duration::from_secs(5),
                    "not recovered 5 s after the server returned: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    store
        .write(Record::new("k", b"after".to_vec()), WriteOptions::default())
        .await
        .unwrap();
}
