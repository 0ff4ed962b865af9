//! Event streaming: at-least-once delivery from durable topics, Go Micro's
//! `events` package done as its README promises.
//!
//! A [`Stream`] publishes events to topics and hands them to consumers.
//! Consumers sharing a *group* share the group's events (each event goes to
//! one of them, round robin); every group gets every event. A group starts
//! where its first consumer asks ([`Start`]) and remembers its place, so a
//! consumer that stops and comes back loses nothing.
//!
//! A delivered event is acked, nacked (delivered again after a delay, with
//! backoff) or extended; one not settled within the ack wait is delivered
//! again. After its retries it goes to a dead-letter topic (`<topic>.dead`
//! by default) with its delivery count and last error: never dropped
//! silently. By default a consumer settles events itself only when it
//! wants to: asking for the next event acks the one before.
//!
//! Backends: [`FileStream`] (an embedded durable log, one file, the
//! default), [`MemoryStream`] (one process), `NatsStream` (NATS JetStream,
//! feature `nats`) and `RedisStream` (Redis Streams, feature `redis`), all
//! held to one conformance suite.

mod event;
mod file;
mod memory;
#[cfg(feature = "nats")]
mod nats;
mod publisher;
#[cfg(feature = "redis")]
mod redis;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::event::Event;
pub(crate) use self::event::{Acknowledge, Settle};
pub use self::file::FileStream;
pub use self::memory::MemoryStream;
#[cfg(feature = "nats")]
pub use self::nats::NatsStream;
pub use self::publisher::Publisher;
#[cfg(feature = "redis")]
pub use self::redis::RedisStream;
use crate::BoxFuture;

/// Metadata keys a dead-lettered event carries.
pub mod dead_letter {
    /// The topic it was first published to.
    pub const TOPIC: &str = "Micro-Dead-Letter-Topic";
    /// How many times it was delivered.
    pub const DELIVERIES: &str = "Micro-Dead-Letter-Deliveries";
    /// Why its last delivery failed.
    pub const ERROR: &str = "Micro-Dead-Letter-Error";
    /// The group that gave up on it.
    pub const GROUP: &str = "Micro-Dead-Letter-Group";
}

/// Why a stream operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// The topic is empty (Go Micro's `ErrMissingTopic`).
    #[error("missing topic")]
    MissingTopic,
    /// The payload could not be encoded.
    #[error("cannot encode the event: {0}")]
    Encode(String),
    /// An event could not be decoded.
    #[error("cannot decode an event of {topic}: {message}")]
    Decode {
        /// Its topic.
        topic: String,
        /// What was wrong.
        message: String,
    },
    /// The options are not valid.
    #[error("bad options: {0}")]
    Options(String),
    /// The backend failed.
    #[error("events backend {backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What it said.
        message: String,
    },
}

impl From<EventsError> for crate::Error {
    fn from(error: EventsError) -> crate::Error {
        crate::Error::internal_server_error("go.micro.events", error.to_string())
    }
}

/// How to publish one event.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The event's id (a new UUID when `None`): a repeated id is dropped
    /// where the backend deduplicates.
    pub id: Option<String>,
    /// Metadata the event carries.
    pub metadata: BTreeMap<String, String>,
    /// Its timestamp (now when `None`).
    pub timestamp: Option<SystemTime>,
}

impl PublishOptions {
    /// Sets the event's id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Adds a metadata pair.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

impl PublishOptions {
    /// The event these options publish to `topic`; an empty topic is
    /// Go Micro's `ErrMissingTopic`.
    pub(crate) fn event(self, topic: &str, payload: Bytes) -> Result<Event, EventsError> {
        if topic.is_empty() {
            return Err(EventsError::MissingTopic);
        }
        let mut event = Event::new(topic, payload);
        if let Some(id) = self.id {
            event.id = id;
        }
        if let Some(at) = self.timestamp {
            event.timestamp = at;
        }
        event.metadata = self.metadata;
        Ok(event)
    }
}

/// Where a new group starts reading its topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// Events published from now on (the default).
    #[default]
    New,
    /// Every event the topic holds.
    All,
    /// Events published at or after this time.
    Time(SystemTime),
    /// Events from this sequence number on (1 is the first event).
    Sequence(u64),
}

/// How to consume a topic.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumeOptions {
    /// The group (each event goes to one consumer of a group); `None` for a
    /// group of this consumer alone, which ends with it.
    pub group: Option<String>,
    /// Where a new group starts.
    pub start: Start,
    /// Whether asking for the next event acks the one before (default);
    /// otherwise every event must be acked or nacked.
    pub auto_ack: bool,
    /// How long a delivered event may go unsettled before it is delivered
    /// again (default 30 s).
    pub ack_wait: Duration,
    /// Deliveries after the first before an event is dead-lettered (`None`:
    /// no limit, the default).
    pub retry_limit: Option<u32>,
    /// The delay before the n-th redelivery of a nacked or expired event:
    /// `backoff[n-1]`, the last one repeating (default 1 s, 2 s, 5 s, 10 s,
    /// 30 s).
    pub backoff: Vec<Duration>,
    /// Where spent events go (default `<topic>.dead`).
    pub dead_letter: Option<String>,
    /// Events a consumer may hold unsettled at once (default 1, which keeps
    /// a topic's events in order within a consumer).
    pub concurrency: usize,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            group: None,
            start: Start::New,
            auto_ack: true,
            ack_wait: Duration::from_secs(30),
            retry_limit: None,
            backoff: [1, 2, 5, 10, 30].into_iter().map(Duration::from_secs).collect(),
            dead_letter: None,
            concurrency: 1,
        }
    }
}

