//! A limit of calls running at once, past which a call is refused with a
//! 503 at once rather than queued.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, SERVER_ID};

/// At most `limit` calls at once. Cheap to clone; clones share the places.
#[derive(Clone, Debug)]
pub(crate) struct Limit {
    places: Arc<Semaphore>,
    limit: usize,
}

impl Limit {
    pub(crate) fn new(limit: usize) -> Self {
        Limit {
            places: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
        }
    }

    /// A place for one call, or the 503 refusing it.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, Error> {
        Arc::clone(&self.places).try_acquire_owned().map_err(|_| {
            Error::service_unavailable(
                SERVER_ID,
                format!(
                    "overloaded: {} calls are running, the server's limit; try again later",
                    self.limit
                ),
            )
        })
    }
}

pin_project_lite::pin_project! {
    /// An admitted call, holding its place (if it took one) until it ends.
    pub struct Admitted<F> {
        #[pin]
        inner: F,
        place: Option<OwnedSemaphorePermit>,
    }
}

impl<F> Admitted<F> {
    pub(crate) fn new(inner: F, place: Option<OwnedSemaphorePermit>) -> Self {
        Admitted { inner, place }
    }
}

impl<F: Future> Future for Admitted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}
