//! The client side of mux: one connection per node, shared by every call to
//! it; each call waits for the answer frame carrying its id.

use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::debug;

use super::frame::{ERROR, FieldReader, FrameDecoder, FrameWriter, GOAWAY, Inbound, REPLY};
use super::{Budget, OUTBOUND_BUDGET, Outbox, PREFACE, write_frames};
use crate::BoxFuture;
use crate::codec::Codec;
use crate::error::{CLIENT_ID, Error};
use crate::stream::frame::{ChannelBody, FrameReader as StreamFrames};
use crate::transport::{Answer, Delivery, Failure, Outbound, Transport};

/// Settings of the mux connections.
#[derive(Clone, Debug)]
pub(crate) struct MuxOptions {
    pub(crate) connect_timeout: Duration,
    /// A connection with no call for this long is closed.
    pub(crate) idle_timeout: Duration,
    pub(crate) response_limit: usize,
}

/// Mux connections by node address.
#[derive(Debug)]
pub(crate) struct MuxClient {
    options: MuxOptions,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// The connection to one address, and a lock so one caller connects.
#[derive(Debug, Default)]
struct Slot {
    live: Mutex<Option<Connection>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn live(&self) -> Option<Connection> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.as_ref().filter(|c| c.is_open()).cloned()
    }
}

impl MuxClient {
    pub(crate) fn new(options: MuxOptions) -> Self {
        MuxClient {
            options,
            slots: Mutex::default(),
        }
    }

    /// Sends the call frame to `address` and waits for its answer until `deadline`.
    pub(crate) async fn round_trip(
        &self,
        address: &str,
        call: FrameWriter,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let connection = tokio::time::timeout_at(deadline, self.connection(address))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::new(
                    Error::timeout(
                        CLIENT_ID,
                        format!("call timeout: no connection to {address} within the deadline"),
                    ),
                    Delivery::NotSent,
                ))
            })?;
        connection.call(address, call, deadline).await
    }

    async fn connection(&self, address: &str) -> Result<Connection, Failure> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(address) {
                Some(slot) => Arc::clone(slot),
                None => Arc::clone(slots.entry(address.to_owned()).or_default()),
            }
        };
        if let Some(connection) = slot.live() {
            return Ok(connection);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(connection) = slot.live() {
            return Ok(connection);
        }
        let connection = Connection::open(address, &self.options).await?;
        *slot.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }
}

impl Transport for MuxClient {
    fn round_trip<'a>(&'a self, call: Outbound<'a>, body: Bytes) -> BoxFuture<'a, Result<Answer, Failure>> {
        let timeout = call.deadline.saturating_duration_since(Instant::now());
        let frame = call_frame(
            call.service,
            call.endpoint,
            call.codec.content_type(),
            Some(timeout),
            call.metadata(),
            &body,
        );
        Box::pin(async move {
            let frame = frame.map_err(|error| Failure::new(error, Delivery::NotSent))?;
            self.round_trip(call.address, frame, call.deadline).await
        })
    }

    fn open_stream<'a>(
        &'a self,
        call: Outbound<'a>,
        _requests: ChannelBody,
        _open_by: Instant,
    ) -> BoxFuture<'a, Result<StreamFrames, Failure>> {
        let error = Error::internal_server_error(
            CLIENT_ID,
            format!(
                "{}: mux carries unary calls only; streams go over HTTP/2",
                call.endpoint
            ),
        );
        Box::pin(std::future::ready(Err(Failure::new(error, Delivery::NotSent))))
    }
}

/// One connection; clones share it.
#[derive(Clone, Debug)]
struct Connection {
    state: Arc<Mutex<State>>,
    /// The room left for frames waiting to be written.
    budget: Budget,
}

/// What the callers and the reading task share.
#[derive(Debug)]
struct State {
    /// Where frames go; `None` once the connection takes no more calls.
    out: Option<Outbox>,
    next_id: u32,
    pending: HashMap<u32, oneshot::Sender<Result<Answer, Failure>>>,
}

