//! The registry [`Value`] tree of a Rust type, read from its `Deserialize`
//! implementation.
//!
//! Go Micro reflects over a handler's request and response structs
//! (`server/extractor.go`). Rust has no reflection, but a `Deserialize`
//! implementation names its struct and fields (honouring `#[serde(rename)]`)
//! as it asks the deserializer for them. A tracing deserializer answers each
//! request with a placeholder and writes down what was asked for. As in Go,
//! the tree stops three levels down; sequences are named `[]Elem` and are
//! not expanded.

use serde::de::value::{Error as TraceError, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};

use super::Value;

/// Go Micro stops describing fields at this depth.
const MAX_DEPTH: usize = 3;

/// The shape of `T`, or `None` when its `Deserialize` implementation needs a
/// self-describing format (untagged enums, flattened structs) or rejects the
/// placeholders.
pub fn describe<T: DeserializeOwned>() -> Option<Value> {
    let mut slot = None;
    T::deserialize(Tracer {
        depth: 0,
        slot: &mut slot,
    })
    .ok()?;
    slot
}

/// A deserializer that records what it is asked for into `slot`.
struct Tracer<'s> {
    depth: usize,
    slot: &'s mut Option<Value>,
}

impl Tracer<'_> {
    fn record(&mut self, ty: impl Into<String>) {
        if self.depth < MAX_DEPTH {
            let ty = ty.into();
            *self.slot = Some(Value {
                name: ty.clone(),
                ty,
                values: Vec::new(),
            });
        }
    }

    /// Records `ty` unless a more specific type was recorded already (a
    /// newtype around a struct keeps the newtype's name but not its fields).
    fn live(&self) -> bool {
        self.depth < MAX_DEPTH
    }
}

macro_rules! primitive {
    ($($method:ident => $visit:ident($value:expr), $ty:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
            self.record($ty);
            visitor.$visit($value)
        })*
    };
}

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TraceError> {
        Err(de::Error::custom("the type needs a self-describing format"))
    }

    primitive! {
        deserialize_bool => visit_bool(false), "bool";
        deserialize_i8 => visit_i8(1), "int8";
        deserialize_i16 => visit_i16(1), "int16";
        deserialize_i32 => visit_i32(1), "int32";
        deserialize_i64 => visit_i64(1), "int64";
        deserialize_i128 => visit_i128(1), "int128";
        deserialize_u8 => visit_u8(1), "uint8";
        deserialize_u16 => visit_u16(1), "uint16";
        deserialize_u32 => visit_u32(1), "uint32";
        deserialize_u64 => visit_u64(1), "uint64";
        deserialize_u128 => visit_u128(1), "uint128";
        deserialize_f32 => visit_f32(0.0), "float32";
        deserialize_f64 => visit_f64(0.0), "float64";
        deserialize_char => visit_char('a'), "rune";
        deserialize_str => visit_str(""), "string";
        deserialize_string => visit_string(String::new()), "string";
        deserialize_bytes => visit_bytes(&[]), "[]uint8";
        deserialize_byte_buf => visit_byte_buf(Vec::new()), "[]uint8";
        deserialize_identifier => visit_str(""), "string";
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.record(name);
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        // Go describes a pointer by its element; past the depth limit nothing
        // is recorded, and `None` ends recursive types.
        if self.live() {
            visitor.visit_some(self)
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let Tracer { depth, slot } = self;
        let value = visitor.visit_newtype_struct(Tracer {
            depth,
            slot: &mut *slot,
        })?;
        if let Some(v) = slot.as_mut() {
            v.name = name.to_owned();
            v.ty = name.to_owned();
            v.values.clear();
        }
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let mut elem = None;
        let value = visitor.visit_seq(OneOf::new(self.depth, &mut elem))?;
        let ty = elem.map_or_else(|| "[]".to_owned(), |e| format!("[]{}", e.ty));
        self.record(ty);
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(mut self, len: usize, visitor: V) -> Result<V::Value, TraceError> {
        let mut elem = None;
        let value = visitor.visit_seq(Fixed {
            depth: self.depth,
            remaining: len,
            first: &mut elem,
        })?;
        self.record(elem.map_or_else(|| "tuple".to_owned(), |e| format!("[{len}]{}", e.ty)));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let mut ignored = None;
        let value = visitor.visit_seq(Fixed {
            depth: self.depth,
            remaining: len,
            first: &mut ignored,
        })?;
        self.record(name);
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, TraceError> {
        let mut key = None;
        let mut val = None;
        let value = visitor.visit_map(OneEntry {
            depth: self.depth,
            key: &mut key,
            value: &mut val,
            state: if self.live() { EntryState::Key } else { EntryState::Done },
        })?;
        let name = |v: Option<Value>| v.map_or_else(String::new, |v| v.ty);
        self.record(format!("map[{}]{}", name(key), name(val)));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let mut described = Vec::new();
        let value = visitor.visit_map(Fields {
            depth: self.depth,
            fields: fields.iter(),
            current: None,
            described: &mut described,
        })?;
        if self.live() {
            *self.slot = Some(Value {
                name: name.to_owned(),
                ty: name.to_owned(),
                values: described,
            });
        }
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let first = variants
            .first()
            .ok_or_else(|| de::Error::custom("enum without variants"))?;
        self.record(name);
        visitor.visit_enum(FirstVariant {
            depth: self.depth,
            variant: first,
        })
    }
}

/// A child tracer one level down, writing into `slot`.
fn child(depth: usize, slot: &mut Option<Value>) -> Tracer<'_> {
    Tracer { depth: depth + 1, slot }
}

/// The fields of a struct, each traced one level down.
struct Fields<'a> {
    depth: usize,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
    described: &'a mut Vec<Value>,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(field);
        let key: StrDeserializer<'_, TraceError> = field.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TraceError> {
        let mut slot = None;
        let value = seed.deserialize(child(self.depth, &mut slot))?;
        if let (Some(mut v), Some(field)) = (slot, self.current.take()) {
            field.clone_into(&mut v.name);
            self.described.push(v);
        }
        Ok(value)
    }
}

