//! The reliability and security anchors that the unary core must hold
//! (RELIABILITY.md R02-R09, R13), over real sockets on 127.0.0.1.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::Flags;
use micro::client::retry::{retry_always, retry_on_timeout};
use micro::prelude::*;
use micro::registry::{Action, MemoryRegistry, Node, RegisterOptions, Registry, WatchOptions};
use micro::server::{Drained, ServerOptions};
use micro::service::Running;

use support::RawConnection;

#[derive(Debug, Serialize, Deserialize)]
struct Sleep {
    millis: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Fail {
    code: i32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Num {
    n: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Done {
    ok: bool,
}

#[derive(Default)]
struct State {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    cancelled: AtomicUsize,
    attempts: Mutex<Vec<(Instant, String)>>,
    /// Fired whenever a handler starts or ends.
    changed: tokio::sync::Notify,
}

impl State {
    /// Waits, for at most `within`, until a handler starting or ending makes
    /// `condition` hold.
    async fn wait_for(&self, what: &str, within: Duration, condition: impl Fn(&State) -> bool) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                // Registered before the check, so a change in between is not missed.
                changed.as_mut().enable();
                if condition(self) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out after {within:?} waiting for {what}"));
    }
}

/// Counts a running handler; counts it as cancelled if dropped unfinished.
struct InFlight {
    state: Arc<State>,
    finished: bool,
}

impl InFlight {
    fn enter(state: &Arc<State>) -> InFlight {
        state.calls.fetch_add(1, Ordering::SeqCst);
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        state.changed.notify_waiters();
        InFlight {
            state: Arc::clone(state),
            finished: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.state.cancelled.fetch_add(1, Ordering::SeqCst);
        }
        self.state.changed.notify_waiters();
    }
}

struct Probe {
    state: Arc<State>,
    node: String,
}

#[micro::service]
impl Probe {
    #[endpoint]
    async fn sleep(&self, req: Sleep) -> Result<Done> {
        let mut guard = InFlight::enter(&self.state);
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        guard.finished = true;
        Ok(Done { ok: true })
    }

    #[endpoint]
    async fn fail(&self, req: Fail) -> Result<Done> {
        self.state
            .attempts
            .lock()
            .unwrap()
            .push((Instant::now(), self.node.clone()));
        Err(Error::new("probe", "failing on purpose", req.code))
    }

    #[endpoint]
    async fn sometimes_panics(&self, req: Num) -> Result<Done> {
        assert!(!req.n.is_multiple_of(10), "call {} panics", req.n);
        Ok(Done { ok: true })
    }
}

async fn start_probe(options: ServerOptions, registry: Arc<MemoryRegistry>, node: &str) -> (Running, Arc<State>) {
    let state = Arc::new(State::default());
    let running = Service::new("probe")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(registry)
        .server(options)
        .handle(Probe {
            state: Arc::clone(&state),
            node: node.to_owned(),
        })
        .start()
        .await
        .expect("probe starts");
    (running, state)
}

async fn probe(options: ServerOptions) -> (Running, Arc<State>) {
    start_probe(options, Arc::new(MemoryRegistry::new()), "probe-1").await
}

/// Held by the test that measures this process's memory and by the tests
/// that allocate the most, so the measurement sees only its own test.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// R02: 20 concurrent 10 MiB uploads against the 4 MiB limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_are_refused_without_buffering_them() {
    let _alone = MEMORY.lock().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A chunked upload has no declared length: the server reads it up to the
    // body limit before refusing it. A small limit keeps what ten of them may
    // hold at once (10 x 256 KiB) well under the bound below, which buffering
    // the whole uploads (20 x 10 MiB) would pass many times over.
    let (running, state) = probe(ServerOptions::default().body_limit(256 * 1024)).await;
    let addr = running.local_addr();
    let before = rss_kib();
    let chunk = Arc::new(vec![b'a'; 64 * 1024]);
    let total: usize = 10 * 1024 * 1024;
    let mut uploads = Vec::new();
    for i in 0..20 {
        let chunk = Arc::clone(&chunk);
        uploads.push(tokio::spawn(async move {
            let chunked = i % 2 == 1;
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            let head = if chunked {
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nMicro-Endpoint: Probe.Sleep\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
            } else {
                format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nMicro-Endpoint: Probe.Sleep\r\nContent-Length: {total}\r\n\r\n")
            };
            let sent = Arc::new(AtomicUsize::new(0));
            let writer = {
                let sent = Arc::clone(&sent);
                tokio::spawn(async move {
                    write.write_all(head.as_bytes()).await?;
                    while sent.load(Ordering::SeqCst) < total {
                        if chunked {
                            write.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                        }
                        write.write_all(&chunk).await?;
                        if chunked {
                            write.write_all(b"\r\n").await?;
                        }
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                    }
                    std::io::Result::Ok(())
                })
            };
            let mut answer = vec![0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut answer)).await.unwrap().unwrap();
            let sent_when_answered = sent.load(Ordering::SeqCst);
            writer.abort();
            (chunked, String::from_utf8_lossy(&answer[..n]).into_owned(), sent_when_answered)
        }));
    }
    for upload in uploads {
        let (chunked, answer, sent) = upload.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "chunked={chunked}: {answer}");
        if !chunked {
            assert!(
                sent < total,
                "the 413 arrived before the client finished sending ({sent} of {total})"
            );
        }
    }
    assert_eq!(state.calls.load(Ordering::SeqCst), 0, "no handler ran");
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    let mut conn = RawConnection::open(addr).await;
    let rsp = conn
        .post(&[JSON, ("Micro-Endpoint", "Probe.Sleep")], br#"{"millis":1}"#)
        .await;
    assert_eq!(rsp.status, 200);
    running.stop().await.unwrap();
}

