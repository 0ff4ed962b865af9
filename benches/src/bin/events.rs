//! Event streaming: micro's `events` backends against the same work done
//! with the raw client crates (async-nats JetStream, redis Streams), side
//! by side in one run, written to `--out` (default `events-results.md`).
//!
//! ```sh
//! cargo build --release --manifest-path benches/Cargo.toml --bin events
//! ../shared/netns-run --services nats,redis -- benches/target/release/events            # full run
//! ../shared/netns-run --services nats,redis -- benches/target/release/events --quick    # smoke run
//! ../shared/netns-run --services nats,redis -- benches/target/release/events --only redis
//! ../shared/netns-run --services nats,redis -- benches/target/release/events --concurrency 100
//! ```
//!
//! For each backend, with the same ~100-byte JSON order as the payload:
//! - throughput: `--events` publishes, one after the other, each awaited
//!   until stored (what micro's `publish` does); then one consumer in one
//!   group reads them all, acking each explicitly;
//! - latency: a consumer runs while `--latency-events` events are published
//!   one at a time at `--rate` a second; latency is the consumer's receive
//!   time less the publish's start time, in this process.
//!
//! The raw peers do the same work by hand: they write and read Go Micro's
//! event JSON (a UUID id, an RFC 3339 timestamp, the payload in base64),
//! lay the data out as micro does (NATS: a stream per topic, subject = the
//! topic, `Nats-Msg-Id`, a durable push consumer with a deliver group and
//! explicit acks; Redis: key `stream-<topic>`, fields `event` and
//! `attempt`, `XREADGROUP .. COUNT 100 BLOCK 1000`, `XACK` per entry). NATS
//! comes from `MICRO_TEST_NATS_URL`, Redis from `MICRO_TEST_REDIS_URL`; a
//! backend whose variable is unset is skipped. Everything runs on one
//! thread (a current-thread tokio runtime), the servers on the other core;
//! that thread's CPU time per event is reported too. micro's consumers run
//! with its default `concurrency` of 1 unless `--concurrency` says
//! otherwise. Each repeat measures every row (micro and raw in turns, the
//! first alternating); the table gives medians and the ratios micro ÷ raw.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, push};
use async_nats::jetstream::{self, stream};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use micro::events::{
    ConsumeOptions, Consumer, Event, FileStream, MemoryStream, NatsStream, PublishOptions, RedisStream, Start, Stream,
};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::MissedTickBehavior;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The group every consumer joins.
const GROUP: &str = "bench";
/// The raw Redis consumer's name in the group.
const REDIS_CONSUMER: &str = "c";
/// How long an event may go unacked (micro's default, and the raw peers').
const ACK_WAIT: Duration = Duration::from_secs(30);
/// The longest a consuming phase may take before the run fails.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);

/// How much to measure.
struct Settings {
    events: usize,
    latency_events: usize,
    rate: f64,
    repeats: usize,
    warmup: usize,
    /// micro consumers' `concurrency` (1, micro's default).
    concurrency: usize,
    out: String,
    /// Measure only the rows whose name contains this.
    only: Option<String>,
}

impl Settings {
    fn from_args(args: &[String]) -> Result<Settings, Error> {
        let mut settings = Settings {
            events: 20_000,
            latency_events: 1_000,
            rate: 500.0,
            repeats: 3,
            warmup: 200,
            concurrency: 1,
            out: "events-results.md".to_owned(),
            only: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    settings.events = 300;
                    settings.latency_events = 100;
                    settings.repeats = 1;
                    settings.warmup = 20;
                }
                "--events" => settings.events = value()?.parse()?,
                "--latency-events" => settings.latency_events = value()?.parse()?,
                "--rate" => settings.rate = value()?.parse()?,
                "--repeats" => settings.repeats = value()?.parse()?,
                "--warmup" => settings.warmup = value()?.parse()?,
                "--concurrency" => settings.concurrency = value()?.parse()?,
                "--out" => settings.out = value()?.clone(),
                "--only" => settings.only = Some(value()?.clone()),
                other => {
                    return Err(
                        format!("unknown argument {other}; see the doc comment of benches/src/bin/events.rs").into(),
                    );
                }
            }
        }
        if settings.events == 0 || settings.latency_events == 0 || settings.repeats == 0 || settings.rate <= 0.0 {
            return Err("--events, --latency-events, --repeats and --rate must be positive".into());
        }
        Ok(settings)
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = Settings::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(&settings))
}

