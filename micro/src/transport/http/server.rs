//! Go Micro's HTTP transport, server side: one `POST /` per call.
//!
//! The endpoint comes from `Micro-Endpoint` (or `Micro-Method`), the codec
//! from `Content-Type`, the deadline from `Timeout` (nanoseconds), and every
//! header becomes metadata. A Go Micro client (its requests carry `Micro-Id`)
//! gets failures as Go Micro's transport returns them, HTTP 200 with the error
//! JSON in `Micro-Error`; any other caller gets the HTTP status of the error
//! code with the error JSON as the body, and the same header.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, future};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::body::BodyError;
use crate::codec::{Codec, jsonrpc};
use crate::error::{Error, SERVER_ID};
use crate::headers::names;
use crate::metadata::LazyMetadata;
use crate::net::Peer;
use crate::stream::frame::{ChannelBody, FrameReader, Side};
use crate::transport::{Call, Dispatch, Page, body_too_large};

/// The call-level headers of a request, read off it.
#[derive(Debug, Default)]
struct Head<'a> {
    /// Whether the request carries `Micro-Id`, which marks a Go Micro client.
    go_micro: bool,
    service: Option<&'a str>,
    /// `Micro-Endpoint`, or the legacy `Micro-Method`.
    endpoint: Option<&'a str>,
    content_type: Option<&'a str>,
    timeout: Option<Duration>,
}

impl<'a> Head<'a> {
    /// Reads the call headers in one pass over the request's headers: a
    /// plain name wins over its `X-` twin, a first value over later ones.
    /// A value that is not text counts as absent.
    fn read(map: &'a HeaderMap) -> Head<'a> {
        // Plain and prefixed: Micro-Id, Micro-Service, Micro-Endpoint, Micro-Method.
        let mut call: [Option<&HeaderValue>; 8] = [None; 8];
        let mut content_type = None;
        let mut timeout = None;
        for (name, value) in map {
            if name == header::CONTENT_TYPE {
                content_type.get_or_insert(value);
                continue;
            }
            // By length first: a name is compared with one or two candidates.
            let name = name.as_str();
            let slot = match (name.len(), name) {
                (7, "timeout") => &mut timeout,
                (8, "micro-id") => &mut call[0],
                (10, "x-micro-id") => &mut call[1],
                (13, "micro-service") => &mut call[2],
                (15, "x-micro-service") => &mut call[3],
                (14, "micro-endpoint") => &mut call[4],
                (16, "x-micro-endpoint") => &mut call[5],
                (12, "micro-method") => &mut call[6],
                (14, "x-micro-method") => &mut call[7],
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        let call = |plain: usize| call[plain].or(call[plain + 1]).filter(|v| !v.is_empty());
        let text = |plain: usize| call(plain).and_then(|v| v.to_str().ok());
        Head {
            go_micro: call(0).is_some(),
            service: text(2),
            endpoint: text(4).or_else(|| text(6)),
            content_type: content_type.and_then(|v| v.to_str().ok()),
            // Go Micro ignores a Timeout it cannot parse; so do we.
            timeout: timeout.and_then(|v| decimal(v.as_bytes())).map(Duration::from_nanos),
        }
    }
}

/// The value of a decimal number of ASCII digits, if it fits a `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let digit = d.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The headers a response's map has room for; see [`write_reply`].
const REQUEST_HEADERS: usize = 12;

/// The outcome of one call, before it is written as HTTP.
struct Reply {
    codec: Option<Codec>,
    /// The JSON-RPC id when the request came in a JSON-RPC envelope.
    jsonrpc_id: Option<String>,
    result: Result<Payload, Error>,
}

/// A response body: a whole message, or the frames of a stream.
enum Payload {
    Full(Bytes),
    Stream(ChannelBody),
}

/// The body of every response.
pub(crate) type ResponseBody = Either<Full<Bytes>, ChannelBody>;

impl Reply {
    fn error(error: Error) -> Reply {
        Reply {
            codec: None,
            jsonrpc_id: None,
            result: Err(error),
        }
    }
}

/// Serves one HTTP request; never fails: every problem becomes a Go Micro error.
pub(crate) fn serve<D: Dispatch>(
    dispatch: Arc<D>,
    peer: Arc<Peer>,
    request: http::Request<Incoming>,
) -> impl Future<Output = http::Response<ResponseBody>> + Send + 'static {
    if request.method() == Method::GET
        && let Some(page) = dispatch.page(request.uri().path())
    {
        return future::Either::Left(page.map(write_page));
    }
    // Everything up to reading the body happens now, so that the future
    // hyper keeps per request holds only what the rest needs.
    let (go_micro, started) = start(&*dispatch, peer, request);
    let reply = match started {
        Started::Replied(reply) => future::Either::Left(std::future::ready(reply)),
        Started::Unary(BodyPending { body, routed, call }) => {
            future::Either::Right(finish(dispatch, body, routed, call))
        }
    };
    // `map`, not an async block, which would keep what it captured.
    future::Either::Right(reply.map(move |reply| {
        if let Err(err) = &reply.result {
            debug!(code = err.code, detail = %err.detail, "call failed");
        }
        write_reply(go_micro, reply)
    }))
}

fn write_page(page: Page) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(Either::Left(Full::new(page.body)));
    *response.status_mut() = page.status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(page.content_type));
    response
}

