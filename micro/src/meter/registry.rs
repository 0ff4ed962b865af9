//! The metrics registry of a service (Prometheus, through
//! `prometheus-client`), owned by the service rather than the process, and
//! the recording of one call: what `observe`'s layers and the server's
//! default metrics write.
//!
//! Names follow OpenTelemetry's RPC conventions, in seconds (see
//! `docs/observability.md` for the table); labels come from what the
//! service declares (its name, its endpoints), never from what a caller
//! sends, so a caller cannot grow the registry.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use crate::error::{Error, is_panic};
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// OpenTelemetry's recommended buckets for RPC durations, in seconds.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A label value: an endpoint's own name, or a shared copy of one.
#[derive(Clone, Debug)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Shared(name) => name,
        }
    }
}

impl From<&Cow<'static, str>> for Name {
    fn from(name: &Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => Name::Static(name),
            Cow::Owned(name) => Name::Shared(Arc::from(name.as_str())),
        }
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

/// A call's labels: service, method, status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct CallLabels {
    service: Arc<str>,
    method: Name,
    status: u16,
}

impl EncodeLabelSet for CallLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        use prometheus_client::encoding::EncodeLabel;
        ("rpc_service", &*self.service).encode(encoder.encode_label())?;
        ("rpc_method", self.method.as_str()).encode(encoder.encode_label())?;
        ("rpc_response_status_code", self.status).encode(encoder.encode_label())
    }
}

/// An endpoint's labels: service and method.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MethodLabels {
    service: Arc<str>,
    method: Name,
}

impl EncodeLabelSet for MethodLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        use prometheus_client::encoding::EncodeLabel;
        ("rpc_service", &*self.service).encode(encoder.encode_label())?;
        ("rpc_method", self.method.as_str()).encode(encoder.encode_label())
    }
}

/// Go Micro's labels: `service`, `endpoint`, and for counts `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct GoLabels {
    service: Arc<str>,
    endpoint: Name,
    status: Option<&'static str>,
}

impl EncodeLabelSet for GoLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        use prometheus_client::encoding::EncodeLabel;
        ("service", &*self.service).encode(encoder.encode_label())?;
        ("endpoint", self.endpoint.as_str()).encode(encoder.encode_label())?;
        match self.status {
            Some(status) => ("status", status).encode(encoder.encode_label()),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct DeliveryLabels {
    topic: Arc<str>,
    subscriber: &'static str,
    outcome: &'static str,
}

impl EncodeLabelSet for DeliveryLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        use prometheus_client::encoding::EncodeLabel;
        ("topic", &*self.topic).encode(encoder.encode_label())?;
        ("subscriber", self.subscriber).encode(encoder.encode_label())?;
        ("outcome", self.outcome).encode(encoder.encode_label())
    }
}

type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server or client side of the call metrics.
struct Side {
    duration: Durations<CallLabels>,
    in_flight: Family<MethodLabels, Gauge>,
}

impl Side {
    fn new(registry: &mut Registry, side: &str) -> Side {
        let duration: Durations<CallLabels> = Family::new_with_constructor(histogram);
        let in_flight = Family::<MethodLabels, Gauge>::default();
        registry.register(
            format!("rpc_{side}_call_duration_seconds"),
            format!(
                "Duration of RPC calls {}, in seconds",
                if side == "server" { "served" } else { "made" }
            ),
            duration.clone(),
        );
        registry.register(
            format!("rpc_{side}_calls_in_flight"),
            format!(
                "RPC calls {} now",
                if side == "server" {
                    "being served"
                } else {
                    "waiting for an answer"
                }
            ),
            in_flight.clone(),
        );
        Side { duration, in_flight }
    }
}

struct GoNames {
    requests: Family<GoLabels, Counter>,
    duration: Durations<GoLabels>,
}

struct Inner {
    registry: Registry,
    service: Arc<str>,
    server: Side,
    client: Side,
    deliveries: Family<DeliveryLabels, Counter>,
    panics: Family<[(&'static str, &'static str); 1], Counter>,
    shed: Counter,
    go: Option<GoNames>,
    /// Calls served and those that failed, for `Debug.Stats`.
    requests: AtomicU64,
    errors: AtomicU64,
    /// Each method's metrics, by side, service and method.
    handles: RwLock<foldhash::HashMap<HandleKey, Arc<Handles>>>,
}

