//! Asynchronous messaging: publish to a topic, subscribe with a handler.
//!
//! A [`Broker`] moves [`Message`]s (headers and an opaque body) from
//! publishers to subscribers. Without a queue every subscriber of a topic
//! gets every message; subscribers that share a queue name form a group in
//! which each message goes to one member.
//!
//! | broker | delivery |
//! |---|---|
//! | [`HttpBroker`] (default) | Go Micro's HTTP broker, compatible byte for byte: subscribers register in the registry and publishers POST to them; at most once |
//! | [`MemoryBroker`] | in one process; at most once |
//! | `NatsBroker` (feature `nats`) | NATS subjects and queue groups; at most once (core NATS) |
//!
//! At most once: a message is delivered to a subscriber that is up when it
//! is published, and is not kept or redelivered when a subscriber is down or
//! its handler fails. For at-least-once delivery use event streams.

mod http;
mod memory;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use self::http::{HttpBroker, HttpBrokerOptions};
pub use self::memory::MemoryBroker;
#[cfg(feature = "nats")]
pub use self::nats::NatsBroker;

use crate::BoxFuture;
use crate::error::Error;

/// Header naming the topic of a message.
pub const TOPIC_HEADER: &str = crate::headers::TOPIC;

/// A message: headers and a body, Go Micro's `broker.Message`. The body is
/// base64 in the HTTP broker's JSON, as Go encodes `[]byte`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Headers: `Micro-Topic`, `Content-Type`, `Micro-Id`, metadata.
    #[serde(rename = "Header", default, deserialize_with = "null_map")]
    pub header: BTreeMap<String, String>,
    /// The encoded payload.
    #[serde(rename = "Body", default, with = "base64_bytes")]
    pub body: Bytes,
}

impl Message {
    /// A message with `body` and no headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            header: BTreeMap::new(),
            body: body.into(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.insert(key.into(), value.into());
        self
    }

    /// The topic the message was published to.
    pub fn topic(&self) -> Option<&str> {
        self.header.get(TOPIC_HEADER).map(String::as_str)
    }
}

fn null_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// `[]byte` as Go's `encoding/json` writes it: standard base64, `null` when empty.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        if body.is_empty() {
            return s.serialize_none();
        }
        s.serialize_str(&STANDARD.encode(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| serde::de::Error::custom(format!("Body is not base64: {e}")))
    }
}

/// What a subscriber's handler gets: the topic and the message.
#[derive(Clone, Debug)]
pub struct Event {
    /// The topic.
    pub topic: String,
    /// The message.
    pub message: Message,
}

/// A subscriber's handler; its error is logged and counted, and the
/// subscription goes on.
pub type MessageHandler = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// Options of a subscription.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// The queue group: each message goes to one subscriber of the group.
    pub queue: Option<String>,
}

impl SubscribeOptions {
    /// Subscribe as a member of `queue`.
    pub fn queue(queue: impl Into<String>) -> Self {
        SubscribeOptions {
            queue: Some(queue.into()),
        }
    }
}

/// A live subscription; [`unsubscribe`](Subscription::unsubscribe) ends it.
pub struct Subscription {
    topic: String,
    queue: Option<String>,
    end: Box<dyn Unsubscribe>,
}

/// How a broker ends one of its subscriptions.
pub trait Unsubscribe: Send + Sync {
    /// Ends the subscription.
    fn unsubscribe(self: Box<Self>) -> BoxFuture<'static, Result<(), BrokerError>>;
}

impl Subscription {
    /// A subscription to `topic` that `end` ends; for broker implementations.
    pub fn new(topic: impl Into<String>, queue: Option<String>, end: Box<dyn Unsubscribe>) -> Self {
        Subscription {
            topic: topic.into(),
            queue,
            end,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue group, if any.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// Stops receiving messages.
    pub async fn unsubscribe(self) -> Result<(), BrokerError> {
        self.end.unsubscribe().await
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Why a broker call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker is not reachable or not connected.
    #[error("broker {broker} unavailable: {message}")]
    Unavailable {
        /// Which broker.
        broker: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A message could not be delivered.
    #[error("cannot deliver to topic {topic}: {message}")]
    Delivery {
        /// The topic.
        topic: String,
        /// What went wrong.
        message: String,
    },
    /// The message is larger than the broker carries.
    #[error("the message of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl From<BrokerError> for Error {
    fn from(err: BrokerError) -> Error {
        let code = match err {
            BrokerError::TooLarge { .. } => 413,
            BrokerError::Unavailable { .. } => 503,
            BrokerError::Delivery { .. } => 500,
        };
        Error::new("go.micro.broker", err.to_string(), code)
    }
}

/// A message broker. Implementations are held as `Arc<dyn Broker>` and
/// swapped by flag (`--broker http|memory|nats`).
pub trait Broker: Send + Sync + fmt::Debug {
    /// Gets ready to publish and to receive; idempotent.
    fn connect(&self) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// Releases the broker's connection and listener (the HTTP broker also
    /// ends its subscriptions); call it once nothing more is published or
    /// received through it.
    fn disconnect(&self) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// Publishes `message` to `topic`.
    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Calls `handler` with every message published to `topic` (one member
    /// of a queue group per message).
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        handler: MessageHandler,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>>;

    /// Whether the broker is connected now, for health checks; brokers
    /// without a connection to lose keep the default, which says yes.
    fn check(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The broker's name as Go Micro prints it (`http`, `memory`, `nats`).
    fn name(&self) -> &'static str;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_as_go_micro_json() {
        let message = Message::new(&b"{\"id\":1}"[..]).with_header(TOPIC_HEADER, "user.created");
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(
            json,
            r#"{"Header":{"Micro-Topic":"user.created"},"Body":"eyJpZCI6MX0="}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), message);
        let go = r#"{"Header":null,"Body":null}"#;
        assert_eq!(serde_json::from_str::<Message>(go).unwrap(), Message::default());
        assert!(serde_json::from_str::<Message>(r#"{"Header":{},"Body":"not base64!"}"#).is_err());
    }
}