/// A request checked and routed: answered already (an error, or a stream
/// that runs on its own), or a unary call whose body is still to be read.
enum Started<R> {
    Replied(Reply),
    Unary(BodyPending<R>),
}

/// A unary call before its body is read.
struct BodyPending<R> {
    body: Incoming,
    /// Its endpoint, unless only a JSON-RPC envelope names it.
    routed: Option<R>,
    call: Call,
}

/// Whether a Go Micro client sent the request, and the call started.
fn start<D: Dispatch>(dispatch: &D, peer: Arc<Peer>, request: http::Request<Incoming>) -> (bool, Started<D::Route>) {
    let head = Head::read(request.headers());
    let go_micro = head.go_micro;
    let prepared = match prepare(dispatch, request.method(), &head) {
        Ok(prepared) => prepared,
        Err(e) => return (go_micro, Started::Replied(Reply::error(e))),
    };
    (go_micro, start_call(dispatch, peer, request, prepared))
}

/// What a request's call headers say.
struct Prepared<R> {
    codec: Codec,
    deadline: Option<Instant>,
    /// The service named, shared with the server's other calls.
    service: Option<Arc<str>>,
    /// The endpoint, if a header names it.
    routed: Option<R>,
}

fn prepare<D: Dispatch>(dispatch: &D, method: &Method, head: &Head<'_>) -> Result<Prepared<D::Route>, Error> {
    if method != Method::POST {
        return Err(Error::method_not_allowed(
            SERVER_ID,
            format!("{method} is not served: call an endpoint with POST and a Micro-Endpoint header"),
        ));
    }
    let codec = match head.content_type {
        // Go Micro defaults to protobuf; micro's handlers are serde types, so
        // a body without a content type is read as JSON.
        None => Codec::Json,
        Some(ct) => Codec::from_content_type(ct).map_err(|e| e.into_error(SERVER_ID))?,
    };
    let deadline = head.timeout.and_then(|t| Instant::now().checked_add(t));
    // A call that names no service is addressed to the server's own.
    let service = dispatch.service(head.service);
    // Route before reading the body, unless only a JSON-RPC envelope names the endpoint.
    let routed = head.endpoint.map(|endpoint| dispatch.route(endpoint)).transpose()?;
    Ok(Prepared {
        codec,
        deadline,
        service,
        routed,
    })
}

fn start_call<D: Dispatch>(
    dispatch: &D,
    peer: Arc<Peer>,
    request: http::Request<Incoming>,
    prepared: Prepared<D::Route>,
) -> Started<D::Route> {
    let Prepared {
        codec,
        deadline,
        service,
        routed,
    } = prepared;
    let (parts, body) = request.into_parts();
    let call = Call {
        service,
        codec,
        metadata: LazyMetadata::from_headers(parts.headers, peer),
        deadline,
        body: Bytes::new(),
    };
    match routed {
        Some(route) if D::streams(&route) => {
            let opened = if parts.version == Version::HTTP_2 {
                let requests = FrameReader::new(body, dispatch.body_limit(), Side::Server);
                dispatch.open_stream(route, call, requests)
            } else {
                Err(Error::bad_request(
                    SERVER_ID,
                    format!(
                        "{} streams: call it over HTTP/2 (h2c, e.g. curl --http2-prior-knowledge)",
                        D::endpoint(&route)
                    ),
                ))
            };
            Started::Replied(Reply {
                codec: Some(codec),
                jsonrpc_id: None,
                result: opened.map(Payload::Stream),
            })
        }
        routed => Started::Unary(BodyPending { body, routed, call }),
    }
}

