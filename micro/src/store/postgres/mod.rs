//! The PostgreSQL and CockroachDB store (feature `postgres`), on Go Micro's
//! table so that Go services share it: see [`sql`] for the layout.
//!
//! Where Go's SQL stores go wrong, we do not follow them: `%`, `_` and `\`
//! in keys are matched literally; a prefix read and a list page after
//! filtering, in byte order; `WriteTTL` and `WriteExpiry` set the expiry
//! column (Go's ignore them); expired rows are deleted from their own
//! table (Go deletes the key from the default table, and its core store
//! sweeps every table of every schema); metadata is always a JSON object.
//! Each operation gives up after 5 s, so an outage fails calls rather than
//! hanging them, and the pool replaces broken connections once the server
//! is back. A serialization failure (SQLSTATE 40001, CockroachDB's "retry
//! the transaction") is retried.
//!
//! Watching (PostgreSQL 14 and later) puts a trigger on the table that
//! tells every change, Go's writers' included, with LISTEN/NOTIFY: see
//! [`watch`]. CockroachDB has no LISTEN: a watch there is unsupported.

mod rows;
pub(crate) mod sql;
mod watch;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use foldhash::HashMap;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls};
use tracing::debug;

use self::sql::{Dialect, Sql};
use super::names::mapped;
use super::options::{Condition, Table};
use super::{DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, StoreError, Watch, WriteOptions};
use crate::BoxFuture;

/// How long one operation may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections kept at most.
const POOL_SIZE: usize = 16;
/// Expired rows of a table are deleted at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Tries of a statement that hit a serialization failure.
const ATTEMPTS: u32 = 5;

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: "postgres",
        message: error.to_string(),
    }
}

/// A store in PostgreSQL or CockroachDB. Cheap to clone; clones share
/// the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The connection settings, for a watch's own connection.
    config: Config,
    dialect: Dialect,
    defaults: Table,
    /// The tables made ready, by mapped database and table.
    tables: Mutex<HashMap<(String, String), Arc<Ready>>>,
    /// The store's own table, once ready: most calls name no other.
    default: std::sync::OnceLock<Arc<Ready>>,
    /// Held while a table is created, so that a process creates it once.
    creating: tokio::sync::Mutex<()>,
}

/// A table whose DDL has run: its statements, and when its expired rows
/// were deleted last.
struct Ready {
    sql: Sql,
    swept: Mutex<Instant>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the address: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("dialect", &self.inner.dialect)
            .finish_non_exhaustive()
    }
}

/// The connection settings `address` gives: a URL
/// (`postgres://user:password@host:port/database?sslmode=disable`), a
/// `key=value` string, or (as Go Micro takes it) a bare host.
fn config(address: &str) -> Result<Config, StoreError> {
    let text = if address.contains("://") || address.contains('=') || address.contains(' ') {
        address.to_owned()
    } else {
        format!("host={address}")
    };
    text.parse::<Config>()
        .map_err(|e| StoreError::InvalidName(format!("bad PostgreSQL address: {e}")))
}

impl PostgresStore {
    /// Connects to the server at `address`; the default database and table
    /// are `micro`.
    pub async fn connect(address: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::with_defaults(address, Table::default()).await
    }