impl ConsumeOptions {
    /// Consume as a member of `group`.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Where a new group starts.
    #[must_use]
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Settle every event by hand, redelivering it after `ack_wait` when
    /// it is not.
    #[must_use]
    pub fn manual_ack(mut self, ack_wait: Duration) -> Self {
        self.auto_ack = false;
        self.ack_wait = ack_wait;
        self
    }

    /// At most `limit` redeliveries, then the dead-letter topic.
    #[must_use]
    pub fn retry_limit(mut self, limit: u32) -> Self {
        self.retry_limit = Some(limit);
        self
    }

    /// The delays between redeliveries.
    #[must_use]
    pub fn backoff(mut self, delays: impl IntoIterator<Item = Duration>) -> Self {
        self.backoff = delays.into_iter().collect();
        self
    }

    /// The topic spent events go to.
    #[must_use]
    pub fn dead_letter(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter = Some(topic.into());
        self
    }

    /// Up to `n` unsettled events at once per consumer (order is then not
    /// kept).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The delay before redelivery number `n` (1 for the first).
    pub(crate) fn delay(&self, n: u32) -> Duration {
        let index = (n.max(1) - 1) as usize;
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// Where `event` of `topic`, spent by `group` after `count` deliveries
    /// (the last failing for `reason`), goes: the dead-letter topic, and the
    /// publish carrying the event's metadata plus the `dead_letter` keys.
    /// Its id is the event's and the group's, so a repeated dead-lettering
    /// is dropped where the backend deduplicates.
    pub(crate) fn spent(
        &self,
        topic: &str,
        group: &str,
        event: &Event,
        count: u32,
        reason: &str,
    ) -> (String, PublishOptions) {
        let dead = self.dead_letter.clone().unwrap_or_else(|| format!("{topic}.dead"));
        tracing::warn!(topic, group, id = %event.id, deliveries = count, error = reason, dead_letter = %dead, "event dead-lettered");
        let mut metadata = event.metadata.clone();
        metadata.insert(dead_letter::TOPIC.to_owned(), topic.to_owned());
        metadata.insert(dead_letter::DELIVERIES.to_owned(), count.to_string());
        metadata.insert(dead_letter::ERROR.to_owned(), reason.to_owned());
        metadata.insert(dead_letter::GROUP.to_owned(), group.to_owned());
        let options = PublishOptions {
            id: Some(format!("{}.{group}", event.id)),
            metadata,
            timestamp: None,
        };
        (dead, options)
    }

    pub(crate) fn check(&self, topic: &str) -> Result<(), EventsError> {
        if topic.is_empty() {
            return Err(EventsError::MissingTopic);
        }
        if self.ack_wait.is_zero() {
            return Err(EventsError::Options("the ack wait must be positive".to_owned()));
        }
        Ok(())
    }
}

/// A stream of events: publish to topics, consume them by group.
/// Dyn-compatible: held as `Arc<dyn Stream>`.
pub trait Stream: Send + Sync {
    /// Publishes `payload` to `topic`; the event's id once stored.
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: Bytes,
        options: PublishOptions,
    ) -> BoxFuture<'a, Result<String, EventsError>>;

    /// Starts consuming `topic`.
    fn consume<'a>(&'a self, topic: &'a str, options: ConsumeOptions) -> BoxFuture<'a, Result<Consumer, EventsError>>;

    /// The backend's name (`memory`, `file`, `nats`, `redis`).
    fn name(&self) -> &'static str;
}

/// Publishes `message` as JSON to `topic`.
pub async fn publish_json<T: Serialize + ?Sized>(
    stream: &dyn Stream,
    topic: &str,
    message: &T,
    options: PublishOptions,
) -> Result<String, EventsError> {
    let payload = serde_json::to_vec(message).map_err(|e| EventsError::Encode(e.to_string()))?;
    stream.publish(topic, Bytes::from(payload), options).await
}

/// A consumer of one topic: the events its group gives it, in order.
pub struct Consumer {
    events: mpsc::Receiver<Event>,
    auto_ack: bool,
    /// The event handed out last, acked when the next is asked for.
    last: Option<Event>,
    stop: CancellationToken,
    /// The backend's task feeding it, which ends once it has given back
    /// what the consumer did not finish.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Consumer {
    pub(crate) fn new(events: mpsc::Receiver<Event>, auto_ack: bool, stop: CancellationToken) -> Self {
        Consumer {
            events,
            auto_ack,
            last: None,
            stop,
            task: None,
        }
    }

    /// Makes [`Consumer::stop`] wait for `task` to end.
    #[cfg_attr(not(any(feature = "nats", feature = "redis")), allow(dead_code))]
    pub(crate) fn fed_by(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self.task = Some(task);
        self
    }

    /// The next event; `None` once the consumer is stopped. With automatic
    /// acks, asking for it acks the event handed out before.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(last) = self.last.take()
            && self.auto_ack
            && let Err(e) = last.ack().await
        {
            tracing::warn!(topic = %last.topic, id = %last.id, error = %e, "cannot ack an event");
        }
        // Only this consumer cancels `stop`, and its backend's task then
        // ends and closes the channel.
        let event = self.events.recv().await?;
        if self.auto_ack {
            self.last = Some(event.clone());
        }
        Some(event)
    }

    /// Stops consuming; with automatic acks, the event handed out last is
    /// acked first. Events handed out and not settled are delivered again
    /// to the group (as they are when a consumer is dropped). Once it
    /// returns, the group's other members get what this one had.
    pub async fn stop(mut self) {
        if let Some(last) = self.last.take()
            && let Err(e) = last.ack().await
        {
            tracing::warn!(topic = %last.topic, id = %last.id, error = %e, "cannot ack an event");
        }
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("auto_ack", &self.auto_ack)
            .finish_non_exhaustive()
    }
}
