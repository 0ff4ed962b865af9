//! Middleware: tower [`Layer`]s around handler calls, subscriber deliveries
//! and client call attempts.
//!
//! Go Micro wraps handlers, subscribers and calls with "wrappers"; micro
//! takes tower layers at the same three points, so that the tower ecosystem
//! plugs in:
//!
//! - [`Server::layer`](crate::server::Server::layer) and
//!   [`Service::layer`](crate::Service::layer): around every handler call,
//!   whatever the transport (HTTP/1.1, h2 streams, mux, in-process). The
//!   layer's service takes a [`HandlerCall`](crate::server::HandlerCall)
//!   (the routed endpoint, its context, the request) and gives the
//!   [`Response`](crate::server::Response), so it may answer without calling
//!   the handler. A stream is one call that lasts as long as the stream.
//! - [`Server::subscriber_layer`](crate::server::Server::subscriber_layer)
//!   and [`Service::subscriber_layer`](crate::Service::subscriber_layer):
//!   around every message delivered to a `#[subscribe]` method.
//! - [`ClientOptions::layer`](crate::client::ClientOptions::layer): around
//!   each attempt of a call, after the node is picked, whatever the path
//!   (HTTP/1.1, mux, a stream's opening, in-process); a retried call passes
//!   through once per attempt. The layer's service takes a
//!   [`CallAttempt`](crate::client::CallAttempt) (the call, its node, its
//!   metadata to add to) and gives an opaque
//!   [`Attempted`](crate::client::Attempted) that the client decodes.
//!
//! The first layer added is the outermost, as in Go Micro: layers `[a, b]`
//! run `a -> b -> handler -> b -> a`.
//!
//! Every stack's error is [`Error`]. A layer whose service fails with
//! another error (tower's own, boxed) works too: its errors become Go Micro
//! errors, tower's [`Overloaded`](tower::load_shed::error::Overloaded) a 503
//! and [`Elapsed`](tower::timeout::error::Elapsed) a 408 (see
//! [`into_error`]; a client layer's carry the client's id). A layer's
//! service must be `Clone` (each call runs on a clone, as axum's routes
//! do), `Send` and `Sync`: tower's `ConcurrencyLimitLayer`,
//! `LoadShedLayer`, `TimeoutLayer` and `MapRequest`/`MapResponse` qualify; `RateLimitLayer` and `BufferLayer`'s
//! services are not `Sync`/share no state between clones, so rate limiting
//! belongs behind a layer of one's own (or [`from_fn`] over a shared
//! limiter).
//!
//! [`from_fn`] makes a layer from an async function, as axum's
//! `middleware::from_fn` does, so that a layer needs no `poll_ready`:
//!
//! ```
//! use micro::middleware::{Next, from_fn};
//! use micro::server::{HandlerCall, Response};
//!
//! let log = from_fn(|call: HandlerCall, next: Next<HandlerCall, Response>| async move {
//!     let endpoint = call.endpoint().name();
//!     let answer = next.run(call).await;
//!     tracing::info!(endpoint, ok = answer.is_ok(), "served");
//!     answer
//! });
//! # let _ = micro::server::Server::default().layer(log);
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::BoxFuture;
use crate::error::{CLIENT_ID, Error, SERVER_ID};

/// A boxed, cloneable service: what every layer wraps and gives.
pub type Boxed<Req, Res> = BoxCloneSyncService<Req, Res, Error>;

/// The Go Micro error of a failed server layer: an [`Error`] stays itself;
/// tower's load-shedding refusal is a 503, its timeout a 408; anything else
/// a 500 that says what it was. (A client layer's errors become the same,
/// with the client's id.)
pub fn into_error(error: BoxError) -> Error {
    error_from(SERVER_ID, error)
}

/// [`into_error`], with `id` as the id of the errors it makes.
fn error_from(id: &'static str, error: BoxError) -> Error {
    let error = match error.downcast::<Error>() {
        Ok(error) => return *error,
        Err(other) => other,
    };
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Error::service_unavailable(id, "overloaded: the call was shed");
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Error::timeout(id, "the call timed out in a layer");
    }
    Error::internal_server_error(id, error.to_string())
}

type Wrap<Req, Res> = Arc<dyn Fn(Boxed<Req, Res>) -> Boxed<Req, Res> + Send + Sync>;

