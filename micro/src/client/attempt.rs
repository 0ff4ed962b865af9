//! The attempt loop every call goes through, unary calls and stream opens
//! alike: pick a node (avoiding those already tried), make one attempt,
//! tell the selector how it went, and try again, after Go Micro's backoff,
//! while the failure allows it, attempts are left and the deadline is not
//! reached.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::retry::backoff;
use super::target::Target;
use super::{CallOptions, Client};
use crate::context::Context;
use crate::error::{CLIENT_ID, Error, Result};
use crate::transport::Failure;

/// What every attempt of a call shares.
#[derive(Clone, Copy)]
pub(super) struct Attempts<'a> {
    pub(super) service: &'a Arc<str>,
    pub(super) endpoint: &'a Cow<'static, str>,
    pub(super) options: &'a CallOptions,
    pub(super) context: Option<&'a Context>,
    /// When the call started: the first attempt's clock reading.
    pub(super) started: Instant,
    /// When attempts stop.
    pub(super) deadline: Instant,
}

/// How one attempt ended.
pub(super) enum Step<T> {
    /// It succeeded.
    Done(T),
    /// It ended the call with an error that is not tried again (an answer
    /// given in place, a request that cannot be encoded).
    Final(Error),
    /// It failed, perhaps in a way worth another attempt.
    Failed(Failure),
}

/// One kind of attempt: a unary call, a stream open.
pub(super) trait Attempt {
    /// What a successful attempt gives.
    type Output;

    /// One attempt on `target`, the `attempt`th of the call (0 for the first).
    async fn once(&mut self, client: &Client, call: &Attempts<'_>, target: &Target, attempt: u32)
    -> Step<Self::Output>;

    /// Whether `failure` may be tried again.
    fn retryable(&self, failure: &Failure) -> bool;
}

/// The earliest of `timeout` from `now` and the deadline `context` carries;
/// `None` when neither is set.
pub(super) fn deadline(timeout: Option<Duration>, context: Option<&Context>, now: Instant) -> Option<Instant> {
    let own = timeout.map(|t| now.checked_add(t).unwrap_or(now + Duration::from_secs(86_400 * 365)));
    match (own, context.and_then(Context::deadline)) {
        (Some(own), Some(inherited)) => Some(own.min(inherited)),
        (own, inherited) => own.or(inherited),
    }
}

impl Client {
    /// Makes attempts until one succeeds or no other may be made; the first
    /// goes to `first` if it is given.
    pub(super) async fn attempt<A: Attempt>(
        &self,
        call: &Attempts<'_>,
        first: Option<Target>,
        attempt: &mut A,
    ) -> Result<A::Output> {
        let retries = call.options.retries.unwrap_or(self.inner.options.retries);
        let mut tried: Vec<String> = Vec::new();
        let mut last: Option<Error> = None;
        let mut next = first;
        // An attempt a layer refused (an open circuit) never reached its
        // node: the next one goes to another node at once.
        let mut refused = false;
        for n in 0..=retries {
            if n > 0 && !refused {
                let wait = backoff(n);
                if Instant::now() + wait >= call.deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let target = match next.take() {
                Some(target) => target,
                None => self.resolve(call.service, call.options, &tried).await?,
            };
            let failure = match attempt.once(self, call, &target, n).await {
                Step::Done(output) => {
                    self.mark(call.service, &target, None);
                    return Ok(output);
                }
                Step::Final(error) => {
                    self.mark(call.service, &target, None);
                    return Err(error);
                }
                Step::Failed(failure) => failure,
            };
            self.mark(call.service, &target, Some(&failure));
            debug!(service = &**call.service, endpoint = &**call.endpoint, attempt = n, node = %target.key(), address = %target.address(), code = failure.error.code, detail = %failure.error.detail, "attempt failed");
            if !attempt.retryable(&failure) || Instant::now() >= call.deadline {
                return Err(failure.error);
            }
            tried.push(target.key().to_owned());
            refused = failure.refused;
            last = Some(failure.error);
        }
        Err(last
            .unwrap_or_else(|| Error::timeout(CLIENT_ID, "call timeout: the deadline passed before the first attempt")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_earliest_deadline_wins() {
        let now = Instant::now();
        let ctx = Context::new().with_timeout(Duration::from_secs(2));
        let inherited = deadline(Some(Duration::from_secs(30)), Some(&ctx), now);
        assert_eq!(inherited.map(|d| d - now), Some(Duration::from_secs(2)));
        let own = deadline(Some(Duration::from_secs(1)), Some(&ctx), now);
        assert_eq!(own.map(|d| d - now), Some(Duration::from_secs(1)));
        assert_eq!(deadline(None, None, now), None, "a stream may have none");
        assert!(deadline(Some(Duration::MAX), None, now).is_some());
    }
}
