//! The RPC client: resolve a service through the registry, pick a node,
//! call it over Go Micro's HTTP transport, retry what is safe to retry.
//!
//! Defaults follow Go Micro v5: 30 s request timeout, 5 s connect timeout,
//! 5 retries with Go Micro's backoff, a pool of 100 idle connections per node
//! kept for a minute.

mod call;
mod publish;
pub mod retry;
mod stream;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::debug;

pub use call::{Bidirectional, Call, CallOptions, ClientStreaming, Mode, ServerStreaming, Unary};
pub use publish::{Publish, Publisher};

use self::retry::{RetryPolicy, backoff, retryable};
use crate::BoxFuture;
use crate::broker::{Broker, HttpBroker};
use crate::codec::{Codec, jsonrpc};
use crate::context::Context;
use crate::error::{CLIENT_ID, Error, Result};
use crate::headers::names;
use crate::metadata::Metadata;
use crate::registry::cache::Snapshot;
use crate::registry::{CacheRegistry, MdnsRegistry, Node, Registry, RegistryError};
use crate::selector::{Outcome, Selector, Strategy};
use crate::server::handler::Message;
use crate::server::{InProcess, Shared};
use crate::transport::http::client::{HttpTransport, TransportOptions};
use crate::transport::mux::client::{MuxClient, MuxOptions, call_frame};
use crate::transport::{Answer, Delivery, Failure};

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
    /// How nodes are picked.
    pub selector: Strategy,
    /// Which answered errors are retried (default: 408 only, as Go Micro).
    pub retry: RetryPolicy,
    /// The broker [`publish`](Client::publish) sends through (default: the
    /// HTTP broker on the client's registry).
    pub broker: Option<Arc<dyn Broker>>,
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
            retry: retry::retry_on_timeout,
            broker: None,
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
    /// `Micro-*`, `Local` or `Remote`; [`Context::service`] and
    /// [`Context::endpoint`] are set), no body size limit applies since
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
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
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
}

/// Calls services by name. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    options: ClientOptions,
    registry: Arc<dyn Registry>,
    cache: CacheRegistry,
    selector: Selector,
    transport: HttpTransport,
    mux: MuxClient,
    sequence: AtomicU64,
    broker: OnceLock<Arc<dyn Broker>>,
}

/// What every attempt of a call shares.
#[derive(Clone, Copy)]
struct Attempts<'a> {
    service: &'a str,
    endpoint: &'a str,
    options: &'a CallOptions,
    context: Option<&'a Context>,
    started: Instant,
    deadline: Instant,
}

/// Where one attempt goes.
struct Target {
    place: Place,
    codec: Codec,
    /// Whether the node serves mux.
    mux: bool,
    /// Whether the node is a micro node; see [`Wire`].
    micro: bool,
}

/// A fixed address, or a registry node (found in the shared lookup result,
/// not copied).
enum Place {
    Fixed(String),
    Node {
        services: Arc<Snapshot>,
        service: usize,
        node: usize,
    },
}

impl Target {
    /// The registry node, unless the address was fixed.
    fn node(&self) -> Option<&Node> {
        match &self.place {
            Place::Fixed(_) => None,
            Place::Node {
                services,
                service,
                node,
            } => Some(&services[*service].nodes[*node]),
        }
    }

    /// `host:port`.
    fn address(&self) -> &str {
        match (&self.place, self.node()) {
            (Place::Fixed(address), _) => address,
            (_, Some(node)) => &node.address,
            (_, None) => "",
        }
    }

    /// The node id, or the address for fixed addresses.
    fn key(&self) -> &str {
        self.node().map_or_else(|| self.address(), |node| node.id.as_str())
    }
}

