//! [`CommandLine`]: the application's own command-line flags as config.

use super::{Layer, Source, SourceError};
use crate::BoxFuture;

/// Command-line flags as config, with Go Micro's mapping: the flag's name
/// lower-cased and split on `-` and `_` into levels (`--db-host x` is
/// `db.host`). Read from clap's matches (the flags given on the command
/// line or through their `env`, not their defaults, unless
/// [`with_defaults`](CommandLine::with_defaults)), or from pairs.
#[derive(Clone)]
pub struct CommandLine {
    flags: Vec<(String, serde_json::Value)>,
    separator: Option<String>,
}

impl CommandLine {
    /// The flags set in `matches`.
    pub fn from_matches(matches: &clap::ArgMatches) -> CommandLine {
        Self::collect(matches, false)
    }

    /// The flags in `matches`, their defaults included.
    pub fn with_defaults(matches: &clap::ArgMatches) -> CommandLine {
        Self::collect(matches, true)
    }

    fn collect(matches: &clap::ArgMatches, defaults: bool) -> CommandLine {
        use clap::parser::ValueSource;
        let mut flags = Vec::new();
        for id in matches.ids() {
            let id = id.as_str();
            let given = matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if !(given || defaults && matches.value_source(id).is_some()) {
                continue;
            }
            let Ok(Some(raw)) = matches.try_get_raw(id) else {
                continue;
            };
            let values: Vec<serde_json::Value> = raw
                .map(|v| serde_json::Value::String(v.to_string_lossy().into_owned()))
                .collect();
            let value = match <[serde_json::Value; 1]>::try_from(values) {
                Ok([one]) => one,
                Err(many) => serde_json::Value::Array(many),
            };
            flags.push((id.to_owned(), value));
        }
        CommandLine { flags, separator: None }
    }

    /// These flags, by name (without the dashes), with text values.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> CommandLine {
        CommandLine {
            flags: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), serde_json::Value::String(v.into())))
                .collect(),
            separator: None,
        }
    }

    /// Splits levels on `separator` only (e.g. `.` for `--db.host`).
    pub fn separator(mut self, separator: impl Into<String>) -> CommandLine {
        self.separator = Some(separator.into());
        self
    }

    fn layer(&self) -> Layer {
        let mut layer = Layer::new("flags");
        for (name, value) in &self.flags {
            let lower = name.trim_start_matches('-').to_lowercase();
            let path: Vec<&str> = match &self.separator {
                Some(separator) => lower.split(separator.as_str()).collect(),
                None => lower.split(['-', '_']).collect(),
            };
            layer.insert(&path, value.clone(), format!("--{}", name.trim_start_matches('-')));
        }
        layer
    }
}

impl std::fmt::Debug for CommandLine {
    /// Flags' values may be secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandLine")
            .field("flags", &self.flags.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("separator", &self.separator)
            .finish()
    }
}

impl Source for CommandLine {
    fn name(&self) -> String {
        "flags".to_owned()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(async move { Ok(self.layer()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_map_like_go_micro() {
        let cmd = clap::Command::new("app")
            .arg(clap::Arg::new("db-host").long("db-host"))
            .arg(clap::Arg::new("db_port").long("db_port").default_value("5432"))
            .arg(clap::Arg::new("tags").long("tags").num_args(1..));
        let matches = cmd
            .try_get_matches_from(["app", "--db-host", "x", "--tags", "a", "b"])
            .unwrap();
        assert_eq!(
            CommandLine::from_matches(&matches).layer().to_json(),
            json!({"db": {"host": "x"}, "tags": ["a", "b"]})
        );
        assert_eq!(
            CommandLine::with_defaults(&matches).layer().to_json(),
            json!({"db": {"host": "x", "port": "5432"}, "tags": ["a", "b"]})
        );
        let dotted = CommandLine::from_pairs([("db.host_name", "y")]).separator(".");
        assert_eq!(dotted.layer().to_json(), json!({"db": {"host_name": "y"}}));
    }
}
