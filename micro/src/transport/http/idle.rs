//! How long an HTTP/1 connection may wait without a call: the time a client
//! has to send a request's headers, on a new connection and between calls
//! on a kept-alive one. A connection that sends its headers slowly, or
//! none, is closed once that time has passed (slowloris).
//!
//! hyper has such a timeout, but it arms a timer for every request; here a
//! call costs a few counter updates, and a connection has one timer, which
//! wakes once per timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::FutureExt;
use hyper::rt::{Read, ReadBufCursor, Write};
use tokio::task::coop::unconstrained;
use tokio::time::{Instant, Sleep};

/// What a connection is doing, as its idle timeout sees it.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Calls in progress; while there are any, the connection is not idle.
    calls: AtomicUsize,
    /// Calls ended, and writes that sent bytes (a response still going out
    /// is not idleness): the timeout sees whether they moved.
    events: AtomicU64,
    /// Set on an HTTP/2 connection, which is not timed: HTTP/2 has its own
    /// flow control and many calls on one connection.
    untimed: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::default()
    }

    /// Marks a call in progress until the returned guard is dropped.
    pub(crate) fn call(self: &Arc<Self>, http2: bool) -> CallGuard {
        if http2 {
            self.untimed.store(true, Ordering::Relaxed);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        CallGuard(Arc::clone(self))
    }

    fn event(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves once the connection has gone `timeout` (up to twice that
    /// after a call) without a call and without sending anything; never on
    /// an HTTP/2 connection.
    pub(crate) fn idle_for(self: &Arc<Self>, timeout: Duration) -> IdleFor {
        IdleFor {
            activity: Arc::clone(self),
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            events: self.events.load(Ordering::Relaxed),
            registered: None,
        }
    }
}

/// A call in progress; dropping it ends the call.
#[derive(Debug)]
pub(crate) struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.event();
        self.0.calls.fetch_sub(1, Ordering::Relaxed);
    }
}

/// See [`Activity::idle_for`]. The connection polls it on every wake, so
/// it polls its timer only when that has fired or the waker changed.
#[derive(Debug)]
pub(crate) struct IdleFor {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// The activity's events when the timer was last set.
    events: u64,
    registered: Option<Waker>,
}

impl Future for IdleFor {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let armed = self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
            if armed && !self.sleep.is_elapsed() {
                return Poll::Pending;
            }
            // Unconstrained: out of task budget, tokio's timer would answer
            // Pending without being armed, and the shortcut above would then
            // wait for it forever. A deadline is not work to budget.
            if unconstrained(self.sleep.as_mut()).poll_unpin(cx).is_pending() {
                self.registered = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let activity = &self.activity;
            if activity.untimed.load(Ordering::Relaxed) {
                // Never woken again: nothing is registered.
                self.registered = Some(cx.waker().clone());
                self.sleep
                    .as_mut()
                    .reset(Instant::now() + Duration::from_secs(86_400 * 365));
                return Poll::Pending;
            }
            let events = activity.events.load(Ordering::Relaxed);
            if activity.calls.load(Ordering::Relaxed) == 0 && events == self.events {
                return Poll::Ready(());
            }
            // Busy during this period: look again a timeout from now.
            self.events = events;
            let next = Instant::now() + self.timeout;
            self.sleep.as_mut().reset(next);
            self.registered = None;
        }
    }
}

/// A connection's I/O, counting the writes that send bytes.
#[derive(Debug)]
pub(crate) struct Counted<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Counted<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Counted<T> {
        Counted { inner, activity }
    }

    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result
            && *n > 0
        {
            self.activity.event();
        }
    }
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_calls_is_idle_after_the_timeout() {
        let activity = Activity::new();
        let started = Instant::now();
        activity.idle_for(Duration::from_secs(2)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_and_writes_put_the_timeout_off() {
        let activity = Activity::new();
        let started = Instant::now();
        let timeout = Duration::from_secs(2);
        let idle = activity.idle_for(timeout);
        let busy = async {
            // A call for three seconds, then a response that takes one more
            // second to write.
            let call = activity.call(false);
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(call);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            activity.event();
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = idle => {}
            () = busy => unreachable!(),
        }
        // Checked at 2 s (a call), 4 s (it ended), 6 s (a write), idle by 8 s.
        assert_eq!(started.elapsed(), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_poll_without_task_budget_still_arms_the_timer() {
        let activity = Activity::new();
        let started = Instant::now();
        let mut idle = pin!(activity.idle_for(Duration::from_secs(2)));
        // A connection task that used up its budget before the timeout's
        // first poll: the timer must be armed at the next poll all the same.
        std::future::poll_fn(|cx| {
            while let Poll::Ready(spent) = tokio::task::coop::poll_proceed(cx) {
                spent.made_progress();
            }
            assert!(idle.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let fired = tokio::time::timeout(Duration::from_secs(60), idle).await;
        assert!(fired.is_ok(), "the idle timeout never fired");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_is_not_timed() {
        let activity = Activity::new();
        drop(activity.call(true));
        let idle = tokio::time::timeout(Duration::from_secs(60), activity.idle_for(Duration::from_secs(1))).await;
        assert!(idle.is_err(), "an HTTP/2 connection was timed out");
    }
}