/// R03: header floods are refused and the server keeps serving.
#[tokio::test]
async fn header_floods_are_refused() {
    let (running, _) = probe(ServerOptions::default()).await;
    let addr = running.local_addr();
    // 101 headers.
    let mut many = String::from("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n");
    for i in 0..101 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n{}");
    let mut conn = RawConnection::open(addr).await;
    conn.send_raw(many.as_bytes()).await;
    // A closed connection is a refusal too.
    if let Some(rsp) = conn.try_read_response().await {
        assert_eq!(rsp.status, 431);
    }
    // 500 KiB of headers.
    let mut huge = String::from("POST / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        huge.push_str(&format!("X-Big{i}: {}\r\n", "v".repeat(1000)));
    }
    let mut conn = RawConnection::open(addr).await;
    conn.send_raw(huge.as_bytes()).await;
    if let Some(rsp) = conn.try_read_response().await {
        assert_eq!(rsp.status, 431);
    }
    // HTTP/2: a 32 KiB header block is refused while another stream completes.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = |big: bool| {
        let mut builder = http::Request::post("http://x/")
            .header("content-type", "application/json")
            .header("micro-endpoint", "Probe.Sleep");
        if big {
            builder = builder.header("x-big", "v".repeat(32 * 1024));
        }
        builder.body(()).unwrap()
    };
    h2 = h2.ready().await.unwrap();
    let (normal, mut body) = h2.send_request(request(false), false).unwrap();
    body.send_data(bytes::Bytes::from_static(br#"{"millis":200}"#), true)
        .unwrap();
    h2 = h2.ready().await.unwrap();
    let big = h2.send_request(request(true), true);
    if let Ok((big, _)) = big {
        match big.await {
            Ok(rsp) => assert_eq!(rsp.status(), 431),
            Err(e) => assert!(e.is_reset() || e.is_remote() || e.is_go_away(), "{e}"),
        }
    }
    let normal = normal.await.unwrap();
    assert_eq!(normal.status(), 200, "the other stream completed");
    let mut conn = RawConnection::open(addr).await;
    let rsp = conn
        .post(&[JSON, ("Micro-Endpoint", "Probe.Sleep")], br#"{"millis":1}"#)
        .await;
    assert_eq!(rsp.status, 200, "still serving");
    running.stop().await.unwrap();
}

/// R04: slowloris connections are cut off; a well-behaved client is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_file_descriptors_return() {
    let _alone = MEMORY.lock().await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (running, _) = probe(ServerOptions::default().header_read_timeout(Duration::from_secs(2))).await;
    let addr = running.local_addr();
    let baseline = open_fds();
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..256 {
        slow.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = b"POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: Probe.Sleep\r\nX-Slow: ";
            // Bounded, so that a server that never closes fails the test below
            // instead of hanging it.
            let give_up = Instant::now() + Duration::from_secs(10);
            for byte in head.iter().cycle().take_while(|_| Instant::now() < give_up) {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                let mut buf = [0u8; 64];
                match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(_)) => break,
                    Err(_) => {}
                }
            }
            Instant::now()
        }));
    }
    let mut errors = 0;
    let mut conn = RawConnection::open(addr).await;
    for _ in 0..20 {
        let rsp = conn
            .post(&[JSON, ("Micro-Endpoint", "Probe.Sleep")], br#"{"millis":1}"#)
            .await;
        if rsp.status != 200 {
            errors += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(errors, 0, "the well-behaved client saw errors");
    for handle in slow {
        let closed_at = handle.await.unwrap();
        let after = closed_at - started;
        assert!(
            after < Duration::from_secs(4),
            "a slow connection stayed open {after:?}"
        );
    }
    drop(conn);
    support::eventually(
        &format!("the fds to return to the baseline of {baseline}"),
        Duration::from_secs(10),
        async || open_fds() <= baseline + 5,
    )
    .await;
    running.stop().await.unwrap();
}

/// R05: a flood of streams reset right after opening cannot pin the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_flood_is_contained() {
    let _alone = MEMORY.lock().await;
    let (running, state) = probe(ServerOptions::default()).await;
    let addr = running.local_addr();
    let flood = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
        let connection = tokio::spawn(connection);
        let mut opened = 0;
        for _ in 0..50_000 {
            h2 = match h2.ready().await {
                Ok(h2) => h2,
                Err(_) => break,
            };
            let request = http::Request::post("http://x/")
                .header("content-type", "application/json")
                .header("micro-endpoint", "Probe.Sleep")
                .body(())
                .unwrap();
            match h2.send_request(request, false) {
                Ok((_, mut body)) => {
                    body.send_reset(h2::Reason::CANCEL);
                    opened += 1;
                }
                Err(_) => break,
            }
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), connection).await;
        (opened, ended.is_ok())
    });
    let client = Client::with_options(
        Arc::clone(running.client().registry()),
        micro::client::ClientOptions::default().codec(micro::codec::Codec::Json),
    );
    let mut errors = 0;
    while !flood.is_finished() {
        let rsp: Result<Done> = client.call("probe", "Probe.Sleep", Sleep { millis: 1 }).await;
        if rsp.is_err() {
            errors += 1;
        }
    }
    let (opened, ended) = flood.await.unwrap();
    assert!(
        ended,
        "the server ended the flooding connection (GOAWAY or close) after {opened} streams"
    );
    assert_eq!(errors, 0, "calls on another connection failed");
    assert!(
        state.max_in_flight.load(Ordering::SeqCst) <= 200,
        "at most 200 handlers at once"
    );
    running.stop().await.unwrap();
}

