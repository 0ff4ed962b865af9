//! Config hot reload, RELIABILITY.md R26's file leg: a watched file
//! replaced by an atomic rename, truncated and rewritten in place, deleted
//! and recreated, or symlink-swapped as Kubernetes updates a ConfigMap
//! reaches a `Watch` within 1 s each time; invalid JSON or YAML, or a
//! change a validator refuses, keeps the last good config and is reported,
//! and the next valid write is picked up. Also: an unread watch holds no
//! backlog, `close` ends watches, and dropping the config stops the file
//! watch.
//!
//! Real files and real file events (no paused time); each test has its own
//! directory under the system temp dir, removed at the end. Run with
//! `--nocapture` to see the measured write-to-watcher latencies.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use micro::config::{Config, ConfigError, File, Memory, Snapshot, Watch};
use serde::Deserialize;

/// The R26 deadline: a change reaches watchers within this.
const WITHIN: Duration = Duration::from_secs(1);

/// Long enough for the watch to be set up after `load` (so a change is
/// seen by the watcher, not by its first read) or for a needless reload
/// to have shown.
const SETTLE: Duration = Duration::from_millis(300);

/// What every change must still read as.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Settings {
    name: String,
    port: u16,
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("micro-config-reload-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn yaml(port: u16) -> String {
    format!("name: svc\nport: {port}\n")
}

/// Truncates the file and writes `text` into the same inode.
fn write_in_place(path: &Path, text: &str) {
    let mut file = fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

/// Writes `text` to a temporary file beside `path` and renames it over.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(".{}.tmp", uuid::Uuid::new_v4()));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A config of one file that must read as [`Settings`].
async fn load(path: &Path) -> Config {
    Config::builder()
        .source(File::new(path))
        .validate::<Settings>("")
        .load()
        .await
        .unwrap()
}

/// Makes a change and waits for the watch to deliver `want`; returns how
/// long that took.
async fn expect_change(test: &str, watch: &mut Watch<u16>, want: u16, change: impl FnOnce()) -> Duration {
    let start = Instant::now();
    change();
    let got = tokio::time::timeout(WITHIN, watch.changed())
        .await
        .unwrap_or_else(|_| panic!("{test}: the change to {want} did not reach the watcher within {WITHIN:?}"))
        .unwrap();
    let took = start.elapsed();
    assert_eq!(*got, want, "{test}");
    eprintln!("{test}: reached the watcher in {took:?}");
    took
}

/// Waits for `config` to report an error, and returns it.
async fn expect_error(config: &Config) -> ConfigError {
    let mut errors = config.errors();
    let err = tokio::time::timeout(WITHIN, errors.wait_for(Option::is_some))
        .await
        .expect("no error reported within 1 s")
        .unwrap();
    err.clone().unwrap()
}

/// Waits until `check` holds, polling every 10 ms, for at most `limit`.
async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn edit_in_place_reaches_watchers_within_1s() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    for want in [2, 3] {
        expect_change("edit in place", &mut port, want, || write_in_place(&path, &yaml(want))).await;
        assert_eq!(config.get::<u16>("port").unwrap(), want);
    }
}

#[tokio::test]
async fn atomic_rename_reaches_watchers_within_1s() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    for want in [2, 3] {
        expect_change("atomic rename", &mut port, want, || write_atomic(&path, &yaml(want))).await;
    }
    assert_eq!(config.get::<u16>("port").unwrap(), 3);
}

#[tokio::test]
async fn delete_keeps_last_values_and_recreate_reloads() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    fs::remove_file(&path).unwrap();
    let err = expect_error(&config).await;
    assert!(matches!(err, ConfigError::Source(_)), "{err}");
    assert_eq!(config.get::<u16>("port").unwrap(), 1, "the last values stay");
    assert_eq!(*port.get(), 1);

    expect_change("delete and recreate", &mut port, 2, || {
        fs::write(&path, yaml(2)).unwrap()
    })
    .await;
    assert!(config.errors().borrow().is_none(), "a good read clears the error");
}

