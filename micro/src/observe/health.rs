//! Health: the probes a scheduler polls, as Go Micro's `health` package
//! reports them.
//!
//! - `GET /health/live`: 200 `{"status":"up"}` while the process serves.
//! - `GET /health/ready` (and `/health`): runs every check at once, each
//!   within 5 s, and answers 200 when none of the critical ones failed, 503
//!   otherwise: `{"status":"up"|"down","checks":[{"name","status","error",
//!   "duration"}],"info":{..}}` (duration in nanoseconds).
//!
//! A service checks by itself that its node is registered and that its
//! broker is connected; [`Service::health_check`](crate::Service::health_check)
//! adds the application's own.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use crate::BoxFuture;
use crate::broker::Broker;

/// How long a check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A health check: `Ok` when healthy, otherwise what is wrong.
pub type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A named check; a failed critical one makes the service not ready.
#[derive(Clone)]
pub struct Check {
    name: String,
    critical: bool,
    run: CheckFn,
}

impl Check {
    /// A critical check.
    pub fn new<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Check {
            name: name.into(),
            critical: true,
            run: Arc::new(move || Box::pin(check())),
        }
    }

    /// Reported, but not failing readiness.
    #[must_use]
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .finish()
    }
}

/// A service's health: whether it is registered, its broker, its checks.
/// Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct Health(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registered: AtomicBool,
    broker: Option<BrokerCheck>,
    checks: Vec<Check>,
}

/// The broker, checked only when the service subscribes (a service that
/// only publishes connects on its first publish).
struct BrokerCheck(Arc<dyn Broker>);

impl fmt::Debug for BrokerCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// What a probe answers.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `up` or `down`.
    pub status: &'static str,
    /// Each check's outcome (none for liveness).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckReport>,
    /// About the process.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub info: BTreeMap<&'static str, &'static str>,
}

/// One check's outcome.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// `up` or `down`.
    pub status: &'static str,
    /// What failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in nanoseconds.
    pub duration: u64,
    /// Whether its failure makes the service not ready.
    pub critical: bool,
}

impl Report {
    /// Whether the service is up.
    pub fn is_up(&self) -> bool {
        self.status == "up"
    }
}

impl Health {
    /// The health of a service whose broker is `broker` (when it
    /// subscribes), with the application's `checks`.
    pub(crate) fn new(broker: Option<Arc<dyn Broker>>, checks: Vec<Check>) -> Self {
        Health(Arc::new(Inner {
            registered: AtomicBool::new(false),
            broker: broker.map(BrokerCheck),
            checks,
        }))
    }

    /// Records whether the node is registered.
    pub(crate) fn set_registered(&self, registered: bool) {
        self.0.registered.store(registered, Ordering::Relaxed);
    }

    /// The liveness report: up while the process serves.
    pub fn live(&self) -> Report {
        Report {
            status: "up",
            checks: Vec::new(),
            info: BTreeMap::new(),
        }
    }

    /// The readiness report: every check, run at once.
    pub async fn ready(&self) -> Report {
        let registered = self.0.registered.load(Ordering::Relaxed);
        let mut checks = vec![fixed(
            "registry",
            registered.then_some(()).ok_or("the node is not registered"),
        )];
        if let Some(BrokerCheck(broker)) = &self.0.broker {
            let connected = match tokio::time::timeout(CHECK_TIMEOUT, broker.check()).await {
                Ok(connected) => connected.map_err(|e| e.to_string()),
                Err(_) => Err(format!("did not answer within {CHECK_TIMEOUT:?}")),
            };
            checks.push(fixed("broker", connected));
        }
        checks.extend(join_all(self.0.checks.iter().map(run)).await);
        let down = checks.iter().any(|c| c.critical && c.status == "down");
        Report {
            status: if down { "down" } else { "up" },
            checks,
            info: info(),
        }
    }
}

fn fixed(name: &str, outcome: Result<(), impl ToString>) -> CheckReport {
    CheckReport {
        name: name.to_owned(),
        status: if outcome.is_ok() { "up" } else { "down" },
        error: outcome.err().map(|e| e.to_string()),
        duration: 0,
        critical: true,
    }
}

async fn run(check: &Check) -> CheckReport {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, (check.run)()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("did not finish within {CHECK_TIMEOUT:?}")),
    };
    CheckReport {
        name: check.name.clone(),
        status: if outcome.is_ok() { "up" } else { "down" },
        error: outcome.err(),
        duration: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        critical: check.critical,
    }
}

fn info() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("micro_version", env!("CARGO_PKG_VERSION")),
        ("os", std::env::consts::OS),
        ("arch", std::env::consts::ARCH),
    ])
}
