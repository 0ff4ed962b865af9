//! Load shedding: at most `limit` calls run at once, and a call over the
//! limit is refused at once with a 503 rather than queued without bound, so
//! an overloaded service answers quickly and recovers (Go Micro has no
//! limit; tower's `ConcurrencyLimit` queues instead).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::future::{self, Either, Ready};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::Metrics;
use crate::error::{Error, SERVER_ID};

/// The default limit of concurrent calls per server: generous, so that it
/// only bounds a flood.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 10_000;

/// A layer that runs at most `limit` calls at once and refuses the others
/// with a 503, counted in the service's metrics.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    metrics: Option<Metrics>,
}

impl ShedLayer {
    /// At most `limit` calls at once.
    pub fn new(limit: usize) -> Self {
        ShedLayer {
            permits: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
            metrics: None,
        }
    }

    /// Counts refused calls in `metrics` (`micro_server_shed_total`).
    #[must_use]
    pub fn counted_in(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`ShedLayer`].
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
    layer: ShedLayer,
}

impl<S, Req> Service<Req> for Shed<S>
where
    S: Service<Req, Error = Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = Either<Admitted<S::Future>, Ready<Result<S::Response, Error>>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match Arc::clone(&self.layer.permits).try_acquire_owned() {
            Ok(permit) => Either::Left(Admitted {
                inner: self.inner.call(request),
                _permit: permit,
            }),
            Err(_) => {
                if let Some(metrics) = &self.layer.metrics {
                    metrics.shed();
                }
                let error = Error::service_unavailable(
                    SERVER_ID,
                    format!(
                        "overloaded: {} calls are running, the server's limit; try again later",
                        self.layer.limit
                    ),
                );
                Either::Right(future::ready(Err(error)))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// An admitted call, holding its place until it ends.
    pub struct Admitted<F> {
        #[pin]
        inner: F,
        _permit: OwnedSemaphorePermit,
    }
}

impl<F: Future> Future for Admitted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}
