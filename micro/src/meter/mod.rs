//! What the server measures and limits of the calls it serves, below the
//! layers: the service's metrics registry, and the limit of calls at once.
//!
//! A [`Service`](crate::Service) has its server record every call and
//! shed calls over the limit itself ([`Defaults`]), outside any layer and
//! without the boxing a layer costs; [`crate::observe`] offers the same as
//! tower layers for clients, subscribers and servers built by hand.

mod limit;
mod registry;

use futures_util::future::{self, Either, Ready};

pub use self::limit::Admitted;
pub(crate) use self::limit::Limit;
pub use self::registry::{Metrics, Recorded};
use crate::error::Error;

/// What a server does around every call before its layers: record it in
/// the metrics, and refuse it when the limit is reached.
#[derive(Clone, Debug, Default)]
pub(crate) struct Defaults {
    pub(crate) metrics: Option<Metrics>,
    pub(crate) limit: Option<Limit>,
}

/// A call's future under the defaults: recorded, holding its place, or
/// refused.
pub(crate) type Measured<F, T> = Recorded<Either<Admitted<F>, Ready<Result<T, Error>>>>;

impl Defaults {
    /// Whether there is anything to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.metrics.is_none() && self.limit.is_none()
    }

    /// The call of `endpoint` that `start` starts, unless the limit refuses
    /// it, recorded either way.
    pub(crate) fn measure<F, T>(&self, endpoint: &'static str, start: impl FnOnce() -> F) -> Measured<F, T>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let recording = self.metrics.as_ref().map(|m| m.serve(endpoint));
        let inner = match self.limit.as_ref().map(Limit::admit).transpose() {
            Ok(place) => Either::Left(Admitted::new(start(), place)),
            Err(refused) => {
                if let Some(metrics) = &self.metrics {
                    metrics.shed();
                }
                Either::Right(future::ready(Err(refused)))
            }
        };
        Recorded::new(inner, recording, endpoint)
    }
}
