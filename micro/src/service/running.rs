//! A started service: serving, registered, re-registering every interval.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::settle::Settled;
use super::{Hook, Hooks, ServiceError};
use crate::broker::Broker;
use crate::client::Client;
use crate::net::advertised_address;
use crate::observe::Health;
use crate::registry::wire::node_metadata;
use crate::registry::{self, RegisterOptions, Registry};
use crate::server::{Consuming, Drained, Handler, RunningServer, Subscribed, SubscriberService, SubscriberStats};

/// A running service. Stop it with [`stop`](Running::stop).
#[must_use = "dropping a Running service leaves it registered and serving; call stop()"]
pub struct Running {
    server: RunningServer,
    broker: Arc<dyn Broker>,
    subscribed: Option<Subscribed>,
    consuming: Option<Consuming>,
    record: registry::Service,
    registry: Arc<dyn Registry>,
    client: Client,
    health: Health,
    renewal: CancellationToken,
    renewal_task: JoinHandle<()>,
    before_stop: Vec<Hook>,
    after_stop: Vec<Hook>,
}

pub(super) async fn start(settled: Settled) -> Result<Running, ServiceError> {
    let Settled {
        name,
        version,
        id,
        address,
        advertise,
        metadata,
        register_ttl,
        register_interval,
        registry,
        broker,
        server,
        client,
        health,
        hooks,
        events,
        flags,
    } = settled;
    let Hooks {
        before_start,
        after_start,
        before_stop,
        after_stop,
    } = hooks;
    run_hooks("before_start", before_start).await?;
    let endpoints = server
        .router()
        .handlers()
        .flat_map(|h| h.descriptor().registry_endpoints())
        .collect::<Vec<_>>();
    let handlers: Vec<Arc<dyn Handler>> = server.router().handlers().cloned().collect();
    let subscriber_layers = server.subscriber_stack();
    let server_subscriber_layers = subscriber_layers.clone();
    let server = server.bind(&address).await.map_err(|source| ServiceError::Bind {
        address: address.clone(),
        source,
    })?;
    let subscribed = match subscribe(broker.as_ref(), &handlers, subscriber_layers).await {
        Ok(subscribed) => subscribed,
        Err(e) => {
            let _ = server.shutdown().await;
            return Err(e);
        }
    };
    let consuming = if Consuming::wanted(&handlers) {
        let started = match events.stream(&flags, &name).await {
            Ok(stream) => Consuming::start(&stream, &handlers, server_subscriber_layers.clone())
                .await
                .map_err(ServiceError::from),
            Err(e) => Err(e),
        };
        match started {
            Ok(consuming) => Some(consuming),
            Err(e) => {
                if let Some(subscribed) = subscribed {
                    subscribed.unsubscribe().await;
                }
                let _ = server.shutdown().await;
                return Err(e);
            }
        }
    } else {
        None
    };
    let node = registry::Node {
        id,
        address: advertised_address(advertise.as_deref(), server.local_addr()),
        metadata: node_metadata(&metadata, registry.name(), broker.name()),
    };
    let record = registry::Service {
        name: name.clone(),
        version,
        metadata: Default::default(),
        endpoints: sorted(endpoints),
        nodes: vec![node],
    };
    if let Err(e) = registry.register(&record, RegisterOptions::ttl(register_ttl)).await {
        if let Some(subscribed) = subscribed {
            subscribed.unsubscribe().await;
        }
        if let Some(consuming) = consuming {
            consuming.stop().await;
        }
        let _ = server.shutdown().await;
        return Err(ServiceError::Register {
            service: name,
            message: e.to_string(),
        });
    }
    health.set_registered(true);
    info!(service = %record.name, node = %record.nodes[0].id, address = %server.local_addr(), registry = registry.name(), "service started");
    let renewal = CancellationToken::new();
    let renewal_task = tokio::spawn(renew(
        Arc::clone(&registry),
        record.clone(),
        register_ttl,
        register_interval,
        renewal.clone(),
    ));
    let running = Running {
        server,
        broker,
        subscribed,
        consuming,
        record,
        registry,
        client,
        health,
        renewal,
        renewal_task,
        before_stop,
        after_stop,
    };
    if let Err(e) = run_hooks("after_start", after_start).await {
        let _ = running.stop().await;
        return Err(e);
    }
    Ok(running)
}

