//! Go Micro's HTTP transport, server side: one `POST /` per call.
//!
//! The endpoint comes from `Micro-Endpoint` (or `Micro-Method`), the codec
//! from `Content-Type`, the deadline from `Timeout` (nanoseconds), and every
//! header becomes metadata. A Go Micro client (its requests carry `Micro-Id`)
//! gets failures as Go Micro's transport returns them, HTTP 200 with the error
//! JSON in `Micro-Error`; any other caller gets the HTTP status of the error
//! code with the error JSON as the body, and the same header.

use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, future};
use http::Method;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::{debug, error, warn};

use crate::net::Peer;
use super::handler::{EndpointDescriptor, Handler, Message, Request, Response};
use super::router::Router;
use super::stream;
use crate::BoxFuture;
use crate::body::BodyError;
use crate::codec::{Codec, jsonrpc};
use crate::context::Context;
use crate::error::{Error, SERVER_ID};
use crate::headers::names;
use crate::metadata::LazyMetadata;
use crate::stream::frame::ChannelBody;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) body_limit: usize,
    /// The server's name, or else the first `Micro-Service` it was called
    /// with, kept so that calls naming it (nearly all) share it instead of
    /// each copying it.
    pub(crate) service: OnceLock<Arc<str>>,
}

impl Shared {
    /// What calls see as the name of the service they were addressed to.
    pub(crate) fn service_name(&self, name: &str) -> Arc<str> {
        let known = self.service.get_or_init(|| Arc::from(name));
        if **known == *name {
            Arc::clone(known)
        } else {
            Arc::from(name)
        }
    }
}

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
pub(crate) fn serve(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    request: http::Request<Incoming>,
) -> impl Future<Output = http::Response<ResponseBody>> + Send + 'static {
    // Everything up to reading the body happens now, so that the future
    // hyper keeps per request holds only what the rest needs.
    let (go_micro, started) = start(&shared, peer, request);
    let reply = match started {
        Started::Replied(reply) => future::Either::Left(std::future::ready(reply)),
        Started::Unary(BodyPending { body, routed, call }) => future::Either::Right(finish(shared, body, routed, call)),
    };
    // `map`, not an async block, which would keep what it captured.
    reply.map(move |reply| {
        if let Err(err) = &reply.result {
            debug!(code = err.code, detail = %err.detail, "call failed");
        }
        write_reply(go_micro, reply)
    })
}

/// A request checked and routed: answered already (an error, or a stream
/// that runs on its own), or a unary call whose body is still to be read.
enum Started {
    Replied(Reply),
    Unary(BodyPending),
}

/// A unary call before its body is read.
struct BodyPending {
    body: Incoming,
    /// Its handler, unless only a JSON-RPC envelope names the endpoint.
    routed: Option<Routed>,
    call: Unary,
}

