//! The memory store: each table an ordered map in the process, gone with
//! it. Expired records are dropped as writes come (an index by expiry
//! finds them), not only hidden.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::clock::Clock;
use super::options::{Condition, Table, TableRef};
use super::watch::Watchers;
use super::{
    Change, DeleteOptions, Filter, ListOptions, ReadOptions, Record, Scope, Store, StoreError, Watch, WriteOptions,
};
use crate::BoxFuture;

/// A store in memory. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    defaults: Table,
    clock: Clock,
    tables: RwLock<Tables>,
    watchers: Watchers,
}

#[derive(Debug, Default)]
struct Tables {
    /// Rows by database, then table.
    databases: HashMap<String, HashMap<String, Rows>>,
    /// The last version given.
    version: u64,
}

/// A table's records, and their keys by expiry.
#[derive(Debug, Default)]
struct Rows {
    records: BTreeMap<String, Stored>,
    expiries: BTreeSet<(SystemTime, String)>,
}

#[derive(Debug)]
struct Stored {
    value: Vec<u8>,
    metadata: Map<String, Value>,
    expiry: Option<SystemTime>,
    version: u64,
}

impl Stored {
    fn record(&self, key: &str) -> Record {
        Record {
            key: key.to_owned(),
            value: self.value.clone(),
            metadata: self.metadata.clone(),
            expiry: self.expiry,
            version: self.version,
        }
    }

    fn is_live(&self, now: SystemTime) -> bool {
        self.expiry.is_none_or(|at| at > now)
    }
}

impl Rows {
    /// Drops the records expired at `now`.
    fn purge(&mut self, now: SystemTime) {
        while let Some(first) = self.expiries.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, key)) = self.expiries.pop_first() {
                self.records.remove(&key);
            }
        }
    }

    fn live(&self, key: &str, now: SystemTime) -> Option<&Stored> {
        self.records.get(key).filter(|s| s.is_live(now))
    }

    fn remove(&mut self, key: &str) -> Option<Stored> {
        let stored = self.records.remove(key)?;
        if let Some(at) = stored.expiry {
            self.expiries.remove(&(at, key.to_owned()));
        }
        Some(stored)
    }

    /// The live records `filter` selects, ascending.
    fn scan<'a>(&'a self, filter: &'a Filter, now: SystemTime) -> impl Iterator<Item = (&'a String, &'a Stored)> {
        let lower = filter.start().map_or(Bound::Unbounded, Bound::Included);
        let matching = self
            .records
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| !filter.is_past(key))
            .filter(move |(key, stored)| filter.matches(key) && stored.is_live(now));
        filter.page(matching)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store whose default database and table are `micro`.
    pub fn new() -> Self {
        MemoryStore::with_defaults(Table::default())
    }

    /// An empty store with these default database and table.
    pub fn with_defaults(defaults: Table) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                defaults,
                clock: Clock::new(),
                tables: RwLock::default(),
                watchers: Watchers::default(),
            }),
        }
    }

    fn tables(&self) -> RwLockReadGuard<'_, Tables> {
        self.inner.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn tables_mut(&self) -> RwLockWriteGuard<'_, Tables> {
        self.inner.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    fn scope<'a>(&'a self, scope: &'a Scope) -> TableRef<'a> {
        scope.resolve(&self.inner.defaults)
    }

    fn read_now(&self, key: &str, options: &ReadOptions) -> Result<Vec<Record>, StoreError> {
        let at = self.scope(&options.scope);
        let now = self.inner.clock.now();
        let tables = self.tables();
        let rows = tables.databases.get(at.database).and_then(|d| d.get(at.table));
        if options.is_exact() {
            return rows
                .and_then(|rows| rows.live(key, now))
                .map(|stored| vec![stored.record(key)])
                .ok_or_else(|| StoreError::NotFound { key: key.to_owned() });
        }
        let filter = options.filter(key);
        Ok(rows.map_or_else(Vec::new, |rows| {
            rows.scan(&filter, now)
                .map(|(key, stored)| stored.record(key))
                .collect()
        }))
    }

    fn write_now(&self, record: Record, options: &WriteOptions) -> Result<u64, StoreError> {
        if record.key.is_empty() {
            return Err(StoreError::InvalidName("an empty key".to_owned()));
        }
        let at = self.scope(&options.scope);
        let now = self.inner.clock.now();
        let expiry = options.expiry_of(record.expiry, now);
        let mut tables = self.tables_mut();
        tables.version += 1;
        let version = tables.version;
        let rows = tables
            .databases
            .entry(at.database.to_owned())
            .or_default()
            .entry(at.table.to_owned())
            .or_default();
        rows.purge(now);
        if options.condition != Condition::Always {
            options
                .condition
                .check(&record.key, rows.live(&record.key, now).map(|s| s.version))?;
        }
        if let Some(at) = expiry {
            rows.expiries.insert((at, record.key.clone()));
        }
        let stored = Stored {
            value: record.value,
            metadata: record.metadata,
            expiry,
            version,
        };
        self.inner
            .watchers
            .send(|| at.owned(), || Change::Put(stored.record(&record.key)));
        // One walk of the tree: the old record comes back from the insert.
        let key = record.key;
        let old_expiry = rows.records.get(&key).and_then(|old| old.expiry);
        if let Some(old) = old_expiry.filter(|old| Some(*old) != expiry) {
            rows.expiries.remove(&(old, key.clone()));
        }
        rows.records.insert(key, stored);
        Ok(version)
    }

    fn delete_now(&self, key: &str, options: &DeleteOptions) -> Result<(), StoreError> {
        let at = self.scope(&options.scope);
        let now = self.inner.clock.now();
        let mut tables = self.tables_mut();
        let Some(rows) = tables.databases.get_mut(at.database).and_then(|d| d.get_mut(at.table)) else {
            return options.check(key, None);
        };
        rows.purge(now);
        options.check(key, rows.live(key, now).map(|s| s.version))?;
        if rows.remove(key).is_some() {
            self.inner
                .watchers
                .send(|| at.owned(), || Change::Delete { key: key.to_owned() });
        }
        Ok(())
    }

    fn list_now(&self, options: &ListOptions) -> Vec<String> {
        let at = self.scope(&options.scope);
        let now = self.inner.clock.now();
        let tables = self.tables();
        tables
            .databases
            .get(at.database)
            .and_then(|d| d.get(at.table))
            .map_or_else(Vec::new, |rows| {
                rows.scan(&options.filter, now).map(|(key, _)| key.clone()).collect()
            })
    }
}

impl Store for MemoryStore {
    fn read<'a>(&'a self, key: &'a str, options: ReadOptions) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move { self.read_now(key, &options) })
    }

    fn write(&self, record: Record, options: WriteOptions) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { self.write_now(record, &options) })
    }

    fn delete<'a>(&'a self, key: &'a str, options: DeleteOptions) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.delete_now(key, &options) })
    }

    fn list(&self, options: ListOptions) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move { Ok(self.list_now(&options)) })
    }

    fn watch<'a>(&'a self, prefix: &'a str, scope: Scope) -> BoxFuture<'a, Result<Watch, StoreError>> {
        Box::pin(async move { Ok(self.inner.watchers.watch(self.scope(&scope).owned(), prefix)) })
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
