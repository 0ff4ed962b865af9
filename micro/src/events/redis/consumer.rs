//! One consumer's task: it reads new entries (`XREADGROUP`), claims back
//! the group's entries idle for the ack wait (`XAUTOCLAIM`: what a crashed
//! consumer held, or what this one did not settle in time) and redelivers
//! nacked entries after their backoff, handing out at most `concurrency`
//! unsettled events at once. When the consumer stops it gives back what it
//! held and deletes its name (or its own group).
//!
//! New entries are read ahead, up to a window, with one `XREADGROUP`, and
//! wait in the task's queue, in order, for room to hand them out; while
//! they wait they are kept from looking idle to the group (touched on each
//! tick, and again before they are handed out if they waited long), and
//! when the consumer stops they are given back at once, uncounted.
//!
//! One task does all of this in turn, so that what it holds is counted in
//! one place; a blocked read is ended early (`CLIENT UNBLOCK`) when a
//! nacked event comes due or the consumer stops.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::streams::StreamReadReply;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::client::{BLOCK_MAX, Own, Reader, Redis};
pub(super) use super::entry::Entry;
use super::failed;
use crate::BoxFuture;
use crate::events::{Acknowledge, ConsumeOptions, Event, EventsError, Settle};

/// How a consumer's events reach it when settled.
struct Settler(pub(super) Arc<Shared>);

impl Acknowledge for Settler {
    fn settle(&self, token: u64, settle: Settle) -> BoxFuture<'_, Result<(), EventsError>> {
        let shared = Arc::clone(&self.0);
        // An ack is not in a task of its own: it is finished in one only
        // if the caller stops waiting for it. The rest are, so that they
        // are done even if the caller stops waiting.
        let task = match settle {
            Settle::Ack => return Box::pin(shared.ack(token)),
            Settle::Extend => tokio::spawn(async move { shared.extend(token).await }),
            Settle::Nack { delay, reason } => {
                tokio::spawn(async move { shared.nack_token(token, delay, &reason).await })
            }
        };
        Box::pin(async move { task.await.map_err(failed)? })
    }
}

/// Backoff between attempts while Redis fails: at most 10 a second.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// `XAUTOCLAIM` calls per pass; the rest of a long pending list waits for
/// the next pass.
const RECLAIM_CALLS: usize = 16;
/// Entries touched per script call.
const TOUCH_BATCH: usize = 256;
/// The most new entries read ahead at once (at least `concurrency`). A
/// read asks for `concurrency` entries, and twice as many as the last
/// while the last came back full (a backlog): so a group's consumers share
/// a backlog rather than the first to read taking it all.
const WINDOW: usize = 64;

/// What a consumer's task and its events' settling share.
pub(super) struct Shared {
    pub(super) redis: Redis,
    pub(super) topic: String,
    pub(super) key: String,
    pub(super) group: String,
    /// This consumer's name in the group.
    pub(super) name: String,
    /// Where the group was created, to create it again if it vanishes.
    pub(super) start: String,
    /// Whether the group is this consumer's own.
    pub(super) ephemeral: bool,
    pub(super) options: ConsumeOptions,
    pub(super) state: Mutex<State>,
    /// Rung when an event is settled.
    pub(super) wake: Notify,
    pub(super) stop: CancellationToken,
}

/// The events this consumer handed out and those it will hand out again.
#[derive(Default)]
pub(super) struct State {
    tokens: u64,
    /// Handed out, not settled, by delivery token.
    pub(super) held: HashMap<u64, Held>,
    /// Nacked, by when they are due (and a token to keep keys apart).
    pub(super) retries: BTreeMap<(Instant, u64), Entry>,
    /// A nacked event is due sooner than the read in progress ends.
    pub(super) urgent: bool,
}

pub(super) struct Held {
    pub(super) entry: Entry,
    pub(super) deadline: Instant,
}

