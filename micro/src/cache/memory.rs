//! The memory cache: values in the process, bounded in bytes, each with
//! its own expiry, built on `moka`.
//!
//! Go Micro's memory cache is a map that never shrinks: expired items stay
//! (and read as "item has expired") until overwritten or deleted, and
//! nothing bounds it. Here an expired value is unreadable at once and
//! evicted soon after (moka's per-entry expiry: its timer wheel, whose
//! finest buckets span about a second, is worked as the cache is used,
//! and by a sweep every few seconds so an idle cache lets go of expired
//! values too), and the cache holds at most its byte bound
//! (moka's TinyLFU: when it is full, a new value that is rarely asked for
//! may be turned away in favour of the ones that are).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tracing::debug;

use super::{Cache, CacheError, Ttl};
use crate::BoxFuture;

/// The byte bound of [`MemoryCache::new`]: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// What an entry is counted for beyond its key and value: the cache's own
/// bookkeeping, roughly.
const ENTRY_OVERHEAD: usize = 64;
/// How often expired values are swept out when the cache is idle (moka
/// sweeps as it is used).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A value, and when it expires on both clocks: moka's (monotonic) evicts
/// it, the wall clock's is what [`Cache::get`] reports.
#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires: Option<(Instant, SystemTime)>,
}

impl Entry {
    fn new(value: Bytes, ttl: Option<Duration>) -> Entry {
        // A TTL too long for either clock never expires.
        let expires = ttl.and_then(|ttl| Some((Instant::now().checked_add(ttl)?, SystemTime::now().checked_add(ttl)?)));
        Entry { value, expires }
    }

    fn is_live(&self) -> bool {
        self.expires.is_none_or(|(at, _)| Instant::now() < at)
    }

    fn weight(key: &str, value: &[u8]) -> u64 {
        key.len().saturating_add(value.len()).saturating_add(ENTRY_OVERHEAD) as u64
    }
}

/// moka's per-entry expiry: an entry expires at its deadline, a put sets
/// a new one, a read keeps it.
struct Expiry;

impl moka::Expiry<String, Entry> for Expiry {
    fn expire_after_create(&self, _: &String, entry: &Entry, created_at: Instant) -> Option<Duration> {
        entry.expires.map(|(at, _)| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.expires.map(|(at, _)| at.saturating_duration_since(updated_at))
    }
}

/// A cache in memory, bounded in bytes. Cheap to clone; clones share it.
///
/// ```
/// # use std::time::Duration;
/// use micro::cache::MemoryCache;
///
/// let cache = MemoryCache::builder()
///     .max_bytes(16 * 1024 * 1024)
///     .default_ttl(Duration::from_secs(300))
///     .build();
/// # let _ = cache;
/// ```
#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: moka::future::Cache<String, Entry>,
    default_ttl: Option<Duration>,
    max_bytes: u64,
}

/// Builds a [`MemoryCache`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MemoryCacheBuilder {
    max_bytes: u64,
    default_ttl: Option<Duration>,
}

impl MemoryCacheBuilder {
    /// The most the cache holds, counting each entry's key and value bytes
    /// and 64 bytes of bookkeeping (default [`DEFAULT_MAX_BYTES`]). A value
    /// larger than that is not kept.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How long a value put with [`Ttl::Default`] lives (Go Micro's
    /// `Expiration` option); without one, such values are kept until
    /// evicted.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The cache. Inside a tokio runtime, a task sweeps out expired values
    /// every 5 s while the cache lives.
    pub fn build(self) -> MemoryCache {
        let entries = moka::future::Cache::builder()
            .name("micro.cache")
            .max_capacity(self.max_bytes)
            .weigher(|key: &String, entry: &Entry| u32::try_from(Entry::weight(key, &entry.value)).unwrap_or(u32::MAX))
            .expire_after(Expiry)
            .build();
        let inner = Arc::new(Inner {
            entries,
            default_ttl: self.default_ttl,
            max_bytes: self.max_bytes,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(sweep(Arc::downgrade(&inner)));
            }
            Err(_) => debug!("memory cache built outside a tokio runtime: expired values are swept as it is used"),
        }
        MemoryCache { inner }
    }
}

