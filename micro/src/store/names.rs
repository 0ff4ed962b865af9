//! Database and table names as Go Micro's SQL stores map them: every run of
//! characters outside `[a-zA-Z0-9]` becomes one `_` (`go.micro-srv` →
//! `go_micro_srv`). A Go service and a micro service naming a table alike
//! then share it. The file store names its files and tables so too, so
//! that a name means the same table on every backend that maps names.

use super::StoreError;

/// The longest name PostgreSQL keeps whole (63 bytes).
const LONGEST: usize = 63;

/// `name` mapped as Go maps it; rejected when nothing usable is left, when
/// it is longer than a SQL identifier can be, or starts with a digit
/// (Go splices names unquoted, where a leading digit breaks the SQL).
pub(crate) fn mapped(name: &str) -> Result<String, StoreError> {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    let bad = |why: &str| Err(StoreError::InvalidName(format!("{name:?} {why}")));
    if out.trim_matches('_').is_empty() {
        return bad("has no letter or digit");
    }
    if out.len() > LONGEST {
        return bad("is longer than 63 characters");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        return bad("starts with a digit");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::mapped;

    #[test]
    fn names_are_mapped_as_go_maps_them() {
        assert_eq!(mapped("micro").unwrap(), "micro");
        assert_eq!(mapped("go.micro-srv").unwrap(), "go_micro_srv");
        assert_eq!(mapped("a;DROP TABLE x;--").unwrap(), "a_DROP_TABLE_x_");
        assert_eq!(mapped("\"quoted\"").unwrap(), "_quoted_");
    }

    #[test]
    fn unusable_names_are_rejected() {
        for name in ["", ";", "  ", "9lives", &"x".repeat(64)] {
            assert!(mapped(name).is_err(), "{name:?}");
        }
        assert!(mapped(&"x".repeat(63)).is_ok());
    }
}
