//! `application/octet-stream`: the body is the value's bytes, as Go Micro's
//! `bytes` codec (`codec/bytes`) sends a `*bytes.Frame` as it is.
//!
//! Values that serialize as bytes or a string (`Vec<u8>`, `bytes::Bytes`,
//! `String`, newtypes of them) pass through; anything else is an error.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::ser::{self, Impossible, Serialize, Serializer};

/// Why a value cannot travel as raw bytes.
#[derive(Debug)]
pub(crate) struct RawError(String);

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RawError {}

impl ser::Error for RawError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

impl de::Error for RawError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        RawError(msg.to_string())
    }
}

pub(crate) fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RawError> {
    value.serialize(RawSerializer)
}

pub(crate) fn from_bytes<T: DeserializeOwned>(body: &[u8]) -> Result<T, RawError> {
    T::deserialize(RawDeserializer(body))
}

fn not_bytes(what: &str) -> RawError {
    RawError(format!(
        "application/octet-stream carries raw bytes: the value must be bytes or a string, not {what}"
    ))
}

struct RawSerializer;

macro_rules! reject {
    ($($method:ident($($arg:ty),*) -> $ret:ty, $what:literal;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, RawError> { Err(not_bytes($what)) })*
    };
}

impl Serializer for RawSerializer {
    type Ok = Vec<u8>;
    type Error = RawError;
    type SerializeSeq = ByteSeq;
    type SerializeTuple = Impossible<Vec<u8>, RawError>;
    type SerializeTupleStruct = Impossible<Vec<u8>, RawError>;
    type SerializeTupleVariant = Impossible<Vec<u8>, RawError>;
    type SerializeMap = Impossible<Vec<u8>, RawError>;
    type SerializeStruct = Impossible<Vec<u8>, RawError>;
    type SerializeStructVariant = Impossible<Vec<u8>, RawError>;

    fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, RawError> {
        Ok(v.to_vec())
    }

    fn serialize_str(self, v: &str) -> Result<Vec<u8>, RawError> {
        Ok(v.as_bytes().to_vec())
    }

