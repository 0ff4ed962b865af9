//! Load shedding: at most `limit` calls run at once, and a call over the
//! limit is refused at once with a 503 rather than queued without bound, so
//! an overloaded service answers quickly and recovers (Go Micro has no
//! limit; tower's `ConcurrencyLimit` queues instead).

use std::task::{Context as TaskContext, Poll};

use futures_util::future::{self, Either, Ready};
use tower::{Layer, Service};

use super::Metrics;
use crate::error::Error;
use crate::meter::{Admitted, Limit};

/// The default limit of concurrent calls per server: generous, so that it
/// only bounds a flood.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 10_000;

/// A layer that runs at most `limit` calls at once and refuses the others
/// with a 503, counted in the service's metrics.
#[derive(Clone, Debug)]
pub struct ShedLayer {
    limit: Limit,
    metrics: Option<Metrics>,
}

impl ShedLayer {
    /// At most `limit` calls at once.
    pub fn new(limit: usize) -> Self {
        ShedLayer {
            limit: Limit::new(limit),
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
        match self.layer.limit.admit() {
            Ok(place) => Either::Left(Admitted::new(self.inner.call(request), Some(place))),
            Err(refused) => {
                if let Some(metrics) = &self.layer.metrics {
                    metrics.shed();
                }
                Either::Right(future::ready(Err(refused)))
            }
        }
    }
}
