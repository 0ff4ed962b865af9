//! Data storage: Go Micro's `store` (records of a key, value bytes,
//! metadata and expiry, in databases and tables), with one semantics on
//! every backend and what Go's stores lack.
//!
//! Every backend answers alike: keys ascending; `limit` counts matches
//! after filtering; an offset past the end is an empty page; an expired
//! record is neither read nor listed; reading a missing key is
//! [`StoreError::NotFound`]; deleting one is no error. Every record has a
//! version, and writes and deletes can be made conditional on it
//! ([`WriteOptions::if_version`], [`WriteOptions::create_only`],
//! [`DeleteOptions::if_version`]), so two writers cannot silently overwrite
//! each other. Lists page by cursor ([`Page`]) as well as by offset.
//! Changes under a prefix can be watched where the backend can tell them.
//!
//! Backends: [`FileStore`] (an embedded file per database, the default),
//! [`MemoryStore`] (one process), `PostgresStore` (PostgreSQL and
//! CockroachDB, feature `postgres`) and `RedisStore` (feature `redis`), all
//! held to one conformance suite and one model.

mod clock;
mod file;
mod memory;
mod names;
mod options;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod typed;
mod watch;

pub use self::file::FileStore;
pub use self::memory::MemoryStore;
pub use self::options::{
    Condition, DEFAULT_SCOPE, DeleteOptions, Filter, ListOptions, ReadOptions, Scope, Table, WriteOptions,
};
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
pub use self::record::Record;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use self::typed::Page;
pub use self::watch::{Change, Watch};
use crate::BoxFuture;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No live record has the key (Go Micro's `ErrNotFound`).
    #[error("not found")]
    NotFound {
        /// The key read.
        key: String,
    },
    /// A conditional write or delete found the key in another state.
    #[error("{key}: expected {expected}, found {}", found.map_or_else(|| "no record".to_owned(), |v| format!("version {v}")))]
    Conflict {
        /// The key.
        key: String,
        /// What the call expected.
        expected: String,
        /// The version the key holds, if any.
        found: Option<u64>,
    },
    /// A database, table or key the store cannot take.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A value could not be encoded or decoded.
    #[error("cannot {action} the value of {key}: {message}")]
    Codec {
        /// `encode` or `decode`.
        action: &'static str,
        /// The key.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// A watcher fell behind and missed changes: read again to catch up.
    #[error("the watcher missed {0} changes")]
    Lagged(u64),
    /// The backend does not do this.
    #[error("the {backend} store cannot {operation}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// The backend failed.
    #[error("store backend {backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What it said.
        message: String,
    },
}

impl StoreError {
    /// Whether it is [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether it is [`StoreError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    pub(crate) fn conflict(key: &str, condition: Condition, found: Option<u64>) -> StoreError {
        let expected = match condition {
            Condition::Always => "anything".to_owned(),
            Condition::Absent => "no record".to_owned(),
            Condition::Version(v) => format!("version {v}"),
        };
        StoreError::Conflict {
            key: key.to_owned(),
            expected,
            found,
        }
    }
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> crate::Error {
        const ID: &str = "go.micro.store";
        match &error {
            StoreError::NotFound { .. } => crate::Error::not_found(ID, error.to_string()),
            StoreError::Conflict { .. } => crate::Error::conflict(ID, error.to_string()),
            StoreError::InvalidName(_) | StoreError::Codec { .. } => crate::Error::bad_request(ID, error.to_string()),
            _ => crate::Error::internal_server_error(ID, error.to_string()),
        }
    }
}

/// A store: Go Micro's `store.Store`, dyn-compatible (`Arc<dyn Store>`).
/// Typed reads and writes, and paging, are on `dyn Store` ([`Page`]).
pub trait Store: Send + Sync + 'static {
    /// The record of `key`, or with [`ReadOptions::prefix`] /
    /// [`ReadOptions::suffix`] every record whose key starts or ends with
    /// it, ascending. A missing exact key is [`StoreError::NotFound`].
    fn read<'a>(&'a self, key: &'a str, options: ReadOptions) -> BoxFuture<'a, Result<Vec<Record>, StoreError>>;

    /// Writes `record` (its version is ignored: see
    /// [`WriteOptions::if_version`]); returns the version it now has.
    fn write(&self, record: Record, options: WriteOptions) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Deletes the record of `key`; a missing key is no error (unless a
    /// version is asked for).
    fn delete<'a>(&'a self, key: &'a str, options: DeleteOptions) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The keys that match, ascending.
    fn list(&self, options: ListOptions) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;

    /// The changes to keys starting with `prefix` in `scope` from now on.
    fn watch<'a>(&'a self, prefix: &'a str, scope: Scope) -> BoxFuture<'a, Result<Watch, StoreError>> {
        let _ = (prefix, scope);
        Box::pin(async move {
            Err(StoreError::Unsupported {
                backend: self.name(),
                operation: "watch",
            })
        })
    }

    /// Releases what the store holds; it is not used afterwards.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// The backend's name (`memory`, `file`, ...).
    fn name(&self) -> &'static str;
}
