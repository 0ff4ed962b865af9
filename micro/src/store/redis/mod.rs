//! The Redis store: Go Micro's redis store's layout, so that Go and micro
//! services share records, with what Go's lacks kept beside it (metadata,
//! versions, an ordered index), each call one atomic Lua script.
//!
//! # Layout
//!
//! - **The value** of key `K` in table `T` of the database `micro` is the
//!   string at `TK` (Go's key: table and key, no separator), the raw bytes,
//!   its expiry the key's TTL: a Go Micro redis store with table `T` reads
//!   what micro writes, and micro reads what it writes. Go ignores the
//!   database, so no Go store reads another one: there the value is at
//!   `~micro-store:value:<len(D)>:D:<len(T)>:T:K`, which no other database,
//!   table and key can spell.
//! - **Metadata and version** (Go drops metadata): a hash at
//!   `~micro-store:meta:` + the value's key, with `version`, `metadata` (a
//!   JSON object), `sha1` (of the value it was written with) and `table`,
//!   expiring with the value.
//! - **The index**: a sorted set per database and table,
//!   `~micro-store:index:<len(D)>:D:T`, of the keys (score 0, so
//!   `ZRANGEBYLEX` gives them ascending, and a prefix as a range); and
//!   `~micro-store:expiry:<len(D)>:D:T`, the keys that expire by when, so
//!   that writes forget records gone by expiry, as the memory store does.
//! - **Versions**: a counter per database, `~micro-store:version:D`.
//!
//! micro's keys start with `~`, not `micro`: Go's prefix read of table `T`
//! (the redis store plugin v1.2.0) is `KEYS T<prefix>*`, and the default
//! table is `micro`, so Go's reads never find them; a Go store whose table
//! starts with `~` would. Go's `List` is `KEYS *` whatever its options: it
//! lists every key of the Redis database, micro's included, table in front.
//!
//! Go's layout runs names together: in the database `micro`, key `bc` of
//! table `a` and key `c` of table `ab` are both `abc` (and Go's prefix read
//! of table `a` finds table `ab`'s keys). micro keeps them apart as far as one
//! Redis key allows: the hash names the table that wrote the value, so the
//! other table reads no record there, and a write to it fails
//! ([`StoreError::InvalidName`]) rather than overwrite the other table's
//! record. Other databases have no such overlap.
//!
//! # What Go writes
//!
//! A value Go wrote has no hash (or one written for other bytes, when Go
//! wrote over micro's value; it is then dropped): it reads with version 0
//! and no metadata. A write or delete conditional on version 0 goes ahead
//! on it, create-only does not; micro's first write gives it a version.
//! Go's records are not in the index, so a list or a prefix or suffix read
//! finds them only once micro has written or read them by key (an exact
//! read indexes what it finds). Listing by `SCAN` would find them, but
//! unordered, walking the whole keyspace on every call, and blind to which
//! table a key is in.
//!
//! # Semantics
//!
//! Those of every store ([`crate::store`]): reads and lists are one script
//! each, walking the index in key order and skipping (and dropping) keys
//! whose value has expired or was deleted, so `limit` and `offset` count
//! live matches. Expiry is the server's: a record is gone when Redis says
//! its TTL is up, to the millisecond (a TTL is sent as `PX`, an expiry as
//! `PXAT`; one past the year 9999 is none). Versions increase per database,
//! conditional writes and deletes check and act in one script.
//!
//! Not done: [`Store::watch`] (unsupported: Redis would have to be set up
//! for keyspace notifications, and Go's writes would still go unseen);
//! Redis Cluster (the scripts reach keys found in the index, which Cluster
//! does not allow). A read, list or write runs a Lua script that blocks
//! Redis while it walks: a suffix filter or a large offset walks the table.
//!
//! Needs Redis 6.2 or later (`SET .. PXAT`). Every request has a 5 s
//! timeout: during an outage calls fail, they do not hang.

mod keys;
mod scripts;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use ::redis::aio::ConnectionManager;
use ::redis::{Client, FromRedisValue, ScriptInvocation};
use serde_json::{Map, Value};
use tracing::debug;

use self::keys::{Expiry, Names, bounds, expiry_from};
use self::scripts::Scripts;
use super::options::{Condition, Table};
use super::{DeleteOptions, Filter, ListOptions, ReadOptions, Record, Scope, Store, StoreError, WriteOptions};
use crate::BoxFuture;

/// The backend's name, in errors and logs.
const BACKEND: &str = "redis";

/// A record as the read and scan scripts return it: key, value, version,
/// metadata JSON (empty: none) and expiry (ms since 1970, negative: never).
type Row = (String, Vec<u8>, String, Vec<u8>, i64);

