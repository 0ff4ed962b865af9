//! The service: a server, a client and a registry under one name, with Go
//! Micro's lifecycle.
//!
//! `run()` binds the address, subscribes the `#[subscribe]` methods on the
//! broker, registers the node with a TTL, re-registers it every interval,
//! waits for SIGINT or SIGTERM, then deregisters, unsubscribes, stops
//! accepting, drains in-flight calls within the drain time and closes.

mod backends;
mod config;
mod events;
mod flags;
mod running;
mod settings;
mod settle;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use flags::Flags;
pub use running::Running;

use self::config::Configs;
use self::events::Events;
use self::store::Stores;

use crate::BoxFuture;
use crate::broker::Broker;
use crate::client::{Client, ClientOptions};
use crate::error::Error;
use crate::middleware::Layers;
use crate::observe::{Check, Metrics, Observe};
use crate::registry::Registry;
use crate::server::{
    DuplicateHandler, Handler, HandlerCall, HandlerService, Response, ServerOptions, SubscriberCall, SubscriberService,
};
use tower::{BoxError, Layer};

/// Go Micro's default registration TTL.
pub const DEFAULT_REGISTER_TTL: Duration = Duration::from_secs(90);
/// Go Micro's default re-registration interval.
pub const DEFAULT_REGISTER_INTERVAL: Duration = Duration::from_secs(30);

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, crate::Result<()>> + Send>;

/// Why a service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A flag or environment variable has a bad value.
    #[error("bad flag: {0}")]
    Flags(String),
    /// Two handlers share a name.
    #[error(transparent)]
    DuplicateHandler(#[from] DuplicateHandler),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Registration failed.
    #[error("cannot register {service}: {message}")]
    Register {
        /// The service name.
        service: String,
        /// What the registry said.
        message: String,
    },
    /// The broker could not be reached or subscribed to.
    #[error("broker {broker}: {message}")]
    Broker {
        /// The broker's name.
        broker: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The event stream could not be opened or consumed.
    #[error("events: {0}")]
    Events(#[from] crate::events::EventsError),
    /// The store failed to open.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The config failed to load.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A start or stop hook failed.
    #[error("{stage} hook failed: {error}")]
    Hook {
        /// `before_start`, `after_start`, `before_stop` or `after_stop`.
        stage: &'static str,
        /// The hook's error.
        error: Error,
    },
}

impl From<ServiceError> for Error {
    fn from(err: ServiceError) -> Error {
        match err {
            ServiceError::Hook { error, .. } => error,
            other => Error::internal_server_error("go.micro.service", other.to_string()),
        }
    }
}

/// A service being configured. Configure it, then [`run`](Service::run) it.
///
/// ```no_run
/// # struct Helloworld;
/// # impl micro::server::Handler for Helloworld {
/// #     fn descriptor(&self) -> &'static micro::server::ServiceDescriptor { unimplemented!() }
/// #     fn call(self: std::sync::Arc<Self>, _: micro::server::Request)
/// #         -> micro::BoxFuture<'static, micro::Result<micro::server::Response>> { unimplemented!() }
/// # }
/// # async fn demo() -> micro::Result<()> {
/// micro::Service::new("helloworld")
///     .address("127.0.0.1:8080")
///     .handle(Helloworld)
///     .run()
///     .await
/// # }
/// ```
#[must_use = "a service does nothing until it is run"]
pub struct Service {
    name: String,
    version: Option<String>,
    id: Option<String>,
    address: Option<String>,
    advertise: Option<String>,
    metadata: BTreeMap<String, String>,
    flags: Result<Flags, String>,
    registry: Option<Arc<dyn Registry>>,
    broker: Option<Arc<dyn Broker>>,
    events: Events,
    stores: Stores,
    configs: Configs,
    register_ttl: Option<Duration>,
    register_interval: Option<Duration>,
    client_options: ClientOptions,
    server_options: ServerOptions,
    handlers: Vec<Arc<dyn Handler>>,
    layers: Layers<HandlerCall, Response>,
    subscriber_layers: Layers<SubscriberCall, ()>,
    observe: Observe,
    /// Shared by the server's and the client's layers, made on first use.
    metrics: OnceLock<Option<Metrics>>,
    client: OnceLock<Client>,
    hooks: Hooks,
}

#[derive(Default)]
struct Hooks {
    before_start: Vec<Hook>,
    after_start: Vec<Hook>,
    before_stop: Vec<Hook>,
    after_stop: Vec<Hook>,
}

macro_rules! hook_setter {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name<F, Fut>(mut self, hook: F) -> Self
            where
                F: FnOnce() -> Fut + Send + 'static,
                Fut: Future<Output = crate::Result<()>> + Send + 'static,
            {
                self.hooks.$name.push(Box::new(move || Box::pin(hook())));
                self
            }
        )*
    };
}

