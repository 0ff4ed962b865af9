//! Dynamic config: Go Micro's `config`, typed, traced to its sources, and
//! reloaded safely.
//!
//! Sources ([`Env`], [`File`], [`CommandLine`], [`Memory`], `Etcd` with the
//! `etcd` feature, or your own [`Source`]) are merged in load order with
//! Go Micro's rules: later sources win, objects merge key by key, arrays
//! and scalars replace (and, as in Go, a later object does not replace an
//! earlier non-empty scalar). The env and etcd key mappings are Go
//! Micro's, so one environment, file or etcd prefix configures a Go
//! service and a micro one alike.
//!
//! ```no_run
//! use micro::config::{Config, Env, File};
//!
//! #[derive(serde::Deserialize)]
//! struct Db { host: String, port: u16 }
//!
//! # async fn demo() -> Result<(), micro::config::ConfigError> {
//! let config = Config::builder()
//!     .source(File::new("config.yaml"))
//!     .source(Env::new().stripped_prefix("APP"))
//!     .validate::<Db>("db")
//!     .load()
//!     .await?;
//! let port: u16 = config.get("db.port")?;
//! let db: Db = config.scan("db")?;
//! for line in config.explain("db") {
//!     println!("{line}"); // db.port = "5433" (from env APP_DB_PORT)
//! }
//! let mut flag = config.watch::<bool>("features.beta")?;
//! while let Ok(on) = flag.changed().await {
//!     println!("beta is now {on}");
//! }
//! # Ok(()) }
//! ```
//!
//! Reads parse text on demand (`"8080"` is a number, `8080` a string,
//! `"1m30s"` a `Duration`), and an error names the path, where the value
//! was set and what was expected. A change to a watched source is merged,
//! checked against the types registered with
//! [`validate`](ConfigBuilder::validate) and swapped in at once; a change
//! that fails, or a source that cannot be read, leaves the last good
//! config and is reported through [`Config::errors`]. Values under keys
//! that name secrets (`password`, `token`, ...) or paths marked with
//! [`secret`](ConfigBuilder::secret) print as `[redacted]` in `{:?}`,
//! errors and [`explain`](Config::explain).

mod de;
mod error;
mod node;
mod reload;
mod secret;
mod snapshot;
pub mod source;
mod substitute;
mod watch;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::error::ConfigError;
pub use self::node::Origin;
pub use self::secret::Secret;
pub use self::snapshot::{Explanation, Snapshot};
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use self::source::Etcd;
pub use self::source::{CommandLine, Env, File, Format, Layer, Memory, Source, SourceError, Updates};
pub use self::watch::Watch;

use self::reload::{Entry, Rules, Shared, Validator, Variables};

/// A loaded config: cheap to clone, shared by every clone. Reads see the
/// latest good snapshot; watches see changes as they apply. Dropping the
/// last clone (or [`close`](Config::close)) stops every source's watch.
#[derive(Clone)]
pub struct Config {
    shared: Arc<Shared>,
}

