//! The NATS broker, as Go Micro's `plugins/broker/nats`: topics are
//! subjects, queue groups are NATS queue groups, and each NATS message
//! carries the broker message as the same JSON envelope the HTTP broker
//! sends (`{"Header":{..},"Body":"<base64>"}`), so Go Micro services on the
//! same NATS server publish to micro subscribers and the reverse.
//!
//! Core NATS delivers at most once: a subscriber that is down misses the
//! message. A publish returns once the server has the message (a flush, one
//! round trip; concurrent publishes share it). Each subscription handles its
//! messages one at a time, in order.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    Broker, BrokerError, Event, Message, MessageHandler, SubscribeOptions, Subscription, TOPIC_HEADER, Unsubscribe,
};
use crate::BoxFuture;

/// Where Go Micro's NATS broker connects by default.
pub const DEFAULT_ADDRESS: &str = "nats://127.0.0.1:4222";

/// A broker on a NATS server. Clones share the connection.
#[derive(Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

struct Inner {
    addresses: Vec<String>,
    client: Mutex<Option<Client>>,
    subscriptions: std::sync::Mutex<Vec<CancellationToken>>,
}

impl NatsBroker {
    /// A broker for the NATS servers at `addresses` (comma separated, as
    /// `--broker_address` gives them; empty for [`DEFAULT_ADDRESS`]).
    pub fn new(addresses: &str) -> Self {
        let mut addresses: Vec<String> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if addresses.is_empty() {
            addresses.push(DEFAULT_ADDRESS.to_owned());
        }
        NatsBroker {
            inner: Arc::new(Inner {
                addresses,
                client: Mutex::new(None),
                subscriptions: std::sync::Mutex::default(),
            }),
        }
    }

    fn unavailable(message: impl fmt::Display) -> BrokerError {
        BrokerError::Unavailable {
            broker: "nats",
            message: message.to_string(),
        }
    }

    /// The connection, made on first use.
    async fn client(&self) -> Result<Client, BrokerError> {
        let mut client = self.inner.client.lock().await;
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        let servers = self
            .inner
            .addresses
            .iter()
            .map(|a| {
                a.parse::<ServerAddr>()
                    .map_err(|e| Self::unavailable(format!("bad address {a:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let connected = ConnectOptions::new()
            .name("micro")
            .connection_timeout(Duration::from_secs(5))
            .connect(servers)
            .await
            .map_err(|e| Self::unavailable(format!("cannot connect to {}: {e}", self.inner.addresses.join(","))))?;
        *client = Some(connected.clone());
        Ok(connected)
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Vec<CancellationToken>> {
        self.inner.subscriptions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Returns once the server has read everything sent before on `client`'s
/// connection: a message to a new inbox comes back, and the server reads a
/// connection's commands in order.
async fn round_trip(client: &Client) -> Result<(), BrokerError> {
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await.map_err(NatsBroker::unavailable)?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(NatsBroker::unavailable)?;
    let answered = tokio::time::timeout(Duration::from_secs(5), probe.next()).await;
    if let Err(e) = probe.unsubscribe().await {
        warn!(error = %e, "cannot unsubscribe from a NATS inbox");
    }
    match answered {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(NatsBroker::unavailable("the connection closed")),
        Err(_) => Err(NatsBroker::unavailable("the server did not answer within 5 s")),
    }
}

/// Hands each message of one NATS subscription to `handler`, until `stop`.
async fn consume(mut subscriber: async_nats::Subscriber, handler: MessageHandler, stop: CancellationToken) {
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => break,
            received = subscriber.next() => received,
        };
        let Some(received) = received else { break };
        let topic = received.subject.to_string();
        let message: Message = match serde_json::from_slice(&received.payload) {
            Ok(message) => message,
            Err(e) => {
                warn!(%topic, error = %e, "dropping a NATS message that is not a broker message");
                continue;
            }
        };
        if let Err(e) = handler(Event {
            topic: topic.clone(),
            message,
        })
        .await
        {
            warn!(%topic, error = %e, "subscriber failed");
        }
    }
    // Dropping the subscriber unsubscribes; say so before returning.
    if let Err(e) = subscriber.unsubscribe().await {
        warn!(error = %e, "cannot unsubscribe from NATS");
    }
}

impl Broker for NatsBroker {
    fn connect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move { self.client().await.map(drop) })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            let client = self.inner.client.lock().await;
            let Some(client) = client.as_ref() else {
                return Err(Self::unavailable("not connected"));
            };
            match client.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                state => Err(Self::unavailable(format!(
                    "the connection to {} is {state}",
                    self.inner.addresses.join(",")
                ))),
            }
        })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            for token in self.tokens().drain(..) {
                token.cancel();
            }
            if let Some(client) = self.inner.client.lock().await.take() {
                client.drain().await.map_err(Self::unavailable)?;
            }
            Ok(())
        })
    }

    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let message = message.with_header(TOPIC_HEADER, topic);
            let body = serde_json::to_vec(&message).map_err(|e| BrokerError::Delivery {
                topic: topic.to_owned(),
                message: e.to_string(),
            })?;
            let limit = client.server_info().max_payload;
            if body.len() > limit {
                return Err(BrokerError::TooLarge {
                    size: body.len(),
                    limit,
                });
            }
            let failed = |e: &dyn fmt::Display| BrokerError::Delivery {
                topic: topic.to_owned(),
                message: e.to_string(),
            };
            client
                .publish(topic.to_owned(), Bytes::from(body))
                .await
                .map_err(|e| failed(&e))?;
            // Returning once the server has the message: a process may exit
            // right after publishing, and the server's refusals surface here.
            client.flush().await.map_err(|e| failed(&e))
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        handler: MessageHandler,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let subscribed = match &options.queue {
                Some(queue) => client.queue_subscribe(topic.to_owned(), queue.clone()).await,
                None => client.subscribe(topic.to_owned()).await,
            };
            let subscriber = subscribed.map_err(|e| Self::unavailable(format!("cannot subscribe to {topic}: {e}")))?;
            // The subscription is live once the server has read the SUB, which
            // a flush does not tell (it only writes the socket).
            round_trip(&client).await?;
            let stop = CancellationToken::new();
            self.tokens().push(stop.clone());
            let task = tokio::spawn(consume(subscriber, handler, stop.clone()));
            Ok(Subscription::new(
                topic,
                options.queue,
                Box::new(NatsUnsubscribe { stop, task }),
            ))
        })
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}

struct NatsUnsubscribe {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Unsubscribe for NatsUnsubscribe {
    fn unsubscribe(self: Box<Self>) -> BoxFuture<'static, Result<(), BrokerError>> {
        Box::pin(async move {
            self.stop.cancel();
            self.task
                .await
                .map_err(|e| NatsBroker::unavailable(format!("the subscription's task failed: {e}")))
        })
    }
}

impl fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBroker")
            .field("addresses", &self.inner.addresses)
            .finish_non_exhaustive()
    }
}
