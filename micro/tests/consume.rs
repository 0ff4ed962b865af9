//! `#[consume]` methods end to end: a service consumes its topics from an
//! event stream as a member of its groups; `Ok` acks, an error or a panic
//! nacks (redelivered with backoff), spent events are dead-lettered; the
//! consumers are in the registry record and stop with the service.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::Flags;
use micro::events::{ConsumeOptions, MemoryStream, PublishOptions, Start, Stream, dead_letter};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u64,
}

/// An order id and the metadata it came with.
type Delivery = (u64, BTreeMap<String, String>);

/// What the consumer saw, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Delivery>>>);

impl Seen {
    fn ids(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|(id, _)| *id).collect()
    }

    fn count(&self, id: u64) -> usize {
        self.ids().iter().filter(|seen| **seen == id).count()
    }
}

struct Billing {
    seen: Seen,
    panicked: Arc<Mutex<bool>>,
}

#[micro::service]
impl Billing {
    /// Bills an order; order 13 never bills, order 7 panics the first time.
    #[consume(topic = "orders", group = "billing", retry_limit = 2, ack_wait = "5s")]
    async fn on_order(&self, ctx: &Context, order: Order) -> micro::Result<()> {
        let metadata = ctx
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        self.seen.0.lock().unwrap().push((order.id, metadata));
        if order.id == 13 {
            return Err(micro::Error::bad_request("billing", "order 13 cannot be billed"));
        }
        if order.id == 7 && !std::mem::replace(&mut *self.panicked.lock().unwrap(), true) {
            panic!("the first bill of order 7 panics");
        }
        Ok(())
    }
}

async fn eventually(what: &str, within: Duration, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_ack_nack_dead_letter_and_stop_with_the_service() {
    let stream = Arc::new(MemoryStream::new());
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let seen = Seen::default();
    let service = Service::new("billing")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .stream(stream.clone())
        .handle(Billing {
            seen: seen.clone(),
            panicked: Arc::default(),
        });
    let publisher = service.events().await.unwrap();
    let running = service.start().await.unwrap();

    // In the registry record like a subscriber, marked as a stream consumer.
    let endpoint = running
        .record()
        .endpoints
        .iter()
        .find(|e| e.name == "Billing.OnOrder")
        .expect("the consumer is listed");
    assert_eq!(endpoint.metadata["topic"], "orders");
    assert_eq!(endpoint.metadata["subscriber"], "true");
    assert_eq!(endpoint.metadata["queue"], "billing");
    assert_eq!(endpoint.metadata["stream"], "true");

    let mut dead = stream
        .consume("orders.dead", ConsumeOptions::default().start(Start::All))
        .await
        .unwrap();
    let mut ctx = Context::new();
    ctx.metadata_mut().insert("Tenant", "acme");
    for id in [1, 7, 13, 2] {
        publisher.publish(&ctx, "orders", &Order { id }).await.unwrap();
    }

    // Order 13: one delivery and two retries (1 s and 2 s of backoff), then
    // the dead-letter topic with the count and the handler's error.
    let spent = tokio::time::timeout(Duration::from_secs(10), dead.next())
        .await
        .expect("dead-lettered within 10 s")
        .unwrap();
    assert_eq!(spent.decode::<Order>().unwrap(), Order { id: 13 });
    assert_eq!(spent.metadata[dead_letter::DELIVERIES], "3");
    assert_eq!(spent.metadata[dead_letter::GROUP], "billing");
    assert!(
        spent.metadata[dead_letter::ERROR].contains("order 13 cannot be billed"),
        "{:?}",
        spent.metadata
    );
    assert_eq!(seen.count(13), 3, "exactly the limit of deliveries");
    // Order 7 panicked once, was delivered again and billed; the others once.
    eventually("order 7 billed again", Duration::from_secs(5), || seen.count(7) == 2).await;
    assert_eq!(
        (seen.count(1), seen.count(2)),
        (1, 1),
        "acked events are not redelivered"
    );
    let first = seen.0.lock().unwrap()[0].clone();
    assert_eq!(first.0, 1, "in order");
    assert_eq!(
        first.1.get("Tenant").map(String::as_str),
        Some("acme"),
        "the publisher's metadata"
    );

    let stats = &running.consumers()[0];
    assert_eq!(stats.descriptor().name(), "Billing.OnOrder");
    assert_eq!((stats.handled(), stats.failed()), (3, 4));

    // Stopped with the service: later events wait for the group.
    running.stop().await.unwrap();
    publisher.publish(&ctx, "orders", &Order { id: 3 }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.count(3), 0, "no consumer after stop");
    let mut member = stream
        .consume("orders", ConsumeOptions::default().group("billing"))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), member.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next.decode::<Order>().unwrap(),
        Order { id: 3 },
        "the group goes on where it was"
    );
}

#[tokio::test]
async fn the_events_flag_chooses_the_stream() {
    let flags = Flags::parse_from(["svc", "--events", "kafka"]).unwrap();
    let err = Service::new("svc").flags(flags).events().await.unwrap_err();
    assert!(err.to_string().contains("kafka"), "{err}");

    // --events memory: the process's shared memory stream.
    let flags = Flags::parse_from(["svc", "--events", "memory"]).unwrap();
    let publisher = Service::new("svc").flags(flags).events().await.unwrap();
    assert_eq!(publisher.stream().name(), "memory");
    let mut consumer = MemoryStream::shared()
        .consume("flag-topic", ConsumeOptions::default())
        .await
        .unwrap();
    publisher
        .publish_with(
            &Context::new(),
            "flag-topic",
            &Order { id: 5 },
            PublishOptions::default().id("o-5"),
        )
        .await
        .unwrap();
    assert_eq!(consumer.next().await.unwrap().id, "o-5");

    // The default: the embedded log in the data directory.
    let dir = std::env::temp_dir().join(format!("micro-data-{}", uuid::Uuid::new_v4().simple()));
    let flags = Flags::parse_from(["svc", "--data_dir", dir.to_str().unwrap()]).unwrap();
    let publisher = Service::new("svc").flags(flags).events().await.unwrap();
    assert_eq!(publisher.stream().name(), "file");
    assert!(dir.join("events.redb").exists());
}