/// Runs moka's housekeeping now and then, until the cache is dropped.
async fn sweep(cache: Weak<Inner>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(inner) = cache.upgrade() else { return };
        inner.entries.run_pending_tasks().await;
    }
}

impl MemoryCache {
    /// A cache of at most [`DEFAULT_MAX_BYTES`], with no default
    /// expiration.
    pub fn new() -> MemoryCache {
        MemoryCache::builder().build()
    }

    /// A builder, to set the byte bound and the default expiration.
    pub fn builder() -> MemoryCacheBuilder {
        MemoryCacheBuilder {
            max_bytes: DEFAULT_MAX_BYTES,
            default_ttl: None,
        }
    }

    /// How many entries the cache holds, expired ones not yet evicted
    /// included; exact after [`MemoryCache::run_pending_tasks`].
    pub fn entry_count(&self) -> u64 {
        self.inner.entries.entry_count()
    }

    /// The bytes the cache counts against its bound; exact after
    /// [`MemoryCache::run_pending_tasks`].
    pub fn weighted_size(&self) -> u64 {
        self.inner.entries.weighted_size()
    }

    /// Does the cache's housekeeping now: evicts expired values and
    /// whatever is over the byte bound. It runs by itself as the cache is
    /// used; tests call it to see the outcome.
    pub async fn run_pending_tasks(&self) {
        self.inner.entries.run_pending_tasks().await;
    }

    async fn get_entry(&self, key: &str) -> Result<(Bytes, Option<SystemTime>), CacheError> {
        match self.inner.entries.get(key).await {
            Some(entry) if entry.is_live() => Ok((entry.value, entry.expires.map(|(_, at)| at))),
            _ => Err(CacheError::not_found(key)),
        }
    }

    async fn put_entry(&self, key: &str, value: Bytes, ttl: Ttl) {
        let ttl = ttl.resolve(self.inner.default_ttl);
        if ttl == Some(Duration::ZERO) {
            self.inner.entries.invalidate(key).await;
            return;
        }
        if Entry::weight(key, &value) > self.inner.max_bytes {
            // Not kept: the old value goes too, or it would be read as if
            // the put had not happened.
            debug!(
                key,
                bytes = value.len(),
                "value larger than the memory cache: not cached"
            );
            self.inner.entries.invalidate(key).await;
            return;
        }
        self.inner.entries.insert(key.to_owned(), Entry::new(value, ttl)).await;
    }

    async fn delete_entry(&self, key: &str) -> bool {
        // moka hands back an expired entry it has not evicted yet: that one
        // was not live.
        self.inner
            .entries
            .remove(key)
            .await
            .is_some_and(|entry| entry.is_live())
    }

    async fn get_or_compute_entry(
        &self,
        key: &str,
        ttl: Ttl,
        init: BoxFuture<'_, Result<Bytes, CacheError>>,
    ) -> Result<Bytes, CacheError> {
        let ttl = ttl.resolve(self.inner.default_ttl);
        let compute = async move {
            debug!(key, "cache miss: computing the value");
            Ok::<_, CacheError>(Entry::new(init.await?, ttl))
        };
        // moka runs one `compute` per missing key; the other callers wait
        // for it and get its value or its error.
        match self.inner.entries.try_get_with_by_ref(key, compute).await {
            Ok(entry) => Ok(entry.value),
            Err(failed) => Err(Arc::unwrap_or_clone(failed)),
        }
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache::new()
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.entry_count())
            .field("bytes", &self.weighted_size())
            .field("max_bytes", &self.inner.max_bytes)
            .field("default_ttl", &self.inner.default_ttl)
            .finish()
    }
}

impl Cache for MemoryCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(Bytes, Option<SystemTime>), CacheError>> {
        Box::pin(self.get_entry(key))
    }

    fn put<'a>(&'a self, key: &'a str, value: Bytes, ttl: Ttl) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            self.put_entry(key, value, ttl).await;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move { Ok(self.delete_entry(key).await) })
    }

    fn get_or_compute<'a>(
        &'a self,
        key: &'a str,
        ttl: Ttl,
        init: BoxFuture<'a, Result<Bytes, CacheError>>,
    ) -> BoxFuture<'a, Result<Bytes, CacheError>> {
        Box::pin(self.get_or_compute_entry(key, ttl, init))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
