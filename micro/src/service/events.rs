//! The event stream a service uses: the one `--events` names (at the
//! address `--events_address` gives), else the one the builder was given,
//! else the embedded durable log, a file in the service's data directory
//! (`--data_dir`, default `$HOME/micro/<service>`). Opened once, on first
//! use, and shared by the service's consumers and its publishers.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{Flags, ServiceError};
use crate::events::{FileStream, MemoryStream, Publisher, Stream};

/// The backends `--events` can name.
const CHOICES: &str = "file, memory, nats and redis";

/// Checks an `--events` value before anything starts.
pub(super) fn check(flags: &Flags) -> Result<(), ServiceError> {
    match flags.events.as_deref() {
        None | Some("" | "file" | "memory") => Ok(()),
        Some("nats") if cfg!(feature = "nats") => Ok(()),
        Some("redis") if cfg!(feature = "redis") => Ok(()),
        Some(name @ ("nats" | "redis")) => Err(ServiceError::Flags(format!(
            "--events {name} needs micro built with the `{name}` feature"
        ))),
        Some(other) => Err(ServiceError::Flags(format!(
            "--events {other:?} is not available: micro provides {CHOICES}"
        ))),
    }
}

/// A service's stream, opened on first use.
#[derive(Clone)]
pub(super) struct Events {
    opened: Arc<OnceCell<Arc<dyn Stream>>>,
    chosen: Option<Arc<dyn Stream>>,
}

impl Events {
    pub(super) fn new(chosen: Option<Arc<dyn Stream>>) -> Self {
        Events {
            opened: Arc::default(),
            chosen,
        }
    }

    /// The stream, opened now if it was not yet.
    pub(super) async fn stream(&self, flags: &Flags, service: &str) -> Result<Arc<dyn Stream>, ServiceError> {
        check(flags)?;
        let stream = self
            .opened
            .get_or_try_init(|| open(flags, service, self.chosen.clone()))
            .await?;
        Ok(Arc::clone(stream))
    }

    /// A publisher on the stream.
    pub(super) async fn publisher(&self, flags: &Flags, service: &str) -> Result<Publisher, ServiceError> {
        Ok(Publisher::new(self.stream(flags, service).await?))
    }
}

async fn open(flags: &Flags, service: &str, chosen: Option<Arc<dyn Stream>>) -> Result<Arc<dyn Stream>, ServiceError> {
    let address = flags.events_address.as_deref().filter(|a| !a.is_empty());
    let stream: Arc<dyn Stream> = match (flags.events.as_deref(), chosen) {
        (Some("memory"), _) => Arc::new(MemoryStream::shared()),
        #[cfg(feature = "nats")]
        (Some("nats"), _) => {
            Arc::new(crate::events::NatsStream::connect(address.unwrap_or("nats://127.0.0.1:4222")).await?)
        }
        #[cfg(feature = "redis")]
        (Some("redis"), _) => {
            Arc::new(crate::events::RedisStream::connect(address.unwrap_or("redis://127.0.0.1:6379")).await?)
        }
        (None | Some(""), Some(chosen)) => chosen,
        _ => {
            let path = address.map_or_else(|| data_dir(flags, service).join("events.redb"), PathBuf::from);
            tracing::info!(path = %path.display(), "events: the embedded log");
            Arc::new(FileStream::open(&path)?)
        }
    };
    Ok(stream)
}

/// The service's data directory: `--data_dir`, else `$HOME/micro/<service>`
/// (the root Go Micro's file store uses), else the temporary directory's
/// `micro/<service>`.
pub(super) fn data_dir(flags: &Flags, service: &str) -> PathBuf {
    if let Some(dir) = &flags.data_dir {
        return dir.clone();
    }
    let root = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from);
    root.join("micro").join(service)
}
