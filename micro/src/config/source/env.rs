//! [`Env`]: environment variables, mapped as Go Micro's env source maps
//! them.

use std::sync::Arc;

use super::{Layer, Source, SourceError};
use crate::BoxFuture;

/// Environment variables as config, with Go Micro's mapping: the name is
/// lower-cased and split on `_` into levels (`DB_HOST=x` is `db.host`).
/// With no prefix every variable is read, as in Go; with
/// [`prefix`](Env::prefix) only those starting with it (kept in the key),
/// with [`stripped_prefix`](Env::stripped_prefix) only those starting with
/// it (removed from the key). Values stay text and are parsed when read, so
/// `8080` reads as a number or a string. Of two clashing variables
/// (`A=1`, `A_B=2`) the first in the environment wins, as in Go, unless Go
/// counts it empty (`""`, or text Go reads as 0 or false): then the later
/// one does.
///
/// [`separator`](Env::separator)`("__")` splits levels on `__` instead,
/// for keys that contain `_`: `APP__DB_NAME=x` is `db_name`.
#[derive(Clone, Default)]
pub struct Env {
    prefixes: Vec<String>,
    stripped: Vec<String>,
    separator: Option<String>,
    vars: Option<Arc<[(String, String)]>>,
}

impl Env {
    /// Every environment variable (narrow it with a prefix).
    pub fn new() -> Env {
        Env::default()
    }

    /// These variables instead of the process environment (tests, or an
    /// environment read elsewhere).
    pub fn from_vars<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Env {
        Env {
            vars: Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect()),
            ..Env::default()
        }
    }

    /// Reads the variables starting with `prefix` and the separator
    /// (`APP` reads `APP_DB_HOST` as `app.db.host`). Case-sensitive; several
    /// prefixes add up.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Env {
        self.prefixes.push(prefix.into());
        self
    }

    /// Reads the variables starting with `prefix` and the separator,
    /// without it (`APP` reads `APP_DB_HOST` as `db.host`).
    pub fn stripped_prefix(mut self, prefix: impl Into<String>) -> Env {
        self.stripped.push(prefix.into());
        self
    }

    /// Splits levels on `separator` instead of `_`.
    pub fn separator(mut self, separator: impl Into<String>) -> Env {
        self.separator = Some(separator.into());
        self
    }

    fn layer(&self) -> Result<Layer, SourceError> {
        let separator = self.separator.as_deref().unwrap_or("_");
        let with_separator = |p: &String| {
            if p.ends_with(separator) {
                p.clone()
            } else {
                format!("{p}{separator}")
            }
        };
        let prefixes: Vec<String> = self.prefixes.iter().map(with_separator).collect();
        let stripped: Vec<String> = self.stripped.iter().map(with_separator).collect();
        let filtered = !prefixes.is_empty() || !stripped.is_empty();
        let mut layer = Layer::new("env");
        let mut each = |name: &str, value: &str| {
            let mut key = name;
            if filtered {
                let kept = prefixes.iter().any(|p| name.starts_with(p.as_str()));
                match stripped.iter().find(|p| name.starts_with(p.as_str())) {
                    Some(p) => key = &name[p.len()..],
                    None if !kept => return,
                    None => {}
                }
            }
            let lower = key.to_lowercase();
            let path: Vec<&str> = lower.split(separator).collect();
            if !layer.insert(&path, serde_json::Value::String(value.to_owned()), name) {
                tracing::debug!(
                    variable = name,
                    "env variable clashes with an earlier one; the first wins"
                );
            }
        };
        match &self.vars {
            Some(vars) => vars.iter().for_each(|(k, v)| each(k, v)),
            None => {
                for (name, value) in std::env::vars_os() {
                    if let (Some(name), Some(value)) = (name.to_str(), value.to_str()) {
                        each(name, value);
                    }
                }
            }
        }
        Ok(layer)
    }
}

impl std::fmt::Debug for Env {
    /// Variables' values may be secrets: only the options are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("prefixes", &self.prefixes)
            .field("stripped", &self.stripped)
            .field("separator", &self.separator)
            .field("given_vars", &self.vars.as_ref().map(|v| v.len()))
            .finish()
    }
}

impl Source for Env {
    fn name(&self) -> String {
        "env".to_owned()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(async move { self.layer() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(env: &Env) -> serde_json::Value {
        env.layer().unwrap().to_json()
    }

    #[test]
    fn go_micro_mapping() {
        let vars = [
            ("APP_DB_HOST", "x"),
            ("APP_DB_PORT", "8080"),
            ("OTHER", "1"),
            ("APPLE", "2"),
        ];
        assert_eq!(
            read(&Env::from_vars(vars).stripped_prefix("APP")),
            json!({"db": {"host": "x", "port": "8080"}})
        );
        assert_eq!(
            read(&Env::from_vars(vars).prefix("APP")),
            json!({"app": {"db": {"host": "x", "port": "8080"}}})
        );
        assert_eq!(read(&Env::from_vars([("A_B", "1")])), json!({"a": {"b": "1"}}));
        assert_eq!(
            read(
                &Env::from_vars([("APP__DB_NAME__X", "y")])
                    .stripped_prefix("APP")
                    .separator("__")
            ),
            json!({"db_name": {"x": "y"}})
        );
    }

    #[test]
    fn first_of_clashing_variables_wins() {
        assert_eq!(read(&Env::from_vars([("A", "1"), ("A_B", "2")])), json!({"a": "1"}));
        assert_eq!(
            read(&Env::from_vars([("A_B", "2"), ("A", "1")])),
            json!({"a": {"b": "2"}})
        );
    }

    #[test]
    fn origins_are_the_variable_names() {
        let layer = Env::from_vars([("APP_DB_PORT", "1")])
            .stripped_prefix("APP")
            .layer()
            .unwrap();
        let port = layer.root.at("db.port").unwrap();
        assert_eq!((&*port.origin.source, port.origin.key.as_str()), ("env", "APP_DB_PORT"));
    }
}
