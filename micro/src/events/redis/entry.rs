//! An entry of the stream as a consumer knows it: its event decoded, and
//! its deliveries counted.

use super::client::{Fields, field};
use crate::events::Event;

/// An entry of the stream as this consumer knows it.
pub(super) struct Entry {
    /// Its Redis id.
    pub(super) id: String,
    pub(super) event: Event,
    /// Its `attempt` field (Go's count of its re-adds, from 1).
    pub(super) attempt: u32,
    /// How many times Redis delivered it to the group.
    pub(super) times: u32,
    /// Why its `event` field cannot be decoded.
    pub(super) broken: Option<String>,
}

impl Entry {
    pub(super) fn decode(topic: &str, id: String, fields: &Fields, times: u32) -> Entry {
        let attempt = field(fields, "attempt")
            .and_then(|a| std::str::from_utf8(a).ok()?.trim().parse::<u32>().ok())
            .filter(|a| *a >= 1)
            .unwrap_or(1);
        let raw = field(fields, "event");
        let (event, broken) = match raw.map(Event::from_json) {
            Some(Ok(mut event)) => {
                if event.topic.is_empty() {
                    event.topic = topic.to_owned();
                }
                (event, None)
            }
            Some(Err(e)) => (Event::new(topic, raw.unwrap_or_default().to_vec()), Some(e.to_string())),
            None => (
                Event::new(topic, Vec::new()),
                Some("the entry has no event field".to_owned()),
            ),
        };
        let mut event = event;
        if broken.is_some() {
            // Named after the entry, for the dead letter's id.
            event.id.clone_from(&id);
        }
        Entry {
            id,
            event,
            attempt,
            times,
            broken,
        }
    }

    /// Its deliveries so far: Go's re-adds and Redis's deliveries.
    pub(super) fn count(&self) -> u32 {
        (self.attempt - 1).saturating_add(self.times)
    }
}
