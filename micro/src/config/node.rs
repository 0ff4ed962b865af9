//! The config tree: every value remembers the source and the source's own
//! key it came from, so a read can say where a bad value was set.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::sync::Arc;

/// Where a value came from: the source and the key in the source's own
/// terms (`APP_DB_PORT` for env, `db.port` for a file,
/// `/micro/config/db/port` for etcd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The source's name, e.g. `env`, `file config.yaml`, `etcd`.
    pub source: Arc<str>,
    /// The key within that source.
    pub key: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.source)
        } else {
            write!(f, "{} {}", self.source, self.key)
        }
    }
}

/// One value of the tree with its origin.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) origin: Arc<Origin>,
    /// Marked secret: its value never appears in `Debug`, errors or
    /// `explain`.
    pub(crate) secret: bool,
}

/// The value itself: JSON's shapes, arrays holding their elements.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>),
}

impl Node {
    pub(crate) fn new(kind: Kind, origin: Arc<Origin>) -> Node {
        Node {
            kind,
            origin,
            secret: false,
        }
    }

    /// An empty object with no source.
    pub(crate) fn empty() -> Node {
        Node::new(
            Kind::Map(BTreeMap::new()),
            Arc::new(Origin {
                source: Arc::from("defaults"),
                key: String::new(),
            }),
        )
    }

    /// `value` from `source`, each leaf's key its dotted path under
    /// `prefix`.
    pub(crate) fn from_json(value: serde_json::Value, source: &Arc<str>, prefix: &str) -> Node {
        let origin = Arc::new(Origin {
            source: Arc::clone(source),
            key: prefix.to_owned(),
        });
        let kind = match value {
            serde_json::Value::Null => Kind::Null,
            serde_json::Value::Bool(b) => Kind::Bool(b),
            serde_json::Value::Number(n) => Kind::Number(n),
            serde_json::Value::String(s) => Kind::String(s),
            serde_json::Value::Array(items) => Kind::List(
                items
                    .into_iter()
                    .map(|item| Node::from_json_shared(item, &origin))
                    .collect(),
            ),
            serde_json::Value::Object(map) => Kind::Map(
                map.into_iter()
                    .map(|(k, v)| {
                        let key = join(prefix, &k);
                        (k, Node::from_json(v, source, &key))
                    })
                    .collect(),
            ),
        };
        Node::new(kind, origin)
    }

    /// An array's elements share the array's origin.
    fn from_json_shared(value: serde_json::Value, origin: &Arc<Origin>) -> Node {
        let kind = match value {
            serde_json::Value::Null => Kind::Null,
            serde_json::Value::Bool(b) => Kind::Bool(b),
            serde_json::Value::Number(n) => Kind::Number(n),
            serde_json::Value::String(s) => Kind::String(s),
            serde_json::Value::Array(items) => {
                Kind::List(items.into_iter().map(|i| Node::from_json_shared(i, origin)).collect())
            }
            serde_json::Value::Object(map) => Kind::Map(
                map.into_iter()
                    .map(|(k, v)| (k, Node::from_json_shared(v, origin)))
                    .collect(),
            ),
        };
        Node::new(kind, Arc::clone(origin))
    }

