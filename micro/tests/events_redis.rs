//! The Redis stream against a real server: Go Micro's wire format both
//! ways, a crashed consumer's entries claimed by its group (R21), and a
//! Redis restart mid-stream (R22). Run inside `netns-run --services redis`.
#![cfg(feature = "redis")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::events::{ConsumeOptions, Consumer, Event, PublishOptions, RedisStream, Start, Stream, dead_letter};
use redis::aio::MultiplexedConnection;

fn url() -> String {
    std::env::var("MICRO_TEST_REDIS_URL").expect("MICRO_TEST_REDIS_URL: run inside `netns-run --services redis`")
}

fn topic(case: &str) -> String {
    format!("{case}-{}", uuid::Uuid::new_v4().simple())
}

async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The next event, within `wait`.
async fn next_within(consumer: &mut Consumer, wait: Duration) -> Event {
    tokio::time::timeout(wait, consumer.next())
        .await
        .expect("an event in time")
        .expect("the consumer is live")
}

async fn next(consumer: &mut Consumer) -> Event {
    next_within(consumer, Duration::from_secs(5)).await
}

/// `XPENDING key group`: how many entries are pending, by consumer.
async fn pending(conn: &mut MultiplexedConnection, key: &str, group: &str) -> (usize, BTreeMap<String, usize>) {
    type Summary = (usize, Option<String>, Option<String>, Option<Vec<(String, String)>>);
    let (count, _, _, consumers): Summary = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(conn)
        .await
        .unwrap();
    let consumers = consumers
        .unwrap_or_default()
        .into_iter()
        .map(|(name, n)| (name, n.parse().unwrap()))
        .collect();
    (count, consumers)
}

