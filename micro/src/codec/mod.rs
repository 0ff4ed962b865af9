//! Codecs chosen by `Content-Type`, as Go Micro chooses them.
//!
//! | content type | codec |
//! |---|---|
//! | `application/json` | JSON ([`serde_json`]) |
//! | `application/json-rpc` | JSON inside a JSON-RPC 1.0 envelope ([`jsonrpc`]) |
//! | `application/msgpack` | MessagePack ([`rmp_serde`], structs as maps); the default between micro nodes |
//! | `application/octet-stream` | raw bytes: the value must be bytes or a string |
//!
//! A request's body is decoded with the codec named by its `Content-Type` and
//! the response is encoded with the same codec.

pub mod jsonrpc;
mod raw;

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A body codec, chosen by content type.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// `application/json`.
    Json,
    /// `application/json-rpc`: Go Micro's legacy codec; bodies are JSON inside
    /// a JSON-RPC envelope that the RPC layer adds and removes.
    JsonRpc,
    /// `application/msgpack`.
    Msgpack,
    /// `application/octet-stream`: the body is the value's bytes.
    Bytes,
}

/// The content types micro serves, in order of preference.
pub const SUPPORTED: &[&str] = &[
    "application/msgpack",
    "application/json",
    "application/json-rpc",
    "application/octet-stream",
];

impl Codec {
    /// The codec for a `Content-Type` header value; parameters such as
    /// `; charset=utf-8` are ignored.
    pub fn from_content_type(content_type: &str) -> Result<Codec, CodecError> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        [
            ("application/json", Codec::Json),
            ("application/msgpack", Codec::Msgpack),
            ("application/json-rpc", Codec::JsonRpc),
            ("application/octet-stream", Codec::Bytes),
            ("application/x-msgpack", Codec::Msgpack),
            ("application/vnd.msgpack", Codec::Msgpack),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(essence))
        .map(|(_, codec)| codec)
        .ok_or_else(|| CodecError::Unsupported(content_type.to_owned()))
    }

    /// The content type this codec writes.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::JsonRpc => "application/json-rpc",
            Codec::Msgpack => "application/msgpack",
            Codec::Bytes => "application/octet-stream",
        }
    }

    /// The content type this codec writes, as a header value.
    pub(crate) fn header_value(self) -> http::HeaderValue {
        // Constants: `from_static` checks its bytes when it runs.
        const JSON: http::HeaderValue = http::HeaderValue::from_static("application/json");
        const JSON_RPC: http::HeaderValue = http::HeaderValue::from_static("application/json-rpc");
        const MSGPACK: http::HeaderValue = http::HeaderValue::from_static("application/msgpack");
        const BYTES: http::HeaderValue = http::HeaderValue::from_static("application/octet-stream");
        match self {
            Codec::Json => JSON,
            Codec::JsonRpc => JSON_RPC,
            Codec::Msgpack => MSGPACK,
            Codec::Bytes => BYTES,
        }
    }

    /// Encodes a value. JSON ends with a newline, as Go's `json.Encoder` writes it.
    #[inline]
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        // Buffers start from the size serde_json starts from.
        match self {
            Codec::Json | Codec::JsonRpc => {
                let mut buf = Vec::with_capacity(128);
                serde_json::to_writer(&mut buf, value).map_err(|e| self.encode_error(e))?;
                buf.push(b'\n');
                Ok(buf)
            }
            Codec::Msgpack => {
                let mut buf = Vec::with_capacity(128);
                let mut serializer = rmp_serde::Serializer::new(&mut buf).with_struct_map();
                value.serialize(&mut serializer).map_err(|e| self.encode_error(e))?;
                Ok(buf)
            }
            Codec::Bytes => raw::to_bytes(value).map_err(|e| self.encode_error(e)),
        }
    }

    /// Decodes a value.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Json | Codec::JsonRpc => serde_json::from_slice(body).map_err(|e| self.decode_error(e)),
            Codec::Msgpack => rmp_serde::from_slice(body).map_err(|e| self.decode_error(e)),
            Codec::Bytes => raw::from_bytes(body).map_err(|e| self.decode_error(e)),
        }
    }

    /// Decodes a request body. An empty body stands for the empty message, as
    /// in Go Micro, where it leaves the request at its zero value: it decodes
    /// as an empty object (or `null`), which fits types whose fields all have
    /// defaults.
    pub fn decode_request<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, CodecError> {
        if !body.is_empty() {
            return self.decode(body);
        }
        let (object, null): (&[u8], &[u8]) = match self {
            Codec::Json | Codec::JsonRpc => (b"{}", b"null"),
            Codec::Msgpack => (&[0x80], &[0xc0]),
            Codec::Bytes => return self.decode(body),
        };
        self.decode(object)
            .or_else(|_| self.decode(null))
            .map_err(|_| CodecError::Decode {
                content_type: self.content_type(),
                message: "the request body is empty and the request type has required fields".into(),
            })
    }

    #[cold]
    fn encode_error(self, e: impl fmt::Display) -> CodecError {
        CodecError::Encode {
            content_type: self.content_type(),
            message: e.to_string(),
        }
    }

    #[cold]
    fn decode_error(self, e: impl fmt::Display) -> CodecError {
        CodecError::Decode {
            content_type: self.content_type(),
            message: e.to_string(),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.content_type())
    }
}

