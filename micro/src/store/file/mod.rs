//! The file store, the default: one redb file per database under the
//! store's directory (`<dir>/<database>.redb`), a redb table per table,
//! every write committed to disk before it returns (crash-safe: a write
//! that returned survives a kill), versions counted per file.
//!
//! Go Micro's bbolt file can be opened by one handle at a time; here every
//! `FileStore` of a process on the same directory shares one handle per
//! file, so any number of tasks and stores use it at once. Expired records
//! are deleted by the writes that come after them (an index by expiry
//! finds them), not only hidden.

mod handles;
mod row;

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};

use self::handles::Db;
use super::clock::Clock;
use super::names::mapped;
use super::options::{Condition, Table, TableRef};
use super::{
    Change, DeleteOptions, Filter, ListOptions, ReadOptions, Record, Scope, Store, StoreError, Watch, WriteOptions,
};
use crate::BoxFuture;

/// The last version given in a file.
const META: TableDefinition<&str, u64> = TableDefinition::new("micro_meta");
/// At most this many expired records are deleted by one write.
const PURGE_BATCH: usize = 256;

/// A table's records, by key.
fn records(table: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(table)
}

/// A table's keys by expiry.
fn expiries(name: &str) -> TableDefinition<'_, (u64, &'static str), ()> {
    TableDefinition::new(name)
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: "file",
        message: error.to_string(),
    }
}

/// A store kept in files. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    defaults: Table,
    clock: Clock,
    /// The files opened, by mapped database name.
    files: Mutex<std::collections::HashMap<String, Arc<Db>>>,
    /// The store's own table's names and file, found once.
    default: (Arc<Names>, Arc<Db>),
}

/// A table's names in its file.
#[derive(Debug)]
struct Names {
    database: String,
    records: String,
    expiries: String,
}

impl Names {
    fn of(at: TableRef<'_>) -> Result<Names, StoreError> {
        let table = mapped(at.table)?;
        Ok(Names {
            database: mapped(at.database)?,
            records: format!("records_{table}"),
            expiries: format!("expiries_{table}"),
        })
    }
}

