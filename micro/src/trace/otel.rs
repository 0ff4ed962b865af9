//! OpenTelemetry export (the `otel` feature): micro's spans become
//! OpenTelemetry spans through `tracing-opentelemetry`, sent over OTLP.
//!
//! With an OpenTelemetry layer installed, the ids micro propagates are
//! OpenTelemetry's own, so the spans a backend receives from micro (and
//! from Go Micro's OpenTelemetry wrapper) join into one trace.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // OTLP over HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318).
//! let _otel = micro::trace::otel::init("helloworld")?; // flushes when dropped
//! # Ok(()) }
//! ```

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::TraceContext;

/// Why OpenTelemetry export could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A subscriber is installed already.
    #[error("cannot install the subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// Flushes and shuts the exporter down when dropped.
#[derive(Debug)]
#[must_use = "spans are exported until this guard is dropped"]
pub struct OtelGuard {
    provider: SdkTracerProvider,
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("OpenTelemetry exporter shutdown: {e}");
        }
    }
}

/// Installs the process's subscriber: [`crate::logging`]'s log lines, and
/// micro's spans (every span at the filter's level) exported over OTLP/HTTP
/// as the service `service`. The exporter reads the standard
/// `OTEL_EXPORTER_OTLP_*` variables.
pub fn init(service: &str) -> Result<OtelGuard, OtelError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider = provider(service, exporter);
    let tracer = provider.tracer("micro");
    tracing_subscriber::registry()
        .with(crate::logging::filter())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;
    Ok(OtelGuard { provider })
}

/// A tracer provider for `service` sending its spans to `exporter` in
/// batches.
pub fn provider(service: &str, exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service.to_owned()).build())
        .with_batch_exporter(exporter)
        .build()
}

/// The OpenTelemetry ids of `span`, placed under `parent`; `None` when no
/// OpenTelemetry layer records it.
pub(crate) fn join(span: &Span, parent: Option<TraceContext>) -> Option<TraceContext> {
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id.to_be_bytes()),
            SpanId::from_bytes(parent.span_id.to_be_bytes()),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        let context = opentelemetry::Context::new().with_remote_span_context(remote);
        span.set_parent(context).ok()?;
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| TraceContext {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    })
}
