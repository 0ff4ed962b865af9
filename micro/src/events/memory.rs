//! The memory stream: every topic a log in this process, every group a
//! task that hands the log's events to the group's consumers in turn,
//! redelivers what is nacked or not settled in time, and dead-letters what
//! runs out of retries. Nothing survives the process.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Acknowledge, ConsumeOptions, Consumer, Event, EventsError, PublishOptions, Settle, Start, Stream};
use crate::BoxFuture;

/// A stream in memory, for one process and for tests. Cheap to clone;
/// clones share the topics.
#[derive(Clone, Default)]
pub struct MemoryStream {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
    /// Where events and groups' positions are kept across restarts, for the
    /// file stream.
    durable: Option<Arc<dyn Durable>>,
}

/// A group's position: the index it reads next, and the later indices it
/// acked already.
pub(crate) type Position = (usize, BTreeSet<usize>);

/// What keeps a stream's events and its groups' positions (the file
/// stream's log).
pub(crate) trait Durable: Send + Sync {
    /// Stores a published event (it has its sequence) before it is seen.
    fn append(&self, event: &Event) -> Result<(), EventsError>;
    /// The position of `group` on `topic`, if it was ever created: the
    /// index it reads next and the later indices already acked.
    fn position(&self, topic: &str, group: &str) -> Option<Position>;
    /// Records that `group` starts at `index`.
    fn create(&self, topic: &str, group: &str, index: usize);
    /// Records that `group` acked the event at `index`.
    fn ack(&self, topic: &str, group: &str, index: usize);
}

impl std::fmt::Debug for MemoryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStream").finish_non_exhaustive()
    }
}

/// One topic: its events in order, the ids seen, its groups.
#[derive(Default)]
struct Topic {
    log: Arc<Mutex<Vec<Event>>>,
    ids: HashSet<String>,
    groups: HashMap<String, mpsc::UnboundedSender<Command>>,
}

/// What a group's task is told.
enum Command {
    /// The topic has a new event.
    Published,
    /// A consumer joins.
    Join { member: u64, events: mpsc::Sender<Event> },
    /// A consumer left.
    Leave { member: u64 },
    /// A delivered event was settled.
    Settled { token: u64, settle: Settle },
}

impl MemoryStream {
    /// An empty stream.
    pub fn new() -> Self {
        MemoryStream::default()
    }

    /// The stream every caller of `shared` in this process shares (what
    /// `--events memory` gives each service).
    pub fn shared() -> Self {
        static SHARED: std::sync::OnceLock<MemoryStream> = std::sync::OnceLock::new();
        SHARED.get_or_init(MemoryStream::new).clone()
    }

