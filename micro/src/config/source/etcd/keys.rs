//! Go Micro's etcd key mapping: each key's JSON value set at the path the
//! key names under the prefix (plugins v4 `config/source/etcd` `util.go`),
//! each value remembering its key.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::NAME;
use crate::config::source::{Layer, SourceError};

/// Part of the config as Go's etcd source builds it, each value with its key.
enum Tree {
    Value(serde_json::Value, Arc<str>),
    Object(BTreeMap<String, Tree>, Arc<str>),
}

impl Tree {
    fn from_json(value: serde_json::Value, key: &Arc<str>) -> Tree {
        match value {
            serde_json::Value::Object(map) => Tree::Object(members(map, key), Arc::clone(key)),
            value => Tree::Value(value, Arc::clone(key)),
        }
    }
}

fn members(map: serde_json::Map<String, serde_json::Value>, key: &Arc<str>) -> BTreeMap<String, Tree> {
    map.into_iter().map(|(k, v)| (k, Tree::from_json(v, key))).collect()
}

/// Sets `value` at `path` as Go does: anything but an object on the way is
/// replaced by one, and the value replaces what was at the path.
fn set(root: &mut BTreeMap<String, Tree>, path: &[&str], value: Tree, key: &Arc<str>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = root;
    for segment in parents {
        let slot = here
            .entry((*segment).to_owned())
            .or_insert_with(|| Tree::Object(BTreeMap::new(), Arc::clone(key)));
        if !matches!(slot, Tree::Object(..)) {
            *slot = Tree::Object(BTreeMap::new(), Arc::clone(key));
        }
        let Tree::Object(next, _) = slot else {
            return;
        };
        here = next;
    }
    here.insert((*last).to_owned(), value);
}