impl Connection {
    async fn open(address: &str, options: &MuxOptions) -> Result<Connection, Failure> {
        let refused = |detail: String| {
            Failure::new(
                Error::internal_server_error(CLIENT_ID, format!("connection error calling {address}: {detail}")),
                Delivery::NotSent,
            )
        };
        let stream = match tokio::time::timeout(options.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(refused(e.to_string())),
            Err(_) => return Err(refused(format!("no connection within {:?}", options.connect_timeout))),
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(address, error = %e, "cannot set TCP_NODELAY");
        }
        let (reader, writer) = stream.into_split();
        let (out, frames) = Outbox::new(OUTBOUND_BUDGET);
        // Queued first, so it leads the first write.
        let _ = out.send_unbudgeted(Bytes::from_static(&PREFACE));
        tokio::spawn(write_frames(frames, writer, options.idle_timeout));
        let budget = out.budget().clone();
        let state = Arc::new(Mutex::new(State {
            out: Some(out),
            next_id: 1,
            pending: HashMap::default(),
        }));
        let decoder = FrameDecoder::new(options.response_limit);
        let connection = Connection { state, budget };
        tokio::spawn(read_answers(
            FramedRead::new(reader, decoder),
            connection.clone(),
            options.idle_timeout,
            address.to_owned(),
        ));
        Ok(connection)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_open(&self) -> bool {
        self.lock().out.is_some()
    }

    async fn call(&self, address: &str, mut call: FrameWriter, deadline: Instant) -> Result<Answer, Failure> {
        let closed = || {
            Failure::new(
                Error::internal_server_error(
                    CLIENT_ID,
                    format!("connection to {address} closed before the call was sent"),
                ),
                Delivery::NotSent,
            )
        };
        // A server that reads nothing holds the call here, not in a queue.
        let room = match self.budget.try_reserve(call.len()) {
            Ok(Some(room)) => room,
            Ok(None) => match tokio::time::timeout_at(deadline, self.budget.reserve(call.len())).await {
                Ok(Ok(room)) => room,
                Ok(Err(_)) => return Err(closed()),
                Err(_) => {
                    return Err(Failure::new(
                        Error::timeout(
                            CLIENT_ID,
                            format!("call timeout: {address} took no calls within the deadline"),
                        ),
                        Delivery::NotSent,
                    ));
                }
            },
            Err(_) => return Err(closed()),
        };
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.lock();
            let id = state.next_id;
            call.set_id(id);
            // Ids go out in the order they are given, so GOAWAY's last id
            // tells exactly which calls the server read.
            let sent = state
                .out
                .as_ref()
                .is_some_and(|out| out.push(call.finish(), room).is_ok());
            if !sent {
                return Err(closed());
            }
            state.next_id = id.wrapping_add(1).max(1);
            state.pending.insert(id, tx);
            id
        };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(lost(address)),
            Err(_) => {
                self.lock().pending.remove(&id);
                Err(Failure::new(
                    Error::timeout(
                        CLIENT_ID,
                        format!("call timeout: no answer from {address} within the deadline"),
                    ),
                    Delivery::Unknown,
                ))
            }
        }
    }
}

fn lost(address: &str) -> Failure {
    Failure::new(
        Error::internal_server_error(
            CLIENT_ID,
            format!("transport error calling {address}: connection closed"),
        ),
        Delivery::Unknown,
    )
}

