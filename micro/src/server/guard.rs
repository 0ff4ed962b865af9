//! The panic guard of handlers and layers: a panic while a handler's
//! future starts or runs is a 500 error (`panic recovered: ..`), logged,
//! and the server goes on.

use std::panic::AssertUnwindSafe;
use std::task::Poll;

use futures_util::{FutureExt, future};
use tracing::error;

use crate::error::{Error, PANICKED, SERVER_ID};

/// A handler's future (or a layer's), started: a panic while it starts or
/// runs is a 500 error that names `what`.
pub(crate) type Guarded<F, T> = future::Either<CatchingPanics<F>, future::Ready<Result<T, Error>>>;

/// Starts a handler's future with `start`, guarding it against panics.
pub(crate) fn guard<F, T>(what: &'static str, start: impl FnOnce() -> F) -> Guarded<F, T>
where
    F: Future<Output = Result<T, Error>>,
{
    match std::panic::catch_unwind(AssertUnwindSafe(start)) {
        Ok(future) => future::Either::Left(CatchingPanics {
            inner: AssertUnwindSafe(future).catch_unwind(),
            what,
        }),
        Err(panic) => future::Either::Right(future::ready(Err(panicked(what, panic.as_ref())))),
    }
}

pin_project_lite::pin_project! {
    /// A future whose panic is a 500 error that names `what`.
    pub(crate) struct CatchingPanics<F> {
        #[pin]
        inner: futures_util::future::CatchUnwind<AssertUnwindSafe<F>>,
        what: &'static str,
    }
}

impl<F, T> Future for CatchingPanics<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(answer)) => Poll::Ready(answer),
            Poll::Ready(Err(panic)) => Poll::Ready(Err(panicked(this.what, panic.as_ref()))),
        }
    }
}

fn panicked(endpoint: &str, panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    error!(endpoint, panic = %message, "handler panicked");
    Error::internal_server_error(SERVER_ID, format!("{PANICKED}{message}"))
}
