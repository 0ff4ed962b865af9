//! Where config comes from: a [`Source`] reads a [`Layer`] (a tree of
//! values, each with its key in the source's own terms) and may push new
//! layers when it changes.

mod args;
mod env;
#[cfg(feature = "etcd")]
mod etcd;
mod file;
mod format;
mod memory;

use std::sync::Arc;

use tokio::sync::mpsc;

use super::node::{Kind, Node, Origin};
use crate::BoxFuture;

pub use self::args::CommandLine;
pub use self::env::Env;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub use self::etcd::Etcd;
pub use self::file::File;
pub use self::format::Format;
pub use self::memory::Memory;

/// A source could not be read, or its content is not valid config.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SourceError {
    /// The source, e.g. `file config.yaml`.
    pub name: String,
    /// What went wrong.
    pub message: String,
}

impl SourceError {
    /// An error of the source named `name`.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> SourceError {
        SourceError {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// What one source holds: a tree of values, each remembering its key in
/// the source's own terms.
#[derive(Clone)]
pub struct Layer {
    pub(crate) root: Node,
    name: Arc<str>,
}

impl Layer {
    /// An empty layer of the source named `name`.
    pub fn new(name: &str) -> Layer {
        let name: Arc<str> = Arc::from(name);
        Layer {
            root: Node::new(
                Kind::Map(Default::default()),
                Arc::new(Origin {
                    source: Arc::clone(&name),
                    key: String::new(),
                }),
            ),
            name,
        }
    }

    /// A JSON document as a layer: it must be an object (as each Go Micro
    /// change set must); each value's key is its dotted path.
    pub fn from_json(name: &str, value: serde_json::Value) -> Result<Layer, SourceError> {
        if !value.is_object() {
            return Err(SourceError::new(name, "the document is not an object"));
        }
        let name: Arc<str> = Arc::from(name);
        Ok(Layer {
            root: Node::from_json(value, &name, ""),
            name,
        })
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets `value` at `path` (the segments of the config path), recording
    /// `key` as where it came from. A value already at that path, or a
    /// scalar on the way, keeps its place (Go Micro's env source keeps the
    /// first of two clashing variables) unless Go counts it empty (`""`,
    /// `null`, `0`, `false`, `[]`, or text Go reads as 0 or false): returns
    /// false when the new value was dropped.
    pub fn insert(&mut self, path: &[&str], value: serde_json::Value, key: impl Into<String>) -> bool {
        let leaf = Node::from_json(value, &self.name, "");
        let origin = Arc::new(Origin {
            source: Arc::clone(&self.name),
            key: key.into(),
        });
        self.root.insert(path, with_origin(leaf, &origin))
    }

    /// Merges `later` over this layer with the config's merge rules.
    pub fn merge(&mut self, later: Layer) {
        super::node::merge(&mut self.root, later.root);
    }

    /// The layer as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        self.root.to_json(false)
    }
}

impl std::fmt::Debug for Layer {
    /// The values may be secrets: the source and the keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys = Vec::new();
        self.root
            .leaves(&mut String::new(), &mut |path, _| keys.push(path.to_owned()));
        f.debug_struct("Layer")
            .field("name", &self.name)
            .field("keys", &keys)
            .finish()
    }
}

/// Gives a whole subtree one origin (a value set under one key).
fn with_origin(mut node: Node, origin: &Arc<Origin>) -> Node {
    node.origin = Arc::clone(origin);
    match &mut node.kind {
        Kind::List(items) => {
            for item in items {
                *item = with_origin(std::mem::replace(item, Node::empty()), origin);
            }
        }
        Kind::Map(map) => {
            for value in map.values_mut() {
                *value = with_origin(std::mem::replace(value, Node::empty()), origin);
            }
        }
        _ => {}
    }
    node
}

/// A source of config: env, a file, flags, memory, etcd, or your own.
pub trait Source: Send + Sync + 'static {
    /// The source's name in errors and `explain`, e.g. `file config.yaml`.
    fn name(&self) -> String;

    /// Reads everything the source holds now.
    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>>;

    /// Watches the source: the returned future sends a new layer through
    /// `updates` each time the source changes (or an error when it cannot
    /// be read; the config keeps its last values), and runs until the
    /// config is closed. `None` for a source that never changes.
    fn watch(self: Arc<Self>, updates: Updates) -> Option<BoxFuture<'static, ()>> {
        let _ = updates;
        None
    }
}

/// Where a watching source sends what it read.
#[derive(Clone, Debug)]
pub struct Updates {
    index: usize,
    tx: mpsc::Sender<Update>,
}

/// One source's news: its index and what it read.
pub(crate) type Update = (usize, Result<Layer, SourceError>);

impl Updates {
    pub(crate) fn new(index: usize, tx: mpsc::Sender<Update>) -> Updates {
        Updates { index, tx }
    }

    /// Sends the source's new content; false once the config is closed, when
    /// the watch should end.
    pub async fn send(&self, read: Result<Layer, SourceError>) -> bool {
        self.tx.send((self.index, read)).await.is_ok()
    }

    /// True once the config is closed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Completes when the config is closed.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}