/// Hands each answer to its caller until the connection ends or stays idle.
async fn read_answers(
    mut frames: FramedRead<OwnedReadHalf, FrameDecoder>,
    connection: Connection,
    idle_timeout: Duration,
    address: String,
) {
    let lock = || connection.lock();
    let mut handed = 0;
    loop {
        // Let the callers just answered run (and send their next calls)
        // while more answers wait in the read buffer.
        if handed >= super::PIPELINE {
            handed = 0;
            tokio::task::yield_now().await;
        }
        let next = match tokio::time::timeout(idle_timeout, frames.next()).await {
            Ok(next) => next,
            Err(_) => {
                let mut state = lock();
                if state.pending.is_empty() {
                    // Closing the sender ends the writer, which shuts the
                    // connection down; the server closes its side.
                    state.out = None;
                }
                continue;
            }
        };
        let (id, answer) = match next {
            Some(Ok(Inbound::Frame { id, kind, payload })) => match kind {
                REPLY => (id, reply(payload, &address)),
                ERROR => {
                    let error = Error::parse(&String::from_utf8_lossy(&payload));
                    (id, Err(Failure::new(error, Delivery::Answered)))
                }
                GOAWAY => {
                    go_away(&mut lock(), id, &address);
                    continue;
                }
                other => {
                    debug!(address, kind = other, "unknown mux frame kind; ignored");
                    continue;
                }
            },
            Some(Ok(Inbound::TooLarge { id, len, .. })) => {
                let error = Error::internal_server_error(
                    CLIENT_ID,
                    format!("response body is larger than the client's limit ({len} byte frame)"),
                );
                (id, Err(Failure::new(error, Delivery::Answered)))
            }
            Some(Err(e)) => {
                debug!(address, error = %e, "mux connection failed");
                break;
            }
            None => break,
        };
        if let Some(waiting) = lock().pending.remove(&id) {
            let _ = waiting.send(answer);
        }
        handed += 1;
    }
    let mut state = lock();
    state.out = None;
    for (_, waiting) in state.pending.drain() {
        let _ = waiting.send(Err(lost(&address)));
    }
}

/// The server stops: calls after `last` were never read, so they fail as
/// not sent (safe to retry elsewhere); earlier ones still get answers.
fn go_away(state: &mut State, last: u32, address: &str) {
    state.out = None;
    let unread: Vec<u32> = state.pending.keys().copied().filter(|id| *id > last).collect();
    for id in unread {
        if let Some(waiting) = state.pending.remove(&id) {
            let error = Error::internal_server_error(
                CLIENT_ID,
                format!("{address} is shutting down and did not take the call"),
            );
            let _ = waiting.send(Err(Failure::new(error, Delivery::NotSent)));
        }
    }
}

fn reply(payload: Bytes, address: &str) -> Result<Answer, Failure> {
    let mut reader = FieldReader::new(payload);
    match reader.str() {
        Ok(content_type) => Ok(Answer {
            codec: Codec::from_content_type(content_type.as_str()).ok(),
            body: reader.rest(),
        }),
        Err(e) => Err(Failure::new(
            Error::internal_server_error(CLIENT_ID, format!("{address} sent a {e}")),
            Delivery::Answered,
        )),
    }
}

