//! The client's pooled HTTP/1.1 connections: kept alive and reused, capped
//! and expired, replaced when the server closed them, and never reused while
//! an answer is still owed on them.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use micro::Flags;
use micro::client::ClientOptions;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Node, RegisterOptions, Registry, Service as Record};
use micro::service::Running;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Nap {
    millis: u64,
}

/// Where a call came from, and whether it slept.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    remote: String,
    napped: bool,
}

struct Peers;

#[micro::service]
impl Peers {
    /// Answers with the caller's address, after `millis`.
    #[endpoint]
    async fn whoami(&self, ctx: &Context, req: Nap) -> Result<Seen> {
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        Ok(Seen {
            remote: ctx.metadata().get("Remote").unwrap_or_default().to_owned(),
            napped: req.millis > 0,
        })
    }

    #[endpoint]
    async fn refuse(&self, _req: Nap) -> Result<Seen> {
        Err(Error::forbidden("peers", "no"))
    }
}

async fn start() -> Running {
    Service::new("peers")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .handle(Peers)
        .start()
        .await
        .expect("service starts")
}

/// A client of `running` over HTTP/1.1 (not mux) with `options`.
async fn client(running: &Running, options: ClientOptions) -> PeersClient {
    let registry = MemoryRegistry::new();
    registry
        .register(running.record(), RegisterOptions::default())
        .await
        .unwrap();
    PeersClient::new("peers", Client::with_options(Arc::new(registry), options.mux(false)))
}

async fn remote(peers: &PeersClient, millis: u64) -> String {
    peers.whoami(Nap { millis }).await.unwrap().remote
}

#[tokio::test]
async fn sequential_calls_share_one_connection_even_after_errors() {
    let running = start().await;
    let peers = client(&running, ClientOptions::default()).await;
    let first = remote(&peers, 0).await;
    for _ in 0..10 {
        assert_eq!(remote(&peers, 0).await, first);
        let err = peers.refuse(Nap::default()).await.unwrap_err();
        assert_eq!(err.code, 403);
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_calls_open_connections_and_at_most_pool_size_stay_idle() {
    let running = start().await;
    let peers = client(&running, ClientOptions::default().pool_size(2)).await;
    let wave = |n: usize| {
        let calls: Vec<_> = (0..n).map(|_| remote(&peers, 100)).collect();
        futures_util::future::join_all(calls)
    };
    let first: HashSet<String> = wave(6).await.into_iter().collect();
    assert_eq!(first.len(), 6, "six overlapping calls, six connections");
    let second: HashSet<String> = wave(3).await.into_iter().collect();
    assert_eq!(second.len(), 3);
    assert_eq!(
        second.intersection(&first).count(),
        2,
        "two connections kept idle, one opened"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn idle_connections_expire_after_the_pool_ttl() {
    let running = start().await;
    let options = ClientOptions::default().pool_ttl(Duration::from_millis(200));
    let peers = client(&running, options).await;
    let first = remote(&peers, 0).await;
    assert_eq!(remote(&peers, 0).await, first, "reused within the ttl");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(remote(&peers, 0).await, first, "expired after it");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_timed_out_call_leaves_its_connection_unused() {
    let running = start().await;
    let peers = client(&running, ClientOptions::default().retries(0)).await;
    let first = remote(&peers, 0).await;
    let err = peers
        .whoami(Nap { millis: 300 })
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.code, 408);
    // The late answer must not become the next call's answer.
    let next = peers.whoami(Nap { millis: 0 }).await.unwrap();
    assert!(!next.napped, "the next call got its own answer");
    assert_ne!(next.remote, first, "on a new connection");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = peers.whoami(Nap { millis: 0 }).await.unwrap();
    assert!(!after.napped);
    running.stop().await.unwrap();
}

/// A node that answers one call per connection, then closes it, as a server
/// closes idle keep-alive connections.
fn one_call_per_connection() -> (String, std::thread::JoinHandle<usize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            reader.read_exact(&mut vec![0; length]).unwrap();
            let body = br#"{"remote":"raw","napped":false}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body).unwrap();
            // Closed after the client has read the answer.
            std::thread::sleep(Duration::from_millis(50));
            served += 1;
        }
        served
    });
    (address, server)
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_not_reused() {
    let (address, server) = one_call_per_connection();
    let registry = MemoryRegistry::new();
    let record = Record {
        name: "peers".into(),
        version: "latest".into(),
        nodes: vec![Node {
            id: "peers-raw".into(),
            address,
            metadata: [("protocol".to_owned(), "mucp".to_owned())].into(),
        }],
        ..Default::default()
    };
    registry.register(&record, RegisterOptions::default()).await.unwrap();
    // No retries: the second call must not go out on the closed connection.
    let client = Client::with_options(Arc::new(registry), ClientOptions::default().retries(0));
    let peers = PeersClient::new("peers", client);
    assert_eq!(peers.whoami(Nap::default()).await.unwrap().remote, "raw");
    // The server closes the connection while it is idle in the pool.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(peers.whoami(Nap::default()).await.unwrap().remote, "raw");
    assert_eq!(server.join().unwrap(), 2, "each call on its own connection");
}
