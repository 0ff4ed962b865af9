//! Consuming from JetStream: the group's durable push consumer (bound as it
//! is when it exists, so a Go consumer and a micro consumer share it;
//! created with explicit acks otherwise), and a task per consumer that
//! takes what the server pushes, hands it out in order, keeps what waits
//! its turn alive (`+WPI`), settles it as the consumer says, dead-letters
//! what runs out of retries and, when the consumer stops, gives back what
//! it did not finish (`-NAK`) so the group's other members get it at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::push::{Config, Messages};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PushConsumer};
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use foldhash::HashMap;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{NatsStream, backend, names};
use crate::BoxFuture;
use crate::events::{Acknowledge, ConsumeOptions, Consumer, Event, EventsError, Settle, Start, Stream};

/// Events a consumer's channel holds for it at least.
const HAND_OFF: usize = 64;

/// Starts consuming `topic` as `options` say.
pub(super) async fn start(stream: NatsStream, topic: &str, options: ConsumeOptions) -> Result<Consumer, EventsError> {
    options.check(topic)?;
    stream.ensure(topic).await?;
    let name = names::stream(topic);
    let consumer = bind(&stream, topic, &name, &options).await?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| backend(format!("cannot subscribe to {topic}: {e}")))?;
    let ephemeral = options
        .group
        .is_none()
        .then(|| (name, consumer.cached_info().name.clone()));
    // Events wait for the consumer in the channel rather than in the task,
    // so that a fast consumer finds the next one ready (JetStream pushes
    // ahead anyway; what waits is kept alive and given back on stop).
    let (tx, rx) = mpsc::channel(options.concurrency.max(HAND_OFF));
    let stop = CancellationToken::new();
    let held = Arc::new(Mutex::new(Held::default()));
    let task = Delivery {
        settler: Arc::new(Settler {
            held: Arc::downgrade(&held),
            stream: stream.clone(),
            topic: topic.to_owned(),
            group: options.group.clone().unwrap_or_default(),
            options: options.clone(),
        }),
        stream,
        topic: topic.to_owned(),
        held,
        queue: VecDeque::new(),
        sent: VecDeque::new(),
        tokens: 0,
        ephemeral,
    };
    let task = tokio::spawn(task.run(messages, tx, stop.clone()));
    Ok(Consumer::new(rx, options.auto_ack, stop).fed_by(task))
}

/// The group's consumer: the existing one, or a new durable push consumer
/// with Go Micro's layout; a consumer of its own for a consumer with no
/// group.
async fn bind(
    stream: &NatsStream,
    topic: &str,
    name: &str,
    options: &ConsumeOptions,
) -> Result<PushConsumer, EventsError> {
    let js_stream = stream
        .inner
        .jetstream
        .get_stream(name)
        .await
        .map_err(|e| backend(format!("no stream for {topic}: {e}")))?;
    let durable = options.group.as_deref().map(names::durable);
    if let Some(durable) = &durable
        && let Ok(existing) = js_stream.get_consumer::<Config>(durable).await
    {
        return Ok(existing);
    }
    let config = Config {
        deliver_subject: match &durable {
            Some(durable) => names::deliver_subject(name, durable),
            None => stream.inner.client.new_inbox(),
        },
        durable_name: durable.clone(),
        deliver_group: durable.clone(),
        deliver_policy: match options.start {
            Start::New => DeliverPolicy::New,
            Start::All => DeliverPolicy::All,
            Start::Sequence(n) => DeliverPolicy::ByStartSequence {
                start_sequence: n.max(1),
            },
            Start::Time(at) => DeliverPolicy::ByStartTime { start_time: at.into() },
        },
        ack_policy: AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        // One delivery past the limit: an event whose last delivery expired
        // comes back once more and is dead-lettered then, not dropped.
        max_deliver: options.retry_limit.map_or(-1, |r| i64::from(r) + 2),
        filter_subject: names::subject(topic),
        ..Config::default()
    };
    match js_stream.create_consumer(config).await {
        Ok(consumer) => Ok(consumer),
        // Another member created it meanwhile.
        Err(e) => match &durable {
            Some(durable) => js_stream
                .get_consumer::<Config>(durable)
                .await
                .map_err(|_| backend(format!("cannot create the consumer of {topic}: {e}"))),
            None => Err(backend(format!("cannot create a consumer of {topic}: {e}"))),
        },
    }
}

