//! Consumers on an event stream: every `#[consume]` method of the served
//! handlers reads its topic as a member of its group, one event at a time
//! (so a topic's events are handled in order), through the same subscriber
//! layers as broker messages. The method's `Ok` acks the event; an error or
//! a panic nacks it, to come back with backoff until its retries are spent
//! and it goes to the dead-letter topic.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::handler::Handler;
use super::layered::SubscriberService;
use super::subscriber::{SubscriberStats, deliverer};
use crate::broker;
use crate::events::{ConsumeOptions, Consumer, Event, EventsError, Stream};

/// The live consumers of a server.
#[derive(Debug, Default)]
pub(crate) struct Consuming {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    stats: Vec<Arc<SubscriberStats>>,
}

impl Consuming {
    /// Whether any of `handlers` has a `#[consume]` method.
    pub(crate) fn wanted<'h>(handlers: impl IntoIterator<Item = &'h Arc<dyn Handler>>) -> bool {
        handlers
            .into_iter()
            .any(|h| h.descriptor().subscribers().iter().any(|s| s.consumption().is_some()))
    }

    /// Starts a consumer for every `#[consume]` method of `handlers`; on a
    /// failure, stops the ones started.
    pub(crate) async fn start<'h>(
        stream: &Arc<dyn Stream>,
        handlers: impl IntoIterator<Item = &'h Arc<dyn Handler>>,
        layers: Option<SubscriberService>,
    ) -> Result<Consuming, EventsError> {
        let mut consuming = Consuming::default();
        for handler in handlers {
            for descriptor in handler.descriptor().subscribers() {
                let Some(consumption) = descriptor.consumption() else {
                    continue;
                };
                let defaults = ConsumeOptions::default();
                let options = ConsumeOptions {
                    group: descriptor.queue().map(str::to_owned),
                    auto_ack: false,
                    retry_limit: consumption.retry_limit(),
                    ack_wait: consumption.ack_wait().unwrap_or(defaults.ack_wait),
                    ..defaults
                };
                let consumer = match stream.consume(descriptor.topic(), options).await {
                    Ok(consumer) => consumer,
                    Err(e) => {
                        consuming.stop().await;
                        return Err(e);
                    }
                };
                info!(consumer = descriptor.name(), topic = descriptor.topic(), group = ?descriptor.queue(), stream = stream.name(), "consuming");
                let stats = SubscriberStats::new(descriptor);
                let handle = deliverer(Arc::clone(handler), Arc::clone(&stats), layers.clone());
                let task = tokio::spawn(consume(consumer, handle, consuming.stop.clone()));
                consuming.tasks.push(task);
                consuming.stats.push(stats);
            }
        }
        Ok(consuming)
    }

    /// The counters of every consumer.
    pub(crate) fn stats(&self) -> &[Arc<SubscriberStats>] {
        &self.stats
    }

    /// Stops every consumer after the event it is handling.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Hands the consumer's events to the method one at a time and settles
/// each as the method answered.
async fn consume(mut consumer: Consumer, handle: broker::MessageHandler, stop: CancellationToken) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => break,
            event = consumer.next() => match event {
                Some(event) => event,
                None => break,
            },
        };
        let settled = match handle(message(&event)).await {
            Ok(()) => event.ack().await,
            Err(e) => event.nack_because(None, &e.to_string()).await,
        };
        if let Err(e) = settled {
            warn!(topic = %event.topic, id = %event.id, error = %e, "cannot settle an event; it is delivered again after its ack wait");
        }
    }
    consumer.stop().await;
}

/// The event as a broker message: its metadata as headers, its payload as
/// the JSON body, its id as `Micro-Id`.
fn message(event: &Event) -> broker::Event {
    let mut header = event.metadata.clone();
    header
        .entry("Content-Type".to_owned())
        .or_insert_with(|| "application/json".to_owned());
    header.insert("Micro-Topic".to_owned(), event.topic.clone());
    header.insert("Micro-Id".to_owned(), event.id.clone());
    broker::Event {
        topic: event.topic.clone(),
        message: broker::Message {
            header,
            body: event.payload.clone(),
        },
    }
}
