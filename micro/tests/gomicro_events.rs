//! Events interop with real Go Micro: the Go peer (`tests/gomicro/`) runs
//! Go Micro's NATS JetStream events plugin (natsjs v1.2.1), and a micro
//! `NatsStream` shares its topics and groups. Ignored unless
//! `MICRO_TEST_GOMICRO` names the built peer; run inside
//! `netns-run --services nats`.
#![cfg(feature = "nats")]

mod peer;

use std::collections::BTreeSet;
use std::time::Duration;

use micro::events::{ConsumeOptions, Consumer, NatsStream, PublishOptions, Stream};
use serde::Deserialize;
use serde_json::Value;

use peer::Peer;

fn url() -> String {
    std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL: run inside `netns-run --services nats`")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// What Go's events carry: `{"from": "go", "n": i}`.
#[derive(Debug, Deserialize)]
struct FromGo {
    from: String,
    n: u32,
}

/// The events a Go consumer printed until it timed out or got its count.
async fn printed(peer: &mut Peer) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let line = peer.line("").await;
        if let Some(json) = line.strip_prefix("event ") {
            events.push(serde_json::from_str(json).unwrap());
        } else if line == "timeout" || line.starts_with("error") {
            return events;
        }
    }
}

/// What a micro consumer gets within `quiet` of the last event, acked.
async fn drain(consumer: &mut Consumer, quiet: Duration) -> Vec<micro::events::Event> {
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(quiet, consumer.next()).await {
        event.ack().await.unwrap();
        events.push(event);
    }
    events
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and NATS (netns-run --services nats)"]
async fn go_events_reach_a_micro_consumer_sharing_a_group_with_a_go_consumer() {
    let (topic, group) = (unique("orders"), unique("billing"));
    let url = url();
    // Go's consumer comes first: Go Micro creates the stream and the group.
    let mut go = Peer::start(&[
        "events-consume",
        "--nats",
        &url,
        "--topic",
        &topic,
        "--group",
        &group,
        "--count",
        "40",
        "--timeout",
        "6s",
    ]);
    go.line("ready").await;
    let stream = NatsStream::connect(&url).await.unwrap();
    let mut micro = stream
        .consume(
            &topic,
            ConsumeOptions::default()
                .group(&group)
                .manual_ack(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let mut publisher = Peer::start(&[
        "events-publish",
        "--nats",
        &url,
        "--topic",
        &topic,
        "--count",
        "40",
        "--metadata",
        "tenant=acme",
    ]);
    publisher.line("done").await;

    let got = drain(&mut micro, Duration::from_secs(3)).await;
    let by_go = printed(&mut go).await;
    let mut ours = BTreeSet::new();
    for event in &got {
        let order: FromGo = event.decode().unwrap();
        assert_eq!(order.from, "go");
        assert_eq!(event.topic, topic);
        assert_eq!(event.metadata["tenant"], "acme", "Go's metadata");
        assert!(!event.id.is_empty());
        ours.insert(order.n);
    }
    let theirs: BTreeSet<u32> = by_go
        .iter()
        .map(|e| {
            let payload: FromGo = serde_json::from_str(e["payload"].as_str().unwrap()).unwrap();
            payload.n
        })
        .collect();
    assert!(
        ours.is_disjoint(&theirs),
        "each event to one member: {ours:?} {theirs:?}"
    );
    let all: BTreeSet<u32> = ours.union(&theirs).copied().collect();
    assert_eq!(all, (0..40).collect(), "the group got every event");
    assert!(
        !ours.is_empty() && !theirs.is_empty(),
        "both members served: {} and {}",
        ours.len(),
        theirs.len()
    );
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO and NATS (netns-run --services nats)"]
async fn micro_events_reach_a_go_consumer_and_go_joins_a_group_micro_made() {
    let url = url();
    let stream = NatsStream::connect(&url).await.unwrap();

    // micro publishes (creating the stream), a Go consumer reads.
    let (topic, group) = (unique("shipments"), unique("go-only"));
    stream
        .publish(&topic, "{}".into(), PublishOptions::default())
        .await
        .unwrap();
    let mut go = Peer::start(&[
        "events-consume",
        "--nats",
        &url,
        "--topic",
        &topic,
        "--group",
        &group,
        "--count",
        "3",
        "--timeout",
        "10s",
    ]);
    go.line("ready").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let options = PublishOptions::default()
            .id(format!("ship-{n}"))
            .metadata("tenant", "acme");
        let payload = serde_json::to_vec(&serde_json::json!({"n": n})).unwrap();
        ids.push(stream.publish(&topic, payload.into(), options).await.unwrap());
    }
    for (n, id) in ids.iter().enumerate() {
        let line = go.line("event ").await;
        let event: Value = serde_json::from_str(&line["event ".len()..]).unwrap();
        assert_eq!(event["id"], id.as_str(), "{line}");
        assert_eq!(event["topic"], topic.as_str(), "{line}");
        assert_eq!(event["metadata"]["tenant"], "acme", "{line}");
        let payload: Value = serde_json::from_str(event["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["n"], n, "{line}");
    }

    // micro makes the group; a Go consumer binds to it and shares it.
    let (topic, group) = (unique("invoices"), unique("shared"));
    let mut micro = stream
        .consume(
            &topic,
            ConsumeOptions::default()
                .group(&group)
                .manual_ack(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    let mut go = Peer::start(&[
        "events-consume",
        "--nats",
        &url,
        "--topic",
        &topic,
        "--group",
        &group,
        "--count",
        "40",
        "--timeout",
        "6s",
    ]);
    go.line("ready").await;
    for n in 0..40 {
        let payload = serde_json::to_vec(&serde_json::json!({"from": "micro", "n": n})).unwrap();
        stream
            .publish(&topic, payload.into(), PublishOptions::default())
            .await
            .unwrap();
    }
    let ours: BTreeSet<u32> = drain(&mut micro, Duration::from_secs(3))
        .await
        .iter()
        .map(|e| e.decode::<FromGo>().unwrap().n)
        .collect();
    let theirs: BTreeSet<u32> = printed(&mut go)
        .await
        .iter()
        .map(|e| {
            serde_json::from_str::<FromGo>(e["payload"].as_str().unwrap())
                .unwrap()
                .n
        })
        .collect();
    assert!(ours.is_disjoint(&theirs), "each event to one member");
    assert_eq!(ours.union(&theirs).count(), 40, "the group got every event");
    assert!(
        !theirs.is_empty(),
        "the Go consumer bound to micro's group and was served"
    );
}