/// The layers added at one point, in the order they were added.
pub(crate) struct Layers<Req, Res> {
    wraps: Vec<Wrap<Req, Res>>,
    /// The id of the errors that a layer's own (tower's) errors become.
    id: &'static str,
}

impl<Req, Res> Default for Layers<Req, Res> {
    /// A server's layers.
    fn default() -> Self {
        Layers {
            wraps: Vec::new(),
            id: SERVER_ID,
        }
    }
}

impl<Req, Res> Layers<Req, Res> {
    /// A client's layers.
    pub(crate) fn client() -> Self {
        Layers {
            wraps: Vec::new(),
            id: CLIENT_ID,
        }
    }
}

impl<Req, Res> Clone for Layers<Req, Res> {
    fn clone(&self) -> Self {
        Layers {
            wraps: self.wraps.clone(),
            id: self.id,
        }
    }
}

impl<Req, Res> fmt::Debug for Layers<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layers").field("len", &self.wraps.len()).finish()
    }
}

impl<Req: Send + 'static, Res: Send + 'static> Layers<Req, Res> {
    /// Adds `layer` inside the layers added before it.
    pub(crate) fn push<L>(&mut self, layer: L)
    where
        L: Layer<Boxed<Req, Res>> + Send + Sync + 'static,
        L::Service: Service<Req, Response = Res> + Clone + Send + Sync + 'static,
        <L::Service as Service<Req>>::Error: Into<BoxError>,
        <L::Service as Service<Req>>::Future: Send + 'static,
    {
        let id = self.id;
        self.wraps.push(Arc::new(move |inner| {
            let layered = layer.layer(inner).map_err(move |e| error_from(id, e.into()));
            BoxCloneSyncService::new(layered)
        }));
    }

    /// Adds `inner`'s layers inside these.
    pub(crate) fn extend(&mut self, inner: Layers<Req, Res>) {
        self.wraps.extend(inner.wraps);
    }

    /// `core` inside every layer, the first added outermost; `None` when
    /// there are no layers (the caller then calls its core directly).
    pub(crate) fn wrap(&self, core: Boxed<Req, Res>) -> Option<Boxed<Req, Res>> {
        if self.wraps.is_empty() {
            return None;
        }
        Some(self.wraps.iter().rev().fold(core, |inner, wrap| wrap(inner)))
    }
}

/// A layer made from an async function; see [`from_fn`].
#[derive(Clone)]
pub struct FromFnLayer<F> {
    f: F,
}

/// A layer that runs `f` with each request and the [`Next`] service, which
/// `f` may call or not.
pub fn from_fn<F>(f: F) -> FromFnLayer<F> {
    FromFnLayer { f }
}

impl<F> fmt::Debug for FromFnLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFnLayer").finish_non_exhaustive()
    }
}

impl<F: Clone, S> Layer<S> for FromFnLayer<F> {
    type Service = FromFn<F, S>;

    fn layer(&self, inner: S) -> Self::Service {
        FromFn {
            f: self.f.clone(),
            inner,
        }
    }
}

/// The service of a [`FromFnLayer`].
#[derive(Clone)]
pub struct FromFn<F, S> {
    f: F,
    inner: S,
}

impl<F, S> fmt::Debug for FromFn<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").finish_non_exhaustive()
    }
}

impl<F, Fut, Req, Res> Service<Req> for FromFn<F, Boxed<Req, Res>>
where
    F: Fn(Req, Next<Req, Res>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Res, Error>> + Send + 'static,
    Req: Send + 'static,
    Res: Send + 'static,
{
    type Response = Res;
    type Error = Error;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Fut {
        let next = Next {
            inner: self.inner.clone(),
        };
        (self.f)(request, next)
    }
}

/// The rest of the stack, as a [`from_fn`] layer sees it.
pub struct Next<Req, Res> {
    inner: Boxed<Req, Res>,
}

impl<Req: Send + 'static, Res: Send + 'static> Next<Req, Res> {
    /// Passes `request` on to the next layer (in the end, the handler or
    /// the transport).
    pub fn run(self, request: Req) -> BoxFuture<'static, Result<Res, Error>> {
        Box::pin(self.inner.oneshot(request))
    }
}

impl<Req, Res> fmt::Debug for Next<Req, Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").finish_non_exhaustive()
    }
}