    /// The value as JSON, secrets replaced by `"[redacted]"` when `redact`.
    pub(crate) fn to_json(&self, redact: bool) -> serde_json::Value {
        if redact && self.secret {
            return serde_json::Value::String(REDACTED.to_owned());
        }
        match &self.kind {
            Kind::Null => serde_json::Value::Null,
            Kind::Bool(b) => serde_json::Value::Bool(*b),
            Kind::Number(n) => serde_json::Value::Number(n.clone()),
            Kind::String(s) => serde_json::Value::String(s.clone()),
            Kind::List(items) => serde_json::Value::Array(items.iter().map(|i| i.to_json(redact)).collect()),
            Kind::Map(map) => {
                serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json(redact))).collect())
            }
        }
    }

    /// The node at a dotted `path` (`""` is the root). Keys are exact and
    /// case-sensitive, as Go Micro's.
    pub(crate) fn at(&self, path: &str) -> Option<&Node> {
        if path.is_empty() {
            return Some(self);
        }
        path.split('.').try_fold(self, |node, key| match &node.kind {
            Kind::Map(map) => map.get(key),
            _ => None,
        })
    }

    /// Sets the node at `path`, making objects on the way, as Go Micro's env
    /// source does (mergo without override): a value already there, or a
    /// scalar on the way, keeps its place unless Go counts it empty
    /// ([`Node::is_go_empty`]). Returns false when it blocked the new value.
    pub(crate) fn insert(&mut self, path: &[&str], node: Node) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut here = self;
        for key in parents {
            if !matches!(here.kind, Kind::Map(_)) {
                if !here.is_go_empty() {
                    return false;
                }
                *here = Node::new(Kind::Map(BTreeMap::new()), Arc::clone(&node.origin));
            }
            let Kind::Map(map) = &mut here.kind else {
                return false;
            };
            here = map
                .entry((*key).to_owned())
                .or_insert_with(|| Node::new(Kind::Map(BTreeMap::new()), Arc::clone(&node.origin)));
        }
        if !matches!(here.kind, Kind::Map(_)) {
            if !here.is_go_empty() {
                return false;
            }
            *here = Node::new(Kind::Map(BTreeMap::new()), Arc::clone(&node.origin));
        }
        let Kind::Map(map) = &mut here.kind else {
            return false;
        };
        match map.entry((*last).to_owned()) {
            Entry::Vacant(slot) => {
                slot.insert(node);
                true
            }
            Entry::Occupied(mut slot) if slot.get().is_go_empty() => {
                slot.insert(node);
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// Empty as Go Micro's env source sees a value: an empty value
    /// ([`Node::is_empty_scalar`]), or text it reads as the integer 0 or as
    /// false (`0`, `00`, `f`, `false` ...).
    fn is_go_empty(&self) -> bool {
        match &self.kind {
            Kind::String(text) => {
                let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
                text.is_empty()
                    || (!digits.is_empty() && digits.bytes().all(|b| b == b'0'))
                    || matches!(text.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "False")
            }
            _ => self.is_empty_scalar(),
        }
    }

    /// Equal values, wherever they came from.
    pub(crate) fn same_value(&self, other: &Node) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Null, Kind::Null) => true,
            (Kind::Bool(a), Kind::Bool(b)) => a == b,
            (Kind::Number(a), Kind::Number(b)) => a == b,
            (Kind::String(a), Kind::String(b)) => a == b,
            (Kind::List(a), Kind::List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y)),
            (Kind::Map(a), Kind::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.same_value(vb))
            }
            _ => false,
        }
    }

    /// What kind of value this is, for error messages.
    pub(crate) fn describe(&self) -> String {
        let shape = match &self.kind {
            Kind::Null => return "null".to_owned(),
            Kind::Bool(b) => format!("boolean `{b}`"),
            Kind::Number(n) => format!("number `{n}`"),
            Kind::String(s) => format!("string {s:?}"),
            Kind::List(_) => return "an array".to_owned(),
            Kind::Map(_) => return "an object".to_owned(),
        };
        if self.secret {
            match &self.kind {
                Kind::Bool(_) => "a boolean".to_owned(),
                Kind::Number(_) => "a number".to_owned(),
                _ => "a string".to_owned(),
            }
        } else {
            shape
        }
    }

    /// Calls `each` with the dotted path of every leaf under this node.
    pub(crate) fn leaves<'a>(&'a self, path: &mut String, each: &mut dyn FnMut(&str, &'a Node)) {
        match &self.kind {
            Kind::Map(map) => {
                for (key, child) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    child.leaves(path, each);
                    path.truncate(len);
                }
            }
            _ => each(path, self),
        }
    }

    /// True for Go's empty values (`null`, `false`, `0`, `""`, `[]`), which
    /// a later object replaces.
    fn is_empty_scalar(&self) -> bool {
        match &self.kind {
            Kind::Null => true,
            Kind::Bool(b) => !b,
            Kind::Number(n) => n.as_f64() == Some(0.0),
            Kind::String(s) => s.is_empty(),
            Kind::List(items) => items.is_empty(),
            Kind::Map(_) => false,
        }
    }
}

/// The text shown in place of a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// `prefix.key`, or `key` at the root.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Merges `later` over `base` with Go Micro's rules (mergo with override):
/// objects merge key by key; a later scalar, null or array replaces
/// whatever was there; a later object replaces an earlier empty value but
/// is dropped over an earlier non-empty scalar.
pub(crate) fn merge(base: &mut Node, later: Node) {
    match (&mut base.kind, later.kind) {
        (Kind::Map(into), Kind::Map(from)) => {
            for (key, value) in from {
                match into.entry(key) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(mut slot) => merge(slot.get_mut(), value),
                }
            }
        }
        (_, kind @ Kind::Map(_)) => {
            if base.is_empty_scalar() {
                *base = Node::new(kind, later.origin);
            }
        }
        (_, kind) => *base = Node::new(kind, later.origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(value: serde_json::Value) -> Node {
        Node::from_json(value, &Arc::from("test"), "")
    }

    fn merged(values: &[serde_json::Value]) -> serde_json::Value {
        let mut base = Node::empty();
        for v in values {
            merge(&mut base, node(v.clone()));
        }
        base.to_json(false)
    }

    #[test]
    fn later_sources_win_and_objects_merge() {
        let out = merged(&[
            json!({"amqp": {"host": "file", "port": 5672}}),
            json!({"amqp": {"host": "env"}}),
        ]);
        assert_eq!(out, json!({"amqp": {"host": "env", "port": 5672}}));
    }

    #[test]
    fn arrays_are_replaced_and_objects_do_not_replace_scalars() {
        assert_eq!(merged(&[json!({"a": [1, 2]}), json!({"a": [3]})]), json!({"a": [3]}));
        assert_eq!(merged(&[json!({"a": "x"}), json!({"a": {"b": 1}})]), json!({"a": "x"}));
        assert_eq!(
            merged(&[json!({"a": ""}), json!({"a": {"b": 1}})]),
            json!({"a": {"b": 1}})
        );
        assert_eq!(merged(&[json!({"a": {"b": 1}}), json!({"a": 0})]), json!({"a": 0}));
        assert_eq!(
            merged(&[json!({"a": {"b": 1}}), json!({"a": null})]),
            json!({"a": null})
        );
    }

    #[test]
    fn origins_follow_the_winning_value() {
        let mut base = Node::from_json(json!({"db": {"host": "a", "port": 1}}), &Arc::from("file"), "");
        merge(
            &mut base,
            Node::from_json(json!({"db": {"port": 2}}), &Arc::from("env"), ""),
        );
        assert_eq!(&*base.at("db.host").unwrap().origin.source, "file");
        let port = base.at("db.port").unwrap();
        assert_eq!((&*port.origin.source, port.origin.key.as_str()), ("env", "db.port"));
        assert!(base.at("db.nope").is_none());
        assert!(base.at("db.port.deeper").is_none());
    }
}
