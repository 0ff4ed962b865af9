//! Where an attempt goes: a node the selector picks from the registry
//! cache (or one of the call's fixed addresses), with what the cache read of
//! it once (codec, mux, micro), and how the attempt went, told back to the
//! selector and the registry.

use std::sync::Arc;

use super::{CallOptions, Client};
use crate::codec::Codec;
use crate::error::{CLIENT_ID, Error, Result};
use crate::registry::cache::Snapshot;
use crate::registry::{Node, RegistryError};
use crate::selector::{Outcome, Pool};
use crate::transport::{Delivery, Failure, Transport};

/// Where one attempt goes.
#[derive(Clone)]
pub(super) struct Target {
    place: Place,
    pub(super) codec: Codec,
    /// Whether the node serves mux.
    pub(super) mux: bool,
    /// Whether the node is a micro node (see `registry::wire`).
    pub(super) micro: bool,
}

/// A fixed address, or a registry node (found in the shared lookup result,
/// not copied).
#[derive(Clone)]
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
    pub(super) fn node(&self) -> Option<&Node> {
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
    pub(super) fn address(&self) -> &str {
        match (&self.place, self.node()) {
            (Place::Fixed(address), _) => address,
            (_, Some(node)) => &node.address,
            (_, None) => "",
        }
    }

    /// The node id, or the address for fixed addresses.
    pub(super) fn key(&self) -> &str {
        self.node().map_or_else(|| self.address(), |node| node.id.as_str())
    }
}

impl Client {
    pub(super) async fn resolve(&self, service: &str, options: &CallOptions, tried: &[String]) -> Result<Target> {
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
        // The nodes this call has not tried are preferred; once it tried
        // every one, the last one tried is avoided.
        let untried = |node: &Node| !tried.contains(&node.id);
        let not_last = |node: &Node| tried.last() != Some(&node.id);
        let mut pool = Pool::new(&services, &options.filters);
        if !tried.is_empty() {
            pool = pool.prefer(&untried).prefer(&not_last);
        }
        let Some((picked_service, node)) = self.inner.selector.select(&pool) else {
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
    /// the attempt on `target` went; nothing when a client layer failed it
    /// before it reached the node.
    pub(super) fn mark(&self, service: &str, target: &Target, failure: Option<&Failure>) {
        let Some(node) = target.node() else { return };
        if failure.is_some_and(|f| f.refused) {
            return;
        }
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

    /// The transport that carries calls to `target`: mux to the nodes that
    /// serve it (when the client uses mux and the codec is not JSON-RPC),
    /// Go Micro's HTTP transport otherwise.
    pub(super) fn transport(&self, target: &Target) -> &dyn Transport {
        if target.mux { &self.inner.mux } else { &self.inner.http }
    }
}