    /// Connects to the server at `address`, with these default database
    /// and table.
    pub async fn with_defaults(address: &str, defaults: Table) -> Result<PostgresStore, StoreError> {
        let config = config(address)?;
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(REQUEST_TIMEOUT))
            .create_timeout(Some(REQUEST_TIMEOUT))
            .recycle_timeout(Some(REQUEST_TIMEOUT))
            .build()
            .map_err(failed)?;
        let version: String = bounded(async {
            let client = pool.get().await.map_err(failed)?;
            let row = client.query_one("SELECT version()", &[]).await.map_err(failed)?;
            row.try_get(0).map_err(failed)
        })
        .await?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                config,
                dialect: Dialect::of(&version),
                defaults,
                tables: Mutex::default(),
                default: std::sync::OnceLock::new(),
                creating: tokio::sync::Mutex::new(()),
            }),
        })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(failed)
    }

    /// The table `scope` names, created as Go Micro creates it if need be.
    async fn table(&self, client: &Object, scope: &Scope) -> Result<Arc<Ready>, StoreError> {
        let own = scope.is_store_default();
        if own && let Some(table) = self.inner.default.get() {
            return Ok(Arc::clone(table));
        }
        let table = self.ready(client, scope).await?;
        if own {
            let _ = self.inner.default.set(Arc::clone(&table));
        }
        Ok(table)
    }

    async fn ready(&self, client: &Object, scope: &Scope) -> Result<Arc<Ready>, StoreError> {
        let at = scope.resolve(&self.inner.defaults);
        let name = (mapped(at.database)?, mapped(at.table)?);
        let ready = |inner: &Inner| {
            inner
                .tables
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned()
        };
        if let Some(table) = ready(&self.inner) {
            return Ok(table);
        }
        let _creating = self.inner.creating.lock().await;
        if let Some(table) = ready(&self.inner) {
            return Ok(table);
        }
        let sql = Sql::new(self.inner.dialect, &name.0, &name.1);
        for statement in &sql.create {
            match client.batch_execute(statement).await {
                Ok(()) => {}
                // Another process created it meanwhile.
                Err(e) if is_duplicate(&e) => debug!(error = %e, "created concurrently"),
                Err(e) => return Err(failed(e)),
            }
        }
        // Swept by the first write: a table left with expired rows is
        // cleaned soon after a process uses it.
        let never = Instant::now().checked_sub(SWEEP_EVERY).unwrap_or_else(Instant::now);
        let table = Arc::new(Ready {
            sql,
            swept: Mutex::new(never),
        });
        self.inner
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, Arc::clone(&table));
        Ok(table)
    }

    /// Deletes `table`'s expired rows, in a task of its own, when it was
    /// not done for a while.
    fn sweep(&self, table: &Arc<Ready>) {
        {
            let mut swept = table.swept.lock().unwrap_or_else(|p| p.into_inner());
            if swept.elapsed() < SWEEP_EVERY {
                return;
            }
            *swept = Instant::now();
        }
        let (pool, table) = (self.inner.pool.clone(), Arc::clone(table));
        tokio::spawn(async move {
            let swept = bounded(async {
                let client = pool.get().await.map_err(failed)?;
                client.execute(&table.sql.sweep, &[]).await.map_err(failed)
            })
            .await;
            match swept {
                Ok(rows) => debug!(rows, "expired rows deleted"),
                Err(e) => debug!(error = %e, "cannot delete expired rows"),
            }
        });
    }

    async fn read_records(&self, key: &str, options: ReadOptions) -> Result<Vec<Record>, StoreError> {
        let client = self.client().await?;
        let table = self.table(&client, &options.scope).await?;
        if options.is_exact() {
            let statement = client.prepare_cached(&table.sql.read_one).await.map_err(failed)?;
            let params: [&(dyn ToSql + Sync); 1] = [&key];

            let row = retried(|| client.query_opt(&statement, &params)).await?;
            let row = row.ok_or_else(|| StoreError::NotFound { key: key.to_owned() })?;
            return Ok(vec![rows::record(key.to_owned(), &row, 0)?]);
        }
        let filter = options.filter(key);
        let (prefix, suffix) = patterns(filter.prefix.as_deref(), filter.suffix.as_deref());
        let (limit, offset) = page(filter.limit, filter.offset);
        let statement = client.prepare_cached(&table.sql.read_many).await.map_err(failed)?;
        let params: [&(dyn ToSql + Sync); 4] = [&prefix, &suffix, &limit, &offset];

        let found = retried(|| client.query(&statement, &params)).await?;
        found
            .iter()
            .map(|row| rows::record(row.try_get(0).map_err(failed)?, row, 1))
            .collect()
    }

    async fn list_keys(&self, options: ListOptions) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let table = self.table(&client, &options.scope).await?;
        let filter = &options.filter;
        let (prefix, suffix) = patterns(filter.prefix.as_deref(), filter.suffix.as_deref());
        let (limit, offset) = page(filter.limit, filter.offset);
        let statement = client.prepare_cached(&table.sql.list).await.map_err(failed)?;
        let after = filter.after.as_deref();
        let params: [&(dyn ToSql + Sync); 5] = [&prefix, &suffix, &after, &limit, &offset];

        let found = retried(|| client.query(&statement, &params)).await?;
        found.iter().map(|row| row.try_get(0).map_err(failed)).collect()
    }

    async fn write_record(&self, record: Record, options: WriteOptions) -> Result<u64, StoreError> {
        if record.key.is_empty() {
            return Err(StoreError::InvalidName("an empty key".to_owned()));
        }
        let client = self.client().await?;
        let table = self.table(&client, &options.scope).await?;
        let expiry = options.expiry_of(record.expiry, SystemTime::now());
        let metadata = Value::Object(record.metadata);
        let (key, value) = (record.key.as_str(), record.value.as_slice());
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key, &value, &metadata, &expiry];
        let wanted;
        let text = match options.condition {
            Condition::Absent => &table.sql.create_only,
            Condition::Version(v) => {
                wanted = rows::as_sql(v);
                params.push(&wanted);
                &table.sql.update_if
            }
            _ => &table.sql.upsert,
        };
        let statement = client.prepare_cached(text).await.map_err(failed)?;
        let row = retried(|| client.query_opt(&statement, &params)).await?;
        self.sweep(&table);
        match row {
            Some(row) => rows::version(&row, 0),
            None => {
                let found = self.version_of(&client, &table, key).await?;
                Err(StoreError::conflict(key, options.condition, found))
            }
        }
    }

    async fn delete_record(&self, key: &str, options: DeleteOptions) -> Result<(), StoreError> {
        let client = self.client().await?;
        let table = self.table(&client, &options.scope).await?;
        let Some(version) = options.version else {
            let statement = client.prepare_cached(&table.sql.delete).await.map_err(failed)?;
            let params: [&(dyn ToSql + Sync); 1] = [&key];

            retried(|| client.execute(&statement, &params)).await?;
            return Ok(());
        };
        let statement = client.prepare_cached(&table.sql.delete_if).await.map_err(failed)?;
        let wanted = rows::as_sql(version);
        let params: [&(dyn ToSql + Sync); 2] = [&key, &wanted];

        if retried(|| client.execute(&statement, &params)).await? == 0 {
            let found = self.version_of(&client, &table, key).await?;
            return Err(StoreError::conflict(key, Condition::Version(version), found));
        }
        Ok(())
    }

    /// The version of `key`'s live row, if any (for a conflict's report).
    async fn version_of(&self, client: &Object, table: &Ready, key: &str) -> Result<Option<u64>, StoreError> {
        let statement = client.prepare_cached(&table.sql.version_of).await.map_err(failed)?;
        let params: [&(dyn ToSql + Sync); 1] = [&key];

        let row = retried(|| client.query_opt(&statement, &params)).await?;
        row.map(|row| rows::version(&row, 0)).transpose()
    }
}