/// The messages a consumer was given and has not settled, by token.
#[derive(Default)]
struct Held {
    messages: HashMap<u64, Hold>,
    /// The token of each stream sequence held (a redelivery replaces it).
    sequences: HashMap<u64, u64>,
}

/// A message held: where to answer it, what it carried, its stream
/// sequence and how many times it was delivered (not the whole message:
/// a settle only publishes its answer to the reply subject).
#[derive(Clone)]
struct Hold {
    reply: Subject,
    payload: Bytes,
    sequence: u64,
    count: u32,
}

impl Hold {
    fn of(message: &Message) -> Option<Hold> {
        let reply = message.reply.clone()?;
        let (sequence, count) = parse_ack_subject(&reply)?;
        Some(Hold {
            reply,
            payload: message.payload.clone(),
            sequence,
            count,
        })
    }
}

impl Held {
    fn insert(&mut self, token: u64, hold: Hold) {
        if let Some(old) = self.sequences.insert(hold.sequence, token) {
            self.messages.remove(&old);
        }
        self.messages.insert(token, hold);
    }

    fn remove(&mut self, token: u64) -> Option<Hold> {
        let hold = self.messages.remove(&token)?;
        self.sequences.remove(&hold.sequence);
        Some(hold)
    }
}

/// How a delivered event is settled: by the message it came in.
struct Settler {
    held: Weak<Mutex<Held>>,
    stream: NatsStream,
    topic: String,
    group: String,
    options: ConsumeOptions,
}

impl Settler {
    fn held(&self) -> Option<Arc<Mutex<Held>>> {
        self.held.upgrade()
    }

    /// Answers a delivery (the client's `Message::ack_with`, from what a
    /// `Hold` kept of it).
    async fn answer(&self, reply: &Subject, kind: AckKind) -> Result<(), EventsError> {
        self.stream
            .inner
            .client
            .publish(reply.clone(), kind.into())
            .await
            .map_err(backend)
    }

    /// Publishes the event `hold` carries to the dead-letter topic, then
    /// ends its deliveries.
    async fn dead_letter(&self, hold: &Hold, count: u32, reason: &str) -> Result<(), EventsError> {
        let event = decode(&hold.payload, &self.topic, hold.sequence);
        let (topic, options) = self.options.spent(&self.topic, &self.group, &event, count, reason);
        self.stream.publish(&topic, event.payload.clone(), options).await?;
        self.answer(&hold.reply, AckKind::Term).await
    }
}

fn lock(held: &Mutex<Held>) -> MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

impl Acknowledge for Settler {
    fn settle(&self, token: u64, settle: Settle) -> BoxFuture<'_, Result<(), EventsError>> {
        Box::pin(async move {
            let Some(held) = self.held() else {
                return Err(backend("the consumer is gone"));
            };
            let hold = match settle {
                Settle::Extend => lock(&held).messages.get(&token).cloned(),
                _ => lock(&held).remove(token),
            };
            // Settled already (or given back when its consumer stopped).
            let Some(hold) = hold else {
                return Ok(());
            };
            let kind = match settle {
                Settle::Ack => AckKind::Ack,
                Settle::Extend => AckKind::Progress,
                Settle::Nack { delay, reason } => {
                    if self.options.retry_limit.is_some_and(|r| hold.count > r) {
                        // Boxed: the rare path keeps every settle's future small.
                        return Box::pin(self.dead_letter(&hold, hold.count, &reason)).await;
                    }
                    AckKind::Nak(Some(delay.unwrap_or_else(|| self.options.delay(hold.count))))
                }
            };
            self.answer(&hold.reply, kind).await
        })
    }
}

