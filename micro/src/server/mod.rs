//! The RPC server: a router of handlers and the dispatch core every
//! transport hands its calls to.
//!
//! One port serves HTTP/1.1, h2c and mux (micro to micro; see
//! [the crate docs](crate#transports)), each with the limits of
//! [`ServerOptions`]. Shutdown stops accepting, lets in-flight calls finish
//! within a bounded drain time, then closes what is left.

mod consumer;
mod dispatch;
mod guard;
pub(crate) mod handler;
mod in_process;
mod layered;
mod router;
mod subscriber;

use std::sync::Arc;

use tokio::net::TcpListener;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer};

pub use handler::{
    CompiledService, Consumption, EndpointDescriptor, Handler, Request, Response, ServiceDescriptor,
    SubscriberDescriptor, compiled_services,
};
pub use router::DuplicateHandler;
pub(crate) use router::Router;

pub(crate) use self::consumer::Consuming;
pub(crate) use self::dispatch::{Pages, Shared, Unary, respond};
pub use self::in_process::InProcess;
pub use self::layered::{HandlerCall, HandlerService, SubscriberCall, SubscriberService};
pub use self::subscriber::SubscriberStats;
pub(crate) use self::subscriber::{Subscribed, open as open_message};
use crate::meter::Defaults;
use crate::middleware::Layers;
pub use crate::transport::ServerOptions;
use crate::transport::http::listen::{self, MuxServe};
pub use crate::transport::http::listen::{Drained, RunningServer};
use crate::transport::{http, mux};

/// A set of handlers ready to be served on an address.
#[derive(Debug, Default)]
pub struct Server {
    router: Router,
    options: ServerOptions,
    name: Option<Arc<str>>,
    in_process: Option<InProcess>,
    layers: Layers<HandlerCall, Response>,
    subscriber_layers: Layers<SubscriberCall, ()>,
    pages: Option<Arc<dyn Pages>>,
    defaults: Defaults,
}

impl Server {
    /// A server with no handlers and default limits.
    pub fn new(options: ServerOptions) -> Self {
        Server {
            router: Router::new(),
            options,
            name: None,
            in_process: None,
            layers: Layers::default(),
            subscriber_layers: Layers::default(),
            pages: None,
            defaults: Defaults::default(),
        }
    }

    /// Adds a layer around every handler call, inside the layers added
    /// before it (see [`crate::middleware`]).
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<HandlerService> + Send + Sync + 'static,
        L::Service: tower::Service<HandlerCall, Response = Response> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<HandlerCall>>::Error: Into<BoxError>,
        <L::Service as tower::Service<HandlerCall>>::Future: Send + 'static,
    {
        self.layers.push(layer);
        self
    }

    /// Adds a layer around every message delivered to a subscriber, inside
    /// the layers added before it.
    #[must_use]
    pub fn subscriber_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<SubscriberService> + Send + Sync + 'static,
        L::Service: tower::Service<SubscriberCall, Response = ()> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<SubscriberCall>>::Error: Into<BoxError>,
        <L::Service as tower::Service<SubscriberCall>>::Future: Send + 'static,
    {
        self.subscriber_layers.push(layer);
        self
    }

    /// Adds `handler` and `subscriber` layers inside those added so far.
    pub(crate) fn with_layers(
        mut self,
        handler: Layers<HandlerCall, Response>,
        subscriber: Layers<SubscriberCall, ()>,
    ) -> Self {
        self.layers.extend(handler);
        self.subscriber_layers.extend(subscriber);
        self
    }

    /// Records every call in `defaults`' metrics and refuses calls over its
    /// limit, outside every layer.
    pub(crate) fn with_defaults(mut self, defaults: Defaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Answers `GET` requests on the port with `pages`.
    pub(crate) fn with_pages(mut self, pages: Arc<dyn Pages>) -> Self {
        self.pages = Some(pages);
        self
    }

    /// The subscriber layers around the innermost delivery, if any.
    pub(crate) fn subscriber_stack(&self) -> Option<SubscriberService> {
        self.subscriber_layers.wrap(BoxCloneSyncService::new(layered::Deliver))
    }

    /// Enters the server, once it is serving, in `table`, so that clients
    /// sharing the table call it in place (with
    /// [`ClientOptions::local_calls`](crate::client::ClientOptions::local_calls)).
    #[must_use]
    pub fn in_process(mut self, table: InProcess) -> Self {
        self.in_process = Some(table);
        self
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
    pub(crate) fn router(&self) -> &Router {
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
            layers: self.layers.wrap(BoxCloneSyncService::new(layered::Invoke)),
            defaults: (!self.defaults.is_empty()).then_some(self.defaults),
            pages: self.pages,
        });
        let limits = mux::server::Limits {
            preface_timeout: self.options.header_read_timeout,
            in_flight: self.options.max_concurrent_streams as usize,
            idle_timeout: self.options.idle_timeout,
        };
        let mux_shared = Arc::clone(&shared);
        let mux: MuxServe = Arc::new(move |stream, peer, stop| {
            Box::pin(mux::server::serve(stream, peer, Arc::clone(&mux_shared), limits, stop))
        });
        let local = self.in_process.map(|table| (table, Arc::clone(&shared)));
        let running = listen::listen(
            listener,
            &self.options,
            move |peer, request| http::server::serve(Arc::clone(&shared), peer, request),
            Some(mux),
        );
        if let Some((table, shared)) = local {
            table.enter(running.local_addr().to_string(), &shared, running.stop_token());
        }
        running
    }
}
