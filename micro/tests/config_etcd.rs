//! The etcd config source against a real etcd: Go Micro's key mapping, a
//! value that is not JSON, changes reaching watches, and an outage. Needs
//! the `etcd` feature and `MICRO_TEST_ETCD_ENDPOINTS` (`netns-run
//! --services etcd` sets it); the outage test runs its own etcd.
#![cfg(feature = "etcd")]

mod etcd_server;

use std::time::{Duration, Instant};

use etcd_client::{Client, DeleteOptions};
use etcd_server::EtcdServer;
use micro::config::{Config, ConfigError, Etcd};

/// How soon a change in etcd must reach the config.
const WITHIN: Duration = Duration::from_secs(1);

fn endpoints() -> Vec<String> {
    let list =
        std::env::var("MICRO_TEST_ETCD_ENDPOINTS").expect("MICRO_TEST_ETCD_ENDPOINTS (netns-run --services etcd)");
    list.split(',').map(str::trim).map(str::to_owned).collect()
}

/// A prefix of this test's own, deleted (with everything under it) when
/// dropped.
struct Prefix {
    endpoints: Vec<String>,
    /// The first segment, unique to the test: `/micro-test-<uuid>`.
    root: String,
}

impl Prefix {
    fn new() -> Prefix {
        Prefix::on(endpoints())
    }

    fn on(endpoints: Vec<String>) -> Prefix {
        Prefix {
            endpoints,
            root: format!("/micro-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// `/micro-test-<uuid><rest>`.
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.root)
    }

    /// The first segment of the config path when the prefix is kept.
    fn segment(&self) -> &str {
        &self.root[1..]
    }

    async fn client(&self) -> Client {
        Client::connect(&self.endpoints, None).await.unwrap()
    }

    async fn put(&self, rest: &str, value: &str) {
        self.client().await.put(self.key(rest), value, None).await.unwrap();
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let endpoints = self.endpoints.clone();
        let root = self.root.clone();
        // Drop cannot await: clean up on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                let cleanup = async {
                    let mut client = Client::connect(&endpoints, None).await.ok()?;
                    client.delete(root, Some(DeleteOptions::new().with_prefix())).await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(3), cleanup).await;
            });
        })
        .join();
    }
}

/// Logs to the test output with `RUST_LOG` set.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits for `watch` to read `want`; returns how long it took since
/// `started` (just before the write).
async fn arrives<T>(watch: &mut micro::config::Watch<T>, want: T, started: Instant) -> Duration
where
    T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let wait = async {
        while *watch.get() != want {
            watch.changed().await.unwrap();
        }
    };
    tokio::time::timeout(WITHIN.saturating_sub(started.elapsed()), wait)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not become {want:?} within {WITHIN:?} (it is {:?})",
                watch.path(),
                watch.get()
            )
        });
    started.elapsed()
}

/// Waits until `errors` holds an error (`error`) or none (`!error`).
async fn reported(
    errors: &mut tokio::sync::watch::Receiver<Option<ConfigError>>,
    within: Duration,
    error: bool,
) -> Option<ConfigError> {
    let seen = tokio::time::timeout(within, errors.wait_for(|e| e.is_some() == error))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "config errors did not become {} within {within:?}",
                if error { "an error" } else { "none" }
            )
        })
        .unwrap();
    seen.clone()
}

#[tokio::test]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn go_mapping_without_strip_keeps_the_prefix_in_the_path() {
    // Go's `/micro/config/db` = `{"a":1}` is `micro.config.db.a` = 1.
    let prefix = Prefix::new();
    prefix.put("/micro/config/db", r#"{"a":1}"#).await;
    let config = Config::builder()
        .source(Etcd::new().endpoints(endpoints()).prefix(prefix.key("/micro/config/")))
        .load()
        .await
        .unwrap();
    let path = format!("{}.micro.config.db.a", prefix.segment());
    assert_eq!(config.get::<i64>(&path).unwrap(), 1);
    let explained = config.explain(&path);
    assert_eq!(explained.len(), 1);
    assert_eq!(&*explained[0].origin.source, "etcd");
    assert_eq!(explained[0].origin.key, prefix.key("/micro/config/db"));
    assert_eq!(config.snapshot().keys(), [path]);
}

#[tokio::test]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn go_mapping_with_strip_makes_keys_paths_and_a_one_segment_object_the_root() {
    let prefix = Prefix::new();
    prefix.put("/db/host", r#""db.local""#).await;
    prefix.put("/db/port", "5432").await;
    prefix
        .put(
            "/default",
            r#"{"name": "svc", "db": {"user": "u"}, "tags": ["a", "b"]}"#,
        )
        .await;
    prefix.put("/level", r#""info""#).await;
    let config = Config::builder()
        .source(
            Etcd::new()
                .endpoints(endpoints())
                .prefix(prefix.key("/"))
                .strip_prefix(true),
        )
        .load()
        .await
        .unwrap();
    assert_eq!(
        config.snapshot().to_json(),
        serde_json::json!({
            "db": {"host": "db.local", "port": 5432, "user": "u"},
            "name": "svc",
            "tags": ["a", "b"],
            "level": "info",
        })
    );
    let port = config.explain("db.port");
    assert_eq!(port[0].origin.key, prefix.key("/db/port"));
    let user = config.explain("db.user");
    assert_eq!(user[0].origin.key, prefix.key("/default"));
}

#[tokio::test]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn a_value_that_is_not_json_fails_the_load_naming_its_key() {
    let prefix = Prefix::new();
    prefix.put("/db/host", r#""h""#).await;
    prefix.put("/db/port", "not json").await;
    let err = Config::builder()
        .source(
            Etcd::new()
                .endpoints(endpoints())
                .prefix(prefix.key("/"))
                .strip_prefix(true),
        )
        .load()
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigError::Source(_)), "{err:?}");
    assert!(err.to_string().contains(&prefix.key("/db/port")), "{err}");
}

