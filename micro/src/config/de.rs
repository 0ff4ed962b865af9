//! Typed reads: a serde `Deserializer` over the config tree that parses
//! text on demand (`"8080"` reads as a number, `8080` as a string, `"1m"`
//! as a `Duration`, `"a,b"` as a list) and, when a value does not fit,
//! names its path, its source and what was expected.

use std::collections::btree_map;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::error::ConfigError;
use super::node::{Kind, Node, Origin, join};

/// A value that did not fit, located at the deepest node that saw it.
#[derive(Debug)]
pub(crate) struct DeError {
    message: String,
    at: Option<(String, Arc<Origin>)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            at: None,
        }
    }
}

impl DeError {
    pub(crate) fn into_config_error(self, fallback_path: &str, fallback: &Node) -> ConfigError {
        let (path, origin) = self
            .at
            .unwrap_or_else(|| (fallback_path.to_owned(), Arc::clone(&fallback.origin)));
        ConfigError::Value {
            path,
            origin: origin.to_string(),
            message: self.message,
        }
    }
}

/// Deserializes `node`, found at `path`.
pub(crate) fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node, path: &str) -> Result<T, ConfigError> {
    T::deserialize(NodeDe {
        node,
        path: PathText::Root(path),
    })
    .map_err(|e| e.into_config_error(path, node))
}

/// The path to the node being read, kept as borrowed links while the
/// reader descends and turned into text only for an error.
#[derive(Clone, Copy, Debug)]
enum PathText<'p> {
    Root(&'p str),
    Key(&'p PathText<'p>, &'p str),
    Index(&'p PathText<'p>, usize),
}

impl PathText<'_> {
    fn render(&self) -> String {
        match self {
            PathText::Root(path) => (*path).to_owned(),
            PathText::Key(parent, key) => join(&parent.render(), key),
            PathText::Index(parent, index) => format!("{}[{index}]", parent.render()),
        }
    }
}

struct NodeDe<'a, 'p> {
    node: &'a Node,
    path: PathText<'p>,
}

impl<'a, 'p> NodeDe<'a, 'p> {
    fn fail(&self, expected: &str) -> DeError {
        DeError {
            message: format!("expected {expected}, found {}", self.node.describe()),
            at: Some((self.path.render(), Arc::clone(&self.node.origin))),
        }
    }

    /// Locates an error raised further in (by a visitor) at this node,
    /// unless a deeper node already did.
    fn locate(&self, mut err: DeError) -> DeError {
        if err.at.is_none() {
            err.at = Some((self.path.render(), Arc::clone(&self.node.origin)));
            if self.node.secret {
                // serde's own messages may quote the value.
                err.message = format!("the secret value ({}) does not fit", self.node.describe());
            }
        }
        err
    }

