//! Serving one mux connection: read calls, run each on its own task, write
//! the answers as they finish, and on shutdown say `GOAWAY` and drain.

use std::sync::Arc;
use std::time::Duration;

use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::frame::{
    CALL, CallHead, ERROR, FieldReader, FrameDecoder, FrameWriter, GOAWAY, HEADER_ALLOWANCE, Inbound, REPLY,
};
use super::{OUTBOUND_BUDGET, Outbox, PREFACE, write_frames};
use crate::codec::Codec;
use crate::error::{Error, SERVER_ID};
use crate::headers;
use crate::metadata::Metadata;
use crate::net::Peer;
use crate::transport::{Call, Dispatch, body_too_large};

/// Limits of a mux connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// How long the client may take to send the preface.
    pub(crate) preface_timeout: Duration,
    /// Calls of one connection running at once; reading waits beyond.
    pub(crate) in_flight: usize,
    /// How long a connection may go without a call, and a peer may take
    /// none of the bytes written to it, before it is closed.
    pub(crate) idle_timeout: Duration,
}

/// Serves a connection whose first byte said mux, until the client closes
/// it, it breaks, or `stop` fires; then finishes the calls it read.
pub(crate) async fn serve<D: Dispatch>(
    mut stream: TcpStream,
    peer: Arc<Peer>,
    shared: Arc<D>,
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
    let (out, frames) = Outbox::new(OUTBOUND_BUDGET);
    let writing = tokio::spawn(write_frames(frames, writer, limits.idle_timeout));
    let mut calls = FramedRead::new(reader, FrameDecoder::new(shared.body_limit() + HEADER_ALLOWANCE));
    let mut connection = Connection {
        slots: Arc::new(Semaphore::new(limits.in_flight)),
        peer: Arc::clone(&peer),
        shared,
        out,
        batch: BytesMut::new(),
        answered: 0,
        last: 0,
        read: 0,
    };
    // One timer: each time it fires, the connection is idle if it read no
    // call since the last time and none is running; otherwise it is set again.
    let mut idle = Box::pin(tokio::time::sleep(limits.idle_timeout));
    let mut read_then = 0;
    // Made once: a new one per wait would register with the token each time.
    let mut stopped = std::pin::pin!(stop.cancelled());
    'reading: loop {
        let mut next = tokio::select! {
            // In this order, none picked at random: a call read is served
            // before anything else is looked at (a connection always busy
            // sees the stop signal below, between batches).
            biased;
            next = calls.next() => Some(next),
            () = &mut stopped => break,
            () = &mut idle => {
                let running = connection.slots.available_permits() < limits.in_flight;
                if connection.read == read_then && !running {
                    debug!(remote = %peer.remote, "mux connection idle; closed");
                    break;
                }
                read_then = connection.read;
                idle.as_mut().reset(Instant::now() + limits.idle_timeout);
                continue;
            }
        };
        // Take every frame already read; answers that are ready at once go
        // out together.
        while let Some(frame) = next {
            let keep_reading = match frame {
                Some(Ok(inbound)) => connection.take(inbound).await,
                Some(Err(e)) => {
                    debug!(remote = %peer.remote, error = %e, "mux connection sent a malformed frame; closing it");
                    false
                }
                None => false,
            };
            if !keep_reading {
                connection.flush().await;
                break 'reading;
            }
            if connection.answered >= super::PIPELINE || connection.batch.len() >= FLUSH_AT {
                connection.flush().await;
                // Let the writer send these while the rest are worked on, so
                // the client starts on them meanwhile.
                tokio::task::yield_now().await;
            }
            next = calls.next().now_or_never();
        }
        connection.flush().await;
        if stop.is_cancelled() {
            break;
        }
    }
    // Shutting down or idle: the calls after the last one read were not
    // taken, and the client may send them elsewhere.
    let _ = connection
        .out
        .send_unbudgeted(FrameWriter::new(connection.last, GOAWAY, 0).finish());
    // Every running call holds a slot: having them all means all answered.
    let all = u32::try_from(limits.in_flight).unwrap_or(u32::MAX);
    let _ = connection.slots.acquire_many(all).await;
    drop(connection);
    let _ = writing.await;
}

/// Answers waiting to be written are handed to the writer beyond this size.
const FLUSH_AT: usize = 64 * 1024;

/// The state of one connection's reading side.
struct Connection<D> {
    shared: Arc<D>,
    peer: Arc<Peer>,
    /// Calls running on their own task, each holding a slot.
    slots: Arc<Semaphore>,
    /// Answers to write; every one waits for room in the outbound budget.
    out: Outbox,
    /// Answers not yet handed to the writer.
    batch: BytesMut,
    /// How many answers `batch` holds.
    answered: usize,
    /// The id of the last call read.
    last: u32,
    /// How many frames were read.
    read: u64,
}

impl<D: Dispatch> Connection<D> {
    /// Handles one frame; a call that finishes on its first poll is answered
    /// in place, one that waits runs on a task of its own.
    async fn take(&mut self, inbound: Inbound) -> bool {
        self.read += 1;
        let (id, kind, payload) = match inbound {
            Inbound::Frame { id, kind, payload } => (id, kind, payload),
            Inbound::TooLarge { id, .. } => {
                self.last = id;
                let error = body_too_large(self.shared.body_limit());
                self.push(&error_frame(id, &error));
                return true;
            }
        };
        self.last = id;
        if kind != CALL {
            let error = Error::bad_request(SERVER_ID, format!("mux frame kind {kind} is not a call"));
            self.push(&error_frame(id, &error));
            return true;
        }
        // Beyond the limit of running calls, reading waits.
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return false;
        };
        let mut call = Box::pin(answer(Arc::clone(&self.shared), Arc::clone(&self.peer), id, payload));
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        if let Poll::Ready(frame) = first {
            self.push(&frame);
            return true;
        }
        let out = self.out.clone();
        tokio::spawn(async move {
            let frame = call.await;
            // The slot is kept until the answer has room: calls waiting to
            // be written count against the limit of calls running.
            let _ = out.send(frame).await;
            drop(slot);
        });
        true
    }

    fn push(&mut self, frame: &[u8]) {
        self.batch.extend_from_slice(frame);
        self.answered += 1;
    }

    /// Hands the waiting answers to the writer once the budget has room for
    /// them: while it has none, the connection is not read.
    async fn flush(&mut self) {
        if !self.batch.is_empty() {
            let _ = self.out.send(self.batch.split().freeze()).await;
        }
        self.answered = 0;
    }
}

/// Runs one call and encodes its answer.
async fn answer<D: Dispatch>(shared: Arc<D>, peer: Arc<Peer>, id: u32, payload: Bytes) -> Bytes {
    let mut reader = FieldReader::new(payload);
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
    metadata.insert(headers::LOCAL, peer.local.as_str());
    metadata.insert(headers::REMOTE, peer.remote.as_str());
    let body = reader.rest();
    if body.len() > shared.body_limit() {
        return error_frame(id, &body_too_large(shared.body_limit()));
    }
    // A call that names no service is addressed to the server's own.
    let service = shared.service(Some(head.service.as_str()).filter(|s| !s.is_empty()));
    let call = Call {
        service,
        codec,
        metadata: metadata.into(),
        deadline: head.timeout.and_then(|t| Instant::now().checked_add(t)),
        body,
    };
    let answered = match shared.route(head.endpoint.as_str()) {
        Ok(route) => shared.unary(route, call).await,
        Err(error) => Err(error),
    };
    match answered {
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
