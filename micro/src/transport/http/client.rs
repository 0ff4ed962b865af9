//! Go Micro's HTTP transport, client side: one `POST /` per call on a pooled
//! keep-alive connection (HTTP/1.1, see [`pool`](super::pool)), or on one
//! multiplexed h2c connection per node.

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::response::Parts;
use http::{Method, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tracing::debug;

use super::pool::{Checkout, Connection, Pool};
use crate::BoxFuture;
use crate::body::BodyError;
use crate::codec::Codec;
use crate::error::{CLIENT_ID, Error};
use crate::headers::names;
use crate::stream::frame::ChannelBody;
use crate::stream::frame::{FrameReader, Side};
use crate::transport::{Answer, Delivery, Failure, Outbound, Transport};

/// How often an idle stream connection is pinged, and how long a ping may take.
const STREAM_PING: Duration = Duration::from_secs(20);

/// Connection settings of the HTTP transport.
#[derive(Clone, Debug)]
pub(crate) struct TransportOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_size: usize,
    pub(crate) pool_ttl: Duration,
    pub(crate) response_limit: usize,
    pub(crate) http2: bool,
}

/// A pooled HTTP client speaking Go Micro's transport, and an HTTP/2 one
/// for streams.
#[derive(Debug)]
pub(crate) struct HttpTransport {
    calls: Calls,
    streams: HyperClient<HttpConnector, ChannelBody>,
    response_limit: usize,
}

/// How unary calls travel.
#[derive(Debug)]
enum Calls {
    /// One call at a time per pooled connection.
    Http1(Pool),
    /// Every call to a node on one h2c connection.
    Http2(HyperClient<HttpConnector, Full<Bytes>>),
}

impl HttpTransport {
    pub(crate) fn new(options: &TransportOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(options.connect_timeout));
        let calls = if options.http2 {
            Calls::Http2(
                HyperClient::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_idle_timeout(options.pool_ttl)
                    .http2_only(true)
                    .build(connector.clone()),
            )
        } else {
            Calls::Http1(Pool::new(options.connect_timeout, options.pool_size, options.pool_ttl))
        };
        // Streams share one HTTP/2 connection per node; pings find dead peers.
        let streams = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(options.pool_ttl)
            .http2_only(true)
            .http2_keep_alive_interval(STREAM_PING)
            .http2_keep_alive_timeout(STREAM_PING)
            .http2_keep_alive_while_idle(false)
            .build(connector);
        HttpTransport {
            calls,
            streams,
            response_limit: options.response_limit,
        }
    }

    /// Sends one call to `address` and reads the answer, giving up at `deadline`.
    pub(crate) async fn round_trip(
        &self,
        address: &str,
        headers: HeaderMap,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let exchange = async {
            match &self.calls {
                Calls::Http1(pool) => self.over_http1(pool, address, headers, body).await,
                Calls::Http2(client) => {
                    let request = post(address, headers, Full::new(body))?;
                    let response = client
                        .request(request)
                        .await
                        .map_err(|e| transport_failure(address, &e))?;
                    read_response(response, self.response_limit).await
                }
            }
        };
        tokio::time::timeout_at(deadline, exchange).await.unwrap_or_else(|_| {
            Err(Failure::new(
                Error::timeout(
                    CLIENT_ID,
                    format!("call timeout: no answer from {address} within the deadline"),
                ),
                Delivery::Unknown,
            ))
        })
    }

    /// One call on a pooled HTTP/1.1 connection, which goes back to the pool
    /// once the answer is read in full.
    async fn over_http1(&self, pool: &Pool, address: &str, headers: HeaderMap, body: Bytes) -> Result<Answer, Failure> {
        let Checkout { mut connection, reused } = pool.checkout(address).await?;
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static("/");
        *request.headers_mut() = headers;
        request.headers_mut().insert(header::HOST, connection.host.clone());
        let response = match connection.sender.try_send_request(request).await {
            Ok(response) => response,
            // Boxed: rare, and its state would otherwise widen every call's.
            Err(e) => Box::pin(resend(pool, address, reused, &mut connection, e)).await?,
        };
        let (parts, body) = read_body(response, self.response_limit).await?;
        pool.put(address, connection);
        answer(&parts, body)
    }

    /// Sends a stream's headers and body to `address`; gives the response
    /// body once the server has accepted the stream.
    pub(crate) async fn open_stream(
        &self,
        address: &str,
        headers: HeaderMap,
        body: ChannelBody,
        deadline: Instant,
    ) -> Result<Incoming, Failure> {
        let request = post(address, headers, body)?;
        let exchange = async {
            let response = self
                .streams
                .request(request)
                .await
                .map_err(|e| transport_failure(address, &e))?;
            if response.status() == StatusCode::OK && !has_error(response.headers()) {
                return Ok(response.into_body());
            }
            // An error before the stream started: an ordinary error response.
            Err(read_response(response, self.response_limit)
                .await
                .err()
                .unwrap_or_else(|| {
                    Failure::new(
                        Error::internal_server_error(CLIENT_ID, "the stream was refused"),
                        Delivery::Answered,
                    )
                }))
        };
        tokio::time::timeout_at(deadline, exchange).await.unwrap_or_else(|_| {
            Err(Failure::new(
                Error::timeout(
                    CLIENT_ID,
                    format!("{address} did not accept the stream within the deadline"),
                ),
                Delivery::Unknown,
            ))
        })
    }
}

