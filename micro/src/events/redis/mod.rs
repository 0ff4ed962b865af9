//! The Redis Streams stream, on Go Micro's redis plugin's wire format so
//! that Go services share its topics and groups.
//!
//! Topic `T` is the stream key `stream-T`; an entry has the fields `event`
//! (the event as Go Micro's JSON) and `attempt` (a decimal count, `1` when
//! published: a Go consumer panics on an entry without it). A group is a
//! consumer group; each [`Consumer`] is a consumer of it named by a fresh
//! UUID, reading with `XREADGROUP` on a connection of its own (its reads
//! block; the shared connection's requests must not wait behind them).
//!
//! Where Go's plugin goes wrong, we do not follow it:
//! - A nacked entry stays pending and is claimed back (`XCLAIM`) after its
//!   backoff; Go re-adds it at the stream's end, out of order, and every
//!   other group gets it again.
//! - What a consumer held when it crashed is claimed by the group's other
//!   consumers once idle for the ack wait (`XAUTOCLAIM`, every half ack
//!   wait); Go claims once, when a consumer starts, after 60 s. A consumer
//!   that stops gives back what it held at once.
//! - An event out of retries, or one that cannot be decoded, goes to the
//!   dead-letter topic; Go drops it.
//! - A publish with an id is dropped when the id was published in the last
//!   two minutes (JetStream's default duplicate window).
//! - A consumer's own group (no group asked for) is destroyed when it
//!   stops, and a consumer's name is deleted when it holds nothing; Go
//!   leaks both.

mod client;
mod consumer;
mod entry;
mod settle;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use self::client::Redis;
use self::consumer::Shared;
use super::{ConsumeOptions, Consumer, Event, EventsError, PublishOptions, Start, Stream};
use crate::BoxFuture;

/// The backend's name, in errors and logs.
const BACKEND: &str = "redis";
use crate::redis_link::REQUEST_TIMEOUT;

/// A stream kept in Redis Streams (Redis 6.2 or later). Cheap to clone;
/// clones share one connection.
#[derive(Clone)]
pub struct RedisStream {
    redis: Redis,
}

impl RedisStream {
    /// Connects to the Redis server at `url` (`redis://[user:password@]host:port[/db]`).
    pub async fn connect(url: &str) -> Result<RedisStream, EventsError> {
        Ok(RedisStream {
            redis: Redis::connect(url).await?,
        })
    }

    async fn publish_event(&self, topic: &str, payload: Bytes, options: PublishOptions) -> Result<String, EventsError> {
        let dedup = options.id.is_some();
        let event = options.event(topic, payload)?;
        self.redis.add(&event, dedup).await?;
        Ok(event.id)
    }

    async fn join(&self, topic: &str, mut options: ConsumeOptions) -> Result<Consumer, EventsError> {
        options.check(topic)?;
        options.concurrency = options.concurrency.max(1);
        let ephemeral = options.group.is_none();
        let group = options
            .group
            .clone()
            .unwrap_or_else(|| format!("consumer-{}", uuid::Uuid::new_v4()));
        let key = stream_key(topic);
        // The reading connection first: a group of our own is not made
        // for a consumer that cannot read.
        let reader = self.redis.reader().await.map_err(failed)?;
        let start = self.start_id(&key, options.start).await?;
        self.redis.create_group(&key, &group, &start).await?;
        let (events, rx) = mpsc::channel(options.concurrency);
        let stop = CancellationToken::new();
        let auto_ack = options.auto_ack;
        let shared = Arc::new(Shared {
            redis: self.redis.clone(),
            topic: topic.to_owned(),
            key,
            group,
            name: uuid::Uuid::new_v4().to_string(),
            start,
            ephemeral,
            options,
            state: Mutex::default(),
            wake: Notify::new(),
            stop: stop.clone(),
        });
        debug!(topic, group = %shared.group, consumer = %shared.name, "redis consumer started");
        let task = consumer::spawn(shared, reader, events);
        Ok(Consumer::new(rx, auto_ack, stop).fed_by(task))
    }

    /// The id a new group starts after: it reads the entries past it.
    async fn start_id(&self, key: &str, start: Start) -> Result<String, EventsError> {
        match start {
            Start::New => Ok("$".to_owned()),
            Start::All => Ok("0".to_owned()),
            Start::Sequence(n) => self.nth_id(key, n.saturating_sub(1)).await,
            Start::Time(at) => self.id_before(key, at).await,
        }
    }

    /// The id of the `n`th entry (the last one when there are fewer; `0`
    /// for none): the entries are counted in pages, not read at once.
    async fn nth_id(&self, key: &str, n: u64) -> Result<String, EventsError> {
        const PAGE: u64 = 1000;
        let (mut last, mut left) = ("0".to_owned(), n);
        let mut from = "-".to_owned();
        while left > 0 {
            let page = left.min(PAGE);
            let ids = self.redis.range(key, &from, "+", page).await?;
            let read = ids.len() as u64;
            match ids.into_iter().last() {
                Some((id, _)) => last = id,
                None => break,
            }
            left -= read.min(left);
            if read < page {
                break;
            }
            from = format!("({last}");
        }
        Ok(last)
    }

    /// The id just before the first entry stored at or after `at`. Entry
    /// ids count milliseconds; within `at`'s own millisecond the events'
    /// timestamps decide.
    async fn id_before(&self, key: &str, at: SystemTime) -> Result<String, EventsError> {
        let ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let same_ms = self
            .redis
            .range(key, &format!("{ms}-0"), &format!("{ms}-{}", u64::MAX), 10_000)
            .await?;
        let empty = same_ms.is_empty();
        let first = same_ms.into_iter().find(|(_, fields)| {
            client::field(fields, "event")
                .and_then(|json| Event::from_json(json).ok())
                .is_none_or(|event| event.timestamp >= at)
        });
        Ok(match first {
            Some((id, _)) => previous_id(&id),
            // Every entry of that millisecond is older.
            None if !empty => format!("{ms}-{}", u64::MAX),
            None => previous_id(&format!("{ms}-0")),
        })
    }
}

/// The id just before `id` (`<ms>-<seq>`).
fn previous_id(id: &str) -> String {
    let parsed = id
        .split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?)));
    match parsed {
        Some((ms, seq)) if seq > 0 => format!("{ms}-{}", seq - 1),
        Some((ms, _)) if ms > 0 => format!("{}-{}", ms - 1, u64::MAX),
        _ => "0".to_owned(),
    }
}

/// Go Micro's stream key for a topic.
fn stream_key(topic: &str) -> String {
    format!("stream-{topic}")
}

fn failed(error: impl fmt::Display) -> EventsError {
    EventsError::Backend {
        backend: BACKEND,
        message: error.to_string(),
    }
}

impl fmt::Debug for RedisStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("RedisStream").finish_non_exhaustive()
    }
}

impl Stream for RedisStream {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: Bytes,
        options: PublishOptions,
    ) -> BoxFuture<'a, Result<String, EventsError>> {
        Box::pin(self.publish_event(topic, payload, options))
    }

    fn consume<'a>(&'a self, topic: &'a str, options: ConsumeOptions) -> BoxFuture<'a, Result<Consumer, EventsError>> {
        Box::pin(self.join(topic, options))
    }

    fn name(&self) -> &'static str {
        BACKEND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_before_an_entry() {
        assert_eq!(previous_id("1700000000000-5"), "1700000000000-4");
        assert_eq!(previous_id("1700000000000-0"), format!("1699999999999-{}", u64::MAX));
        assert_eq!(previous_id("0-0"), "0");
        assert_eq!(previous_id("junk"), "0");
    }
}