/// Reads a unary call's body and runs it. (It takes a [`BodyPending`]'s
/// parts as separate arguments: a future keeps each argument whole while it
/// runs, so taking them out of one would keep two copies.)
async fn finish<D: Dispatch>(dispatch: Arc<D>, body: Incoming, routed: Option<D::Route>, mut call: Call) -> Reply {
    let codec = call.codec;
    let body = match read_body(body, dispatch.body_limit()).await {
        Ok(body) => body,
        Err(e) => return Reply::error(e),
    };
    let (routed, body, jsonrpc_id) = match codec {
        Codec::JsonRpc => match jsonrpc::decode_request(&body) {
            Ok(envelope) => match routed.map_or_else(|| dispatch.route(&envelope.method), Ok) {
                Ok(routed) => (routed, envelope.params, Some(envelope.id)),
                Err(e) => {
                    return Reply {
                        codec: Some(codec),
                        jsonrpc_id: Some(envelope.id),
                        result: Err(e),
                    };
                }
            },
            Err(e) => return Reply::error(e.into_error(SERVER_ID)),
        },
        _ => match routed {
            Some(routed) => (routed, body, None),
            None => {
                return Reply::error(Error::bad_request(
                    SERVER_ID,
                    "missing endpoint: set the Micro-Endpoint header to Service.Method, e.g. Helloworld.Greeting",
                ));
            }
        },
    };
    call.body = body;
    let result = dispatch.unary(routed, call).await;
    Reply {
        codec: Some(codec),
        jsonrpc_id,
        result: result.map(Payload::Full),
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Error> {
    // A declared length (Content-Length) over the limit is refused unread.
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(body_too_large(limit));
    }
    match crate::body::read(body, limit).await {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge) => Err(body_too_large(limit)),
        Err(BodyError::Read(e)) => Err(Error::bad_request(SERVER_ID, format!("cannot read request body: {e}"))),
    }
}

/// The HTTP response of a reply: its body and `Content-Type`, or the error.
/// The call headers are not echoed: Go Micro's server copies the request's
/// headers back, but its client reads only `Micro-Error` from a response.
fn write_reply(go_micro: bool, reply: Reply) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(Either::Left(Full::new(Bytes::new())));
    // Once the response is written, hyper reads the connection's next request
    // into this map: with room for a Go Micro request's headers (11, and
    // some metadata), it does not grow then.
    *response.headers_mut() = HeaderMap::with_capacity(REQUEST_HEADERS);
    let Reply {
        codec,
        jsonrpc_id,
        result,
    } = reply;
    let body = match (result, jsonrpc_id) {
        (Ok(Payload::Full(body)), Some(id)) => jsonrpc::encode_response(&id, Some(&body), None)
            .map(|b| Either::Left(Full::new(b)))
            .map_err(|e| e.into_error(SERVER_ID)),
        (Ok(Payload::Full(body)), None) => Ok(Either::Left(Full::new(body))),
        (Ok(Payload::Stream(body)), _) => Ok(Either::Right(body)),
        (Err(err), Some(id)) if go_micro => {
            write_error(&mut response, go_micro, &err);
            // Go Micro's JSON-RPC codec reads the envelope before it looks at
            // Micro-Error: the error travels in both, as Go's server sends it.
            match jsonrpc::encode_response(&id, None, Some(&err.to_json())) {
                Ok(envelope) => {
                    let content_type = Codec::JsonRpc.header_value();
                    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                    *response.body_mut() = Either::Left(Full::new(envelope));
                }
                Err(e) => warn!(error = %e, "cannot write the JSON-RPC error envelope"),
            }
            return response;
        }
        (Err(err), _) => Err(err),
    };
    match body {
        Ok(body) => {
            let content_type = codec.unwrap_or(Codec::Json).header_value();
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
            *response.body_mut() = body;
        }
        Err(err) => write_error(&mut response, go_micro, &err),
    }
    response
}

