//! Watching a prefix: the changes a store makes, told to every watcher of
//! the table and prefix they touch, in the order they were made.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::StoreError;
use super::options::Table;
use super::record::Record;

/// How many changes a watcher may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// A change to a key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// The key was written: the record as it is now.
    Put(Record),
    /// The key was deleted.
    Delete {
        /// The key.
        key: String,
    },
}

impl Change {
    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            Change::Put(record) => &record.key,
            Change::Delete { key } => key,
        }
    }
}

/// A change and its table, as a store sends it to its watchers.
#[derive(Debug)]
pub(crate) struct Changed {
    pub(crate) table: Table,
    pub(crate) change: Change,
}

/// The sending side: one per store.
#[derive(Clone, Debug)]
pub(crate) struct Watchers {
    tx: broadcast::Sender<Arc<Changed>>,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Watchers {
    /// Tells the watchers, if there are any.
    pub(crate) fn send(&self, table: impl FnOnce() -> Table, change: impl FnOnce() -> Change) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(Changed {
                table: table(),
                change: change(),
            }));
        }
    }

    pub(crate) fn watch(&self, table: Table, prefix: &str) -> Watch {
        Watch {
            source: Source::Local {
                rx: self.tx.subscribe(),
                table,
                prefix: prefix.to_owned(),
            },
        }
    }
}

/// The changes to the keys under a prefix, from when the watch began.
#[derive(Debug)]
pub struct Watch {
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// A store of this process: every change, filtered here.
    Local {
        rx: broadcast::Receiver<Arc<Changed>>,
        table: Table,
        prefix: String,
    },
    /// A task that tells the changes a server reports, filtered there.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Remote(mpsc::Receiver<Result<Change, StoreError>>),
}

impl Watch {
    /// A watch on what a backend's task sends.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn remote(changes: mpsc::Receiver<Result<Change, StoreError>>) -> Watch {
        Watch {
            source: Source::Remote(changes),
        }
    }

    /// The next change; `None` once the store is gone. A watcher too slow
    /// to keep up gets [`StoreError::Lagged`], then the changes after
    /// those it missed.
    pub async fn next(&mut self) -> Option<Result<Change, StoreError>> {
        let (rx, table, prefix) = match &mut self.source {
            Source::Remote(changes) => return changes.recv().await,
            Source::Local { rx, table, prefix } => (rx, table, prefix),
        };
        loop {
            match rx.recv().await {
                Ok(changed) if changed.table == *table && changed.change.key().starts_with(prefix.as_str()) => {
                    return Some(Ok(changed.change.clone()));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => return Some(Err(StoreError::Lagged(missed))),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