impl Transport for HttpTransport {
    fn round_trip<'a>(&'a self, call: Outbound<'a>, body: Bytes) -> BoxFuture<'a, Result<Answer, Failure>> {
        Box::pin(self.round_trip(call.address, request_headers(&call), body, call.deadline))
    }

    fn open_stream<'a>(
        &'a self,
        call: Outbound<'a>,
        requests: ChannelBody,
        open_by: Instant,
    ) -> BoxFuture<'a, Result<FrameReader, Failure>> {
        let mut headers = request_headers(&call);
        if let Some(sequence) = call.go_micro {
            headers.insert(names::STREAM, HeaderValue::from(sequence));
        }
        Box::pin(async move {
            let body = self.open_stream(call.address, headers, requests, open_by).await?;
            Ok(FrameReader::new(body, self.response_limit, Side::Client))
        })
    }
}

/// A call's HTTP headers: its metadata, content type, endpoint and timeout;
/// for a Go Micro node also its number (`Micro-Id`) and the service's name.
pub(crate) fn request_headers(call: &Outbound<'_>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(8 + call.metadata.len());
    for (name, value) in call.metadata() {
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(value)) => {
                map.insert(name, value);
            }
            _ => debug!(name, "metadata that is not a valid header is not sent"),
        }
    }
    // Go Micro's client also sends `Accept`, which nothing reads.
    map.insert(header::CONTENT_TYPE, call.codec.header_value());
    if let Some(sequence) = call.go_micro {
        map.insert(names::ID, HeaderValue::from(sequence));
        if let Ok(value) = HeaderValue::try_from(call.service) {
            map.insert(names::SERVICE, value);
        }
    }
    if let Ok(value) = HeaderValue::try_from(call.endpoint) {
        map.insert(names::ENDPOINT, value);
    }
    if let Some(timeout) = call.timeout {
        map.insert(
            names::TIMEOUT,
            HeaderValue::from(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)),
        );
    }
    map
}

/// A request that a reused connection gave back unsent, because the peer had
/// closed it, goes out on a new connection, which replaces `connection`.
async fn resend(
    pool: &Pool,
    address: &str,
    reused: bool,
    connection: &mut Connection,
    mut e: TrySendError<http::Request<Full<Bytes>>>,
) -> Result<http::Response<Incoming>, Failure> {
    let unsent = e.message().is_some();
    let Some(request) = e.take_message().filter(|_| reused) else {
        return Err(send_failure(address, e.error(), unsent));
    };
    *connection = pool.connect(address).await?;
    connection.sender.try_send_request(request).await.map_err(|mut e| {
        let unsent = e.take_message().is_some();
        send_failure(address, e.error(), unsent)
    })
}