/// Kubernetes' ConfigMap volume: `config.yaml -> ..data/config.yaml`,
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory,
/// points `..data_tmp` at it, renames `..data_tmp` over `..data` and
/// removes the old directory.
#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap_reaches_watchers_within_1s() {
    use std::os::unix::fs::symlink;

    fn publish(root: &Path, version: u32, port: u16) -> PathBuf {
        let data = root.join(format!("..2026_01_01_00_00_0{version}.{}", 1000 + version));
        fs::create_dir(&data).unwrap();
        fs::write(data.join("config.yaml"), yaml(port)).unwrap();
        let tmp = root.join("..data_tmp");
        symlink(data.file_name().unwrap(), &tmp).unwrap();
        fs::rename(&tmp, root.join("..data")).unwrap();
        data
    }

    let dir = TempDir::new();
    let mut old = publish(&dir.0, 1, 1);
    let path = dir.join("config.yaml");
    symlink("..data/config.yaml", &path).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    for (version, want) in [(2, 2), (3, 3)] {
        expect_change("configmap swap", &mut port, want, || {
            let new = publish(&dir.0, version, want);
            fs::remove_dir_all(&old).unwrap();
            old = new;
        })
        .await;
    }
    assert_eq!(config.get::<u16>("port").unwrap(), 3);
}

/// A symlink to a file in another directory, edited in place there.
#[cfg(unix)]
#[tokio::test]
async fn edit_of_a_symlinked_file_elsewhere_reaches_watchers() {
    let dir = TempDir::new();
    let elsewhere = dir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let real = elsewhere.join("real.yaml");
    fs::write(&real, yaml(1)).unwrap();
    let links = dir.join("links");
    fs::create_dir(&links).unwrap();
    let path = links.join("config.yaml");
    std::os::unix::fs::symlink(&real, &path).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    for want in [2, 3] {
        expect_change("symlink target edit", &mut port, want, || {
            write_in_place(&real, &yaml(want))
        })
        .await;
    }
}

/// Invalid JSON, then invalid YAML: the last good config stays, the error
/// is reported (once per distinct failure), and the next valid write is
/// picked up.
#[tokio::test]
async fn invalid_content_keeps_the_last_good_config() {
    let cases = [
        (
            "config.json",
            r#"{"name": "svc", "port": 1}"#,
            r#"{"name": "svc", "port": "#,
            r#"{"name": "svc", "port": 2}"#,
        ),
        (
            "config.yaml",
            "name: svc\nport: 1\n",
            "name: [svc\nport: 2\n",
            "name: svc\nport: 2\n",
        ),
    ];
    for (name, good, bad, next) in cases {
        let dir = TempDir::new();
        let path = dir.join(name);
        fs::write(&path, good).unwrap();
        let config = load(&path).await;
        let mut port = config.watch::<u16>("port").unwrap();
        let mut errors = config.errors();
        tokio::time::sleep(SETTLE).await;
        let version = config.snapshot().version();

        write_in_place(&path, bad);
        let err = expect_error(&config).await;
        let expected = if name.ends_with("json") {
            "invalid JSON"
        } else {
            "invalid YAML"
        };
        assert!(
            matches!(&err, ConfigError::Source(e) if e.message.contains(expected)),
            "{name}: {err}"
        );
        assert_eq!(
            config.get::<u16>("port").unwrap(),
            1,
            "{name}: the last good value stays"
        );
        assert_eq!(config.snapshot().version(), version, "{name}: no reload");

        // The same bad content written again is not reported again.
        errors.borrow_and_update();
        write_in_place(&path, bad);
        tokio::time::sleep(SETTLE).await;
        assert!(
            !errors.has_changed().unwrap(),
            "{name}: the same failure reported twice"
        );

        expect_change(name, &mut port, 2, || write_in_place(&path, next)).await;
        assert!(
            config.errors().borrow().is_none(),
            "{name}: a good read clears the error"
        );
    }
}

/// A change that parses but no longer reads as the application's settings
/// is refused like unreadable content.
#[tokio::test]
async fn change_the_validator_refuses_keeps_the_last_good_config() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;
    let version = config.snapshot().version();

    write_atomic(&path, "name: svc\nport: not-a-number\n");
    let err = expect_error(&config).await;
    assert!(matches!(err, ConfigError::Refused(_)), "{err}");
    assert_eq!(config.get::<u16>("port").unwrap(), 1);
    assert_eq!(config.get::<String>("name").unwrap(), "svc");
    assert_eq!(config.snapshot().version(), version, "the refused change did not apply");

    expect_change("after a refused change", &mut port, 3, || write_atomic(&path, &yaml(3))).await;
    assert!(config.errors().borrow().is_none());
}

