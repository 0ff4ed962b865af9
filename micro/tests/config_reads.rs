//! Reading config: typed reads and their errors, provenance, secrets kept
//! out of every printed form, `${VAR}` done value by value, runtime
//! overrides validated like any change, and `sync` with a source down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use micro::BoxFuture;
use micro::config::{Config, ConfigError, Env, Layer, Memory, Secret, Source, SourceError};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    host: String,
    port: u16,
    password: Secret<String>,
}

#[tokio::test]
async fn errors_name_the_path_the_source_and_the_expectation() {
    let config = Config::builder()
        .source(Memory::from_json(json!({"db": {"host": "h", "port": 5432}})))
        .source(Env::from_vars([("APP_DB_PORT", "fifty")]).stripped_prefix("APP"))
        .load()
        .await
        .unwrap();
    let err = config.get::<u16>("db.port").unwrap_err();
    let ConfigError::Value { path, origin, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, "db.port");
    assert_eq!(origin, "env APP_DB_PORT");
    assert!(
        message.contains("expected an integer (u16)") && message.contains("\"fifty\""),
        "{message}"
    );
    // The same through scan, and text where text is asked for.
    assert!(config.scan::<Db>("db").unwrap_err().to_string().contains("db.port"));
    assert_eq!(config.get::<String>("db.port").unwrap(), "fifty");
    // get_or: missing and misfit values give the default.
    assert_eq!(config.get_or("db.pool", 4u32), 4);
    assert_eq!(config.get_or("db.port", 1u16), 1);
    assert!(matches!(
        config.get::<u16>("db.pool"),
        Err(ConfigError::NotFound { .. })
    ));
    assert_eq!(config.get::<Option<u16>>("db.pool").unwrap(), None);
}

#[tokio::test]
async fn secrets_never_print() {
    let config = Config::builder()
        .source(Memory::from_json(json!({
            "db": {"host": "h", "port": "not-a-port", "password": "hunter2"},
            "api": {"auth_token": "tok-123", "plain": "visible"},
            "custom": {"key": "sesame"},
        })))
        .secret("custom.key")
        .load()
        .await
        .unwrap();
    let debug = format!("{config:?}");
    for secret in ["hunter2", "tok-123", "sesame"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("visible"));
    let explained: Vec<String> = config.explain("").iter().map(ToString::to_string).collect();
    assert!(explained.contains(&"db.password = \"[redacted]\" (from memory db.password)".to_owned()));
    assert!(
        explained
            .iter()
            .all(|l| !l.contains("hunter2") && !l.contains("tok-123") && !l.contains("sesame"))
    );
    // A secret that does not fit is named by type, not by value, whoever
    // reports it (serde's own messages quote values).
    let err = config.get::<u32>("custom.key").unwrap_err().to_string();
    assert!(err.contains("found a string") && !err.contains("sesame"), "{err}");
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Mode {
        Fast,
    }
    let err = config.get::<Mode>("custom.key").unwrap_err().to_string();
    assert!(err.contains("custom.key") && !err.contains("sesame"), "{err}");
    let err = config.get::<Vec<u8>>("api.auth_token").unwrap_err().to_string();
    assert!(!err.contains("tok-123"), "{err}");
    // The application still reads the values, and Secret<T> keeps them out of its own logs.
    assert_eq!(config.get::<String>("db.password").unwrap(), "hunter2");
    let password: Secret<String> = config.get("db.password").unwrap();
    assert_eq!(format!("{password:?}"), "[redacted]");
}

#[tokio::test]
async fn variables_are_substituted_value_by_value() {
    let config = Config::builder()
        .source(Memory::from_json(json!({
            "url": "postgres://${USER}:${DB_PASSWORD}@${HOST:-localhost}/db",
            "quoted": "${QUOTE}",
            "literal": "$${USER}",
        })))
        .variables(|name| match name {
            "USER" => Some("app".to_owned()),
            "DB_PASSWORD" => Some("p\"w\\d".to_owned()),
            "QUOTE" => Some("\"},{\"x\":1".to_owned()),
            _ => None,
        })
        .load()
        .await
        .unwrap();
    assert_eq!(
        config.get::<String>("url").unwrap(),
        "postgres://app:p\"w\\d@localhost/db"
    );
    // A value full of JSON punctuation stays one value (Go's substitution on the merged text breaks here).
    assert_eq!(config.get::<String>("quoted").unwrap(), "\"},{\"x\":1");
    assert!(!config.snapshot().contains("x"));
    assert_eq!(config.get::<String>("literal").unwrap(), "${USER}");
    // A value that takes in a secret variable is a secret itself.
    let explained = config.explain("url");
    assert!(explained[0].secret, "{explained:?}");
    assert!(!format!("{config:?}").contains("p\"w"));
}

