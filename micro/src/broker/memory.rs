//! An in-process broker, for tests and single binaries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use super::{Broker, BrokerError, Event, Message, MessageHandler, SubscribeOptions, Subscription, Unsubscribe};
use crate::BoxFuture;

/// A broker inside one process. Clones share subscriptions;
/// [`MemoryBroker::shared`] is the one `--broker memory` gives every service
/// of the process, so they reach each other.
///
/// Publishing runs the subscribers' handlers before it returns.
/// [`disconnect`](Broker::disconnect) leaves other holders' subscriptions in
/// place: each ends its own with [`Subscription::unsubscribe`].
#[derive(Clone, Default)]
pub struct MemoryBroker {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// topic -> subscriptions
    topics: BTreeMap<String, Vec<Entry>>,
    /// queue group -> turn, for taking members in turn
    turns: BTreeMap<(String, String), usize>,
}

struct Entry {
    id: u64,
    queue: Option<String>,
    handler: MessageHandler,
}

impl MemoryBroker {
    /// A broker with no subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide broker.
    pub fn shared() -> Self {
        static SHARED: std::sync::OnceLock<MemoryBroker> = std::sync::OnceLock::new();
        SHARED.get_or_init(MemoryBroker::new).clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handlers a message to `topic` goes to: every subscriber without a
    /// queue, and one member of each queue group in turn.
    fn recipients(&self, topic: &str) -> Vec<MessageHandler> {
        let mut state = self.state();
        let State { topics, turns, .. } = &mut *state;
        let Some(entries) = topics.get(topic) else {
            return Vec::new();
        };
        let mut recipients: Vec<MessageHandler> = entries
            .iter()
            .filter(|e| e.queue.is_none())
            .map(|e| Arc::clone(&e.handler))
            .collect();
        let mut groups: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for entry in entries {
            if let Some(queue) = &entry.queue {
                groups.entry(queue).or_default().push(entry);
            }
        }
        for (queue, members) in groups {
            let turn = turns.entry((topic.to_owned(), queue.to_owned())).or_default();
            let member = members[*turn % members.len()];
            *turn = turn.wrapping_add(1);
            recipients.push(Arc::clone(&member.handler));
        }
        recipients
    }
}

impl Broker for MemoryBroker {
    fn connect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async { Ok(()) })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async { Ok(()) })
    }

    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let message = message.with_header(super::TOPIC_HEADER, topic);
            for handler in self.recipients(topic) {
                let event = Event {
                    topic: topic.to_owned(),
                    message: message.clone(),
                };
                if let Err(e) = handler(event).await {
                    warn!(topic, error = %e, "subscriber failed");
                }
            }
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        handler: MessageHandler,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.next_id += 1;
            let id = state.next_id;
            state.topics.entry(topic.to_owned()).or_default().push(Entry {
                id,
                queue: options.queue.clone(),
                handler,
            });
            let end = Box::new(MemoryUnsubscribe {
                broker: self.clone(),
                topic: topic.to_owned(),
                id,
            });
            Ok(Subscription::new(topic, options.queue, end))
        })
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

struct MemoryUnsubscribe {
    broker: MemoryBroker,
    topic: String,
    id: u64,
}

impl Unsubscribe for MemoryUnsubscribe {
    fn unsubscribe(self: Box<Self>) -> BoxFuture<'static, Result<(), BrokerError>> {
        Box::pin(async move {
            if let Some(entries) = self.broker.state().topics.get_mut(&self.topic) {
                entries.retain(|e| e.id != self.id);
            }
            Ok(())
        })
    }
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<String> = self.state().topics.keys().cloned().collect();
        f.debug_struct("MemoryBroker").field("topics", &topics).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counting(count: &Arc<AtomicUsize>) -> MessageHandler {
        let count = Arc::clone(count);
        Arc::new(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
    }

    #[tokio::test]
    async fn queues_get_one_copy_and_broadcast_subscribers_all() {
        let broker = MemoryBroker::new();
        let (a, b, all) = (Arc::default(), Arc::default(), Arc::default());
        broker
            .subscribe("t", counting(&a), SubscribeOptions::queue("q"))
            .await
            .unwrap();
        broker
            .subscribe("t", counting(&b), SubscribeOptions::queue("q"))
            .await
            .unwrap();
        let sub = broker
            .subscribe("t", counting(&all), SubscribeOptions::default())
            .await
            .unwrap();
        for _ in 0..10 {
            broker.publish("t", Message::new("x")).await.unwrap();
        }
        let (a, b): (&AtomicUsize, &AtomicUsize) = (&a, &b);
        assert_eq!(a.load(Ordering::SeqCst) + b.load(Ordering::SeqCst), 10);
        assert_eq!(a.load(Ordering::SeqCst), 5);
        assert_eq!(all.load(Ordering::SeqCst), 10);
        sub.unsubscribe().await.unwrap();
        broker.publish("t", Message::new("x")).await.unwrap();
        assert_eq!(all.load(Ordering::SeqCst), 10, "unsubscribed");
    }

    #[tokio::test]
    async fn a_failing_handler_keeps_its_subscription() {
        let broker = MemoryBroker::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let failing: MessageHandler = Arc::new(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(crate::Error::internal_server_error("test", "boom")) })
        });
        broker
            .subscribe("t", failing, SubscribeOptions::default())
            .await
            .unwrap();
        broker.publish("t", Message::new("1")).await.unwrap();
        broker.publish("t", Message::new("2")).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