/// A store in Redis (6.2 or later), in Go Micro's redis store's layout.
/// Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    manager: ConnectionManager,
    scripts: Arc<Scripts>,
    defaults: Arc<Table>,
    /// The keys of the store's own table.
    default_names: Arc<Names>,
}

impl RedisStore {
    /// Connects to the Redis server at `url`
    /// (`redis://[user:password@]host:port[/db]`); the default database
    /// and table are `micro`.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::with_defaults(url, Table::default()).await
    }

    /// Connects to the Redis server at `url`, with these default database
    /// and table.
    pub async fn with_defaults(url: &str, defaults: Table) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(failed)?;
        let manager = crate::redis_link::manager(client).await.map_err(failed)?;
        debug!(database = %defaults.database, table = %defaults.table, "redis store connected");
        let default_names = Arc::new(Names::of(Scope::default().resolve(&defaults)));
        Ok(RedisStore {
            manager,
            scripts: Arc::new(Scripts::new()),
            defaults: Arc::new(defaults),
            default_names,
        })
    }

    /// The keys of `scope`'s table (those of the store's own, made once).
    fn names(&self, scope: &Scope) -> Arc<Names> {
        if scope.is_store_default() {
            return Arc::clone(&self.default_names);
        }
        Arc::new(Names::of(scope.resolve(&self.defaults)))
    }

    async fn invoke<T: FromRedisValue>(&self, script: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        let mut conn = self.manager.clone();
        crate::redis_link::bounded(script.invoke_async(&mut conn))
            .await
            .map_err(failed)
    }

    async fn read_now(&self, key: &str, options: &ReadOptions) -> Result<Vec<Record>, StoreError> {
        let names = self.names(&options.scope);
        if options.is_exact() {
            if key.is_empty() {
                // No record has it; Go's key would be the table's name.
                return Err(StoreError::NotFound { key: key.to_owned() });
            }
            let mut script = self.scripts.read.key(&names.index);
            script
                .key(&names.expiries)
                .arg(&names.value)
                .arg(&names.meta)
                .arg(&names.table)
                .arg(key);
            let row: Option<Row> = self.invoke(&script).await?;
            return match row {
                Some(row) => Ok(vec![record(row)?]),
                None => Err(StoreError::NotFound { key: key.to_owned() }),
            };
        }
        let rows: Vec<Row> = self.scan(&names, &options.filter(key), true).await?;
        rows.into_iter().map(record).collect()
    }

    async fn list_now(&self, options: &ListOptions) -> Result<Vec<String>, StoreError> {
        let names = self.names(&options.scope);
        self.scan(&names, &options.filter, false).await
    }

    /// Runs the scan script: records when `records`, else keys.
    async fn scan<T: FromRedisValue>(&self, names: &Names, filter: &Filter, records: bool) -> Result<T, StoreError> {
        let (min, max) = bounds(filter);
        let mut script = self.scripts.scan.key(&names.index);
        script
            .key(&names.expiries)
            .arg(&names.value)
            .arg(&names.meta)
            .arg(&names.table)
            .arg(min)
            .arg(max)
            .arg(filter.suffix.as_deref().unwrap_or_default())
            .arg(filter.offset)
            .arg(filter.limit)
            .arg(if records { "1" } else { "0" });
        self.invoke(&script).await
    }

    async fn write_now(&self, record: Record, options: &WriteOptions) -> Result<u64, StoreError> {
        if record.key.is_empty() {
            return Err(StoreError::InvalidName("an empty key".to_owned()));
        }
        let names = self.names(&options.scope);
        let metadata = serde_json::to_vec(&record.metadata).map_err(|e| StoreError::Codec {
            action: "encode",
            key: record.key.clone(),
            message: e.to_string(),
        })?;
        // A TTL counts from the write on the server's clock; an expiry is a
        // time.
        let expiry = match options.ttl {
            Some(ttl) => Expiry::after(ttl),
            None => Expiry::at(options.expiry_of(record.expiry, SystemTime::now())),
        };
        let (mode, at) = expiry.args();
        let mut script = self.scripts.write.key(&names.index);
        script
            .key(&names.expiries)
            .key(&names.counter)
            .arg(&names.value)
            .arg(&names.meta)
            .arg(&names.table)
            .arg(&record.key)
            .arg(&record.value)
            .arg(metadata)
            .arg(wanted(options.condition))
            .arg(mode)
            .arg(at);
        let (done, answer): (i64, String) = self.invoke(&script).await?;
        match done {
            1 => parse_version(&answer),
            2 => Err(taken(&names, &record.key, &answer)),
            _ => Err(refused(&record.key, options.condition, &answer)?),
        }
    }

    async fn delete_now(&self, key: &str, options: &DeleteOptions) -> Result<(), StoreError> {
        if key.is_empty() {
            return options.check(key, None);
        }
        let names = self.names(&options.scope);
        let condition = options.version.map_or(Condition::Always, Condition::Version);
        let mut script = self.scripts.delete.key(&names.index);
        script
            .key(&names.expiries)
            .arg(&names.value)
            .arg(&names.meta)
            .arg(&names.table)
            .arg(key)
            .arg(wanted(condition));
        let (done, found): (i64, String) = self.invoke(&script).await?;
        if done == 0 {
            return Err(refused(key, condition, &found)?);
        }
        Ok(())
    }
}