impl Client {
    /// A client resolving services through `registry`, with default options.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self::with_options(registry, ClientOptions::default())
    }

    /// A client with `options`.
    pub fn with_options(registry: Arc<dyn Registry>, options: ClientOptions) -> Self {
        let transport = HttpTransport::new(&TransportOptions {
            connect_timeout: options.connect_timeout,
            pool_size: options.pool_size,
            pool_ttl: options.pool_ttl,
            response_limit: options.response_limit,
            http2: options.http2,
        });
        let mux = MuxClient::new(MuxOptions {
            connect_timeout: options.connect_timeout,
            idle_timeout: options.pool_ttl,
            response_limit: options.response_limit,
        });
        Client {
            inner: Arc::new(Inner {
                mux,
                selector: Selector::new(options.selector),
                cache: CacheRegistry::new(Arc::clone(&registry)),
                options,
                registry,
                transport,
                sequence: AtomicU64::new(0),
                broker: OnceLock::new(),
            }),
        }
    }

    /// The client's options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The registry the client resolves services with.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.inner.registry
    }

    /// The broker the client publishes through.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        self.inner.broker.get_or_init(|| {
            self.inner
                .options
                .broker
                .clone()
                .unwrap_or_else(|| Arc::new(HttpBroker::new(Arc::clone(&self.inner.registry))))
        })
    }

    /// A call of `endpoint` (`Service.Method`) on `service`; await it for the
    /// response, or set options on it first.
    ///
    /// ```no_run
    /// # async fn demo(client: micro::Client) -> micro::Result<()> {
    /// #[derive(serde::Serialize)]
    /// struct Request { name: String }
    /// #[derive(serde::Deserialize)]
    /// struct Response { message: String }
    ///
    /// let rsp: Response = client
    ///     .call("helloworld", "Helloworld.Greeting", Request { name: "alice".into() })
    ///     .timeout(std::time::Duration::from_secs(2))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn call<Req, Rsp>(
        &self,
        service: impl Into<Arc<str>>,
        endpoint: impl Into<Cow<'static, str>>,
        request: Req,
    ) -> Call<Req, Rsp> {
        Call::new(self.clone(), service.into(), endpoint.into(), request)
    }

    /// A call of a server-streaming endpoint; awaiting it gives a
    /// [`Receiver`](crate::stream::Receiver) of the responses.
    pub fn server_stream<Req, Rsp>(
        &self,
        service: impl Into<Arc<str>>,
        endpoint: impl Into<Cow<'static, str>>,
        request: Req,
    ) -> Call<Req, Rsp, ServerStreaming> {
        Call::new(self.clone(), service.into(), endpoint.into(), request)
    }

    /// A call of a client-streaming endpoint; awaiting it gives a
    /// [`ClientStream`](crate::stream::ClientStream) to send requests on.
    pub fn client_stream<Req, Rsp>(
        &self,
        service: impl Into<Arc<str>>,
        endpoint: impl Into<Cow<'static, str>>,
    ) -> Call<Req, Rsp, ClientStreaming> {
        Call::new(self.clone(), service.into(), endpoint.into(), ())
    }

    /// A call of a bidirectional endpoint; awaiting it gives a
    /// [`Stream`](crate::stream::Stream) that receives `Rsp` and sends `Req`.
    ///
    /// ```no_run
    /// # async fn demo(client: micro::Client) -> micro::Result<()> {
    /// let mut chat = client.stream::<String, String>("chat", "Chat.Talk").await?;
    /// chat.send("hello".to_owned()).await?;
    /// chat.close_send();
    /// while let Some(reply) = chat.recv().await? {
    ///     println!("{reply}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream<Req, Rsp>(
        &self,
        service: impl Into<Arc<str>>,
        endpoint: impl Into<Cow<'static, str>>,
    ) -> Call<Req, Rsp, Bidirectional> {
        Call::new(self.clone(), service.into(), endpoint.into(), ())
    }

    /// Makes a unary call: attempts on nodes the selector picks, retried as
    /// the options allow, until one answers or the deadline passes.
    ///
    /// It takes what it needs by value, so that the boxed future holds each
    /// once. With [`ClientOptions::local_calls`], a call first looks for its
    /// node in this process, and boxes the network's part (most of a call's
    /// state) apart, so that an in-process call does not carry it.
    pub(crate) fn invoke<Req, Rsp>(
        self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        request: Req,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Rsp>>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + Send + 'static,
    {
        if self.inner.options.local_calls {
            Box::pin(self.local_first(service, endpoint, request, options))
        } else {
            Box::pin(self.remote(service, endpoint, request, options))
        }
    }

    async fn remote<Req, Rsp>(
        self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        request: Req,
        options: CallOptions,
    ) -> Result<Rsp>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let context = options.context.clone().or_else(Context::current);
        let call = self.attempts(&service, &endpoint, &options, context.as_ref());
        self.over_network(call, None, request).await
    }

    async fn local_first<Req, Rsp>(
        self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        request: Req,
        options: CallOptions,
    ) -> Result<Rsp>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let context = options.context.clone().or_else(Context::current);
        let call = self.attempts(&service, &endpoint, &options, context.as_ref());
        let target = self.resolve(call.service, call.options, &[]).await?;
        if let Some(shared) = self.local_server(&target) {
            return self.in_place(&shared, &call, &target, request).await;
        }
        Box::pin(self.over_network(call, Some(target), request)).await
    }

    /// What every attempt of a call starting now shares.
    fn attempts<'a>(
        &self,
        service: &'a str,
        endpoint: &'a str,
        options: &'a CallOptions,
        context: Option<&'a Context>,
    ) -> Attempts<'a> {
        let started = Instant::now();
        Attempts {
            service,
            endpoint,
            options,
            context,
            started,
            deadline: deadline_of(&self.inner.options, options, context, started),
        }
    }

    /// A call over the network, with its retries; the first attempt goes to
    /// `first` if it is given.
    async fn over_network<Req, Rsp>(&self, call: Attempts<'_>, first: Option<Target>, request: Req) -> Result<Rsp>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let Attempts {
            service,
            endpoint,
            options,
            context,
            started,
            deadline,
        } = call;
        let retries = options.retries.unwrap_or(self.inner.options.retries);
        let policy = options.retry.unwrap_or(self.inner.options.retry);
        let mut tried: Vec<String> = Vec::new();
        let mut encoded: Option<(Codec, Bytes)> = None;
        let mut last: Option<Error> = None;
        let mut next = first;
        for attempt in 0..=retries {
            if attempt > 0 {
                let wait = backoff(attempt);
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let target = match next.take() {
                Some(target) => target,
                None => self.resolve(service, options, &tried).await?,
            };
            if let Some(shared) = self.local_server(&target) {
                return self.in_place(&shared, &call, &target, request).await;
            }
            let body = match &encoded {
                Some((codec, body)) if *codec == target.codec => body.clone(),
                _ => {
                    let body = encode_request(target.codec, endpoint, &request)?;
                    encoded = Some((target.codec, body.clone()));
                    body
                }
            };
            let outcome = if target.mux {
                self.send_mux(service, endpoint, &target, deadline, context, options, &body)
                    .await
            } else {
                let sequence = (!target.micro).then(|| self.inner.sequence.fetch_add(1, Ordering::Relaxed));
                let now = if attempt == 0 { started } else { Instant::now() };
                let headers = request_headers(
                    service,
                    endpoint,
                    sequence,
                    target.codec,
                    Some(deadline.saturating_duration_since(now)),
                    context,
                    options,
                );
                self.inner
                    .transport
                    .round_trip(target.address(), headers, body, deadline)
                    .await
            };
            let result = outcome.and_then(|inbound| decode_response(target.codec, inbound));
            self.mark(service, &target, result.as_ref().err());
            let failure = match result {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            debug!(service, endpoint, attempt, node = %target.key(), address = %target.address(), code = failure.error.code, detail = %failure.error.detail, "attempt failed");
            if !retryable(&failure, options.idempotent, policy) || Instant::now() >= deadline {
                return Err(failure.error);
            }
            tried.push(target.key().to_owned());
            last = Some(failure.error);
        }
        Err(last
            .unwrap_or_else(|| Error::timeout(CLIENT_ID, "call timeout: the deadline passed before the first attempt")))
    }

    /// An attempt on a node this process serves: the handler runs here, and
    /// the request and response values move rather than being encoded. It is
    /// not retried: an answer was given. Not an `async fn`, whose future would
    /// keep its arguments beside the call it builds from them.
    fn in_place<'a, Req, Rsp>(
        &'a self,
        shared: &Shared,
        call: &Attempts<'a>,
        target: &'a Target,
        request: Req,
    ) -> impl Future<Output = Result<Rsp>> + 'a
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let service = call.service;
        let unary = crate::server::Unary {
            service: Some(shared.service_name(service)),
            codec: target.codec,
            metadata: outbound_metadata(call.context, call.options).into(),
            deadline: Some(call.deadline),
            message: Message::Value(Box::new(request)),
        };
        call_local(shared, call.endpoint, unary).map(move |result| {
            self.mark(service, target, result.as_ref().err());
            result.map_err(|failure| failure.error)
        })
    }

    /// This process's server of the picked node, when calls to it run in place.
    fn local_server(&self, target: &Target) -> Option<Arc<Shared>> {
        if !self.inner.options.local_calls {
            return None;
        }
        self.inner.options.in_process.find(target.address())
    }

    /// One attempt over mux.
    #[allow(clippy::too_many_arguments)]
    async fn send_mux(
        &self,
        service: &str,
        endpoint: &str,
        target: &Target,
        deadline: Instant,
        context: Option<&Context>,
        options: &CallOptions,
        body: &[u8],
    ) -> std::result::Result<Answer, Failure> {
        let forwarded = context.into_iter().flat_map(Context::forwarded_metadata);
        let metadata = forwarded.chain(options.metadata.iter());
        let timeout = deadline.saturating_duration_since(Instant::now());
        let frame = call_frame(
            service,
            endpoint,
            target.codec.content_type(),
            Some(timeout),
            metadata,
            body,
        )
        .map_err(|error| Failure::new(error, Delivery::NotSent))?;
        self.inner.mux.round_trip(target.address(), frame, deadline).await
    }

    async fn resolve(&self, service: &str, options: &CallOptions, tried: &[String]) -> Result<Target> {
        let forced = options.codec.or(self.inner.options.codec);
        if !options.address.is_empty() {
            let fresh: Vec<&String> = options.address.iter().filter(|a| !tried.contains(a)).collect();
            let pool: Vec<&String> = if fresh.is_empty() {
                options.address.iter().collect()
            } else {
                fresh
            };
            let address = pool[fastrand::usize(..pool.len())].clone();
            return Ok(Target {
                place: Place::Fixed(address),
                codec: forced.unwrap_or(Codec::Json),
                mux: false,
                micro: false,
            });
        }
        let services = self
            .inner
            .cache
            .lookup(service)
            .await
            .map_err(|e| self.lookup_error(service, e))?;
        let Some((picked_service, node)) = self.inner.selector.select(&services, &options.filters, tried) else {
            let filters: Vec<String> = options.filters.iter().map(ToString::to_string).collect();
            return Err(Error::internal_server_error(
                CLIENT_ID,
                format!(
                    "service {service}: no node passes the call's filters ({}); the registry lists {} node(s)",
                    filters.join(", "),
                    services.iter().map(|s| s.nodes.len()).sum::<usize>()
                ),
            ));
        };
        let service = services.iter().position(|s| std::ptr::eq(s, picked_service));
        let node = service.and_then(|i| services[i].nodes.iter().position(|n| std::ptr::eq(n, node)));
        let Some(((service, node), wire)) = service
            .zip(node)
            .and_then(|(service, node)| Some(((service, node), services.wire(service, node)?)))
        else {
            return Err(Error::internal_server_error(
                CLIENT_ID,
                "the selector picked a node outside the lookup",
            ));
        };
        let codec = forced.unwrap_or(wire.codec);
        let mux = self.inner.options.mux && codec != Codec::JsonRpc && wire.mux;
        Ok(Target {
            place: Place::Node {
                services,
                service,
                node,
            },
            codec,
            mux,
            micro: wire.micro,
        })
    }

    /// Tells the selector (and, for refused connections, the registry) how
    /// the attempt on `target` went.
    fn mark(&self, service: &str, target: &Target, failure: Option<&Failure>) {
        let Some(node) = target.node() else { return };
        let outcome = match failure {
            None => Outcome::Answered,
            Some(f) => match f.delivery {
                Delivery::Answered => Outcome::Answered,
                Delivery::NotSent => Outcome::Unreachable,
                Delivery::Unknown if f.error.code == 408 => Outcome::TimedOut,
                Delivery::Unknown => Outcome::Unreachable,
            },
        };
        self.inner.selector.mark(&node.id, outcome);
        if outcome == Outcome::Unreachable {
            self.inner.registry.report_unreachable(service, node);
        }
    }

    fn lookup_error(&self, service: &str, error: RegistryError) -> Error {
        let detail = match error {
            RegistryError::NotFound { .. } => error.to_string(),
            other => format!("cannot look up service {service}: {other}"),
        };
        Error::internal_server_error(CLIENT_ID, detail)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.inner.registry.name())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    /// A client discovering services over mDNS, the default registry. The
    /// mDNS daemon starts on the first lookup, not before.
    fn default() -> Self {
        Client::new(Arc::new(MdnsRegistry::new()))
    }
}

