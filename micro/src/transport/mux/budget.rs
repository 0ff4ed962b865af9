//! The room a mux connection has for frames waiting to be written: each
//! frame takes its size (a frame larger than the whole budget takes all of
//! it) and the writer gives it back once the frame is written. A sender that
//! finds no room waits; while the server's reader waits so, it reads no more
//! calls, and a peer that never reads its answers stops being read.
//!
//! A counter and a `Notify` rather than a semaphore: taking and giving back
//! room is an atomic operation or two, and only a release that finds
//! someone waiting takes a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A connection's outbound budget; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    /// Bytes taken and not given back.
    used: AtomicUsize,
    /// Senders waiting for room.
    waiting: AtomicUsize,
    room: Notify,
    closed: AtomicBool,
}

/// Room taken from a [`Budget`] for one or more frames: the writer gives it
/// back with [`Budget::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Room(usize);

impl Room {
    /// No room: what a frame sent outside the budget holds.
    pub(crate) const NONE: Room = Room(0);

    /// The room of two frames together.
    pub(crate) fn and(self, other: Room) -> Room {
        Room(self.0 + other.0)
    }
}

/// The writer went away: the connection is closed.
#[derive(Debug)]
pub(crate) struct Closed;

impl Budget {
    /// A budget of `size` bytes.
    pub(crate) fn new(size: usize) -> Budget {
        Budget {
            shared: Arc::new(Shared {
                size: size.max(1),
                used: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                room: Notify::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Takes room for a frame of `len` bytes, waiting until there is as much.
    pub(crate) async fn reserve(&self, len: usize) -> Result<Room, Closed> {
        let share = len.clamp(1, self.shared.size);
        match self.try_take(share) {
            Some(true) => Ok(Room(share)),
            Some(false) => self.wait(share).await,
            None => Err(Closed),
        }
    }

    /// Takes room for a frame of `len` bytes if there is as much now.
    pub(crate) fn try_reserve(&self, len: usize) -> Result<Option<Room>, Closed> {
        let share = len.clamp(1, self.shared.size);
        match self.try_take(share) {
            Some(taken) => Ok(taken.then_some(Room(share))),
            None => Err(Closed),
        }
    }

    /// Takes `share` if there is room: `Some(false)` when there is not,
    /// `None` once the budget is closed.
    fn try_take(&self, share: usize) -> Option<bool> {
        let shared = &*self.shared;
        let mut used = shared.used.load(Ordering::SeqCst);
        loop {
            if shared.closed.load(Ordering::SeqCst) {
                return None;
            }
            if used + share > shared.size {
                return Some(false);
            }
            match shared
                .used
                .compare_exchange_weak(used, used + share, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Some(true),
                Err(now) => used = now,
            }
        }
    }

    /// Waits for room for `share`. The waiter is counted, then registered,
    /// then looks again: a release either leaves room it sees, or sees it
    /// waiting and wakes it.
    async fn wait(&self, share: usize) -> Result<Room, Closed> {
        let shared = &*self.shared;
        shared.waiting.fetch_add(1, Ordering::SeqCst);
        let taken = loop {
            let notified = shared.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_take(share) {
                Some(true) => break Ok(Room(share)),
                None => break Err(Closed),
                Some(false) => notified.await,
            }
        };
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        taken
    }

    /// Gives back the room of frames that were written.
    pub(crate) fn release(&self, room: Room) {
        let shared = &*self.shared;
        if room.0 == 0 {
            return;
        }
        shared.used.fetch_sub(room.0, Ordering::SeqCst);
        if shared.waiting.load(Ordering::SeqCst) > 0 {
            shared.room.notify_waiters();
        }
    }

    /// Fails every sender waiting for room, and every later one.
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_sender_waits_for_room_and_a_release_wakes_it() {
        let budget = Budget::new(100);
        let first = budget.reserve(80).await.unwrap();
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "there was no room for 50 more");
        budget.release(first);
        let woke = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(woke.is_ok_and(|r| r.is_ok_and(|r| r.is_ok())));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_budget_takes_all_of_it_and_closing_fails_waiters() {
        let budget = Budget::new(100);
        let all = budget.reserve(10_000).await.unwrap();
        assert_eq!(all, Room(100));
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(1).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        budget.close();
        let failed = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(
            failed.is_ok_and(|r| r.is_ok_and(|r| r.is_err())),
            "closing fails the waiter"
        );
    }
}
