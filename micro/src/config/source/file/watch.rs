//! Watching a [`File`]: events in its directory, debounced, then a read
//! whose result is sent only when it differs from the last one.
//!
//! The directory is watched rather than the file: a rename over the file,
//! a delete and recreate, or a ConfigMap's `..data` symlink swap replace
//! the file's inode, which a watch on the file itself would lose.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::File;
use crate::config::source::Updates;

/// How long the directory must be quiet before the file is read.
const QUIET: Duration = Duration::from_millis(75);

/// The longest a steady stream of events delays a read.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// How often the file is read when its directory cannot be watched.
const POLL: Duration = Duration::from_secs(1);

/// Watches `file` and sends what it reads through `updates` until the
/// config is closed. The first read is always sent, so a change made
/// between the config's load and the start of the watch is not missed.
pub(super) async fn run(file: Arc<File>, updates: Updates) {
    let mut watch = FileWatch::new(file, updates);
    let mut polling = false;
    loop {
        match watch.arm() {
            Ok(()) if polling => {
                tracing::info!(file = %watch.file.path().display(), "config file watched again");
                polling = false;
            }
            Ok(()) => {}
            Err(error) if !polling => {
                tracing::warn!(
                    file = %watch.file.path().display(),
                    %error,
                    "cannot watch the config file's directory; reading the file every second instead"
                );
                polling = true;
            }
            Err(_) => {}
        }
        // Read once armed, so no change between the two is missed.
        let open = watch.check().await
            && if polling {
                watch.pause(POLL).await
            } else {
                watch.events().await
            };
        if !open {
            return;
        }
    }
}

/// What the watcher's thread tells the watching task; setting it never
/// blocks.
#[derive(Default)]
struct Signal {
    /// Something happened in the directory.
    wake: Notify,
    /// The directory itself was removed or moved: watch its path again.
    lost: AtomicBool,
}

/// The watching task's state.
struct FileWatch {
    file: Arc<File>,
    updates: Updates,
    /// The file's directory, absolute (as the watcher reports paths).
    dir: PathBuf,
    signal: Arc<Signal>,
    /// Dropped with the task, which ends the watcher's thread.
    watcher: Option<RecommendedWatcher>,
    /// The directory of the file a symlink leads to, when it is not `dir`.
    target: Option<PathBuf>,
    /// The last read: the file's bytes, or why it could not be read.
    last: Option<Result<Vec<u8>, String>>,
}

impl FileWatch {
    fn new(file: Arc<File>, updates: Updates) -> FileWatch {
        let dir = match file.path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        FileWatch {
            file,
            updates,
            dir,
            signal: Arc::default(),
            watcher: None,
            target: None,
            last: None,
        }
    }

    /// Starts (or restarts) watching the directory.
    fn arm(&mut self) -> notify::Result<()> {
        let watcher = match &mut self.watcher {
            Some(watcher) => watcher,
            None => self.watcher.insert(new_watcher(&self.dir, &self.signal)?),
        };
        // A moved directory's watch lingers under the old path: drop it.
        let _ = watcher.unwatch(&self.dir);
        watcher.watch(&self.dir, RecursiveMode::NonRecursive)
    }

    /// Reads the file after each burst of events. True when the directory
    /// was lost and must be watched again; false once the config is closed.
    async fn events(&mut self) -> bool {
        loop {
            tokio::select! {
                () = self.updates.closed() => return false,
                () = self.signal.wake.notified() => {}
            }
            if !self.settle().await {
                return false;
            }
            if self.signal.lost.swap(false, Ordering::AcqRel) {
                return true;
            }
            if !self.check().await {
                return false;
            }
        }
    }

    /// Waits until the directory has been quiet for [`QUIET`], or
    /// [`MAX_DELAY`] has passed. False once the config is closed.
    async fn settle(&self) -> bool {
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let quiet = (Instant::now() + QUIET).min(deadline);
            tokio::select! {
                () = self.updates.closed() => return false,
                () = tokio::time::sleep_until(quiet) => return true,
                () = self.signal.wake.notified() => {
                    if Instant::now() >= deadline {
                        return true;
                    }
                }
            }
        }
    }

    /// Waits `period`. False once the config is closed.
    async fn pause(&self, period: Duration) -> bool {
        tokio::select! {
            () = self.updates.closed() => false,
            () = tokio::time::sleep(period) => true,
        }
    }

    /// Reads the file and sends its layer, or its error, when the read
    /// differs from the last one. False once the config is closed.
    async fn check(&mut self) -> bool {
        let mut read = self.file.read_bytes().await;
        if matches!(&read, Ok(bytes) if bytes.is_empty()) && !matches!(&self.last, Some(Ok(b)) if b.is_empty()) {
            // Possibly between the truncate and the write of an edit in
            // place: an empty file counts once it stays empty a while.
            if !self.settle().await {
                return false;
            }
            read = self.file.read_bytes().await;
        }
        self.retarget().await;
        let unchanged = match (&self.last, &read) {
            (Some(Ok(last)), Ok(now)) => last == now,
            (Some(Err(last)), Err(now)) => *last == now.message,
            _ => false,
        };
        if unchanged {
            return true;
        }
        let layer = read
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|bytes| self.file.parse_bytes(bytes));
        self.last = Some(read.map_err(|err| err.message));
        self.updates.send(layer).await
    }

    /// Also watches the directory of the file a symlink leads to, when that
    /// is elsewhere, so an edit there is seen too.
    async fn retarget(&mut self) {
        let want = match (
            tokio::fs::canonicalize(self.file.path()).await,
            tokio::fs::canonicalize(&self.dir).await,
        ) {
            (Ok(file), Ok(dir)) => file.parent().filter(|parent| *parent != dir).map(Path::to_path_buf),
            _ => None,
        };
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        if want == self.target {
            return;
        }
        if let Some(old) = self.target.take() {
            let _ = watcher.unwatch(&old);
        }
        if let Some(dir) = want {
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => self.target = Some(dir),
                Err(error) => tracing::debug!(dir = %dir.display(), %error, "cannot watch a config symlink's target"),
            }
        }
    }
}

/// A watcher whose events (other than reads, ours included) wake the task.
fn new_watcher(dir: &Path, signal: &Arc<Signal>) -> notify::Result<RecommendedWatcher> {
    let dir = dir.to_path_buf();
    let signal = Arc::clone(signal);
    notify::recommended_watcher(move |event: notify::Result<Event>| {
        match event {
            Ok(event) if is_read(&event.kind) => return,
            Ok(event) => {
                if is_gone(&event, &dir) {
                    signal.lost.store(true, Ordering::Release);
                }
            }
            // A lost event (the queue overflowed) or a failed read: read
            // the file again to be sure.
            Err(error) => tracing::debug!(%error, "config file watcher error"),
        }
        signal.wake.notify_one();
    })
}

/// An access that changes nothing.
fn is_read(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read))
    )
}

/// The watched directory itself was removed or moved away.
fn is_gone(event: &Event, dir: &Path) -> bool {
    matches!(
        event.kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    ) && event.paths.iter().any(|path| path == dir)
}