impl State {
    /// A number not given out before, for a delivery or a retry.
    pub(super) fn next_token(&mut self) -> u64 {
        self.tokens += 1;
        self.tokens
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a delivery may go unsettled.
    fn ack_wait(&self) -> Duration {
        self.options.ack_wait
    }
}

/// `delay` from now (far off for a delay too long to count).
pub(super) fn after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Starts the task of the consumer `shared`, reading on `reader` and
/// handing events to `events`.
pub(super) fn spawn(shared: Arc<Shared>, reader: Reader, events: mpsc::Sender<Event>) -> tokio::task::JoinHandle<()> {
    // Every half ack wait: an entry idle for the ack wait is then claimed
    // within one and a half; never rarer than BLOCK_MAX, so that entries a
    // stopped consumer gave back are taken up soon.
    let tick = (shared.ack_wait() / 2).clamp(Duration::from_millis(100), BLOCK_MAX);
    let task = Task {
        settle: Arc::new(Settler(Arc::clone(&shared))),
        window: shared.options.concurrency,
        shared,
        events,
        reader: Some(reader),
        tick,
        next_tick: Instant::now(),
        reclaim: true,
        cursor: "0-0".to_owned(),
        queue: VecDeque::new(),
        undelivered: Vec::new(),
    };
    tokio::spawn(task.run())
}

/// An entry read ahead, and since when it is idle as the group sees it.
struct Waiting {
    entry: Entry,
    since: Instant,
}

struct Task {
    shared: Arc<Shared>,
    settle: Arc<dyn Acknowledge>,
    events: mpsc::Sender<Event>,
    /// `None` after a failure, until connected again.
    reader: Option<Reader>,
    tick: Duration,
    next_tick: Instant,
    /// Whether to look for idle entries to claim.
    reclaim: bool,
    cursor: String,
    /// How many new entries the next read asks for.
    window: usize,
    /// Entries read ahead, in order, waiting for room to be handed out.
    queue: VecDeque<Waiting>,
    /// Entries taken while the consumer was going away, to give back.
    undelivered: Vec<Entry>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        while !self.shared.stop.is_cancelled() {
            match self.step().await {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(e) => {
                    let (topic, group) = (&self.shared.topic, &self.shared.group);
                    warn!(%topic, %group, error = %e, retry_in = ?backoff, "redis consumer failed");
                    self.reader = None;
                    tokio::select! {
                        () = self.shared.stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.finish().await;
    }

    /// One turn: reconnect if need be, redeliver what is due, claim what is
    /// idle, then read (or wait while the consumer has no room).
    async fn step(&mut self) -> Result<(), EventsError> {
        if self.reader.is_none() {
            self.reader = Some(self.shared.redis.reader().await.map_err(failed)?);
        }
        let now = Instant::now();
        self.shared.lock().urgent = false;
        if self.expire(now) {
            self.reclaim = true;
        }
        if now >= self.next_tick {
            self.next_tick = now + self.tick;
            self.reclaim = true;
            self.touch_retries().await?;
            self.touch_waiting(self.queue.len()).await?;
        }
        self.redeliver_due().await?;
        if self.reclaim && self.room() > 0 {
            self.reclaim().await?;
        }
        self.hand_out().await?;
        if self.room() > 0 && self.queue.is_empty() {
            self.read().await
        } else {
            self.idle().await;
            Ok(())
        }
    }

    /// How many more events may be handed out now.
    fn room(&self) -> usize {
        let held = self.shared.lock().held.len();
        self.shared
            .options
            .concurrency
            .saturating_sub(held)
            .min(self.events.capacity())
    }

    /// Deliveries past their ack wait failed: their entries are claimed
    /// again by whoever looks first (this task included). Whether any did.
    fn expire(&self, now: Instant) -> bool {
        let mut state = self.shared.lock();
        let before = state.held.len();
        state.held.retain(|_, held| held.deadline > now);
        before != state.held.len()
    }

    /// Keeps the entries waiting to be redelivered from looking idle to
    /// the group; forgets those another consumer claimed meanwhile.
    async fn touch_retries(&mut self) -> Result<(), EventsError> {
        let ids: Vec<String> = self.shared.lock().retries.values().map(|e| e.id.clone()).collect();
        for batch in ids.chunks(TOUCH_BATCH) {
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            let s = &self.shared;
            let ours = s.redis.own(&s.key, &s.group, &s.name, Own::Touch, &batch).await?;
            let asked: HashSet<&str> = batch.into_iter().collect();
            let mut state = s.lock();
            state
                .retries
                .retain(|_, e| ours.contains_key(&e.id) || !asked.contains(e.id.as_str()));
        }
        Ok(())
    }

    /// Keeps the first `n` entries read ahead from looking idle to the
    /// group (their ack wait starts again); forgets those another consumer
    /// claimed meanwhile.
    async fn touch_waiting(&mut self, n: usize) -> Result<(), EventsError> {
        let n = n.min(self.queue.len());
        let mut ours = HashMap::new();
        {
            let ids: Vec<&str> = self.queue.iter().take(n).map(|w| w.entry.id.as_str()).collect();
            let s = &self.shared;
            for batch in ids.chunks(TOUCH_BATCH) {
                ours.extend(s.redis.own(&s.key, &s.group, &s.name, Own::Touch, batch).await?);
            }
        }
        let at = Instant::now();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for (i, mut waiting) in self.queue.drain(..).enumerate() {
            if i >= n {
                kept.push_back(waiting);
            } else if ours.contains_key(&waiting.entry.id) {
                waiting.since = at;
                kept.push_back(waiting);
            } else {
                debug!(topic = %self.shared.topic, id = %waiting.entry.id, "an entry read ahead was claimed by another consumer");
            }
        }
        self.queue = kept;
        Ok(())
    }

    /// Hands out the entries read ahead, in order, as room allows; those
    /// that waited long are touched first, so that the ack wait they are
    /// handed out with is the group's.
    async fn hand_out(&mut self) -> Result<(), EventsError> {
        let room = self.room();
        let n = room.min(self.queue.len());
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let stale = self.shared.ack_wait() / 10;
        if self
            .queue
            .iter()
            .take(n)
            .any(|w| now.saturating_duration_since(w.since) > stale)
        {
            self.touch_waiting(n).await?;
        }
        for _ in 0..n {
            let Some(waiting) = self.queue.pop_front() else {
                break;
            };
            self.offer(waiting.entry, waiting.since, false).await;
        }
        Ok(())
    }

    /// Hands out again the nacked entries that are due, as room allows.
    async fn redeliver_due(&mut self) -> Result<(), EventsError> {
        let room = self.room();
        let now = Instant::now();
        let due: Vec<((Instant, u64), Entry)> = {
            let mut state = self.shared.lock();
            let keys: Vec<(Instant, u64)> = state
                .retries
                .range(..=(now, u64::MAX))
                .map(|(k, _)| *k)
                .take(room)
                .collect();
            keys.into_iter()
                .filter_map(|k| state.retries.remove(&k).map(|e| (k, e)))
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = due.iter().map(|(_, e)| e.id.as_str()).collect();
        let s = Arc::clone(&self.shared);
        let claimed = match s.redis.own(&s.key, &s.group, &s.name, Own::Claim, &ids).await {
            Ok(claimed) => claimed,
            Err(e) => {
                self.shared.lock().retries.extend(due);
                return Err(e);
            }
        };
        let at = Instant::now();
        for (_, mut entry) in due {
            match claimed.get(&entry.id) {
                Some(&times) => {
                    entry.times = times;
                    self.deliver(entry, at);
                }
                None => debug!(topic = %s.topic, id = %entry.id, "a nacked entry was claimed by another consumer"),
            }
        }
        Ok(())
    }

    /// Claims entries of the group idle for the ack wait, as room allows.
    async fn reclaim(&mut self) -> Result<(), EventsError> {
        for _ in 0..RECLAIM_CALLS {
            let room = self.room();
            if room == 0 {
                // More may be idle: go on once there is room.
                return Ok(());
            }
            let s = Arc::clone(&self.shared);
            let (cursor, claimed) = s
                .redis
                .reclaim(&s.key, &s.group, &s.name, s.ack_wait(), &self.cursor, room)
                .await?;
            let at = Instant::now();
            for (id, times, fields) in claimed {
                let entry = Entry::decode(&s.topic, id, &fields, times);
                self.forget(&entry.id);
                self.offer(entry, at, true).await;
            }
            self.cursor = cursor;
            if self.cursor == "0-0" {
                self.reclaim = false;
                return Ok(());
            }
        }
        self.reclaim = false;
        Ok(())
    }

    /// Drops what this consumer still had of an entry it claimed again
    /// (its earlier delivery is over).
    fn forget(&mut self, id: &str) {
        self.queue.retain(|w| w.entry.id != id);
        let mut state = self.shared.lock();
        state.held.retain(|_, held| held.entry.id != id);
        state.retries.retain(|_, entry| entry.id != id);
    }

    /// Reads new entries ahead into the queue, up to the window, blocking
    /// until the next thing this task must do.
    async fn read(&mut self) -> Result<(), EventsError> {
        let Some(reader) = self.reader.clone() else {
            return Ok(());
        };
        let window = self.window;
        let block = self.next_wake().saturating_duration_since(Instant::now());
        let block = block.clamp(Duration::from_millis(1), BLOCK_MAX);
        let s = Arc::clone(&self.shared);
        let mut cmd = ::redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&s.group).arg(&s.name).arg("COUNT").arg(window);
        cmd.arg("BLOCK").arg(block.as_millis() as u64);
        cmd.arg("STREAMS").arg(&s.key).arg(">");
        let mut conn = reader.conn.clone();
        let read = cmd.query_async::<Option<StreamReadReply>>(&mut conn);
        tokio::pin!(read);
        let mut unblocked = false;
        let reply = loop {
            tokio::select! {
                biased;
                reply = &mut read => break reply,
                () = s.stop.cancelled(), if !unblocked => {
                    unblocked = true;
                    self.unblock(&reader).await;
                }
                () = s.wake.notified(), if !unblocked => {
                    if std::mem::take(&mut s.lock().urgent) {
                        unblocked = true;
                        self.unblock(&reader).await;
                    }
                }
            }
        };
        let reply = match reply {
            Ok(reply) => reply.unwrap_or_default(),
            Err(e) if e.code() == Some("NOGROUP") => {
                warn!(topic = %s.topic, group = %s.group, "the group is gone: creating it again");
                return s.redis.create_group(&s.key, &s.group, &s.start).await;
            }
            Err(e) => return Err(failed(e)),
        };
        let at = Instant::now();
        let before = self.queue.len();
        for id in reply.keys.into_iter().flat_map(|k| k.ids) {
            let fields = id
                .map
                .into_iter()
                .filter_map(|(name, value)| Some((name, ::redis::from_redis_value::<Vec<u8>>(value).ok()?)))
                .collect();
            let entry = Entry::decode(&s.topic, id.id, &fields, 1);
            self.queue.push_back(Waiting { entry, since: at });
        }
        let concurrency = s.options.concurrency;
        self.window = if self.queue.len() - before >= window {
            window.saturating_mul(2).min(WINDOW.max(concurrency))
        } else {
            concurrency
        };
        Ok(())
    }

    /// Ends the read in progress on `reader` (if Redis lets us: otherwise
    /// it ends by its block time).
    async fn unblock(&self, reader: &Reader) {
        if let Some(id) = reader.id
            && let Err(e) = self.shared.redis.unblock(id).await
        {
            debug!(error = %e, "cannot end a blocked read early");
        }
    }

    /// When this task must act next: its tick, a delivery's ack wait
    /// ending, a nacked event due.
    fn next_wake(&self) -> Instant {
        let state = self.shared.lock();
        let deadline = state.held.values().map(|h| h.deadline).min();
        let retry = state.retries.keys().next().map(|(at, _)| *at);
        [deadline, retry]
            .into_iter()
            .flatten()
            .fold(self.next_tick, Instant::min)
    }

    /// Waits, without room to hand out more, for an event to be settled, a
    /// delivery's ack wait to end, or the next tick.
    async fn idle(&self) {
        let wake = {
            let state = self.shared.lock();
            let deadline = state.held.values().map(|h| h.deadline).min();
            deadline.map_or(self.next_tick, |d| d.min(self.next_tick))
        };
        tokio::select! {
            () = self.shared.stop.cancelled() => {}
            () = self.shared.wake.notified() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }

    /// Hands out `entry`, taken at `at`; dead-letters it instead if it
    /// cannot be decoded or its retries are spent (`expired`: its last
    /// delivery was not settled in time).
    async fn offer(&mut self, entry: Entry, at: Instant, expired: bool) {
        let s = Arc::clone(&self.shared);
        let count = entry.count();
        let limit = s.options.retry_limit.map(|r| r.saturating_add(1));
        let spent = match &entry.broken {
            Some(reason) => Some((count, reason.clone())),
            None if limit.is_some_and(|limit| count > limit) => {
                let reason = if expired { "ack wait expired" } else { "nacked" };
                Some((count - 1, reason.to_owned()))
            }
            None => None,
        };
        match spent {
            Some((deliveries, reason)) => {
                if let Err(e) = s.dead_letter(&entry, deliveries, &reason).await {
                    // It stays pending: claimed and tried again later.
                    warn!(topic = %s.topic, id = %entry.id, error = %e, "cannot dead-letter an entry");
                }
            }
            None => self.deliver(entry, at),
        }
    }

    /// Hands out `entry`, delivered by Redis at `at`.
    fn deliver(&mut self, entry: Entry, at: Instant) {
        let mut state = self.shared.lock();
        let token = state.next_token();
        let event = entry
            .event
            .clone()
            .delivered(Arc::clone(&self.settle), token, entry.count());
        let deadline = at
            .checked_add(self.shared.ack_wait())
            .unwrap_or_else(|| after(self.shared.ack_wait()));
        state.held.insert(token, Held { entry, deadline });
        if self.events.try_send(event).is_err()
            && let Some(held) = state.held.remove(&token)
        {
            // The consumer is going: given back when the task ends.
            self.undelivered.push(held.entry);
        }
    }

    /// The consumer stopped: what it held goes back to the group at once,
    /// uncounted if it was never handed out; then its name goes (if it holds
    /// nothing now), or its own group.
    async fn finish(mut self) {
        let waiting = std::mem::take(&mut self.queue);
        self.undelivered.extend(waiting.into_iter().map(|w| w.entry));
        let s = &self.shared;
        let held: Vec<Entry> = s.lock().held.drain().map(|(_, h)| h.entry).collect();
        let result = if s.ephemeral {
            let mut cmd = ::redis::cmd("XGROUP");
            cmd.arg("DESTROY").arg(&s.key).arg(&s.group);
            s.redis.query::<i64>(&cmd).await.map(drop).map_err(failed)
        } else {
            let back: Vec<(String, Option<u32>)> = held
                .iter()
                .map(|e| (e.id.clone(), None))
                .chain(
                    self.undelivered
                        .iter()
                        .map(|e| (e.id.clone(), Some(e.times.saturating_sub(1)))),
                )
                .collect();
            let released = if back.is_empty() {
                Ok(())
            } else {
                s.redis.release(&s.key, &s.group, &s.name, &back).await
            };
            match released {
                Ok(()) => s.redis.leave(&s.key, &s.group, &s.name).await.map(drop),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => debug!(topic = %s.topic, group = %s.group, consumer = %s.name, "redis consumer stopped"),
            // What it held is claimed once idle for the ack wait.
            Err(e) => warn!(topic = %s.topic, group = %s.group, error = %e, "cannot clean up after a redis consumer"),
        }
    }
}