async fn xadd(conn: &mut MultiplexedConnection, key: &str, fields: &[(&str, &str)]) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (name, value) in fields {
        cmd.arg(*name).arg(*value);
    }
    cmd.query_async(conn).await.unwrap()
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn redis_reads_and_writes_go_micro_entries() {
    let url = url();
    let mut conn = raw(&url).await;
    let stream = RedisStream::connect(&url).await.unwrap();
    let topic = topic("wire");
    let key = format!("stream-{topic}");
    let options = ConsumeOptions::default()
        .group("g")
        .manual_ack(Duration::from_secs(30))
        .retry_limit(5);
    let mut consumer = stream.consume(&topic, options).await.unwrap();

    // Written exactly as Go's plugin writes it.
    let go = format!(
        r#"{{"Timestamp":"2024-07-10T09:15:02.123456789+02:00","Metadata":{{"k":"v"}},"ID":"e1","Topic":"{topic}","Payload":"eyJpZCI6MX0="}}"#
    );
    xadd(&mut conn, &key, &[("event", &go), ("attempt", "1")]).await;
    let event = next(&mut consumer).await;
    assert_eq!((event.id.as_str(), event.topic.as_str()), ("e1", topic.as_str()));
    assert_eq!(&event.payload[..], br#"{"id":1}"#);
    assert_eq!(event.metadata["k"], "v");
    assert_eq!((event.delivery_count(), event.sequence), (1, None));
    event.ack().await.unwrap();

    // Go's nack re-adds the entry with the next attempt: it counts.
    xadd(&mut conn, &key, &[("event", &go.replace("e1", "e2")), ("attempt", "3")]).await;
    let event = next(&mut consumer).await;
    assert_eq!((event.id.as_str(), event.delivery_count()), ("e2", 3));
    event.ack().await.unwrap();

    // No attempt field (not Go's, but read): the first delivery.
    xadd(&mut conn, &key, &[("event", &go.replace("e1", "e3"))]).await;
    let event = next(&mut consumer).await;
    assert_eq!((event.id.as_str(), event.delivery_count()), ("e3", 1));
    event.ack().await.unwrap();

    // An entry that cannot be decoded is dead-lettered, not dropped.
    let mut dead = stream
        .consume(&format!("{topic}.dead"), ConsumeOptions::default().start(Start::All))
        .await
        .unwrap();
    let broken = xadd(&mut conn, &key, &[("event", "{not json"), ("attempt", "1")]).await;
    let spent = next(&mut dead).await;
    assert_eq!(&spent.payload[..], b"{not json");
    assert_eq!(spent.metadata[dead_letter::TOPIC], topic);
    assert_eq!(spent.metadata[dead_letter::GROUP], "g");
    assert!(!spent.metadata[dead_letter::ERROR].is_empty());
    assert!(spent.id.starts_with(&broken), "{} names the entry {broken}", spent.id);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), consumer.next())
            .await
            .is_err()
    );
    assert_eq!(pending(&mut conn, &key, "g").await.0, 0, "the broken entry is acked");

    // What micro publishes, Go reads: fields `event` (Go's JSON) and
    // `attempt` = 1, nothing else.
    let id = stream
        .publish(&topic, "[1,2]".into(), PublishOptions::default().metadata("k", "v"))
        .await
        .unwrap();
    let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, fields) = entries.last().unwrap();
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["attempt", "event"]);
    assert_eq!(fields["attempt"], "1");
    let json: serde_json::Value = serde_json::from_str(&fields["event"]).unwrap();
    assert_eq!(json["ID"], id.as_str());
    assert_eq!(json["Topic"], topic.as_str());
    assert_eq!(json["Payload"], "WzEsMl0=");
    assert_eq!(json["Metadata"]["k"], "v");
    assert!(json["Timestamp"].as_str().unwrap().ends_with('Z'));
    next(&mut consumer).await.ack().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn redis_gives_a_dropped_consumers_entries_to_the_group() {
    let url = url();
    let mut conn = raw(&url).await;
    let stream = RedisStream::connect(&url).await.unwrap();
    let topic = topic("r21");
    let key = format!("stream-{topic}");
    for i in 0..100 {
        stream
            .publish(&topic, i.to_string().into(), PublishOptions::default())
            .await
            .unwrap();
    }
    let ack_wait = Duration::from_secs(1);
    let options = ConsumeOptions::default()
        .group("g")
        .start(Start::All)
        .manual_ack(ack_wait)
        .concurrency(100);
    let mut c1 = stream.consume(&topic, options.clone()).await.unwrap();
    for _ in 0..100 {
        next(&mut c1).await;
    }
    let (count, consumers) = pending(&mut conn, &key, "g").await;
    assert_eq!(count, 100);
    assert_eq!(consumers.values().copied().collect::<Vec<_>>(), [100], "all held by c1");
    // The crash, as far as a process can have one and go on.
    drop(c1);
    assert_eq!(pending(&mut conn, &key, "g").await.0, 100, "still pending");

    let began = Instant::now();
    let mut c2 = stream.consume(&topic, options.concurrency(10)).await.unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 100 {
        let event = next_within(&mut c2, ack_wait + Duration::from_secs(3)).await;
        assert!(event.delivery_count() >= 2, "{}", event.delivery_count());
        seen.insert(event.payload.clone());
        event.ack().await.unwrap();
    }
    assert!(
        began.elapsed() < ack_wait + Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(pending(&mut conn, &key, "g").await.0, 0, "the pending list drains");
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn redis_claims_a_crashed_readers_entries_after_the_ack_wait() {
    let url = url();
    let mut conn = raw(&url).await;
    let stream = RedisStream::connect(&url).await.unwrap();
    let topic = topic("r21-crash");
    let key = format!("stream-{topic}");
    let ack_wait = Duration::from_secs(1);
    let options = ConsumeOptions::default()
        .group("g")
        .start(Start::All)
        .manual_ack(ack_wait)
        .concurrency(10);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    for i in 0..100 {
        let value = i.to_string();
        let event = format!(
            r#"{{"Timestamp":"2024-07-10T09:15:02Z","Metadata":null,"ID":"{value}","Topic":"{topic}","Payload":null}}"#
        );
        xadd(&mut conn, &key, &[("event", &event), ("attempt", "1")]).await;
    }
    // A reader that takes them all and dies before it acks (a Go consumer
    // killed, or one of ours): nothing gives them back.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("crashed")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let crashed = Instant::now();
    let (count, consumers) = pending(&mut conn, &key, "g").await;
    assert_eq!((count, consumers.get("crashed")), (100, Some(&100)));
    let mut c2 = stream.consume(&topic, options).await.unwrap();

    let mut seen = BTreeSet::new();
    while seen.len() < 100 {
        let event = next_within(&mut c2, ack_wait + Duration::from_secs(3)).await;
        assert!(crashed.elapsed() >= ack_wait, "claimed only once idle for the ack wait");
        assert_eq!(event.delivery_count(), 2);
        seen.insert(event.id.clone());
        event.ack().await.unwrap();
    }
    assert!(crashed.elapsed() < ack_wait + Duration::from_secs(3));
    assert_eq!(pending(&mut conn, &key, "g").await.0, 0);

    // Idle, the consumer blocks on its own connection, longer than the
    // client's default response timeout of 500 ms, and still reads.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
    assert!(
        clients
            .lines()
            .any(|c| c.contains("cmd=xreadgroup") && c.contains("flags=b")),
        "a read blocks: {clients}"
    );
    stream
        .publish(&topic, "late".into(), PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(&next(&mut c2).await.payload[..], b"late");
}

#[tokio::test]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn redis_stopped_consumer_leaves_no_name_and_no_group_of_its_own() {
    let url = url();
    let mut conn = raw(&url).await;
    let stream = RedisStream::connect(&url).await.unwrap();
    let topic = topic("leave");
    let key = format!("stream-{topic}");
    let mut own = stream.consume(&topic, ConsumeOptions::default()).await.unwrap();
    let mut named = stream
        .consume(&topic, ConsumeOptions::default().group("g"))
        .await
        .unwrap();
    stream
        .publish(&topic, "1".into(), PublishOptions::default())
        .await
        .unwrap();
    let groups = || async {
        let mut conn = raw(&url).await;
        let groups: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        groups.len()
    };
    assert_eq!(groups().await, 2);
    next(&mut own).await;
    next(&mut named).await;
    own.stop().await;
    named.stop().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&key)
            .arg("g")
            .query_async(&mut conn)
            .await
            .unwrap();
        if groups().await == 1 && consumers.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the own group and the name are deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending(&mut conn, &key, "g").await.0, 0, "stop acked the last event");
}

