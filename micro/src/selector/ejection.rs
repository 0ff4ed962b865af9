//! Ejection: a node that refused a connection, or timed out three times in
//! a row, is passed over for a while, unless no other node is left; an
//! answer clears its record. A wrapper, so that it serves any strategy.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use foldhash::HashMap;
use tokio::time::Instant;

use super::{Outcome, Pick, Pool, Selector};
use crate::registry::Node;

/// How long an ejected node is skipped.
pub const DEFAULT_EJECTION: Duration = Duration::from_secs(10);
/// Consecutive timeouts that eject a node.
const TIMEOUTS_TO_EJECT: u32 = 3;

/// Passes over the nodes that failed, then lets `S` pick.
#[derive(Debug)]
pub struct Ejecting<S> {
    inner: S,
    ejection: Duration,
    health: Mutex<HashMap<String, Health>>,
}

#[derive(Debug, Default)]
struct Health {
    timeouts: u32,
    ejected_until: Option<Instant>,
}

impl<S: Selector> Ejecting<S> {
    /// `inner`, passing over failed nodes for [`DEFAULT_EJECTION`].
    pub fn new(inner: S) -> Self {
        Self::with_ejection(inner, DEFAULT_EJECTION)
    }

    /// `inner`, passing over failed nodes for `ejection`.
    pub fn with_ejection(inner: S, ejection: Duration) -> Self {
        Ejecting {
            inner,
            ejection,
            health: Mutex::default(),
        }
    }

    fn health(&self) -> MutexGuard<'_, HashMap<String, Health>> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `node_id` is ejected now.
    pub fn is_ejected(&self, node_id: &str) -> bool {
        let now = Instant::now();
        self.health()
            .get(node_id)
            .and_then(|h| h.ejected_until)
            .is_some_and(|until| until > now)
    }
}

impl<S: Selector> Selector for Ejecting<S> {
    fn select<'a>(&self, pool: &Pool<'a, '_>) -> Option<Pick<'a>> {
        let health = self.health();
        if health.is_empty() {
            drop(health);
            return self.inner.select(pool);
        }
        let now = Instant::now();
        let healthy = |node: &Node| {
            health
                .get(&node.id)
                .and_then(|h| h.ejected_until)
                .is_none_or(|until| until <= now)
        };
        // Before the call's own preferences: a healthy node already tried
        // beats an ejected one not yet tried.
        let pool = pool.prefer_first(&healthy);
        self.inner.select(&pool)
    }

    fn mark(&self, node_id: &str, outcome: Outcome) {
        {
            let mut health = self.health();
            match outcome {
                Outcome::Answered => {
                    if !health.is_empty() {
                        health.remove(node_id);
                    }
                }
                Outcome::Unreachable => {
                    health.entry(node_id.to_owned()).or_default().ejected_until = Some(Instant::now() + self.ejection);
                }
                Outcome::TimedOut => {
                    let entry = health.entry(node_id.to_owned()).or_default();
                    entry.timeouts += 1;
                    if entry.timeouts >= TIMEOUTS_TO_EJECT {
                        entry.timeouts = 0;
                        entry.ejected_until = Some(Instant::now() + self.ejection);
                    }
                }
            }
        }
        self.inner.mark(node_id, outcome);
    }
}