/// Connects the broker and subscribes the handlers' subscribers; nothing
/// when there are none, so a service that only publishes opens no broker
/// listener or connection.
async fn subscribe(
    broker: &dyn Broker,
    handlers: &[Arc<dyn Handler>],
    layers: Option<SubscriberService>,
) -> Result<Option<Subscribed>, ServiceError> {
    let subscribes = handlers
        .iter()
        .any(|h| h.descriptor().subscribers().iter().any(|s| s.consumption().is_none()));
    if !subscribes {
        return Ok(None);
    }
    let failed = |e: crate::broker::BrokerError| ServiceError::Broker {
        broker: broker.name(),
        message: e.to_string(),
    };
    broker.connect().await.map_err(failed)?;
    Subscribed::subscribe(broker, handlers, layers)
        .await
        .map(Some)
        .map_err(failed)
}

fn sorted(mut endpoints: Vec<registry::Endpoint>) -> Vec<registry::Endpoint> {
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    endpoints
}

/// Registers again every interval, so the TTL never runs out while running.
async fn renew(
    registry: Arc<dyn Registry>,
    record: registry::Service,
    ttl: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = registry.register(&record, RegisterOptions::ttl(ttl)).await {
            warn!(service = %record.name, error = %e, "re-registration failed; trying again next interval");
        }
    }
}

async fn run_hooks(stage: &'static str, hooks: Vec<Hook>) -> Result<(), ServiceError> {
    for hook in hooks {
        hook().await.map_err(|error| ServiceError::Hook { stage, error })?;
    }
    Ok(())
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The registry record of this node.
    pub fn record(&self) -> &registry::Service {
        &self.record
    }

    /// A client sharing the service's registry and broker.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The service's health, as `GET /health/ready` reports it.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The deliveries to each `#[subscribe]` method so far.
    pub fn subscribers(&self) -> &[Arc<SubscriberStats>] {
        self.subscribed.as_ref().map_or(&[], Subscribed::stats)
    }

    /// The deliveries to each `#[consume]` method so far.
    pub fn consumers(&self) -> &[Arc<SubscriberStats>] {
        self.consuming.as_ref().map_or(&[], Consuming::stats)
    }

    /// Deregisters, stops consuming, unsubscribes, stops accepting, drains in-flight calls
    /// within the drain time, closes, disconnects the broker, and runs the
    /// stop hooks. Hook errors are logged.
    pub async fn stop(self) -> Result<Drained, ServiceError> {
        if let Err(e) = run_hooks("before_stop", self.before_stop).await {
            error!(error = %e, "stop continues despite the hook error");
        }
        self.health.set_registered(false);
        self.renewal.cancel();
        let _ = self.renewal_task.await;
        if let Err(e) = self.registry.deregister(&self.record).await {
            warn!(service = %self.record.name, error = %e, "deregistration failed; the entry expires with its TTL");
        }
        if let Some(consuming) = self.consuming {
            consuming.stop().await;
        }
        let subscribed = self.subscribed.is_some();
        if let Some(subscriptions) = self.subscribed {
            subscriptions.unsubscribe().await;
        }
        let drained = self.server.shutdown().await;
        if subscribed && let Err(e) = self.broker.disconnect().await {
            warn!(broker = self.broker.name(), error = %e, "cannot disconnect the broker");
        }
        info!(service = %self.record.name, ?drained, "service stopped");
        if let Err(e) = run_hooks("after_stop", self.after_stop).await {
            error!(error = %e, "after_stop hook failed");
        }
        Ok(drained)
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("service", &self.record.name)
            .field("address", &self.local_addr())
            .finish_non_exhaustive()
    }
}

/// Waits for SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub(super) async fn wait_for_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => info!("SIGINT received; stopping"),
        () = terminate => info!("SIGTERM received; stopping"),
    }
}
