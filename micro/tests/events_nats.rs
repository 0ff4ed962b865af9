//! The JetStream stream under failure (RELIABILITY.md R18-R20): a consumer
//! process killed holding events, a poison event, duplicate publishes and a
//! NATS server killed and restarted mid-stream. Run inside
//! `netns-run --services nats`; R20 runs a `nats-server` of its own.
#![cfg(feature = "nats")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use micro::events::{ConsumeOptions, Event, NatsStream, PublishOptions, Start, Stream, dead_letter};

const TOPIC: &str = "MICRO_TEST_R18_TOPIC";

fn url() -> String {
    std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL: run inside `netns-run --services nats`")
}

fn topic(case: &str) -> String {
    format!("{case}-{}", uuid::Uuid::new_v4().simple())
}

fn number(event: &Event) -> u32 {
    std::str::from_utf8(&event.payload).unwrap().parse().unwrap()
}

/// Member A of R18: takes events and never acks them, until killed.
#[tokio::test]
#[ignore = "run by r18_a_killed_consumers_events_go_to_the_other_member"]
async fn r18_child_holding_events() {
    // Run with the other ignored tests, as no one's child: nothing to do.
    let Ok(topic) = std::env::var(TOPIC) else { return };
    let stream = NatsStream::connect(&url()).await.unwrap();
    let options = ConsumeOptions::default()
        .group("r18")
        .manual_ack(Duration::from_secs(2));
    let mut consumer = stream.consume(&topic, options).await.unwrap();
    println!("ready");
    while let Some(event) = consumer.next().await {
        println!("got {}", number(&event));
    }
}

#[tokio::test]
#[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
async fn r18_a_killed_consumers_events_go_to_the_other_member() {
    let topic = topic("r18");
    let ack_wait = Duration::from_secs(2);
    let stream = NatsStream::connect(&url()).await.unwrap();
    let options = ConsumeOptions::default().group("r18").manual_ack(ack_wait);
    let mut b = stream.consume(&topic, options).await.unwrap();
    let mut a = support::Child::spawn("r18_child_holding_events", &[(TOPIC, topic.as_str())]);
    a.line_starting("ready");
    for i in 0..1000 {
        stream
            .publish(&topic, i.to_string().into(), PublishOptions::default())
            .await
            .unwrap();
    }
    // A takes about 200 without acking; B acks what it gets.
    let mut held_by_a = BTreeSet::new();
    while held_by_a.len() < 200 {
        held_by_a.insert(a.line_starting("got ").parse::<u32>().unwrap());
    }
    a.process.kill().unwrap();
    let killed = Instant::now();
    a.process.wait().unwrap();
    for line in a.lines(Duration::ZERO) {
        if let Some(n) = line.strip_prefix("got ") {
            held_by_a.insert(n.trim().parse().unwrap());
        }
    }
    let mut processed: BTreeMap<u32, u32> = BTreeMap::new();
    let mut latest_redelivery = Duration::ZERO;
    while processed.len() < 1000 {
        let event = tokio::time::timeout(Duration::from_secs(10), b.next())
            .await
            .expect("every event reaches B")
            .unwrap();
        if event.delivery_count() >= 2 {
            latest_redelivery = latest_redelivery.max(killed.elapsed());
        }
        *processed.entry(number(&event)).or_default() += 1;
        event.ack().await.unwrap();
    }
    for n in &held_by_a {
        assert!(processed.contains_key(n), "{n}, held by A, never reached B");
    }
    let duplicates: u32 = processed.values().map(|c| c - 1).sum();
    println!(
        "A held {} (printed), B processed 1000 distinct, {duplicates} duplicates, last redelivery {:?} after the kill",
        held_by_a.len(),
        latest_redelivery
    );
    assert!(
        latest_redelivery <= ack_wait + Duration::from_secs(1),
        "redelivered within the ack wait + 1 s: {latest_redelivery:?}"
    );
    assert!(
        duplicates as usize <= held_by_a.len(),
        "duplicates bounded by what A held"
    );
}

