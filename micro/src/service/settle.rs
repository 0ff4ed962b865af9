//! Settling a service's settings before it starts: each one from its
//! flag (command line, `MICRO_*` environment, the `--config` file's
//! `micro` section), else the builder, else the default; bad values are
//! reported here, before anything binds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::backends::{
    broker_choice, broker_from_flag, check_choice, default_broker, default_registry, registry_from_flag,
};
use super::events::Events;
use super::{DEFAULT_REGISTER_INTERVAL, DEFAULT_REGISTER_TTL, Flags, Hooks, Service, ServiceError, events, store};
use crate::broker::Broker;
use crate::client::{Client, ClientOptions};
use crate::middleware::Layers;
use crate::observe::{Health, Observed};
use crate::registry::Registry;
use crate::selector::Strategy;
use crate::server::Server;

impl Service {
    pub(super) fn flag_values(&self) -> Flags {
        self.flags.clone().unwrap_or_default()
    }

    pub(super) fn resolved_registry(&self) -> Arc<dyn Registry> {
        // A bad --registry value is reported by start(); until then the
        // builder's registry or the default stands.
        let flags = self.flag_values();
        match registry_from_flag(&flags) {
            Ok(Some(registry)) => registry,
            _ => self.registry.clone().unwrap_or_else(|| default_registry(&flags)),
        }
    }

    pub(super) fn resolved_broker(&self, registry: &Arc<dyn Registry>) -> Arc<dyn Broker> {
        // A bad --broker value is reported by start(), as for the registry.
        let flags = self.flag_values();
        match broker_from_flag(&flags, registry) {
            Ok(Some(broker)) => broker,
            _ => self.broker.clone().unwrap_or_else(|| default_broker(&flags, registry)),
        }
    }

    pub(super) fn resolved_client_options(&self) -> ClientOptions {
        let flags = self.flag_values();
        let mut options = self.client_options.clone();
        if let Some(t) = flags.client_request_timeout {
            options.request_timeout = t;
        }
        if let Some(r) = flags.client_retries {
            options.retries = r;
        }
        if let Some(s) = flags.client_pool_size {
            options.pool_size = s;
        }
        if let Some(t) = flags.client_pool_ttl {
            options.pool_ttl = t;
        }
        if let Some(strategy) = flags.selector.as_deref().and_then(|s| s.parse::<Strategy>().ok()) {
            options.selector = strategy;
        }
        options
    }