/// The event a message carries (an undecodable one as its raw payload).
fn decode(payload: &Bytes, topic: &str, sequence: u64) -> Event {
    let mut event = Event::from_json(payload).unwrap_or_else(|_| Event::new(topic, payload.clone()));
    if event.topic.is_empty() {
        event.topic = topic.to_owned();
    }
    event.sequence = Some(sequence);
    event
}

/// A message's stream sequence and how many times it was delivered, from
/// its ack subject (ADR-15: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream
/// seq>...`, seven tokens after the prefix, or nine and more with the
/// domain and account hash first). Only the two numbers are read, byte by
/// byte: the client's full parse of the subject (`Message::info`) costs
/// more than the rest of a delivery.
fn parse_ack_subject(reply: &str) -> Option<(u64, u32)> {
    let rest = reply.strip_prefix("$JS.ACK.")?.as_bytes();
    let mut tokens = [&rest[..0]; 9];
    let mut count = 0;
    for token in rest.split(|b| *b == b'.') {
        if let Some(slot) = tokens.get_mut(count) {
            *slot = token;
        }
        count += 1;
    }
    let at = match count {
        7 => 2,
        n if n >= 9 => 4,
        _ => return None,
    };
    let number = |token: &[u8]| -> Option<u64> {
        if token.is_empty() {
            return None;
        }
        token.iter().try_fold(0u64, |n, b| {
            let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
    };
    let delivered = number(tokens[at])?;
    let sequence = number(tokens[at + 1])?;
    Some((sequence, u32::try_from(delivered).unwrap_or(u32::MAX)))
}

/// The task feeding one consumer.
struct Delivery {
    settler: Arc<Settler>,
    stream: NatsStream,
    topic: String,
    held: Arc<Mutex<Held>>,
    /// Events received and not handed out yet, in order.
    queue: VecDeque<(u64, Event)>,
    /// The tokens of the events sent to the consumer last (as many as its
    /// channel holds): those still in the channel are among them.
    sent: VecDeque<u64>,
    tokens: u64,
    /// The stream and consumer names of a consumer with no group, deleted
    /// when it stops.
    ephemeral: Option<(String, String)>,
}

impl Delivery {
    async fn run(mut self, mut messages: Messages, tx: mpsc::Sender<Event>, stop: CancellationToken) {
        // What waits its turn is kept alive well within its ack wait.
        let mut keep_alive = tokio::time::interval((self.settler.options.ack_wait / 2).max(Duration::from_millis(50)));
        keep_alive.tick().await;
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                biased;
                () = &mut stopped => break,
                permit = tx.reserve(), if !self.queue.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some((token, event)) = self.queue.pop_front() {
                            permit.send(event);
                            self.mark_sent(token, tx.max_capacity());
                        }
                    }
                    Err(_) => break,
                },
                message = messages.next() => match message {
                    Some(Ok(message)) => {
                        if let Some(next) = self.receive(message).await {
                            self.hand_off(next, &tx);
                        }
                    }
                    Some(Err(e)) => debug!(topic = %self.topic, error = %e, "a push consumer's status"),
                    None => break,
                },
                _ = keep_alive.tick() => {
                    let in_channel = tx.max_capacity() - tx.capacity();
                    self.keep_waiting_alive(in_channel).await;
                }
            }
        }
        // What reached this member and is not finished goes back to the
        // group at once, what is still buffered included, earliest first
        // (the server redelivers in that order).
        let mut unfinished: Vec<Hold> = lock(&self.held).messages.drain().map(|(_, hold)| hold).collect();
        while let Some(Some(Ok(message))) = messages.next().now_or_never() {
            unfinished.extend(Hold::of(&message));
        }
        drop(messages);
        unfinished.sort_by_key(|hold| hold.sequence);
        for hold in unfinished {
            if let Err(e) = self.settler.answer(&hold.reply, AckKind::Nak(None)).await {
                debug!(topic = %self.topic, error = %e, "cannot give an event back");
            }
        }
        if let Some((stream, consumer)) = self.ephemeral.take()
            && let Err(e) = self
                .stream
                .inner
                .jetstream
                .delete_consumer_from_stream(&consumer, &stream)
                .await
        {
            debug!(topic = %self.topic, error = %e, "cannot delete a consumer");
        }
    }

    /// Gives the consumer `next` at once when its channel has room and
    /// nothing waits before it; queues it otherwise.
    fn hand_off(&mut self, next: (u64, Event), tx: &mpsc::Sender<Event>) {
        if !self.queue.is_empty() {
            self.queue.push_back(next);
            return;
        }
        let (token, event) = next;
        match tx.try_send(event) {
            Ok(()) => self.mark_sent(token, tx.max_capacity()),
            Err(mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event)) => {
                self.queue.push_back((token, event));
            }
        }
    }

    /// Notes that the event of `token` went into the channel.
    fn mark_sent(&mut self, token: u64, capacity: usize) {
        if self.sent.len() == capacity {
            self.sent.pop_front();
        }
        self.sent.push_back(token);
    }

    /// Takes a pushed message: an event for the consumer, with its token;
    /// none when it is dead-lettered (it came back after its last delivery
    /// expired, or cannot be decoded).
    async fn receive(&mut self, message: Message) -> Option<(u64, Event)> {
        let Some(hold) = Hold::of(&message) else {
            warn!(topic = %self.topic, "a message with no JetStream metadata: ignored");
            return None;
        };
        let (sequence, count) = (hold.sequence, hold.count);
        let spent = self.settler.options.retry_limit.is_some_and(|limit| count > limit + 1);
        let event = match Event::from_json(&message.payload) {
            Ok(mut event) if !spent => {
                if event.topic.is_empty() {
                    event.topic.clone_from(&self.topic);
                }
                event.sequence = Some(sequence);
                event
            }
            decoded => {
                let (count, reason) = match decoded {
                    Ok(_) => (count - 1, "ack wait expired"),
                    Err(_) => (count, "cannot decode the event"),
                };
                if let Err(e) = self.settler.dead_letter(&hold, count, reason).await {
                    warn!(topic = %self.topic, error = %e, "cannot dead-letter an event");
                }
                return None;
            }
        };
        self.tokens += 1;
        let token = self.tokens;
        lock(&self.held).insert(token, hold);
        let settle: Arc<dyn Acknowledge> = self.settler.clone();
        Some((token, event.delivered(settle, token, count)))
    }

    /// Tells the server that the events waiting for the consumer (in the
    /// task's queue, and the last `in_channel` sent) are not forgotten.
    async fn keep_waiting_alive(&self, in_channel: usize) {
        let waiting: Vec<Subject> = {
            let held = lock(&self.held);
            let queued = self.queue.iter().map(|(token, _)| token);
            let sent = self.sent.iter().rev().take(in_channel);
            queued
                .chain(sent)
                .filter_map(|token| held.messages.get(token).map(|hold| hold.reply.clone()))
                .collect()
        };
        for reply in waiting {
            let _ = self.settler.answer(&reply, AckKind::Progress).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ack_subject;

    #[test]
    fn ack_subjects_of_both_formats() {
        let old = "$JS.ACK.orders.billing.3.1042.998.1700000000000000000.7";
        assert_eq!(parse_ack_subject(old), Some((1042, 3)));
        let new = "$JS.ACK._.ACCHASH.orders.billing.1.17.16.1700000000000000000.0.abc";
        assert_eq!(parse_ack_subject(new), Some((17, 1)));
        assert_eq!(parse_ack_subject("$JS.ACK.orders.billing.x.1.1.1.0"), None);
        assert_eq!(parse_ack_subject("_INBOX.abc"), None);
        assert_eq!(parse_ack_subject("$JS.ACK.a.b.1"), None);
    }
}
