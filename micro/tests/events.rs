//! The event stream conformance suite: every backend must pass it. Each
//! case takes a fresh stream; topics are unique per case.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use micro::events::{
    ConsumeOptions, Consumer, Event, FileStream, MemoryStream, PublishOptions, Start, Stream, dead_letter,
};

type Streams = fn() -> Pin<Box<dyn Future<Output = Arc<dyn Stream>>>>;

fn memory() -> Pin<Box<dyn Future<Output = Arc<dyn Stream>>>> {
    Box::pin(async { Arc::new(MemoryStream::new()) as Arc<dyn Stream> })
}

/// A file stream in a file of its own.
fn file() -> Pin<Box<dyn Future<Output = Arc<dyn Stream>>>> {
    Box::pin(async { Arc::new(FileStream::open(temp_file()).unwrap()) as Arc<dyn Stream> })
}

/// A NATS JetStream stream on the test server.
#[cfg(feature = "nats")]
fn nats() -> Pin<Box<dyn Future<Output = Arc<dyn Stream>>>> {
    Box::pin(async {
        let url =
            std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL: run inside `netns-run --services nats`");
        Arc::new(micro::events::NatsStream::connect(&url).await.unwrap()) as Arc<dyn Stream>
    })
}

/// A Redis Streams stream on the test server.
#[cfg(feature = "redis")]
fn redis() -> Pin<Box<dyn Future<Output = Arc<dyn Stream>>>> {
    Box::pin(async {
        let url = std::env::var("MICRO_TEST_REDIS_URL")
            .expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`");
        Arc::new(micro::events::RedisStream::connect(&url).await.unwrap()) as Arc<dyn Stream>
    })
}

fn temp_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("micro-events-{}.redb", uuid::Uuid::new_v4().simple()))
}

fn topic(case: &str) -> String {
    format!("{case}-{}", uuid::Uuid::new_v4().simple())
}

async fn publish(stream: &dyn Stream, topic: &str, n: std::ops::Range<u32>) {
    for i in n {
        stream
            .publish(topic, i.to_string().into(), PublishOptions::default())
            .await
            .unwrap();
    }
}

/// The next event, within 5 s.
async fn next(consumer: &mut Consumer) -> Event {
    tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("an event within 5 s")
        .expect("the consumer is live")
}

/// Whether no event comes within `wait`.
async fn nothing_within(consumer: &mut Consumer, wait: Duration) -> bool {
    tokio::time::timeout(wait, consumer.next()).await.is_err()
}

fn number(event: &Event) -> u32 {
    std::str::from_utf8(&event.payload).unwrap().parse().unwrap()
}

async fn in_order_within_a_consumer(streams: Streams) {
    let stream = streams().await;
    let topic = topic("order");
    publish(&*stream, &topic, 0..50).await;
    let mut consumer = stream
        .consume(&topic, ConsumeOptions::default().start(Start::All))
        .await
        .unwrap();
    publish(&*stream, &topic, 50..100).await;
    for i in 0..100 {
        let event = next(&mut consumer).await;
        assert_eq!(number(&event), i);
        // Where the backend numbers events, they are numbered from 1.
        assert!(
            event.sequence.is_none_or(|s| s == u64::from(i) + 1),
            "{:?}",
            event.sequence
        );
        assert_eq!(event.delivery_count(), 1);
    }
    assert!(nothing_within(&mut consumer, Duration::from_millis(100)).await);
}

async fn groups_share_and_every_group_gets_all(streams: Streams) {
    let stream = streams().await;
    let topic = topic("groups");
    let options = ConsumeOptions::default().group("billing");
    let mut a = stream.consume(&topic, options.clone()).await.unwrap();
    let mut b = stream.consume(&topic, options).await.unwrap();
    let mut audit = stream
        .consume(&topic, ConsumeOptions::default().group("audit"))
        .await
        .unwrap();
    publish(&*stream, &topic, 0..40).await;
    let mut billed = Vec::new();
    let (mut from_a, mut from_b) = (0, 0);
    while billed.len() < 40 {
        tokio::select! {
            event = next(&mut a) => { billed.push(number(&event)); from_a += 1; }
            event = next(&mut b) => { billed.push(number(&event)); from_b += 1; }
        }
    }
    billed.sort_unstable();
    assert_eq!(billed, (0..40).collect::<Vec<_>>(), "each event once in the group");
    assert!(from_a >= 10 && from_b >= 10, "balanced: {from_a} and {from_b}");
    for i in 0..40 {
        assert_eq!(number(&next(&mut audit).await), i, "the other group gets all, in order");
    }
}

async fn each_start_position(streams: Streams) {
    let stream = streams().await;
    let topic = topic("start");
    publish(&*stream, &topic, 0..5).await;
    let middle = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    publish(&*stream, &topic, 5..10).await;
    let from = |start| ConsumeOptions::default().start(start);
    let mut new = stream.consume(&topic, from(Start::New)).await.unwrap();
    let mut all = stream.consume(&topic, from(Start::All)).await.unwrap();
    let mut time = stream.consume(&topic, from(Start::Time(middle))).await.unwrap();
    let mut sequence = stream.consume(&topic, from(Start::Sequence(8))).await.unwrap();
    publish(&*stream, &topic, 10..11).await;
    assert_eq!(number(&next(&mut new).await), 10);
    assert_eq!(number(&next(&mut all).await), 0);
    assert_eq!(number(&next(&mut time).await), 5);
    assert_eq!(number(&next(&mut sequence).await), 7);
}

async fn ack_nack_extend(streams: Streams) {
    let stream = streams().await;
    let topic = topic("ack");
    let ack_wait = Duration::from_millis(300);
    let options = ConsumeOptions::default()
        .manual_ack(ack_wait)
        .backoff([Duration::from_millis(20)]);
    let mut consumer = stream.consume(&topic, options).await.unwrap();
    publish(&*stream, &topic, 0..1).await;

    // Not settled within the ack wait: delivered again.
    let first = next(&mut consumer).await;
    assert_eq!(first.delivery_count(), 1);
    let again = next(&mut consumer).await;
    assert_eq!((number(&again), again.delivery_count()), (0, 2));

    // Nacked: delivered again after the delay asked for.
    again.nack(Some(Duration::from_millis(50))).await.unwrap();
    let third = next(&mut consumer).await;
    assert_eq!(third.delivery_count(), 3);

    // Extended past its ack wait: not delivered again meanwhile.
    tokio::time::sleep(ack_wait / 2).await;
    third.extend().await.unwrap();
    assert!(nothing_within(&mut consumer, ack_wait * 3 / 4).await);
    third.ack().await.unwrap();
    assert!(third.is_settled());
    assert!(nothing_within(&mut consumer, ack_wait * 2).await, "acked: never again");
}

async fn retries_then_dead_letter(streams: Streams) {
    let stream = streams().await;
    let topic = topic("poison");
    let options = ConsumeOptions::default()
        .group("workers")
        .manual_ack(Duration::from_secs(5))
        .retry_limit(2)
        .backoff([Duration::from_millis(10)]);
    let mut consumer = stream.consume(&topic, options).await.unwrap();
    let mut dead = stream
        .consume(&format!("{topic}.dead"), ConsumeOptions::default().start(Start::All))
        .await
        .unwrap();
    publish(&*stream, &topic, 0..2).await;
    let mut poison = 0;
    let mut fine = 0;
    while poison < 3 || fine < 1 {
        let event = next(&mut consumer).await;
        if number(&event) == 0 {
            poison += 1;
            assert_eq!(event.delivery_count(), poison);
            event.nack_because(None, "cannot parse").await.unwrap();
        } else {
            fine += 1;
            event.ack().await.unwrap();
        }
    }
    let spent = next(&mut dead).await;
    assert_eq!(number(&spent), 0);
    assert_eq!(spent.metadata[dead_letter::TOPIC], topic);
    assert_eq!(spent.metadata[dead_letter::DELIVERIES], "3");
    assert_eq!(spent.metadata[dead_letter::ERROR], "cannot parse");
    assert_eq!(spent.metadata[dead_letter::GROUP], "workers");
    assert!(
        nothing_within(&mut consumer, Duration::from_millis(100)).await,
        "exactly three deliveries"
    );
}

async fn stop_and_resume_lose_nothing(streams: Streams) {
    let stream = streams().await;
    let topic = topic("resume");
    let options = ConsumeOptions::default().group("g").start(Start::All);
    publish(&*stream, &topic, 0..10).await;
    let mut consumer = stream.consume(&topic, options.clone()).await.unwrap();
    for i in 0..5 {
        assert_eq!(number(&next(&mut consumer).await), i);
    }
    consumer.stop().await;
    publish(&*stream, &topic, 10..15).await;
    // A consumer dropped while holding an event (a crash) gives it back.
    let mut crashed = stream.consume(&topic, options.clone()).await.unwrap();
    assert_eq!(number(&next(&mut crashed).await), 5);
    drop(crashed);
    let mut resumed = stream.consume(&topic, options).await.unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 10 {
        let event = next(&mut resumed).await;
        if number(&event) == 5 {
            // Twice at least: a backend that pushes ahead (JetStream, Redis)
            // counts what it pushed to a member that stopped before its turn.
            assert!(event.delivery_count() >= 2, "the crashed one's event comes back");
        }
        assert!(seen.insert(number(&event)), "{} twice", number(&event));
    }
    assert_eq!(seen, (5..15).collect(), "nothing lost, nothing acked seen again");
    assert!(nothing_within(&mut resumed, Duration::from_millis(100)).await);
}

async fn duplicate_ids_are_dropped(streams: Streams) {
    let stream = streams().await;
    let topic = topic("dedup");
    let mut consumer = stream.consume(&topic, ConsumeOptions::default()).await.unwrap();
    for _ in 0..2 {
        let id = stream
            .publish(&topic, "1".into(), PublishOptions::default().id("order-1"))
            .await
            .unwrap();
        assert_eq!(id, "order-1");
    }
    assert_eq!(next(&mut consumer).await.id, "order-1");
    assert!(nothing_within(&mut consumer, Duration::from_millis(100)).await);
    let err = stream
        .publish("", "x".into(), PublishOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing topic"), "{err}");
}

macro_rules! suite {
    ($backend:ident $(, #[$attr:meta])*) => {
        mod $backend {
            #[tokio::test]
            $(#[$attr])*
            async fn in_order_within_a_consumer() {
                super::in_order_within_a_consumer(super::$backend).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn groups_share_and_every_group_gets_all() {
                super::groups_share_and_every_group_gets_all(super::$backend).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn each_start_position() {
                super::each_start_position(super::$backend).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn ack_nack_extend() {
                super::ack_nack_extend(super::$backend).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn retries_then_dead_letter() {
                super::retries_then_dead_letter(super::$backend).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn stop_and_resume_lose_nothing() {
                super::stop_and_resume_lose_nothing(super::$backend).await
            }
            #[tokio::test]
            $(#[$attr])*
            async fn duplicate_ids_are_dropped() {
                super::duplicate_ids_are_dropped(super::$backend).await
            }
        }
    };
}

suite!(memory);
suite!(file);
suite!(
    nats,
    #[cfg(feature = "nats")],
    #[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
);
suite!(
    redis,
    #[cfg(feature = "redis")],
    #[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
);

/// The file stream across a restart: published events are kept, a named
/// group goes on after what it acked, and redelivers what it had not.
#[tokio::test]
async fn the_file_stream_keeps_events_and_positions_across_a_restart() {
    let path = temp_file();
    // Four at once: one held unacked does not stop the others.
    let options = ConsumeOptions::default()
        .group("billing")
        .manual_ack(Duration::from_secs(30))
        .concurrency(4)
        .start(Start::All);
    {
        let stream = FileStream::open(&path).unwrap();
        publish(&stream, "orders", 0..10).await;
        let mut consumer = stream.consume("orders", options.clone()).await.unwrap();
        for i in 0..4 {
            let event = next(&mut consumer).await;
            assert_eq!(number(&event), i);
            // 0, 1 and 3 acked; 2 held when the process goes.
            if i != 2 {
                event.ack().await.unwrap();
            }
        }
        // Until the group has taken in the acks.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = FileStream::open(&path).unwrap();
    let mut consumer = stream.consume("orders", options).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..7 {
        let event = next(&mut consumer).await;
        got.push(number(&event));
        event.ack().await.unwrap();
    }
    assert_eq!(got, [2, 4, 5, 6, 7, 8, 9], "acked ones not again, the held one again");
    assert!(nothing_within(&mut consumer, Duration::from_millis(100)).await);
    // The same ids are still known: a repeat is dropped.
    let first_id = {
        let mut all = stream
            .consume("orders", ConsumeOptions::default().start(Start::All))
            .await
            .unwrap();
        next(&mut all).await.id
    };
    stream
        .publish("orders", "0".into(), PublishOptions::default().id(first_id))
        .await
        .unwrap();
    assert!(nothing_within(&mut consumer, Duration::from_millis(100)).await);
    let _ = std::fs::remove_file(&path);
}