    /// A stream keeping its events and positions in `durable`, holding
    /// `events` (in order) already.
    pub(crate) fn durable(durable: Arc<dyn Durable>, events: Vec<Event>) -> Self {
        let stream = MemoryStream {
            topics: Arc::default(),
            durable: Some(durable),
        };
        {
            let mut topics = stream.topics();
            for event in events {
                let topic = topics.entry(event.topic.clone()).or_default();
                topic.ids.insert(event.id.clone());
                topic.log.lock().unwrap_or_else(|p| p.into_inner()).push(event);
            }
        }
        stream
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes at once, on this thread.
    pub(crate) fn publish_now(
        &self,
        topic: &str,
        payload: Bytes,
        options: PublishOptions,
    ) -> Result<String, EventsError> {
        self.append(topic, payload, options)
    }

    fn append(&self, topic: &str, payload: Bytes, options: PublishOptions) -> Result<String, EventsError> {
        let mut event = options.event(topic, payload)?;
        let id = event.id.clone();
        let mut topics = self.topics();
        let entry = topics.entry(topic.to_owned()).or_default();
        if !entry.ids.insert(id.clone()) {
            debug!(topic, id, "a repeated event id: dropped");
            return Ok(id);
        }
        // Publishes are one at a time under the topics' lock; the log's own
        // lock, which the groups read under, is not held while the event
        // is written to disk.
        let log = Arc::clone(&entry.log);
        event.sequence = Some(log.lock().unwrap_or_else(|p| p.into_inner()).len() as u64 + 1);
        if let Some(durable) = &self.durable
            && let Err(e) = durable.append(&event)
        {
            entry.ids.remove(&id);
            return Err(e);
        }
        log.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        entry.groups.retain(|_, group| group.send(Command::Published).is_ok());
        Ok(id)
    }

    fn join(&self, topic: &str, options: ConsumeOptions) -> Result<Consumer, EventsError> {
        options.check(topic)?;
        let ephemeral = options.group.is_none();
        let group = options
            .group
            .clone()
            .unwrap_or_else(|| format!("consumer-{}", uuid::Uuid::new_v4()));
        let member = fastrand::u64(..);
        let (tx, rx) = mpsc::channel(options.concurrency);
        let stop = CancellationToken::new();
        let commands = {
            let mut topics = self.topics();
            let entry = topics.entry(topic.to_owned()).or_default();
            let live = entry.groups.get(&group).filter(|g| !g.is_closed()).cloned();
            match live {
                Some(commands) => commands,
                None => {
                    let (commands, inbox) = mpsc::unbounded_channel();
                    let log = Arc::clone(&entry.log);
                    // A named group of a durable stream goes on where it was.
                    let durable = self.durable.as_ref().filter(|_| !ephemeral);
                    let (next, acked) = match durable.and_then(|d| d.position(topic, &group)) {
                        Some(position) => position,
                        None => {
                            let next = start_index(&log, options.start);
                            if let Some(durable) = durable {
                                durable.create(topic, &group, next);
                            }
                            (next, BTreeSet::new())
                        }
                    };
                    let mut task = GroupTask::new(self, topic, &group, log, next, options.clone(), commands.clone());
                    task.acked = acked;
                    task.acks = durable.map(Arc::downgrade);
                    tokio::spawn(task.run(inbox, ephemeral));
                    entry.groups.insert(group.clone(), commands.clone());
                    commands
                }
            }
        };
        let _ = commands.send(Command::Join { member, events: tx });
        let leave = commands.clone();
        let stopped = stop.clone();
        tokio::spawn(async move {
            stopped.cancelled().await;
            let _ = leave.send(Command::Leave { member });
        });
        Ok(Consumer::new(rx, options.auto_ack, stop))
    }
}

/// The index in `log` a new group starting at `start` reads first.
fn start_index(log: &Mutex<Vec<Event>>, start: Start) -> usize {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    match start {
        Start::New => log.len(),
        Start::All => 0,
        Start::Sequence(n) => usize::try_from(n.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(log.len()),
        Start::Time(at) => log.iter().position(|e| e.timestamp >= at).unwrap_or(log.len()),
    }
}

impl Stream for MemoryStream {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: Bytes,
        options: PublishOptions,
    ) -> BoxFuture<'a, Result<String, EventsError>> {
        Box::pin(std::future::ready(self.append(topic, payload, options)))
    }

