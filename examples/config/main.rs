//! A greeter whose settings come from a YAML file, overridden by `GREETER_*`
//! environment variables, with a feature flag reloaded live.
//!
//! ```sh
//! GREETER_GREETING=Howdy cargo run -p micro-examples --example config -- --config examples/config/config.yaml
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Greeter.Hello' \
//!      -d '{"name": "alice"}' http://127.0.0.1:8090
//! # {"message":"Howdy alice"}; now set `loud: true` in config.yaml, and again:
//! # {"message":"HOWDY ALICE!"}
//! ```
//!
//! The file's `micro` section sets the service's address; `--config` also
//! makes the file the first source of `Service::config`, and the env
//! source added here wins over it. Every change is checked against
//! `Settings` before it applies: write `pool: many` and the change is
//! refused, the last good config stays and the error is logged.

use std::time::Duration;

use micro::config::{Config, Env, Secret};
use micro::prelude::*;
use micro_examples::helloworld::{Request, Response};

/// The settings the greeter needs; a reload that breaks them is refused.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Settings {
    greeting: String,
    db: Db,
    features: Features,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Db {
    url: String,
    /// Printed as `[redacted]`.
    password: Secret<String>,
    pool: u32,
    /// Go's duration text: `5s`, `1m30s`.
    timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Features {
    loud: bool,
}

/// Greets with the configured greeting.
pub struct Greeter {
    config: Config,
}

#[micro::service]
impl Greeter {
    /// Hello greets the caller, loudly when the `features.loud` flag is on.
    #[endpoint]
    async fn hello(&self, req: Request) -> Result<Response> {
        let greeting: String = self.config.get("greeting")?;
        let message = format!("{greeting} {}", req.name);
        Ok(Response {
            message: match self.config.get_or("features.loud", false) {
                true => format!("{}!", message.to_uppercase()),
                false => message,
            },
        })
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    let service = Service::new("greeter").config_source(Env::new().stripped_prefix("GREETER"));
    let config = service.config().await?;
    config.validate::<Settings>("")?;
    let settings: Settings = config.scan("")?;
    tracing::info!(?settings, "loaded");
    for line in config.explain("db") {
        tracing::info!(%line, "db setting");
    }

    // The feature flag, followed live.
    let mut loud = config.watch::<bool>("features.loud")?;
    tokio::spawn(async move {
        while let Ok(on) = loud.changed().await {
            tracing::info!(loud = on, "feature flag changed");
        }
    });
    // Refused changes are reported here (and logged by micro).
    let mut errors = config.errors();
    tokio::spawn(async move {
        while errors.changed().await.is_ok() {
            if let Some(err) = errors.borrow_and_update().clone() {
                tracing::warn!(%err, "config change refused");
            }
        }
    });

    service.handle(Greeter { config }).run().await
}