/// The LIKE patterns of a prefix and a suffix (`%`: any key).
fn patterns(prefix: Option<&str>, suffix: Option<&str>) -> (String, String) {
    (
        prefix.map_or_else(|| "%".to_owned(), sql::starts_with),
        suffix.map_or_else(|| "%".to_owned(), sql::ends_with),
    )
}

/// LIMIT (NULL: all) and OFFSET of a page.
fn page(limit: usize, offset: usize) -> (Option<i64>, i64) {
    let limit = (limit != 0).then(|| i64::try_from(limit).unwrap_or(i64::MAX));
    (limit, i64::try_from(offset).unwrap_or(i64::MAX))
}

fn is_duplicate(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        [
            SqlState::UNIQUE_VIOLATION,
            SqlState::DUPLICATE_OBJECT,
            SqlState::DUPLICATE_TABLE,
            SqlState::DUPLICATE_SCHEMA,
            SqlState::DUPLICATE_DATABASE,
        ]
        .contains(code)
    })
}

/// Whether `error` asks for the statement to be tried again (SQLSTATE
/// 40001, a serialization failure: CockroachDB's retry error).
pub(crate) fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
}

/// Runs `statement`, again on a serialization failure.
async fn retried<T, F>(mut statement: impl FnMut() -> F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut attempt = 1;
    loop {
        match statement().await {
            Err(e) if is_retryable(&e) && attempt < ATTEMPTS => {
                debug!(error = %e, attempt, "serialization failure: trying again");
                // Backoff with jitter, so that the writers that collided
                // do not collide again.
                let base = 5u64 << attempt;
                tokio::time::sleep(Duration::from_millis(base + fastrand::u64(0..base))).await;
                attempt += 1;
            }
            other => return other.map_err(failed),
        }
    }
}

/// `work`, failing after [`REQUEST_TIMEOUT`].
async fn bounded<T>(work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| failed(format!("no answer within {REQUEST_TIMEOUT:?}")))?
}

impl Store for PostgresStore {
    fn read<'a>(&'a self, key: &'a str, options: ReadOptions) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(bounded(self.read_records(key, options)))
    }

    fn write(&self, record: Record, options: WriteOptions) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(bounded(self.write_record(record, options)))
    }

    fn delete<'a>(&'a self, key: &'a str, options: DeleteOptions) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(bounded(self.delete_record(key, options)))
    }

    fn list(&self, options: ListOptions) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(bounded(self.list_keys(options)))
    }

    fn watch<'a>(&'a self, prefix: &'a str, scope: Scope) -> BoxFuture<'a, Result<Watch, StoreError>> {
        Box::pin(bounded(self.watch_prefix(prefix, scope)))
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.pool.close();
        Box::pin(async { Ok(()) })
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}