    fn consume<'a>(&'a self, topic: &'a str, options: ConsumeOptions) -> BoxFuture<'a, Result<Consumer, EventsError>> {
        Box::pin(std::future::ready(self.join(topic, options)))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// A delivered event not settled yet.
struct InFlight {
    index: usize,
    member: u64,
    deadline: Instant,
}

/// A member of the group: where its events go, how many it holds.
struct Member {
    id: u64,
    events: mpsc::Sender<Event>,
    holding: usize,
}

/// The task that serves one group of one topic.
struct GroupTask {
    stream: Weak<Mutex<HashMap<String, Topic>>>,
    topic: String,
    group: String,
    log: Arc<Mutex<Vec<Event>>>,
    /// The next event no member was given yet.
    next: usize,
    options: ConsumeOptions,
    members: Vec<Member>,
    /// Where the turn of the round robin is.
    turn: usize,
    /// By delivery token.
    in_flight: HashMap<u64, InFlight>,
    /// Events to deliver again, by when.
    retries: BTreeSet<(Instant, usize)>,
    /// Deliveries so far, by log index.
    deliveries: BTreeMap<usize, u32>,
    /// Why each event's last delivery failed.
    errors: HashMap<usize, String>,
    tokens: u64,
    settle: Arc<dyn Acknowledge>,
    /// Indices past `next` acked before a restart, skipped.
    acked: BTreeSet<usize>,
    /// Where acks are recorded, for a named group of a durable stream.
    acks: Option<Weak<dyn Durable>>,
    /// The stream's store, which dead letters go to as well.
    store: Option<Weak<dyn Durable>>,
}

/// How settling reaches the group's task (weakly: the task ends once its
/// stream and consumers are gone, whatever events are still out).
struct Settler(mpsc::WeakUnboundedSender<Command>);

impl Acknowledge for Settler {
    fn settle(&self, token: u64, settle: Settle) -> BoxFuture<'_, Result<(), EventsError>> {
        let sent = self
            .0
            .upgrade()
            .and_then(|group| group.send(Command::Settled { token, settle }).ok())
            .ok_or_else(|| EventsError::Backend {
                backend: "memory",
                message: "the group is gone".to_owned(),
            });
        Box::pin(std::future::ready(sent))
    }
}

impl GroupTask {
    fn new(
        stream: &MemoryStream,
        topic: &str,
        group: &str,
        log: Arc<Mutex<Vec<Event>>>,
        next: usize,
        options: ConsumeOptions,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        GroupTask {
            stream: Arc::downgrade(&stream.topics),
            topic: topic.to_owned(),
            group: group.to_owned(),
            log,
            next,
            options,
            members: Vec::new(),
            turn: 0,
            in_flight: HashMap::new(),
            retries: BTreeSet::new(),
            deliveries: BTreeMap::new(),
            errors: HashMap::new(),
            tokens: 0,
            settle: Arc::new(Settler(commands.downgrade())),
            acked: BTreeSet::new(),
            acks: None,
            store: stream.durable.as_ref().map(Arc::downgrade),
        }
    }

    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>, ephemeral: bool) {
        loop {
            self.dispatch();
            let wake = self.next_wake();
            let command = match wake {
                Some(at) => tokio::select! {
                    command = inbox.recv() => command,
                    () = tokio::time::sleep_until(at) => {
                        self.expire();
                        continue;
                    }
                },
                None => inbox.recv().await,
            };
            let Some(command) = command else { return };
            match command {
                Command::Published => {}
                Command::Join { member, events } => self.members.push(Member {
                    id: member,
                    events,
                    holding: 0,
                }),
                Command::Leave { member } => {
                    self.leave(member);
                    if ephemeral && self.members.is_empty() {
                        return;
                    }
                }
                Command::Settled { token, settle } => self.settled(token, settle),
            }
        }
    }

    /// Gives events to members with room, round robin: due retries first,
    /// then the events no member had yet.
    fn dispatch(&mut self) {
        loop {
            while self.acked.remove(&self.next) {
                self.next += 1;
            }
            let now = Instant::now();
            let due = self.retries.first().filter(|(at, _)| *at <= now).copied();
            let index = match due {
                Some(retry) => retry.1,
                None if self.next < self.log_len() => self.next,
                None => return,
            };
            let Some(slot) = self.member_with_room() else { return };
            let Some(event) = self.event(index) else { return };
            let count = {
                let count = self.deliveries.entry(index).or_insert(0);
                *count += 1;
                *count
            };
            self.tokens += 1;
            let token = self.tokens;
            let delivered = event.delivered(Arc::clone(&self.settle), token, count);
            let member = &mut self.members[slot];
            match member.events.try_send(delivered) {
                Ok(()) => {
                    member.holding += 1;
                    let member = member.id;
                    self.in_flight.insert(
                        token,
                        InFlight {
                            index,
                            member,
                            deadline: now + self.options.ack_wait,
                        },
                    );
                    match due {
                        Some(retry) => {
                            self.retries.remove(&retry);
                        }
                        None => self.next += 1,
                    }
                }
                Err(_) => {
                    // Gone, or full after all: not a delivery.
                    if let Some(count) = self.deliveries.get_mut(&index) {
                        *count -= 1;
                    }
                    let member = member.id;
                    if self.members[slot].events.is_closed() {
                        self.leave(member);
                    } else {
                        return;
                    }
                }
            }
        }
    }

