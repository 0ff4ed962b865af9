//! Transports: how a call travels between nodes, both sides.
//!
//! - [`http`]: Go Micro's HTTP transport (HTTP/1.1 and h2c), spoken with Go
//!   Micro, curl and every other caller, and the HTTP/2 streams; the
//!   listener that serves it (and hands mux connections on), its limits and
//!   idle timeout, and the client's connection pool.
//! - [`mux`]: micro's framed multiplexed transport between micro nodes.
//!
//! The client side is one seam, [`Transport`]: a round trip and a stream
//! open, each ending in an [`Answer`] or a [`Failure`] that says how far the
//! request got ([`Delivery`]), which is what the client's retries go by. The
//! server side is the other, [`Dispatch`]: what a transport's server hands
//! its decoded calls to (the server's dispatch core), so that no transport
//! knows handlers, routing or contexts, and every transport serves calls the
//! same way.

pub(crate) mod http;
mod limits;
pub(crate) mod mux;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::BoxFuture;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{Error, SERVER_ID};
use crate::metadata::{LazyMetadata, Metadata};
use crate::stream::frame::{ChannelBody, FrameReader};

pub use self::limits::ServerOptions;

/// A unary call as a transport's server decoded it.
#[derive(Debug)]
pub(crate) struct Call {
    /// The service it names (shared with the server's other calls), or the
    /// server's own when it names none.
    pub(crate) service: Option<Arc<str>>,
    pub(crate) codec: Codec,
    pub(crate) metadata: LazyMetadata,
    pub(crate) deadline: Option<Instant>,
    /// The encoded request; empty for a stream.
    pub(crate) body: Bytes,
}

/// What a transport's server hands its calls to. Generic rather than
/// `dyn`: each transport's server is compiled for the dispatcher it serves.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// An endpoint found for a call, carried from routing to running.
    type Route: Send + 'static;

    /// The largest request body accepted.
    fn body_limit(&self) -> usize;

    /// The name calls addressed to `named` see: shared with the server's
    /// other calls when it is the server's own; the server's own when a call
    /// names none.
    fn service(&self, named: Option<&str>) -> Option<Arc<str>>;

    /// Finds `endpoint` (`Service.Method`); a 404 error when nothing serves it.
    fn route(&self, endpoint: &str) -> Result<Self::Route, Error>;

    /// The routed endpoint's full name.
    fn endpoint(route: &Self::Route) -> &'static str;

    /// Whether the routed endpoint streams.
    fn streams(route: &Self::Route) -> bool;

    /// Runs a unary call: the encoded response, or the error.
    fn unary(&self, route: Self::Route, call: Call) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static;

    /// Starts a streaming call reading its requests from `requests`; the
    /// returned body carries its responses, then its outcome as trailers.
    fn open_stream(&self, route: Self::Route, call: Call, requests: FrameReader) -> Result<ChannelBody, Error>;

    /// The page served at `path` to an HTTP `GET` (metrics, health probes),
    /// if there is one.
    fn page(&self, path: &str) -> Option<BoxFuture<'static, Page>>;
}

/// A plain HTTP answer to a `GET` on the service's port.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: ::http::StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
}

/// A response body and its codec.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The codec its content type names, if it names one micro knows.
    pub(crate) codec: Option<Codec>,
    pub(crate) body: Bytes,
}

/// How far a failed attempt got.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The request never reached a server (no connection was made).
    NotSent,
    /// The request may have reached the server, which did not answer.
    Unknown,
    /// The server answered with an error.
    Answered,
}

/// A failed attempt: the error and how far the request got.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) delivery: Delivery,
    /// Whether a client layer failed the attempt before it reached the
    /// transport (`delivery` is then `NotSent`): the node was not tried, so
    /// nothing is known of it.
    pub(crate) refused: bool,
}

impl Failure {
    pub(crate) fn new(error: Error, delivery: Delivery) -> Self {
        Failure {
            error,
            delivery,
            refused: false,
        }
    }
}

/// The error for a request body over the server's `limit`, on any transport.
pub(crate) fn body_too_large(limit: usize) -> Error {
    Error::payload_too_large(
        SERVER_ID,
        format!("request body is larger than the server's limit of {limit} bytes"),
    )
}

/// One attempt's request, as the client made it for a node: what a
/// transport needs to put it on its wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outbound<'a> {
    /// The node's `host:port`.
    pub(crate) address: &'a str,
    pub(crate) service: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) codec: Codec,
    /// Go Micro's call number, for a Go Micro node, which tells the calls on
    /// a connection apart by it and is sent the service's name; a micro
    /// node (`None`) needs neither.
    pub(crate) go_micro: Option<u64>,
    /// The time left, sent as the call's timeout.
    pub(crate) timeout: Option<Duration>,
    /// When the attempt gives up.
    pub(crate) deadline: Instant,
    /// The context whose metadata the call forwards.
    pub(crate) context: Option<&'a Context>,
    /// The call's own metadata, sent after the context's.
    pub(crate) metadata: &'a Metadata,
}

impl<'a> Outbound<'a> {
    /// The metadata the call carries; see [`call_metadata`].
    pub(crate) fn metadata(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        call_metadata(self.context, self.metadata)
    }
}

/// The metadata a call carries, on any transport or in place: what the
/// context forwards, then the call's own (which wins a key both have).
pub(crate) fn call_metadata<'a>(
    context: Option<&'a Context>,
    own: &'a Metadata,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let forwarded = context.into_iter().flat_map(Context::forwarded_metadata);
    forwarded.chain(own.iter())
}

/// The client side of a transport: a unary call's round trip to a node, and
/// the opening of a stream. Dyn-compatible: the client picks one per node,
/// from what the registry says the node serves.
pub(crate) trait Transport: Send + Sync {
    /// Sends a unary call's encoded `body` and reads the answer, giving up
    /// at the call's deadline.
    fn round_trip<'a>(&'a self, call: Outbound<'a>, body: Bytes) -> BoxFuture<'a, Result<Answer, Failure>>;

    /// Opens a stream: sends the call, whose request frames follow on
    /// `requests`, and gives the reader of the response frames once the
    /// server has accepted the stream (by `open_by`).
    fn open_stream<'a>(
        &'a self,
        call: Outbound<'a>,
        requests: ChannelBody,
        open_by: Instant,
    ) -> BoxFuture<'a, Result<FrameReader, Failure>>;
}
