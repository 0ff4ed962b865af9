//! The RPC client: resolve a service through the registry, pick a node,
//! call it over the transport the node serves, retry what is safe to retry.
//!
//! - [`options`](ClientOptions): the settings, with Go Micro v5's defaults.
//! - `call`: one call and its options, built then awaited.
//! - `target` and `attempt`: which node an attempt goes to, and the one
//!   attempt loop (retries, backoff, deadline) every call goes through.
//! - `unary`, `stream`, `publish`: the three kinds of call.
//! - `layered`: the [`CallAttempt`] that the client's layers
//!   ([`ClientOptions::layer`]) see around each attempt, and the innermost
//!   service that sends it.
//! - [`retry`]: which failures are tried again, and Go Micro's backoff.

mod attempt;
pub mod breaker;
mod call;
mod layered;
mod options;
mod publish;
pub mod retry;
mod stream;
mod target;
mod unary;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use tower::util::BoxCloneSyncService;

pub use call::{Bidirectional, Call, CallOptions, ClientStreaming, Mode, ServerStreaming, Unary};
pub use layered::{AttemptService, Attempted, CallAttempt};
pub use options::ClientOptions;
pub use publish::{Publish, Publisher};

use crate::broker::{Broker, HttpBroker};
use crate::registry::{CacheRegistry, MdnsRegistry, Registry};
use crate::selector::{self, Selector};
use crate::transport::http::client::{HttpTransport, TransportOptions};
use crate::transport::mux::client::{MuxClient, MuxOptions};

/// Calls services by name. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    options: ClientOptions,
    registry: Arc<dyn Registry>,
    cache: CacheRegistry,
    selector: Arc<dyn Selector>,
    /// Go Micro's HTTP transport, and the HTTP/2 streams.
    http: HttpTransport,
    /// mux, to the micro nodes that serve it.
    mux: MuxClient,
    sequence: AtomicU64,
    broker: OnceLock<Arc<dyn Broker>>,
    /// The layers around each attempt, if the options add any. The stack
    /// holds no client: each attempt carries its own.
    layers: Option<AttemptService>,
}

impl Client {
    /// A client resolving services through `registry`, with default options.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self::with_options(registry, ClientOptions::default())
    }

    /// A client with `options`.
    pub fn with_options(registry: Arc<dyn Registry>, options: ClientOptions) -> Self {
        let http = HttpTransport::new(&TransportOptions {
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
        let layers = options.layers.wrap(BoxCloneSyncService::new(layered::Transmit));
        Client {
            inner: Arc::new(Inner {
                layers,
                mux,
                selector: options
                    .node_selector
                    .clone()
                    .unwrap_or_else(|| selector::for_strategy(options.selector)),
                cache: CacheRegistry::new(Arc::clone(&registry)),
                options,
                registry,
                http,
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