/// Merges `later` into `base`: objects merge member by member, anything
/// else replaces.
fn merge(base: &mut BTreeMap<String, Tree>, later: BTreeMap<String, Tree>) {
    for (name, value) in later {
        match (base.get_mut(&name), value) {
            (Some(Tree::Object(into, _)), Tree::Object(from, _)) => merge(into, from),
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

fn fill(layer: &mut Layer, path: &mut Vec<String>, tree: BTreeMap<String, Tree>) {
    for (name, value) in tree {
        path.push(name);
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match value {
            Tree::Value(value, key) => {
                layer.insert(&segments, value, &*key);
            }
            Tree::Object(members, key) if members.is_empty() => {
                layer.insert(&segments, serde_json::Value::Object(Default::default()), &*key);
            }
            Tree::Object(members, _) => fill(layer, path, members),
        }
        path.pop();
    }
}

/// The layer of `kvs` (in etcd's key order), Go Micro's mapping; `strip`
/// is the prefix to remove from the keys, if any. Fails naming the keys
/// whose values are not JSON.
pub(super) fn to_layer<'a>(
    kvs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    strip: Option<&str>,
) -> Result<Layer, SourceError> {
    let mut root = BTreeMap::new();
    let mut bad: Vec<(String, serde_json::Error)> = Vec::new();
    for (key, value) in kvs {
        let key = String::from_utf8_lossy(key);
        let value = match serde_json::from_slice::<serde_json::Value>(value) {
            Ok(value) => value,
            Err(err) => {
                bad.push((key.into_owned(), err));
                continue;
            }
        };
        let mut relative: &str = &key;
        if let Some(prefix) = strip {
            relative = relative.strip_prefix(prefix).unwrap_or(relative);
        }
        relative = relative.strip_prefix('/').unwrap_or(relative);
        let origin: Arc<str> = Arc::from(&*key);
        let path: Vec<&str> = relative.split('/').collect();
        match (path.as_slice(), value) {
            (&[_], serde_json::Value::Object(map)) => merge(&mut root, members(map, &origin)),
            (&[""], _) => {
                tracing::debug!(key = %key, "etcd config key names no path; ignored");
            }
            (path, value) => set(&mut root, path, Tree::from_json(value, &origin), &origin),
        }
    }
    if let Some((key, err)) = bad.first() {
        let mut message = format!("the value of key {key} is not JSON: {err}");
        if bad.len() > 1 {
            let others: Vec<&str> = bad[1..].iter().map(|(key, _)| key.as_str()).collect();
            message.push_str(&format!(" (nor are those of {})", others.join(", ")));
        }
        return Err(SourceError::new(NAME, message));
    }
    let mut layer = Layer::new(NAME);
    fill(&mut layer, &mut Vec::new(), root);
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(kvs: &[(&str, &str)], strip: Option<&str>) -> serde_json::Value {
        to_layer(kvs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())), strip)
            .unwrap()
            .to_json()
    }

    #[test]
    fn without_strip_the_prefix_is_part_of_the_path() {
        assert_eq!(
            read(&[("/micro/config/db", r#"{"a":1}"#)], None),
            json!({"micro": {"config": {"db": {"a": 1}}}})
        );
    }

    #[test]
    fn with_strip_keys_are_paths_under_the_prefix() {
        let strip = Some("/micro/config/");
        assert_eq!(
            read(
                &[
                    ("/micro/config/db/host", r#""h""#),
                    ("/micro/config/db/port", "5432"),
                    ("/micro/config/name", r#""svc""#),
                ],
                strip
            ),
            json!({"db": {"host": "h", "port": 5432}, "name": "svc"})
        );
        // Go's "whole config in one key", merged into the root.
        assert_eq!(
            read(
                &[
                    ("/micro/config/a/b", "1"),
                    ("/micro/config/default", r#"{"a": {"c": 2}, "d": true}"#),
                    ("/micro/config/e/f", "3"),
                ],
                strip
            ),
            json!({"a": {"b": 1, "c": 2}, "d": true, "e": {"f": 3}})
        );
        // Without the trailing slash in the prefix, one `/` is trimmed.
        assert_eq!(read(&[("/app/x", "1")], Some("/app")), json!({"x": 1}));
    }

    #[test]
    fn later_keys_replace_as_in_go() {
        assert_eq!(
            read(&[("/p/a", "1"), ("/p/a/b", "2")], Some("/p/")),
            json!({"a": {"b": 2}})
        );
        assert_eq!(
            read(&[("/p/s/a", r#"{"x": {"y": 1}}"#), ("/p/s/a/x/z", "2")], Some("/p/")),
            json!({"s": {"a": {"x": {"y": 1, "z": 2}}}})
        );
        assert_eq!(
            read(
                &[("/p/s/a", r#"{"x": {"y": 1}}"#), ("/p/s/a/x", r#"{"z": 2}"#)],
                Some("/p/")
            ),
            json!({"s": {"a": {"x": {"z": 2}}}})
        );
        assert_eq!(
            read(&[("/p/a/b", "{}"), ("/p/n", "null")], Some("/p/")),
            json!({"a": {"b": {}}, "n": null})
        );
    }

    #[test]
    fn a_value_that_is_not_json_fails_naming_its_key() {
        let err = to_layer([(&b"/p/ok"[..], &b"1"[..]), (b"/p/bad", b"nope")], Some("/p/")).unwrap_err();
        assert!(err.message.contains("/p/bad"), "{err}");
        let err = to_layer([(&b"/p/a"[..], &b""[..]), (b"/p/b", b"{")], Some("/p/")).unwrap_err();
        assert!(err.message.contains("/p/a") && err.message.contains("/p/b"), "{err}");
    }

    #[test]
    fn nothing_under_the_prefix_is_an_empty_config() {
        assert_eq!(read(&[], None), json!({}));
    }

    #[test]
    fn origins_are_the_etcd_keys() {
        let layer = to_layer(
            [
                (&b"/p/db/port"[..], &b"1"[..]),
                (b"/p/default", br#"{"db": {"host": "h"}}"#),
            ],
            Some("/p/"),
        )
        .unwrap();
        let port = layer.root.at("db.port").unwrap();
        assert_eq!((&*port.origin.source, port.origin.key.as_str()), ("etcd", "/p/db/port"));
        assert_eq!(layer.root.at("db.host").unwrap().origin.key, "/p/default");
    }
}
