//! [`Secret`]: a config value that never prints.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A value read from config that `{:?}` and `{}` print as `[redacted]`,
/// so a settings struct can be logged whole. Read it with
/// [`expose`](Secret::expose).
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Db {
///     user: String,
///     password: micro::config::Secret<String>,
/// }
/// let db: Db = serde_json::from_str(r#"{"user":"app","password":"hunter2"}"#).unwrap();
/// assert_eq!(format!("{db:?}"), r#"Db { user: "app", password: [redacted] }"#);
/// assert_eq!(db.password.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}
