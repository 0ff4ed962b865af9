//! One handle per file in the process. redb, like bbolt, opens a file once:
//! a second open of the same file fails while the first is open. Every
//! `FileStore` of the process on a file shares the handle (and its
//! watchers) instead, through this table of the files open now.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use redb::Database;

use super::failed;
use crate::store::StoreError;
use crate::store::watch::Watchers;

/// An open file.
#[derive(Debug)]
pub(super) struct Db {
    pub(super) redb: Database,
    pub(super) watchers: Watchers,
}

/// The files open in this process, by canonical path: process-wide because
/// the file lock redb takes is.
static OPEN: Mutex<Option<HashMap<PathBuf, Weak<Db>>>> = Mutex::new(None);

/// The open handle of the file at `path`, opened (and created) if there
/// is none.
pub(super) fn open(path: &Path) -> Result<Arc<Db>, StoreError> {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    let files = open.get_or_insert_with(HashMap::new);
    files.retain(|_, db| db.strong_count() > 0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let canonical = dir
        .canonicalize()
        .map_err(|e| failed(format!("cannot open {}: {e}", dir.display())))?
        .join(path.file_name().unwrap_or_default());
    if let Some(db) = files.get(&canonical).and_then(Weak::upgrade) {
        return Ok(db);
    }
    let redb = Database::create(&canonical).map_err(|e| failed(format!("cannot open {}: {e}", canonical.display())))?;
    let db = Arc::new(Db {
        redb,
        watchers: Watchers::default(),
    });
    files.insert(canonical, Arc::downgrade(&db));
    Ok(db)
}
