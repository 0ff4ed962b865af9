//! One merged, validated state of the config, read without locks.

use std::fmt;

use serde::de::DeserializeOwned;

use super::de::{from_node, missing};
use super::error::ConfigError;
use super::node::{Kind, Node, Origin};

/// The config at one moment: every source merged in load order. Reads
/// never block a reload, and a snapshot never changes.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) root: Node,
    pub(crate) version: u64,
    pub(crate) closed: bool,
}

impl Snapshot {
    pub(crate) fn new(root: Node, version: u64) -> Snapshot {
        Snapshot {
            root,
            version,
            closed: false,
        }
    }

    /// Counts the changes applied: 1 for the first load.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value at the dotted `path` (`"db.port"`; `""` is the whole
    /// config) as a `T`. Text is parsed on demand: `"8080"` reads as a
    /// number, `8080` as a string, `"1m30s"` as a `Duration`, `"a,b"` as a
    /// list, and Go's boolean spellings as a `bool`. `Option<T>` reads a
    /// missing path as `None`; otherwise a missing path is
    /// [`ConfigError::NotFound`], and a value that does not fit names its
    /// path, where it was set and what was expected.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        match self.root.at(path) {
            Some(node) => from_node(node, path),
            None => missing(path),
        }
    }

    /// The value at `path`, or `default` when nothing is set there. A value
    /// that is set but does not fit is logged and `default` returned.
    pub fn get_or<T: DeserializeOwned>(&self, path: &str, default: T) -> T {
        match self.get::<Option<T>>(path) {
            Ok(Some(value)) => value,
            Ok(None) => default,
            Err(err) => {
                tracing::warn!(error = %err, "config value ignored, using the default");
                default
            }
        }
    }

    /// The subtree at `path` read into a struct. Unlike
    /// [`get`](Snapshot::get), a missing subtree reads as an empty object,
    /// so a struct whose fields all have `#[serde(default)]` still scans.
    pub fn scan<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        match self.root.at(path) {
            Some(node) => from_node(node, path),
            None => from_node(&Node::empty(), path),
        }
    }

    /// True when a value is set at `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.root.at(path).is_some()
    }

    /// Where each value at or under `path` came from: one line per leaf,
    /// secrets shown as `[redacted]`. Empty when nothing is set there.
    pub fn explain(&self, path: &str) -> Vec<Explanation> {
        let mut out = Vec::new();
        if let Some(node) = self.root.at(path) {
            let mut at = path.to_owned();
            node.leaves(&mut at, &mut |leaf_path, leaf| {
                out.push(Explanation {
                    path: leaf_path.to_owned(),
                    origin: Origin::clone(&leaf.origin),
                    value: leaf.to_json(true).to_string(),
                    secret: leaf.secret,
                });
            });
        }
        out
    }

    /// The whole config as JSON, secrets included (what the application
    /// reads); `{:?}` of a snapshot redacts them.
    pub fn to_json(&self) -> serde_json::Value {
        self.root.to_json(false)
    }

    /// The dotted path of every leaf value.
    pub fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.root
            .leaves(&mut String::new(), &mut |path, _| out.push(path.to_owned()));
        out
    }

    /// True when `other` holds the same values at `path` (wherever they came from).
    pub(crate) fn same_at(&self, other: &Snapshot, path: &str) -> bool {
        match (self.root.at(path), other.root.at(path)) {
            (Some(a), Some(b)) => a.same_value(b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("values", &format_args!("{}", self.root.to_json(true)))
            .finish()
    }
}

/// Where one value came from, for [`Snapshot::explain`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// The value's dotted path.
    pub path: String,
    /// The source that set it and its key there.
    pub origin: Origin,
    /// The value as JSON text, or `[redacted]` for a secret.
    pub value: String,
    /// The value is a secret.
    pub secret: bool,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {} (from {})", self.path, self.value, self.origin)
    }
}

/// Marks secrets and substitutes `${VAR}` in every string value.
pub(crate) struct Finish<'a> {
    pub(crate) secret_paths: &'a [String],
    pub(crate) secrets_by_name: bool,
    pub(crate) variables: &'a (dyn Fn(&str) -> Option<String> + Send + Sync),
}

/// True for a key (or variable) whose name says it holds a secret.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace(['-', '.'], "_");
    SECRET_WORDS.iter().any(|w| name.contains(w)) || name == "api_key" || name.ends_with("_api_key")
}

/// Words that make a key a secret when secrets are found by name.
const SECRET_WORDS: [&str; 7] = [
    "password",
    "passwd",
    "secret",
    "token",
    "private_key",
    "privatekey",
    "apikey",
];

impl Finish<'_> {
    pub(crate) fn apply(&self, node: &mut Node) {
        self.walk(node, &mut String::new(), false);
    }

    fn is_secret(&self, path: &str, key: &str) -> bool {
        self.secret_paths.iter().any(|p| p == path) || self.secrets_by_name && secret_name(key)
    }

    fn walk(&self, node: &mut Node, path: &mut String, secret: bool) {
        node.secret = secret;
        match &mut node.kind {
            Kind::String(text) => {
                if text.contains('$')
                    && let std::borrow::Cow::Owned(done) = super::substitute::substitute(text, self.variables)
                {
                    // `${DB_PASSWORD}` inside a value makes the value a secret.
                    if self.secrets_by_name && super::substitute::variables(text).any(secret_name) {
                        node.secret = true;
                    }
                    *text = done;
                }
            }
            Kind::List(items) => {
                for item in items {
                    self.walk(item, path, secret);
                }
            }
            Kind::Map(map) => {
                for (key, child) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    let child_secret = secret || self.is_secret(path, key);
                    self.walk(child, path, child_secret);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}