#[tokio::test]
async fn set_is_validated_and_stays_above_the_sources() {
    let memory = Memory::from_json(json!({"db": {"host": "h", "port": 1, "password": "p"}}));
    let config = Config::builder()
        .source(memory.clone())
        .validate::<Db>("db")
        .load()
        .await
        .unwrap();
    assert!(config.set("db.port", 2).unwrap());
    assert_eq!(config.get::<u16>("db.port").unwrap(), 2);
    // A set that breaks the validated type is refused; the config is unchanged.
    let err = config.set("db.port", "two").unwrap_err();
    assert!(matches!(err, ConfigError::Refused(_)), "{err:?}");
    assert_eq!(config.get::<u16>("db.port").unwrap(), 2);
    assert!(config.errors().borrow().is_some());
    // The override survives a change of the source under it; unset shows the source again.
    memory.set("db.port", json!(3));
    config.sync().await.unwrap();
    assert_eq!(config.get::<u16>("db.port").unwrap(), 2);
    assert!(config.errors().borrow().is_none(), "a good change clears the refusal");
    config.unset("db.port").unwrap();
    assert_eq!(config.get::<u16>("db.port").unwrap(), 3);
    // An unset leaves no empty object to hide a source's value.
    memory.set("flags", json!(false));
    config.sync().await.unwrap();
    config.set("flags.beta", true).unwrap();
    config.unset("flags.beta").unwrap();
    assert!(!config.get::<bool>("flags").unwrap());
    // A validator added later is checked now.
    assert!(config.validate::<Vec<String>>("db").is_err());
}

/// A source that can be switched off.
struct Flaky {
    up: Arc<AtomicBool>,
    doc: Arc<std::sync::Mutex<serde_json::Value>>,
}

impl Source for Flaky {
    fn name(&self) -> String {
        "flaky".to_owned()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(async move {
            match self.up.load(Ordering::SeqCst) {
                true => Layer::from_json("flaky", self.doc.lock().unwrap().clone()),
                false => Err(SourceError::new("flaky", "connection refused")),
            }
        })
    }
}

#[tokio::test]
async fn sync_with_a_source_down_keeps_its_values() {
    let up = Arc::new(AtomicBool::new(true));
    let doc = Arc::new(std::sync::Mutex::new(json!({"remote": {"limit": 10}})));
    let local = Memory::from_json(json!({"local": 1}));
    let config = Config::builder()
        .source(Flaky {
            up: Arc::clone(&up),
            doc: Arc::clone(&doc),
        })
        .source(local.clone())
        .load()
        .await
        .unwrap();
    up.store(false, Ordering::SeqCst);
    local.set("local", json!(2));
    let err = config.sync().await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    // Go drops the down source's keys here; micro keeps them, and applies the rest.
    assert_eq!(config.get::<u32>("remote.limit").unwrap(), 10);
    assert_eq!(config.get::<u32>("local").unwrap(), 2);
    // The outage stays reported while the source is down, whatever else changes.
    config.set("other", 1).unwrap();
    assert!(matches!(&*config.errors().borrow(), Some(ConfigError::Source(_))));
    // Back up: its new values apply and the report clears.
    *doc.lock().unwrap() = json!({"remote": {"limit": 20}});
    up.store(true, Ordering::SeqCst);
    assert!(config.sync().await.unwrap());
    assert_eq!(config.get::<u32>("remote.limit").unwrap(), 20);
    assert!(config.errors().borrow().is_none());
}

#[tokio::test]
async fn a_source_that_cannot_be_read_fails_the_load_unless_optional() {
    let down = || Flaky {
        up: Arc::new(AtomicBool::new(false)),
        doc: Arc::default(),
    };
    let err = Config::builder().source(down()).load().await.unwrap_err();
    assert!(matches!(err, ConfigError::Source(_)), "{err:?}");
    let config = Config::builder()
        .optional_source(down())
        .source(Memory::from_json(json!({"a": 1})))
        .load()
        .await
        .unwrap();
    assert_eq!(config.get::<u8>("a").unwrap(), 1);
    assert!(config.errors().borrow().is_some(), "the missing source is reported");
}

#[tokio::test]
async fn one_sources_refused_change_does_not_take_anothers_with_it() {
    let first = Memory::from_json(json!({"n": 1}));
    let second = Memory::from_json(json!({"m": 1}));
    let config = Config::builder()
        .source(first.clone())
        .source(second.clone())
        .validate::<u16>("n")
        .load()
        .await
        .unwrap();
    let mut m = config.watch::<u16>("m").unwrap();
    // Both changes are queued together; the first is refused.
    first.set("n", json!("bad"));
    second.set("m", json!(2));
    let changed = tokio::time::timeout(std::time::Duration::from_secs(1), m.changed()).await;
    assert_eq!(*changed.unwrap().unwrap(), 2);
    assert_eq!(config.get::<u16>("n").unwrap(), 1);
    assert!(matches!(&*config.errors().borrow(), Some(ConfigError::Refused(_))));
}
