//! Settling a delivered event: ack (`XACK`), nack (kept pending, and
//! claimed back by the consumer's task once its backoff is over, or
//! dead-lettered once its retries are spent) and extend (its idle time
//! restarts). The work runs in a task of its own, so that it is done even
//! if the caller stops waiting for it.

use std::sync::Arc;

use tracing::{debug, warn};

use super::client::Own;
use super::consumer::{Entry, Shared, after};
use crate::events::EventsError;

impl Shared {
    /// Nacks delivery `token`: delivered again after `delay` (the backoff
    /// when `None`), or dead-lettered once its retries are spent.
    pub(super) async fn nack_token(
        &self,
        token: u64,
        delay: Option<std::time::Duration>,
        reason: &str,
    ) -> Result<(), EventsError> {
        // Not held (any more): its ack wait ended and it is delivered
        // again, or the consumer stopped and gave it back.
        let Some(held) = self.lock().held.remove(&token) else {
            return Ok(());
        };
        let settled = self.nack(held.entry, delay, reason).await;
        // Room once the nacked entry waits for its turn, so that one due
        // now comes before the next.
        self.wake.notify_one();
        settled
    }

    /// Acks delivery `token`. Room for the next event is told at once: it
    /// need not wait for the ack's round trip. Should the caller stop
    /// waiting, the ack is finished in a task (`XACK` again does nothing).
    pub(super) async fn ack(self: Arc<Self>, token: u64) -> Result<(), EventsError> {
        let Some(held) = self.lock().held.remove(&token) else {
            return Ok(());
        };
        self.wake.notify_one();
        let mut pending = PendingAck {
            shared: Arc::clone(&self),
            id: Some(held.entry.id),
        };
        let acked = match pending.id.as_deref() {
            Some(id) => self.redis.ack(&self.key, &self.group, id).await,
            None => Ok(()),
        };
        pending.id = None;
        acked
    }

    /// Delivers `entry` again after `delay` (the backoff when `None`), or
    /// dead-letters it once its retries are spent.
    async fn nack(&self, entry: Entry, delay: Option<std::time::Duration>, reason: &str) -> Result<(), EventsError> {
        let count = entry.count();
        if self.options.retry_limit.is_some_and(|limit| count > limit) {
            return self.dead_letter(&entry, count, reason).await;
        }
        if self.stop.is_cancelled() {
            // Claimed by the group once idle for the ack wait.
            return Ok(());
        }
        // Its idle time restarts, so that no one claims it meanwhile (the
        // consumer's task keeps it so until it is due).
        let ours = self
            .redis
            .own(&self.key, &self.group, &self.name, Own::Touch, &[entry.id.as_str()])
            .await;
        match ours {
            Ok(ours) if !ours.contains_key(&entry.id) => {
                debug!(topic = %self.topic, id = %entry.id, "a nacked entry was claimed by another consumer");
                return Ok(());
            }
            Ok(_) => {}
            // Due all the same: its claim then says whether it is still ours.
            Err(e) => warn!(topic = %self.topic, id = %entry.id, error = %e, "cannot keep a nacked entry"),
        }
        let due = after(delay.unwrap_or_else(|| self.options.delay(count)));
        let mut state = self.lock();
        let seq = state.next_token();
        state.retries.insert((due, seq), entry);
        state.urgent = true;
        Ok(())
    }

    /// Restarts the ack wait of delivery `token`.
    pub(super) async fn extend(&self, token: u64) -> Result<(), EventsError> {
        let id = match self.lock().held.get(&token) {
            Some(held) if !self.stop.is_cancelled() => held.entry.id.clone(),
            _ => return Ok(()),
        };
        let ours = self
            .redis
            .own(&self.key, &self.group, &self.name, Own::Touch, &[id.as_str()])
            .await?;
        let deadline = after(self.options.ack_wait);
        let mut state = self.lock();
        if ours.contains_key(&id) {
            if let Some(held) = state.held.get_mut(&token) {
                held.deadline = deadline;
            }
        } else if state.held.remove(&token).is_some() {
            // Another consumer claimed it: this delivery is over.
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Publishes `entry`'s event to the dead-letter topic, saying how many
    /// times it was delivered and why the last failed, then acks it. The
    /// dead letter's id is the event's and the group's: a repeat (after a
    /// crash between the two steps) is dropped.
    pub(super) async fn dead_letter(&self, entry: &Entry, deliveries: u32, reason: &str) -> Result<(), EventsError> {
        let (topic, options) = self
            .options
            .spent(&self.topic, &self.group, &entry.event, deliveries, reason);
        let dead = options.event(&topic, entry.event.payload.clone())?;
        self.redis.add(&dead, true).await?;
        self.redis.ack(&self.key, &self.group, &entry.id).await
    }
}

/// An ack under way: finished in a task of its own if dropped before done.
struct PendingAck {
    shared: Arc<Shared>,
    id: Option<String>,
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = shared.redis.ack(&shared.key, &shared.group, &id).await {
                        warn!(topic = %shared.topic, %id, error = %e, "cannot ack an entry");
                    }
                });
            }
            // Claimed again once idle for the ack wait.
            Err(_) => warn!(topic = %shared.topic, %id, "cannot finish an ack: no runtime"),
        }
    }
}
