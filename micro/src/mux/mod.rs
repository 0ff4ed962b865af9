//! mux: micro's multiplexed framed transport between micro nodes.
//!
//! A micro server answers HTTP/1.1, h2c and mux on one port: a connection
//! whose first byte is zero (no HTTP request starts so) and that opens with
//! the preface `\0MICROM1` speaks mux. Nodes say so in the registry (node
//! metadata `mux=1`), and micro clients then send unary calls over one
//! connection per node: many calls in flight at once, each a frame tagged
//! with its id, and every frame waiting in the queue written with one system
//! call. Calls that finish on their first poll are answered in place, without
//! a task of their own.
//! Go Micro and curl never see it; they keep speaking HTTP to the same port.
//!
//! A call carries what the HTTP transport carries (endpoint, codec, deadline,
//! metadata) and gets the same Go Micro errors. When a server shuts down it
//! sends `GOAWAY` with the last call it read: it answers those, and the
//! client retries the later ones elsewhere, knowing they never arrived.

pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod server;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

/// What a mux client sends first.
pub(crate) const PREFACE: [u8; 8] = *b"\0MICROM1";

/// The node metadata key of nodes that serve mux, and its value.
pub(crate) const NODE_KEY: (&str, &str) = ("mux", "1");

/// After this many answers, each side lets the other work on them before
/// going on: the server writes them, the client runs their callers.
const PIPELINE: usize = 16;

/// The most frames written with one system call.
const BATCH: usize = 128;

/// Writes the frames sent on `frames` to `sink`, every frame queued at the
/// time in one write, until every sender is gone or the peer stops reading.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(mut frames: mpsc::UnboundedReceiver<Bytes>, mut sink: W) {
    let mut batch = BytesMut::new();
    while let Some(first) = frames.recv().await {
        let mut written = match frames.try_recv() {
            // Alone in the queue: write it as it is.
            Err(_) => sink.write_all(&first).await,
            Ok(second) => {
                batch.clear();
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                for _ in 2..BATCH {
                    match frames.try_recv() {
                        Ok(next) => batch.extend_from_slice(&next),
                        Err(_) => break,
                    }
                }
                sink.write_all(&batch).await
            }
        };
        if written.is_ok() && frames.is_empty() {
            written = sink.flush().await;
        }
        if let Err(e) = written {
            debug!(error = %e, "mux connection stopped taking frames");
            return;
        }
    }
    let _ = sink.shutdown().await;
}