/// The same bytes written again reload nothing; a burst of writes is
/// debounced into few reloads and ends on the last value.
#[tokio::test]
async fn rewrites_and_bursts_reload_only_what_changed() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;
    let version = config.snapshot().version();

    write_in_place(&path, &yaml(1));
    write_atomic(&path, &yaml(1));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(config.snapshot().version(), version, "identical content reloaded");

    let start = Instant::now();
    for p in 10..=30 {
        write_in_place(&path, &yaml(p));
    }
    let last = tokio::time::timeout(WITHIN, async {
        loop {
            let got = *port.changed().await.unwrap();
            if got == 30 {
                return got;
            }
        }
    })
    .await
    .expect("the burst's last value did not arrive within 1 s");
    eprintln!(
        "burst of 21 writes: last value reached the watcher in {:?}",
        start.elapsed()
    );
    assert_eq!(last, 30);
    let reloads = config.snapshot().version() - version;
    assert!(reloads <= 3, "21 quick writes made {reloads} reloads");
}

/// Every change arrives by a file event, not by the 1 s polling fallback:
/// a change made 200 ms after one was delivered arrives within 500 ms,
/// which reading once a second cannot do twice in a row (the next read
/// is 800 ms away).
#[tokio::test]
async fn changes_arrive_by_event_not_by_polling() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    for want in 2..=5 {
        let took = expect_change("event latency", &mut port, want, || write_atomic(&path, &yaml(want))).await;
        assert!(took < Duration::from_millis(500), "change {want} took {took:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A file whose directory does not exist yet is read every second until it
/// does (an optional source); then changes arrive again.
#[tokio::test]
async fn missing_directory_falls_back_to_polling() {
    let dir = TempDir::new();
    let later = dir.join("later");
    let path = later.join("config.yaml");
    let config = Config::builder()
        .optional_source(File::new(&path))
        .load()
        .await
        .unwrap();
    assert!(!config.snapshot().contains("port"));
    // The watch's first read finds no file, and it cannot watch the
    // directory: it reads the file every second.
    expect_error(&config).await;
    tokio::time::sleep(SETTLE).await;

    fs::create_dir(&later).unwrap();
    fs::write(&path, yaml(4)).unwrap();
    let mut snapshots = config.snapshots();
    tokio::time::timeout(
        Duration::from_secs(3),
        snapshots.wait_for(|s| s.get::<u16>("port").ok() == Some(4)),
    )
    .await
    .expect("the file was not picked up by polling within 3 s")
    .unwrap();
    assert!(config.errors().borrow().is_none());
}

/// The watched directory removed and made again: the watch recovers.
#[tokio::test]
async fn watched_directory_removed_and_recreated() {
    let dir = TempDir::new();
    let sub = dir.join("conf");
    fs::create_dir(&sub).unwrap();
    let path = sub.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let config = load(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    tokio::time::sleep(SETTLE).await;

    fs::remove_dir_all(&sub).unwrap();
    expect_error(&config).await;
    assert_eq!(config.get::<u16>("port").unwrap(), 1);
    fs::create_dir(&sub).unwrap();
    fs::write(&path, yaml(2)).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), port.changed())
        .await
        .expect("the recreated file was not picked up within 3 s")
        .unwrap();
    assert_eq!(*got, 2);
}

/// Weak handles to `snapshots`, minus `keep`, that are still alive.
fn alive(snapshots: &[Weak<Snapshot>], keep: &Weak<Snapshot>) -> usize {
    snapshots
        .iter()
        .filter(|s| !Weak::ptr_eq(s, keep) && s.strong_count() > 0)
        .count()
}

/// A watch that is never read holds one value, not a queue: 1,000 changes
/// later every intermediate snapshot has been freed.
#[tokio::test]
async fn unread_watch_holds_no_backlog() {
    // Through `Config::set`.
    let config = Config::builder()
        .source(Memory::from_json(serde_json::json!({"n": 0})))
        .load()
        .await
        .unwrap();
    let mut unread = config.watch::<u64>("n").unwrap();
    let first = Arc::downgrade(&config.snapshot());
    let mut seen = Vec::new();
    for n in 1..=1000u64 {
        config.set("n", n).unwrap();
        seen.push(Arc::downgrade(&config.snapshot()));
    }
    let latest = seen.pop().unwrap();
    assert_eq!(alive(&seen, &first), 0, "intermediate snapshots kept alive");
    assert!(latest.strong_count() > 0);
    assert_eq!(
        *unread.changed().await.unwrap(),
        1000,
        "the watch skips to the latest value"
    );

    // Through a watched `Memory` source.
    let memory = Memory::from_json(serde_json::json!({"n": 0}));
    let config = Config::builder().source(memory.clone()).load().await.unwrap();
    let mut unread = config.watch::<u64>("n").unwrap();
    let first = Arc::downgrade(&config.snapshot());
    let mut seen = Vec::new();
    for n in 1..=1000u64 {
        memory.set("n", serde_json::json!(n));
        tokio::task::yield_now().await;
        seen.push(Arc::downgrade(&config.snapshot()));
    }
    let mut snapshots = config.snapshots();
    let latest = tokio::time::timeout(WITHIN, snapshots.wait_for(|s| s.get::<u64>("n").ok() == Some(1000)))
        .await
        .unwrap()
        .map(|s| Arc::downgrade(&*s))
        .unwrap();
    drop(snapshots);
    seen.retain(|s| !Weak::ptr_eq(s, &latest));
    assert!(seen.len() > 1, "the memory changes made snapshots");
    assert_eq!(alive(&seen, &first), 0, "intermediate snapshots kept alive");
    assert_eq!(*unread.changed().await.unwrap(), 1000);
}

/// A config of one file, the `File` held weakly to see when the watch task
/// (which holds it) ends.
async fn load_tracked(path: &Path) -> (Config, Weak<File>) {
    let file = Arc::new(File::new(path));
    let weak = Arc::downgrade(&file);
    let config = Config::builder()
        .source_arc(file)
        .validate::<Settings>("")
        .load()
        .await
        .unwrap();
    (config, weak)
}

#[tokio::test]
async fn close_ends_watches_and_is_idempotent() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let (config, file) = load_tracked(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    assert_eq!(
        file.strong_count(),
        3,
        "the config, its file watch and the task that restarts it"
    );

    config.close();
    let ended = tokio::time::timeout(WITHIN, port.changed())
        .await
        .expect("close did not end the watch");
    assert!(matches!(ended, Err(ConfigError::Closed)), "{ended:?}");
    eventually(WITHIN, "the file watch stops", || file.strong_count() == 1).await;

    config.clone().close();
    config.close();
    let again = tokio::time::timeout(WITHIN, port.changed()).await;
    assert!(
        matches!(again, Ok(Err(ConfigError::Closed))),
        "a closed watch asked again: {again:?}"
    );
    let mut late = config.watch::<u16>("port").unwrap();
    let late = tokio::time::timeout(WITHIN, late.changed()).await;
    assert!(
        matches!(late, Ok(Err(ConfigError::Closed))),
        "a watch made after close: {late:?}"
    );
    assert!(matches!(config.set("port", 9), Err(ConfigError::Closed)));

    // Reads go on seeing the last snapshot; file changes reach nothing.
    write_atomic(&path, &yaml(9));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(config.get::<u16>("port").unwrap(), 1);
}

#[tokio::test]
async fn dropping_the_last_config_stops_the_file_watch() {
    let dir = TempDir::new();
    let path = dir.join("config.yaml");
    fs::write(&path, yaml(1)).unwrap();
    let (config, file) = load_tracked(&path).await;
    let mut port = config.watch::<u16>("port").unwrap();
    let clone = config.clone();
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        file.strong_count(),
        3,
        "the config, its file watch and the task that restarts it"
    );

    drop(config);
    expect_change("through the last clone", &mut port, 2, || write_atomic(&path, &yaml(2))).await;
    drop(clone);
    let ended = tokio::time::timeout(WITHIN, port.changed())
        .await
        .expect("dropping the config did not end the watch");
    assert!(matches!(ended, Err(ConfigError::Closed)), "{ended:?}");
    eventually(WITHIN, "the file watch (and its watcher) is dropped", || {
        file.strong_count() == 0
    })
    .await;
}
