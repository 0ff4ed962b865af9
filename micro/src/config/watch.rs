//! [`Watch`]: the latest value at one path, typed.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::error::ConfigError;
use super::snapshot::Snapshot;

/// The value at one config path as a `T`, kept current: a latest-value
/// handle, so a slow reader sees the newest value when it looks, never a
/// queue of stale ones, and a reader that never looks holds one value.
/// Dropping it stops the watch.
///
/// Watch an `Option<T>` to see the value appear or go: a `T` watch needs
/// a value at the path when it starts and skips a removal.
///
/// Reloads are validated before they apply (see
/// [`ConfigBuilder::validate`](super::ConfigBuilder::validate)); a change
/// that leaves the path's value unchanged does not wake the watch.
pub struct Watch<T> {
    rx: watch::Receiver<Arc<Snapshot>>,
    path: String,
    seen: Arc<Snapshot>,
    value: T,
}

impl<T: DeserializeOwned> Watch<T> {
    pub(crate) fn new(mut rx: watch::Receiver<Arc<Snapshot>>, path: &str) -> Result<Watch<T>, ConfigError> {
        let seen = Arc::clone(&rx.borrow_and_update());
        let value = seen.get(path)?;
        Ok(Watch {
            rx,
            path: path.to_owned(),
            seen,
            value,
        })
    }

    /// The value as of the last [`changed`](Watch::changed) (or creation).
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The path watched.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits until the value at the path changes and returns the new one.
    /// A new value that does not read as `T` is skipped (reported in
    /// [`Config::errors`](super::Config::errors) when a validator refused
    /// it). [`ConfigError::Closed`] once the config is closed or dropped.
    pub async fn changed(&mut self) -> Result<&T, ConfigError> {
        loop {
            if self.seen.closed {
                return Err(ConfigError::Closed);
            }
            self.rx.changed().await.map_err(|_| ConfigError::Closed)?;
            let next = Arc::clone(&self.rx.borrow_and_update());
            if next.closed {
                self.seen = next;
                return Err(ConfigError::Closed);
            }
            if next.same_at(&self.seen, &self.path) {
                self.seen = next;
                continue;
            }
            match next.get::<T>(&self.path) {
                Ok(value) => {
                    self.value = value;
                    self.seen = next;
                    return Ok(&self.value);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "config watch skipped a value it cannot read");
                    self.seen = next;
                }
            }
        }
    }

    /// The value, leaving the watch.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