/// A sequence of one element (none past the depth limit), whose type is kept.
struct OneOf<'a> {
    depth: usize,
    elem: &'a mut Option<Value>,
    given: bool,
}

impl<'a> OneOf<'a> {
    fn new(depth: usize, elem: &'a mut Option<Value>) -> Self {
        OneOf {
            depth,
            elem,
            given: depth + 1 >= MAX_DEPTH,
        }
    }
}

impl<'de> de::SeqAccess<'de> for OneOf<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, TraceError> {
        if self.given {
            return Ok(None);
        }
        self.given = true;
        seed.deserialize(child(self.depth, self.elem)).map(Some)
    }
}

/// A fixed-length sequence (tuples, arrays); the first element's type is kept.
struct Fixed<'a> {
    depth: usize,
    remaining: usize,
    first: &'a mut Option<Value>,
}

impl<'de> de::SeqAccess<'de> for Fixed<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, TraceError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let mut scratch = None;
        let slot = if self.first.is_none() {
            &mut *self.first
        } else {
            &mut scratch
        };
        seed.deserialize(child(self.depth, slot)).map(Some)
    }
}

#[derive(Copy, Clone)]
enum EntryState {
    Key,
    Value,
    Done,
}

/// A map of one entry (none past the depth limit), whose key and value types are kept.
struct OneEntry<'a> {
    depth: usize,
    key: &'a mut Option<Value>,
    value: &'a mut Option<Value>,
    state: EntryState,
}

impl<'de> de::MapAccess<'de> for OneEntry<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, TraceError> {
        match self.state {
            EntryState::Key => {
                self.state = EntryState::Value;
                seed.deserialize(child(self.depth, self.key)).map(Some)
            }
            EntryState::Value | EntryState::Done => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TraceError> {
        self.state = EntryState::Done;
        seed.deserialize(child(self.depth, self.value))
    }
}

/// Chooses an enum's first variant and traces its data without recording it.
struct FirstVariant {
    depth: usize,
    variant: &'static str,
}

impl<'de> de::EnumAccess<'de> for FirstVariant {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), TraceError> {
        let key: StrDeserializer<'_, TraceError> = self.variant.into_deserializer();
        Ok((seed.deserialize(key)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for FirstVariant {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, TraceError> {
        seed.deserialize(child(MAX_DEPTH, &mut None))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, TraceError> {
        visitor.visit_seq(Fixed {
            depth: MAX_DEPTH,
            remaining: len,
            first: &mut None,
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let _ = self.depth;
        visitor.visit_map(Fields {
            depth: MAX_DEPTH,
            fields: fields.iter(),
            current: None,
            described: &mut Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Request {
        name: String,
        #[serde(rename = "userAge")]
        age: u32,
        tags: Vec<String>,
        address: Option<Address>,
        labels: BTreeMap<String, i64>,
        kind: Kind,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Address {
        street: String,
        geo: Geo,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Geo {
        lat: f64,
        deeper: Deeper,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Deeper {
        x: bool,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B(u8),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        children: Vec<Tree>,
        parent: Option<Box<Tree>>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        A(String),
    }

    fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
        v.values
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {v:?}"))
    }

    #[test]
    fn describes_fields_like_go_extractor() {
        let v = describe::<Request>().unwrap();
        assert_eq!((v.name.as_str(), v.ty.as_str()), ("Request", "Request"));
        let names: Vec<_> = v.values.iter().map(|f| (f.name.as_str(), f.ty.as_str())).collect();
        assert_eq!(
            names,
            [
                ("name", "string"),
                ("userAge", "uint32"),
                ("tags", "[]string"),
                ("address", "Address"),
                ("labels", "map[string]int64"),
                ("kind", "Kind"),
            ]
        );
        let address = field(&v, "address");
        let geo = field(address, "geo");
        assert_eq!(geo.ty, "Geo");
        assert!(geo.values.is_empty(), "Go stops at depth three: {geo:?}");
    }

    #[test]
    fn recursive_types_terminate() {
        let v = describe::<Tree>().unwrap();
        assert_eq!(field(&v, "children").ty, "[]Tree");
        assert_eq!(field(&v, "parent").ty, "Tree");
    }

    #[test]
    fn primitives_and_unsupported_types() {
        assert_eq!(describe::<String>().unwrap().ty, "string");
        assert_eq!(describe::<Vec<u8>>().unwrap().ty, "[]uint8");
        assert!(describe::<Untagged>().is_none());
        assert!(describe::<serde_json::Value>().is_none());
    }
}