/// A condition as the scripts take it.
fn wanted(condition: Condition) -> String {
    match condition {
        Condition::Always => String::new(),
        Condition::Absent => "absent".to_owned(),
        Condition::Version(v) => v.to_string(),
    }
}

/// The conflict a script reported, having found `found` (`''`: no record).
fn refused(key: &str, condition: Condition, found: &str) -> Result<StoreError, StoreError> {
    let found = if found.is_empty() {
        None
    } else {
        Some(parse_version(found)?)
    };
    debug!(key, ?condition, ?found, "redis store: condition does not hold");
    Ok(StoreError::conflict(key, condition, found))
}

/// The error of a write to `key` whose value's key, in Go's layout, holds
/// the record of `other`, another table.
fn taken(names: &Names, key: &str, other: &str) -> StoreError {
    let at = format!("{}{key}", names.value);
    let theirs = at.strip_prefix(other).unwrap_or(&at);
    StoreError::InvalidName(format!(
        "{key:?} of table {:?} is Go Micro's redis key {at:?}, which holds {theirs:?} of table {other:?}",
        names.table
    ))
}

fn parse_version(version: &str) -> Result<u64, StoreError> {
    version
        .parse()
        .map_err(|_| failed(format!("a version that is not a number: {version:?}")))
}

/// The record of a row the read and scan scripts return.
fn record((key, value, version, metadata, expiry): Row) -> Result<Record, StoreError> {
    let metadata = if metadata.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&metadata) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(undecodable(&key, "the metadata is not a JSON object")),
            Err(e) => return Err(undecodable(&key, &e.to_string())),
        }
    };
    Ok(Record {
        version: parse_version(&version)?,
        key,
        value,
        metadata,
        expiry: expiry_from(expiry),
    })
}

fn undecodable(key: &str, message: &str) -> StoreError {
    StoreError::Codec {
        action: "decode",
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

fn failed(error: impl fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: error.to_string(),
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("RedisStore")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl Store for RedisStore {
    fn read<'a>(&'a self, key: &'a str, options: ReadOptions) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move { self.read_now(key, &options).await })
    }

    fn write(&self, record: Record, options: WriteOptions) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { self.write_now(record, &options).await })
    }

    fn delete<'a>(&'a self, key: &'a str, options: DeleteOptions) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.delete_now(key, &options).await })
    }

    fn list(&self, options: ListOptions) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move { self.list_now(&options).await })
    }

    fn name(&self) -> &'static str {
        BACKEND
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn conditions_are_said_to_the_scripts() {
        assert_eq!(wanted(Condition::Always), "");
        assert_eq!(wanted(Condition::Absent), "absent");
        assert_eq!(wanted(Condition::Version(42)), "42");
    }

    #[test]
    fn a_refusal_names_what_was_found() {
        let err = refused("k", Condition::Version(3), "7").unwrap();
        assert!(matches!(err, StoreError::Conflict { found: Some(7), .. }), "{err:?}");
        let err = refused("k", Condition::Absent, "0").unwrap();
        assert!(matches!(err, StoreError::Conflict { found: Some(0), .. }), "{err:?}");
        let err = refused("k", Condition::Version(3), "").unwrap();
        assert!(matches!(err, StoreError::Conflict { found: None, .. }), "{err:?}");
        assert!(refused("k", Condition::Absent, "x").is_err());
    }

    #[test]
    fn rows_become_records() {
        let row = (
            "k".to_owned(),
            b"v".to_vec(),
            "9".to_owned(),
            br#"{"a":1}"#.to_vec(),
            1_700_000_000_000,
        );
        let record = record(row).unwrap();
        assert_eq!((record.key.as_str(), record.version), ("k", 9));
        assert_eq!(record.metadata["a"], 1);
        assert_eq!(
            record.expiry,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000))
        );
        let go = super::record(("k".to_owned(), b"v".to_vec(), "0".to_owned(), Vec::new(), -1)).unwrap();
        assert!(go.metadata.is_empty() && go.expiry.is_none() && go.version == 0);
        let bad = super::record(("k".to_owned(), Vec::new(), "1".to_owned(), b"[1]".to_vec(), -1)).unwrap_err();
        assert!(matches!(bad, StoreError::Codec { action: "decode", .. }), "{bad:?}");
    }
}
