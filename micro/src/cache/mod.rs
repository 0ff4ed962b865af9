//! Caching: Go Micro's `cache` (get, put and delete a value under a key,
//! with an expiry), with one semantics on every backend and what Go's
//! cache lacks: expired values are evicted, memory is bounded, typed
//! values, and a read-through that computes a missing value once however
//! many callers ask for it at the same time.
//!
//! Backends: [`MemoryCache`] (in the process, bounded in bytes, built on
//! `moka`) and `RedisCache` (feature `redis`, Go Micro's layout: the raw
//! key, the raw value, `SET` with the TTL), so a Go service and a micro
//! service share a Redis cache.
//!
//! Where Go Micro's two caches disagree, or go wrong, micro picks one
//! behaviour for both:
//! - An expired value is gone: reading it is [`CacheError::NotFound`]
//!   ("key not found in cache"), never Go's "item has expired" (Go's
//!   memory cache keeps expired items forever and says so; Redis cannot
//!   tell an expired key from a missing one).
//! - Deleting a missing key is no error: [`Cache::delete`] returns whether
//!   a live value was there (Go's memory cache errors, its Redis cache
//!   does not).
//! - [`Ttl::Default`] is the cache's default expiration on both backends
//!   (Go's Redis cache ignores its `Expiration` option); [`Ttl::Never`] is
//!   Go's negative duration.
//! - A value's expiry is `None` when it never expires (Go returns the Unix
//!   epoch from memory and the year 292277026596 from Redis).
//!
//! ```
//! use std::time::Duration;
//!
//! use micro::cache::{Cache, MemoryCache, Ttl};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> micro::Result<()> {
//! let cache: &dyn Cache = &MemoryCache::builder().default_ttl(Duration::from_secs(60)).build();
//!
//! // Bytes, with the cache's default expiration.
//! cache.put("greeting", "hello".into(), Ttl::Default).await?;
//! let (value, expires) = cache.get("greeting").await?;
//! assert_eq!(&value[..], b"hello");
//! assert!(expires.is_some());
//!
//! // Typed values, as JSON.
//! cache.put_json("user/1", &vec!["alice", "admin"], Duration::from_secs(5)).await?;
//! let user: Vec<String> = cache.get_json("user/1").await?;
//! assert_eq!(user, ["alice", "admin"]);
//!
//! // Read-through: computed on a miss, stored, then read from the cache.
//! let answer: u64 = cache
//!     .get_or_insert_with("answer", Ttl::Never, || async { Ok::<_, micro::Error>(42) })
//!     .await?;
//! assert_eq!(answer, 42);
//!
//! assert!(cache.delete("greeting").await?);
//! assert!(cache.get("greeting").await.unwrap_err().is_not_found());
//! # Ok(())
//! # }
//! ```
//!
//! The guide, `docs/cache.md`, has more (and its samples compile).

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod typed;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tracing::{debug, warn};

pub use self::memory::{DEFAULT_MAX_BYTES, MemoryCache, MemoryCacheBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisCache;
use crate::BoxFuture;

/// How long a value put in a cache lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ttl {
    /// The cache's default expiration; kept until evicted when the cache
    /// has none (Go Micro's `0`).
    #[default]
    Default,
    /// Kept until deleted or evicted, whatever the cache's default (Go
    /// Micro's negative duration).
    Never,
    /// Expires this long after the put. A zero TTL stores nothing: the put
    /// removes any value the key had.
    After(Duration),
}

impl Ttl {
    /// The TTL a put with this one gets in a cache whose default is
    /// `default`: `None` for none.
    pub(crate) fn resolve(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Ttl::Default => default,
            Ttl::Never => None,
            Ttl::After(d) => Some(d),
        }
    }
}

impl From<Duration> for Ttl {
    fn from(ttl: Duration) -> Ttl {
        Ttl::After(ttl)
    }
}

impl From<Option<Duration>> for Ttl {
    /// `None` is the cache's default.
    fn from(ttl: Option<Duration>) -> Ttl {
        ttl.map_or(Ttl::Default, Ttl::After)
    }
}

