//! Property tests (RELIABILITY.md R23): random sequences of writes
//! (plain, create-only, if-version), deletes, reads and lists, run on each
//! backend and on a `BTreeMap` model; every answer must be the model's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use micro::store::{DeleteOptions, FileStore, ListOptions, MemoryStore, ReadOptions, Record, Store, WriteOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// What a conditional write or delete names.
#[derive(Clone, Copy, Debug)]
enum Version {
    /// The key's version as the model has it.
    Current,
    /// One the store never gave.
    Stale,
}

#[derive(Clone, Debug)]
enum Op {
    Write {
        key: String,
        value: u8,
        create_only: bool,
        version: Option<Version>,
        other_table: bool,
    },
    Delete {
        key: String,
        version: Option<Version>,
    },
    Read {
        key: String,
        prefix: bool,
        suffix: bool,
        offset: usize,
        limit: usize,
    },
    List {
        prefix: Option<String>,
        suffix: Option<String>,
        offset: usize,
        limit: usize,
        other_table: bool,
    },
}

/// Short keys over a few characters, `%`, `_` and `\` among them, so that
/// prefixes and suffixes overlap often and LIKE-like characters appear.
fn key() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab_%\\\\]{1,3}").expect("a valid regex")
}

fn version() -> impl Strategy<Value = Option<Version>> {
    prop_oneof![Just(None), Just(Some(Version::Current)), Just(Some(Version::Stale))]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), any::<u8>(), any::<bool>(), version(), proptest::bool::weighted(0.2)).prop_map(
            |(key, value, create_only, version, other_table)| Op::Write { key, value, create_only, version, other_table }
        ),
        2 => (key(), version()).prop_map(|(key, version)| Op::Delete { key, version }),
        2 => (key(), any::<bool>(), any::<bool>(), 0..4usize, 0..4usize)
            .prop_map(|(key, prefix, suffix, offset, limit)| Op::Read { key, prefix, suffix, offset, limit }),
        2 => (proptest::option::of(key()), proptest::option::of(key()), 0..4usize, 0..4usize, proptest::bool::weighted(0.2))
            .prop_map(|(prefix, suffix, offset, limit, other_table)| Op::List { prefix, suffix, offset, limit, other_table }),
    ]
}

/// The model: value and version by table and key.
type Model = BTreeMap<(bool, String), (Vec<u8>, u64)>;

const STALE: u64 = u64::MAX / 3;

fn wanted(model: &Model, other: bool, key: &str, version: Option<Version>) -> Option<u64> {
    version.map(|v| match (v, model.get(&(other, key.to_owned()))) {
        (Version::Current, Some((_, current))) => *current,
        _ => STALE,
    })
}

fn page<T>(items: impl Iterator<Item = T>, offset: usize, limit: usize) -> Vec<T> {
    let limit = if limit == 0 { usize::MAX } else { limit };
    items.skip(offset).take(limit).collect()
}

