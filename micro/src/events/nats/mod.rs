//! NATS JetStream, laid out as Go Micro's natsjs plugin lays it out, so a
//! Go service and a micro service share topics and groups: a stream per
//! topic (subject = the topic), a durable push consumer per group with the
//! group as its deliver group, the event as Go Micro's JSON. Unlike the
//! plugin, names JetStream rejects (`a.b`) are mapped to legal ones, the
//! stream is created on publish as well as on consume, a set event id
//! becomes `Nats-Msg-Id` (the server drops a repeat within its duplicate
//! window), and events are acked after the consumer is done with them.

mod consume;
mod names;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, ServerAddr};
use bytes::Bytes;
use tracing::debug;

use super::{ConsumeOptions, Consumer, Event, EventsError, PublishOptions, Stream};
use crate::BoxFuture;

/// Publish attempts before a publish fails (each waits for the server's
/// ack; a repeat carries the same `Nats-Msg-Id`, so it is never stored
/// twice).
const PUBLISH_ATTEMPTS: u32 = 3;

/// Event streaming on NATS JetStream. Cheap to clone; clones share the
/// connection.
#[derive(Clone)]
pub struct NatsStream {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    jetstream: Context,
    /// The topics whose streams are known to exist (by topic: a publish
    /// looks its topic up as it is, with no mapping).
    streams: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for NatsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStream")
            .field("state", &self.inner.client.connection_state())
            .finish_non_exhaustive()
    }
}

fn backend(message: impl std::fmt::Display) -> EventsError {
    EventsError::Backend {
        backend: "nats",
        message: message.to_string(),
    }
}

impl NatsStream {
    /// Connects to the NATS servers at `addresses` (comma-separated, as Go
    /// Micro takes them, e.g. `nats://127.0.0.1:4222`). The connection is
    /// kept: after an outage it reconnects with backoff and consumers go
    /// on where their groups were.
    pub async fn connect(addresses: &str) -> Result<NatsStream, EventsError> {
        let servers = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::parse::<ServerAddr>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| backend(format!("bad address {addresses:?}: {e}")))?;
        if servers.is_empty() {
            return Err(backend("no address"));
        }
        let client = ConnectOptions::new()
            .name("micro-events")
            .connection_timeout(Duration::from_secs(5))
            .connect(servers)
            .await
            .map_err(|e| backend(format!("cannot connect to {addresses}: {e}")))?;
        Ok(NatsStream::with_client(client))
    }

    /// A stream on a connection made elsewhere.
    pub fn with_client(client: Client) -> NatsStream {
        let jetstream = jetstream::new(client.clone());
        NatsStream {
            inner: Arc::new(Inner {
                client,
                jetstream,
                streams: Mutex::default(),
            }),
        }
    }

    /// The JetStream stream that holds `topic`, created (as Go Micro
    /// creates it: subjects = the topic, the server's defaults otherwise)
    /// when it does not exist.
    async fn ensure(&self, topic: &str) -> Result<(), EventsError> {
        if self.known().contains(topic) {
            return Ok(());
        }
        let config = stream::Config {
            name: names::stream(topic),
            subjects: vec![names::subject(topic)],
            ..stream::Config::default()
        };
        self.inner
            .jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|e| backend(format!("cannot create the stream of {topic}: {e}")))?;
        self.known().insert(topic.to_owned());
        Ok(())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `event` on its topic's stream: Go Micro's JSON, its id as
    /// `Nats-Msg-Id`. Retried on a lost ack (the id makes a retry safe).
    async fn send(&self, event: &Event) -> Result<(), EventsError> {
        let body = Bytes::from(event.to_json()?);
        let subject = names::subject(&event.topic);
        let mut last = None;
        for attempt in 0..PUBLISH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            self.ensure(&event.topic).await?;
            let message = jetstream::message::PublishMessage::build()
                .payload(body.clone())
                .message_id(&event.id);
            let acked = match self.inner.jetstream.send_publish(subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => {
                    if ack.duplicate {
                        debug!(topic = %event.topic, id = %event.id, "a repeated event id: dropped by the server");
                    }
                    return Ok(());
                }
                Err(e) => {
                    if e.kind() == PublishErrorKind::StreamNotFound {
                        // Deleted since it was created: make it again.
                        self.known().remove(&event.topic);
                    }
                    last = Some(e);
                }
            }
        }
        Err(backend(format!(
            "cannot publish to {}: {}",
            event.topic,
            last.map_or_else(String::new, |e| e.to_string())
        )))
    }
}

impl Stream for NatsStream {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: Bytes,
        options: PublishOptions,
    ) -> BoxFuture<'a, Result<String, EventsError>> {
        Box::pin(async move {
            let event = options.event(topic, payload)?;
            self.send(&event).await?;
            Ok(event.id)
        })
    }

    fn consume<'a>(&'a self, topic: &'a str, options: ConsumeOptions) -> BoxFuture<'a, Result<Consumer, EventsError>> {
        Box::pin(consume::start(self.clone(), topic, options))
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}