/// The ~100-byte JSON order published as event `n`: the same size for every
/// `n`, which it carries first so that a receiver can tell which it got.
fn order(n: usize) -> Bytes {
    let json = format!(
        r#"{{"order_id":"{n:08}","customer":"c-4711","sku":"widget","qty":3,"total_cents":12999,"currency":"EUR"}}"#
    );
    Bytes::from(json)
}

/// Which order a payload is.
fn order_number(payload: &[u8]) -> Option<usize> {
    let digits = payload.strip_prefix(br#"{"order_id":""#)?.get(..8)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Go Micro's `events.Event` as JSON, written by hand (field order as
/// Go's `encoding/json` writes it).
#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Metadata")]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Topic")]
    topic: &'a str,
    #[serde(rename = "Payload")]
    payload: String,
}

/// Go Micro's `events.Event` as read back.
#[derive(Deserialize)]
struct WireIn {
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Metadata", default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Topic", default)]
    topic: String,
    #[serde(rename = "Payload", default)]
    payload: Option<String>,
}

/// A new event's id and its JSON, as a raw client that speaks Go Micro's
/// events writes them.
fn encode(topic: &str, payload: &[u8]) -> Result<(String, Vec<u8>), Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let wire = WireOut {
        timestamp: OffsetDateTime::from(SystemTime::now()).format(&Rfc3339)?,
        metadata: None,
        id: &id,
        topic,
        payload: STANDARD.encode(payload),
    };
    let json = serde_json::to_vec(&wire)?;
    Ok((id, json))
}

/// The payload of an event's JSON, everything in it read as a raw client
/// reads it.
fn decode(json: &[u8]) -> Result<Bytes, Error> {
    let wire: WireIn = serde_json::from_slice(json)?;
    let at: SystemTime = OffsetDateTime::parse(&wire.timestamp, &Rfc3339)?.into();
    std::hint::black_box((at, wire.metadata, wire.id, wire.topic));
    let payload = match wire.payload {
        Some(text) => STANDARD.decode(text)?,
        None => Vec::new(),
    };
    Ok(Bytes::from(payload))
}

/// Go Micro's Redis stream key of a topic.
fn redis_key(topic: &str) -> String {
    format!("stream-{topic}")
}

/// The raw Redis peer's connection (multiplexed, for publishes and acks).
#[derive(Clone)]
struct RawRedis {
    client: redis::Client,
    conn: MultiplexedConnection,
}

/// What publishes and consumes: a micro stream, or a raw client.
#[derive(Clone)]
enum Side {
    Micro(Arc<dyn Stream>),
    RawNats(jetstream::Context),
    RawRedis(RawRedis),
}

impl Side {
    /// What a raw client must make before it publishes (micro makes it on
    /// its first publish).
    async fn prepare(&self, topic: &str) -> Result<(), Error> {
        if let Side::RawNats(js) = self {
            let config = stream::Config {
                name: topic.to_owned(),
                subjects: vec![topic.to_owned()],
                ..stream::Config::default()
            };
            js.get_or_create_stream(config).await?;
        }
        Ok(())
    }

