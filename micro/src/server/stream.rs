//! Serving a streaming endpoint: the request body is read frame by frame as
//! the handler asks, its messages go out as it sends them, and its outcome
//! becomes the trailers. When the caller goes away the handler is dropped.

use std::sync::Arc;

use http::Version;
use http_body::Frame;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::handler::{EndpointDescriptor, Handler, Request, StreamParts};
use super::transport::{Shared, run};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{Error, SERVER_ID};
use crate::stream::BUFFER;
use crate::stream::frame::{self, ChannelBody, FrameReader, Side};

/// Starts the handler of a stream; the returned body carries its frames.
pub(super) fn open(
    shared: &Shared,
    handler: Arc<dyn Handler>,
    descriptor: &'static EndpointDescriptor,
    context: Context,
    codec: Codec,
    (version, body): (Version, Incoming),
    deadline: Option<Instant>,
) -> Result<ChannelBody, Error> {
    let endpoint = descriptor.name();
    if version != Version::HTTP_2 {
        return Err(Error::bad_request(
            SERVER_ID,
            format!("{endpoint} streams: call it over HTTP/2 (h2c, e.g. curl --http2-prior-knowledge)"),
        ));
    }
    if codec == Codec::JsonRpc {
        return Err(Error::unsupported_media_type(
            SERVER_ID,
            format!("{endpoint} streams, and application/json-rpc cannot: use application/json or application/msgpack"),
        ));
    }
    let (sender, rx) = mpsc::channel(BUFFER);
    let reader = FrameReader::new(body, shared.body_limit, Side::Server);
    let parts = StreamParts {
        reader,
        sender: sender.clone(),
    };
    let request = Request::streaming(descriptor.method(), context.clone(), codec, parts);
    tokio::spawn(async move {
        let outcome = tokio::select! {
            outcome = run(handler, request, endpoint, context, deadline) => outcome.map(drop),
            () = sender.closed() => {
                debug!(endpoint, "the caller left the stream; its handler is dropped");
                return;
            }
        };
        if let Err(error) = &outcome {
            debug!(endpoint, code = error.code, detail = %error.detail, "stream failed");
        }
        // The caller may be gone by now; nothing is left to tell it then.
        let _ = sender.send(Frame::trailers(frame::trailers(&outcome))).await;
    });
    Ok(ChannelBody::new(rx))
}