/// The earliest of the call's timeout and the context's deadline.
fn deadline_of(client: &ClientOptions, call: &CallOptions, context: Option<&Context>, now: Instant) -> Instant {
    let timeout = call.timeout.unwrap_or(client.request_timeout);
    let own = now
        .checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86_400 * 365));
    match context.and_then(Context::deadline) {
        Some(inherited) => own.min(inherited),
        None => own,
    }
}

fn encode_request<Req: Serialize + ?Sized>(codec: Codec, endpoint: &str, request: &Req) -> Result<Bytes> {
    let body = codec.encode(request).map_err(|e| e.into_error(CLIENT_ID))?;
    match codec {
        Codec::JsonRpc => jsonrpc::encode_request(endpoint, 0, &body).map_err(|e| e.into_error(CLIENT_ID)),
        _ => Ok(Bytes::from(body)),
    }
}

/// The metadata a call carries: what the context forwards, then the call's own.
fn outbound_metadata(context: Option<&Context>, options: &CallOptions) -> Metadata {
    let mut metadata: Metadata = context.into_iter().flat_map(Context::forwarded_metadata).collect();
    metadata.extend(&options.metadata);
    metadata
}

/// Runs a call on this process's server; its answer is the handler's.
fn call_local<Rsp: DeserializeOwned + 'static>(
    shared: &Shared,
    endpoint: &str,
    call: crate::server::Unary,
) -> impl Future<Output = std::result::Result<Rsp, Failure>> + 'static {
    let codec = call.codec;
    let answered = |error| Failure::new(error, Delivery::Answered);
    crate::server::respond(shared, endpoint, call).map(move |response| {
        let decoded = match response.map_err(answered)?.into_message() {
            Message::Value(value) => crate::local::take::<Rsp>(value, codec),
            Message::Body(body) => codec.decode(&body),
        };
        decoded.map_err(|e| {
            answered(Error::internal_server_error(
                CLIENT_ID,
                format!("cannot decode the response: {e}"),
            ))
        })
    })
}