    fn log_len(&self) -> usize {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn event(&self, index: usize) -> Option<Event> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).get(index).cloned()
    }

    /// The next member in turn holding fewer events than it may.
    fn member_with_room(&mut self) -> Option<usize> {
        let n = self.members.len();
        (0..n)
            .map(|i| (self.turn + i) % n)
            .find(|&i| self.members[i].holding < self.options.concurrency)
            .inspect(|&i| self.turn = (i + 1) % n)
    }

    /// When the task must wake: the first retry due or ack wait ending.
    fn next_wake(&self) -> Option<Instant> {
        let retry = self.retries.first().map(|(at, _)| *at);
        let expiry = self.in_flight.values().map(|f| f.deadline).min();
        match (retry, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Events whose ack wait ended are failed deliveries.
    fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(token, _)| *token)
            .collect();
        for token in expired {
            let reason = format!("not settled within the ack wait of {:?}", self.options.ack_wait);
            self.failed(token, None, reason);
        }
    }

    fn settled(&mut self, token: u64, settle: Settle) {
        match settle {
            Settle::Ack => {
                if let Some(flight) = self.release(token) {
                    self.deliveries.remove(&flight.index);
                    self.errors.remove(&flight.index);
                    if let Some(acks) = self.acks.as_ref().and_then(Weak::upgrade) {
                        acks.ack(&self.topic, &self.group, flight.index);
                    }
                }
            }
            Settle::Nack { delay, reason } => self.failed(token, delay, reason),
            Settle::Extend => {
                if let Some(flight) = self.in_flight.get_mut(&token) {
                    flight.deadline = Instant::now() + self.options.ack_wait;
                }
            }
        }
    }

    /// Takes a delivery out of flight, freeing its member's room.
    fn release(&mut self, token: u64) -> Option<InFlight> {
        let flight = self.in_flight.remove(&token)?;
        if let Some(member) = self.members.iter_mut().find(|m| m.id == flight.member) {
            member.holding = member.holding.saturating_sub(1);
        }
        Some(flight)
    }

    /// A delivery failed: deliver it again after its backoff (or `delay`),
    /// or dead-letter it once its retries are spent.
    fn failed(&mut self, token: u64, delay: Option<Duration>, reason: String) {
        let Some(flight) = self.release(token) else { return };
        let count = self.deliveries.get(&flight.index).copied().unwrap_or(1);
        if self.options.retry_limit.is_some_and(|limit| count > limit) {
            self.dead_letter(flight.index, count, &reason);
            return;
        }
        self.errors.insert(flight.index, reason);
        let delay = delay.unwrap_or_else(|| self.options.delay(count));
        self.retries.insert((Instant::now() + delay, flight.index));
    }

    /// Publishes the event at `index` to the dead-letter topic, saying how
    /// many times it was delivered and why the last failed.
    fn dead_letter(&mut self, index: usize, count: u32, reason: &str) {
        self.deliveries.remove(&index);
        self.errors.remove(&index);
        let Some(event) = self.event(index) else { return };
        let (topic, options) = self.options.spent(&self.topic, &self.group, &event, count, reason);
        let Some(topics) = self.stream.upgrade() else { return };
        let stream = MemoryStream {
            topics,
            durable: self.store.as_ref().and_then(Weak::upgrade),
        };
        if let Err(e) = stream.append(&topic, event.payload.clone(), options) {
            warn!(topic, error = %e, "cannot dead-letter an event");
        }
    }

    /// A member left: what it held is delivered again at once.
    fn leave(&mut self, member: u64) {
        self.members.retain(|m| m.id != member);
        self.turn = 0;
        let held: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.member == member)
            .map(|(token, _)| *token)
            .collect();
        let now = Instant::now();
        for token in held {
            if let Some(flight) = self.in_flight.remove(&token) {
                self.retries.insert((now, flight.index));
            }
        }
    }
}