/// Why a body could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// No codec serves this content type.
    #[error(
        "unsupported Content-Type {0:?}: micro serves application/json, application/msgpack, application/json-rpc and application/octet-stream"
    )]
    Unsupported(String),
    /// The body is not a valid value of the expected type.
    #[error("cannot decode {content_type} body: {message}")]
    Decode {
        /// The codec's content type.
        content_type: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode {content_type} body: {message}")]
    Encode {
        /// The codec's content type.
        content_type: &'static str,
        /// What the encoder reported.
        message: String,
    },
}

impl CodecError {
    /// The Go Micro error for this failure, raised by `id`: 415 for an
    /// unsupported content type, 400 for a bad body, 500 for an encoding failure.
    pub fn into_error(self, id: &str) -> Error {
        match self {
            CodecError::Unsupported(_) => Error::unsupported_media_type(id, self.to_string()),
            CodecError::Decode { .. } => Error::bad_request(id, self.to_string()),
            CodecError::Encode { .. } => Error::internal_server_error(id, self.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Request {
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize, Default)]
    struct Optional {
        #[serde(default)]
        name: String,
    }

    #[test]
    fn content_types_resolve_with_parameters() {
        assert_eq!(
            Codec::from_content_type("application/json; charset=utf-8"),
            Ok(Codec::Json)
        );
        assert_eq!(Codec::from_content_type("Application/MsgPack"), Ok(Codec::Msgpack));
        assert!(matches!(
            Codec::from_content_type("text/plain"),
            Err(CodecError::Unsupported(_))
        ));
        assert!(matches!(
            Codec::from_content_type("application/protobuf"),
            Err(CodecError::Unsupported(_))
        ));
    }

    #[test]
    fn header_values_are_the_content_types() {
        for codec in [Codec::Json, Codec::JsonRpc, Codec::Msgpack, Codec::Bytes] {
            assert_eq!(codec.header_value(), codec.content_type());
        }
    }

    #[test]
    fn json_ends_with_newline_like_go() {
        let body = Codec::Json.encode(&Request { name: "alice".into() }).unwrap();
        assert_eq!(&body[..], b"{\"name\":\"alice\"}\n");
    }

    #[test]
    fn every_codec_round_trips() {
        let req = Request { name: "alice".into() };
        for codec in [Codec::Json, Codec::JsonRpc, Codec::Msgpack] {
            let body = codec.encode(&req).unwrap();
            assert_eq!(codec.decode::<Request>(&body).unwrap(), req);
        }
        let raw = Codec::Bytes.encode(&"hello".to_string()).unwrap();
        assert_eq!(&raw[..], b"hello");
        assert_eq!(Codec::Bytes.decode::<Vec<u8>>(b"\x00\xff").unwrap(), vec![0, 255]);
    }

    #[test]
    fn msgpack_writes_structs_as_maps() {
        let body = Codec::Msgpack.encode(&Request { name: "a".into() }).unwrap();
        assert_eq!(body[0], 0x81, "a one-entry fixmap");
    }

    #[test]
    fn empty_request_body_is_the_zero_value_or_a_clear_error() {
        assert_eq!(
            Codec::Json.decode_request::<Optional>(b"").unwrap(),
            Optional::default()
        );
        assert_eq!(
            Codec::Msgpack.decode_request::<Optional>(b"").unwrap(),
            Optional::default()
        );
        Codec::Json.decode_request::<()>(b"").unwrap();
        let err = Codec::Json.decode_request::<Request>(b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn decode_errors_say_what_was_wrong() {
        let err = Codec::Json.decode::<Request>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(err.clone().into_error("x").code, 400);
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