/// Runs `ops` on `store` (tables `table` and `table`+`_b`) and the model.
async fn check(store: &dyn Store, table: &str, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    let other_table = format!("{table}_b");
    let scope = |other: bool| if other { other_table.clone() } else { table.to_owned() };
    for op in ops {
        match op {
            Op::Write {
                key,
                value,
                create_only,
                version,
                other_table,
            } => {
                let mut options = WriteOptions::default().table(scope(*other_table));
                let wanted = wanted(&model, *other_table, key, *version);
                if *create_only {
                    options = options.create_only();
                } else if let Some(v) = wanted {
                    options = options.if_version(v);
                }
                let exists = model.contains_key(&(*other_table, key.clone()));
                let allowed = if *create_only {
                    !exists
                } else {
                    wanted.is_none_or(|v| v != STALE && exists)
                };
                let result = store.write(Record::new(key.clone(), vec![*value]), options).await;
                match result {
                    Ok(version) => {
                        prop_assert!(allowed, "{op:?} was written");
                        if let Some((_, old)) = model.get(&(*other_table, key.clone())) {
                            prop_assert!(version > *old, "{op:?}: version {version} after {old}");
                        }
                        model.insert((*other_table, key.clone()), (vec![*value], version));
                    }
                    Err(e) => prop_assert!(!allowed && e.is_conflict(), "{op:?}: {e}"),
                }
            }
            Op::Delete { key, version } => {
                let wanted = wanted(&model, false, key, *version);
                let mut options = DeleteOptions::default().table(scope(false));
                if let Some(v) = wanted {
                    options = options.if_version(v);
                }
                let exists = model.contains_key(&(false, key.clone()));
                let allowed = wanted.is_none_or(|v| v != STALE && exists);
                match store.delete(key, options).await {
                    Ok(()) => {
                        prop_assert!(allowed, "{op:?} deleted");
                        model.remove(&(false, key.clone()));
                    }
                    Err(e) => prop_assert!(!allowed && e.is_conflict(), "{op:?}: {e}"),
                }
            }
            Op::Read {
                key,
                prefix,
                suffix,
                offset,
                limit,
            } => {
                let mut options = ReadOptions::default().table(scope(false)).offset(*offset).limit(*limit);
                if *prefix {
                    options = options.prefix();
                }
                if *suffix {
                    options = options.suffix();
                }
                let got = store.read(key, options).await;
                if !*prefix && !*suffix {
                    match (model.get(&(false, key.clone())), got) {
                        (Some((value, version)), Ok(records)) => {
                            prop_assert_eq!(records.len(), 1);
                            prop_assert_eq!(&records[0].value, value);
                            prop_assert_eq!(records[0].version, *version);
                        }
                        (None, Err(e)) => prop_assert!(e.is_not_found(), "{op:?}: {e}"),
                        (expected, got) => prop_assert!(false, "{op:?}: expected {expected:?}, got {got:?}"),
                    }
                    continue;
                }
                let matching = model
                    .iter()
                    .filter(|((other, k), _)| {
                        !*other && (!*prefix || k.starts_with(key.as_str())) && (!*suffix || k.ends_with(key.as_str()))
                    })
                    .map(|((_, k), (value, _))| (k.clone(), value.clone()));
                let expected = page(matching, *offset, *limit);
                let got: Vec<(String, Vec<u8>)> = got
                    .map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?
                    .into_iter()
                    .map(|r| (r.key, r.value))
                    .collect();
                prop_assert_eq!(got, expected, "{:?}", op);
            }
            Op::List {
                prefix,
                suffix,
                offset,
                limit,
                other_table,
            } => {
                let mut options = ListOptions::default()
                    .table(scope(*other_table))
                    .offset(*offset)
                    .limit(*limit);
                if let Some(p) = prefix {
                    options = options.prefix(p.clone());
                }
                if let Some(s) = suffix {
                    options = options.suffix(s.clone());
                }
                let matching = model
                    .keys()
                    .filter(|(other, k)| {
                        other == other_table
                            && prefix.as_deref().is_none_or(|p| k.starts_with(p))
                            && suffix.as_deref().is_none_or(|s| k.ends_with(s))
                    })
                    .map(|(_, k)| k.clone());
                let expected = page(matching, *offset, *limit);
                let got = store
                    .list(options)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
                prop_assert_eq!(got, expected, "{:?}", op);
            }
        }
    }
    Ok(())
}

/// 1,000 sequences on the store `open` gives, each on tables of its own.
fn run_model(open: impl Fn() -> Arc<dyn Store>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = open();
    let case = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..14), |ops| {
            let table = format!("case{}", case.fetch_add(1, Ordering::Relaxed));
            runtime.block_on(check(&*store, &table, &ops))
        })
        .unwrap();
}

#[test]
fn the_memory_store_behaves_as_the_model() {
    run_model(|| Arc::new(MemoryStore::new()));
}

#[test]
fn the_file_store_behaves_as_the_model() {
    let dir = std::env::temp_dir().join(format!("micro-store-model-{}", uuid::Uuid::new_v4().simple()));
    run_model(|| Arc::new(FileStore::open(&dir).unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[test]
#[ignore = "needs PostgreSQL: MICRO_TEST_POSTGRES_URL (netns-run --services postgres)"]
fn the_postgres_store_behaves_as_the_model() {
    let url = std::env::var("MICRO_TEST_POSTGRES_URL").expect("MICRO_TEST_POSTGRES_URL");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = format!("model{}", uuid::Uuid::new_v4().simple());
    let store = runtime
        .block_on(micro::store::PostgresStore::with_defaults(
            &url,
            micro::store::Table::new(database, "micro"),
        ))
        .unwrap();
    drop(runtime);
    run_model(move || Arc::new(store.clone()));
}

#[cfg(feature = "redis")]
#[test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
fn the_redis_store_behaves_as_the_model() {
    let url = std::env::var("MICRO_TEST_REDIS_URL").expect("MICRO_TEST_REDIS_URL");
    // The connection's task runs on this runtime, kept for the whole run
    // (run_model drives the store from a runtime of its own).
    let connection = tokio::runtime::Runtime::new().unwrap();
    let database = format!("model{}", uuid::Uuid::new_v4().simple());
    let store = connection
        .block_on(micro::store::RedisStore::with_defaults(
            &url,
            micro::store::Table::new(database, "micro"),
        ))
        .unwrap();
    run_model(move || Arc::new(store.clone()));
    drop(connection);
}
