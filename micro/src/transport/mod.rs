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

use bytes::Bytes;
use tokio::time::Instant;

use crate::codec::Codec;
use crate::error::{Error, SERVER_ID};
use crate::metadata::LazyMetadata;
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
}

impl Failure {
    pub(crate) fn new(error: Error, delivery: Delivery) -> Self {
        Failure { error, delivery }
    }
}

/// The error for a request body over the server's `limit`, on any transport.
pub(crate) fn body_too_large(limit: usize) -> Error {
    Error::payload_too_large(
        SERVER_ID,
        format!("request body is larger than the server's limit of {limit} bytes"),
    )
}
