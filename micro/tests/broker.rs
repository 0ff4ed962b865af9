//! The broker conformance suite, run against every implementation: the
//! memory broker, the HTTP broker (the default, on a memory registry) and,
//! with the `nats` feature, the NATS broker (`netns-run --services nats`).
//!
//! Each check subscribes with [`Broker::subscribe`] and publishes with
//! [`Broker::publish`] through a second broker of the same kind, as another
//! process would. `#[subscribe]` services over these brokers are in
//! `pubsub.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::Error;
use micro::broker::{
    Broker, Event, HttpBroker, HttpBrokerOptions, MemoryBroker, Message, MessageHandler, SubscribeOptions,
};
use micro::registry::{MemoryRegistry, Registry};

/// A topic no other test uses, so tests sharing a NATS server do not meet.
fn unique(prefix: &str) -> String {
    format!("{prefix}.{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// What one subscription received.
#[derive(Clone, Default)]
struct Inbox {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Inbox {
    /// A handler that keeps every event in this inbox.
    fn handler(&self) -> MessageHandler {
        self.failing_handler(false)
    }

    /// A handler that keeps every event, then fails if `fail`.
    fn failing_handler(&self, fail: bool) -> MessageHandler {
        let inbox = self.clone();
        Arc::new(move |event| {
            inbox.events.lock().unwrap().push(event);
            Box::pin(async move {
                if fail {
                    Err(Error::internal_server_error("broker.test", "failing on purpose"))
                } else {
                    Ok(())
                }
            })
        })
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The bodies received, as text, in order of arrival.
    fn bodies(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.message.body).into_owned())
            .collect()
    }

    fn sorted(&self) -> Vec<String> {
        let mut bodies = self.bodies();
        bodies.sort();
        bodies
    }

    fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Waits until this inbox holds `n` events.
    async fn holds(&self, n: usize, what: &str) {
        support::eventually(what, Duration::from_secs(10), async || self.len() >= n).await;
    }
}

/// Numbered bodies `prefix-0`.. `prefix-{n-1}`, in the order `Inbox::sorted` gives.
fn numbered(prefix: &str, n: usize) -> Vec<String> {
    let mut bodies: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    bodies.sort();
    bodies
}

/// One implementation under test.
struct Suite {
    /// A new broker of the kind under test, as another process would have;
    /// memory brokers are clones of one, since they reach only each other.
    make: Box<dyn Fn() -> Arc<dyn Broker>>,
    /// How long a message published before a marker may still take to
    /// arrive once the marker has: zero for a broker whose publish returns
    /// only once every subscriber's handler has run.
    quiet: Duration,
    /// Made brokers, disconnected at the end.
    made: Mutex<Vec<Arc<dyn Broker>>>,
}

impl Suite {
    fn new(quiet: Duration, make: impl Fn() -> Arc<dyn Broker> + 'static) -> Suite {
        Suite {
            make: Box::new(make),
            quiet,
            made: Mutex::default(),
        }
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        let broker = (self.make)();
        broker.connect().await.expect("the broker connects");
        self.made.lock().unwrap().push(Arc::clone(&broker));
        broker
    }

    /// Proves that what was published to `topic` before now has been
    /// delivered: publishes a marker, waits until `sentinel` (subscribed to
    /// `topic`) has it, then waits [`quiet`](Suite::quiet) more, for a broker
    /// that delivers to each subscription on its own. A message that should
    /// not arrive would have arrived by then.
    async fn settle(&self, publisher: &dyn Broker, topic: &str, sentinel: &Inbox) {
        let marker = format!("marker-{}", uuid::Uuid::new_v4().simple());
        publisher
            .publish(topic, Message::new(marker.clone()))
            .await
            .expect("the marker is published");
        support::eventually(
            "the marker to reach the sentinel",
            Duration::from_secs(10),
            async || sentinel.bodies().contains(&marker),
        )
        .await;
        tokio::time::sleep(self.quiet).await;
    }

    async fn run(self) {
        self.body_and_headers_are_delivered().await;
        self.every_subscriber_gets_every_message().await;
        self.queue_groups_share_messages().await;
        self.unsubscribe_stops_delivery().await;
        self.topics_are_separate().await;
        self.publishing_with_no_subscriber_is_no_error().await;
        self.a_failing_handler_keeps_its_subscription().await;
        let made: Vec<Arc<dyn Broker>> = self.made.lock().unwrap().drain(..).collect();
        for broker in made {
            broker.disconnect().await.expect("the broker disconnects");
        }
    }

    async fn body_and_headers_are_delivered(&self) {
        let (subscriber, publisher) = (self.broker().await, self.broker().await);
        let topic = unique("delivery");
        let inbox = Inbox::default();
        let subscription = subscriber
            .subscribe(&topic, inbox.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        assert_eq!(subscription.topic(), topic);
        assert_eq!(subscription.queue(), None);
        let body: &[u8] = b"\x00binary \xff body\n";
        let message = Message::new(body)
            .with_header("Content-Type", "application/octet-stream")
            .with_header("X-Trace", "t-1");
        publisher.publish(&topic, message).await.unwrap();
        inbox.holds(1, "the message").await;
        let event = &inbox.events()[0];
        assert_eq!(event.topic, topic);
        assert_eq!(event.message.body, body, "the body, byte for byte");
        assert_eq!(event.message.header.get("X-Trace").map(String::as_str), Some("t-1"));
        assert_eq!(
            event.message.header.get("Content-Type").map(String::as_str),
            Some("application/octet-stream")
        );
        assert_eq!(event.message.topic(), Some(topic.as_str()), "Micro-Topic is set");
        // An empty body arrives empty.
        publisher.publish(&topic, Message::new("")).await.unwrap();
        inbox.holds(2, "the empty message").await;
        assert!(inbox.events()[1].message.body.is_empty());
        subscription.unsubscribe().await.unwrap();
    }

    async fn every_subscriber_gets_every_message(&self) {
        let publisher = self.broker().await;
        let topic = unique("broadcast");
        let inboxes = [Inbox::default(), Inbox::default(), Inbox::default()];
        let mut subscriptions = Vec::new();
        // Two subscriptions on one broker, one on another.
        let (first, second) = (self.broker().await, self.broker().await);
        for (inbox, broker) in inboxes.iter().zip([&first, &first, &second]) {
            let subscription = broker
                .subscribe(&topic, inbox.handler(), SubscribeOptions::default())
                .await
                .unwrap();
            subscriptions.push(subscription);
        }
        for i in 0..5 {
            let body = format!("all-{i:03}");
            publisher.publish(&topic, Message::new(body)).await.unwrap();
        }
        for (n, inbox) in inboxes.iter().enumerate() {
            inbox.holds(5, &format!("subscriber {n}'s messages")).await;
        }
        self.settle(&*publisher, &topic, &inboxes[0]).await;
        for (n, inbox) in inboxes.iter().enumerate() {
            let mut bodies = inbox.sorted();
            bodies.retain(|b| !b.starts_with("marker-"));
            assert_eq!(bodies, numbered("all", 5), "subscriber {n}: each message once");
        }
        for subscription in subscriptions {
            subscription.unsubscribe().await.unwrap();
        }
    }

    async fn queue_groups_share_messages(&self) {
        let publisher = self.broker().await;
        let topic = unique("queue");
        let (first, second) = (self.broker().await, self.broker().await);
        let members = [Inbox::default(), Inbox::default()];
        let everyone = Inbox::default();
        let mut subscriptions = Vec::new();
        for (member, broker) in members.iter().zip([&first, &second]) {
            let subscription = broker
                .subscribe(&topic, member.handler(), SubscribeOptions::queue("workers"))
                .await
                .unwrap();
            assert_eq!(subscription.queue(), Some("workers"));
            subscriptions.push(subscription);
        }
        // A subscriber outside the group gets every message all the same.
        subscriptions.push(
            first
                .subscribe(&topic, everyone.handler(), SubscribeOptions::default())
                .await
                .unwrap(),
        );
        let n = 40;
        for i in 0..n {
            let body = format!("job-{i:03}");
            publisher.publish(&topic, Message::new(body)).await.unwrap();
        }
        support::eventually("every job to reach the group", Duration::from_secs(10), async || {
            members[0].len() + members[1].len() >= n
        })
        .await;
        everyone.holds(n, "every job outside the group").await;
        self.settle(&*publisher, &topic, &everyone).await;
        let mut shared = members[0].bodies();
        shared.extend(members[1].bodies());
        shared.sort();
        // The marker went to the group too.
        shared.retain(|b| !b.starts_with("marker-"));
        assert_eq!(shared, numbered("job", n), "each job to exactly one member");
        assert!(
            members.iter().all(|m| m.len() > 0),
            "both members took a share: {} and {}",
            members[0].len(),
            members[1].len()
        );
        let mut all = everyone.sorted();
        all.retain(|b| !b.starts_with("marker-"));
        assert_eq!(all, numbered("job", n));
        for subscription in subscriptions {
            subscription.unsubscribe().await.unwrap();
        }
    }

    async fn unsubscribe_stops_delivery(&self) {
        let (subscriber, publisher) = (self.broker().await, self.broker().await);
        let topic = unique("unsubscribe");
        let (leaving, staying) = (Inbox::default(), Inbox::default());
        let leaves = subscriber
            .subscribe(&topic, leaving.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        let stays = subscriber
            .subscribe(&topic, staying.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        publisher.publish(&topic, Message::new("before")).await.unwrap();
        leaving.holds(1, "the message before unsubscribing").await;
        leaves.unsubscribe().await.unwrap();
        publisher
            .publish(&topic, Message::new("after"))
            .await
            .expect("publishing after an unsubscribe is no error");
        self.settle(&*publisher, &topic, &staying).await;
        assert_eq!(leaving.bodies(), ["before"], "nothing after the unsubscribe");
        assert_eq!(
            staying.bodies()[..2],
            ["before", "after"],
            "the other subscription goes on"
        );

        // The last subscription of a topic too.
        stays.unsubscribe().await.unwrap();
        let count = staying.len();
        publisher
            .publish(&topic, Message::new("to nobody"))
            .await
            .expect("publishing after the last unsubscribe is no error");
        let other = unique("unsubscribe.sentinel");
        let sentinel = Inbox::default();
        let watching = subscriber
            .subscribe(&other, sentinel.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        self.settle(&*publisher, &other, &sentinel).await;
        assert_eq!(staying.len(), count, "nothing after the last unsubscribe");
        watching.unsubscribe().await.unwrap();
    }

    async fn topics_are_separate(&self) {
        let (subscriber, publisher) = (self.broker().await, self.broker().await);
        let (orders, invoices) = (unique("orders"), unique("invoices"));
        let (on_orders, on_invoices) = (Inbox::default(), Inbox::default());
        let a = subscriber
            .subscribe(&orders, on_orders.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        let b = subscriber
            .subscribe(&invoices, on_invoices.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        publisher.publish(&orders, Message::new("order")).await.unwrap();
        publisher.publish(&invoices, Message::new("invoice")).await.unwrap();
        on_orders.holds(1, "the order").await;
        on_invoices.holds(1, "the invoice").await;
        self.settle(&*publisher, &orders, &on_orders).await;
        self.settle(&*publisher, &invoices, &on_invoices).await;
        assert_eq!(on_orders.bodies()[0], "order");
        assert_eq!(on_invoices.bodies()[0], "invoice");
        for inbox in [&on_orders, &on_invoices] {
            assert_eq!(
                inbox.len(),
                2,
                "its message and its marker, nothing from the other topic"
            );
            assert!(inbox.events().iter().all(|e| e.topic == e.message.topic().unwrap()));
        }
        assert!(on_orders.events().iter().all(|e| e.topic == orders));
        assert!(on_invoices.events().iter().all(|e| e.topic == invoices));
        a.unsubscribe().await.unwrap();
        b.unsubscribe().await.unwrap();
    }

    async fn publishing_with_no_subscriber_is_no_error(&self) {
        let publisher = self.broker().await;
        publisher
            .publish(&unique("nobody"), Message::new("into the void"))
            .await
            .expect("at most once: no subscriber is no error");
    }

    async fn a_failing_handler_keeps_its_subscription(&self) {
        let (subscriber, publisher) = (self.broker().await, self.broker().await);
        let topic = unique("failing");
        let (failing, healthy) = (Inbox::default(), Inbox::default());
        let a = subscriber
            .subscribe(&topic, failing.failing_handler(true), SubscribeOptions::default())
            .await
            .unwrap();
        let b = subscriber
            .subscribe(&topic, healthy.handler(), SubscribeOptions::default())
            .await
            .unwrap();
        for i in 0..3 {
            publisher
                .publish(&topic, Message::new(format!("m-{i:03}")))
                .await
                .expect("a subscriber's failure is not the publisher's");
        }
        failing.holds(3, "every message, though the handler fails").await;
        healthy.holds(3, "every message beside the failing handler").await;
        assert_eq!(failing.sorted(), numbered("m", 3));
        assert_eq!(healthy.sorted(), numbered("m", 3));
        a.unsubscribe().await.unwrap();
        b.unsubscribe().await.unwrap();
    }
}

#[tokio::test]
async fn memory_broker_conforms() {
    // Publishing runs the handlers before it returns.
    let broker = MemoryBroker::new();
    Suite::new(Duration::ZERO, move || Arc::new(broker.clone())).run().await;
}

#[tokio::test]
async fn http_broker_conforms() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    // Publishing returns once every subscriber has answered its POST.
    Suite::new(Duration::ZERO, move || {
        let options = HttpBrokerOptions::default().address("127.0.0.1:0");
        Arc::new(HttpBroker::with_options(Arc::clone(&registry), options))
    })
    .run()
    .await;
}

#[cfg(feature = "nats")]
#[tokio::test]
#[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
async fn nats_broker_conforms() {
    let url =
        std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL: run inside `netns-run --services nats`");
    // Each subscription handles its messages on a task of its own.
    Suite::new(Duration::from_millis(100), move || {
        Arc::new(micro::broker::NatsBroker::new(&url))
    })
    .run()
    .await;
}
