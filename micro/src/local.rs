//! The values of in-process calls: a request or response that moves from
//! caller to handler (or back) as the value itself when both sides use the
//! same Rust type, and goes through the node's codec, exactly as over the
//! wire, when a side's type differs (a client with its own copy of the
//! request struct, say). The servers such calls reach are in
//! [`InProcess`](crate::server::InProcess).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;

use crate::codec::{Codec, CodecError};

/// A request or response value that can still be encoded if the other side
/// wants a different type.
pub(crate) trait Value: Any + Send {
    /// The value in `codec`, as the wire would carry it.
    fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError>;
}

impl<T: Serialize + Send + 'static> Value for T {
    fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode(self)
    }
}

/// The value as a `T`: moved when it is one, else encoded with `codec` and
/// decoded as a `T`.
pub(crate) fn take<T: DeserializeOwned + 'static>(value: Box<dyn Value>, codec: Codec) -> Result<T, CodecError> {
    if (*value).type_id() == std::any::TypeId::of::<T>() {
        let any: Box<dyn Any> = value;
        return any.downcast::<T>().map(|value| *value).map_err(|_| CodecError::Decode {
            content_type: codec.content_type(),
            message: "the value changed type".into(),
        });
    }
    let body = value.encode(codec)?;
    codec.decode_request(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Mine {
        name: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Theirs {
        name: String,
    }

    #[test]
    fn a_value_of_the_same_type_moves_and_another_type_is_decoded() {
        let value: Box<dyn Value> = Box::new(Mine { name: "a".into() });
        assert_eq!(take::<Mine>(value, Codec::Msgpack).unwrap(), Mine { name: "a".into() });
        let value: Box<dyn Value> = Box::new(Mine { name: "b".into() });
        assert_eq!(take::<Theirs>(value, Codec::Json).unwrap(), Theirs { name: "b".into() });
        let value: Box<dyn Value> = Box::new(5u32);
        assert!(take::<Mine>(value, Codec::Json).is_err());
    }
}
