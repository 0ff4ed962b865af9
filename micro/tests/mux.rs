//! mux, micro's framed transport between micro nodes, on the RPC port: the
//! bytes on the wire, many calls on one connection, bad frames, oversized
//! calls, shutdown with GOAWAY, and HTTP still served on the same port.

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
use tokio::sync::mpsc;

#[derive(Debug, Serialize, Deserialize)]
struct Nap {
    millis: u64,
    tag: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Woke {
    tag: u32,
    /// `Host`, which only the HTTP transport carries.
    host: Option<String>,
    /// `Micro-Id`, which a micro client sends only to Go Micro nodes.
    micro_id: Option<String>,
    /// The service the call was addressed to, as the handler sees it.
    service: Option<String>,
    user: Option<String>,
    /// The caller's address: a new one means a new connection.
    remote: Option<String>,
    remaining_ms: Option<u64>,
}

/// Tells, by its tag, each nap that has started.
struct Sleeper {
    started: mpsc::UnboundedSender<u32>,
}

#[micro::service]
impl Sleeper {
    #[endpoint]
    async fn nap(&self, ctx: &Context, req: Nap) -> Result<Woke> {
        let remaining_ms = ctx.remaining().map(|d| d.as_millis() as u64);
        let _ = self.started.send(req.tag);
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        Ok(Woke {
            tag: req.tag,
            host: ctx.get("Host").map(str::to_owned),
            micro_id: ctx.get("Micro-Id").map(str::to_owned),
            service: ctx.service().map(str::to_owned),
            user: ctx.get("X-User").map(str::to_owned),
            remote: ctx.remote_addr().map(str::to_owned),
            remaining_ms,
        })
    }

