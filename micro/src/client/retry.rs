//! Which failed attempts are tried again, and after how long.
//!
//! Go Micro retries only errors with code 408 (`RetryOnError`), so a dead
//! node's connection error is never retried there. micro also retries, on
//! another node, every attempt that provably never reached a server
//! (connection refused, connect timeout), and retries anything else that
//! failed in transport only for endpoints declared idempotent.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::transport::{Delivery, Failure};

/// Decides whether an error the server answered with is worth another
/// attempt: Go Micro's `client.Retry` option. Made from any function or
/// closure of the error (`policy.into()`), which may capture what it needs.
///
/// ```
/// use micro::client::retry::RetryPolicy;
///
/// let codes = vec![408, 503];
/// let policy = RetryPolicy::new(move |e: &micro::Error| codes.contains(&e.code));
/// assert!(policy.retries(&micro::Error::timeout("x", "slow")));
/// assert!(!policy.retries(&micro::Error::internal_server_error("x", "boom")));
/// ```
#[derive(Clone)]
pub struct RetryPolicy(Arc<dyn Fn(&Error) -> bool + Send + Sync>);

impl RetryPolicy {
    /// A policy that retries the errors `decide` says yes to.
    pub fn new(decide: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        RetryPolicy(Arc::new(decide))
    }

    /// Whether `error` is worth another attempt.
    pub fn retries(&self, error: &Error) -> bool {
        (self.0)(error)
    }
}

impl<F: Fn(&Error) -> bool + Send + Sync + 'static> From<F> for RetryPolicy {
    fn from(decide: F) -> Self {
        RetryPolicy::new(decide)
    }
}

impl Default for RetryPolicy {
    /// Go Micro's [`retry_on_timeout`].
    fn default() -> Self {
        RetryPolicy::new(retry_on_timeout)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryPolicy(..)")
    }
}

/// Go Micro's default, `RetryOnError`: retry timeouts (408) only, never a 500,
/// which is the handler's own verdict.
pub fn retry_on_timeout(error: &Error) -> bool {
    error.code == 408
}

/// Go Micro's `RetryAlways`: retry every error.
pub fn retry_always(_: &Error) -> bool {
    true
}

/// Never retry an answered error.
pub fn retry_never(_: &Error) -> bool {
    false
}

/// Go Micro's backoff before attempt `attempt` (0 for the first):
/// `trunc(attempt^e) * 100 ms`, capped at two minutes.
pub fn backoff(attempt: u32) -> Duration {
    if attempt > 13 {
        return Duration::from_secs(120);
    }
    let factor = f64::from(attempt).powf(std::f64::consts::E).trunc();
    // factor <= 13^e < 1100, so the cast is exact.
    Duration::from_millis(factor as u64 * 100)
}

/// Whether another attempt may be made after `failure`: always when the
/// request never left, when `policy` says so for an answer, and after a
/// transport failure only for idempotent endpoints (or when `policy` says so).
pub(crate) fn retryable(failure: &Failure, idempotent: bool, policy: &RetryPolicy) -> bool {
    match failure.delivery {
        Delivery::NotSent => true,
        Delivery::Unknown => idempotent || policy.retries(&failure.error),
        Delivery::Answered => policy.retries(&failure.error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_go_micro() {
        let ms: Vec<u128> = (0..6).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(ms, [0, 100, 600, 1900, 4300, 7900]);
        assert_eq!(backoff(14), Duration::from_secs(120));
        assert!(backoff(13) <= Duration::from_secs(120));
    }

    #[test]
    fn only_safe_failures_are_retried() {
        let refused = Failure::new(Error::internal_server_error("c", "refused"), Delivery::NotSent);
        assert!(retryable(&refused, false, &RetryPolicy::new(retry_never)));
        let reset = Failure::new(Error::internal_server_error("c", "reset"), Delivery::Unknown);
        assert!(!retryable(&reset, false, &RetryPolicy::new(retry_on_timeout)));
        assert!(retryable(&reset, true, &RetryPolicy::new(retry_on_timeout)));
        let business = Failure::new(Error::internal_server_error("s", "boom"), Delivery::Answered);
        assert!(!retryable(&business, true, &RetryPolicy::new(retry_on_timeout)));
        assert!(retryable(&business, false, &RetryPolicy::new(retry_always)));
        let timeout = Failure::new(Error::timeout("s", "slow"), Delivery::Answered);
        assert!(retryable(&timeout, false, &RetryPolicy::new(retry_on_timeout)));
    }
}
