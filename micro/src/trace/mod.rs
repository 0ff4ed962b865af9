//! Distributed tracing: the spans micro opens and the trace context that
//! travels with calls and messages.
//!
//! Every handled call runs in an `rpc.serve` span, every call made in an
//! `rpc.call` span, every published message in a `message.publish` span
//! and every delivered one in a `message.process` span, at the `INFO`
//! level, with OpenTelemetry's RPC fields (`rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.response.status_code`, `otel.kind`,
//! `otel.status_code`) and the span's place in its trace (`trace_id`,
//! `span_id`, `parent_id`, hex as in W3C `traceparent`).
//!
//! The trace context travels in W3C `traceparent` (and `tracestate`), and
//! in Go Micro's `Micro-Trace-Id` and `Micro-Span-Id`, which a call coming
//! from a Go Micro service may carry instead; micro reads both and writes
//! both. A call made inside a handler, or a message published there,
//! continues the handler's trace ([`Context::trace`](crate::Context::trace)).
//!
//! When no subscriber records these spans, nothing is generated: the trace
//! headers a call came with are forwarded as they are, so the trace goes on
//! through the services that do record.

#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;

use std::fmt;

use tracing::Span;
use tracing::field::Empty;

use crate::error::Error;
use crate::metadata::Metadata;

/// W3C's header: `00-<trace id>-<span id>-<flags>`.
pub const TRACEPARENT: &str = "Traceparent";
/// W3C's vendor header, carried along.
pub const TRACESTATE: &str = "Tracestate";
/// Go Micro's trace id header.
pub const MICRO_TRACE_ID: &str = "Micro-Trace-Id";
/// Go Micro's span id header.
pub const MICRO_SPAN_ID: &str = "Micro-Span-Id";

/// Where a span sits in its trace.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace's id, never 0.
    pub trace_id: u128,
    /// The span's id, never 0.
    pub span_id: u64,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// The first span of a new trace.
    pub fn root() -> Self {
        TraceContext {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            flags: 1,
        }
    }

    /// A new span under this one.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: nonzero_u64(),
            ..*self
        }
    }

    /// Reads a W3C `traceparent` value.
    pub fn from_traceparent(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; later versions may add more.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        let context = TraceContext {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (context.trace_id != 0 && context.span_id != 0).then_some(context)
    }

    /// Reads Go Micro's `Micro-Trace-Id` (a UUID, or 32 hex digits) and
    /// `Micro-Span-Id` (any text; hashed when it is not 16 hex digits).
    pub fn from_go_micro(trace_id: &str, span_id: Option<&str>) -> Option<Self> {
        let hex: String = trace_id.chars().filter(|c| *c != '-').collect();
        let trace_id = match hex.len() {
            32 => u128::from_str_radix(&hex, 16).ok()?,
            _ => u128::from(fnv(trace_id.as_bytes())) << 64 | u128::from(fnv(b"micro")),
        };
        let span_id = match span_id {
            Some(s) if s.len() == 16 => u64::from_str_radix(s, 16).unwrap_or_else(|_| fnv(s.as_bytes())),
            Some(s) if !s.is_empty() => fnv(s.as_bytes()),
            _ => nonzero_u64(),
        };
        (trace_id != 0 && span_id != 0).then_some(TraceContext {
            trace_id,
            span_id,
            flags: 1,
        })
    }

    /// The trace context `lookup` finds in a call's or message's headers:
    /// `traceparent`, else Go Micro's headers.
    pub fn extract<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        if let Some(context) = lookup(TRACEPARENT).and_then(TraceContext::from_traceparent) {
            return Some(context);
        }
        TraceContext::from_go_micro(lookup(MICRO_TRACE_ID)?, lookup(MICRO_SPAN_ID))
    }

    /// The W3C `traceparent` value.
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }

    /// The trace id as Go Micro writes it: a UUID.
    pub fn go_micro_trace_id(&self) -> String {
        let h = format!("{:032x}", self.trace_id);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// A span's trace context and the headers that carry it on, rendered once.
#[derive(Clone, Debug)]
pub(crate) struct Trace {
    pub(crate) context: TraceContext,
    headers: [(&'static str, String); 3],
    state: Option<String>,
}

impl Trace {
    fn new(context: TraceContext, state: Option<String>) -> Self {
        Trace {
            context,
            headers: [
                (TRACEPARENT, context.traceparent()),
                (MICRO_TRACE_ID, context.go_micro_trace_id()),
                (MICRO_SPAN_ID, format!("{:016x}", context.span_id)),
            ],
            state,
        }
    }

    /// The headers that carry the trace on from this span.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let state = self.state.as_deref().map(|s| (TRACESTATE, s));
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).chain(state)
    }
}

/// Whether `key` is one of the trace headers, which a span's own replace.
pub(crate) fn is_trace_header(key: &str) -> bool {
    [TRACEPARENT, TRACESTATE, MICRO_TRACE_ID, MICRO_SPAN_ID]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(key))
}

/// Gives `span` its place under the trace context `lookup` finds in a
/// call's or message's headers (a new trace without one), and the trace to
/// carry on; nothing, and no lookup, when no subscriber records the span.
pub(crate) fn place_in<'a>(span: &Span, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<Trace> {
    if span.is_disabled() {
        return None;
    }
    place(span, TraceContext::extract(&lookup), lookup(TRACESTATE))
}

