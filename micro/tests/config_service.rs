//! A service's config: the `--config` file sets the service's own settings
//! (its `micro` section) and is the first source of `Service::config`,
//! which handlers read and which reloads when the file changes; sources
//! the builder adds win over the file.

use std::sync::Arc;
use std::time::Duration;

use micro::Flags;
use micro::config::{Config, Env, Memory};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};

#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    key: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Told {
    value: String,
}

/// Answers with the config value at the asked path.
struct Settings {
    config: Config,
}

#[micro::service]
impl Settings {
    #[endpoint]
    async fn get(&self, req: Ask) -> Result<Told> {
        Ok(Told {
            value: self.config.get(&req.key)?,
        })
    }
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("micro-config-service-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_config_file_configures_the_service_and_its_handlers() {
    let dir = temp_dir();
    let path = dir.join("app.yaml");
    std::fs::write(
        &path,
        "micro:\n  server_address: 127.0.0.1:0\n  server_version: \"7\"\ngreeting: hello\nport: \"8080\"\n",
    )
    .unwrap();
    let flags = Flags::parse_from(["svc", "--config", path.to_str().unwrap()]).unwrap();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let service = Service::new("settings")
        .flags(flags)
        .registry(Arc::clone(&registry))
        .config_source(Env::from_vars([("APP_GREETING", "from env")]).stripped_prefix("APP"));
    let config = service.config().await.unwrap();
    assert_eq!(config.get::<u16>("port").unwrap(), 8080);
    // The added source wins over the file.
    assert_eq!(config.get::<String>("greeting").unwrap(), "from env");
    let origin = &config.explain("greeting")[0].origin;
    assert_eq!((&*origin.source, origin.key.as_str()), ("env", "APP_GREETING"));
    // The same config each time it is asked for.
    config.set("extra", "one").unwrap();
    assert_eq!(service.config().await.unwrap().get::<String>("extra").unwrap(), "one");

    let running = service
        .handle(Settings { config: config.clone() })
        .start()
        .await
        .unwrap();
    assert_eq!(
        running.record().version,
        "7",
        "the file's micro section set the version"
    );
    let client = SettingsClient::new("settings", running.client());
    let told = client.get(Ask { key: "port".into() }).await.unwrap();
    assert_eq!(told.value, "8080");
    // A missing value is the service's error, with its path.
    let err = client.get(Ask { key: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code, 500);
    assert!(err.detail.contains("`nope`"), "{err:?}");

    // The file is watched: a change reaches the handler.
    let mut port = config.watch::<u16>("port").unwrap();
    std::fs::write(&path, "micro:\n  server_version: \"7\"\ngreeting: hello\nport: 9090\n").unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(2), port.changed()).await;
    assert_eq!(*changed.expect("the change arrived within 2 s").unwrap(), 9090);
    assert_eq!(client.get(Ask { key: "port".into() }).await.unwrap().value, "9090");

    running.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_given_config_is_the_services() {
    let memory = Memory::from_json(serde_json::json!({"greeting": "hi"}));
    let config = Config::builder().source(memory.clone()).load().await.unwrap();
    let service = Service::new("given").flags(Flags::none()).with_config(config);
    let got = service.config().await.unwrap();
    assert_eq!(got.get::<String>("greeting").unwrap(), "hi");
    let mut greeting = got.watch::<String>("greeting").unwrap();
    memory.set("greeting", serde_json::json!("hey"));
    let changed = tokio::time::timeout(Duration::from_secs(1), greeting.changed()).await;
    assert_eq!(changed.unwrap().unwrap(), "hey");
}

#[tokio::test]
async fn without_a_file_or_sources_the_config_is_empty_and_settable() {
    let service = Service::new("bare").flags(Flags::none());
    let config = service.config().await.unwrap();
    assert!(config.snapshot().keys().is_empty());
    assert!(config.get::<String>("a").is_err());
    config.set("a.b", 1).unwrap();
    assert_eq!(config.get::<String>("a.b").unwrap(), "1");
}