#[tokio::test]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn nothing_under_the_prefix_is_an_empty_config_that_fills_in() {
    let prefix = Prefix::new();
    let config = Config::builder()
        .source(
            Etcd::new()
                .endpoints(endpoints())
                .prefix(prefix.key("/"))
                .strip_prefix(true),
        )
        .load()
        .await
        .unwrap();
    assert_eq!(config.snapshot().to_json(), serde_json::json!({}));
    let mut port = config.watch::<Option<u16>>("db.port").unwrap();
    let started = Instant::now();
    prefix.put("/db/port", "5432").await;
    arrives(&mut port, Some(5432), started).await;
}

#[tokio::test]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn an_etcd_change_reaches_a_watch_within_a_second() {
    let prefix = Prefix::new();
    prefix.put("/db/host", r#""a""#).await;
    let config = Config::builder()
        .source(
            Etcd::new()
                .endpoints(endpoints())
                .prefix(prefix.key("/"))
                .strip_prefix(true),
        )
        .load()
        .await
        .unwrap();
    let mut host = config.watch::<Option<String>>("db.host").unwrap();
    assert_eq!(host.get().as_deref(), Some("a"));

    let mut raw = prefix.client().await;
    let started = Instant::now();
    raw.put(prefix.key("/db/host"), r#""b""#, None).await.unwrap();
    let put = arrives(&mut host, Some("b".to_owned()), started).await;
    let started = Instant::now();
    raw.delete(prefix.key("/db/host"), None).await.unwrap();
    let deleted = arrives(&mut host, None, started).await;
    let started = Instant::now();
    raw.put(prefix.key("/db/host"), r#""c""#, None).await.unwrap();
    let again = arrives(&mut host, Some("c".to_owned()), started).await;
    eprintln!("etcd change to watch: put {put:?}, delete {deleted:?}, put again {again:?}");
    assert_eq!(config.explain("db.host")[0].origin.key, prefix.key("/db/host"));
}

#[tokio::test]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn a_put_that_is_not_json_is_reported_and_the_last_good_value_stays() {
    let prefix = Prefix::new();
    prefix.put("/db/port", "1").await;
    let config = Config::builder()
        .source(
            Etcd::new()
                .endpoints(endpoints())
                .prefix(prefix.key("/"))
                .strip_prefix(true),
        )
        .load()
        .await
        .unwrap();
    let mut errors = config.errors();
    let mut port = config.watch::<u16>("db.port").unwrap();

    let started = Instant::now();
    prefix.put("/db/port", "{oops").await;
    let err = reported(&mut errors, WITHIN.saturating_sub(started.elapsed()), true)
        .await
        .unwrap();
    assert!(err.to_string().contains(&prefix.key("/db/port")), "{err}");
    assert_eq!(config.get::<u16>("db.port").unwrap(), 1);

    let started = Instant::now();
    prefix.put("/db/port", "2").await;
    arrives(&mut port, 2, started).await;
    assert!(reported(&mut errors, WITHIN, false).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn a_source_down_then_back_keeps_its_values_and_catches_up() {
    logs();
    let mut server = EtcdServer::start();
    let prefix = Prefix::on(vec![server.endpoint()]);
    prefix.put("/db/host", r#""before""#).await;
    prefix.put("/db/port", "1").await;
    let config = Config::builder()
        .source(
            Etcd::new()
                .endpoints([server.endpoint()])
                .prefix(prefix.key("/"))
                .strip_prefix(true),
        )
        .load()
        .await
        .unwrap();
    let mut errors = config.errors();
    let mut host = config.watch::<String>("db.host").unwrap();
    let started = Instant::now();
    prefix.put("/db/host", r#""live""#).await;
    arrives(&mut host, "live".to_owned(), started).await;

    server.kill();
    let down = Instant::now();
    let err = reported(&mut errors, Duration::from_secs(5), true).await.unwrap();
    eprintln!("outage reported after {:?}: {err}", down.elapsed());
    assert!(matches!(err, ConfigError::Source(_)), "{err:?}");
    assert_eq!(config.get::<String>("db.host").unwrap(), "live");
    assert_eq!(config.get::<u16>("db.port").unwrap(), 1);
    // Several failed attempts later the values are still there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(config.get::<String>("db.host").unwrap(), "live");
    assert!(errors.borrow().is_some());

    server.spawn();
    let up = Instant::now();
    let mut raw = tokio::time::timeout(Duration::from_secs(10), prefix.client())
        .await
        .unwrap();
    raw.put(prefix.key("/db/host"), r#""interim""#, None).await.unwrap();
    let put = raw.put(prefix.key("/db/host"), r#""after""#, None).await.unwrap();
    // Compacting the revisions after the last one the source saw makes it
    // read everything again if it reconnects after this (likely, as its
    // pauses have grown); before, it sees the puts as events.
    let revision = put.header().unwrap().revision();
    raw.compact(revision, None).await.unwrap();
    let wait = async {
        while host.get() != "after" {
            host.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("the change made after the restart arrives");
    eprintln!(
        "change after the restart arrived {:?} after etcd was back",
        up.elapsed()
    );
    reported(&mut errors, Duration::from_secs(1), false).await;

    // Followed as before.
    let mut port = config.watch::<u16>("db.port").unwrap();
    let started = Instant::now();
    prefix.put("/db/port", "2").await;
    arrives(&mut port, 2, started).await;
}
