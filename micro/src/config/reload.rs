//! Loading and reloading: each source's last good layer, merged in load
//! order under the runtime overrides, finished (secrets, `${VAR}`),
//! validated against the application's types, then swapped in at once.
//! A change that does not validate, or a source that cannot be read,
//! leaves the last good config in place and is reported.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::error::ConfigError;
use super::node::{Node, merge};
use super::snapshot::{Finish, Snapshot};
use super::source::{Source, SourceError, Update, Updates};

/// Checks that the config still reads as one of the application's types.
pub(crate) type Validator = Box<dyn Fn(&Snapshot) -> Result<(), ConfigError> + Send + Sync>;

/// Looks a `${VAR}` up.
pub(crate) type Variables = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A source and whether the config may start without it.
pub(crate) struct Entry {
    pub(crate) source: Arc<dyn Source>,
    pub(crate) optional: bool,
}

/// How values are finished after a merge.
pub(crate) struct Rules {
    pub(crate) secret_paths: Vec<String>,
    pub(crate) secrets_by_name: bool,
    pub(crate) variables: Variables,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) current: watch::Sender<Arc<Snapshot>>,
    pub(crate) errors: watch::Sender<Option<ConfigError>>,
    sources: Vec<Entry>,
    rules: Rules,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct State {
    /// Each source's last good layer; `None` until it was first read.
    layers: Vec<Option<Node>>,
    /// Set at runtime with `Config::set`; above every source.
    overrides: Node,
    /// Each source's last read error, until it reads again.
    down: Vec<Option<SourceError>>,
    validators: Vec<Validator>,
    version: u64,
    closed: bool,
}