impl FileStore {
    /// The store in `dir` (created if need be), its default database and
    /// table `micro`; the default database's file is opened now.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        FileStore::with_defaults(dir, Table::default())
    }

    /// The store in `dir` with these default database and table.
    pub fn with_defaults(dir: impl Into<PathBuf>, defaults: Table) -> Result<FileStore, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        let names = Arc::new(Names::of(Scope::default().resolve(&defaults))?);
        let db = handles::open(&dir.join(format!("{}.redb", names.database)))?;
        let files = std::collections::HashMap::from([(names.database.clone(), Arc::clone(&db))]);
        Ok(FileStore {
            inner: Arc::new(Inner {
                dir,
                defaults,
                clock: Clock::new(),
                files: Mutex::new(files),
                default: (names, db),
            }),
        })
    }

    /// The file of `database` (a mapped name), opened if it was not.
    fn file(&self, database: &str) -> Result<Arc<Db>, StoreError> {
        let mut files = self.inner.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = files.get(database) {
            return Ok(Arc::clone(db));
        }
        let db = handles::open(&self.inner.dir.join(format!("{database}.redb")))?;
        files.insert(database.to_owned(), Arc::clone(&db));
        Ok(db)
    }

    /// The names and the file of `scope`'s table.
    fn locate(&self, scope: &Scope) -> Result<(Arc<Names>, Arc<Db>), StoreError> {
        if scope.is_store_default() {
            let (names, db) = &self.inner.default;
            return Ok((Arc::clone(names), Arc::clone(db)));
        }
        let names = Names::of(scope.resolve(&self.inner.defaults))?;
        let db = self.file(&names.database)?;
        Ok((Arc::new(names), db))
    }

    fn read_now(&self, key: &str, options: &ReadOptions) -> Result<Vec<Record>, StoreError> {
        let (names, db) = self.locate(&options.scope)?;
        let now = self.inner.clock.now();
        let tx = db.redb.begin_read().map_err(failed)?;
        let not_found = || StoreError::NotFound { key: key.to_owned() };
        let table = match tx.open_table(records(&names.records)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) if options.is_exact() => return Err(not_found()),
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(failed(e)),
        };
        if options.is_exact() {
            let row = table.get(key).map_err(failed)?.ok_or_else(not_found)?;
            let record = row::decode(key, row.value())?;
            return if record.is_expired(now) {
                Err(not_found())
            } else {
                Ok(vec![record])
            };
        }
        let filter = options.filter(key);
        let mut out = Vec::new();
        scan(&table, &filter, now, |key, row| {
            out.push(row::decode(key, row)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn list_now(&self, options: &ListOptions) -> Result<Vec<String>, StoreError> {
        let (names, db) = self.locate(&options.scope)?;
        let now = self.inner.clock.now();
        let tx = db.redb.begin_read().map_err(failed)?;
        let table = match tx.open_table(records(&names.records)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(failed(e)),
        };
        let mut out = Vec::new();
        scan(&table, &options.filter, now, |key, _| {
            out.push(key.to_owned());
            Ok(())
        })?;
        Ok(out)
    }

    async fn write_record(&self, record: Record, options: WriteOptions) -> Result<u64, StoreError> {
        if record.key.is_empty() {
            return Err(StoreError::InvalidName("an empty key".to_owned()));
        }
        let (names, db) = self.locate(&options.scope)?;
        let now = self.inner.clock.now();
        let expiry = options.expiry_of(record.expiry, now);
        let condition = options.condition;
        let table = Table::new(names.database.clone(), names.records.clone());
        let (db, record, version) = blocking(move || {
            let version = write(&db, &names, &record, expiry, condition, now)?;
            Ok((db, record, version))
        })
        .await?;
        db.watchers.send(
            || table,
            || {
                Change::Put(Record {
                    expiry,
                    version,
                    ..record
                })
            },
        );
        Ok(version)
    }

    async fn delete_key(&self, key: &str, options: DeleteOptions) -> Result<(), StoreError> {
        let (names, db) = self.locate(&options.scope)?;
        let now = self.inner.clock.now();
        let table = Table::new(names.database.clone(), names.records.clone());
        let owned = key.to_owned();
        let (db, deleted) = blocking(move || {
            let deleted = delete(&db, &names, &owned, &options, now)?;
            Ok((db, deleted))
        })
        .await?;
        if deleted {
            db.watchers.send(|| table, || Change::Delete { key: key.to_owned() });
        }
        Ok(())
    }
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(failed)?
}

/// Calls `each` with the live rows `filter` selects, ascending.
fn scan(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    filter: &Filter,
    now: SystemTime,
    mut each: impl FnMut(&str, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let lower = filter.start().map_or(Bound::Unbounded, Bound::Included);
    let rows = table.range((lower, Bound::Unbounded)).map_err(failed)?;
    let (mut matched, mut given) = (0, 0);
    for row in rows {
        let (key, value) = row.map_err(failed)?;
        let (key, value) = (key.value(), value.value());
        if filter.is_past(key) || (filter.limit != 0 && given == filter.limit) {
            break;
        }
        if filter.matches(key) && row::head(key, value)?.is_live(now) {
            matched += 1;
            if matched > filter.offset {
                each(key, value)?;
                given += 1;
            }
        }
    }
    Ok(())
}

/// Writes `record` in one transaction, if `condition` holds: the version
/// it is given.
fn write(
    db: &Db,
    names: &Names,
    record: &Record,
    expiry: Option<SystemTime>,
    condition: Condition,
    now: SystemTime,
) -> Result<u64, StoreError> {
    let tx = db.redb.begin_write().map_err(failed)?;
    let version = {
        let mut rows = tx.open_table(records(&names.records)).map_err(failed)?;
        let mut by_expiry = tx.open_table(expiries(&names.expiries)).map_err(failed)?;
        purge(&mut rows, &mut by_expiry, now)?;
        let old = match rows.get(record.key.as_str()).map_err(failed)? {
            Some(row) => Some(row::head(&record.key, row.value())?),
            None => None,
        };
        condition.check(&record.key, old.filter(|h| h.is_live(now)).map(|h| h.version))?;
        let mut meta = tx.open_table(META).map_err(failed)?;
        let version = meta.get("version").map_err(failed)?.map_or(0, |v| v.value()) + 1;
        meta.insert("version", version).map_err(failed)?;
        if let Some(at) = old.and_then(|h| h.expiry) {
            by_expiry
                .remove((row::nanos(at), record.key.as_str()))
                .map_err(failed)?;
        }
        rows.insert(record.key.as_str(), row::encode(record, version, expiry)?.as_slice())
            .map_err(failed)?;
        if let Some(at) = expiry {
            by_expiry
                .insert((row::nanos(at), record.key.as_str()), ())
                .map_err(failed)?;
        }
        version
    };
    tx.commit().map_err(failed)?;
    Ok(version)
}

/// Deletes `key` in one transaction, if `options`' version matches: whether
/// there was a record.
fn delete(db: &Db, names: &Names, key: &str, options: &DeleteOptions, now: SystemTime) -> Result<bool, StoreError> {
    let tx = db.redb.begin_write().map_err(failed)?;
    let deleted = {
        let mut rows = tx.open_table(records(&names.records)).map_err(failed)?;
        let mut by_expiry = tx.open_table(expiries(&names.expiries)).map_err(failed)?;
        purge(&mut rows, &mut by_expiry, now)?;
        let old = match rows.remove(key).map_err(failed)? {
            Some(row) => Some(row::head(key, row.value())?),
            None => None,
        };
        options.check(key, old.filter(|h| h.is_live(now)).map(|h| h.version))?;
        if let Some(at) = old.and_then(|h| h.expiry) {
            by_expiry.remove((row::nanos(at), key)).map_err(failed)?;
        }
        old.is_some()
    };
    tx.commit().map_err(failed)?;
    Ok(deleted)
}

/// Deletes up to a batch of the records expired at `now`.
fn purge(
    rows: &mut redb::Table<&'static str, &'static [u8]>,
    by_expiry: &mut redb::Table<(u64, &'static str), ()>,
    now: SystemTime,
) -> Result<(), StoreError> {
    let mut expired: Vec<(u64, String)> = Vec::new();
    let past = by_expiry
        .range(..(row::nanos(now).saturating_add(1), ""))
        .map_err(failed)?;
    for entry in past.take(PURGE_BATCH) {
        let (key, _) = entry.map_err(failed)?;
        let (at, key) = key.value();
        expired.push((at, key.to_owned()));
    }
    for (at, key) in &expired {
        by_expiry.remove((*at, key.as_str())).map_err(failed)?;
        rows.remove(key.as_str()).map_err(failed)?;
    }
    Ok(())
}

impl Store for FileStore {
    fn read<'a>(&'a self, key: &'a str, options: ReadOptions) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move { self.read_now(key, &options) })
    }

    fn write(&self, record: Record, options: WriteOptions) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.write_record(record, options))
    }

    fn delete<'a>(&'a self, key: &'a str, options: DeleteOptions) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.delete_key(key, options))
    }

    fn list(&self, options: ListOptions) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move { self.list_now(&options) })
    }

    fn watch<'a>(&'a self, prefix: &'a str, scope: Scope) -> BoxFuture<'a, Result<Watch, StoreError>> {
        Box::pin(async move {
            let (names, db) = self.locate(&scope)?;
            Ok(db
                .watchers
                .watch(Table::new(names.database.as_str(), names.records.as_str()), prefix))
        })
    }

    fn name(&self) -> &'static str {
        "file"
    }
}