/// A call frame (its id set when sent); metadata pairs too long for a frame
/// are left out, as the HTTP transport leaves out invalid headers.
pub(crate) fn call_frame<'a>(
    service: &str,
    endpoint: &str,
    content_type: &str,
    timeout: Option<Duration>,
    metadata: impl Iterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Result<FrameWriter, Error> {
    let fits = |s: &str| s.len() <= usize::from(u16::MAX);
    if !fits(service) || !fits(endpoint) {
        return Err(Error::bad_request(
            CLIENT_ID,
            "service or endpoint name is longer than 64 KiB",
        ));
    }
    let pairs: Vec<(&str, &str)> = metadata
        .filter(|(k, v)| {
            let ok = fits(k) && fits(v);
            if !ok {
                debug!(key = k, "metadata longer than 64 KiB is not sent");
            }
            ok
        })
        .take(usize::from(u16::MAX))
        .collect();
    let size = 8 + 8 + content_type.len() + service.len() + endpoint.len() + body.len();
    let size = pairs.iter().fold(size, |n, (k, v)| n + 4 + k.len() + v.len());
    let mut frame = FrameWriter::new(0, super::frame::CALL, size);
    let nanos = timeout.map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1));
    frame.u64(nanos);
    frame.str(content_type);
    frame.str(service);
    frame.str(endpoint);
    frame.u16(u16::try_from(pairs.len()).unwrap_or(u16::MAX));
    for (k, v) in pairs {
        frame.str(k);
        frame.str(v);
    }
    frame.bytes(body);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::transport::mux::frame::CALL;

    fn options() -> MuxOptions {
        MuxOptions {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            response_limit: 1024,
        }
    }

    /// Reads one frame's id and kind, skipping its payload.
    async fn read_frame(stream: &mut TcpStream) -> (u32, u8) {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes(head[0..4].try_into().unwrap()) as usize;
        let mut payload = vec![0; len - 5];
        stream.read_exact(&mut payload).await.unwrap();
        (u32::from_be_bytes(head[4..8].try_into().unwrap()), head[8])
    }

    fn frame(id: u32, kind: u8) -> FrameWriter {
        let mut w = FrameWriter::new(id, kind, 32);
        if kind == REPLY {
            w.str("application/json");
            w.bytes(b"{}");
        }
        w
    }

    #[tokio::test]
    async fn calls_the_server_did_not_read_before_goaway_fail_as_not_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut preface = [0u8; 8];
            stream.read_exact(&mut preface).await.unwrap();
            assert_eq!(preface, PREFACE);
            let (first, kind) = read_frame(&mut stream).await;
            assert_eq!(kind, CALL);
            let (second, _) = read_frame(&mut stream).await;
            // Read both, but say only the first was taken: the second must
            // come back as never sent, the first still gets its answer.
            stream.write_all(&frame(first, GOAWAY).finish()).await.unwrap();
            stream.write_all(&frame(first, REPLY).finish()).await.unwrap();
            assert_ne!(first, second);
        });
        let client = Arc::new(MuxClient::new(options()));
        let deadline = Instant::now() + Duration::from_secs(5);
        let (a, b) = tokio::join!(
            client.round_trip(&address, frame(0, CALL), deadline),
            client.round_trip(&address, frame(0, CALL), deadline),
        );
        server.await.unwrap();
        let outcomes = [a, b];
        let answered = outcomes.iter().filter(|o| o.is_ok()).count();
        let not_sent = outcomes
            .iter()
            .filter(|o| o.as_ref().is_err_and(|f| f.delivery == Delivery::NotSent))
            .count();
        assert_eq!((answered, not_sent), (1, 1));
        // The connection takes no new calls; the next call reconnects.
        let again = client.round_trip(&address, frame(0, CALL), deadline).await;
        assert!(
            again.is_err_and(|f| f.delivery == Delivery::NotSent),
            "nobody listens any more"
        );
    }

    #[tokio::test]
    async fn calls_to_a_server_that_reads_nothing_wait_for_room_instead_of_queueing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        // Accepts, then neither reads nor writes.
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let client = Arc::new(MuxClient::new(options()));
        let deadline = Instant::now() + Duration::from_millis(1500);
        let big = |_| {
            let mut frame = FrameWriter::new(0, CALL, 256 * 1024);
            frame.bytes(&vec![0u8; 256 * 1024]);
            frame
        };
        // 64 MiB of calls: far more than the socket buffers and the budget.
        let calls = (0..256).map(|n| client.round_trip(&address, big(n), deadline));
        let outcomes = futures_util::future::join_all(calls).await;
        let held = outcomes
            .iter()
            .filter(|o| {
                o.as_ref()
                    .is_err_and(|f| f.delivery == Delivery::NotSent && f.error.detail.contains("took no calls"))
            })
            .count();
        assert!(held > 100, "only {held} of 256 calls waited for room");
        server.abort();
    }
}