/// The metrics registry of one service. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.0.service)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of the service `service`.
    pub fn new(service: impl Into<Arc<str>>) -> Self {
        Self::build(service.into(), false)
    }

    /// The metrics of `service`, with Go Micro's names kept as well.
    pub fn with_go_micro_names(service: impl Into<Arc<str>>) -> Self {
        Self::build(service.into(), true)
    }

    fn build(service: Arc<str>, go_names: bool) -> Self {
        let mut registry = Registry::default();
        let server = Side::new(&mut registry, "server");
        let client = Side::new(&mut registry, "client");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "micro_subscriber_deliveries",
            "Messages delivered to subscribers, by outcome",
            deliveries.clone(),
        );
        let panics = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register("micro_panics", "Handler and subscriber panics caught", panics.clone());
        let shed = Counter::default();
        registry.register("micro_server_shed", "Calls refused by load shedding", shed.clone());
        let go = go_names.then(|| {
            let requests = Family::<GoLabels, Counter>::default();
            let duration: Durations<GoLabels> = Family::new_with_constructor(histogram);
            registry.register(
                "micro_request",
                "Requests processed (Go Micro's name)",
                requests.clone(),
            );
            registry.register(
                "micro_request_duration_seconds",
                "Request duration in seconds (Go Micro's name)",
                duration.clone(),
            );
            GoNames { requests, duration }
        });
        Metrics(Arc::new(Inner {
            registry,
            service,
            server,
            client,
            deliveries,
            panics,
            shed,
            go,
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            handles: RwLock::default(),
        }))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0.registry);
        text
    }

    /// Calls served so far, and those that failed.
    pub fn served(&self) -> (u64, u64) {
        (
            self.0.requests.load(Ordering::Relaxed),
            self.0.errors.load(Ordering::Relaxed),
        )
    }

    /// Counts a call refused by load shedding.
    pub(crate) fn shed(&self) {
        self.0.shed.inc();
    }

    /// Counts a panic caught in `what` (an endpoint or a subscriber).
    pub(crate) fn panicked(&self, what: &'static str) {
        self.0.panics.get_or_create(&[("endpoint", what)]).inc();
    }

    /// Starts recording a call served by `endpoint`.
    pub(crate) fn serve(&self, endpoint: &'static str) -> Recording {
        self.start(true, &self.0.service, Name::Static(endpoint))
    }

    /// Starts recording an attempt of a call of `endpoint` on `service`.
    #[expect(clippy::ptr_arg, reason = "a borrowed name is kept as it is, an owned one is copied")]
    pub(crate) fn attempt(&self, service: &Arc<str>, endpoint: &Cow<'static, str>) -> Recording {
        self.start(false, service, Name::from(endpoint))
    }

    /// Counts a message delivered to `subscriber`, and its panic if it was one.
    pub(crate) fn delivered(&self, topic: &str, subscriber: &'static str, outcome: Result<(), &Error>) {
        if outcome.is_err_and(is_panic) {
            self.panicked(subscriber);
        }
        let labels = DeliveryLabels {
            topic: Arc::from(topic),
            subscriber,
            outcome: if outcome.is_ok() { "ok" } else { "error" },
        };
        self.0.deliveries.get_or_create(&labels).inc();
    }

    /// Starts recording a call of `method` on the server or client side.
    fn start(&self, server: bool, service: &Arc<str>, method: Name) -> Recording {
        let handles = self.handles(server, service, method);
        handles.in_flight.inc();
        Recording {
            metrics: self.clone(),
            handles,
            server,
            finished: false,
            started: Instant::now(),
        }
    }

    /// The metrics of `method`, looked up in the families once and kept.
    fn handles(&self, server: bool, service: &Arc<str>, method: Name) -> Arc<Handles> {
        let key = match (&method, server) {
            // A served endpoint's name is its descriptor's: its address
            // tells it apart, without hashing the text.
            (Name::Static(name), true) => HandleKey::Served(name.as_ptr() as usize, name.len()),
            _ => HandleKey::Made(Arc::clone(service), method.clone()),
        };
        let known = self
            .0
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(handles) = known {
            return handles;
        }
        let service = Arc::clone(service);
        let inner = &self.0;
        let side = if server { &inner.server } else { &inner.client };
        let labels = MethodLabels {
            service: Arc::clone(&service),
            method: method.clone(),
        };
        let ok = CallLabels {
            service: Arc::clone(&service),
            method: method.clone(),
            status: 200,
        };
        let go = inner.go.as_ref().filter(|_| server).map(|go| {
            let mut labels = GoLabels {
                service: Arc::clone(&service),
                endpoint: method.clone(),
                status: None,
            };
            let duration = go.duration.get_or_create(&labels).clone();
            labels.status = Some("success");
            (duration, go.requests.get_or_create(&labels).clone())
        });
        let handles = Arc::new(Handles {
            in_flight: side.in_flight.get_or_create(&labels).clone(),
            ok: side.duration.get_or_create(&ok).clone(),
            go,
            labels,
        });
        let mut cache = self.0.handles.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(cache.entry(key).or_insert(handles))
    }
}