#[tokio::test]
#[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
async fn r19_a_poison_event_is_dead_lettered_and_the_rest_flow() {
    let topic = topic("r19");
    let stream = NatsStream::connect(&url()).await.unwrap();
    let options = ConsumeOptions::default()
        .group("workers")
        .manual_ack(Duration::from_secs(5))
        .retry_limit(2);
    let mut consumer = stream.consume(&topic, options).await.unwrap();
    let mut dead = stream
        .consume(&format!("{topic}.dead"), ConsumeOptions::default().start(Start::All))
        .await
        .unwrap();
    for i in 0..21 {
        stream
            .publish(&topic, i.to_string().into(), PublishOptions::default())
            .await
            .unwrap();
    }
    let mut poison_at = Vec::new();
    let mut fine = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await else {
            continue;
        };
        if number(&event) == 0 {
            poison_at.push(Instant::now());
            assert_eq!(event.delivery_count() as usize, poison_at.len());
            event
                .nack_because(Some(Duration::from_secs(1)), "poison")
                .await
                .unwrap();
        } else {
            // The others flow while the poison waits for its next try.
            if poison_at.len() < 3 {
                fine.insert(number(&event));
            }
            event.ack().await.unwrap();
        }
    }
    assert_eq!(poison_at.len(), 3, "exactly 1 + 2 retries deliveries");
    for pair in poison_at.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "gaps of the nack delay at least"
        );
    }
    assert_eq!(fine.len(), 20, "no head-of-line blocking");
    let spent = tokio::time::timeout(Duration::from_secs(5), dead.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(number(&spent), 0);
    assert_eq!(spent.metadata[dead_letter::DELIVERIES], "3");
    assert_eq!(spent.metadata[dead_letter::ERROR], "poison");
}

/// A `nats-server` of the test's own, on a store that outlives it.
struct Server {
    process: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(port: u16, dir: &std::path::Path) -> Server {
        let process = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (netns-run --services nats installs it)");
        let server = Server {
            process,
            port,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    fn restart(&mut self) {
        *self = Server::start(self.port, &self.dir.clone());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
#[ignore = "needs nats-server on PATH (netns-run --services nats)"]
async fn r20_duplicates_are_dropped_and_a_server_restart_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("micro-r20-{}", uuid::Uuid::new_v4().simple()));
    let mut server = Server::start(free_port(), &dir);
    let url = format!("nats://127.0.0.1:{}", server.port);
    let stream = NatsStream::connect(&url).await.unwrap();
    let topic = topic("r20");
    let options = ConsumeOptions::default()
        .group("r20")
        .start(Start::All)
        .manual_ack(Duration::from_secs(2));
    let mut consumer = stream.consume(&topic, options).await.unwrap();
    let consumed = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        while seen.len() < 300 {
            let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await else {
                break;
            };
            seen.insert(number(&event));
            let _ = event.ack().await;
        }
        seen
    });
    let mut failed_publishes = 0;
    for i in 0..300u32 {
        if i == 150 {
            server.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            server.restart();
        }
        // Each event published twice under one id; a publish that fails
        // (the server is down) is sent again, under the same id.
        for _ in 0..2 {
            loop {
                let options = PublishOptions::default().id(format!("e-{i}"));
                match stream.publish(&topic, i.to_string().into(), options).await {
                    Ok(_) => break,
                    Err(_) => {
                        failed_publishes += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), consumed)
        .await
        .expect("the consumer resumes")
        .unwrap();
    assert_eq!(seen, (0..300).collect(), "distinct processed == published");
    // Stored once each: the repeats were dropped by id.
    let client = async_nats::connect(&url).await.unwrap();
    let mut info = async_nats::jetstream::new(client).get_stream(&topic).await.unwrap();
    assert_eq!(info.info().await.unwrap().state.messages, 300, "no duplicate stored");
    println!("{failed_publishes} publishes failed during the restart and were sent again");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