    /// Publishes `payload` to `topic`, returning once it is stored.
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), Error> {
        match self {
            Side::Micro(stream) => {
                stream.publish(topic, payload, PublishOptions::default()).await?;
            }
            Side::RawNats(js) => {
                let (id, json) = encode(topic, &payload)?;
                let message = jetstream::message::PublishMessage::build()
                    .payload(Bytes::from(json))
                    .message_id(id);
                js.send_publish(topic.to_owned(), message).await?.await?;
            }
            Side::RawRedis(raw) => {
                let (_, json) = encode(topic, &payload)?;
                let mut conn = raw.conn.clone();
                redis::cmd("XADD")
                    .arg(redis_key(topic))
                    .arg("*")
                    .arg("event")
                    .arg(json)
                    .arg("attempt")
                    .arg("1")
                    .query_async::<String>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// A consumer of `topic` in the group, from its first event, acking by
    /// hand (micro's consumers with `concurrency`).
    async fn consume(&self, topic: &str, concurrency: usize) -> Result<Reader, Error> {
        match self {
            Side::Micro(stream) => {
                let options = ConsumeOptions::default()
                    .group(GROUP)
                    .start(Start::All)
                    .manual_ack(ACK_WAIT)
                    .concurrency(concurrency);
                Ok(Reader::Micro(stream.consume(topic, options).await?))
            }
            Side::RawNats(js) => {
                let stream = js.get_stream(topic).await?;
                let config = push::Config {
                    deliver_subject: format!("_RAW.events.{topic}.{GROUP}"),
                    durable_name: Some(GROUP.to_owned()),
                    deliver_group: Some(GROUP.to_owned()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: -1,
                    filter_subject: topic.to_owned(),
                    ..push::Config::default()
                };
                let consumer = stream.create_consumer(config).await?;
                Ok(Reader::Nats(Box::new(consumer.messages().await?)))
            }
            Side::RawRedis(raw) => {
                let key = redis_key(topic);
                // Its reads block: a connection of their own, waiting longer
                // than they block.
                let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
                let reads = raw.client.get_multiplexed_async_connection_with_config(&config).await?;
                let mut conn = raw.conn.clone();
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&key)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(Reader::Redis(RedisReader {
                    reads,
                    acks: conn,
                    key,
                    buffered: VecDeque::new(),
                }))
            }
        }
    }
}

/// The raw Redis consumer: entries read 100 at a time, acked one by one.
struct RedisReader {
    reads: MultiplexedConnection,
    acks: MultiplexedConnection,
    key: String,
    /// Entries read and not handed out yet: their ids and event JSON.
    buffered: VecDeque<(String, Vec<u8>)>,
}

/// A consumer.
enum Reader {
    Micro(Consumer),
    Nats(Box<push::Messages>),
    Redis(RedisReader),
}

/// A received event's handle, to ack it.
#[allow(
    clippy::large_enum_variant,
    reason = "moved once per event; a box would add an allocation to the raw peer's path"
)]
enum Delivered {
    Micro(Event),
    Nats(jetstream::Message),
    Redis(String),
}

impl Reader {
    /// The next event's payload, and its handle.
    async fn next(&mut self) -> Result<(Bytes, Delivered), Error> {
        match self {
            Reader::Micro(consumer) => {
                let event = consumer.next().await.ok_or("the micro consumer stopped")?;
                Ok((event.payload.clone(), Delivered::Micro(event)))
            }
            Reader::Nats(messages) => {
                let message = messages.next().await.ok_or("the push consumer ended")??;
                let payload = decode(&message.payload)?;
                Ok((payload, Delivered::Nats(message)))
            }
            Reader::Redis(reader) => loop {
                if let Some((id, json)) = reader.buffered.pop_front() {
                    return Ok((decode(&json)?, Delivered::Redis(id)));
                }
                let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(REDIS_CONSUMER)
                    .arg("COUNT")
                    .arg(100)
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&reader.key)
                    .arg(">")
                    .query_async(&mut reader.reads)
                    .await?;
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    let json: Vec<u8> = entry.get("event").ok_or("an entry with no event field")?;
                    reader.buffered.push_back((entry.id, json));
                }
            },
        }
    }

    /// Acks a received event.
    async fn ack(&mut self, delivered: Delivered) -> Result<(), Error> {
        match (self, delivered) {
            (Reader::Micro(_), Delivered::Micro(event)) => event.ack().await?,
            (Reader::Nats(_), Delivered::Nats(message)) => message.ack().await?,
            (Reader::Redis(reader), Delivered::Redis(id)) => {
                redis::cmd("XACK")
                    .arg(&reader.key)
                    .arg(GROUP)
                    .arg(id)
                    .query_async::<i64>(&mut reader.acks)
                    .await?;
            }
            _ => return Err("an event acked through another consumer".into()),
        }
        Ok(())
    }

    async fn stop(self) {
        if let Reader::Micro(consumer) = self {
            consumer.stop().await;
        }
    }
}