/// R06: 1,000 concurrent calls on one h2 connection, or on one mux
/// connection, run at most 200 at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_and_mux_concurrency_is_capped_by_max_concurrent_streams() {
    let _alone = MEMORY.lock().await;
    for (wire, options) in [
        ("h2c", micro::client::ClientOptions::default().http2(true).mux(false)),
        ("mux", micro::client::ClientOptions::default()),
    ] {
        let (running, state) = probe(ServerOptions::default()).await;
        let client = Client::with_options(Arc::clone(running.client().registry()), options);
        let calls = (0..1000).map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call::<_, Done>("probe", "Probe.Sleep", Sleep { millis: 50 })
                    .await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            assert!(call.await.unwrap().unwrap().ok, "{wire}");
        }
        assert_eq!(state.calls.load(Ordering::SeqCst), 1000, "{wire}");
        let max = state.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 200, "{wire}: {max} handlers ran at once");
        assert!(max >= 100, "{wire}: only {max} handlers ran at once");
        running.stop().await.unwrap();
    }
}

/// R07: panics fail their own call only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_fail_only_their_own_calls() {
    let (running, _) = probe(ServerOptions::default()).await;
    let addr = running.local_addr();
    let workers = (0..8u64).map(|w| {
        tokio::spawn(async move {
            let mut conn = RawConnection::open(addr).await;
            let (mut ok, mut failed) = (0, 0);
            for i in 0..125u64 {
                let n = w * 125 + i;
                let rsp = conn
                    .post(
                        &[JSON, ("Micro-Endpoint", "Probe.SometimesPanics")],
                        format!(r#"{{"n":{n}}}"#).as_bytes(),
                    )
                    .await;
                match rsp.status {
                    200 => ok += 1,
                    500 => {
                        assert!(rsp.error().detail.contains("panic recovered"));
                        failed += 1;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, failed)
        })
    });
    let (mut ok, mut failed) = (0, 0);
    for worker in workers.collect::<Vec<_>>() {
        let (o, f) = worker.await.unwrap();
        ok += o;
        failed += f;
    }
    assert_eq!((ok, failed), (900, 100));
    running.stop().await.unwrap();
}

/// R08: the client's deadline reaches the handler, which is cancelled.
#[tokio::test]
async fn deadlines_cancel_handlers_and_retries_never_extend_them() {
    let (running, state) = probe(ServerOptions::default()).await;
    let client = running.client();
    let started = Instant::now();
    let err = client
        .call::<_, Done>("probe", "Probe.Sleep", Sleep { millis: 10_000 })
        .timeout(Duration::from_millis(200))
        .retries(5)
        .retry(retry_always)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code, 408);
    assert!(
        elapsed < Duration::from_millis(1000),
        "retries extended the deadline: {elapsed:?}"
    );
    state
        .wait_for("the handler future to be dropped", Duration::from_secs(2), |s| {
            s.cancelled.load(Ordering::SeqCst) >= 1
        })
        .await;
    assert_eq!(state.in_flight.load(Ordering::SeqCst), 0);
    running.stop().await.unwrap();
}

/// R09: stop deregisters, refuses new connections, finishes the 50 calls in
/// flight, then closes; a stuck call is cut at the drain time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_order() {
    let registry = Arc::new(MemoryRegistry::new());
    let (running, state) = start_probe(ServerOptions::default(), Arc::clone(&registry), "probe-1").await;
    let addr = running.local_addr();
    let mut watcher = registry.watch(WatchOptions::service("probe")).await.unwrap();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = RawConnection::open(addr).await;
                conn.post(&[JSON, ("Micro-Endpoint", "Probe.Sleep")], br#"{"millis":1000}"#)
                    .await
                    .status
            })
        })
        .collect();
    state
        .wait_for("50 calls in flight", Duration::from_secs(10), |s| {
            s.in_flight.load(Ordering::SeqCst) == 50
        })
        .await;
    let started = Instant::now();
    let stopping = tokio::spawn(running.stop());
    let event = watcher.next().await.unwrap().unwrap();
    assert_eq!(event.action, Action::Delete, "deregistered first");
    support::eventually(
        "new connections to be refused while draining",
        Duration::from_millis(500),
        async || tokio::net::TcpStream::connect(addr).await.is_err(),
    )
    .await;
    assert!(
        state.in_flight.load(Ordering::SeqCst) > 0,
        "refused before the in-flight calls ended"
    );
    for call in calls {
        assert_eq!(call.await.unwrap(), 200, "in-flight calls finish");
    }
    assert_eq!(stopping.await.unwrap().unwrap(), Drained::Clean);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stopped in {:?}",
        started.elapsed()
    );

    let (running, state) = probe(ServerOptions::default().drain_timeout(Duration::from_secs(3))).await;
    let addr = running.local_addr();
    let stuck = tokio::spawn(async move {
        let mut conn = RawConnection::open(addr).await;
        conn.send_raw(&support::request_bytes(
            "POST",
            &[JSON, ("Micro-Endpoint", "Probe.Sleep")],
            br#"{"millis":600000}"#,
        ))
        .await;
        conn.try_read_response().await
    });
    state
        .wait_for("the stuck call to start", Duration::from_secs(10), |s| {
            s.in_flight.load(Ordering::SeqCst) == 1
        })
        .await;
    let started = Instant::now();
    assert_eq!(running.stop().await.unwrap(), Drained::TimedOut(1));
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "stopped in {:?}",
        started.elapsed()
    );
    assert!(stuck.await.unwrap().is_none(), "only the stuck call failed");
}