fn decode_response<Rsp: DeserializeOwned>(codec: Codec, inbound: Answer) -> std::result::Result<Rsp, Failure> {
    let codec = inbound.codec.unwrap_or(codec);
    let decoded = match codec {
        Codec::JsonRpc => match jsonrpc::decode_response(&inbound.body) {
            Ok(Ok(result)) => Codec::Json.decode(&result),
            Ok(Err(text)) => return Err(Failure::new(Error::parse(&text), Delivery::Answered)),
            Err(e) => Err(e),
        },
        _ => codec.decode(&inbound.body),
    };
    decoded.map_err(|e| {
        Failure::new(
            Error::internal_server_error(CLIENT_ID, format!("cannot decode the response: {e}")),
            Delivery::Answered,
        )
    })
}

/// A call's HTTP headers. `go_micro` is the call's number for a Go Micro
/// node, which is sent it (`Micro-Id`) and the service's name; a micro node
/// (`None`) needs neither: it knows its own name.
fn request_headers(
    service: &str,
    endpoint: &str,
    go_micro: Option<u64>,
    codec: Codec,
    timeout: Option<Duration>,
    context: Option<&Context>,
    options: &CallOptions,
) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(8 + options.metadata.len());
    let mut put = |name: &str, value: &str| match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        (Ok(name), Ok(value)) => {
            map.insert(name, value);
        }
        _ => debug!(name, "metadata that is not a valid header is not sent"),
    };
    if let Some(context) = context {
        for (k, v) in context.forwarded_metadata() {
            put(k, v);
        }
    }
    for (k, v) in options.metadata.iter() {
        put(k, v);
    }
    // Go Micro's client also sends `Accept`, which nothing reads.
    map.insert(header::CONTENT_TYPE, codec.header_value());
    if let Some(sequence) = go_micro {
        map.insert(names::ID, HeaderValue::from(sequence));
        if let Ok(value) = HeaderValue::try_from(service) {
            map.insert(names::SERVICE, value);
        }
    }
    if let Ok(value) = HeaderValue::try_from(endpoint) {
        map.insert(names::ENDPOINT, value);
    }
    if let Some(timeout) = timeout {
        map.insert(
            names::TIMEOUT,
            HeaderValue::from(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn inherited_deadline_wins_when_earlier() {
        let ctx = Context::new().with_timeout(Duration::from_secs(2));
        let deadline = deadline_of(
            &ClientOptions::default(),
            &CallOptions::default(),
            Some(&ctx),
            Instant::now(),
        );
        assert_eq!(deadline - Instant::now(), Duration::from_secs(2));
        let call = CallOptions {
            timeout: Some(Duration::from_secs(1)),
            ..CallOptions::default()
        };
        let deadline = deadline_of(&ClientOptions::default(), &call, Some(&ctx), Instant::now());
        assert_eq!(deadline - Instant::now(), Duration::from_secs(1));
    }

    #[test]
    fn headers_carry_forwarded_metadata_and_timeout() {
        let ctx = Context::new()
            .with_metadata("X-User", "alice")
            .with_metadata("Micro-Id", "99");
        let options = CallOptions::default();
        let map = request_headers(
            "greeter",
            "Greeter.Hello",
            Some(7),
            Codec::Json,
            Some(Duration::from_secs(1)),
            Some(&ctx),
            &options,
        );
        assert_eq!(map["x-user"], "alice");
        assert_eq!(map["micro-id"], "7");
        assert_eq!(map["micro-endpoint"], "Greeter.Hello");
        let ns: u64 = map["timeout"].to_str().unwrap().parse().unwrap();
        assert!(ns > 900_000_000 && ns <= 1_000_000_000, "{ns}");
    }
}