    /// Checks the flags and settles every setting: flag, then builder, then default.
    pub(super) fn settle(mut self) -> Result<Settled, ServiceError> {
        let flags = self.flags.clone().map_err(ServiceError::Flags)?;
        check_choice("client", flags.client.as_deref(), &["rpc", "mucp"])?;
        check_choice("server", flags.server.as_deref(), &["rpc", "mucp"])?;
        check_choice("transport", flags.transport.as_deref(), &["http"])?;
        if let Some(s) = flags.selector.as_deref() {
            s.parse::<Strategy>().map_err(ServiceError::Flags)?;
        }
        registry_from_flag(&flags).map_err(ServiceError::Flags)?;
        broker_choice(&flags).map_err(ServiceError::Flags)?;
        events::check(&flags)?;
        store::check(&flags)?;
        let events_flags = flags.clone();
        for (k, v) in flags.metadata_pairs().map_err(ServiceError::Flags)? {
            self.metadata.insert(k, v);
        }
        let client = self.client();
        let mut server_options = self.server_options.clone();
        if let Some(limit) = flags.server_body_limit {
            server_options.body_limit = limit;
        }
        if let Some(drain) = flags.server_drain_timeout {
            server_options.drain_timeout = drain;
        }
        let name = self.name().to_owned();
        // Its client calls it in place when local calls are on.
        let in_process = client.options().in_process.clone();
        let metrics = self.metrics();
        let mut observe = self.observe;
        if let Some(limit) = flags.server_max_concurrent_calls {
            observe.max_concurrent_calls = limit;
        }
        let subscribes = self
            .handlers
            .iter()
            .any(|h| h.descriptor().subscribers().iter().any(|s| s.consumption().is_none()));
        let broker = subscribes.then(|| Arc::clone(client.broker()));
        let observed = Observed::new(metrics, observe, broker);
        let mut server = Server::new(server_options)
            .named(name.as_str())
            .in_process(in_process)
            .with_defaults(observed.defaults())
            .with_layers(Layers::default(), observed.subscriber_layers())
            .with_layers(self.layers, self.subscriber_layers)
            .with_pages(observed.pages());
        for handler in &self.handlers {
            server.add(Arc::clone(handler))?;
        }
        if let Some(debug) = observed.debug_handler()
            && !self.handlers.iter().any(|h| h.descriptor().name() == "Debug")
        {
            server.add(debug)?;
        }
        let id = flags
            .server_id
            .or(self.id)
            .unwrap_or_else(|| format!("{name}-{}", uuid::Uuid::new_v4()));
        Ok(Settled {
            version: flags
                .server_version
                .or(self.version)
                .unwrap_or_else(|| "latest".to_owned()),
            address: crate::net::normalize_address(
                &flags.server_address.or(self.address).unwrap_or_else(|| ":0".to_owned()),
            ),
            advertise: flags.server_advertise.or(self.advertise),
            register_ttl: flags.register_ttl.or(self.register_ttl).unwrap_or(DEFAULT_REGISTER_TTL),
            register_interval: flags
                .register_interval
                .or(self.register_interval)
                .unwrap_or(DEFAULT_REGISTER_INTERVAL),
            registry: Arc::clone(client.registry()),
            broker: Arc::clone(client.broker()),
            metadata: self.metadata,
            server,
            client,
            health: observed.health,
            hooks: self.hooks,
            events: self.events,
            flags: events_flags,
            name,
            id,
        })
    }
}

/// Every setting of a service, decided.
pub(crate) struct Settled {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) id: String,
    pub(super) address: String,
    pub(super) advertise: Option<String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) register_ttl: Duration,
    pub(super) register_interval: Duration,
    pub(super) registry: Arc<dyn Registry>,
    pub(super) broker: Arc<dyn Broker>,
    pub(super) server: Server,
    pub(super) client: Client,
    pub(super) health: Health,
    pub(super) hooks: Hooks,
    pub(super) events: Events,
    pub(super) flags: Flags,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_builder() {
        let flags = Flags::parse_from(["svc", "--server_name", "other", "--server_version", "2"]).unwrap();
        let settled = Service::new("svc").version("1").flags(flags).settle().unwrap();
        assert_eq!((settled.name.as_str(), settled.version.as_str()), ("other", "2"));
        assert!(settled.id.starts_with("other-"));
    }

    #[test]
    fn unknown_broker_is_reported() {
        let flags = Flags::parse_from(["svc", "--broker", "kafka"]).unwrap();
        let err = Service::new("svc").flags(flags).settle().err().unwrap();
        assert!(err.to_string().contains("kafka"), "{err}");
    }

    #[test]
    fn broker_flag_chooses_the_broker() {
        let flags = Flags::parse_from(["svc", "--broker", "memory", "--registry", "memory"]).unwrap();
        let settled = Service::new("svc").flags(flags).settle().unwrap();
        assert_eq!(settled.broker.name(), "memory");
        assert_eq!(settled.client.broker().name(), "memory");
        let settled = Service::new("svc").flags(Flags::none()).settle().unwrap();
        assert_eq!(settled.broker.name(), "http");
    }

    #[test]
    fn unknown_registry_is_reported() {
        let flags = Flags::parse_from(["svc", "--registry", "consul"]).unwrap();
        let err = Service::new("svc").flags(flags).settle().err().unwrap();
        assert!(err.to_string().contains("consul"), "{err}");
    }
}
