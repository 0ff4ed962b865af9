//! Where a table's records live in Redis, and how a call's filter and
//! expiry are said to Redis: pure functions, tested here.

use std::time::{Duration, SystemTime};

use crate::store::options::{DEFAULT_SCOPE, Filter, TableRef};

/// What starts every key micro adds to Go's layout. Not `micro`: Go's
/// prefix read of the default table `micro` is `KEYS micro<prefix>*`, and
/// would read our keys as its own. A table named `~...` would still see
/// them (and Go's `List`, `KEYS *`, lists every key).
const OURS: &str = "~micro-store:";

/// The latest expiry kept (the end of the year 9999, in ms since 1970):
/// later ones never expire, as a deadline past `SystemTime`'s range does
/// in the memory store.
const LATEST_MS: u64 = 253_402_300_799_999;

/// The Redis keys of one database and table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Names {
    /// The table, as its records' metadata names it.
    pub(super) table: String,
    /// What a key's value key is this plus the key: Go's `<table>` in the
    /// database `micro`; in another database (Go has no such thing),
    /// `~micro-store:value:<len(database)>:<database>:<len(table)>:<table>:`,
    /// which no other database and table can spell.
    pub(super) value: String,
    /// What a key's metadata hash is this plus the key: ours, then the
    /// value's prefix.
    pub(super) meta: String,
    /// The sorted set of the table's keys.
    pub(super) index: String,
    /// The sorted set of the table's keys that expire, by when.
    pub(super) expiries: String,
    /// The database's version counter.
    pub(super) counter: String,
}

impl Names {
    pub(super) fn of(at: TableRef<'_>) -> Names {
        let (database, table) = (at.database, at.table);
        // Lengths keep database, table and key apart whatever they hold.
        let value = if database == DEFAULT_SCOPE {
            table.to_owned()
        } else {
            format!("{OURS}value:{}:{database}:{}:{table}:", database.len(), table.len())
        };
        let scoped = format!("{}:{database}:{table}", database.len());
        Names {
            table: table.to_owned(),
            meta: format!("{OURS}meta:{value}"),
            index: format!("{OURS}index:{scoped}"),
            expiries: format!("{OURS}expiry:{scoped}"),
            counter: format!("{OURS}version:{database}"),
            value,
        }
    }
}

/// The `ZRANGEBYLEX` bounds of the keys `filter`'s prefix and cursor let
/// through (its suffix, offset and limit are the script's).
pub(super) fn bounds(filter: &Filter) -> (Vec<u8>, Vec<u8>) {
    let open = |mark: &[u8], key: &str| [mark, key.as_bytes()].concat();
    let min = match (filter.prefix.as_deref(), filter.after.as_deref()) {
        (prefix, Some(after)) if prefix.is_none_or(|p| after >= p) => open(b"(", after),
        (Some(prefix), _) => open(b"[", prefix),
        (None, _) => b"-".to_vec(),
    };
    // Every key starting with the prefix sorts before the prefix and a
    // 0xff byte, which UTF-8 never holds.
    let max = match filter.prefix.as_deref() {
        Some(prefix) if !prefix.is_empty() => [b"(", prefix.as_bytes(), &[0xff]].concat(),
        _ => b"+".to_vec(),
    };
    (min, max)
}

/// A write's expiry, as `SET` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    /// None.
    Never,
    /// This many ms after the write, on the server's clock (`PX`).
    After(u64),
    /// At this many ms since 1970 (`PXAT`).
    At(u64),
}

impl Expiry {
    /// `ttl` from the write (rounded up to a millisecond).
    pub(super) fn after(ttl: Duration) -> Expiry {
        match u64::try_from(ttl.as_nanos().div_ceil(1_000_000)) {
            Ok(ms) if ms <= LATEST_MS => Expiry::After(ms),
            _ => Expiry::Never,
        }
    }

    /// At `at` (rounded up to a millisecond); `None`: never.
    pub(super) fn at(at: Option<SystemTime>) -> Expiry {
        let Some(at) = at else { return Expiry::Never };
        let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        match u64::try_from(since.as_nanos().div_ceil(1_000_000)) {
            Ok(ms) if ms <= LATEST_MS => Expiry::At(ms),
            _ => Expiry::Never,
        }
    }

