//! mux's bounds, seen from a peer that misbehaves: a client that pipelines
//! calls and never reads the answers, and one that opens a connection and
//! sends nothing. Its own test binary, so that the process's memory is this
//! test's alone.

use std::sync::Arc;
use std::time::Duration;

use micro::Flags;
use micro::client::ClientOptions;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::server::ServerOptions;
use micro::service::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

struct Echo;

#[micro::service]
impl Echo {
    #[endpoint]
    async fn ping(&self, req: Ping) -> Result<Ping> {
        Ok(req)
    }
}

const PREFACE: &[u8; 8] = b"\0MICROM1";

/// The calls the greedy client tries to send.
const CALLS: usize = 1_000_000;

/// How much the process may grow while a client sends calls and reads no
/// answer: the outbound budget (1 MiB), the in-flight calls, the socket
/// buffers and allocator slack. Unbounded, a million unread answers to an
/// unknown endpoint take well over 100 MiB.
const RSS_BOUND: u64 = 48 * 1024 * 1024;

async fn start(options: ServerOptions) -> (Running, Arc<dyn Registry>) {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let running = Service::new("echo")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .server(options)
        .handle(Echo)
        .start()
        .await
        .unwrap();
    (running, registry)
}

/// A mux CALL frame with id `id` to an endpoint nobody serves: the cheapest
/// call there is, answered at once with a 404 error frame.
fn unknown_call(id: u32, into: &mut Vec<u8>) {
    let mut payload = 0u64.to_be_bytes().to_vec();
    for field in ["application/json", "echo", "Echo.Missing"] {
        payload.extend_from_slice(&(field.len() as u16).to_be_bytes());
        payload.extend_from_slice(field.as_bytes());
    }
    payload.extend_from_slice(&0u16.to_be_bytes());
    into.extend_from_slice(&(payload.len() as u32 + 5).to_be_bytes());
    into.extend_from_slice(&id.to_be_bytes());
    into.push(1);
    into.extend_from_slice(&payload);
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_stopped_by_the_outbound_budget() {
    let idle = Duration::from_secs(2);
    let (running, registry) = start(ServerOptions::default().idle_timeout(idle)).await;
    let client = EchoClient::new("echo", Client::with_options(registry, ClientOptions::default()));
    // Warm up: connections, pools and the allocator's first arenas.
    assert_eq!(client.ping(Ping { n: 1 }).await.unwrap().n, 1);
    let before = rss();

    let mut greedy = TcpStream::connect(running.local_addr()).await.unwrap();
    greedy.write_all(PREFACE).await.unwrap();
    let mut sent = 0;
    let mut chunk = Vec::new();
    while sent < CALLS {
        chunk.clear();
        for id in sent..sent + 10_000 {
            unknown_call(id as u32 + 1, &mut chunk);
        }
        // Once the server stops reading, the socket buffers fill and the
        // write stalls: that is the bound at work.
        match tokio::time::timeout(Duration::from_secs(1), greedy.write_all(&chunk)).await {
            Ok(written) => written.unwrap(),
            Err(_) => break,
        }
        sent += 10_000;
    }
    let grown = rss().saturating_sub(before);
    assert!(
        sent < CALLS,
        "the server read all {CALLS} calls without their answers being read"
    );
    assert!(
        grown < RSS_BOUND,
        "the process grew by {} MiB with {sent} calls sent and no answer read",
        grown >> 20
    );

    // Other connections are still served, over mux and over HTTP.
    assert_eq!(client.ping(Ping { n: 2 }).await.unwrap().n, 2);
    // A fixed address is called over HTTP.
    let address = running.local_addr().to_string();
    assert_eq!(client.ping(Ping { n: 3 }).address(address).await.unwrap().n, 3);

    // The greedy connection is closed once it has read nothing for the idle
    // time: reading it now gives the answers the server got out, then its end.
    let mut drained = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match greedy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the stalled connection was never closed");
    assert!(drained > 0, "no answer was ever written");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_mux_connection_without_calls_is_closed_after_the_idle_time() {
    let idle = Duration::from_millis(300);
    let (running, _registry) = start(ServerOptions::default().idle_timeout(idle)).await;
    let mut quiet = TcpStream::connect(running.local_addr()).await.unwrap();
    quiet.write_all(PREFACE).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut head = [0u8; 9];
    let goaway = tokio::time::timeout(Duration::from_secs(10), quiet.read_exact(&mut head)).await;
    assert!(goaway.is_ok_and(|read| read.is_ok()), "no GOAWAY before closing");
    assert_eq!(head[8], 4, "GOAWAY");
    assert_eq!(
        u32::from_be_bytes(head[4..8].try_into().unwrap()),
        0,
        "no call was read"
    );
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(10), quiet.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the idle connection stayed open");
    let waited = started.elapsed();
    assert!(
        waited >= idle && waited < idle * 3 + Duration::from_secs(1),
        "closed after {waited:?}"
    );
    running.stop().await.unwrap();
}