/// R13: what is retried, how often, after what backoff, on which node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_semantics_match_go_micro() {
    let registry = Arc::new(MemoryRegistry::new());
    let (first, state_a) = start_probe(ServerOptions::default(), Arc::clone(&registry), "a").await;
    let (second, state_b) = start_probe(ServerOptions::default(), Arc::clone(&registry), "b").await;
    let client = Client::new(registry.clone());
    let attempts = || {
        let mut all: Vec<(Instant, String)> = state_a.attempts.lock().unwrap().drain(..).collect();
        all.extend(state_b.attempts.lock().unwrap().drain(..));
        all.sort_by_key(|(t, _)| *t);
        all
    };
    let call = |code: i32| client.call::<_, Done>("probe", "Probe.Fail", Fail { code }).retries(3);

    // A 500 is the handler's verdict: one attempt.
    assert_eq!(call(500).await.unwrap_err().code, 500);
    assert_eq!(attempts().len(), 1);

    // A 408 is retried: four attempts with Go Micro's backoff, alternating nodes.
    assert_eq!(call(408).retry(retry_on_timeout).await.unwrap_err().code, 408);
    let seen = attempts();
    assert_eq!(seen.len(), 4);
    for (i, min) in [100u64, 600, 1900].iter().enumerate() {
        let gap = seen[i + 1].0 - seen[i].0;
        assert!(gap >= Duration::from_millis(*min), "gap {i} was {gap:?}");
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "each retry goes to another node");
    }

    // The deadline caps retries.
    let started = Instant::now();
    assert_eq!(
        call(408).timeout(Duration::from_millis(800)).await.unwrap_err().code,
        408
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(attempts().len(), 3, "attempts at 0, 100 and 700 ms fit in 800 ms");

    // RetryAlways retries a 500 too.
    assert_eq!(call(500).retry(retry_always).await.unwrap_err().code, 500);
    assert_eq!(attempts().len(), 4);

    // A node that refuses connections is retried on another.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut record = first.record().clone();
    record.nodes = vec![Node {
        id: "dead".into(),
        address: dead.to_string(),
        metadata: record.nodes[0].metadata.clone(),
    }];
    let lonely = MemoryRegistry::new();
    lonely.register(&record, RegisterOptions::default()).await.unwrap();
    let mut with_live = first.record().clone();
    with_live.nodes.extend(record.nodes.clone());
    lonely.register(&with_live, RegisterOptions::default()).await.unwrap();
    let refused = Client::new(Arc::new(lonely));
    for _ in 0..10 {
        let err = refused
            .call::<_, Done>("probe", "Probe.Fail", Fail { code: 409 })
            .await
            .unwrap_err();
        assert_eq!(err.code, 409, "reached the live node: {err}");
    }
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}