/// One row of the table.
struct Row {
    name: String,
    side: Side,
    /// The row of its raw peer.
    peer: Option<usize>,
    samples: Vec<Sample>,
}

/// One repeat's numbers for one row.
#[derive(Clone, Copy)]
struct Sample {
    /// Events a second.
    publish: f64,
    consume: f64,
    /// This thread's CPU time per event, in µs.
    publish_cpu: f64,
    consume_cpu: f64,
    /// Latency, in µs.
    p50: f64,
    p99: f64,
}

/// What one throughput phase measured.
struct Throughput {
    publish: f64,
    consume: f64,
    publish_cpu: f64,
    consume_cpu: f64,
}

/// The servers' handles, to delete what a measurement left.
struct Cleanup {
    nats: Option<jetstream::Context>,
    redis: Option<MultiplexedConnection>,
}

impl Cleanup {
    /// Deletes `topic`'s stream from the server of `backend`.
    async fn topic(&self, backend: &str, topic: &str) {
        match backend {
            "nats" => {
                if let Some(js) = &self.nats {
                    let _ = js.delete_stream(topic).await;
                }
            }
            "redis" => {
                if let Some(conn) = &self.redis {
                    let mut conn = conn.clone();
                    let _ = redis::cmd("DEL")
                        .arg(redis_key(topic))
                        .query_async::<i64>(&mut conn)
                        .await;
                }
            }
            _ => {}
        }
    }
}

/// Adds a row, returning its index.
fn add(rows: &mut Vec<Row>, name: &str, side: Side, peer: Option<usize>) -> usize {
    rows.push(Row {
        name: name.to_owned(),
        side,
        peer,
        samples: Vec::new(),
    });
    rows.len() - 1
}

/// The backend of a row (its name's second word).
fn backend(name: &str) -> &str {
    name.split_whitespace().nth(1).unwrap_or_default()
}

/// Whether the raw peers' JSON and micro's read each other: they speak the
/// same events.
fn check_wire() -> Result<(), Error> {
    let payload = order(7);
    let (id, json) = encode("bench-check", &payload)?;
    let event = Event::from_json(&json)?;
    if event.id != id || event.topic != "bench-check" || event.payload != payload {
        return Err("micro reads the raw peers' event JSON differently".into());
    }
    let json = Event::new("bench-check", payload.clone()).to_json()?;
    if decode(&json)? != payload {
        return Err("the raw peers read micro's event JSON differently".into());
    }
    Ok(())
}

