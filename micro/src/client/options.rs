//! The client's settings, with Go Micro v5's defaults: 30 s request
//! timeout, 5 s connect timeout, 5 retries with Go Micro's backoff, a pool of
//! 100 idle connections per node kept for a minute.

use std::sync::Arc;
use std::time::Duration;

use tower::{BoxError, Layer};

use super::layered::{AttemptService, Attempted, CallAttempt};
use super::retry::RetryPolicy;
use crate::broker::Broker;
use crate::codec::Codec;
use crate::middleware::Layers;
use crate::selector::{Selector, Strategy};
use crate::server::InProcess;

/// Client settings; Go Micro's defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long a call may take, retries included (`--client_request_timeout`).
    pub request_timeout: Duration,
    /// How long connecting to a node may take.
    pub connect_timeout: Duration,
    /// Attempts after the first (`--client_retries`).
    pub retries: u32,
    /// Idle connections kept per node (`--client_pool_size`).
    pub pool_size: usize,
    /// How long an idle connection is kept (`--client_pool_ttl`).
    pub pool_ttl: Duration,
    /// The codec of every call; `None` chooses per node: MessagePack with
    /// nodes that serve it, JSON otherwise.
    pub codec: Option<Codec>,
    /// The largest response body accepted.
    pub response_limit: usize,
    /// Speak HTTP/2 (h2c) instead of HTTP/1.1.
    pub http2: bool,
    /// Send unary calls over mux (micro's framed transport, see
    /// [the crate docs](crate#transports)) to nodes that serve it
    /// (micro nodes); HTTP otherwise.
    pub mux: bool,
    /// Run calls to a node served by this same process in place: the handler
    /// gets the request value itself, and the response comes back as a
    /// value, neither encoded when both sides use the same types (see
    /// [`local_calls`](Self::local_calls)).
    pub local_calls: bool,
    /// The servers of this process that [`local_calls`](Self::local_calls)
    /// may reach: a new empty table by default; a
    /// [`Service`](crate::Service) enters its own server in its client's.
    pub in_process: InProcess,
    /// How nodes are picked (`--selector`), with ejection of failing nodes.
    pub selector: Strategy,
    /// A selector of one's own, used instead of [`selector`](Self::selector)'s.
    pub node_selector: Option<Arc<dyn Selector>>,
    /// Which answered errors are retried (default: 408 only, as Go Micro).
    pub retry: RetryPolicy,
    /// The broker [`publish`](super::Client::publish) sends through (default: the
    /// HTTP broker on the client's registry).
    pub broker: Option<Arc<dyn Broker>>,
    /// The layers around each call attempt (see [`layer`](Self::layer)).
    pub(super) layers: Layers<CallAttempt, Attempted>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retries: 5,
            pool_size: 100,
            pool_ttl: Duration::from_secs(60),
            codec: None,
            response_limit: 4 * 1024 * 1024,
            http2: false,
            mux: true,
            local_calls: false,
            in_process: InProcess::new(),
            selector: Strategy::Random,
            node_selector: None,
            retry: RetryPolicy::default(),
            broker: None,
            layers: Layers::client(),
        }
    }
}

impl ClientOptions {
    /// Sets [`request_timeout`](Self::request_timeout).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`retries`](Self::retries).
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets [`pool_size`](Self::pool_size).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// Sets [`pool_ttl`](Self::pool_ttl).
    #[must_use]
    pub fn pool_ttl(mut self, ttl: Duration) -> Self {
        self.pool_ttl = ttl;
        self
    }

    /// Sets [`codec`](Self::codec).
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Sets [`response_limit`](Self::response_limit).
    #[must_use]
    pub fn response_limit(mut self, bytes: usize) -> Self {
        self.response_limit = bytes;
        self
    }

    /// Sets [`http2`](Self::http2).
    #[must_use]
    pub fn http2(mut self, enabled: bool) -> Self {
        self.http2 = enabled;
        self
    }