fn write_error(response: &mut http::Response<ResponseBody>, go_micro: bool, err: &Error) {
    let json = err.to_json();
    if let Ok(value) = HeaderValue::from_str(&json) {
        // Go Micro writes it twice, plain and with an `X-` prefix.
        let [plain, prefixed] = names::ERROR;
        let headers = response.headers_mut();
        headers.insert(plain, value.clone());
        headers.insert(prefixed, value);
    } else {
        warn!("error JSON is not a valid header value; sent in the body only");
    }
    if go_micro {
        // Go Micro's transport treats any status but 200 as a transport
        // failure and would lose the error: it travels in Micro-Error only.
        return;
    }
    *response.status_mut() = err.http_status();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut body = json.into_bytes();
    body.push(b'\n');
    *response.body_mut() = Either::Left(Full::new(Bytes::from(body)));
}

/// The status a reply has: kept for tests of the HTTP mapping.
#[cfg(test)]
fn status_of(go_micro: bool, err: &Error) -> http::StatusCode {
    let mut response = http::Response::new(Either::Left(Full::new(Bytes::new())));
    write_error(&mut response, go_micro, err);
    response.status()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    #[test]
    fn a_go_micro_json_rpc_caller_gets_its_error_in_the_envelope_too() {
        let reply = Reply {
            codec: Some(Codec::JsonRpc),
            jsonrpc_id: Some("7".to_owned()),
            result: Err(Error::new("s", "taken", 409)),
        };
        let response = write_reply(true, reply);
        assert_eq!(response.status(), http::StatusCode::OK);
        assert!(response.headers().contains_key("micro-error"));
        let Either::Left(body) = response.into_body() else {
            panic!("a whole body")
        };
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(body))
            .unwrap()
            .unwrap()
            .to_bytes();
        let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(envelope["id"], "7");
        assert_eq!(envelope["result"], serde_json::Value::Null);
        assert_eq!(Error::parse(envelope["error"].as_str().unwrap()).code, 409);
    }

    #[test]
    fn go_micro_clients_get_200_and_plain_callers_the_code() {
        let err = Error::not_found("x", "y");
        assert_eq!(status_of(true, &err), http::StatusCode::OK);
        assert_eq!(status_of(false, &err), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn head_reads_the_call_header_names() {
        let names = [
            "Micro-Id",
            "X-Micro-Id",
            "Micro-Service",
            "X-Micro-Service",
            "Micro-Endpoint",
            "X-Micro-Endpoint",
            "Micro-Method",
            "X-Micro-Method",
        ];
        for (i, name) in names.into_iter().enumerate() {
            let mut map = HeaderMap::new();
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("A.B"),
            );
            let head = Head::read(&map);
            let read = [
                head.go_micro,
                head.service.is_some(),
                head.endpoint.is_some(),
                head.endpoint.is_some(),
            ];
            assert!(read[i / 2], "{name} is read");
        }
        let mut map = HeaderMap::new();
        map.insert("x-micro-endpoint", HeaderValue::from_static("X.Y"));
        map.insert("micro-endpoint", HeaderValue::from_static("A.B"));
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let head = Head::read(&map);
        assert_eq!(head.endpoint, Some("A.B"), "the plain name wins");
        assert_eq!(head.content_type, Some("application/json"));
    }

    #[test]
    fn timeouts_are_decimal_nanoseconds() {
        assert_eq!(decimal(b"1500000000"), Some(1_500_000_000));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"18446744073709551616", b"-1", b"1.5", b" 1", b"1s"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn head_reads_prefixed_and_legacy_headers() {
        let mut map = HeaderMap::new();
        map.insert("x-micro-id", HeaderValue::from_static("7"));
        map.insert("micro-method", HeaderValue::from_static("A.B"));
        map.insert("timeout", HeaderValue::from_static("1500000000"));
        let head = Head::read(&map);
        assert!(head.go_micro);
        assert_eq!(head.endpoint, Some("A.B"));
        assert_eq!(head.timeout, Some(Duration::from_millis(1500)));
    }
}
