//! An event: Go Micro's fields (id, topic, timestamp, metadata, payload),
//! its JSON as Go Micro's `events.Event` encodes it, and, once delivered to
//! a consumer, the handle that acks, nacks or extends it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::EventsError;
use crate::BoxFuture;

/// One event on a topic.
#[derive(Clone)]
pub struct Event {
    /// Unique per event; a publisher may set it to have a repeated publish
    /// dropped where the backend deduplicates.
    pub id: String,
    /// The topic it was published to.
    pub topic: String,
    /// When it was published.
    pub timestamp: SystemTime,
    /// Key-value pairs it carries (the publishing context's metadata).
    pub metadata: BTreeMap<String, String>,
    /// The encoded payload (JSON unless the publisher sent raw bytes).
    pub payload: Bytes,
    /// Where the backend keeps it, when the backend numbers events.
    pub sequence: Option<u64>,
    delivery: Option<Delivery>,
}

impl Event {
    /// An event not published yet.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            topic: topic.into(),
            timestamp: SystemTime::now(),
            metadata: BTreeMap::new(),
            payload: payload.into(),
            sequence: None,
            delivery: None,
        }
    }

    /// The payload decoded from JSON (Go Micro's `Unmarshal`).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, EventsError> {
        serde_json::from_slice(&self.payload).map_err(|e| EventsError::Decode {
            topic: self.topic.clone(),
            message: e.to_string(),
        })
    }

    /// How many times it was delivered to its group, this time included (1
    /// the first time); 0 for an event not delivered.
    pub fn delivery_count(&self) -> u32 {
        self.delivery.as_ref().map_or(0, |d| d.count)
    }

    /// Acknowledges it: it is not delivered to its group again. Acking an
    /// event again, or one not delivered, does nothing.
    pub async fn ack(&self) -> Result<(), EventsError> {
        match self.unsettled() {
            Some(d) => d.settle.settle(d.token, Settle::Ack).await,
            None => Ok(()),
        }
    }

    /// Gives it back to be delivered again after `delay` (the consumer's
    /// backoff when `None`), or dead-lettered once its retries are spent.
    pub async fn nack(&self, delay: Option<Duration>) -> Result<(), EventsError> {
        self.nack_because(delay, "nacked").await
    }

    /// [`nack`](Self::nack), saying why: the reason travels with the event
    /// to the dead-letter topic if it ends there.
    pub async fn nack_because(&self, delay: Option<Duration>, reason: &str) -> Result<(), EventsError> {
        match self.unsettled() {
            Some(d) => {
                let nack = Settle::Nack {
                    delay,
                    reason: reason.to_owned(),
                };
                d.settle.settle(d.token, nack).await
            }
            None => Ok(()),
        }
    }

    /// Tells the backend it is still being processed: its ack wait starts
    /// again.
    pub async fn extend(&self) -> Result<(), EventsError> {
        match self.delivery.as_ref().filter(|d| !d.settled.load(Ordering::Acquire)) {
            Some(d) => d.settle.settle(d.token, Settle::Extend).await,
            None => Ok(()),
        }
    }

    /// Whether it was acked or nacked already.
    pub fn is_settled(&self) -> bool {
        self.delivery.as_ref().is_none_or(|d| d.settled.load(Ordering::Acquire))
    }

    /// The delivery, marked settled now, unless it was already.
    fn unsettled(&self) -> Option<&Delivery> {
        self.delivery
            .as_ref()
            .filter(|d| !d.settled.swap(true, Ordering::AcqRel))
    }

    /// This event as delivered for the `count`th time, settled through
    /// `settle` with `token`.
    pub(crate) fn delivered(mut self, settle: Arc<dyn Acknowledge>, token: u64, count: u32) -> Self {
        self.delivery = Some(Delivery {
            settle,
            token,
            count,
            settled: Arc::new(AtomicBool::new(false)),
        });
        self
    }

    /// Go Micro's JSON of the event.
    pub fn to_json(&self) -> Result<Vec<u8>, EventsError> {
        serde_json::to_vec(&Wire::from(self)).map_err(|e| EventsError::Encode(e.to_string()))
    }

    /// An event from Go Micro's JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, EventsError> {
        let wire: Wire = serde_json::from_slice(json).map_err(|e| EventsError::Decode {
            topic: String::new(),
            message: e.to_string(),
        })?;
        Ok(wire.into())
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("sequence", &self.sequence)
            .field("metadata", &self.metadata)
            .field("payload_len", &self.payload.len())
            .field("delivery_count", &self.delivery_count())
            .finish()
    }
}

