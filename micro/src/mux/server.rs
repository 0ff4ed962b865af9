//! Serving one mux connection: read calls, run each on its own task, write
//! the answers as they finish, and on shutdown say `GOAWAY` and drain.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::frame::{
    CALL, CallHead, ERROR, FrameDecoder, FrameReader, FrameWriter, GOAWAY, HEADER_ALLOWANCE, Inbound, REPLY,
};
use super::{PREFACE, write_frames};
use crate::codec::Codec;
use crate::error::{Error, SERVER_ID};
use crate::headers;
use crate::metadata::Metadata;
use crate::server::{Peer, Shared, Unary, dispatch};

/// Limits of a mux connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// How long the client may take to send the preface.
    pub(crate) preface_timeout: Duration,
    /// Calls of one connection running at once; reading waits beyond.
    pub(crate) in_flight: usize,
}

/// Serves a connection whose first byte said mux, until the client closes
/// it, it breaks, or `stop` fires; then finishes the calls it read.
pub(crate) async fn serve(
    mut stream: TcpStream,
    peer: Peer,
    shared: Arc<Shared>,
    limits: Limits,
    stop: CancellationToken,
) {
    let mut preface = [0u8; PREFACE.len()];
    match tokio::time::timeout(limits.preface_timeout, stream.read_exact(&mut preface)).await {
        Ok(Ok(_)) if preface == PREFACE => {}
        _ => {
            debug!(remote = %peer.remote, "connection opened with a zero byte but no mux preface; closed");
            return;
        }
    }
    let (reader, writer) = stream.into_split();
    let (out, frames) = mpsc::unbounded_channel();
    let writing = tokio::spawn(write_frames(frames, writer));
    let mut calls = FramedRead::new(reader, FrameDecoder::new(shared.body_limit + HEADER_ALLOWANCE));
    let slots = Arc::new(Semaphore::new(limits.in_flight));
    let addresses = Addresses {
        local: peer.local.to_string(),
        remote: peer.remote.to_string(),
    };
    let mut last = 0;
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let next = tokio::select! {
            () = stop.cancelled() => break,
            next = calls.next() => next,
        };
        let (id, kind, payload) = match next {
            Some(Ok(Inbound::Frame { id, kind, payload })) => (id, kind, payload),
            Some(Ok(Inbound::TooLarge { id, len, .. })) => {
                last = id;
                let limit = shared.body_limit;
                let error = Error::payload_too_large(
                    SERVER_ID,
                    format!("request body is larger than the server's limit of {limit} bytes ({len} byte frame)"),
                );
                let _ = out.send(error_frame(id, &error));
                continue;
            }
            Some(Err(e)) => {
                debug!(remote = %peer.remote, error = %e, "mux connection sent a malformed frame; closing it");
                break;
            }
            None => break,
        };
        last = id;
        if kind != CALL {
            let error = Error::bad_request(SERVER_ID, format!("mux frame kind {kind} is not a call"));
            let _ = out.send(error_frame(id, &error));
            continue;
        }
        let shared = Arc::clone(&shared);
        let out = out.clone();
        let addresses = addresses.clone();
        tokio::spawn(async move {
            let frame = answer(&shared, &addresses, id, payload).await;
            let _ = out.send(frame);
            drop(slot);
        });
    }
    if stop.is_cancelled() {
        let _ = out.send(FrameWriter::new(last, GOAWAY, 0).finish());
    }
    // Every running call holds a slot: having them all means all answered.
    let all = u32::try_from(limits.in_flight).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    drop(out);
    let _ = writing.await;
}

/// The connection's two addresses, as metadata values.
#[derive(Clone)]
struct Addresses {
    local: String,
    remote: String,
}

/// Runs one call and encodes its answer.
async fn answer(shared: &Shared, addresses: &Addresses, id: u32, payload: Bytes) -> Bytes {
    let mut reader = FrameReader::new(payload);
    let head = match CallHead::read(&mut reader) {
        Ok(head) => head,
        Err(e) => return error_frame(id, &Error::bad_request(SERVER_ID, e.to_string())),
    };
    let codec = match Codec::from_content_type(head.content_type.as_str()) {
        Ok(Codec::JsonRpc) => {
            let error = Error::bad_request(SERVER_ID, "JSON-RPC is served over HTTP only");
            return error_frame(id, &error);
        }
        Ok(codec) => codec,
        Err(e) => return error_frame(id, &e.into_error(SERVER_ID)),
    };
    let mut metadata = Metadata::new();
    for (key, value) in &head.metadata {
        metadata.insert(key.as_str(), value.as_str());
    }
    // What a handler sees matches the HTTP transport's headers.
    metadata.insert(http::header::CONTENT_TYPE.as_str(), head.content_type.as_str());
    if !head.service.as_str().is_empty() {
        metadata.insert(headers::SERVICE, head.service.as_str());
    }
    metadata.insert(headers::ENDPOINT, head.endpoint.as_str());
    metadata.insert(headers::LOCAL, addresses.local.clone());
    metadata.insert(headers::REMOTE, addresses.remote.clone());
    let service = Some(head.service.as_str()).filter(|s| !s.is_empty()).map(Arc::from);
    let call = Unary {
        endpoint: Arc::from(head.endpoint.as_str()),
        service,
        codec,
        metadata,
        deadline: head.timeout.and_then(|t| Instant::now().checked_add(t)),
        body: reader.rest(),
    };
    match dispatch(shared, call).await {
        Ok(body) => {
            let content_type = codec.content_type();
            let mut frame = FrameWriter::new(id, REPLY, 2 + content_type.len() + body.len());
            frame.str(content_type);
            frame.bytes(&body);
            frame.finish()
        }
        Err(error) => error_frame(id, &error),
    }
}

fn error_frame(id: u32, error: &Error) -> Bytes {
    let json = error.to_json();
    let mut frame = FrameWriter::new(id, ERROR, json.len());
    frame.bytes(json.as_bytes());
    frame.finish()
}
