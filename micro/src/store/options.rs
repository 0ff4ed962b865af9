//! What a store call asks for: Go Micro's per-call options (database and
//! table, prefix, suffix, limit, offset, expiry), and what Go has not:
//! conditional writes and cursor paging.

use std::time::{Duration, SystemTime};

/// Go Micro's default database and table.
pub const DEFAULT_SCOPE: &str = "micro";

/// A database and a table, as a call names them: what it leaves out is the
/// store's own (`micro`/`micro` unless the store was opened with others).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// The database; the store's when `None` or empty.
    pub database: Option<String>,
    /// The table; the store's when `None` or empty.
    pub table: Option<String>,
}

impl Scope {
    /// Whether it names nothing: the store's own database and table.
    pub(crate) fn is_store_default(&self) -> bool {
        self.database.as_deref().is_none_or(str::is_empty) && self.table.as_deref().is_none_or(str::is_empty)
    }

    /// The scope with the store's defaults filled in.
    pub(crate) fn resolve<'a>(&'a self, defaults: &'a Table) -> TableRef<'a> {
        let pick =
            |asked: &'a Option<String>, default: &'a str| asked.as_deref().filter(|s| !s.is_empty()).unwrap_or(default);
        TableRef {
            database: pick(&self.database, &defaults.database),
            table: pick(&self.table, &defaults.table),
        }
    }
}

/// A store's default database and table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table {
    /// The database.
    pub database: String,
    /// The table.
    pub table: String,
}

impl Table {
    /// `database`/`table`.
    pub fn new(database: impl Into<String>, table: impl Into<String>) -> Self {
        Table {
            database: database.into(),
            table: table.into(),
        }
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::new(DEFAULT_SCOPE, DEFAULT_SCOPE)
    }
}

/// A resolved database and table, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TableRef<'a> {
    pub(crate) database: &'a str,
    pub(crate) table: &'a str,
}

impl TableRef<'_> {
    pub(crate) fn owned(self) -> Table {
        Table::new(self.database, self.table)
    }
}

/// Which keys a read or list matches, and which page of them it returns:
/// keys ascending, filtered first, then `after`, `offset` and `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keys starting with this.
    pub prefix: Option<String>,
    /// Keys ending with this.
    pub suffix: Option<String>,
    /// Only keys after this one (the cursor of [`crate::store::Page`]).
    pub after: Option<String>,
    /// Matches skipped first.
    pub offset: usize,
    /// At most this many (0: all).
    pub limit: usize,
}

impl Filter {
    /// Whether `key` passes the prefix, suffix and cursor.
    pub(crate) fn matches(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
            && self.after.as_deref().is_none_or(|a| key > a)
    }

    /// The page of `keys` (ascending, matching) this filter returns.
    pub(crate) fn page<T>(&self, matching: impl Iterator<Item = T>) -> impl Iterator<Item = T> {
        let limit = if self.limit == 0 { usize::MAX } else { self.limit };
        matching.skip(self.offset).take(limit)
    }

    /// The first key a scan in key order needs to look at.
    pub(crate) fn start(&self) -> Option<&str> {
        match (self.prefix.as_deref(), self.after.as_deref()) {
            (Some(p), Some(a)) => Some(if a > p { a } else { p }),
            (p, a) => p.or(a),
        }
    }

    /// Whether a scan in key order can stop at `key`: past the prefix.
    pub(crate) fn is_past(&self, key: &str) -> bool {
        self.prefix.as_deref().is_some_and(|p| !key.starts_with(p) && key > p)
    }
}

/// How to read: one key (Go Micro's `Read(key)`), or every key it starts
/// or ends (`ReadPrefix`, `ReadSuffix`; both: keys that do both).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Where.
    pub scope: Scope,
    /// The key is a prefix.
    pub prefix: bool,
    /// The key is a suffix.
    pub suffix: bool,
    /// Matches skipped first.
    pub offset: usize,
    /// At most this many (0: all).
    pub limit: usize,
}

/// A condition a write or delete needs to hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// None: the last write wins (Go Micro's only behaviour).
    #[default]
    Always,
    /// The key holds no live record: create-only.
    Absent,
    /// The key's record is at this version: nobody wrote it since it was
    /// read.
    Version(u64),
}

impl Condition {
    /// Whether a write may go ahead on a key whose live record is at
    /// `current` (`None`: no live record).
    pub(crate) fn check(self, key: &str, current: Option<u64>) -> Result<(), super::StoreError> {
        match (self, current) {
            (Condition::Always, _) | (Condition::Absent, None) => Ok(()),
            (Condition::Version(v), Some(found)) if v == found => Ok(()),
            _ => Err(super::StoreError::conflict(key, self, current)),
        }
    }
}