    #[endpoint]
    async fn fail(&self, _req: Nap) -> Result<Woke> {
        Err(Error::forbidden("sleeper", "not today"))
    }
}

async fn start(options: ServerOptions) -> (Running, Arc<dyn Registry>) {
    let (running, registry, _) = start_telling(options).await;
    (running, registry)
}

/// A started sleeper, and the tags of its naps as each starts.
async fn start_telling(options: ServerOptions) -> (Running, Arc<dyn Registry>, mpsc::UnboundedReceiver<u32>) {
    let (started, naps) = mpsc::unbounded_channel();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let running = Service::new("sleeper")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .server(options)
        .handle(Sleeper { started })
        .start()
        .await
        .unwrap();
    (running, registry, naps)
}

fn client(registry: &Arc<dyn Registry>, options: ClientOptions) -> SleeperClient {
    SleeperClient::new("sleeper", Client::with_options(Arc::clone(registry), options))
}

#[tokio::test]
async fn micro_nodes_advertise_mux_and_clients_use_it() {
    let (running, registry) = start(ServerOptions::default()).await;
    let record = registry.get_service("sleeper").await.unwrap();
    assert_eq!(record[0].nodes[0].metadata.get("mux").map(String::as_str), Some("1"));

    let over_mux = client(&registry, ClientOptions::default());
    let woke = over_mux
        .nap(Nap { millis: 0, tag: 1 })
        .metadata("X-User", "alice")
        .timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(woke.host, None, "the call went over HTTP");
    assert_eq!(woke.service.as_deref(), Some("sleeper"));
    assert_eq!(woke.user.as_deref(), Some("alice"));
    assert!(woke.remaining_ms.is_some_and(|ms| ms > 1500 && ms <= 2000), "{woke:?}");

    let over_http = client(&registry, ClientOptions::default().mux(false));
    let woke = over_http
        .nap(Nap { millis: 0, tag: 2 })
        .metadata("X-User", "bob")
        .timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert!(woke.host.is_some(), "mux(false) still used mux");
    // A micro node is not sent Go Micro's call number nor the service's
    // name, which it knows; metadata and the deadline travel all the same.
    assert_eq!(woke.micro_id, None);
    assert_eq!(woke.service.as_deref(), Some("sleeper"));
    assert_eq!(woke.user.as_deref(), Some("bob"));
    assert!(woke.remaining_ms.is_some_and(|ms| ms > 1500 && ms <= 2000), "{woke:?}");

    for caller in [&over_mux, &over_http] {
        let err = caller.fail(Nap { millis: 0, tag: 3 }).await.unwrap_err();
        assert_eq!((err.code, err.detail.as_str()), (403, "not today"));
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_thousand_calls_share_one_connection_and_each_gets_its_own_answer() {
    let (running, registry) = start(ServerOptions::default()).await;
    let sleeper = client(&registry, ClientOptions::default());
    // Different sleeps make the answers come back out of order.
    let calls = (0..1000u32).map(|tag| {
        let sleeper = sleeper.clone();
        tokio::spawn(async move {
            sleeper
                .nap(Nap {
                    millis: u64::from(tag % 7) * 3,
                    tag,
                })
                .await
        })
    });
    let answers = futures_util::future::join_all(calls).await;
    for (tag, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap().unwrap().tag, tag as u32);
    }
    running.stop().await.unwrap();
}

/// A mux connection written by hand.
struct RawMux {
    stream: TcpStream,
}

const PREFACE: &[u8; 8] = b"\0MICROM1";

impl RawMux {
    async fn open(running: &Running) -> RawMux {
        let mut stream = TcpStream::connect(running.local_addr()).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        RawMux { stream }
    }

    async fn call(&mut self, id: u32, endpoint: &str, metadata: &[(&str, &str)], body: &[u8]) {
        let payload = call_payload_with("application/json", endpoint, metadata, body);
        self.send(id, 1, &payload).await;
    }

    async fn send(&mut self, id: u32, kind: u8, payload: &[u8]) {
        let mut frame = Vec::new();
        frame.extend_from_slice(&(payload.len() as u32 + 5).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.push(kind);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next frame: id, kind, payload; `None` at the end of the stream.
    async fn read(&mut self) -> Option<(u32, u8, Vec<u8>)> {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read_exact(&mut head))
            .await
            .expect("no frame within 5 s");
        read.ok()?;
        let len = u32::from_be_bytes(head[0..4].try_into().unwrap()) as usize;
        let id = u32::from_be_bytes(head[4..8].try_into().unwrap());
        let mut payload = vec![0; len - 5];
        self.stream.read_exact(&mut payload).await.unwrap();
        Some((id, head[8], payload))
    }
}

/// A CALL payload: no deadline, service `sleeper`, no metadata.
fn call_payload(content_type: &str, endpoint: &str, body: &[u8]) -> Vec<u8> {
    call_payload_with(content_type, endpoint, &[], body)
}

fn call_payload_with(content_type: &str, endpoint: &str, metadata: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut payload = 0u64.to_be_bytes().to_vec();
    for field in [content_type, "sleeper", endpoint] {
        put_str(&mut payload, field);
    }
    payload.extend_from_slice(&(metadata.len() as u16).to_be_bytes());
    for (k, v) in metadata {
        put_str(&mut payload, k);
        put_str(&mut payload, v);
    }
    payload.extend_from_slice(body);
    payload
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A REPLY frame's content type and body.
fn reply(payload: &[u8]) -> (String, serde_json::Value) {
    let len = u16::from_be_bytes([payload[0], payload[1]]) as usize;
    let content_type = String::from_utf8(payload[2..2 + len].to_vec()).unwrap();
    (content_type, serde_json::from_slice(&payload[2 + len..]).unwrap())
}

fn error(payload: &[u8]) -> Error {
    Error::parse(std::str::from_utf8(payload).unwrap())
}

#[tokio::test]
async fn the_wire_is_length_id_kind_payload() {
    let (running, _registry) = start(ServerOptions::default()).await;
    let mut mux = RawMux::open(&running).await;
    mux.call(41, "Sleeper.Nap", &[("x-user", "bob")], br#"{"millis":0,"tag":9}"#)
        .await;
    let (id, kind, payload) = mux.read().await.unwrap();
    assert_eq!((id, kind), (41, 2));
    let (content_type, body) = reply(&payload);
    assert_eq!(content_type, "application/json");
    assert_eq!(body["tag"], 9);
    assert_eq!(body["user"], "bob");
    assert_eq!(
        body["remaining_ms"],
        serde_json::Value::Null,
        "timeout 0 is no deadline"
    );

    mux.call(42, "Sleeper.Fail", &[], br#"{"millis":0,"tag":0}"#).await;
    let (id, kind, payload) = mux.read().await.unwrap();
    assert_eq!((id, kind), (42, 3));
    assert_eq!(error(&payload).code, 403);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_keeps_serving() {
    let limit = 64 * 1024;
    let (running, _registry) = start(ServerOptions::default().body_limit(limit)).await;
    let mut mux = RawMux::open(&running).await;
    let good = br#"{"millis":0,"tag":1}"#;
    let cases = [
        ("truncated head", 1, vec![0, 0, 0], 400),
        ("not a call", 9, vec![], 400),
        (
            "unknown endpoint",
            1,
            call_payload("application/json", "Sleeper.Missing", b""),
            404,
        ),
        (
            "unsupported content type",
            1,
            call_payload("text/xml", "Sleeper.Nap", good),
            415,
        ),
        (
            "malformed body",
            1,
            call_payload("application/json", "Sleeper.Nap", b"{not json"),
            400,
        ),
    ];
    for (n, (what, kind, payload, code)) in cases.iter().enumerate() {
        let id = n as u32 + 100;
        mux.send(id, *kind, payload).await;
        let (got, kind, payload) = mux.read().await.unwrap();
        assert_eq!((got, kind), (id, 3), "{what}");
        assert_eq!(error(&payload).code, *code, "{what}: {}", error(&payload).detail);
        // And a good call still works on the same connection.
        mux.call(id + 1000, "Sleeper.Nap", &[], good).await;
        assert_eq!(mux.read().await.unwrap().1, 2, "after {what}");
    }
    // A call over the body limit: 413, its bytes skipped, the next call read.
    let mut big = br#"{"millis":0,"tag":1,"pad":""#.to_vec();
    big.resize(limit + 100 * 1024, b'x');
    big.extend_from_slice(br#""}"#);
    mux.call(7, "Sleeper.Nap", &[], &big).await;
    mux.call(8, "Sleeper.Nap", &[], good).await;
    let (id, kind, payload) = mux.read().await.unwrap();
    assert_eq!((id, kind, error(&payload).code), (7, 3, 413));
    let (id, kind, _) = mux.read().await.unwrap();
    assert_eq!((id, kind), (8, 2));
    // Just over the limit, within the frame's allowance for header fields: 413 too.
    let mut over = br#"{"millis":0,"tag":1,"pad":""#.to_vec();
    over.resize(limit + 1, b'x');
    mux.call(9, "Sleeper.Nap", &[], &over).await;
    let (id, kind, payload) = mux.read().await.unwrap();
    assert_eq!((id, kind, error(&payload).code), (9, 3, 413));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_says_goaway_answers_what_it_read_then_closes() {
    let (running, _registry, mut naps) = start_telling(ServerOptions::default()).await;
    let mut mux = RawMux::open(&running).await;
    mux.call(5, "Sleeper.Nap", &[], br#"{"millis":300,"tag":5}"#).await;
    let started = tokio::time::timeout(Duration::from_secs(5), naps.recv()).await;
    assert_eq!(started, Ok(Some(5)), "the server read call 5 and started it");
    let stopping = tokio::spawn(running.stop());
    let (id, kind, _) = mux.read().await.unwrap();
    assert_eq!((id, kind), (5, 4), "GOAWAY naming the last call read");
    let (id, kind, payload) = mux.read().await.unwrap();
    assert_eq!((id, kind), (5, 2), "the call read before shutdown is answered");
    assert_eq!(reply(&payload).1["tag"], 5);
    assert!(mux.read().await.is_none(), "the server closes the connection");
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn http_and_mux_share_the_port() {
    let (running, _registry) = start(ServerOptions::default()).await;
    let mut mux = RawMux::open(&running).await;
    let mut http = TcpStream::connect(running.local_addr()).await.unwrap();
    let body = br#"{"millis":0,"tag":3}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nMicro-Endpoint: Sleeper.Nap\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    http.write_all(request.as_bytes()).await.unwrap();
    http.write_all(body).await.unwrap();
    mux.call(1, "Sleeper.Nap", &[], body).await;
    let mut answer = vec![0; 4096];
    let n = http.read(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(r#""tag":3"#), "{text}");
    assert_eq!(mux.read().await.unwrap().1, 2);
    // A connection that starts with a zero byte but not the preface is closed.
    let mut wrong = TcpStream::connect(running.local_addr()).await.unwrap();
    wrong.write_all(b"\0NOTMUX!").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), wrong.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_the_next_call_reconnects() {
    let (running, registry) = start(ServerOptions::default()).await;
    let sleeper = client(&registry, ClientOptions::default().pool_ttl(Duration::from_millis(100)));
    let first = sleeper.nap(Nap { millis: 0, tag: 1 }).await.unwrap();
    let second = sleeper.nap(Nap { millis: 0, tag: 2 }).await.unwrap();
    assert_eq!(first.remote, second.remote, "back-to-back calls share the connection");
    // Idle past the pool's TTL: the wait is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = sleeper.nap(Nap { millis: 0, tag: 3 }).await.unwrap();
    assert_eq!(third.tag, 3);
    assert_ne!(first.remote, third.remote, "the idle connection was kept");
    running.stop().await.unwrap();
}
