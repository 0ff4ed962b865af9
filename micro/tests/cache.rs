//! One conformance suite over every cache backend: Go Micro's get, put
//! and delete with one semantics everywhere (checklist 15-16, and where
//! micro departs from Go on purpose), expiry, the default expiration,
//! typed values and the read-through; then what is particular to each:
//! the memory cache's byte bound and eviction, the Redis cache's layout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use micro::cache::{Cache, CacheError, MemoryCache, Ttl};

/// A fresh cache with the default expiration given.
type Caches = fn(Option<Duration>) -> Pin<Box<dyn Future<Output = Arc<dyn Cache>>>>;

fn memory(default_ttl: Option<Duration>) -> Pin<Box<dyn Future<Output = Arc<dyn Cache>>>> {
    Box::pin(async move {
        let builder = MemoryCache::builder();
        let builder = match default_ttl {
            Some(ttl) => builder.default_ttl(ttl),
            None => builder,
        };
        Arc::new(builder.build()) as Arc<dyn Cache>
    })
}

#[cfg(feature = "redis")]
fn redis_url() -> String {
    std::env::var("MICRO_TEST_REDIS_URL").expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`")
}

/// A Redis cache on the test server, its keys under a prefix of its own.
#[cfg(feature = "redis")]
fn redis(default_ttl: Option<Duration>) -> Pin<Box<dyn Future<Output = Arc<dyn Cache>>>> {
    Box::pin(async move {
        let cache = micro::cache::RedisCache::connect(&redis_url())
            .await
            .unwrap()
            .prefix(unique("cache-test:"));
        let cache = match default_ttl {
            Some(ttl) => cache.default_ttl(ttl),
            None => cache,
        };
        Arc::new(cache) as Arc<dyn Cache>
    })
}

#[cfg(feature = "redis")]
fn unique(prefix: &str) -> String {
    format!("{prefix}{}:", uuid::Uuid::new_v4().simple())
}

/// A short TTL, and long enough to read the value back within it.
const SHORT: Duration = Duration::from_millis(300);

async fn puts_gets_and_deletes(caches: Caches) {
    let cache = caches(None).await;
    cache.put("user/1", "alice".into(), Ttl::Default).await.unwrap();
    let (value, expires) = cache.get("user/1").await.unwrap();
    assert_eq!(&value[..], b"alice");
    assert_eq!(expires, None, "no default expiration: kept until evicted");

    cache
        .put("user/1", b"\x00\xffbob".to_vec().into(), Ttl::Default)
        .await
        .unwrap();
    assert_eq!(
        &cache.get("user/1").await.unwrap().0[..],
        b"\x00\xffbob",
        "a put replaces"
    );

    assert!(cache.delete("user/1").await.unwrap(), "a live value was deleted");
    assert!(cache.get("user/1").await.unwrap_err().is_not_found());
    assert!(!cache.delete("user/1").await.unwrap(), "deleting it again is no error");
}

async fn missing_keys_are_not_found(caches: Caches) {
    let cache = caches(None).await;
    let missing = cache.get("nope").await.unwrap_err();
    assert!(
        matches!(&missing, CacheError::NotFound { key } if key == "nope"),
        "{missing:?}"
    );
    assert_eq!(
        missing.to_string(),
        "key not found in cache",
        "Go Micro's ErrKeyNotFound text"
    );
    let wire = micro::Error::from(missing);
    assert_eq!((wire.id.as_str(), wire.code), ("go.micro.cache", 404));
    assert!(
        !cache.delete("nope").await.unwrap(),
        "a missing key is no error to delete"
    );
}

async fn values_expire(caches: Caches) {
    let cache = caches(None).await;
    let before = SystemTime::now();
    cache.put("short", "1".into(), SHORT.into()).await.unwrap();
    cache
        .put("long", "2".into(), Duration::from_secs(60).into())
        .await
        .unwrap();
    cache.put("replaced", "3".into(), SHORT.into()).await.unwrap();
    cache.put("replaced", "4".into(), Ttl::Never).await.unwrap();

    let (_, expires) = cache.get("short").await.unwrap();
    let expires = expires.expect("an expiry");
    assert!(expires > before, "{expires:?} after {before:?}");
    assert!(
        expires <= SystemTime::now() + SHORT + Duration::from_millis(5),
        "within the TTL: {expires:?}"
    );
    assert_eq!(
        cache.get("replaced").await.unwrap().1,
        None,
        "a put replaces the expiry too"
    );

    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(cache.get("short").await.unwrap_err().is_not_found(), "expired is gone");
    assert!(!cache.delete("short").await.unwrap(), "an expired value is not live");
    assert_eq!(&cache.get("long").await.unwrap().0[..], b"2");
    assert_eq!(&cache.get("replaced").await.unwrap().0[..], b"4");

    // A zero TTL stores nothing, and the old value goes.
    cache.put("long", "5".into(), Duration::ZERO.into()).await.unwrap();
    assert!(cache.get("long").await.unwrap_err().is_not_found());
}

async fn default_expiration(caches: Caches) {
    let cache = caches(Some(SHORT)).await;
    cache.put("default", "1".into(), Ttl::Default).await.unwrap();
    cache.put("none", "2".into(), None.into()).await.unwrap();
    cache.put("never", "3".into(), Ttl::Never).await.unwrap();
    cache
        .put("own", "4".into(), Duration::from_secs(60).into())
        .await
        .unwrap();
    assert!(cache.get("default").await.unwrap().1.is_some(), "the default applies");
    assert_eq!(cache.get("never").await.unwrap().1, None);

    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(cache.get("default").await.unwrap_err().is_not_found());
    assert!(
        cache.get("none").await.unwrap_err().is_not_found(),
        "None is the default"
    );
    assert_eq!(&cache.get("never").await.unwrap().0[..], b"3");
    assert_eq!(&cache.get("own").await.unwrap().0[..], b"4");
}

async fn typed_values(caches: Caches) {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        name: String,
        roles: Vec<String>,
    }
    let cache = caches(None).await;
    let alice = User {
        name: "alice".into(),
        roles: vec!["admin".into()],
    };
    cache.put_json("user/alice", &alice, Ttl::Default).await.unwrap();
    assert_eq!(cache.get_json::<User>("user/alice").await.unwrap(), alice);
    assert_eq!(
        &cache.get("user/alice").await.unwrap().0[..],
        br#"{"name":"alice","roles":["admin"]}"#,
        "JSON on the wire"
    );
    cache.put_json("n", &7u32, SHORT).await.unwrap();
    assert_eq!(cache.get_json::<u32>("n").await.unwrap(), 7);

    cache.put("raw", "not json".into(), Ttl::Default).await.unwrap();
    let err = cache.get_json::<User>("raw").await.unwrap_err();
    assert!(
        matches!(&err, CacheError::Codec { action: "decode", key, .. } if key == "raw"),
        "{err:?}"
    );
    assert!(cache.get_json::<User>("nope").await.unwrap_err().is_not_found());
}

/// 20 callers of one missing key at once, each computing `value` (counted
/// in `calls`) after a wait, so they overlap.
async fn twenty_callers<T, E>(
    cache: &Arc<dyn Cache>,
    key: &str,
    calls: &Arc<AtomicUsize>,
    value: Result<T, E>,
) -> Vec<Result<T, E>>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
    E: From<CacheError> + Clone + std::fmt::Display + Send + Sync + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, calls, start) = (cache.clone(), calls.clone(), start.clone());
            let (key, value) = (key.to_owned(), value.clone());
            tokio::spawn(async move {
                start.wait().await;
                cache
                    .get_or_insert_with(&key, Duration::from_secs(60), || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        value
                    })
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn read_through_computes_once(caches: Caches) {
    let cache = caches(None).await;
    // The memory cache makes concurrent misses wait for one computation;
    // Redis computes on every caller that missed (and the last SET wins).
    let coalesces = cache.name() == "memory";

    let calls = Arc::new(AtomicUsize::new(0));
    let results = twenty_callers(&cache, "report", &calls, Ok::<_, micro::Error>(vec![1u32, 2, 3])).await;
    for result in results {
        assert_eq!(result.unwrap(), [1, 2, 3]);
    }
    let computed = calls.load(Ordering::SeqCst);
    if coalesces {
        assert_eq!(computed, 1, "one computation for 20 callers");
    } else {
        assert!((1..=20).contains(&computed), "{computed}");
    }
    assert_eq!(cache.get_json::<Vec<u32>>("report").await.unwrap(), [1, 2, 3], "stored");
    let again: Vec<u32> = cache
        .get_or_insert_with("report", Ttl::Default, || async {
            Err::<Vec<u32>, _>(micro::Error::internal_server_error("test", "must not run"))
        })
        .await
        .unwrap();
    assert_eq!(again, [1, 2, 3], "a hit computes nothing");
    assert_eq!(calls.load(Ordering::SeqCst), computed);

    // A failed computation: every caller gets its error, code and all;
    // nothing is stored, so the next caller computes again.
    let calls = Arc::new(AtomicUsize::new(0));
    let no_user = micro::Error::not_found("users", "no user 7");
    let results = twenty_callers(&cache, "user/7", &calls, Err::<String, _>(no_user.clone())).await;
    for result in results {
        assert_eq!(result.unwrap_err(), no_user);
    }
    if coalesces {
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
    assert!(
        cache.get("user/7").await.unwrap_err().is_not_found(),
        "errors are not cached"
    );
    let user: String = cache
        .get_or_insert_with("user/7", SHORT, || async { Ok::<_, CacheError>("seven".to_owned()) })
        .await
        .unwrap();
    assert_eq!(user, "seven");
    assert!(cache.get("user/7").await.unwrap().1.is_some(), "put with the TTL given");
}

/// The suite for one backend: `suite!(name $(, #[attr])*)`.
macro_rules! suite {
    ($backend:ident $(, #[$attr:meta])*) => {
        mod $backend {
            $(#[$attr])*
            #[tokio::test]
            async fn puts_gets_and_deletes() {
                super::puts_gets_and_deletes(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn missing_keys_are_not_found() {
                super::missing_keys_are_not_found(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn values_expire() {
                super::values_expire(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn default_expiration() {
                super::default_expiration(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test]
            async fn typed_values() {
                super::typed_values(super::$backend).await
            }
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn read_through_computes_once() {
                super::read_through_computes_once(super::$backend).await
            }
        }
    };
}

suite!(memory);
suite!(
    redis,
    #[cfg(feature = "redis")],
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
);

#[tokio::test]
async fn the_memory_cache_evicts_expired_values() {
    let cache = MemoryCache::new();
    for i in 0..10 {
        cache
            .put(&format!("k{i}"), vec![0; 100].into(), Duration::from_millis(100).into())
            .await
            .unwrap();
    }
    cache.put("kept", "1".into(), Ttl::Default).await.unwrap();
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 11);

    // Hidden from reads at once; evicted at the next tick of moka's timer
    // wheel, whose finest buckets span about a second.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(cache.get("k0").await.unwrap_err().is_not_found());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        cache.run_pending_tasks().await;
        if cache.entry_count() == 1 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.entry_count(), 1, "expired values are evicted, not just hidden");
    assert_eq!(cache.weighted_size(), ("kept".len() + 1 + 64) as u64);
}

#[tokio::test]
async fn an_idle_memory_cache_lets_go_of_expired_values() {
    let cache = MemoryCache::new();
    cache
        .put("k", vec![0; 1000].into(), Duration::from_millis(100).into())
        .await
        .unwrap();
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 1);
    // Nobody uses the cache: its sweep (every 5 s) evicts the value.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(cache.entry_count(), 0);
    assert_eq!(cache.weighted_size(), 0);
}

#[tokio::test]
async fn the_memory_cache_holds_at_most_its_byte_bound() {
    const MAX: u64 = 16 * 1024;
    let cache = MemoryCache::builder().max_bytes(MAX).build();
    for i in 0..100 {
        cache
            .put(&format!("k{i:03}"), vec![7; 1000].into(), Ttl::Default)
            .await
            .unwrap();
    }
    cache.run_pending_tasks().await;
    assert!(cache.weighted_size() <= MAX, "{} bytes", cache.weighted_size());
    let held = cache.entry_count();
    assert!((1..=15).contains(&held), "{held} entries of 1068 bytes in 16 KiB");
    let mut live = 0;
    for i in 0..100 {
        if cache.get(&format!("k{i:03}")).await.is_ok() {
            live += 1;
        }
    }
    assert_eq!(live, held, "what is counted is what can be read");

    // A value larger than the whole cache is not kept, nor is the one it
    // replaced.
    cache.put("big", "small".into(), Ttl::Default).await.unwrap();
    cache
        .put("big", vec![0; MAX as usize].into(), Ttl::Default)
        .await
        .unwrap();
    assert!(cache.get("big").await.unwrap_err().is_not_found());
}

#[test]
fn a_memory_cache_can_be_built_outside_a_runtime() {
    let cache = MemoryCache::builder().default_ttl(Duration::from_secs(1)).build();
    assert_eq!(cache.entry_count(), 0);
}

/// Go Micro's Redis cache layout, both ways: the raw key, the raw value,
/// `SET` with `PX`, the expiry from `PTTL`.
#[cfg(feature = "redis")]
mod redis_layout {
    use std::time::{Duration, SystemTime};

    use micro::cache::{Cache, RedisCache, Ttl};
    use redis::aio::MultiplexedConnection;

    async fn raw() -> MultiplexedConnection {
        redis::Client::open(super::redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn pttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
        redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
    }

    #[tokio::test]
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
    async fn a_go_value_reads_in_micro() {
        let mut conn = raw().await;
        let cache = RedisCache::connect(&super::redis_url()).await.unwrap();
        // Go's Put: `SET key value` (go-redis writes strings and []byte raw).
        let key = super::unique("go-put:");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(b"\x00\xffgo bytes")
            .query_async(&mut conn)
            .await
            .unwrap();
        let (value, expires) = cache.get(&key).await.unwrap();
        assert_eq!(&value[..], b"\x00\xffgo bytes");
        assert_eq!(expires, None, "no TTL reads as never (checklist 16)");

        let with_ttl = super::unique("go-put-ttl:");
        let _: () = redis::cmd("SET")
            .arg(&with_ttl)
            .arg("v")
            .arg("PX")
            .arg(60_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        let (_, expires) = cache.get(&with_ttl).await.unwrap();
        let left = expires.unwrap().duration_since(SystemTime::now()).unwrap();
        assert!(
            left > Duration::from_secs(55) && left <= Duration::from_secs(60),
            "{left:?}"
        );
    }

    #[tokio::test]
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
    async fn a_micro_put_is_a_raw_set_with_its_ttl() {
        let mut conn = raw().await;
        let cache = RedisCache::connect(&super::redis_url()).await.unwrap();
        let key = super::unique("micro-put:");
        cache
            .put(&key, b"\x00raw".to_vec().into(), Duration::from_secs(30).into())
            .await
            .unwrap();
        let value: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
        assert_eq!(value, b"\x00raw");
        let ttl = pttl(&mut conn, &key).await;
        assert!((29_000..=30_000).contains(&ttl), "PTTL {ttl}");

        cache.put(&key, "forever".into(), Ttl::Never).await.unwrap();
        assert_eq!(pttl(&mut conn, &key).await, -1, "no TTL");
        assert!(cache.delete(&key).await.unwrap());
        assert_eq!(pttl(&mut conn, &key).await, -2, "gone");
    }

    #[tokio::test]
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
    async fn a_prefix_goes_before_the_key() {
        let mut conn = raw().await;
        let prefix = super::unique("prefixed:");
        let cache = RedisCache::connect(&super::redis_url())
            .await
            .unwrap()
            .prefix(prefix.clone());
        cache.put("k", "v".into(), Ttl::Default).await.unwrap();
        let value: Option<String> = redis::cmd("GET")
            .arg(format!("{prefix}k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some("v"), "the Redis key is the prefix and the key");
    }
}