async fn run(settings: &Settings) -> Result<(), Error> {
    check_wire()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut cleanup = Cleanup {
        nats: None,
        redis: None,
    };
    match std::env::var("MICRO_TEST_NATS_URL") {
        Ok(url) => {
            let client = async_nats::connect(url.as_str()).await?;
            let js = jetstream::new(client);
            cleanup.nats = Some(js.clone());
            let raw = add(&mut rows, "raw async-nats jetstream", Side::RawNats(js), None);
            let micro = Arc::new(NatsStream::connect(&url).await?);
            add(&mut rows, "micro nats", Side::Micro(micro), Some(raw));
        }
        Err(_) => skipped.push("nats (MICRO_TEST_NATS_URL is not set)".to_owned()),
    }
    match std::env::var("MICRO_TEST_REDIS_URL") {
        Ok(url) => {
            let client = redis::Client::open(url.as_str())?;
            let conn = client.get_multiplexed_async_connection().await?;
            cleanup.redis = Some(conn.clone());
            let raw = add(&mut rows, "raw redis", Side::RawRedis(RawRedis { client, conn }), None);
            let micro = Arc::new(RedisStream::connect(&url).await?);
            add(&mut rows, "micro redis", Side::Micro(micro), Some(raw));
        }
        Err(_) => skipped.push("redis (MICRO_TEST_REDIS_URL is not set)".to_owned()),
    }
    let file_path = std::env::temp_dir().join(format!("micro-events-bench-{}.redb", std::process::id()));
    let file = Arc::new(FileStream::open(&file_path)?);
    add(&mut rows, "micro file", Side::Micro(file), None);
    add(
        &mut rows,
        "micro memory",
        Side::Micro(Arc::new(MemoryStream::new())),
        None,
    );
    for note in &skipped {
        eprintln!("skipped: {note}");
    }
    // A measured row and its peer stay together in `rows`' order: micro
    // first in even repeats, raw first in odd ones.
    let mut order: Vec<usize> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if let Some(peer) = row.peer {
            order.retain(|i| *i != peer);
            order.push(index);
            order.push(peer);
        } else if !rows.iter().any(|r| r.peer == Some(index)) {
            order.push(index);
        }
    }
    let wanted = |row: &Row| {
        settings
            .only
            .as_ref()
            .is_none_or(|only| row.name.contains(only.as_str()))
    };
    let run_id = std::process::id();
    let warmup = settings.warmup.max(1);
    for &index in &order {
        let row = &rows[index];
        if !wanted(row) {
            continue;
        }
        let topic = format!("bench-{run_id}-warm-{index}");
        throughput(&row.side, &topic, warmup, settings.concurrency).await?;
        cleanup.topic(backend(&row.name), &topic).await;
    }
    for repeat in 0..settings.repeats {
        eprintln!("repeat {} of {}", repeat + 1, settings.repeats);
        let mut turn = order.clone();
        if repeat % 2 == 1 {
            // Raw before micro this time.
            let mut i = 0;
            while i < turn.len() {
                if rows[turn[i]].peer.is_some() && i + 1 < turn.len() {
                    turn.swap(i, i + 1);
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
        for index in turn {
            let row = &rows[index];
            if !wanted(row) {
                continue;
            }
            let tag = row.name.replace(' ', "-");
            let base = format!("bench-{run_id}-{repeat}-{tag}");
            let topic = format!("{base}-throughput");
            let measured = throughput(&row.side, &topic, settings.events, settings.concurrency).await?;
            cleanup.topic(backend(&row.name), &topic).await;
            let topic = format!("{base}-latency");
            let (p50, p99) = latency(&row.side, &topic, settings).await?;
            let Throughput {
                publish,
                consume,
                publish_cpu,
                consume_cpu,
            } = measured;
            cleanup.topic(backend(&row.name), &topic).await;
            eprintln!(
                "  {:<26} publish {publish:>8.0}/s ({publish_cpu:>5.1} µs CPU)  consume {consume:>8.0}/s ({consume_cpu:>5.1} µs CPU)  p50 {p50:>8.1} µs  p99 {p99:>8.1} µs",
                row.name
            );
            rows[index].samples.push(Sample {
                publish,
                consume,
                publish_cpu,
                consume_cpu,
                p50,
                p99,
            });
        }
    }
    let _ = std::fs::remove_file(&file_path);
    let report = report(settings, &rows, &order, &skipped);
    println!("{report}");
    std::fs::write(&settings.out, &report)?;
    eprintln!("written to {}", settings.out);
    Ok(())
}

/// This thread's CPU time so far (the runtime, the clients' connection
/// tasks and micro's consumer tasks all run on it).
fn thread_cpu() -> Duration {
    // The kernel brings a running thread's count up to date when it leaves
    // the CPU, so it is asked to leave it first.
    std::thread::yield_now();
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = schedstat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(nanos)
}

/// Publishes `count` events to `topic` one after the other, then consumes
/// them all: events a second of each, and CPU time per event.
async fn throughput(side: &Side, topic: &str, count: usize, concurrency: usize) -> Result<Throughput, Error> {
    let payloads: Vec<Bytes> = (0..count).map(order).collect();
    let expected: usize = payloads.iter().map(Bytes::len).sum();
    let per_event = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count as f64;
    let (started, cpu) = (Instant::now(), thread_cpu());
    side.prepare(topic).await?;
    for payload in payloads {
        side.publish(topic, payload).await?;
    }
    let publish = count as f64 / started.elapsed().as_secs_f64();
    let publish_cpu = per_event(thread_cpu().saturating_sub(cpu));
    let (started, cpu) = (Instant::now(), thread_cpu());
    let consumed = tokio::time::timeout(PHASE_TIMEOUT, async {
        let mut reader = side.consume(topic, concurrency).await?;
        let mut bytes = 0;
        for _ in 0..count {
            let (payload, delivered) = reader.next().await?;
            bytes += payload.len();
            reader.ack(delivered).await?;
        }
        let elapsed = started.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu);
        reader.stop().await;
        Ok::<_, Error>((bytes, elapsed, cpu))
    })
    .await
    .map_err(|_| format!("consuming {topic} took more than {PHASE_TIMEOUT:?}"))?;
    let (bytes, elapsed, consume_cpu) = consumed?;
    if bytes != expected {
        return Err(format!("{topic}: consumed {bytes} bytes of payload, published {expected}").into());
    }
    Ok(Throughput {
        publish,
        consume: count as f64 / elapsed.as_secs_f64(),
        publish_cpu,
        consume_cpu: per_event(consume_cpu),
    })
}

/// Publishes `--latency-events` events to `topic` at `--rate` a second, one at a time,
/// to a consumer already running: the median and 99th percentile of the
/// time from a publish's start to the consumer's receiving it, in µs.
async fn latency(side: &Side, topic: &str, settings: &Settings) -> Result<(f64, f64), Error> {
    let (count, rate) = (settings.latency_events, settings.rate);
    let payloads: Vec<Bytes> = (0..count).map(order).collect();
    side.prepare(topic).await?;
    let mut reader = side.consume(topic, settings.concurrency).await?;
    let receiver = tokio::spawn(async move {
        let mut received = Vec::with_capacity(count);
        for _ in 0..count {
            let (payload, delivered) = reader.next().await?;
            let at = Instant::now();
            reader.ack(delivered).await?;
            received.push((at, payload));
        }
        reader.stop().await;
        Ok::<_, Error>(received)
    });
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut started = Vec::with_capacity(count);
    for payload in payloads {
        ticks.tick().await;
        started.push(Instant::now());
        side.publish(topic, payload).await?;
    }
    let received = tokio::time::timeout(PHASE_TIMEOUT, receiver)
        .await
        .map_err(|_| format!("{topic}: not every event arrived within {PHASE_TIMEOUT:?}"))???;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut seen = vec![false; count];
    for (at, payload) in received {
        let n = order_number(&payload)
            .filter(|n| *n < count)
            .ok_or_else(|| format!("{topic}: a payload that is no order of this run"))?;
        if std::mem::replace(&mut seen[n], true) {
            return Err(format!("{topic}: order {n} received twice").into());
        }
        let nanos = at.saturating_duration_since(started[n]).as_nanos();
        histogram.record(u64::try_from(nanos).unwrap_or(u64::MAX).max(1))?;
    }
    let micros = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok((micros(0.5), micros(0.99)))
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The smallest and largest of `values`, as `a-b`.
fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.2}-{max:.2}")
}

