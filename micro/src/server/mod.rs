//! The RPC server: a router of handlers behind Go Micro's HTTP transport.
//!
//! One port serves HTTP/1.1 and h2c. Limits are set on purpose: request
//! bodies (4 MiB, 413 beyond), header read time (10 s, against slowloris),
//! header count (100), h2 concurrent streams (200) and header list size
//! (16 KiB). Shutdown stops accepting, lets in-flight calls finish within a
//! bounded drain time, then closes what is left.

mod handler;
mod router;
mod stream;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use handler::{
    CompiledService, EndpointDescriptor, Handler, Request, Response, ServiceDescriptor, compiled_services,
};
pub use router::{DuplicateHandler, Router};

use self::transport::{Peer, Shared};

/// The HTTP/2 connection window: what one connection may have in flight.
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// The HTTP/2 stream window: what one stream may have in flight.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;

/// Server limits and timeouts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// How long a client may take to send a request's headers (HTTP/1).
    pub header_read_timeout: Duration,
    /// The most headers a request may have (HTTP/1); more get 431.
    pub max_headers: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// The largest HTTP/2 header block.
    pub max_header_list_size: u32,
    /// How long shutdown waits for in-flight calls before closing them.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_concurrent_streams: 200,
            max_header_list_size: 16 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerOptions {
    /// Sets [`body_limit`](Self::body_limit).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    #[must_use]
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    #[must_use]
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Sets [`max_header_list_size`](Self::max_header_list_size).
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
}

/// A set of handlers ready to be served on an address.
#[derive(Debug, Default)]
pub struct Server {
    router: Router,
    options: ServerOptions,
}

impl Server {
    /// A server with no handlers and default limits.
    pub fn new(options: ServerOptions) -> Self {
        Server {
            router: Router::new(),
            options,
        }
    }

    /// Adds a handler; its endpoints are served under its name.
    pub fn handle<H: Handler>(&mut self, handler: H) -> Result<(), DuplicateHandler> {
        self.add(Arc::new(handler))
    }

    /// Adds a shared handler.
    pub fn add(&mut self, handler: Arc<dyn Handler>) -> Result<(), DuplicateHandler> {
        self.router.add(handler)
    }

    /// The handlers being served.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The server's limits.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// Binds `address` and starts serving.
    pub async fn bind(self, address: &str) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(address).await?;
        Ok(self.serve(listener))
    }

    /// Serves connections accepted by `listener`.
    pub fn serve(self, listener: TcpListener) -> RunningServer {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let stop = CancellationToken::new();
        let drain_timeout = self.options.drain_timeout;
        let task = tokio::spawn(accept_loop(listener, self, stop.clone()));
        RunningServer {
            local_addr,
            stop,
            drain_timeout,
            task,
        }
    }
}

/// A server that is accepting connections.
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

fn connection_builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_headers(options.max_headers)
        .title_case_headers(true);
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

async fn accept_loop(listener: TcpListener, server: Server, stop: CancellationToken) -> Drained {
    let builder = connection_builder(&server.options);
    let drain_timeout = server.options.drain_timeout;
    let shared = Arc::new(Shared {
        router: server.router,
        body_limit: server.options.body_limit,
    });
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
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
        let Some(peer) = peer_of(&stream, remote) else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |request| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, std::convert::Infallible>(transport::serve(shared, peer, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = watched.await {
                debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = connections.len();
    info!(open, "server stopped accepting; draining");
    tokio::select! {
        () = graceful.shutdown() => Drained::Clean,
        () = tokio::time::sleep(drain_timeout) => {
            while connections.try_join_next().is_some() {}
            let left = connections.len();
            warn!(left, "drain time ran out; closing the remaining connections");
            connections.abort_all();
            Drained::TimedOut(left)
        }
    }
}

fn peer_of(stream: &TcpStream, remote: SocketAddr) -> Option<Peer> {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    match stream.local_addr() {
        Ok(local) => Some(Peer { local, remote }),
        Err(e) => {
            debug!(%remote, error = %e, "connection closed before it was served");
            None
        }
    }
}
