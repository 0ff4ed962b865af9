//! The Redis cache, on Go Micro's layout so that Go services share it: a
//! value is the raw key (after an optional prefix of ours; Go has none),
//! holding the raw value bytes, written with `SET` and its TTL (`PX`, in
//! milliseconds) and read with `GET` and `PTTL`.
//!
//! One connection (a `ConnectionManager`, which reconnects), every request
//! under a timeout, so a Redis outage fails calls rather than hanging
//! them. Unlike Go's cache: the read and its TTL are one transaction (Go
//! reads the TTL after the value, and reports "item has expired" when the
//! key went in between); the cache's default expiration applies (Go
//! ignores it); and the read-through computes on every caller that misses
//! (no coalescing across callers or processes: see
//! [`Cache::get_or_compute`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use ::redis::aio::ConnectionManager;
use ::redis::{Client, Cmd, FromRedisValue, Pipeline};
use bytes::Bytes;

use super::{Cache, CacheError, Ttl};
use crate::BoxFuture;

/// The backend's name, in errors and logs.
const BACKEND: &str = "redis";

/// A cache kept in Redis, readable and writable by Go Micro's Redis
/// cache. Cheap to clone; clones share one connection.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn demo() -> Result<(), micro::cache::CacheError> {
/// use micro::cache::RedisCache;
///
/// let cache = RedisCache::connect("redis://127.0.0.1:6379")
///     .await?
///     .prefix("users:")
///     .default_ttl(Duration::from_secs(60));
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisCache {
    manager: ConnectionManager,
    prefix: String,
    default_ttl: Option<Duration>,
}

impl RedisCache {
    /// Connects to the Redis server at `url`
    /// (`redis://[user:password@]host:port[/db]`). Keys are used as given
    /// and values put with [`Ttl::Default`] never expire, as in Go Micro.
    pub async fn connect(url: &str) -> Result<RedisCache, CacheError> {
        let client = Client::open(url).map_err(failed)?;
        let manager = crate::redis_link::manager(client).await.map_err(failed)?;
        Ok(RedisCache {
            manager,
            prefix: String::new(),
            default_ttl: None,
        })
    }

    /// Puts `prefix` before every key (none by default, as Go Micro):
    /// key `k` is the Redis key `prefix` + `k`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisCache {
        self.prefix = prefix.into();
        self
    }

    /// How long a value put with [`Ttl::Default`] lives (none by default).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> RedisCache {
        self.default_ttl = Some(ttl);
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, CacheError> {
        let mut conn = self.manager.clone();
        crate::redis_link::bounded(cmd.query_async(&mut conn))
            .await
            .map_err(failed)
    }

    async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, CacheError> {
        let mut conn = self.manager.clone();
        crate::redis_link::bounded(pipe.query_async(&mut conn))
            .await
            .map_err(failed)
    }

    async fn get_value(&self, key: &str) -> Result<(Bytes, Option<SystemTime>), CacheError> {
        let redis_key = self.key(key);
        let mut pipe = ::redis::pipe();
        pipe.atomic().cmd("GET").arg(&redis_key).cmd("PTTL").arg(&redis_key);
        let (value, ttl): (Option<Vec<u8>>, i64) = self.query_pipe(&pipe).await?;
        let value = value.ok_or_else(|| CacheError::not_found(key))?;
        // PTTL: -1 no expiry; -2 no key (not after a GET in the same
        // transaction that found it).
        let expires = match u64::try_from(ttl) {
            Ok(ms) => SystemTime::now().checked_add(Duration::from_millis(ms)),
            Err(_) => None,
        };
        Ok((Bytes::from(value), expires))
    }

    async fn put_value(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<(), CacheError> {
        let ttl = ttl.resolve(self.default_ttl);
        if ttl == Some(Duration::ZERO) {
            // Redis refuses `PX 0`; a value that expires at once is none.
            self.delete_value(key).await?;
            return Ok(());
        }
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(&value[..]);
        if let Some(ms) = ttl.and_then(millis) {
            cmd.arg("PX").arg(ms);
        }
        self.query::<()>(&cmd).await
    }

    async fn delete_value(&self, key: &str) -> Result<bool, CacheError> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(self.key(key));
        let deleted: i64 = self.query(&cmd).await?;
        Ok(deleted > 0)
    }
}

impl Cache for RedisCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(Bytes, Option<SystemTime>), CacheError>> {
        Box::pin(self.get_value(key))
    }

    fn put<'a>(&'a self, key: &'a str, value: Bytes, ttl: Ttl) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(self.put_value(key, value, ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(self.delete_value(key))
    }

    fn name(&self) -> &'static str {
        BACKEND
    }
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .field("default_ttl", &self.default_ttl)
            .finish_non_exhaustive()
    }
}

/// `ttl` in milliseconds for `PX`, rounded up so a value never expires
/// before its TTL; `None` (never expires) for a TTL too long for Redis,
/// which refuses a deadline past `i64::MAX` ms.
fn millis(ttl: Duration) -> Option<i64> {
    const LONGEST: u128 = (i64::MAX / 2) as u128;
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    if ms > LONGEST { None } else { i64::try_from(ms).ok() }
}

fn failed(error: impl fmt::Display) -> CacheError {
    CacheError::Backend {
        backend: BACKEND,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_milliseconds_and_huge_ones_never_expire() {
        assert_eq!(millis(Duration::from_micros(1)), Some(1));
        assert_eq!(millis(Duration::from_millis(1500)), Some(1500));
        assert_eq!(millis(Duration::from_micros(1500)), Some(2));
        assert_eq!(millis(Duration::MAX), None, "too long for Redis: never expires");
    }
}
