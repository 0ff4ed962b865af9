//! A circuit breaker per node, as a client layer: after `threshold`
//! consecutive failed attempts on a node, its circuit opens and attempts on
//! it are refused at once for `cooldown` (the call goes on to another node,
//! as for a request never sent); then one attempt is let through as a probe
//! (half-open): its success closes the circuit, its failure opens it again.
//!
//! A failure is what says the node is unwell: a timeout (408), a server
//! error (5xx) or no answer at all. A 4xx answer is the request's fault and
//! counts as a success.
//!
//! ```
//! use micro::client::{ClientOptions, breaker::CircuitBreakerLayer};
//! use std::time::Duration;
//!
//! let options = ClientOptions::default().layer(CircuitBreakerLayer::new(5, Duration::from_secs(10)));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::{info, warn};

use super::{Attempted, CallAttempt};
use crate::BoxFuture;
use crate::error::{CLIENT_ID, Error};

/// A layer keeping a circuit per node; see the [module docs](self).
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    circuits: Arc<Mutex<HashMap<String, Circuit>>>,
    threshold: u32,
    cooldown: Duration,
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("threshold", &self.threshold)
            .field("cooldown", &self.cooldown)
            .finish_non_exhaustive()
    }
}

/// One node's circuit.
#[derive(Debug, Default)]
struct Circuit {
    /// Failures in a row.
    failures: u32,
    /// Open until then.
    open_until: Option<Instant>,
    /// Whether the half-open probe is out.
    probing: bool,
}

impl CircuitBreakerLayer {
    /// Opens a node's circuit after `threshold` consecutive failures (at
    /// least 1), for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreakerLayer {
            circuits: Arc::default(),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    fn circuits(&self) -> MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt on `node` may go now; a refusal says why not.
    fn admit(&self, node: &str) -> Result<(), Error> {
        let mut circuits = self.circuits();
        let Some(circuit) = circuits.get_mut(node) else {
            return Ok(());
        };
        match circuit.open_until {
            None => Ok(()),
            Some(until) if Instant::now() < until => Err(Error::service_unavailable(
                CLIENT_ID,
                format!("circuit open for node {node} after repeated failures"),
            )),
            Some(_) if circuit.probing => Err(Error::service_unavailable(
                CLIENT_ID,
                format!("circuit half-open for node {node}: a probe is out"),
            )),
            Some(_) => {
                circuit.probing = true;
                Ok(())
            }
        }
    }

    /// Records how an attempt on `node` went.
    fn record(&self, node: &str, failed: bool) {
        let mut circuits = self.circuits();
        if !failed {
            if circuits.remove(node).is_some_and(|c| c.open_until.is_some()) {
                info!(node, "circuit closed");
            }
            return;
        }
        let circuit = circuits.entry(node.to_owned()).or_default();
        circuit.failures += 1;
        if circuit.probing || circuit.failures >= self.threshold {
            warn!(node, failures = circuit.failures, cooldown = ?self.cooldown, "circuit opened");
            *circuit = Circuit {
                failures: 0,
                open_until: Some(Instant::now() + self.cooldown),
                probing: false,
            };
        }
    }
}

/// An admitted attempt not finished yet: if it is dropped unfinished (its
/// call gave up), a probe it was is called back so that another may go.
struct Pending {
    layer: CircuitBreakerLayer,
    node: Option<String>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(node) = self.node.take()
            && let Some(circuit) = self.layer.circuits().get_mut(&node)
        {
            circuit.probing = false;
        }
    }
}

/// Whether a failed attempt says the node is unwell.
fn counts(error: &Error) -> bool {
    error.code == 408 || error.code >= 500
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> CircuitBreaker<S> {
        CircuitBreaker {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`CircuitBreakerLayer`].
#[derive(Clone, Debug)]
pub struct CircuitBreaker<S> {
    inner: S,
    layer: CircuitBreakerLayer,
}

impl<S> Service<CallAttempt> for CircuitBreaker<S>
where
    S: Service<CallAttempt, Response = Attempted, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = Attempted;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Attempted, Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: CallAttempt) -> Self::Future {
        let node = attempt
            .node()
            .map_or_else(|| attempt.address(), |n| n.id.as_str())
            .to_owned();
        if let Err(refused) = self.layer.admit(&node) {
            return Box::pin(std::future::ready(Err(refused)));
        }
        let mut pending = Pending {
            layer: self.layer.clone(),
            node: Some(node),
        };
        let attempted = self.inner.call(attempt);
        Box::pin(async move {
            let outcome = attempted.await;
            if let Some(node) = pending.node.take() {
                pending.layer.record(&node, outcome.as_ref().err().is_some_and(counts));
            }
            outcome
        })
    }
}