    /// The write script's mode and time arguments.
    pub(super) fn args(self) -> (&'static str, u64) {
        match self {
            Expiry::Never => ("", 0),
            Expiry::After(ms) => ("PX", ms),
            Expiry::At(ms) => ("PXAT", ms),
        }
    }
}

/// The time a script reports as ms since 1970; negative: never.
pub(super) fn expiry_from(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table<'a>(database: &'a str, table: &'a str) -> TableRef<'a> {
        TableRef { database, table }
    }

    #[test]
    fn the_default_database_is_go_micros_layout() {
        let names = Names::of(table("micro", "micro"));
        assert_eq!(names.value, "micro", "`microfoo` is key `foo`, as Go writes it");
        assert_eq!(names.meta, "~micro-store:meta:micro");
        // Go's prefix reads of table `micro` are `KEYS micro*`: none of ours match.
        for ours in [&names.meta, &names.index, &names.expiries, &names.counter] {
            assert!(!ours.starts_with("micro"), "{ours}");
        }
    }

    #[test]
    fn other_databases_keep_tables_and_keys_apart() {
        assert_eq!(Names::of(table("db2", "t")).value, "~micro-store:value:3:db2:1:t:");
        // Go's layout runs `case` + `_b_` into `case_b` + `_`; these do not.
        let a = Names::of(table("db", "case"));
        let b = Names::of(table("db", "case_b"));
        assert_ne!(format!("{}_b_", a.value), format!("{}_", b.value));
        let a = Names::of(table("a:b", "c"));
        let b = Names::of(table("a", "b:c"));
        assert_ne!(a.value, b.value);
        assert_ne!(a.index, b.index);
        assert_ne!(a.expiries, b.expiries);
        assert_ne!(a.counter, b.counter);
        assert_eq!(Names::of(table("db", "x")).counter, Names::of(table("db", "y")).counter);
    }

    /// Whether `ZRANGEBYLEX min max` returns `key`.
    fn within(min: &[u8], max: &[u8], key: &str) -> bool {
        let key = key.as_bytes();
        let above = match min {
            b"-" => true,
            [b'(', rest @ ..] => key > rest,
            [b'[', rest @ ..] => key >= rest,
            _ => unreachable!("a bad bound"),
        };
        let below = match max {
            b"+" => true,
            [b'(', rest @ ..] => key < rest,
            [b'[', rest @ ..] => key <= rest,
            _ => unreachable!("a bad bound"),
        };
        above && below
    }

    #[test]
    fn the_bounds_take_what_the_prefix_and_cursor_let_through() {
        let keys = [
            "",
            "a",
            "user",
            "user/",
            "user/1",
            "user/17",
            "user/18",
            "user/9",
            "user/\u{10ffff}",
            "user0",
            "userz",
            "z",
        ];
        let prefixes = [None, Some(""), Some("user/"), Some("user"), Some("zz")];
        let afters = [None, Some(""), Some("user/17"), Some("a"), Some("userz")];
        for prefix in prefixes {
            for after in afters {
                let filter = Filter {
                    prefix: prefix.map(str::to_owned),
                    after: after.map(str::to_owned),
                    ..Filter::default()
                };
                let (min, max) = bounds(&filter);
                for key in keys {
                    assert_eq!(
                        within(&min, &max, key),
                        filter.matches(key),
                        "{key:?} with prefix {prefix:?} after {after:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn expiries_are_whole_milliseconds_rounded_up() {
        assert_eq!(Expiry::after(Duration::from_micros(1500)), Expiry::After(2));
        assert_eq!(Expiry::after(Duration::ZERO), Expiry::After(0));
        assert_eq!(Expiry::after(Duration::MAX), Expiry::Never);
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(Expiry::at(Some(at)), Expiry::At(1_700_000_000_123));
        assert_eq!(
            Expiry::at(Some(at + Duration::from_nanos(1))),
            Expiry::At(1_700_000_000_124)
        );
        assert_eq!(Expiry::at(None), Expiry::Never);
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Expiry::at(Some(before)), Expiry::At(0), "long past: expired");
        assert_eq!(Expiry::At(5).args(), ("PXAT", 5));
        assert_eq!(expiry_from(-1), None);
        assert_eq!(expiry_from(1_700_000_000_123), Some(at));
    }
}
