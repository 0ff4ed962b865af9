//! Streaming endpoints end to end over real sockets: each mode, ordering,
//! cancellation, backpressure, errors in the middle of a stream, and many
//! streams on one connection.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use micro::Flags;
use micro::prelude::*;
use micro::registry::MemoryRegistry;
use micro::service::Running;
use micro::stream::{Receiver, Sender, Stream};

#[derive(Debug, Serialize, Deserialize)]
struct Count {
    n: u64,
    delay_ms: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Tick {
    i: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Num {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Total {
    sum: u64,
    count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Msg {
    i: u64,
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Flood {
    count: u64,
    size: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Blob {
    #[serde(with = "serde_bytes_compat")]
    data: Vec<u8>,
}

/// Bytes as one binary value in MessagePack (not an array of numbers).
mod serde_bytes_compat {
    pub fn serialize<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(data)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[derive(Default)]
struct Gauges {
    watching: AtomicUsize,
    cancelled: AtomicUsize,
    produced: AtomicUsize,
}

/// Counts a running handler and notes it when dropped unfinished.
struct Watching(Arc<Gauges>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.watching.fetch_sub(1, Ordering::SeqCst);
        self.0.cancelled.fetch_add(1, Ordering::SeqCst);
    }
}

struct Streamer {
    gauges: Arc<Gauges>,
}

#[micro::service]
impl Streamer {
    /// Sends `n` ticks.
    #[endpoint]
    async fn count(&self, req: Count, tx: Sender<Tick>) -> Result<()> {
        for i in 0..req.n {
            if req.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(req.delay_ms)).await;
            }
            tx.send(Tick { i }).await?;
        }
        Ok(())
    }

    /// Adds up the numbers it receives.
    #[endpoint]
    async fn sum(&self, mut rx: Receiver<Num>) -> Result<Total> {
        let mut total = Total { sum: 0, count: 0 };
        while let Some(num) = rx.recv().await? {
            total.sum += num.n;
            total.count += 1;
        }
        Ok(total)
    }

    /// Echoes every message.
    #[endpoint]
    async fn echo(&self, mut stream: Stream<Msg, Msg>) -> Result<()> {
        while let Some(msg) = stream.recv().await? {
            stream.send(msg).await?;
        }
        Ok(())
    }

    /// Echoes every message, receiving and sending from separate tasks.
    #[endpoint]
    async fn echo_halves(&self, mut rx: Receiver<Msg>, tx: Sender<Msg>) -> Result<()> {
        let (relay, mut relayed) = tokio::sync::mpsc::channel(4);
        let sending = tokio::spawn(async move {
            while let Some(msg) = relayed.recv().await {
                tx.send(msg).await?;
            }
            Ok::<_, Error>(())
        });
        while let Some(msg) = rx.recv().await? {
            if relay.send(msg).await.is_err() {
                break;
            }
        }
        drop(relay);
        sending
            .await
            .map_err(|e| Error::internal_server_error("streamer", e.to_string()))?
    }

    /// Sends `n` ticks, then fails.
    #[endpoint]
    async fn fail_after(&self, req: Count, tx: Sender<Tick>) -> Result<()> {
        for i in 0..req.n {
            tx.send(Tick { i }).await?;
        }
        Err(Error::conflict("streamer", format!("gave up after {}", req.n)))
    }

    /// Sends a tick every few milliseconds until cancelled.
    #[endpoint]
    async fn watch(&self, req: Count, tx: Sender<Tick>) -> Result<()> {
        self.gauges.watching.fetch_add(1, Ordering::SeqCst);
        let _watching = Watching(Arc::clone(&self.gauges));
        let mut i = 0;
        loop {
            tx.send(Tick { i }).await?;
            i += 1;
            tokio::time::sleep(Duration::from_millis(req.delay_ms)).await;
        }
    }

    /// Sends `count` blobs of `size` bytes as fast as the reader allows.
    #[endpoint]
    async fn flood(&self, req: Flood, tx: Sender<Blob>) -> Result<()> {
        let data = vec![7u8; req.size];
        for _ in 0..req.count {
            tx.send(Blob { data: data.clone() }).await?;
            self.gauges.produced.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Tells the caller where it called from and who it said it was, then
    /// waits for the caller to leave.
    #[endpoint]
    async fn peer(&self, ctx: &Context, _req: Msg, tx: Sender<Msg>) -> Result<()> {
        let text = format!(
            "{} {}",
            ctx.remote_addr().unwrap_or_default(),
            ctx.get("X-User").unwrap_or("anonymous")
        );
        tx.send(Msg { i: 0, text }).await?;
        tx.closed().await;
        Ok(())
    }
}

async fn start() -> (Running, Arc<Gauges>) {
    let gauges = Arc::new(Gauges::default());
    let running = Service::new("streamer")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .handle(Streamer {
            gauges: Arc::clone(&gauges),
        })
        .start()
        .await
        .unwrap();
    (running, gauges)
}

fn msg(i: u64) -> Msg {
    Msg {
        i,
        text: format!("message {i}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_delivers_ten_thousand_messages_in_order() {
    let (running, _) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let mut ticks = streamer.count(Count { n: 10_000, delay_ms: 0 }).await.unwrap();
    let mut expected = 0;
    while let Some(tick) = ticks.recv().await.unwrap() {
        assert_eq!(tick.i, expected);
        expected += 1;
    }
    assert_eq!(expected, 10_000);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_sends_ten_thousand_messages_and_gets_one_answer() {
    let (running, _) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let upload = streamer.sum().await.unwrap();
    for n in 0..10_000 {
        upload.send(Num { n }).await.unwrap();
    }
    let total = upload.close_and_recv().await.unwrap();
    assert_eq!(
        total,
        Total {
            sum: 49_995_000,
            count: 10_000
        }
    );
    running.stop().await.unwrap();
}

async fn echo_both_ways(stream: Stream<Msg, Msg>) {
    let (tx, mut rx) = stream.split();
    let sending = tokio::spawn(async move {
        for i in 0..10_000 {
            tx.send(msg(i)).await.unwrap();
        }
    });
    let mut expected = 0;
    while let Some(m) = rx.recv().await.unwrap() {
        assert_eq!(m, msg(expected));
        expected += 1;
        if expected == 10_000 {
            break;
        }
    }
    sending.await.unwrap();
    assert_eq!(expected, 10_000);
    assert_eq!(
        rx.recv().await.unwrap(),
        None,
        "the server ends its side once ours is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidi_stream_carries_ten_thousand_messages_each_way_in_order() {
    let (running, _) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    echo_both_ways(streamer.echo().await.unwrap()).await;
    echo_both_ways(streamer.echo_halves().await.unwrap()).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_the_middle_of_a_stream_reaches_the_client_with_its_code() {
    let (running, _) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let mut ticks = streamer.fail_after(Count { n: 5, delay_ms: 0 }).await.unwrap();
    for i in 0..5 {
        assert_eq!(ticks.recv().await.unwrap(), Some(Tick { i }));
    }
    let err = ticks.recv().await.unwrap_err();
    assert_eq!(
        (err.code, err.id.as_str(), err.detail.as_str()),
        (409, "streamer", "gave up after 5")
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sees_a_cancel_within_a_second_and_its_handler_ends() {
    let (running, gauges) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let mut ticks = streamer.watch(Count { n: 0, delay_ms: 20 }).await.unwrap();
    ticks.recv().await.unwrap();
    assert_eq!(gauges.watching.load(Ordering::SeqCst), 1);
    drop(ticks);
    support::eventually(
        "the handler to end within a second of the cancel",
        Duration::from_secs(1),
        async || gauges.cancelled.load(Ordering::SeqCst) > 0,
    )
    .await;
    assert_eq!(gauges.watching.load(Ordering::SeqCst), 0);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deadline_ends_the_stream_with_408() {
    let (running, gauges) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let started = Instant::now();
    let mut ticks = streamer
        .watch(Count { n: 0, delay_ms: 10 })
        .timeout(Duration::from_millis(300))
        .await
        .unwrap();
    let err = loop {
        match ticks.recv().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, 408);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(gauges.watching.load(Ordering::SeqCst), 0, "the handler was stopped");
    running.stop().await.unwrap();
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_keeps_the_senders_memory_bounded() {
    let (running, gauges) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let before = rss_kib();
    // 256 MiB offered in 64 KiB messages.
    let mut blobs = streamer
        .flood(Flood {
            count: 4096,
            size: 64 * 1024,
        })
        .await
        .unwrap();
    let mut read = 0;
    let reading = Instant::now();
    while reading.elapsed() < Duration::from_secs(2) {
        let blob = blobs.recv().await.unwrap().unwrap();
        assert_eq!(blob.data.len(), 64 * 1024);
        read += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let produced = gauges.produced.load(Ordering::SeqCst);
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "RSS grew {grown} KiB while the reader read {read} messages"
    );
    assert!(
        produced < read + 100,
        "the sender ran {} messages ahead of the reader",
        produced - read
    );
    drop(blobs);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_streams_share_one_connection() {
    let (running, _) = start().await;
    let streamer = StreamerClient::new("streamer", running.client());
    let mut streams = Vec::new();
    for i in 0..100 {
        streams.push(
            streamer
                .peer(msg(i))
                .metadata("X-User", format!("user-{i}"))
                .await
                .unwrap(),
        );
    }
    let mut remotes = std::collections::BTreeSet::new();
    for (i, stream) in streams.iter_mut().enumerate() {
        let hello = stream.recv().await.unwrap().unwrap();
        let (remote, user) = hello.text.split_once(' ').unwrap();
        assert_eq!(user, format!("user-{i}"), "metadata reached the stream's handler");
        remotes.insert(remote.to_owned());
    }
    assert_eq!(
        remotes.len(),
        1,
        "all 100 open streams came over one connection: {remotes:?}"
    );
    drop(streams);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_a_stream_starts_are_ordinary_errors() {
    let (running, _) = start().await;
    let client = running.client();
    let err = client
        .stream::<Msg, Msg>("streamer", "Streamer.Nope")
        .await
        .unwrap_err();
    assert_eq!(err.code, 404);
    let err = client
        .server_stream::<_, Tick>("nobody", "Streamer.Count", Count { n: 1, delay_ms: 0 })
        .await
        .unwrap_err();
    assert!(err.detail.contains("service nobody not found"), "{}", err.detail);
    // HTTP/1.1 cannot carry a stream.
    let mut conn = support::RawConnection::open(running.local_addr()).await;
    let rsp = conn
        .post(
            &[
                ("Content-Type", "application/json"),
                ("Micro-Endpoint", "Streamer.Count"),
            ],
            b"",
        )
        .await;
    assert_eq!(rsp.status, 400);
    assert!(rsp.error().detail.contains("HTTP/2"), "{}", rsp.body_text());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_unary_calls_share_the_port_and_the_registry_marks_streams() {
    let (running, _) = start().await;
    let endpoints = &running.record().endpoints;
    let count = endpoints.iter().find(|e| e.name == "Streamer.Count").unwrap();
    assert_eq!(count.metadata["stream"], "true", "as Go Micro marks stream endpoints");
    assert_eq!(count.response.as_ref().unwrap().name, "Tick");
    let descriptor = micro::server::Handler::descriptor(&Streamer { gauges: Arc::default() });
    let kinds: Vec<_> = descriptor.endpoints().iter().map(|e| (e.method(), e.kind())).collect();
    use micro::stream::Kind;
    assert!(kinds.contains(&("Count", Kind::ServerStreaming)));
    assert!(kinds.contains(&("Sum", Kind::ClientStreaming)));
    assert!(kinds.contains(&("Echo", Kind::Bidirectional)));
    assert!(kinds.contains(&("EchoHalves", Kind::Bidirectional)));
    running.stop().await.unwrap();
}

struct Sleepy;

#[micro::service]
impl Sleepy {
    /// Waits before reading, then counts what arrived.
    #[endpoint]
    async fn later(&self, mut rx: Receiver<Tick>) -> Result<Total> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut total = Total { sum: 0, count: 0 };
        while let Some(tick) = rx.recv().await? {
            total.sum += tick.i;
            total.count += 1;
        }
        Ok(total)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_of_many_small_messages_keeps_its_connection() {
    let running = Service::new("sleepy")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .handle(Sleepy)
        .start()
        .await
        .unwrap();
    let sleepy = SleepyClient::new("sleepy", running.client());
    let upload = sleepy.later().await.unwrap();
    // Each message on its own, so each travels as its own small DATA frame.
    for i in 0..5_000 {
        upload.send(Tick { i }).await.unwrap();
        tokio::task::yield_now().await;
    }
    let total = upload.close_and_recv().await.unwrap();
    assert_eq!(total.count, 5_000);
    running.stop().await.unwrap();
}