/// Whose metrics [`Handles`] are.
#[derive(Debug, Hash, PartialEq, Eq)]
enum HandleKey {
    /// An endpoint the service serves, by where its name is and its length.
    Served(usize, usize),
    /// A method the service's client calls, by service and method.
    Made(Arc<str>, Name),
}

/// One method's metrics on one side, for its calls to update without
/// looking them up: the in-flight gauge and the successes' histogram (and
/// Go Micro's); failures, rarer, are looked up by status.
struct Handles {
    labels: MethodLabels,
    in_flight: Gauge,
    ok: Histogram,
    go: Option<(Histogram, Counter)>,
}

/// A call being recorded: it leaves the in-flight gauge when it ends (or is
/// dropped unfinished, e.g. when the caller went away).
pub(crate) struct Recording {
    metrics: Metrics,
    handles: Arc<Handles>,
    server: bool,
    finished: bool,
    started: Instant,
}

impl Recording {
    fn finish(&mut self, error: Option<&Error>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let inner = &self.metrics.0;
        let handles = &self.handles;
        let seconds = self.started.elapsed().as_secs_f64();
        handles.in_flight.dec();
        match error {
            None => handles.ok.observe(seconds),
            Some(error) => {
                let side = if self.server { &inner.server } else { &inner.client };
                let labels = CallLabels {
                    service: Arc::clone(&handles.labels.service),
                    method: handles.labels.method.clone(),
                    status: u16::try_from(error.code).unwrap_or(500),
                };
                side.duration.get_or_create(&labels).observe(seconds);
            }
        }
        if self.server {
            inner.requests.fetch_add(1, Ordering::Relaxed);
            if error.is_some() {
                inner.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Go Micro's wrapper counts the calls served only.
        match (&handles.go, &inner.go, error) {
            (Some((duration, requests)), _, None) => {
                duration.observe(seconds);
                requests.inc();
            }
            (Some((duration, _)), Some(go), Some(_)) => {
                duration.observe(seconds);
                let labels = GoLabels {
                    service: Arc::clone(&handles.labels.service),
                    endpoint: handles.labels.method.clone(),
                    status: Some("fail"),
                };
                go.requests.get_or_create(&labels).inc();
            }
            _ => {}
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.finished {
            self.handles.in_flight.dec();
        }
    }
}

pin_project_lite::pin_project! {
    /// A call's future, recorded when it ends (when it has a recording);
    /// a panic it ends in is counted for `endpoint` (unless that is empty).
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
        endpoint: &'static str,
    }
}

impl<F, T> Future for Recorded<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        if let Some(recording) = this.recording {
            let error = answer.as_ref().err();
            if !this.endpoint.is_empty() && error.is_some_and(is_panic) {
                recording.metrics.panicked(this.endpoint);
            }
            recording.finish(error);
        }
        Poll::Ready(answer)
    }
}

impl<F> Recorded<F> {
    /// `inner`, recorded by `recording` (if any); panics are counted for
    /// `endpoint` (unless it is empty).
    pub(crate) fn new(inner: F, recording: Option<Recording>, endpoint: &'static str) -> Self {
        Recorded {
            inner,
            recording,
            endpoint,
        }
    }
}
