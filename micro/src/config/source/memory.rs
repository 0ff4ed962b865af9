//! [`Memory`]: config held in memory and changed at runtime.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{Format, Layer, Source, SourceError, Updates};
use crate::BoxFuture;

/// Config set by the program: a JSON document that can be replaced or
/// changed while the config runs; each change reaches the config's
/// watches. Clones share the document.
#[derive(Clone)]
pub struct Memory {
    doc: Arc<Mutex<serde_json::Value>>,
    changed: Arc<watch::Sender<()>>,
}

impl std::fmt::Debug for Memory {
    /// The document's values may be secrets: not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").finish_non_exhaustive()
    }
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new()
    }
}

impl Memory {
    /// An empty document.
    pub fn new() -> Memory {
        Memory::from_json(serde_json::Value::Object(Default::default()))
    }

    /// `doc` (an object) as config.
    pub fn from_json(doc: serde_json::Value) -> Memory {
        Memory {
            doc: Arc::new(Mutex::new(doc)),
            changed: Arc::new(watch::Sender::new(())),
        }
    }

    /// `text` in `format` as config.
    pub fn from_text(format: Format, text: &str) -> Result<Memory, SourceError> {
        let doc = format.parse(text).map_err(|e| SourceError::new("memory", e))?;
        Ok(Memory::from_json(doc))
    }

    /// Replaces the whole document.
    pub fn replace(&self, doc: serde_json::Value) {
        *self.lock() = doc;
        self.changed.send_replace(());
    }

    /// Sets `value` at the dotted `path`, making objects on the way.
    pub fn set(&self, path: &str, value: serde_json::Value) {
        {
            let mut doc = self.lock();
            let mut here = &mut *doc;
            for key in path.split('.') {
                if !here.is_object() {
                    *here = serde_json::Value::Object(Default::default());
                }
                let serde_json::Value::Object(map) = here else {
                    return;
                };
                here = map.entry(key).or_insert(serde_json::Value::Null);
            }
            *here = value;
        }
        self.changed.send_replace(());
    }

    /// Removes the value at the dotted `path`.
    pub fn delete(&self, path: &str) {
        {
            let mut doc = self.lock();
            let (parents, last) = match path.rsplit_once('.') {
                Some((parents, last)) => (Some(parents), last),
                None => (None, path),
            };
            let parent = match parents {
                Some(parents) => parents.split('.').try_fold(&mut *doc, |v, k| v.get_mut(k)),
                None => Some(&mut *doc),
            };
            if let Some(serde_json::Value::Object(map)) = parent {
                map.remove(last);
            }
        }
        self.changed.send_replace(());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, serde_json::Value> {
        self.doc.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn layer(&self) -> Result<Layer, SourceError> {
        Layer::from_json("memory", self.lock().clone())
    }
}

impl Source for Memory {
    fn name(&self) -> String {
        "memory".to_owned()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(async move { self.layer() })
    }

    fn watch(self: Arc<Self>, updates: Updates) -> Option<BoxFuture<'static, ()>> {
        let mut changed = self.changed.subscribe();
        changed.mark_unchanged();
        Some(Box::pin(async move {
            // What changed while the config was loading is sent first.
            if !updates.send(self.layer()).await {
                return;
            }
            while changed.changed().await.is_ok() {
                if !updates.send(self.layer()).await {
                    return;
                }
            }
        }))
    }
}
