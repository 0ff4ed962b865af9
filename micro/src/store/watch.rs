//! Watching a prefix: the changes a store makes, told to every watcher of
//! the table and prefix they touch, in the order they were made.

use std::sync::Arc;

use tokio::sync::broadcast;

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
            rx: self.tx.subscribe(),
            table,
            prefix: prefix.to_owned(),
        }
    }
}

/// The changes to the keys under a prefix, from when the watch began.
#[derive(Debug)]
pub struct Watch {
    rx: broadcast::Receiver<Arc<Changed>>,
    table: Table,
    prefix: String,
}

impl Watch {
    /// The next change; `None` once the store is gone. A watcher too slow
    /// to keep up gets [`StoreError::Lagged`], then the changes after
    /// those it missed.
    pub async fn next(&mut self) -> Option<Result<Change, StoreError>> {
        loop {
            match self.rx.recv().await {
                Ok(changed) if changed.table == self.table && changed.change.key().starts_with(&self.prefix) => {
                    return Some(Ok(changed.change.clone()));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => return Some(Err(StoreError::Lagged(missed))),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