fn report(settings: &Settings, rows: &[Row], turns: &[usize], skipped: &[String]) -> String {
    let medians = |row: &Row| -> [f64; 6] {
        let of = |f: fn(&Sample) -> f64| median(row.samples.iter().map(f).collect());
        [
            of(|s| s.publish),
            of(|s| s.consume),
            of(|s| s.p50),
            of(|s| s.p99),
            of(|s| s.publish_cpu),
            of(|s| s.consume_cpu),
        ]
    };
    let payload = order(0).len();
    // A timestamp with all nine digits of nanoseconds, as most have: the
    // size does not depend on when the report is written.
    let mut event = Event::new("bench-topic", order(0));
    event.timestamp = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let event = event.to_json().map_or(0, |json| json.len());
    let mut out = String::new();
    let _ = writeln!(out, "## Event streaming\n");
    let _ = writeln!(
        out,
        "{} repeats (medians); payload a {payload}-byte JSON order ({event} bytes as Go Micro's event JSON). \
         Throughput: {} publishes one after the other, each awaited, then one consumer in one group reads them \
         all with explicit acks (micro's consumers with concurrency {}). Latency: a running consumer, {} events \
         published one at a time at {}/s, receive time − publish start. CPU: the client thread's time per event \
         (the brokers' not counted). One client thread; {}.\n",
        settings.repeats,
        settings.events,
        settings.concurrency,
        settings.latency_events,
        settings.rate,
        machine()
    );
    if !skipped.is_empty() {
        let _ = writeln!(out, "Skipped: {}.\n", skipped.join("; "));
    }
    let _ = writeln!(
        out,
        "| stack | publish events/s | consume events/s | p50 µs | p99 µs | publish ÷ raw | consume ÷ raw | p50 ÷ raw | p99 ÷ raw | publish CPU µs/event | consume CPU µs/event |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut spreads = Vec::new();
    for &index in turns {
        let row = &rows[index];
        if row.samples.is_empty() {
            continue;
        }
        let [publish, consume, p50, p99, publish_cpu, consume_cpu] = medians(row);
        let ratios = match row.peer.map(|p| &rows[p]).filter(|p| !p.samples.is_empty()) {
            Some(peer) => {
                let [raw_publish, raw_consume, raw_p50, raw_p99, ..] = medians(peer);
                let per_repeat = |f: fn(&Sample) -> f64| -> Vec<f64> {
                    row.samples
                        .iter()
                        .zip(&peer.samples)
                        .map(|(m, r)| f(m) / f(r))
                        .collect()
                };
                spreads.push(format!(
                    "- {} ÷ {}: publish {}, consume {}, p50 {}, p99 {}",
                    row.name,
                    peer.name,
                    range(&per_repeat(|s| s.publish)),
                    range(&per_repeat(|s| s.consume)),
                    range(&per_repeat(|s| s.p50)),
                    range(&per_repeat(|s| s.p99)),
                ));
                format!(
                    "{:.2} | {:.2} | {:.2} | {:.2}",
                    publish / raw_publish,
                    consume / raw_consume,
                    p50 / raw_p50,
                    p99 / raw_p99
                )
            }
            None => " | | | ".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {publish:.0} | {consume:.0} | {p50:.1} | {p99:.1} | {ratios} | {publish_cpu:.1} | {consume_cpu:.1} |",
            row.name
        );
    }
    if !spreads.is_empty() {
        let _ = writeln!(out, "\nRatios per repeat, lowest-highest:\n");
        for line in spreads {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The CPU model and count, for the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} × {model}, loopback")
}
