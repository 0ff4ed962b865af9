//! The RPC server: a router of handlers behind Go Micro's HTTP transport.
//!
//! One port serves HTTP/1.1, h2c and [`mux`] (micro to micro). Limits are
//! set on purpose: request bodies (4 MiB, 413 beyond), header read time
//! (10 s, against slowloris), header count (100), h2 concurrent streams and
//! mux calls per connection (200), header list size (16 KiB), the answers a
//! mux connection may have waiting to be written (1 MiB, then it is not
//! read) and its idle time (2 minutes). Shutdown stops accepting, lets in-flight calls finish within a
//! bounded drain time, then closes what is left.

pub(crate) mod handler;
mod idle;
mod listen;
mod router;
mod stream;
mod subscriber;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use handler::{
    CompiledService, EndpointDescriptor, Handler, Request, Response, ServiceDescriptor, SubscriberDescriptor,
    compiled_services,
};
pub use router::{DuplicateHandler, Router};

pub use self::listen::{Drained, RunningServer};
pub(crate) use self::listen::listen;
pub use self::subscriber::SubscriberStats;
pub(crate) use self::subscriber::{Subscribed, open as open_message};
pub(crate) use self::transport::{Shared, Unary, body_too_large, dispatch, respond};
use crate::mux;

/// Server limits and timeouts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// How long a client may take to send a request's headers (HTTP/1): on
    /// a new connection, and between calls on a kept-alive one, which is
    /// closed after waiting that long (up to twice that after a call).
    pub header_read_timeout: Duration,
    /// The most headers a request may have (HTTP/1); more get 431.
    pub max_headers: usize,
    /// Concurrent streams per HTTP/2 connection, and concurrent calls per
    /// mux connection.
    pub max_concurrent_streams: u32,
    /// The largest HTTP/2 header block.
    pub max_header_list_size: u32,
    /// How long shutdown waits for in-flight calls before closing them.
    pub drain_timeout: Duration,
    /// How long a mux connection may go without a call before it is closed
    /// (with `GOAWAY`, so the client knows no call was cut off), and how
    /// long a mux peer may leave the answers written to it unread. Longer
    /// than a client's idle time (its pool TTL, a minute by default), so a
    /// well-behaved client closes first.
    pub idle_timeout: Duration,
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
            idle_timeout: Duration::from_secs(120),
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

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
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
    name: Option<Arc<str>>,
}

impl Server {
    /// A server with no handlers and default limits.
    pub fn new(options: ServerOptions) -> Self {
        Server {
            router: Router::new(),
            options,
            name: None,
        }
    }

    /// The name of the service this server is registered as: what
    /// [`Context::service`](crate::Context::service) says for calls that name
    /// no service (a micro client names none to a micro node).
    #[must_use]
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
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
        let shared = Arc::new(Shared {
            router: self.router,
            body_limit: self.options.body_limit,
            service: self.name.map(std::sync::OnceLock::from).unwrap_or_default(),
        });
        let limits = mux::server::Limits {
            preface_timeout: self.options.header_read_timeout,
            in_flight: self.options.max_concurrent_streams as usize,
            idle_timeout: self.options.idle_timeout,
        };
        let mux_shared = Arc::clone(&shared);
        let mux: listen::MuxServe = Arc::new(move |stream, peer, stop| {
            Box::pin(mux::server::serve(stream, peer, Arc::clone(&mux_shared), limits, stop))
        });
        let local = Arc::clone(&shared);
        let running = listen::listen(
            listener,
            &self.options,
            move |peer, request| transport::serve(Arc::clone(&shared), peer, request),
            Some(mux),
        );
        crate::local::register(running.local_addr().to_string(), &local, running.stop_token());
        running
    }
}