    /// Sets [`mux`](Self::mux).
    #[must_use]
    pub fn mux(mut self, enabled: bool) -> Self {
        self.mux = enabled;
        self
    }

    /// Sets [`local_calls`](Self::local_calls).
    ///
    /// A call whose picked node is a server of this process entered in the
    /// client's [`in_process`](Self::in_process) table skips the network: the handler runs on the caller's task with the request
    /// value, under the call's deadline, and its response value comes back.
    /// A side whose Rust type differs from the other's gets its value through
    /// the node's codec, as over the wire. What differs from a network call:
    /// the handler's metadata is the caller's alone (no `Content-Type`,
    /// `Micro-*`, `Local` or `Remote`; [`Context::service`](crate::Context::service) and
    /// [`Context::endpoint`](crate::Context::endpoint) are set), no body size limit applies since
    /// nothing is encoded, and the call is not retried, since the answer
    /// came from the handler itself. Off by default, so that a process
    /// running client and server together still exercises the wire.
    #[must_use]
    pub fn local_calls(mut self, enabled: bool) -> Self {
        self.local_calls = enabled;
        self
    }

    /// Sets [`in_process`](Self::in_process): share `table` with the
    /// services and clients whose servers this client may call in place.
    #[must_use]
    pub fn in_process(mut self, table: InProcess) -> Self {
        self.in_process = table;
        self
    }

    /// Sets [`retry`](Self::retry).
    #[must_use]
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.retry = policy.into();
        self
    }

    /// Sets [`broker`](Self::broker).
    #[must_use]
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Sets [`selector`](Self::selector).
    #[must_use]
    pub fn selector(mut self, strategy: Strategy) -> Self {
        self.selector = strategy;
        self
    }

    /// Sets [`node_selector`](Self::node_selector).
    #[must_use]
    pub fn node_selector(mut self, selector: Arc<dyn Selector>) -> Self {
        self.node_selector = Some(selector);
        self
    }

    /// Adds a layer around each attempt of every call, inside the layers
    /// added before it (see [`crate::middleware`]): Go Micro's call wrapper.
    ///
    /// The layer sees each [`CallAttempt`] once its node is picked, on every
    /// path (unary calls over HTTP or mux, stream opens, calls run in
    /// place), and a retried call once per attempt. A layer that fails an
    /// attempt without passing it on refuses it: the call goes on as if the
    /// request had not been sent (retried on another node, the node not
    /// marked); one that gives up on an attempt it passed on leaves its
    /// delivery unknown.
    ///
    /// ```
    /// use micro::client::{Attempted, CallAttempt, ClientOptions};
    /// use micro::middleware::{Next, from_fn};
    ///
    /// let trace = from_fn(|mut call: CallAttempt, next: Next<CallAttempt, Attempted>| async move {
    ///     call.metadata_mut().insert("X-Trace-Id", "4bf92f35");
    ///     tracing::debug!(endpoint = call.endpoint(), address = call.address(), attempt = call.attempt(), "calling");
    ///     next.run(call).await
    /// });
    /// let options = ClientOptions::default().layer(trace);
    /// ```
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<AttemptService> + Send + Sync + 'static,
        L::Service: tower::Service<CallAttempt, Response = Attempted> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<CallAttempt>>::Error: Into<BoxError>,
        <L::Service as tower::Service<CallAttempt>>::Future: Send + 'static,
    {
        self.layers.push(layer);
        self
    }

    /// Adds `layer` outside every layer added so far.
    pub(crate) fn outermost_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<AttemptService> + Send + Sync + 'static,
        L::Service: tower::Service<CallAttempt, Response = Attempted> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<CallAttempt>>::Error: Into<BoxError>,
        <L::Service as tower::Service<CallAttempt>>::Future: Send + 'static,
    {
        let mut layers = Layers::client();
        layers.push(layer);
        layers.extend(std::mem::replace(&mut self.layers, Layers::client()));
        self.layers = layers;
        self
    }
}