/// How a delivered event was settled.
#[derive(Debug)]
pub(crate) enum Settle {
    Ack,
    Nack { delay: Option<Duration>, reason: String },
    Extend,
}

/// What a backend does when a delivered event is settled.
pub(crate) trait Acknowledge: Send + Sync {
    fn settle(&self, token: u64, settle: Settle) -> BoxFuture<'_, Result<(), EventsError>>;
}

/// A delivered event's handle back to its backend.
#[derive(Clone)]
struct Delivery {
    settle: Arc<dyn Acknowledge>,
    token: u64,
    count: u32,
    settled: Arc<AtomicBool>,
}

/// Go Micro's `events.Event` as JSON: `encoding/json` without tags, keys
/// read in any letter case, `Timestamp` RFC 3339, `Payload` base64,
/// `Metadata` null when empty.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "Timestamp", alias = "timestamp", with = "rfc3339")]
    timestamp: SystemTime,
    #[serde(rename = "Metadata", alias = "metadata", default, deserialize_with = "null_map")]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(rename = "ID", alias = "id", alias = "Id", default)]
    id: String,
    #[serde(rename = "Topic", alias = "topic", default)]
    topic: String,
    #[serde(rename = "Payload", alias = "payload", default, with = "base64_payload")]
    payload: Bytes,
}

impl From<&Event> for Wire {
    fn from(event: &Event) -> Wire {
        Wire {
            timestamp: event.timestamp,
            metadata: (!event.metadata.is_empty()).then(|| event.metadata.clone()),
            id: event.id.clone(),
            topic: event.topic.clone(),
            payload: event.payload.clone(),
        }
    }
}

impl From<Wire> for Event {
    fn from(wire: Wire) -> Event {
        Event {
            id: wire.id,
            topic: wire.topic,
            timestamp: wire.timestamp,
            metadata: wire.metadata.unwrap_or_default(),
            payload: wire.payload,
            sequence: None,
            delivery: None,
        }
    }
}

fn null_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    Option::<BTreeMap<String, String>>::deserialize(d)
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let text = OffsetDateTime::from(*at)
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        let at = OffsetDateTime::parse(&text, &Rfc3339).map_err(de::Error::custom)?;
        Ok(at.into())
    }
}

mod base64_payload {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(payload: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(payload))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Bytes::new()),
            Some(text) => STANDARD.decode(text).map(Bytes::from).map_err(de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_micros_json_is_read_and_written() {
        let go = br#"{"Timestamp":"2024-07-10T09:15:02.123456789+02:00","Metadata":{"k":"v"},"ID":"e1","Topic":"orders","Payload":"eyJpZCI6MX0="}"#;
        let event = Event::from_json(go).unwrap();
        assert_eq!((event.id.as_str(), event.topic.as_str()), ("e1", "orders"));
        assert_eq!(event.metadata["k"], "v");
        assert_eq!(&event.payload[..], br#"{"id":1}"#);
        let since_epoch = event.timestamp.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since_epoch.as_secs(), 1_720_595_702, "the offset is applied");
        assert_eq!(since_epoch.subsec_nanos(), 123_456_789);

        let json: serde_json::Value = serde_json::from_slice(&event.to_json().unwrap()).unwrap();
        assert_eq!(json["Payload"], "eyJpZCI6MX0=");
        assert_eq!(json["Timestamp"], "2024-07-10T07:15:02.123456789Z");
        assert_eq!(json["ID"], "e1");

        // Null metadata and payload, lower-case keys.
        let event = Event::from_json(
            br#"{"timestamp":"2024-07-10T09:15:02Z","metadata":null,"id":"e2","topic":"t","payload":null}"#,
        )
        .unwrap();
        assert!(event.metadata.is_empty() && event.payload.is_empty());
        let json: serde_json::Value = serde_json::from_slice(&event.to_json().unwrap()).unwrap();
        assert_eq!(json["Metadata"], serde_json::Value::Null);
    }
}
