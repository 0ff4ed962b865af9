//! Observability: what a service tells about itself.
//!
//! - [`metrics`]: Prometheus metrics in a registry the service owns, served
//!   on `GET /metrics` of the service's port.
//! - [`health`]: `GET /health/live` and `GET /health/ready` probes.
//! - [`debug`]: Go Micro's `Debug.Health` and `Debug.Stats` endpoints.
//! - [`shed`]: load shedding, a limit of concurrent calls past which calls
//!   are refused with a 503 at once.
//!
//! A [`Service`](crate::Service) installs all of them by default (see
//! [`Service::observe`](crate::Service::observe) to change them); a bare
//! [`Server`](crate::server::Server) has none.

pub mod debug;
pub mod health;
pub mod metrics;
pub mod shed;

use std::sync::Arc;

use bytes::Bytes;

pub use self::health::{Check, Health};
pub use self::metrics::Metrics;
pub use self::shed::ShedLayer;
use crate::BoxFuture;
use crate::broker::Broker;
use crate::meter::{Defaults, Limit};
use crate::middleware::Layers;
use crate::server::{Handler, Pages, SubscriberCall};
use crate::transport::Page;

/// The pages a service answers `GET` requests on its port with.
#[derive(Debug)]
pub(crate) struct Probes {
    pub(crate) metrics: Option<Metrics>,
    pub(crate) health: Health,
}

impl Pages for Probes {
    fn get(&self, path: &str) -> Option<BoxFuture<'static, Page>> {
        match path {
            "/metrics" => {
                let text = self.metrics.as_ref()?.render();
                Some(Box::pin(std::future::ready(Page {
                    status: http::StatusCode::OK,
                    content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body: Bytes::from(text),
                })))
            }
            "/health/live" => Some(Box::pin(std::future::ready(report(self.health.live())))),
            "/health/ready" | "/health" => {
                let health = self.health.clone();
                Some(Box::pin(async move { report(health.ready().await) }))
            }
            _ => None,
        }
    }
}

fn report(report: health::Report) -> Page {
    let status = if report.is_up() {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_vec(&report).unwrap_or_default();
    Page {
        status,
        content_type: "application/json",
        body: Bytes::from(body),
    }
}

/// What observability a [`Service`](crate::Service) installs. All of it is
/// on by default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Observe {
    /// Record Prometheus metrics and serve them on `GET /metrics`.
    pub metrics: bool,
    /// Keep Go Micro's metric names too (`micro_request_total`, ..).
    pub go_micro_names: bool,
    /// Register Go Micro's `Debug` service (`Debug.Health`, `Debug.Stats`).
    pub debug: bool,
    /// The limit of concurrent calls past which calls are shed (0: none).
    pub max_concurrent_calls: usize,
    /// The application's health checks.
    pub checks: Vec<Check>,
}

impl Default for Observe {
    fn default() -> Self {
        Observe {
            metrics: true,
            go_micro_names: false,
            debug: true,
            max_concurrent_calls: shed::DEFAULT_MAX_CONCURRENT_CALLS,
            checks: Vec::new(),
        }
    }
}

impl Observe {
    /// Nothing installed: no metrics, no `Debug` service, no limit.
    pub fn none() -> Self {
        Observe {
            metrics: false,
            go_micro_names: false,
            debug: false,
            max_concurrent_calls: 0,
            checks: Vec::new(),
        }
    }
}

/// The observability of one service, as settled from its [`Observe`].
pub(crate) struct Observed {
    metrics: Option<Metrics>,
    max_concurrent_calls: usize,
    debug: bool,
    pub(crate) health: Health,
}

impl Observed {
    /// The observability of a service recording `metrics` (unless they are
    /// off); `broker` is checked for readiness when given.
    pub(crate) fn new(metrics: Option<Metrics>, observe: Observe, broker: Option<Arc<dyn Broker>>) -> Self {
        Observed {
            metrics,
            max_concurrent_calls: observe.max_concurrent_calls,
            debug: observe.debug,
            health: Health::new(broker, observe.checks),
        }
    }

    /// What the server does around every call, outside its layers: record
    /// it, then shed it when the limit is reached (a shed call is counted as
    /// a 503).
    pub(crate) fn defaults(&self) -> Defaults {
        Defaults {
            metrics: self.metrics.clone(),
            limit: (self.max_concurrent_calls > 0).then(|| Limit::new(self.max_concurrent_calls)),
        }
    }

    /// The default subscriber layers: metrics.
    pub(crate) fn subscriber_layers(&self) -> Layers<SubscriberCall, ()> {
        let mut layers = Layers::default();
        if let Some(metrics) = &self.metrics {
            layers.push(metrics.subscriber_layer());
        }
        layers
    }

    /// Go Micro's `Debug` service, if it is on.
    pub(crate) fn debug_handler(&self) -> Option<Arc<dyn Handler>> {
        if !self.debug {
            return None;
        }
        // Without metrics, its counts stay at 0.
        let metrics = self.metrics.clone().unwrap_or_else(|| Metrics::new(""));
        Some(Arc::new(debug::Debug::new(metrics)))
    }

    /// The pages served on `GET`: `/metrics` and the health probes.
    pub(crate) fn pages(&self) -> Arc<dyn Pages> {
        Arc::new(Probes {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        })
    }
}