    fn serialize_unit(self) -> Result<Vec<u8>, RawError> {
        Ok(Vec::new())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<Vec<u8>, RawError> {
        v.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Vec<u8>, RawError> {
        v.serialize(self)
    }

    fn serialize_none(self) -> Result<Vec<u8>, RawError> {
        Ok(Vec::new())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq, RawError> {
        Ok(ByteSeq(Vec::with_capacity(len.unwrap_or(0))))
    }

    reject! {
        serialize_bool(bool) -> Vec<u8>, "a bool";
        serialize_i8(i8) -> Vec<u8>, "a number";
        serialize_i16(i16) -> Vec<u8>, "a number";
        serialize_i32(i32) -> Vec<u8>, "a number";
        serialize_i64(i64) -> Vec<u8>, "a number";
        serialize_u16(u16) -> Vec<u8>, "a number";
        serialize_u32(u32) -> Vec<u8>, "a number";
        serialize_u64(u64) -> Vec<u8>, "a number";
        serialize_f32(f32) -> Vec<u8>, "a number";
        serialize_f64(f64) -> Vec<u8>, "a number";
        serialize_char(char) -> Vec<u8>, "a char";
        serialize_unit_struct(&'static str) -> Vec<u8>, "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) -> Vec<u8>, "an enum";
        serialize_tuple(usize) -> Self::SerializeTuple, "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct, "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant, "an enum";
        serialize_map(Option<usize>) -> Self::SerializeMap, "a map";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct, "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant, "an enum";
    }

    fn serialize_u8(self, _: u8) -> Result<Vec<u8>, RawError> {
        Err(not_bytes("a number"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Vec<u8>, RawError> {
        Err(not_bytes("an enum"))
    }
}

/// A sequence of `u8`, which is how `Vec<u8>` serializes.
struct ByteSeq(Vec<u8>);

impl ser::SerializeSeq for ByteSeq {
    type Ok = Vec<u8>;
    type Error = RawError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RawError> {
        self.0.push(value.serialize(ByteSerializer)?);
        Ok(())
    }

    fn end(self) -> Result<Vec<u8>, RawError> {
        Ok(self.0)
    }
}

/// Accepts exactly one `u8`: an element of a byte sequence.
struct ByteSerializer;

impl Serializer for ByteSerializer {
    type Ok = u8;
    type Error = RawError;
    type SerializeSeq = Impossible<u8, RawError>;
    type SerializeTuple = Impossible<u8, RawError>;
    type SerializeTupleStruct = Impossible<u8, RawError>;
    type SerializeTupleVariant = Impossible<u8, RawError>;
    type SerializeMap = Impossible<u8, RawError>;
    type SerializeStruct = Impossible<u8, RawError>;
    type SerializeStructVariant = Impossible<u8, RawError>;

    fn serialize_u8(self, v: u8) -> Result<u8, RawError> {
        Ok(v)
    }

    reject! {
        serialize_bool(bool) -> u8, "a sequence of bools";
        serialize_i8(i8) -> u8, "a sequence of numbers";
        serialize_i16(i16) -> u8, "a sequence of numbers";
        serialize_i32(i32) -> u8, "a sequence of numbers";
        serialize_i64(i64) -> u8, "a sequence of numbers";
        serialize_u16(u16) -> u8, "a sequence of numbers";
        serialize_u32(u32) -> u8, "a sequence of numbers";
        serialize_u64(u64) -> u8, "a sequence of numbers";
        serialize_f32(f32) -> u8, "a sequence of numbers";
        serialize_f64(f64) -> u8, "a sequence of numbers";
        serialize_char(char) -> u8, "a sequence of chars";
        serialize_str(&str) -> u8, "a sequence of strings";
        serialize_bytes(&[u8]) -> u8, "a sequence of byte strings";
        serialize_none() -> u8, "a sequence of options";
        serialize_unit() -> u8, "a sequence of units";
        serialize_unit_struct(&'static str) -> u8, "a sequence of structs";
        serialize_unit_variant(&'static str, u32, &'static str) -> u8, "a sequence of enums";
        serialize_seq(Option<usize>) -> Self::SerializeSeq, "nested sequences";
        serialize_tuple(usize) -> Self::SerializeTuple, "a sequence of tuples";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct, "a sequence of tuples";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant, "a sequence of enums";
        serialize_map(Option<usize>) -> Self::SerializeMap, "a sequence of maps";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct, "a sequence of structs";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant, "a sequence of enums";
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u8, RawError> {
        Err(not_bytes("a sequence of options"))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<u8, RawError> {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, RawError> {
        Err(not_bytes("a sequence of enums"))
    }
}

/// Offers the body as bytes, as a string when asked for one, or as a
/// sequence of `u8` for `Vec<u8>`.
struct RawDeserializer<'a>(&'a [u8]);

impl<'de> Deserializer<'de> for RawDeserializer<'_> {
    type Error = RawError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_bytes(self.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        match std::str::from_utf8(self.0) {
            Ok(s) => visitor.visit_str(s),
            Err(e) => Err(RawError(format!("the body is not UTF-8 text: {e}"))),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_byte_buf(self.0.to_vec())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(self.0.iter().copied()))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        if self.0.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        if self.0.is_empty() {
            visitor.visit_unit()
        } else {
            visitor.visit_bytes(self.0)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes
        unit_struct tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, RawError> for RawDeserializer<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Blob(Vec<u8>);

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Named {
        a: u8,
    }

    #[test]
    fn bytes_strings_and_newtypes_pass_through() {
        assert_eq!(to_bytes(&vec![1u8, 2, 3]).unwrap(), [1, 2, 3]);
        assert_eq!(to_bytes("hi").unwrap(), b"hi");
        assert_eq!(to_bytes(&Blob(vec![9])).unwrap(), [9]);
        assert_eq!(from_bytes::<Blob>(&[7, 8]).unwrap(), Blob(vec![7, 8]));
        assert_eq!(from_bytes::<String>(b"text").unwrap(), "text");
        assert_eq!(from_bytes::<Option<Vec<u8>>>(b"").unwrap(), None);
    }

    #[test]
    fn structs_are_rejected_with_a_reason() {
        let err = to_bytes(&Named { a: 1 }).unwrap_err();
        assert!(err.to_string().contains("must be bytes or a string"), "{err}");
        assert!(from_bytes::<Named>(b"x").is_err());
        assert!(from_bytes::<String>(&[0xff]).unwrap_err().to_string().contains("UTF-8"));
    }
}