impl Shared {
    /// Reads every source, merges and validates; starts the watches.
    pub(crate) async fn load(
        sources: Vec<Entry>,
        rules: Rules,
        validators: Vec<Validator>,
    ) -> Result<Arc<Shared>, ConfigError> {
        let reads = futures_util::future::join_all(sources.iter().map(|e| e.source.read())).await;
        let mut layers = Vec::with_capacity(reads.len());
        let mut down = Vec::with_capacity(reads.len());
        for (entry, read) in sources.iter().zip(reads) {
            match read {
                Ok(layer) => {
                    layers.push(Some(layer.root));
                    down.push(None);
                }
                Err(err) if entry.optional => {
                    tracing::warn!(error = %err, "config source not read; starting without it");
                    layers.push(None);
                    down.push(Some(err));
                }
                Err(err) => return Err(ConfigError::Source(err)),
            }
        }
        let first_down = down.iter().flatten().next().cloned().map(ConfigError::Source);
        let mut state = State {
            layers,
            overrides: Node::empty(),
            down,
            validators,
            version: 0,
            closed: false,
        };
        let first = build(&state, &rules, 1);
        for check in &state.validators {
            check(&first)?;
        }
        state.version = 1;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            current: watch::Sender::new(Arc::new(first)),
            errors: watch::Sender::new(first_down),
            sources,
            rules,
            tasks: Mutex::new(Vec::new()),
        });
        shared.start_watches();
        Ok(shared)
    }

    fn start_watches(self: &Arc<Self>) {
        let (tx, rx) = mpsc::channel::<Update>(64);
        let mut tasks = Vec::new();
        for (index, entry) in self.sources.iter().enumerate() {
            if let Some(watching) = Arc::clone(&entry.source).watch(Updates::new(index, tx.clone())) {
                tasks.push(tokio::spawn(watching));
            }
        }
        if !tasks.is_empty() {
            tasks.push(tokio::spawn(reloader(Arc::downgrade(self), rx)));
        }
        lock(&self.tasks).extend(tasks);
    }

    /// Applies `change` to a copy of the state; keeps it if the result
    /// validates. Returns whether the config changed.
    fn apply(&self, change: impl FnOnce(&mut State)) -> Result<bool, ConfigError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(ConfigError::Closed);
        }
        let previous = (state.layers.clone(), state.overrides.clone());
        change(&mut state);
        let snapshot = build(&state, &self.rules, state.version + 1);
        let next = state
            .validators
            .iter()
            .try_for_each(|check| check(&snapshot))
            .map(|()| snapshot)
            .map_err(|err| ConfigError::Refused(Box::new(err)));
        let snapshot = match next {
            Ok(snapshot) => snapshot,
            Err(err) => {
                (state.layers, state.overrides) = previous;
                drop(state);
                tracing::warn!(error = %err, "config change refused");
                self.errors.send_replace(Some(err.clone()));
                return Err(err);
            }
        };
        let changed = !self.current.borrow().same_at(&snapshot, "");
        if changed {
            state.version += 1;
            let mut snapshot = snapshot;
            snapshot.version = state.version;
            self.current.send_replace(Arc::new(snapshot));
            tracing::info!(version = state.version, "config reloaded");
        }
        let still_down = state.down.iter().flatten().next().cloned().map(ConfigError::Source);
        drop(state);
        self.errors.send_replace(still_down);
        Ok(changed)
    }

    /// Takes the sources' news: new layers replace their source's, errors
    /// keep its last values.
    fn take(&self, batch: Vec<Update>) {
        let _ = self.absorb(batch);
    }

    /// Applies reads of several sources at once: a layer replaces its
    /// source's and clears its error; an error keeps its last values and is
    /// reported until the source reads again.
    fn absorb(&self, reads: Vec<Update>) -> Result<bool, ConfigError> {
        let mut layers = Vec::new();
        let mut failed = Vec::new();
        for (index, read) in reads {
            match read {
                Ok(layer) => layers.push((index, layer.root)),
                Err(err) => {
                    tracing::warn!(error = %err, "config source unreadable; its last values stay");
                    failed.push((index, err));
                }
            }
        }
        if layers.is_empty() {
            let mut state = lock(&self.state);
            for (index, err) in failed {
                if let Some(slot) = state.down.get_mut(index) {
                    *slot = Some(err);
                }
            }
            let report = state.down.iter().flatten().next().cloned().map(ConfigError::Source);
            drop(state);
            self.errors.send_replace(report);
            return Ok(false);
        }
        self.apply(move |state| {
            for (index, root) in layers {
                if let Some(slot) = state.layers.get_mut(index) {
                    *slot = Some(root);
                }
                if let Some(slot) = state.down.get_mut(index) {
                    *slot = None;
                }
            }
            for (index, err) in failed {
                if let Some(slot) = state.down.get_mut(index) {
                    *slot = Some(err);
                }
            }
        })
    }

    /// Reads every source again; one that cannot be read keeps its last
    /// values (and the first such error is returned after the rest apply).
    pub(crate) async fn sync(&self) -> Result<bool, ConfigError> {
        let reads = futures_util::future::join_all(self.sources.iter().map(|e| e.source.read())).await;
        let failed = reads.iter().find_map(|r| r.as_ref().err().cloned());
        let changed = self.absorb(reads.into_iter().enumerate().collect())?;
        match failed {
            Some(err) => Err(ConfigError::Source(err)),
            None => Ok(changed),
        }
    }

    pub(crate) fn set(&self, path: &str, value: serde_json::Value) -> Result<bool, ConfigError> {
        let segments: Vec<&str> = path.split('.').collect();
        let node = Node::from_json(value, &Arc::from("memory"), path);
        self.apply(|state| {
            if path.is_empty() {
                merge(&mut state.overrides, node);
            } else {
                set_at(&mut state.overrides, &segments, node);
            }
        })
    }

    pub(crate) fn unset(&self, path: &str) -> Result<bool, ConfigError> {
        let segments: Vec<&str> = path.split('.').collect();
        self.apply(|state| remove_at(&mut state.overrides, &segments))
    }

    pub(crate) fn add_validator(&self, validator: Validator) -> Result<(), ConfigError> {
        validator(&self.current.borrow())?;
        lock(&self.state).validators.push(validator);
        Ok(())
    }

    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.closed = true;
        drop(state);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        self.current.send_modify(|snapshot| {
            let mut last = Snapshot::clone(snapshot);
            last.closed = true;
            *snapshot = Arc::new(last);
        });
    }

    pub(crate) fn source_names(&self) -> Vec<String> {
        self.sources.iter().map(|e| e.source.name()).collect()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

/// Merges the layers in order, then the overrides, and finishes the values.
fn build(state: &State, rules: &Rules, version: u64) -> Snapshot {
    let mut root = Node::empty();
    for layer in state.layers.iter().flatten() {
        merge(&mut root, layer.clone());
    }
    merge(&mut root, state.overrides.clone());
    Finish {
        secret_paths: &rules.secret_paths,
        secrets_by_name: rules.secrets_by_name,
        variables: &*rules.variables,
    }
    .apply(&mut root);
    Snapshot::new(root, version)
}

/// Sets `node` at `path` in the overrides, replacing what was there.
fn set_at(root: &mut Node, path: &[&str], node: Node) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = root;
    for key in parents {
        if !matches!(here.kind, super::node::Kind::Map(_)) {
            *here = Node::empty();
        }
        let super::node::Kind::Map(map) = &mut here.kind else {
            return;
        };
        here = map.entry((*key).to_owned()).or_insert_with(Node::empty);
    }
    if !matches!(here.kind, super::node::Kind::Map(_)) {
        *here = Node::empty();
    }
    if let super::node::Kind::Map(map) = &mut here.kind {
        map.insert((*last).to_owned(), node);
    }
}

fn remove_at(root: &mut Node, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        *root = Node::empty();
        return;
    };
    let mut here = root;
    for key in parents {
        let super::node::Kind::Map(map) = &mut here.kind else {
            return;
        };
        let Some(next) = map.get_mut(*key) else {
            return;
        };
        here = next;
    }
    if let super::node::Kind::Map(map) = &mut here.kind {
        map.remove(*last);
    }
}

/// Applies the sources' news in batches: everything queued is taken before
/// one merge.
async fn reloader(shared: Weak<Shared>, mut rx: mpsc::Receiver<Update>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.take(batch);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
