//! The time a store judges expiry by: the wall clock when the store was
//! opened, advanced by tokio's clock since. Expiry then follows tokio's
//! (pausable) time in tests, and a wall clock stepped back or forth while
//! the store is open does not revive or expire records.

use std::time::SystemTime;

use tokio::time::Instant;

/// A store's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: SystemTime,
    at: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            wall: SystemTime::now(),
            at: Instant::now(),
        }
    }

    /// The time now.
    pub(crate) fn now(&self) -> SystemTime {
        self.wall + self.at.elapsed()
    }
}
