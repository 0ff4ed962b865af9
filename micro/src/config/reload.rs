//! Loading and reloading: each source's last good layer, merged in load
//! order under the runtime overrides, finished (secrets, `${VAR}`),
//! validated against the application's types, then swapped in at once.
//! A change that does not validate, or a source that cannot be read,
//! leaves the last good config in place and is reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::error::ConfigError;
use super::node::{Node, merge};
use super::snapshot::{Finish, Snapshot};
use super::source::{Source, Update, Updates};

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
    /// Each source's problem: its last read failed, or its last content
    /// was refused; until it reads again and applies.
    down: Vec<Option<ConfigError>>,
    /// Counts each source's watched updates, so a slower `sync` read does
    /// not put back what a watch has since replaced.
    generations: Vec<u64>,
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
                    down.push(Some(ConfigError::Source(err)));
                }
                Err(err) => return Err(ConfigError::Source(err)),
            }
        }
        let mut state = State {
            generations: vec![0; layers.len()],
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
        let first_down = state.report();
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
            let source = Arc::clone(&entry.source);
            let updates = Updates::new(index, tx.clone());
            if let Some(first) = Arc::clone(&source).watch(updates.clone()) {
                tasks.push(tokio::spawn(keep_watching(source, updates, first)));
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
                self.errors.send_replace(Some(err.clone()));
                drop(state);
                tracing::warn!(error = %err, "config change refused");
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
        self.errors.send_replace(state.report());
        Ok(changed)
    }

    /// Applies reads of several sources at once: a layer replaces its
    /// source's and clears its error; an error keeps its last values and is
    /// reported until the source reads again.
    fn absorb(&self, reads: Vec<Update>, watched: bool) -> Result<bool, ConfigError> {
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
                    *slot = Some(ConfigError::Source(err));
                }
            }
            self.errors.send_replace(state.report());
            return Ok(false);
        }
        let applied: Vec<usize> = layers.iter().map(|(index, _)| *index).collect();
        let outcome = self.apply(move |state| {
            for (index, root) in layers {
                if watched && let Some(generation) = state.generations.get_mut(index) {
                    *generation += 1;
                }
                if let Some(slot) = state.layers.get_mut(index) {
                    *slot = Some(root);
                }
                if let Some(slot) = state.down.get_mut(index) {
                    *slot = None;
                }
            }
            for (index, err) in failed {
                if let Some(slot) = state.down.get_mut(index) {
                    *slot = Some(ConfigError::Source(err));
                }
            }
        });
        if let Err(refused) = &outcome {
            // Reported until the source sends content that applies.
            let mut state = lock(&self.state);
            for index in applied {
                if let Some(slot) = state.down.get_mut(index) {
                    *slot = Some(refused.clone());
                }
            }
            self.errors.send_replace(state.report());
        }
        outcome
    }

    /// Reads every source again; one that cannot be read keeps its last
    /// values (and the first such error is returned after the rest apply).
    pub(crate) async fn sync(&self) -> Result<bool, ConfigError> {
        let before = lock(&self.state).generations.clone();
        let reads = futures_util::future::join_all(self.sources.iter().map(|e| e.source.read())).await;
        let failed = reads.iter().find_map(|r| r.as_ref().err().cloned());
        // A source whose watch applied something meanwhile has newer
        // content than this read: keep that.
        let after = lock(&self.state).generations.clone();
        let fresh = reads
            .into_iter()
            .enumerate()
            .filter(|(index, _)| before.get(*index) == after.get(*index))
            .collect();
        let changed = self.absorb(fresh, false)?;
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
        self.apply(|state| {
            remove_at(&mut state.overrides, &segments);
            prune(&mut state.overrides);
        })
    }

    pub(crate) fn add_validator(&self, validator: Validator) -> Result<(), ConfigError> {
        // Under the state's lock, so no change lands between the check and
        // the validator's registration.
        let mut state = lock(&self.state);
        let current = Arc::clone(&self.current.borrow());
        validator(&current)?;
        state.validators.push(validator);
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

impl State {
    /// The first source still unreadable, if any.
    fn report(&self) -> Option<ConfigError> {
        self.down.iter().flatten().next().cloned()
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

/// Removes the maps left empty under `node`, so an unset override does not
/// keep hiding a source's value behind an empty object.
fn prune(node: &mut Node) {
    if let super::node::Kind::Map(map) = &mut node.kind {
        for child in map.values_mut() {
            prune(child);
        }
        map.retain(|_, child| !matches!(&child.kind, super::node::Kind::Map(m) if m.is_empty()));
    }
}

/// Applies the sources' news: everything queued is taken at once, only each
/// source's latest read counts, and each source's change is applied on its
/// own, so one source's refused change does not take another's with it.
async fn reloader(shared: Weak<Shared>, mut rx: mpsc::Receiver<Update>) {
    while let Some(first) = rx.recv().await {
        let mut latest: BTreeMap<usize, Update> = BTreeMap::new();
        latest.insert(first.0, first);
        while let Ok(more) = rx.try_recv() {
            latest.insert(more.0, more);
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for update in latest.into_values() {
            let _ = shared.absorb(vec![update], true);
        }
    }
}

/// Runs a source's watch, and starts it again a second later if it ends
/// while the config is open (Go Micro re-watches after 1 s too).
async fn keep_watching(source: Arc<dyn Source>, updates: Updates, first: crate::BoxFuture<'static, ()>) {
    let mut watching = Some(first);
    loop {
        if let Some(watch) = watching.take() {
            watch.await;
        }
        tokio::select! {
            () = updates.closed() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        tracing::debug!(source = %source.name(), "config source's watch ended; watching again");
        watching = Arc::clone(&source).watch(updates.clone());
        if watching.is_none() {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