impl Service {
    /// A service named `name` (the registry name callers use), reading Go
    /// Micro's flags and `MICRO_*` variables from the process, as Go Micro's
    /// `service.Init()` does. Arguments that are not micro flags are ignored.
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            version: None,
            id: None,
            address: None,
            advertise: None,
            metadata: BTreeMap::new(),
            flags: Flags::from_env().map_err(|e| e.to_string()),
            registry: None,
            broker: None,
            events: Events::new(None),
            stores: Stores::new(None),
            configs: Configs::default(),
            register_ttl: None,
            register_interval: None,
            client_options: ClientOptions::default(),
            server_options: ServerOptions::default(),
            handlers: Vec::new(),
            layers: Layers::default(),
            subscriber_layers: Layers::default(),
            observe: Observe::default(),
            metrics: OnceLock::new(),
            client: OnceLock::new(),
            hooks: Hooks::default(),
        }
    }

    /// Uses `flags` instead of the process's arguments and environment
    /// ([`Flags::none`] for none at all).
    pub fn flags(mut self, flags: Flags) -> Self {
        self.flags = Ok(flags);
        self.metrics = OnceLock::new();
        self.client = OnceLock::new();
        self
    }

    /// The version registered (default `latest`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The node id (default `<name>-<uuid>`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The address to listen on: `host:port`, or `:port` for every interface
    /// (default `:0`, any free port).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// The address registered, when callers must use another one than the
    /// bound address (NAT, containers).
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// Adds node metadata.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Serves `handler`, a `#[micro::service]` type.
    pub fn handle<H: Handler>(mut self, handler: H) -> Self {
        self.handlers.push(Arc::new(handler));
        self
    }

    /// Serves a shared handler.
    pub fn handle_arc(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handlers.push(handler);
        self
    }

    /// Adds a layer around every handler call, inside the layers added
    /// before it (see [`crate::middleware`]).
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

    /// Adds a layer around every message delivered to a `#[subscribe]`
    /// method, inside the layers added before it.
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

    /// What observability the service installs (default: all of it; see
    /// [`crate::observe`]).
    pub fn observe(mut self, observe: Observe) -> Self {
        self.observe = observe;
        self.metrics = OnceLock::new();
        self.client = OnceLock::new();
        self
    }

    /// Adds a critical health check to `GET /health/ready`.
    pub fn health_check(mut self, check: Check) -> Self {
        self.observe.checks.push(check);
        self
    }

    /// The registry to register with and resolve through (default mDNS);
    /// the `--registry` flag wins over it. Set it before taking
    /// [`client`](Service::client).
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self.client = OnceLock::new();
        self
    }

    /// The broker for `#[subscribe]` methods and for publishing through
    /// [`client`](Service::client) (default: the HTTP broker on the
    /// service's registry); the `--broker` flag wins over it. Set it before
    /// taking the client.
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self.client = OnceLock::new();
        self
    }

    /// The event stream for `#[consume]` methods and [`events`](Service::events)
    /// (default: the embedded durable log in the service's data directory);
    /// the `--events` flag wins over it. Set it before `events`.
    pub fn stream(mut self, stream: Arc<dyn crate::events::Stream>) -> Self {
        self.events = Events::new(Some(stream));
        self
    }

    /// A publisher on the service's event stream, opened now if it was not
    /// yet; the service's consumers share the stream.
    pub async fn events(&self) -> Result<crate::events::Publisher, ServiceError> {
        let flags = self.flags.clone().map_err(ServiceError::Flags)?;
        self.events.publisher(&flags, &self.name).await
    }

    /// The store for [`store`](Service::store) (default: the embedded file
    /// store in the service's data directory); the `--store` flag wins over
    /// it.
    pub fn with_store(mut self, store: Arc<dyn crate::store::Store>) -> Self {
        self.stores = Stores::new(Some(store));
        self
    }

    /// The service's store, opened now if it was not yet: the one `--store`
    /// names, else [`with_store`](Service::with_store)'s, else a file store
    /// in the data directory. Its default table is the service's name
    /// (`--store_table`), its database `micro` (`--store_database`).
    pub async fn store(&self) -> Result<Arc<dyn crate::store::Store>, ServiceError> {
        let flags = self.flags.clone().map_err(ServiceError::Flags)?;
        self.stores.store(&flags, &self.name).await
    }

    /// Adds a source to the service's [`config`](Service::config), after
    /// the `--config` file and the sources added before it (later sources
    /// win).
    pub fn config_source(mut self, source: impl crate::config::Source) -> Self {
        self.configs.add(Arc::new(source));
        self
    }

    /// Uses `config` as the service's config, instead of the `--config`
    /// file and the added sources.
    pub fn with_config(mut self, config: crate::config::Config) -> Self {
        self.configs = Configs::chosen(config);
        self
    }

    /// The service's config, loaded now if it was not yet: the `--config`
    /// file (JSON, YAML or TOML, watched for changes), then the sources
    /// added with [`config_source`](Service::config_source), in order; or
    /// the one given to [`with_config`](Service::with_config). Pass it (it
    /// is a cheap handle) to the handlers that read settings.
    pub async fn config(&self) -> Result<crate::config::Config, ServiceError> {
        let flags = self.flags.clone().map_err(ServiceError::Flags)?;
        self.configs.config(&flags).await
    }

    /// How long a registration lives without renewal (default 90 s).
    pub fn register_ttl(mut self, ttl: Duration) -> Self {
        self.register_ttl = Some(ttl);
        self
    }

    /// How often the node registers again (default 30 s).
    pub fn register_interval(mut self, interval: Duration) -> Self {
        self.register_interval = Some(interval);
        self
    }

    /// Client settings; flags win over them.
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = options;
        self.client = OnceLock::new();
        self
    }

    /// Server limits; flags win over them.
    pub fn server(mut self, options: ServerOptions) -> Self {
        self.server_options = options;
        self
    }

    hook_setter! {
        /// Runs before the server starts; an error aborts the start.
        before_start;
        /// Runs once the node is registered; an error stops the service.
        after_start;
        /// Runs when a stop begins; errors are logged.
        before_stop;
        /// Runs once the server is closed; errors are logged.
        after_stop;
    }

    /// The service name.
    pub fn name(&self) -> &str {
        match &self.flags {
            Ok(Flags {
                server_name: Some(name),
                ..
            }) => name,
            _ => &self.name,
        }
    }

    /// A client sharing this service's registry, broker and client options.
    /// Calls made from inside handlers inherit the handler's metadata and
    /// deadline.
    pub fn client(&self) -> Client {
        self.client
            .get_or_init(|| {
                let registry = self.resolved_registry();
                let mut options = self.resolved_client_options();
                options.broker = Some(self.resolved_broker(&registry));
                if let Some(metrics) = self.metrics() {
                    options = options.outermost_layer(metrics.client_layer());
                }
                Client::with_options(registry, options)
            })
            .clone()
    }

    /// The service's metrics, unless they are off.
    fn metrics(&self) -> Option<Metrics> {
        self.metrics
            .get_or_init(|| {
                let name = self.name();
                self.observe.metrics.then(|| match self.observe.go_micro_names {
                    true => Metrics::with_go_micro_names(name),
                    false => Metrics::new(name),
                })
            })
            .clone()
    }

    /// Binds, registers and starts serving; returns the running service.
    pub async fn start(self) -> Result<Running, ServiceError> {
        running::start(self.settle()?).await
    }

    /// Starts, then serves until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run(self) -> crate::Result<()> {
        self.run_until(running::wait_for_signal()).await
    }

    /// Starts, then serves until `shutdown` completes, then stops gracefully.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> crate::Result<()> {
        let running = self.start().await?;
        shutdown.await;
        running.stop().await?;
        Ok(())
    }
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("address", &self.address)
            .field(
                "handlers",
                &self.handlers.iter().map(|h| h.descriptor().name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
