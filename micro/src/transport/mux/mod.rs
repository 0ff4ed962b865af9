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

mod budget;
pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod server;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

/// What a mux client sends first.
pub(crate) const PREFACE: [u8; 8] = *b"\0MICROM1";

/// After this many answers, each side lets the other work on them before
/// going on: the server writes them, the client runs their callers.
const PIPELINE: usize = 16;

/// The most frames written with one system call.
const BATCH: usize = 128;

pub(crate) use self::budget::{Budget, Closed, Room};

/// The bytes of frames a connection may have queued for its writer and not
/// yet written. Every frame takes its size from this budget (a frame larger
/// than the whole budget takes all of it) and gives it back once written,
/// so a peer that sends calls and never reads their answers stops being
/// read once this much is waiting, instead of growing the queue.
pub(crate) const OUTBOUND_BUDGET: usize = 1024 * 1024;

/// The sending side of a connection's outbound queue: frames wait for room
/// in the budget, then queue for the writer. Clones share queue and budget.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<Queued>,
    budget: Budget,
}

/// A frame waiting to be written, and the room it took in the budget.
#[derive(Debug)]
pub(crate) struct Queued {
    frame: Bytes,
    room: Room,
}

/// The writer's end of an [`Outbox`]: it gives frames' room back once they
/// are written; once it is dropped, senders waiting for room fail instead of
/// waiting for ever.
#[derive(Debug)]
pub(crate) struct Inbox {
    frames: mpsc::UnboundedReceiver<Queued>,
    budget: Budget,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.budget.close();
    }
}

impl Outbox {
    /// An outbox of `budget` bytes, and the queue its writer reads.
    pub(crate) fn new(budget: usize) -> (Outbox, Inbox) {
        let (queue, frames) = mpsc::unbounded_channel();
        let budget = Budget::new(budget);
        let inbox = Inbox {
            frames,
            budget: budget.clone(),
        };
        (Outbox { queue, budget }, inbox)
    }

    /// The budget frames take room from.
    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Queues `frame` once the budget has room for it.
    pub(crate) async fn send(&self, frame: Bytes) -> Result<(), Closed> {
        let room = self.budget.reserve(frame.len()).await?;
        self.push(frame, room)
    }

    /// Queues `frame` in the room taken for it.
    pub(crate) fn push(&self, frame: Bytes, room: Room) -> Result<(), Closed> {
        self.queue.send(Queued { frame, room }).map_err(|_| Closed)
    }

    /// Queues `frame` outside the budget: for the few small frames a
    /// connection sends once (the preface, GOAWAY).
    pub(crate) fn send_unbudgeted(&self, frame: Bytes) -> Result<(), Closed> {
        self.queue
            .send(Queued {
                frame,
                room: Room::NONE,
            })
            .map_err(|_| Closed)
    }
}

/// Writes the frames queued on `frames` to `sink`, every frame queued at the
/// time in one write, until every sender is gone, the peer stops reading, or
/// a write makes no progress for `stall` (a peer that reads nothing).
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(mut inbox: Inbox, mut sink: W, stall: Duration) {
    let Inbox { frames, budget } = &mut inbox;
    let mut batch = BytesMut::new();
    while let Some(first) = frames.recv().await {
        let mut taken = first.room;
        let result = match frames.try_recv() {
            // Alone in the queue: write it as it is.
            Err(_) => write_within(&mut sink, &first.frame, stall).await,
            Ok(second) => {
                batch.clear();
                batch.extend_from_slice(&first.frame);
                batch.extend_from_slice(&second.frame);
                taken = taken.and(second.room);
                for _ in 2..BATCH {
                    match frames.try_recv() {
                        Ok(next) => {
                            batch.extend_from_slice(&next.frame);
                            taken = taken.and(next.room);
                        }
                        Err(_) => break,
                    }
                }
                write_within(&mut sink, &batch, stall).await
            }
        };
        // Written: their room goes back to the budget.
        budget.release(taken);
        let result = match result {
            Ok(()) if frames.is_empty() => sink.flush().await,
            other => other,
        };
        if let Err(e) = result {
            debug!(error = %e, "mux connection stopped taking frames");
            return;
        }
    }
    let _ = sink.shutdown().await;
}

/// Writes `bytes`, failing if the peer takes none of them for `stall`. The
/// timer is armed only for a write that does not finish on its first poll.
async fn write_within<W: AsyncWrite + Unpin>(sink: &mut W, mut bytes: &[u8], stall: Duration) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let mut write = std::pin::pin!(sink.write(bytes));
        let wrote = match write.as_mut().now_or_never() {
            Some(wrote) => wrote?,
            None => tokio::time::timeout(stall, write).await.map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the peer read nothing for {stall:?}"),
                )
            })??,
        };
        if wrote == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[wrote..];
    }
    Ok(())
}
