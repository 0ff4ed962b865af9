//! Accepting connections: HTTP/1.1, h2c and (for the RPC server) mux on one
//! port, every limit set, and a shutdown that stops accepting, drains within
//! a deadline, then closes what is left. The RPC server and the HTTP broker
//! both listen so.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{Either, select};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::task::coop::unconstrained;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, info, warn};

use super::idle::{Activity, Counted};
use crate::BoxFuture;
use crate::net::Peer;
use crate::transport::ServerOptions;

/// Serves a connection whose first byte is zero (a mux client), until the
/// token says stop.
pub(crate) type MuxServe = Arc<dyn Fn(TcpStream, Arc<Peer>, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

/// The HTTP/2 connection window: what one connection may have in flight.
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// The HTTP/2 stream window: what one stream may have in flight.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;

/// A listener that is accepting connections.
#[derive(Debug)]
#[must_use = "dropping a RunningServer leaves it serving until the runtime stops; call shutdown()"]
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: CancellationToken,
    drain_timeout: Duration,
    task: tokio::task::JoinHandle<Drained>,
}

/// How a shutdown went.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished its in-flight calls.
    Clean,
    /// The drain time ran out; this many connections were closed mid-call.
    TimedOut(usize),
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token that stops the server.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops accepting, lets in-flight calls finish within the drain time,
    /// then closes every connection.
    pub async fn shutdown(self) -> Drained {
        self.stop.cancel();
        match self.task.await {
            Ok(drained) => drained,
            Err(e) => {
                warn!(error = %e, "server task failed during shutdown");
                Drained::TimedOut(0)
            }
        }
    }

    /// How long shutdown waits for in-flight calls.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }
}

/// Serves every connection `listener` accepts: HTTP requests with
/// `respond`, mux connections with `mux` if given.
pub(crate) fn listen<F, Fut, B>(
    listener: TcpListener,
    options: &ServerOptions,
    respond: F,
    mux: Option<MuxServe>,
) -> RunningServer
where
    F: Fn(Arc<Peer>, http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let local_addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let stop = CancellationToken::new();
    let builder = connection_builder(options);
    let drain_timeout = options.drain_timeout;
    let accept = Accept {
        builder,
        mux,
        idle_timeout: options.header_read_timeout,
        drain_timeout,
        stop: stop.clone(),
    };
    let task = tokio::spawn(accept.run(listener, respond));
    RunningServer {
        local_addr,
        stop,
        drain_timeout,
        task,
    }
}

/// hyper's default limit of headers in an HTTP/1.1 request.
const HYPER_MAX_HEADERS: usize = 100;

fn connection_builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    // The header read timeout is the connection's idle timeout (`idle`),
    // not hyper's, which arms a timer for every request.
    http1.header_read_timeout(None);
    // Set to hyper's own limit, the parser would size its header table at
    // run time, on every request.
    if options.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(options.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.max_concurrent_streams)
        .max_header_list_size(options.max_header_list_size)
        // h2 allows unread small DATA frames up to half the connection
        // window; streams whose reader pauses need room.
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .initial_stream_window_size(H2_STREAM_WINDOW);
    builder
}

/// How an accepted connection is served, and when to stop.
struct Accept {
    builder: auto::Builder<TokioExecutor>,
    mux: Option<MuxServe>,
    /// How long a connection may wait for a request's headers; also how
    /// long the first byte may take.
    idle_timeout: Duration,
    drain_timeout: Duration,
    stop: CancellationToken,
}

impl Accept {
    async fn run<F, Fut, B>(self, listener: TcpListener, respond: F) -> Drained
    where
        F: Fn(Arc<Peer>, http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = http::Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = self.stop.cancelled() => break,
                accepted = listener.accept() => accepted,
                // Reap finished connection tasks so the set stays small.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(peer) = peer_of(&stream, remote) else { continue };
            let respond = respond.clone();
            let serving = Arc::clone(&peer);
            let activity = Activity::new();
            let calls = Arc::clone(&activity);
            // `map`, not an async block: the future hyper keeps per request stays
            // the size of the answer's.
            let service = service_fn(move |request: http::Request<Incoming>| {
                let call = calls.call(request.version() == http::Version::HTTP_2);
                respond(Arc::clone(&serving), request).map(move |response| {
                    drop(call);
                    Ok::<_, Infallible>(response)
                })
            });
            let builder = self.builder.clone();
            let mux = self.mux.clone();
            let stop = self.stop.clone();
            let idle_timeout = self.idle_timeout;
            connections.spawn(async move {
                if let Some(mux) = mux {
                    match first_byte(&stream, idle_timeout, &stop).await {
                        Some(0) => return mux(stream, peer, stop).await,
                        Some(_) => {}
                        None => return,
                    }
                }
                let io = Counted::new(TokioIo::new(stream), Arc::clone(&activity));
                let mut connection = pin!(builder.serve_connection(io, service).into_owned());
                let idle = pin!(activity.idle_for(idle_timeout));
                let ended = match select(connection.as_mut(), select(Stopped::new(stop), idle)).await {
                    Either::Left((ended, _)) => ended,
                    // On stop, hyper finishes the calls it has read, then closes.
                    Either::Right((Either::Left(_), _)) => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                    Either::Right((Either::Right(_), _)) => {
                        debug!(%remote, "no request within the header read timeout; closed");
                        return;
                    }
                };
                if let Err(e) = ended {
                    debug!(%remote, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        let open = connections.len();
        info!(open, "stopped accepting; draining");
        // Every connection heard the stop: each ends once its calls are answered.
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(self.drain_timeout, drained).await.is_ok() {
            return Drained::Clean;
        }
        while connections.try_join_next().is_some() {}
        let left = connections.len();
        warn!(left, "drain time ran out; closing the remaining connections");
        connections.abort_all();
        Drained::TimedOut(left)
    }
}

/// Resolves once `token` is cancelled. A connection polls it on every wake,
/// so it registers its waker once and after that reads a flag.
struct Stopped {
    token: CancellationToken,
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    registered: Option<Waker>,
}

impl Stopped {
    fn new(token: CancellationToken) -> Stopped {
        Stopped {
            wait: Box::pin(token.clone().cancelled_owned()),
            token,
            registered: None,
        }
    }
}

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.token.is_cancelled() {
            return Poll::Ready(());
        }
        if self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        self.registered = Some(cx.waker().clone());
        // Unconstrained, so that a Pending always means the waker is kept
        // (see `idle::IdleFor`).
        unconstrained(self.wait.as_mut()).poll_unpin(cx)
    }
}

/// The first byte the client sends, without taking it; `None` if it closes,
/// sends nothing in time, or the server stops first.
async fn first_byte(stream: &TcpStream, timeout: Duration, stop: &CancellationToken) -> Option<u8> {
    let mut first = [0u8; 1];
    tokio::select! {
        () = stop.cancelled() => None,
        peeked = tokio::time::timeout(timeout, stream.peek(&mut first)) => match peeked {
            Ok(Ok(1)) => Some(first[0]),
            _ => None,
        },
    }
}

fn peer_of(stream: &TcpStream, remote: SocketAddr) -> Option<Arc<Peer>> {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    match stream.local_addr() {
        Ok(local) => Some(Arc::new(Peer {
            local: local.to_string(),
            remote: remote.to_string(),
        })),
        Err(e) => {
            debug!(%remote, error = %e, "connection closed before it was served");
            None
        }
    }
}