    fn text(&self) -> Option<&'a str> {
        match &self.node.kind {
            Kind::String(s) => Some(s.trim()),
            _ => None,
        }
    }

    fn int<T: std::str::FromStr + TryFrom<i64> + TryFrom<u64>>(&self, expected: &str) -> Result<T, DeError> {
        let parsed = match &self.node.kind {
            Kind::Number(n) => n
                .as_i64()
                .and_then(|i| T::try_from(i).ok())
                .or_else(|| n.as_u64().and_then(|u| T::try_from(u).ok())),
            Kind::String(s) => s.trim().parse::<T>().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| self.fail(expected))
    }

    fn float(&self) -> Result<f64, DeError> {
        let parsed = match &self.node.kind {
            Kind::Number(n) => n.as_f64(),
            Kind::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| self.fail("a number"))
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

macro_rules! ints {
    ($($method:ident $visit:ident $ty:ty;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                let value: $ty = self.int(concat!("an integer (", stringify!($ty), ")"))?;
                visitor.$visit(value).map_err(|e| self.locate(e))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Kind::String(s) => visitor.visit_str(s),
            Kind::List(_) => return self.deserialize_seq(visitor),
            Kind::Map(_) => return self.deserialize_map(visitor),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = match &self.node.kind {
            Kind::Bool(b) => Some(*b),
            Kind::String(s) => parse_bool(s.trim()),
            _ => None,
        };
        let value = value.ok_or_else(|| self.fail("a boolean (true, false, 1, 0, t, f)"))?;
        visitor.visit_bool(value).map_err(|e| self.locate(e))
    }

    ints! {
        deserialize_i8 visit_i8 i8;
        deserialize_i16 visit_i16 i16;
        deserialize_i32 visit_i32 i32;
        deserialize_i64 visit_i64 i64;
        deserialize_u8 visit_u8 u8;
        deserialize_u16 visit_u16 u16;
        deserialize_u32 visit_u32 u32;
        deserialize_u64 visit_u64 u64;
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value: i64 = self.int("an integer (i128)")?;
        visitor.visit_i128(i128::from(value)).map_err(|e| self.locate(e))
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value: u64 = self.int("an integer (u128)")?;
        visitor.visit_u128(u128::from(value)).map_err(|e| self.locate(e))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = self.float()?;
        visitor.visit_f32(value as f32).map_err(|e| self.locate(e))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = self.float()?;
        visitor.visit_f64(value).map_err(|e| self.locate(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::String(s) => visitor.visit_borrowed_str(s),
            Kind::Number(n) => visitor.visit_string(n.to_string()),
            Kind::Bool(b) => visitor.visit_string(b.to_string()),
            _ => return Err(self.fail("a string")),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::String(s) => visitor.visit_borrowed_bytes(s.as_bytes()).map_err(|e| self.locate(e)),
            _ => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_none().map_err(|e| self.locate(e)),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_unit().map_err(|e| self.locate(e)),
            _ => Err(self.fail("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::List(items) => {
                let mut seq = Seq {
                    items: items.iter().enumerate(),
                    path: &self.path,
                };
                let value = visitor.visit_seq(&mut seq).map_err(|e| self.locate(e))?;
                Ok(value)
            }
            // Go's StringSlice: "a,b" is [a, b].
            Kind::String(s) => {
                let parts: Vec<&str> = if s.trim().is_empty() {
                    Vec::new()
                } else {
                    s.split(',').map(str::trim).collect()
                };
                visitor
                    .visit_seq(de::value::SeqDeserializer::new(parts.into_iter()))
                    .map_err(|e: DeError| self.locate(e))
            }
            _ => Err(self.fail("an array")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Map(map) => {
                let mut access = Map {
                    entries: map.iter(),
                    pending: None,
                    path: &self.path,
                };
                visitor.visit_map(&mut access).map_err(|e| self.locate(e))
            }
            _ => Err(self.fail("an object")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // std's Duration is a struct of secs and nanos: read Go's duration
        // text ("300ms", "1h2m") into it.
        if name == "Duration"
            && fields == ["secs", "nanos"]
            && let Some(text) = self.text()
        {
            let duration = crate::duration::parse_duration(text)
                .map_err(|_| self.fail("a duration such as 300ms, 5s or 1h30m"))?;
            let entries = [
                ("secs", duration.as_secs()),
                ("nanos", u64::from(duration.subsec_nanos())),
            ];
            return visitor
                .visit_map(de::value::MapDeserializer::new(entries.into_iter()))
                .map_err(|e: DeError| self.locate(e));
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::String(s) => visitor
                .visit_enum(s.trim().into_deserializer())
                .map_err(|e: DeError| self.locate(e)),
            Kind::Map(map) if map.len() == 1 => {
                let Some((variant, value)) = map.iter().next() else {
                    return Err(self.fail("an enum variant"));
                };
                let path = PathText::Key(&self.path, variant);
                let access = Enum {
                    variant,
                    value: NodeDe { node: value, path },
                };
                visitor.visit_enum(access).map_err(|e| self.locate(e))
            }
            _ => Err(self.fail("an enum variant (a string, or an object of one key)")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Seq<'a, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'p PathText<'p>,
}

impl<'de> de::SeqAccess<'de> for Seq<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => seed
                .deserialize(NodeDe {
                    node,
                    path: PathText::Index(self.path, i),
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a, 'p> {
    entries: btree_map::Iter<'a, String, Node>,
    pending: Option<(&'a String, &'a Node)>,
    path: &'p PathText<'p>,
}

impl<'de> de::MapAccess<'de> for Map<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some(entry) => {
                self.pending = Some(entry);
                seed.deserialize(de::value::BorrowedStrDeserializer::new(entry.0))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.pending.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(NodeDe {
            node,
            path: PathText::Key(self.path, key),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'a, 'p> {
    variant: &'a str,
    value: NodeDe<'a, 'p>,
}

impl<'de, 'p> de::EnumAccess<'de> for Enum<'de, 'p> {
    type Error = DeError;
    type Variant = NodeDe<'de, 'p>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, NodeDe<'de, 'p>), DeError> {
        let variant = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.variant))?;
        Ok((variant, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

/// The reader for a path that holds nothing: `Option` reads as `None`,
/// anything else is [`ConfigError::NotFound`].
pub(crate) fn missing<'de, T: de::Deserialize<'de>>(path: &str) -> Result<T, ConfigError> {
    T::deserialize(Missing).map_err(|_| ConfigError::NotFound { path: path.to_owned() })
}

struct Missing;

impl<'de> de::Deserializer<'de> for Missing {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("missing"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_none()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn tree(value: serde_json::Value) -> Node {
        Node::from_json(value, &Arc::from("file app.yaml"), "")
    }

    fn read<T: for<'de> Deserialize<'de>>(root: &Node, path: &str) -> Result<T, ConfigError> {
        match root.at(path) {
            Some(node) => from_node(node, path),
            None => missing(path),
        }
    }

    #[test]
    fn text_is_parsed_on_demand() {
        let root = tree(json!({"port": "8080", "n": 8080, "on": "T", "list": "a, b", "wait": "1m30s"}));
        assert_eq!(read::<u16>(&root, "port").unwrap(), 8080);
        assert_eq!(read::<String>(&root, "port").unwrap(), "8080");
        assert_eq!(read::<String>(&root, "n").unwrap(), "8080");
        assert!(read::<bool>(&root, "on").unwrap());
        assert_eq!(read::<Vec<String>>(&root, "list").unwrap(), ["a", "b"]);
        assert_eq!(read::<Duration>(&root, "wait").unwrap(), Duration::from_secs(90));
        assert_eq!(read::<Option<u16>>(&root, "nope").unwrap(), None);
        assert!(matches!(read::<u16>(&root, "nope"), Err(ConfigError::NotFound { .. })));
    }

    #[test]
    fn errors_name_path_source_and_expectation() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Db {
            host: String,
            port: u16,
        }
        let root = tree(json!({"db": {"host": "x", "port": "http"}, "servers": [{"port": 1}, {"port": -1}]}));
        let err = read::<Db>(&root, "db").unwrap_err().to_string();
        assert!(err.contains("db.port"), "{err}");
        assert!(err.contains("file app.yaml db.port"), "{err}");
        assert!(err.contains("expected an integer (u16)"), "{err}");
        assert!(err.contains("\"http\""), "{err}");
        let err = read::<Vec<BTreeMap<String, u8>>>(&root, "servers")
            .unwrap_err()
            .to_string();
        assert!(err.contains("servers[1].port"), "{err}");
        let err = read::<Db>(&tree(json!({"db": {"port": 1}})), "db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `host`") && err.contains("`db`"), "{err}");
    }

    #[test]
    fn enums_and_values_read() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Fast,
            Slow { by: u32 },
        }
        let root = tree(json!({"a": "fast", "b": {"slow": {"by": "3"}}, "c": {"x": [1, "y"]}}));
        assert_eq!(read::<Mode>(&root, "a").unwrap(), Mode::Fast);
        assert_eq!(read::<Mode>(&root, "b").unwrap(), Mode::Slow { by: 3 });
        assert_eq!(read::<serde_json::Value>(&root, "c").unwrap(), json!({"x": [1, "y"]}));
    }
}