impl Config {
    /// A config to assemble from sources.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The current snapshot, to make several reads of one state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.shared.current.borrow())
    }

    /// The value at the dotted `path` as a `T`; see [`Snapshot::get`].
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        self.snapshot().get(path)
    }

    /// The value at `path`, or `default` when nothing (or nothing that
    /// fits) is set there; see [`Snapshot::get_or`].
    pub fn get_or<T: DeserializeOwned>(&self, path: &str, default: T) -> T {
        self.snapshot().get_or(path, default)
    }

    /// The subtree at `path` read into a struct; see [`Snapshot::scan`].
    pub fn scan<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        self.snapshot().scan(path)
    }

    /// Where each value at or under `path` came from; see
    /// [`Snapshot::explain`].
    pub fn explain(&self, path: &str) -> Vec<Explanation> {
        self.snapshot().explain(path)
    }

    /// Watches the value at `path` as a `T`; see [`Watch`].
    pub fn watch<T: DeserializeOwned>(&self, path: &str) -> Result<Watch<T>, ConfigError> {
        Watch::new(self.shared.current.subscribe(), path)
    }

    /// Every new snapshot, latest value first.
    pub fn snapshots(&self) -> tokio::sync::watch::Receiver<Arc<Snapshot>> {
        self.shared.current.subscribe()
    }

    /// The last reload's error, `None` once a reload succeeds: a change
    /// refused by a validator, or a source that could not be read (its last
    /// values stay).
    pub fn errors(&self) -> tokio::sync::watch::Receiver<Option<ConfigError>> {
        self.shared.errors.subscribe()
    }

    /// Sets `value` at `path` above every source (Go Micro's `Set`, but it
    /// stays across reloads). Refused, leaving the config as it was, when
    /// the result fails a validator. Returns whether anything changed.
    pub fn set(&self, path: &str, value: impl Serialize) -> Result<bool, ConfigError> {
        let value = serde_json::to_value(value).map_err(|err| ConfigError::Value {
            path: path.to_owned(),
            origin: "memory".to_owned(),
            message: err.to_string(),
        })?;
        self.shared.set(path, value)
    }

    /// Removes what [`set`](Config::set) put at `path`; the sources' value,
    /// if any, shows again.
    pub fn unset(&self, path: &str) -> Result<bool, ConfigError> {
        self.shared.unset(path)
    }

    /// Refuses, from now on, any change after which the value at `path`
    /// no longer reads as a `T`. Fails if it does not now.
    pub fn validate<T: DeserializeOwned + 'static>(&self, path: &str) -> Result<(), ConfigError> {
        self.shared.add_validator(validator::<T>(path))
    }

    /// Reads every source again now. A source that cannot be read keeps
    /// its last values (its error is returned after the others apply).
    /// Returns whether anything changed.
    pub async fn sync(&self) -> Result<bool, ConfigError> {
        self.shared.sync().await
    }

    /// Stops every source's watch; watches end with
    /// [`ConfigError::Closed`]. Reads go on seeing the last snapshot.
    /// Closing twice is harmless.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("sources", &self.shared.source_names())
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// Assembles a [`Config`]: its sources in load order, the types every
/// reload must still read as, and which values are secrets.
#[must_use = "a builder does nothing until loaded"]
pub struct ConfigBuilder {
    sources: Vec<Entry>,
    validators: Vec<Validator>,
    secret_paths: Vec<String>,
    secrets_by_name: bool,
    variables: Variables,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            sources: Vec::new(),
            validators: Vec::new(),
            secret_paths: Vec::new(),
            secrets_by_name: true,
            variables: Arc::new(|name| std::env::var(name).ok()),
        }
    }
}

impl ConfigBuilder {
    /// Adds a source; later sources win over earlier ones. Loading fails if
    /// it cannot be read.
    pub fn source(mut self, source: impl Source) -> Self {
        self.sources.push(Entry {
            source: Arc::new(source),
            optional: false,
        });
        self
    }

    /// Adds a source the config may start without: if it cannot be read at
    /// load, it counts as empty until its watch reads it.
    pub fn optional_source(mut self, source: impl Source) -> Self {
        self.sources.push(Entry {
            source: Arc::new(source),
            optional: true,
        });
        self
    }

    /// Adds a shared source.
    pub fn source_arc(mut self, source: Arc<dyn Source>) -> Self {
        self.sources.push(Entry {
            source,
            optional: false,
        });
        self
    }

    /// Requires the value at `path` to read as a `T` at load and after
    /// every change: a change that breaks it is refused and the last good
    /// config stays. The check runs while the change is applied: a `T`
    /// whose `Deserialize` calls back into the config would deadlock.
    pub fn validate<T: DeserializeOwned + 'static>(mut self, path: &str) -> Self {
        self.validators.push(validator::<T>(path));
        self
    }

    /// Marks the value (or subtree) at `path` secret.
    pub fn secret(mut self, path: impl Into<String>) -> Self {
        self.secret_paths.push(path.into());
        self
    }

    /// Whether keys containing `password`, `passwd`, `secret`, `token`,
    /// `private_key` or `apikey`/`api_key` are secrets (default true).
    pub fn secrets_by_name(mut self, on: bool) -> Self {
        self.secrets_by_name = on;
        self
    }

    /// Where `${VAR}` in values is looked up (default the process
    /// environment). It runs while a change is applied and must not call
    /// back into the config.
    pub fn variables(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.variables = Arc::new(lookup);
        self
    }

    /// Reads every source, merges and validates, and starts watching the
    /// sources that can change.
    pub async fn load(self) -> Result<Config, ConfigError> {
        let rules = Rules {
            secret_paths: self.secret_paths,
            secrets_by_name: self.secrets_by_name,
            variables: self.variables,
        };
        let shared = Shared::load(self.sources, rules, self.validators).await?;
        Ok(Config { shared })
    }
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field(
                "sources",
                &self.sources.iter().map(|e| e.source.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// `${VAR}` in `text` replaced from the process environment.
pub(crate) fn substitute_env(text: &str) -> String {
    substitute::substitute(text, &|name| std::env::var(name).ok()).into_owned()
}

fn validator<T: DeserializeOwned + 'static>(path: &str) -> Validator {
    let path = path.to_owned();
    Box::new(move |snapshot| snapshot.scan::<T>(&path).map(drop))
}