/// An endpoint's handler and descriptor.
type Routed = (Arc<dyn Handler>, &'static EndpointDescriptor);

/// The handler and descriptor of `endpoint`, kept for the call.
fn route(shared: &Shared, endpoint: &str) -> Result<Routed, Error> {
    let (handler, descriptor) = shared.router.route(endpoint)?;
    Ok((Arc::clone(handler), descriptor))
}

/// Whether a Go Micro client sent the request, and the call started.
fn start(shared: &Shared, peer: Arc<Peer>, request: http::Request<Incoming>) -> (bool, Started) {
    let head = Head::read(request.headers());
    let go_micro = head.go_micro;
    let prepared = match prepare(shared, request.method(), &head) {
        Ok(prepared) => prepared,
        Err(e) => return (go_micro, Started::Replied(Reply::error(e))),
    };
    (go_micro, start_call(shared, peer, request, prepared))
}

/// What a request's call headers say.
struct Prepared {
    codec: Codec,
    deadline: Option<Instant>,
    /// The service named, shared with the server's other calls.
    service: Option<Arc<str>>,
    /// The endpoint's handler, if a header names it.
    routed: Option<Routed>,
}

fn prepare(shared: &Shared, method: &Method, head: &Head<'_>) -> Result<Prepared, Error> {
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
    let service = match head.service {
        Some(name) => Some(shared.service_name(name)),
        None => shared.service.get().cloned(),
    };
    // Route before reading the body, unless only a JSON-RPC envelope names the endpoint.
    let routed = head.endpoint.map(|endpoint| route(shared, endpoint)).transpose()?;
    Ok(Prepared {
        codec,
        deadline,
        service,
        routed,
    })
}

fn start_call(shared: &Shared, peer: Arc<Peer>, request: http::Request<Incoming>, prepared: Prepared) -> Started {
    let Prepared {
        codec,
        deadline,
        service,
        routed,
    } = prepared;
    let (parts, body) = request.into_parts();
    let metadata = LazyMetadata::from_headers(parts.headers, peer);
    if let Some((handler, descriptor)) = routed.as_ref().filter(|(_, d)| d.kind().is_stream()) {
        let context = Context::for_request(metadata, deadline, service, descriptor.name());
        let opened = stream::open(
            shared,
            Arc::clone(handler),
            descriptor,
            context,
            codec,
            (parts.version, body),
            deadline,
        );
        return Started::Replied(Reply {
            codec: Some(codec),
            jsonrpc_id: None,
            result: opened.map(Payload::Stream),
        });
    }
    Started::Unary(BodyPending {
        body,
        routed,
        call: Unary {
            service,
            codec,
            metadata,
            deadline,
            message: Message::Body(Bytes::new()),
        },
    })
}

/// Reads a unary call's body and runs it. (It takes a [`BodyPending`]'s
/// parts as separate arguments: a future keeps each argument whole while it
/// runs, so taking them out of one would keep two copies.)
async fn finish(shared: Arc<Shared>, body: Incoming, routed: Option<Routed>, mut call: Unary) -> Reply {
    let codec = call.codec;
    let body = match read_body(body, shared.body_limit).await {
        Ok(body) => body,
        Err(e) => return Reply::error(e),
    };
    let (routed, body, jsonrpc_id) = match codec {
        Codec::JsonRpc => match jsonrpc::decode_request(&body) {
            Ok(envelope) => match routed.map_or_else(|| route(&shared, &envelope.method), Ok) {
                Ok(routed) => (routed, envelope.params, Some(envelope.id)),
                Err(e) => return Reply::error(e),
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
    call.message = Message::Body(body);
    let result = answer(&routed.0, routed.1, call)
        .map(|response| response?.into_body())
        .await;
    Reply {
        codec: Some(codec),
        jsonrpc_id,
        result: result.map(Payload::Full),
    }
}

/// A unary call however it arrived, decoded from its transport.
pub(crate) struct Unary {
    pub(crate) service: Option<Arc<str>>,
    pub(crate) codec: Codec,
    pub(crate) metadata: LazyMetadata,
    pub(crate) deadline: Option<Instant>,
    /// The encoded body, or in an in-process call the caller's value.
    pub(crate) message: Message,
}

/// Routes a unary call to `endpoint` and runs its handler: the encoded
/// response or the error.
pub(crate) fn dispatch(
    shared: &Shared,
    endpoint: &str,
    call: Unary,
) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static {
    respond(shared, endpoint, call).map(|response| response?.into_body())
}

/// Routes a unary call and starts its handler: the handler's response or
/// the error, once the returned future is awaited.
pub(crate) fn respond(
    shared: &Shared,
    endpoint: &str,
    call: Unary,
) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    match shared.router.route(endpoint) {
        Ok((handler, descriptor)) => future::Either::Right(answer(handler, descriptor, call)),
        Err(e) => future::Either::Left(std::future::ready(Err(e))),
    }
}

/// Starts the handler of a routed unary call: its response or the error,
/// once the returned future is awaited.
fn answer(
    handler: &Arc<dyn Handler>,
    descriptor: &'static EndpointDescriptor,
    call: Unary,
) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    let Unary {
        service,
        codec,
        metadata,
        deadline,
        message,
    } = call;
    let endpoint = descriptor.name();
    if descriptor.kind().is_stream() {
        return future::Either::Left(std::future::ready(Err(Error::bad_request(
            SERVER_ID,
            format!(
                "{endpoint} is a streaming endpoint: open it as a stream over HTTP/2, naming it in the Micro-Endpoint header"
            ),
        ))));
    }
    let context = Context::for_request(metadata, deadline, service, endpoint);
    let request = Request::with_message(descriptor.method(), context.clone(), codec, message);
    future::Either::Right(run(Arc::clone(handler), request, endpoint, context, deadline))
}

/// The error for a request body over the server's `limit`, on any transport.
pub(crate) fn body_too_large(limit: usize) -> Error {
    Error::payload_too_large(
        SERVER_ID,
        format!("request body is larger than the server's limit of {limit} bytes"),
    )
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

/// Starts the handler and runs it inside its context, under its deadline,
/// catching panics.
pub(super) fn run(
    handler: Arc<dyn Handler>,
    request: Request,
    endpoint: &'static str,
    context: Context,
    deadline: Option<Instant>,
) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    // The handler's code runs in its future, polled inside the context's
    // scope; `call` itself only decodes the request.
    let future = start_handler(endpoint, || handler.call(request));
    let guarded = context.scope(catching_panics(endpoint, future));
    async move {
        let mut guarded = pin!(guarded);
        // Most handlers answer on their first poll: those need no timer.
        if let Poll::Ready(answer) = poll_fn(|cx| Poll::Ready(guarded.as_mut().poll(cx))).await {
            return answer;
        }
        let Some(deadline) = deadline else {
            return guarded.await;
        };
        // Boxed: the timer is for handlers that wait, and inline it would
        // widen the future of every call, in-process calls' included.
        let expired = Box::pin(tokio::time::sleep_until(deadline));
        match future::select(guarded, expired).await {
            future::Either::Left((answer, _)) => answer,
            future::Either::Right(_) => Err(Error::timeout(
                SERVER_ID,
                format!("{endpoint} did not finish within the caller's deadline"),
            )),
        }
    }
}

/// Starts a handler's future, turning a panic into a 500 error that names `what`.
pub(super) fn start_handler<T: Send + 'static>(
    what: &str,
    start: impl FnOnce() -> BoxFuture<'static, Result<T, Error>>,
) -> BoxFuture<'static, Result<T, Error>> {
    match std::panic::catch_unwind(AssertUnwindSafe(start)) {
        Ok(future) => future,
        Err(panic) => Box::pin(std::future::ready(Err(panicked(what, panic.as_ref())))),
    }
}

/// Runs a handler's future, turning a panic into a 500 error that names `what`.
pub(super) async fn catching_panics<T>(
    what: impl AsRef<str>,
    future: BoxFuture<'static, Result<T, Error>>,
) -> Result<T, Error> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(panicked(what.as_ref(), panic.as_ref())))
}

fn panicked(endpoint: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    error!(endpoint, panic = %message, "handler panicked");
    Error::internal_server_error(SERVER_ID, format!("panic recovered: {message}"))
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