/// Why a cache operation failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The key has no live value: never put, deleted, expired or evicted
    /// (Go Micro's `ErrKeyNotFound`; micro has no `ErrItemExpired`, an
    /// expired value is gone).
    #[error("key not found in cache")]
    NotFound {
        /// The key read.
        key: String,
    },
    /// A typed value could not be encoded or decoded (JSON).
    #[error("cannot {action} the value of {key}: {message}")]
    Codec {
        /// `encode` or `decode`.
        action: &'static str,
        /// The key.
        key: String,
        /// What was wrong.
        message: String,
    },
    /// A read-through's computation of a missing value failed: every
    /// caller that waited for it gets this.
    #[error("{0}")]
    Compute(ComputeError),
    /// The backend failed.
    #[error("cache backend {backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What it said.
        message: String,
    },
}

impl CacheError {
    /// Whether it is [`CacheError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, CacheError::NotFound { .. })
    }

    pub(crate) fn not_found(key: &str) -> CacheError {
        CacheError::NotFound { key: key.to_owned() }
    }

    pub(crate) fn codec(action: &'static str, key: &str, error: impl fmt::Display) -> CacheError {
        CacheError::Codec {
            action,
            key: key.to_owned(),
            message: error.to_string(),
        }
    }
}

impl From<CacheError> for crate::Error {
    fn from(error: CacheError) -> crate::Error {
        const ID: &str = "go.micro.cache";
        match &error {
            CacheError::NotFound { .. } => crate::Error::not_found(ID, error.to_string()),
            // The computation's own error, when it was a micro::Error, keeps
            // its code: a read-through of a missing user stays a 404.
            CacheError::Compute(failed) => match failed.downcast_ref::<crate::Error>() {
                Some(own) => own.clone(),
                None => crate::Error::internal_server_error(ID, error.to_string()),
            },
            _ => crate::Error::internal_server_error(ID, error.to_string()),
        }
    }
}

/// The error of a read-through's computation, shared by every caller that
/// waited for it: its text, and the error itself for
/// [`ComputeError::downcast_ref`].
#[derive(Clone)]
pub struct ComputeError {
    message: String,
    error: Arc<dyn Any + Send + Sync>,
}

impl ComputeError {
    /// Wraps the error a computation returned.
    pub fn new<E: fmt::Display + Send + Sync + 'static>(error: E) -> ComputeError {
        ComputeError {
            message: error.to_string(),
            error: Arc::new(error),
        }
    }

    /// The error, if it is an `E`.
    pub fn downcast_ref<E: 'static>(&self) -> Option<&E> {
        self.error.downcast_ref()
    }

    /// The error's text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for ComputeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ComputeError").field(&self.message).finish()
    }
}

impl fmt::Display for ComputeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A cache: Go Micro's `cache.Cache`, dyn-compatible (`Arc<dyn Cache>`).
/// Typed values and the typed read-through are on `dyn Cache`
/// ([`get_json`](#method.get_json), [`put_json`](#method.put_json),
/// [`get_or_insert_with`](#method.get_or_insert_with)).
pub trait Cache: Send + Sync + 'static {
    /// The value of `key` and when it expires (`None`: never). A key with
    /// no live value is [`CacheError::NotFound`].
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(Bytes, Option<SystemTime>), CacheError>>;

    /// Puts `value` under `key` for `ttl`, replacing any value and expiry
    /// the key had.
    fn put<'a>(&'a self, key: &'a str, value: Bytes, ttl: Ttl) -> BoxFuture<'a, Result<(), CacheError>>;

    /// Deletes the value of `key`; returns whether it had a live one. A
    /// missing key is no error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>>;

    /// The value of `key`; when it has none, `init`'s, which is put for
    /// `ttl` (a failed `init` puts nothing). The bytes under the typed
    /// [`get_or_insert_with`](#method.get_or_insert_with).
    ///
    /// The default reads, computes on a miss and puts: callers that miss
    /// together each compute. A backend failure does not fail the call: it
    /// is logged, and the value computed (and returned) all the same.
    /// [`MemoryCache`] does better: concurrent callers of a missing key
    /// wait for one computation.
    fn get_or_compute<'a>(
        &'a self,
        key: &'a str,
        ttl: Ttl,
        init: BoxFuture<'a, Result<Bytes, CacheError>>,
    ) -> BoxFuture<'a, Result<Bytes, CacheError>> {
        Box::pin(async move {
            match self.get(key).await {
                Ok((value, _)) => return Ok(value),
                Err(CacheError::NotFound { .. }) => {}
                Err(e) => warn!(cache = self.name(), key, error = %e, "cache read failed: computing the value"),
            }
            debug!(cache = self.name(), key, "cache miss: computing the value");
            let value = init.await?;
            if let Err(e) = self.put(key, value.clone(), ttl).await {
                warn!(cache = self.name(), key, error = %e, "cache write failed: the value is not kept");
            }
            Ok(value)
        })
    }

    /// The backend's name (`memory`, `redis`), Go Micro's `String()`.
    fn name(&self) -> &'static str;
}