/// `POST http://<address>/` with `headers` and `body`.
fn post<B>(address: &str, headers: HeaderMap, body: B) -> Result<http::Request<B>, Failure> {
    let mut request = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{address}/"))
        .body(body)
        .map_err(|e| {
            Failure::new(
                Error::bad_request(CLIENT_ID, format!("cannot call address {address:?}: {e}")),
                Delivery::NotSent,
            )
        })?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// A failure to send on a connection: a request that came back `unsent` never left.
fn send_failure(address: &str, e: &hyper::Error, unsent: bool) -> Failure {
    let delivery = if unsent { Delivery::NotSent } else { Delivery::Unknown };
    Failure::new(
        Error::internal_server_error(CLIENT_ID, format!("transport error calling {address}: {}", chain(e))),
        delivery,
    )
}

/// A failure of the HTTP client: a connect error never reached the server.
fn transport_failure(address: &str, e: &hyper_util::client::legacy::Error) -> Failure {
    let delivery = if e.is_connect() {
        Delivery::NotSent
    } else {
        Delivery::Unknown
    };
    let what = if e.is_connect() {
        "connection error"
    } else {
        "transport error"
    };
    Failure::new(
        Error::internal_server_error(CLIENT_ID, format!("{what} calling {address}: {}", chain(e))),
        delivery,
    )
}

fn has_error(headers: &HeaderMap) -> bool {
    headers.contains_key(&names::ERROR[0]) || headers.contains_key(&names::ERROR[1])
}

async fn read_response(response: http::Response<Incoming>, limit: usize) -> Result<Answer, Failure> {
    let (parts, body) = read_body(response, limit).await?;
    answer(&parts, body)
}

/// The head of a response and its whole body, at most `limit` bytes.
async fn read_body(response: http::Response<Incoming>, limit: usize) -> Result<(Parts, Bytes), Failure> {
    let (parts, body) = response.into_parts();
    match crate::body::read(body, limit).await {
        Ok(body) => Ok((parts, body)),
        Err(BodyError::TooLarge) => Err(Failure::new(
            Error::internal_server_error(
                CLIENT_ID,
                format!("response body is larger than the client's limit of {limit} bytes"),
            ),
            Delivery::Answered,
        )),
        Err(BodyError::Read(e)) => Err(Failure::new(
            Error::internal_server_error(CLIENT_ID, format!("cannot read response body: {}", chain(e.as_ref()))),
            Delivery::Unknown,
        )),
    }
}

/// What a response says: its body and codec, the error in `Micro-Error`,
/// or the error of a status other than 200.
fn answer(parts: &Parts, body: Bytes) -> Result<Answer, Failure> {
    let micro_error = parts
        .headers
        .get(&names::ERROR[0])
        .or_else(|| parts.headers.get(&names::ERROR[1]))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    if let Some(error) = micro_error {
        return Err(Failure::new(Error::parse(error), Delivery::Answered));
    }
    if parts.status != StatusCode::OK {
        return Err(Failure::new(status_error(parts.status, &body), Delivery::Answered));
    }
    let codec = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| Codec::from_content_type(ct).ok());
    Ok(Answer { codec, body })
}

/// A non-200 answer: a Go Micro error JSON body, or the status and body text.
fn status_error(status: StatusCode, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body);
    let parsed = Error::parse(text.trim());
    if parsed.code != 0 {
        return parsed;
    }
    let code = i32::from(status.as_u16());
    Error::new(
        CLIENT_ID,
        format!("{status}: {}", text.trim()),
        if code >= 400 { code } else { 500 },
    )
}

/// An error with its sources, `outer: inner: root`.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_forwarded_metadata_and_timeout() {
        let ctx = crate::Context::new()
            .with_metadata("X-User", "alice")
            .with_metadata("Micro-Id", "99");
        let mut own = crate::Metadata::new();
        own.insert("X-Trace", "t1");
        let call = Outbound {
            address: "127.0.0.1:1",
            service: "greeter",
            endpoint: "Greeter.Hello",
            codec: Codec::Json,
            go_micro: Some(7),
            timeout: Some(Duration::from_secs(1)),
            deadline: Instant::now(),
            context: Some(&ctx),
            metadata: &own,
        };
        let map = request_headers(&call);
        assert_eq!(map["x-user"], "alice");
        assert_eq!(map["x-trace"], "t1");
        assert_eq!(map["micro-id"], "7", "the hop's own number, not the context's");
        assert_eq!(map["micro-service"], "greeter");
        assert_eq!(map["micro-endpoint"], "Greeter.Hello");
        assert_eq!(map["timeout"], "1000000000");
        let micro = request_headers(&Outbound { go_micro: None, ..call });
        assert!(!micro.contains_key("micro-id") && !micro.contains_key("micro-service"));
    }

    #[test]
    fn status_errors_keep_go_micro_json() {
        let err = status_error(
            StatusCode::NOT_FOUND,
            br#"{"id":"s","code":404,"detail":"d","status":"Not Found"}"#,
        );
        assert_eq!((err.code, err.detail.as_str()), (404, "d"));
        let plain = status_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(plain.code, 502);
        assert!(plain.detail.contains("upstream down"));
    }
}