/// A `redis-server` of this test's own, on a port and in a directory of
/// its own, writing every change to its append-only file before it
/// answers.
struct Server {
    port: u16,
    dir: std::path::PathBuf,
    process: Option<std::process::Child>,
}

impl Server {
    fn start() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("micro-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server {
            port,
            dir,
            process: None,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on its directory, and waits for it to listen.
    fn restart(&mut self) {
        let process = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server listens");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().unwrap().id().to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the publisher and the consumer saw.
#[derive(Default)]
struct History {
    /// Payloads whose publish returned Ok.
    published: BTreeSet<u32>,
    /// How long each failed publish took.
    failures: Vec<Duration>,
    /// Deliveries by payload.
    received: BTreeMap<u32, usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: MICRO_TEST_REDIS_URL (netns-run --services redis)"]
async fn redis_restart_loses_no_acknowledged_entry() {
    let mut server = Server::start();
    let stream = RedisStream::connect(&server.url()).await.unwrap();
    let topic = topic("r22");
    let history = Arc::new(Mutex::new(History::default()));
    let paused = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));

    let options = ConsumeOptions::default()
        .group("g")
        .start(Start::All)
        .manual_ack(Duration::from_secs(1));
    let mut consumer = stream.consume(&topic, options).await.unwrap();
    let consuming = {
        let history = Arc::clone(&history);
        tokio::spawn(async move {
            while let Some(event) = consumer.next().await {
                let n: u32 = std::str::from_utf8(&event.payload).unwrap().parse().unwrap();
                *history.lock().unwrap().received.entry(n).or_default() += 1;
                // An ack lost to the outage: the entry comes again.
                let _ = event.ack().await;
            }
        })
    };
    let publishing = {
        let (stream, history, paused, done) = (
            stream.clone(),
            Arc::clone(&history),
            Arc::clone(&paused),
            Arc::clone(&done),
        );
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                if paused.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let began = Instant::now();
                let options = PublishOptions::default().id(n.to_string());
                match stream.publish(&topic, n.to_string().into(), options).await {
                    Ok(_) => history.lock().unwrap().published.insert(n),
                    Err(_) => {
                        history.lock().unwrap().failures.push(began.elapsed());
                        false
                    }
                };
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let published = || history.lock().unwrap().published.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(published() > 20, "publishing runs");

    // Frozen: requests get no answer, and fail at their timeout.
    server.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.signal("-CONT");
    assert!(
        !history.lock().unwrap().failures.is_empty(),
        "a publish failed while Redis was frozen"
    );

    // Killed: publishes fail at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Still down, publishing paused: count the consumer's connection
    // attempts on a listener standing in for Redis.
    paused.store(true, Ordering::Relaxed);
    let attempts = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", server.port)).await.unwrap();
    let counting = {
        let attempts = Arc::clone(&attempts);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                attempts.fetch_add(1, Ordering::Relaxed);
                drop(socket);
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    counting.abort();
    let _ = counting.await;
    let attempts = attempts.load(Ordering::Relaxed);
    assert!(
        attempts <= 20,
        "at most 10 attempts a second, not a spin: {attempts} in 2 s"
    );

    server.restart();
    let before_restart = published();
    paused.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.store(true, Ordering::Relaxed);
    publishing.await.unwrap();
    assert!(published() > before_restart, "publishing resumes");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let missing: Vec<u32> = {
            let history = history.lock().unwrap();
            history
                .published
                .iter()
                .filter(|n| !history.received.contains_key(n))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged publishes never consumed: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every delivery acked in the end: nothing left pending.
    let mut conn = raw(&server.url()).await;
    let key = format!("stream-{topic}");
    while pending(&mut conn, &key, "g").await.0 > 0 {
        assert!(Instant::now() < deadline, "the pending list drains");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let history = history.lock().unwrap();
    let slowest = history.failures.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(6500),
        "a failing publish took {slowest:?}"
    );
    let again = history.received.values().filter(|n| **n > 1).count();
    println!(
        "{} published, {} failed (slowest {slowest:?}), {} delivered more than once, {attempts} connection attempts in 2 s down",
        history.published.len(),
        history.failures.len(),
        again,
    );
    consuming.abort();
}