/// The guide in `docs/cache.md`, whose code samples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/cache.md")]
pub struct CacheGuide;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_resolve_against_the_default() {
        let default = Some(Duration::from_secs(60));
        assert_eq!(Ttl::Default.resolve(default), default);
        assert_eq!(Ttl::Default.resolve(None), None);
        assert_eq!(Ttl::Never.resolve(default), None);
        assert_eq!(
            Ttl::from(Duration::from_secs(1)).resolve(default),
            Some(Duration::from_secs(1))
        );
        assert_eq!(Ttl::from(None::<Duration>), Ttl::Default);
    }

    #[test]
    fn errors_cross_the_wire_as_go_micro_cache_errors() {
        let missing = crate::Error::from(CacheError::not_found("k"));
        assert_eq!((missing.id.as_str(), missing.code), ("go.micro.cache", 404));
        assert_eq!(missing.detail, "key not found in cache");
        let backend = crate::Error::from(CacheError::Backend {
            backend: "redis",
            message: "down".into(),
        });
        assert_eq!((backend.id.as_str(), backend.code), ("go.micro.cache", 500));
        // A computation's micro::Error is returned as it was.
        let own = crate::Error::not_found("users", "no user 7");
        let computed = crate::Error::from(CacheError::Compute(ComputeError::new(own.clone())));
        assert_eq!(computed, own);
        let other = crate::Error::from(CacheError::Compute(ComputeError::new("db down".to_owned())));
        assert_eq!((other.code, other.detail.as_str()), (500, "db down"));
    }

    /// A cache whose read-through always fails with another type's error.
    struct Failing;

    impl Cache for Failing {
        fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(Bytes, Option<SystemTime>), CacheError>> {
            Box::pin(async move { Err(CacheError::not_found(key)) })
        }

        fn put<'a>(&'a self, _: &'a str, _: Bytes, _: Ttl) -> BoxFuture<'a, Result<(), CacheError>> {
            Box::pin(async { Ok(()) })
        }

        fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
            Box::pin(async { Ok(false) })
        }

        fn get_or_compute<'a>(
            &'a self,
            _: &'a str,
            _: Ttl,
            _: BoxFuture<'a, Result<Bytes, CacheError>>,
        ) -> BoxFuture<'a, Result<Bytes, CacheError>> {
            Box::pin(async { Err(CacheError::Compute(ComputeError::new("db down".to_owned()))) })
        }

        fn name(&self) -> &'static str {
            "failing"
        }
    }

    #[tokio::test]
    async fn a_computation_error_of_another_type_arrives_as_its_text() {
        let cache: &dyn Cache = &Failing;
        let err = cache
            .get_or_insert_with("k", Ttl::Default, || async { Ok::<u32, crate::Error>(1) })
            .await
            .unwrap_err();
        assert_eq!((err.code, err.detail.as_str()), (500, "db down"));
        let err = cache
            .get_or_insert_with("k", Ttl::Default, || async { Ok::<u32, CacheError>(1) })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CacheError::Compute(e) if e.message() == "db down"),
            "{err:?}"
        );
    }
}