/// How to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Where.
    pub scope: Scope,
    /// Expires this long after the write (beats `expiry` and the record's
    /// own, as Go Micro's `WriteTTL`).
    pub ttl: Option<Duration>,
    /// Expires at this time (beats the record's own).
    pub expiry: Option<SystemTime>,
    /// What must hold for the write to happen.
    pub condition: Condition,
}

/// How to delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteOptions {
    /// Where.
    pub scope: Scope,
    /// Deletes only the record at this version.
    pub version: Option<u64>,
}

/// How to list keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// Where.
    pub scope: Scope,
    /// Which keys, and which page of them.
    pub filter: Filter,
}

macro_rules! scoped {
    ($($options:ident),*) => {$(
        impl $options {
            /// In `database`/`table` (empty: the store's).
            #[must_use]
            pub fn scope(mut self, database: impl Into<String>, table: impl Into<String>) -> Self {
                self.scope = Scope {
                    database: Some(database.into()),
                    table: Some(table.into()),
                };
                self
            }

            /// In `table` of the store's database.
            #[must_use]
            pub fn table(mut self, table: impl Into<String>) -> Self {
                self.scope.table = Some(table.into());
                self
            }
        }
    )*};
}

scoped!(ReadOptions, WriteOptions, DeleteOptions, ListOptions);

impl ReadOptions {
    /// Every key starting with the one read.
    #[must_use]
    pub fn prefix(mut self) -> Self {
        self.prefix = true;
        self
    }

    /// Every key ending with the one read.
    #[must_use]
    pub fn suffix(mut self) -> Self {
        self.suffix = true;
        self
    }

    /// At most `limit` records.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` matches.
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// The filter a read of `key` with these options is.
    pub(crate) fn filter(&self, key: &str) -> Filter {
        Filter {
            prefix: self.prefix.then(|| key.to_owned()),
            suffix: self.suffix.then(|| key.to_owned()),
            after: None,
            offset: self.offset,
            limit: self.limit,
        }
    }

    /// Whether it reads one key, not a range.
    pub(crate) fn is_exact(&self) -> bool {
        !self.prefix && !self.suffix
    }
}

impl WriteOptions {
    /// Expires `ttl` after the write.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Expires at `at`.
    #[must_use]
    pub fn expiry(mut self, at: SystemTime) -> Self {
        self.expiry = Some(at);
        self
    }

    /// Writes only if the key holds no live record.
    #[must_use]
    pub fn create_only(mut self) -> Self {
        self.condition = Condition::Absent;
        self
    }

    /// Writes only if the key's record is at `version`.
    #[must_use]
    pub fn if_version(mut self, version: u64) -> Self {
        self.condition = Condition::Version(version);
        self
    }

    /// When a record written now with these options expires: the TTL, else
    /// the expiry, else the record's own.
    pub(crate) fn expiry_of(&self, own: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
        match (self.ttl, self.expiry) {
            (Some(ttl), _) => now.checked_add(ttl),
            (None, Some(at)) => Some(at),
            (None, None) => own,
        }
    }
}

impl DeleteOptions {
    /// Whether a delete may go ahead on a key whose live record is at
    /// `current`.
    pub(crate) fn check(&self, key: &str, current: Option<u64>) -> Result<(), super::StoreError> {
        match self.version {
            None => Ok(()),
            Some(v) => Condition::Version(v).check(key, current),
        }
    }

    /// Deletes only the record at `version`.
    #[must_use]
    pub fn if_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl ListOptions {
    /// Keys starting with `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.filter.prefix = Some(prefix.into());
        self
    }

    /// Keys ending with `suffix`.
    #[must_use]
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.filter.suffix = Some(suffix.into());
        self
    }

    /// At most `limit` keys.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.filter.limit = limit;
        self
    }

    /// Skips the first `offset` matches.
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Self {
        self.filter.offset = offset;
        self
    }

    /// Only keys after `key` (a page's cursor).
    #[must_use]
    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.filter.after = Some(key.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_starts_at_the_later_of_prefix_and_cursor() {
        let filter = Filter {
            prefix: Some("user/".into()),
            after: Some("user/17".into()),
            ..Filter::default()
        };
        assert_eq!(filter.start(), Some("user/17"));
        assert!(!filter.matches("user/17"));
        assert!(filter.matches("user/18"));
        assert!(filter.is_past("userz"));
        assert!(!filter.is_past("user/9"));
        assert!(!filter.is_past("a"));
    }

    #[test]
    fn ttl_beats_expiry_beats_the_records_own() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let own = Some(now + Duration::from_secs(5));
        let at = now + Duration::from_secs(7);
        let options = WriteOptions::default();
        assert_eq!(options.expiry_of(own, now), own);
        let options = options.expiry(at);
        assert_eq!(options.expiry_of(own, now), Some(at));
        let options = options.ttl(Duration::from_secs(1));
        assert_eq!(options.expiry_of(own, now), Some(now + Duration::from_secs(1)));
    }
}
