//! Go Micro's legacy `application/json-rpc` envelope (JSON-RPC 1.0).
//!
//! A Go Micro client falls back to it when a node's registry metadata has no
//! `protocol`: the request is `{"method","params":[request],"id"}` and the
//! response `{"id","result","error"}`, each followed by a newline.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::CodecError;

/// A JSON-RPC request as a server reads it.
#[derive(Debug)]
pub struct Request {
    /// `Service.Method` from the envelope.
    pub method: String,
    /// The id, printed as Go prints it with `%v`.
    pub id: String,
    /// The JSON of the single parameter (`null` when absent).
    pub params: Bytes,
}

#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(default)]
    method: String,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

/// Reads a request envelope.
pub fn decode_request(body: &[u8]) -> Result<Request, CodecError> {
    let wire: WireRequest<'_> = serde_json::from_slice(body).map_err(envelope_error)?;
    let params = match wire.params {
        None => Bytes::from_static(b"null"),
        Some(raw) => first_param(raw)?,
    };
    Ok(Request {
        method: wire.method,
        id: wire.id.map(go_print).unwrap_or_else(|| "<nil>".to_owned()),
        params,
    })
}

/// `params` is an array holding the request; a bare object is accepted too.
fn first_param(raw: &RawValue) -> Result<Bytes, CodecError> {
    let text = raw.get().trim_start();
    if !text.starts_with('[') {
        return Ok(Bytes::copy_from_slice(text.as_bytes()));
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(envelope_error)?;
    match items.as_slice() {
        [one] => Ok(Bytes::copy_from_slice(one.get().as_bytes())),
        [] => Ok(Bytes::from_static(b"null")),
        _ => Err(CodecError::Decode {
            content_type: "application/json-rpc",
            message: format!("params holds {} values; a call takes one request", items.len()),
        }),
    }
}

/// How Go's `fmt.Sprintf("%v", id)` prints a JSON id: strings bare, numbers
/// as written.
fn go_print(raw: &RawValue) -> String {
    match serde_json::from_str::<String>(raw.get()) {
        Ok(s) => s,
        Err(_) => raw.get().to_owned(),
    }
}

#[derive(Serialize)]
struct WireResponse<'a> {
    id: &'a str,
    result: &'a RawValue,
    error: Option<&'a str>,
}

/// Writes a response envelope; `result` is the JSON of the response, or
/// `None` with an error.
pub fn encode_response(id: &str, result: Option<&[u8]>, error: Option<&str>) -> Result<Bytes, CodecError> {
    let null = RawValue::NULL;
    let text = result.map(std::str::from_utf8).transpose().map_err(envelope_error)?;
    let owned = text
        .map(|t| RawValue::from_string(t.trim_end().to_owned()))
        .transpose()
        .map_err(envelope_error)?;
    let wire = WireResponse {
        id,
        result: owned.as_deref().unwrap_or(null),
        error,
    };
    let mut buf = serde_json::to_vec(&wire).map_err(envelope_error)?;
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

#[derive(Serialize)]
struct WireCall<'a> {
    method: &'a str,
    params: [&'a RawValue; 1],
    id: u64,
}

/// Writes a request envelope around the JSON of `params`.
pub fn encode_request(method: &str, id: u64, params: &[u8]) -> Result<Bytes, CodecError> {
    let text = std::str::from_utf8(params).map_err(envelope_error)?;
    let raw = RawValue::from_string(text.trim_end().to_owned()).map_err(envelope_error)?;
    let mut buf = serde_json::to_vec(&WireCall {
        method,
        params: [&raw],
        id,
    })
    .map_err(envelope_error)?;
    buf.push(b'\n');
    Ok(Bytes::from(buf))
}

#[derive(Deserialize)]
struct WireReply<'a> {
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Reads a response envelope: the JSON of the result, or the error text.
pub fn decode_response(body: &[u8]) -> Result<Result<Bytes, String>, CodecError> {
    let wire: WireReply<'_> = serde_json::from_slice(body).map_err(envelope_error)?;
    match wire.error {
        Some(serde_json::Value::Null) | None => {
            let result = wire.result.map_or("null", RawValue::get);
            Ok(Ok(Bytes::copy_from_slice(result.as_bytes())))
        }
        Some(serde_json::Value::String(s)) => Ok(Err(s)),
        Some(other) => Ok(Err(other.to_string())),
    }
}

fn envelope_error(e: impl std::fmt::Display) -> CodecError {
    CodecError::Decode {
        content_type: "application/json-rpc",
        message: format!("bad JSON-RPC envelope: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_client_request_is_read() {
        let body = br#"{"method":"Helloworld.Greeting","params":[{"name":"alice"}],"id":0}"#;
        let req = decode_request(body).unwrap();
        assert_eq!(req.method, "Helloworld.Greeting");
        assert_eq!(req.id, "0");
        assert_eq!(&req.params[..], br#"{"name":"alice"}"#);
    }

    #[test]
    fn response_matches_go_server_codec() {
        let out = encode_response("0", Some(b"{\"message\":\"Hello alice\"}\n"), None).unwrap();
        assert_eq!(
            &out[..],
            b"{\"id\":\"0\",\"result\":{\"message\":\"Hello alice\"},\"error\":null}\n"
        );
        let err = encode_response("1", None, Some("boom")).unwrap();
        assert_eq!(&err[..], b"{\"id\":\"1\",\"result\":null,\"error\":\"boom\"}\n");
    }

    #[test]
    fn client_round_trip() {
        let call = encode_request("A.B", 3, b"{\"x\":1}\n").unwrap();
        assert_eq!(&call[..], b"{\"method\":\"A.B\",\"params\":[{\"x\":1}],\"id\":3}\n");
        let reply = decode_response(br#"{"id":"3","result":{"y":2},"error":null}"#).unwrap();
        assert_eq!(&reply.unwrap()[..], br#"{"y":2}"#);
        let failed = decode_response(br#"{"id":"3","result":null,"error":"bad"}"#).unwrap();
        assert_eq!(failed.unwrap_err(), "bad");
    }

    #[test]
    fn malformed_envelopes_are_decode_errors() {
        assert!(decode_request(b"not json").is_err());
        assert!(decode_request(br#"{"method":"A.B","params":[1,2]}"#).is_err());
    }
}