/// Gives `span` its place under `parent` (a new trace without one), and
/// the trace to carry on.
pub(crate) fn place(span: &Span, parent: Option<TraceContext>, state: Option<&str>) -> Option<Trace> {
    if span.is_disabled() {
        return None;
    }
    let own = || parent.map_or_else(TraceContext::root, |p| p.child());
    // With OpenTelemetry's layer, its ids are the span's.
    #[cfg(feature = "otel")]
    let context = otel::join(span, parent).unwrap_or_else(own);
    #[cfg(not(feature = "otel"))]
    let context = own();
    span.record(
        "trace_id",
        tracing::field::display(format_args!("{:032x}", context.trace_id)),
    );
    span.record(
        "span_id",
        tracing::field::display(format_args!("{:016x}", context.span_id)),
    );
    if let Some(parent) = parent {
        span.record(
            "parent_id",
            tracing::field::display(format_args!("{:016x}", parent.span_id)),
        );
    }
    Some(Trace::new(context, state.map(str::to_owned)))
}

/// Whether a subscriber may record `INFO` spans at all: without one, no
/// span is built (building a disabled span still records its fields for
/// `log` when another crate turned tracing's `log` feature on).
fn recorded() -> bool {
    tracing::level_enabled!(tracing::Level::INFO)
}

/// The span of a handled call.
pub(crate) fn serve_span(service: Option<&str>, endpoint: &str) -> Span {
    if !recorded() {
        return Span::none();
    }
    tracing::info_span!(
        "rpc.serve",
        otel.name = endpoint,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "micro",
        rpc.service = service,
        rpc.method = endpoint,
        rpc.response.status_code = Empty,
        trace_id = Empty,
        span_id = Empty,
        parent_id = Empty,
    )
}

/// The span of a call made.
pub(crate) fn call_span(service: &str, endpoint: &str) -> Span {
    if !recorded() {
        return Span::none();
    }
    tracing::info_span!(
        "rpc.call",
        otel.name = endpoint,
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "micro",
        rpc.service = service,
        rpc.method = endpoint,
        rpc.response.status_code = Empty,
        trace_id = Empty,
        span_id = Empty,
        parent_id = Empty,
    )
}

/// The span of a message published.
pub(crate) fn publish_span(topic: &str) -> Span {
    if !recorded() {
        return Span::none();
    }
    tracing::info_span!(
        "message.publish",
        otel.name = topic,
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.destination.name = topic,
        trace_id = Empty,
        span_id = Empty,
        parent_id = Empty,
    )
}

/// The span of a message delivered to a subscriber.
pub(crate) fn process_span(topic: &str, subscriber: &str) -> Span {
    if !recorded() {
        return Span::none();
    }
    tracing::info_span!(
        "message.process",
        otel.name = topic,
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.destination.name = topic,
        messaging.consumer = subscriber,
        trace_id = Empty,
        span_id = Empty,
        parent_id = Empty,
    )
}

/// Records how the span's call or delivery ended.
pub(crate) fn record_outcome<T>(span: &Span, outcome: &Result<T, Error>) {
    match outcome {
        Ok(_) => {
            span.record("rpc.response.status_code", 200);
            span.record("otel.status_code", "OK");
        }
        Err(error) => {
            span.record("rpc.response.status_code", error.code);
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Runs `future` in `span` and records its outcome there; `future` as it
/// is when no subscriber records the span.
pub(crate) fn traced<F, T>(span: Span, future: F) -> impl Future<Output = Result<T, Error>>
where
    F: Future<Output = Result<T, Error>>,
{
    if span.is_disabled() {
        return futures_util::future::Either::Left(future);
    }
    let recorded = async move {
        let outcome = future.await;
        record_outcome(&Span::current(), &outcome);
        outcome
    };
    futures_util::future::Either::Right(tracing::Instrument::instrument(recorded, span))
}

/// The trace context in `metadata`, read case-insensitively.
pub(crate) fn in_metadata(metadata: &Metadata) -> Option<TraceContext> {
    TraceContext::extract(|key| metadata.get(key))
}

fn nonzero_u64() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

/// FNV-1a, to turn a foreign id into one of ours; never 0.
fn fnv(bytes: &[u8]) -> u64 {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_bad_values() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::from_traceparent(value).unwrap();
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.span_id, 0x00f067aa0ba902b7);
        assert_eq!(context.traceparent(), value);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(TraceContext::from_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
    }

    #[test]
    fn go_micro_ids_are_read_and_written_as_uuids() {
        let context =
            TraceContext::from_go_micro("4bf92f35-77b3-4da6-a3ce-929d0e0e4736", Some("00f067aa0ba902b7")).unwrap();
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(context.span_id, 0x00f067aa0ba902b7);
        assert_eq!(context.go_micro_trace_id(), "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
        // Any other text still names one trace, the same each time.
        let a = TraceContext::from_go_micro("trace-a", Some("span")).unwrap();
        let b = TraceContext::from_go_micro("trace-a", Some("span")).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn traceparent_wins_over_go_micros_headers_and_keys_ignore_case() {
        let metadata: Metadata = [
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("Micro-Trace-Id", "11111111-1111-1111-1111-111111111111"),
        ]
        .into_iter()
        .collect();
        let context = in_metadata(&metadata).unwrap();
        assert_eq!(context.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }
}
