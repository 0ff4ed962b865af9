//! The request context: metadata, deadline and addresses of one call.
//!
//! The server builds a [`Context`] from the request's headers (the `Timeout`
//! header becomes the deadline) and runs the handler inside it. A call made
//! from inside the handler, on the same task, inherits its metadata and what
//! is left of its deadline ([`Context::current`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::headers;
use crate::metadata::{LazyMetadata, Metadata};
use crate::trace::{self, Trace, TraceContext};
use tracing::Span;

tokio::task_local! {
    static CURRENT: Context;
}

/// Metadata, deadline and addresses of one call.
///
/// Handlers receive it as `ctx: &Context`; clients accept one to pass
/// metadata and a deadline on ([`crate::client::CallOptions::context`]).
#[derive(Clone, Default)]
pub struct Context(Arc<Inner>);

/// Shared: a context is cloned for the handler, its calls and its scope, and
/// one pointer wide it keeps the futures that hold it small.
#[derive(Clone, Default)]
struct Inner {
    metadata: LazyMetadata,
    deadline: Option<Instant>,
    service: Option<Arc<str>>,
    endpoint: Option<&'static str>,
    /// The span this context's calls and messages continue, when one is
    /// recorded.
    trace: Option<Trace>,
}

impl Context {
    /// An empty context: no metadata, no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// The context of the handler running on this task, if any.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The request metadata (every request header, plus `Local` and `Remote`).
    pub fn metadata(&self) -> &Metadata {
        self.0.metadata.get()
    }

    /// Mutable access to the metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        Arc::make_mut(&mut self.0).metadata.get_mut()
    }

    /// One metadata value, in any letter case.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata().get(key)
    }

    /// Adds a metadata pair.
    #[must_use]
    pub fn with_metadata(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.metadata_mut().insert(key, value);
        self
    }

    /// The instant the caller stops waiting, if it set one.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }

    /// The time left until the deadline (zero once passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.0.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.0.deadline.is_some_and(|d| d <= Instant::now())
    }

    /// Sets the deadline `timeout` from now, keeping an earlier one.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        let at = Instant::now().checked_add(timeout);
        match at {
            Some(at) => self.with_deadline(at),
            None => self,
        }
    }

    /// Sets the deadline, keeping an earlier one.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        let inner = Arc::make_mut(&mut self.0);
        inner.deadline = Some(inner.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    /// The service the request was addressed to (`Micro-Service`).
    pub fn service(&self) -> Option<&str> {
        self.0.service.as_deref()
    }

    /// The endpoint being served, e.g. `Helloworld.Greeting`.
    pub fn endpoint(&self) -> Option<&str> {
        self.0.endpoint
    }

    /// The span of the call or message being handled, when a subscriber
    /// records it (see [`crate::trace`]): calls made and messages published
    /// with this context continue its trace.
    pub fn trace(&self) -> Option<TraceContext> {
        self.0.trace.as_ref().map(|t| t.context)
    }

    /// The trace context this context's metadata carries (`traceparent`,
    /// or Go Micro's headers), for a span to continue.
    pub(crate) fn incoming_trace(&self) -> Option<TraceContext> {
        match &self.0.trace {
            Some(trace) => Some(trace.context),
            None => trace::in_metadata(self.metadata()),
        }
    }

    /// This context, its calls and messages continuing `trace`.
    pub(crate) fn with_trace(mut self, trace: Trace) -> Self {
        Arc::make_mut(&mut self.0).trace = Some(trace);
        self
    }

    /// The server's address for this connection (`Local` metadata).
    pub fn local_addr(&self) -> Option<&str> {
        self.metadata().get(headers::LOCAL)
    }

    /// The caller's address (`Remote` metadata).
    pub fn remote_addr(&self) -> Option<&str> {
        self.metadata().get(headers::REMOTE)
    }

    /// Runs `fut` with this context as [`Context::current`].
    pub fn scope<F: Future>(self, fut: F) -> tokio::task::futures::TaskLocalFuture<Context, F> {
        CURRENT.scope(self, fut)
    }

    pub(crate) fn for_request(
        metadata: impl Into<LazyMetadata>,
        deadline: Option<Instant>,
        service: Option<Arc<str>>,
        endpoint: &'static str,
    ) -> Self {
        Context(Arc::new(Inner {
            metadata: metadata.into(),
            deadline,
            service,
            endpoint: Some(endpoint),
            trace: None,
        }))
    }

    /// The metadata an outbound call forwards: everything but the headers
    /// that describe one hop (content type, ids, timeout, addresses).
    /// A traced context sends its own span's trace headers instead of
    /// those it came with.
    pub(crate) fn forwarded_metadata(&self) -> impl Iterator<Item = (&str, &str)> {
        let trace = self.0.trace.as_ref();
        let replaced =
            move |key: &str| headers::is_hop_specific(key) || (trace.is_some() && trace::is_trace_header(key));
        let own = self.metadata().iter().filter(move |(k, _)| !replaced(k));
        own.chain(trace.into_iter().flat_map(Trace::headers))
    }
}

/// The context a call or message made in `span` goes with: `context` (or
/// else the handler's, [`Context::current`]) continuing the span's trace;
/// as it was when no subscriber records the span.
pub(crate) fn continuing(span: &Span, context: Option<Context>) -> Option<Context> {
    if span.is_disabled() {
        return context;
    }
    let context = context.or_else(Context::current).unwrap_or_default();
    let state = context.get(trace::TRACESTATE).map(str::to_owned);
    match trace::place(span, context.incoming_trace(), state.as_deref()) {
        Some(trace) => Some(context.with_trace(trace)),
        None => Some(context),
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("endpoint", &self.0.endpoint)
            .field("remaining", &self.remaining())
            .field("metadata", self.metadata())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_is_set_inside_scope_only() {
        assert!(Context::current().is_none());
        let ctx = Context::new().with_metadata("x-a", "1");
        let seen = ctx
            .scope(async { Context::current().and_then(|c| c.get("X-A").map(str::to_owned)) })
            .await;
        assert_eq!(seen.as_deref(), Some("1"));
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_only_get_earlier() {
        let ctx = Context::new()
            .with_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        assert_eq!(ctx.remaining(), Some(Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(ctx.is_expired());
        assert_eq!(ctx.remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn forwarded_metadata_drops_hop_headers() {
        let ctx = Context::new()
            .with_metadata("Content-Type", "application/json")
            .with_metadata("Micro-Id", "7")
            .with_metadata("Timeout", "100")
            .with_metadata("X-Request-Id", "abc")
            .with_metadata("Micro-Trace-Id", "t1");
        let kept: Vec<_> = ctx.forwarded_metadata().map(|(k, _)| k).collect();
        assert_eq!(kept, ["Micro-Trace-Id", "X-Request-Id"]);
    }
}
