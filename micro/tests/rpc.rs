//! Unary RPC end to end over real sockets: the wire, bad input, deadlines,
//! metadata, codecs, registration and shutdown.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::codec::Codec;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Node, RegisterOptions, Registry};
use micro::server::{Drained, ServerOptions};
use micro::service::Running;
use micro::{Flags, Metadata};
use tokio::sync::mpsc;

use support::{RawConnection, request_bytes};

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    name: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Greeting {
    message: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Nap {
    millis: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    /// Milliseconds left of the deadline when the handler started.
    remaining_ms: Option<u64>,
    metadata: BTreeMap<String, String>,
    finished: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Empty {}

/// What one `Echo.Nap` call did, as its handler reports it.
#[derive(Debug, PartialEq)]
enum NapEvent {
    /// The handler started, with what was left of its deadline.
    Started { remaining: Option<Duration> },
    /// The handler slept its time and answered.
    Finished,
    /// The handler's future was dropped before it finished: cancelled.
    Dropped,
}

/// Where `Echo.Nap` reports its [`NapEvent`]s.
#[derive(Clone)]
struct Naps(mpsc::UnboundedSender<NapEvent>);

impl Naps {
    fn new() -> (Naps, mpsc::UnboundedReceiver<NapEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Naps(tx), rx)
    }

    /// Reports nowhere.
    fn unheard() -> Naps {
        Naps::new().0
    }

    fn started(&self, ctx: &Context) -> NapGuard {
        let _ = self.0.send(NapEvent::Started {
            remaining: ctx.remaining(),
        });
        NapGuard {
            naps: self.clone(),
            finished: false,
        }
    }
}

/// Reports `Finished`, or `Dropped` if the nap ends without finishing.
struct NapGuard {
    naps: Naps,
    finished: bool,
}

impl Drop for NapGuard {
    fn drop(&mut self) {
        let event = if self.finished {
            NapEvent::Finished
        } else {
            NapEvent::Dropped
        };
        let _ = self.naps.0.send(event);
    }
}

/// The next event a nap reports, within 10 s.
async fn next_nap(naps: &mut mpsc::UnboundedReceiver<NapEvent>) -> NapEvent {
    tokio::time::timeout(Duration::from_secs(10), naps.recv())
        .await
        .expect("the nap handler reported within 10 s")
        .expect("the service holds the sender")
}

struct Echo {
    client: Client,
    naps: Naps,
}

impl Echo {
    fn new(client: Client) -> Echo {
        Echo {
            client,
            naps: Naps::unheard(),
        }
    }
}

#[micro::service]
impl Echo {
    #[endpoint]
    async fn hello(&self, req: Hello) -> Result<Greeting> {
        Ok(Greeting {
            message: format!("Hello {}", req.name),
        })
    }

    #[endpoint]
    async fn panics(&self, req: Hello) -> Result<Greeting> {
        panic!("cannot greet {}", req.name)
    }

    #[endpoint]
    async fn nap(&self, ctx: &Context, req: Nap) -> Result<Seen> {
        let seen = seen(ctx);
        let mut guard = self.naps.started(ctx);
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        guard.finished = true;
        Ok(Seen { finished: true, ..seen })
    }

    #[endpoint]
    async fn whoami(&self, ctx: &Context, _req: Empty) -> Result<Seen> {
        Ok(seen(ctx))
    }

    /// Calls `Echo.Whoami` onward, inheriting metadata and deadline.
    #[endpoint]
    async fn relay(&self, _req: Empty) -> Result<Seen> {
        EchoClient::new("echo", self.client.clone()).whoami(Empty {}).await
    }

    #[endpoint]
    async fn raw(&self, req: Vec<u8>) -> Result<Vec<u8>> {
        Ok(req.into_iter().rev().collect())
    }

    #[endpoint]
    async fn forbidden(&self, _req: Empty) -> Result<Empty> {
        Err(Error::forbidden("echo", "not for you"))
    }
}

fn seen(ctx: &Context) -> Seen {
    Seen {
        remaining_ms: ctx.remaining().map(|d| d.as_millis() as u64),
        metadata: ctx
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        finished: false,
    }
}

/// A started `echo` service on 127.0.0.1 with its own memory registry, and
/// what its naps report.
async fn start_with(options: ServerOptions) -> (Running, mpsc::UnboundedReceiver<NapEvent>) {
    let (naps, events) = Naps::new();
    let service = Service::new("echo")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .server(options);
    let client = service.client();
    let running = service
        .handle(Echo { client, naps })
        .start()
        .await
        .expect("service starts");
    (running, events)
}

async fn start() -> Running {
    start_with(ServerOptions::default()).await.0
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn endpoint(name: &str) -> (&'static str, &str) {
    ("Micro-Endpoint", name)
}

#[tokio::test]
async fn readme_curl_call_answers_like_go_micro() {
    let running = start().await;
    let mut conn = RawConnection::open(running.local_addr()).await;
    let rsp = conn
        .post(&[JSON, endpoint("Echo.Hello")], br#"{"name": "alice"}"#)
        .await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.body_text(), "{\"message\":\"Hello alice\"}\n");
    assert_eq!(rsp.header("content-type"), Some("application/json"));
    assert_eq!(rsp.header("micro-endpoint"), None, "call headers are not echoed");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_inputs_get_errors_and_the_connection_keeps_serving() {
    let running = start().await;
    let mut conn = RawConnection::open(running.local_addr()).await;
    let msgpack = ("Content-Type", "application/msgpack");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "truncated JSON",
            vec![JSON, endpoint("Echo.Hello")],
            br#"{"name": "al"#.to_vec(),
            400,
            "EOF",
        ),
        (
            "invalid UTF-8",
            vec![JSON, endpoint("Echo.Hello")],
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            400,
            "unicode",
        ),
        (
            "wrong type",
            vec![JSON, endpoint("Echo.Hello")],
            br#"{"name": 5}"#.to_vec(),
            400,
            "invalid type",
        ),
        (
            "missing field",
            vec![JSON, endpoint("Echo.Hello")],
            br#"{}"#.to_vec(),
            400,
            "missing field `name`",
        ),
        (
            "empty body",
            vec![JSON, endpoint("Echo.Hello")],
            Vec::new(),
            400,
            "empty",
        ),
        (
            "msgpack garbage",
            vec![msgpack, endpoint("Echo.Hello")],
            vec![0xc1, 0xff, 0x00],
            400,
            "msgpack",
        ),
        (
            "unknown content type",
            vec![("Content-Type", "text/plain"), endpoint("Echo.Hello")],
            b"alice".to_vec(),
            415,
            "text/plain",
        ),
        (
            "unknown endpoint",
            vec![JSON, endpoint("Echo.Nope")],
            b"{}".to_vec(),
            404,
            "unknown endpoint Echo.Nope",
        ),
        (
            "unknown service",
            vec![JSON, endpoint("Nope.Hello")],
            b"{}".to_vec(),
            404,
            "unknown service Nope",
        ),
        ("no endpoint", vec![JSON], b"{}".to_vec(), 400, "Micro-Endpoint"),
        (
            "ill-formed endpoint",
            vec![JSON, endpoint("Hello")],
            b"{}".to_vec(),
            400,
            "Service.Method",
        ),
        (
            "handler panic",
            vec![JSON, endpoint("Echo.Panics")],
            br#"{"name":"bob"}"#.to_vec(),
            500,
            "cannot greet bob",
        ),
        (
            "handler error",
            vec![JSON, endpoint("Echo.Forbidden")],
            b"{}".to_vec(),
            403,
            "not for you",
        ),
    ];
    for (what, headers, body, code, detail) in cases {
        let rsp = conn.post(&headers, &body).await;
        assert_eq!(rsp.status, code, "{what}: {}", rsp.body_text());
        let err = rsp.error();
        assert_eq!(err.code, i32::from(code), "{what}");
        assert!(err.detail.contains(detail), "{what}: {:?} lacks {detail:?}", err.detail);
        assert_eq!(rsp.header("micro-error").map(micro::Error::parse), Some(err), "{what}");
        // The same connection serves the next request.
        let ok = conn.post(&[JSON, endpoint("Echo.Hello")], br#"{"name":"next"}"#).await;
        assert_eq!(ok.status, 200, "after {what}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn other_methods_get_405() {
    let running = start().await;
    let mut conn = RawConnection::open(running.local_addr()).await;
    conn.send_raw(&request_bytes("GET", &[endpoint("Echo.Hello")], b""))
        .await;
    let rsp = conn.read_response().await;
    assert_eq!(rsp.status, 405);
    assert_eq!(rsp.error().code, 405);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_keeps_serving() {
    let (running, mut naps) = start_with(ServerOptions::default().body_limit(1024)).await;
    let addr = running.local_addr();
    // Declared too large: refused before the body is read.
    let mut conn = RawConnection::open(addr).await;
    conn.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nMicro-Endpoint: Echo.Nap\r\nContent-Length: 10000000\r\n\r\n{\"millis\":")
        .await;
    let rsp = conn.read_response().await;
    assert_eq!(rsp.status, 413);
    assert!(rsp.error().detail.contains("1024"));
    // Chunked, with no length up front: cut off at the limit.
    let mut conn = RawConnection::open(addr).await;
    let chunk = format!("{:x}\r\n{}\r\n", 2000, "a".repeat(2000));
    let mut bytes =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nMicro-Endpoint: Echo.Nap\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    bytes.extend_from_slice(chunk.as_bytes());
    conn.send_raw(&bytes).await;
    let rsp = conn.read_response().await;
    assert_eq!(rsp.status, 413);
    assert!(naps.try_recv().is_err(), "the handler never ran");
    // A body just under the limit still works, on a fresh connection.
    let mut conn = RawConnection::open(addr).await;
    let name = "b".repeat(900);
    let rsp = conn
        .post(
            &[JSON, endpoint("Echo.Hello")],
            format!(r#"{{"name":"{name}"}}"#).as_bytes(),
        )
        .await;
    assert_eq!(rsp.status, 200);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn timeout_header_becomes_an_enforced_handler_deadline() {
    let (running, mut naps) = start_with(ServerOptions::default()).await;
    let mut conn = RawConnection::open(running.local_addr()).await;
    let started = Instant::now();
    let rsp = conn
        .post(
            &[JSON, endpoint("Echo.Nap"), ("Timeout", "200000000")],
            br#"{"millis": 5000}"#,
        )
        .await;
    assert_eq!(rsp.status, 408, "{}", rsp.body_text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(next_nap(&mut naps).await, NapEvent::Started { remaining: Some(left) } if left <= Duration::from_millis(200)),
        "the handler saw the header's deadline"
    );
    assert_eq!(
        next_nap(&mut naps).await,
        NapEvent::Dropped,
        "the handler was cancelled"
    );
    // The handler sees what is left of the deadline.
    let rsp = conn
        .post(&[JSON, endpoint("Echo.Whoami"), ("Timeout", "3000000000")], b"{}")
        .await;
    let seen: Seen = serde_json::from_slice(&rsp.body).unwrap();
    let left = seen.remaining_ms.expect("a deadline");
    assert!((2500..=3000).contains(&left), "{left} ms left");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn headers_become_metadata_with_local_and_remote() {
    let running = start().await;
    let mut conn = RawConnection::open(running.local_addr()).await;
    let rsp = conn
        .post(&[JSON, endpoint("Echo.Whoami"), ("x-user-id", "42")], b"{}")
        .await;
    let seen: Seen = serde_json::from_slice(&rsp.body).unwrap();
    assert_eq!(seen.metadata.get("X-User-Id").map(String::as_str), Some("42"));
    assert_eq!(
        seen.metadata.get("Micro-Endpoint").map(String::as_str),
        Some("Echo.Whoami")
    );
    assert_eq!(seen.metadata.get("Local"), Some(&running.local_addr().to_string()));
    assert!(seen.metadata.get("Remote").is_some_and(|r| r.starts_with("127.0.0.1:")));
    assert_eq!(seen.remaining_ms, None, "no Timeout header, no deadline");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn typed_client_resolves_through_the_registry_and_speaks_msgpack() {
    let running = start().await;
    let echo = EchoClient::new("echo", running.client());
    let rsp = echo.hello(Hello { name: "alice".into() }).await.unwrap();
    assert_eq!(rsp.message, "Hello alice");
    let seen = echo.whoami(Empty {}).metadata("X-Trace", "t-1").await.unwrap();
    assert_eq!(
        seen.metadata.get("Content-Type").map(String::as_str),
        Some("application/msgpack")
    );
    assert_eq!(seen.metadata.get("X-Trace").map(String::as_str), Some("t-1"));
    // Every codec reaches the same handler.
    for codec in [Codec::Json, Codec::Msgpack] {
        let seen = echo.whoami(Empty {}).content_type(codec).await.unwrap();
        assert_eq!(
            seen.metadata.get("Content-Type").map(String::as_str),
            Some(codec.content_type())
        );
    }
    let reversed = echo.raw(vec![1, 2, 3]).content_type(Codec::Bytes).await.unwrap();
    assert_eq!(reversed, [3, 2, 1]);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn errors_reach_the_typed_client_with_their_code() {
    let running = start().await;
    let echo = EchoClient::new("echo", running.client());
    let err = echo.forbidden(Empty {}).await.unwrap_err();
    assert_eq!(
        (err.id.as_str(), err.code, err.detail.as_str()),
        ("echo", 403, "not for you")
    );
    let err = echo.panics(Hello { name: "x".into() }).await.unwrap_err();
    assert_eq!(err.code, 500);
    let err = EchoClient::new("nobody", running.client())
        .hello(Hello { name: "x".into() })
        .await
        .unwrap_err();
    assert!(
        err.detail
            .contains("service nobody not found: no node of nobody is registered in this process's memory registry"),
        "{}",
        err.detail
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn client_deadline_reaches_the_server_and_ends_the_call() {
    let (running, mut naps) = start_with(ServerOptions::default()).await;
    let echo = EchoClient::new("echo", running.client());
    let started = Instant::now();
    let err = echo
        .nap(Nap { millis: 5_000 })
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.code, 408);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // The server saw the deadline in the handler's context ...
    match next_nap(&mut naps).await {
        NapEvent::Started { remaining: Some(left) } => {
            assert!(left <= Duration::from_millis(300), "{left:?} left of a 300 ms deadline");
        }
        other => panic!("the handler started without the client's deadline: {other:?}"),
    }
    // ... and ended the handler there, long before its 5 s nap was over.
    assert_eq!(
        next_nap(&mut naps).await,
        NapEvent::Dropped,
        "the server stopped the handler too"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn calls_from_a_handler_inherit_metadata_and_the_remaining_deadline() {
    let running = start().await;
    let echo = EchoClient::new("echo", running.client());
    let seen = echo
        .relay(Empty {})
        .metadata("X-User", "alice")
        .timeout(Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(seen.metadata.get("X-User").map(String::as_str), Some("alice"));
    let left = seen.remaining_ms.expect("the onward call carries a deadline");
    assert!(left <= 1500 && left > 1000, "{left} ms left at the second hop");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_retried_on_another_node() {
    let running = start().await;
    let registry = MemoryRegistry::new();
    let mut record = running.record().clone();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    record.nodes.push(Node {
        id: "echo-dead".into(),
        address: dead.to_string(),
        metadata: record.nodes[0].metadata.clone(),
    });
    registry.register(&record, RegisterOptions::default()).await.unwrap();
    let client = Client::new(Arc::new(registry));
    let echo = EchoClient::new("echo", client);
    for i in 0..20 {
        let rsp = echo.hello(Hello { name: format!("n{i}") }).await.unwrap();
        assert_eq!(rsp.message, format!("Hello n{i}"));
    }
    let err = echo
        .hello(Hello { name: "x".into() })
        .retries(0)
        .address(dead.to_string())
        .await
        .unwrap_err();
    assert!(err.detail.contains("connection error"), "{}", err.detail);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn h2c_and_http1_share_one_port() {
    let running = start().await;
    let registry = Arc::clone(running.client().registry());
    let options = micro::client::ClientOptions::default().mux(false);
    let h2 = Client::with_options(Arc::clone(&registry), options.clone().http2(true));
    let rsp = EchoClient::new("echo", h2)
        .hello(Hello { name: "h2".into() })
        .await
        .unwrap();
    assert_eq!(rsp.message, "Hello h2");
    let rsp = EchoClient::new("echo", Client::with_options(registry, options))
        .hello(Hello { name: "h1".into() })
        .await
        .unwrap();
    assert_eq!(rsp.message, "Hello h1");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn service_registers_its_endpoints_and_deregisters_on_stop() {
    let registry = Arc::new(MemoryRegistry::new());
    let service = Service::new("echo")
        .flags(Flags::none())
        .version("1.2.3")
        .metadata("team", "core")
        .address("127.0.0.1:0")
        .registry(registry.clone());
    let client = service.client();
    let running = service.handle(Echo::new(client)).start().await.unwrap();
    let found = registry.get_service("echo").await.unwrap();
    let record = &found[0];
    assert_eq!(record.version, "1.2.3");
    let node = &record.nodes[0];
    assert_eq!(node.address, running.local_addr().to_string());
    assert!(node.id.starts_with("echo-"));
    assert_eq!(node.metadata["protocol"], "mucp");
    assert_eq!(node.metadata["team"], "core");
    assert!(node.metadata["content-types"].contains("application/msgpack"));
    let relay = record
        .endpoints
        .iter()
        .find(|e| e.name == "Echo.Relay")
        .expect("Echo.Relay registered");
    assert_eq!(
        relay.metadata["description"],
        "Calls `Echo.Whoami` onward, inheriting metadata and deadline."
    );
    let hello = record.endpoints.iter().find(|e| e.name == "Echo.Hello").unwrap();
    let request = hello.request.as_ref().unwrap();
    assert_eq!(
        (
            request.name.as_str(),
            request.values[0].name.as_str(),
            request.values[0].ty.as_str()
        ),
        ("Hello", "name", "string")
    );
    running.stop().await.unwrap();
    assert!(registry.get_service("echo").await.is_err(), "deregistered on stop");
}

#[tokio::test]
async fn registration_is_renewed_before_its_ttl_runs_out() {
    let registry = Arc::new(MemoryRegistry::new());
    let running = Service::new("echo")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(registry.clone())
        .register_ttl(Duration::from_millis(400))
        .register_interval(Duration::from_millis(100))
        .handle(Echo::new(Client::default()))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        registry.get_service("echo").await.is_ok(),
        "still registered after three TTLs"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn stop_finishes_in_flight_calls_and_refuses_new_connections() {
    let (running, mut naps) = start_with(ServerOptions::default()).await;
    let addr = running.local_addr();
    let in_flight = tokio::spawn(async move {
        let mut conn = RawConnection::open(addr).await;
        conn.post(&[JSON, endpoint("Echo.Nap")], br#"{"millis": 400}"#).await
    });
    assert!(matches!(next_nap(&mut naps).await, NapEvent::Started { .. }));
    let drained = running.stop().await.unwrap();
    assert_eq!(drained, Drained::Clean);
    let rsp = in_flight.await.unwrap();
    assert_eq!(rsp.status, 200, "the in-flight call finished: {}", rsp.body_text());
    assert_eq!(next_nap(&mut naps).await, NapEvent::Finished);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn drain_time_bounds_shutdown() {
    let (running, mut naps) = start_with(ServerOptions::default().drain_timeout(Duration::from_millis(200))).await;
    let addr = running.local_addr();
    let stuck = tokio::spawn(async move {
        let mut conn = RawConnection::open(addr).await;
        conn.send_raw(&request_bytes(
            "POST",
            &[JSON, endpoint("Echo.Nap")],
            br#"{"millis": 60000}"#,
        ))
        .await;
        conn.try_read_response().await
    });
    assert!(matches!(next_nap(&mut naps).await, NapEvent::Started { .. }));
    let started = Instant::now();
    let drained = running.stop().await.unwrap();
    assert_eq!(drained, Drained::TimedOut(1));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(stuck.await.unwrap().is_none(), "the stuck call's connection was closed");
    assert_eq!(
        next_nap(&mut naps).await,
        NapEvent::Dropped,
        "the stuck handler was ended"
    );
}

#[tokio::test]
async fn slow_header_senders_are_cut_off() {
    let running = start_with(ServerOptions::default().header_read_timeout(Duration::from_millis(500)))
        .await
        .0;
    let addr = running.local_addr();
    let mut slow = RawConnection::open(addr).await;
    slow.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: Echo.Hello\r\n")
        .await;
    let mut fine = RawConnection::open(addr).await;
    let rsp = fine.post(&[JSON, endpoint("Echo.Hello")], br#"{"name":"x"}"#).await;
    assert_eq!(rsp.status, 200);
    assert!(
        slow.closed_within(Duration::from_secs(3)).await,
        "the slow connection was closed"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_read_timeout() {
    let running = start_with(ServerOptions::default().header_read_timeout(Duration::from_millis(300)))
        .await
        .0;
    let mut conn = RawConnection::open(running.local_addr()).await;
    let rsp = conn.post(&[JSON, endpoint("Echo.Hello")], br#"{"name":"x"}"#).await;
    assert_eq!(rsp.status, 200);
    let started = Instant::now();
    assert!(
        conn.closed_within(Duration::from_secs(3)).await,
        "the idle connection was kept"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}, before the timeout"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_response_read_slowly_is_not_cut_off_by_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let options = ServerOptions::default()
        .header_read_timeout(Duration::from_millis(200))
        .body_limit(16 << 20);
    let running = start_with(options).await.0;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut stream = socket.connect(running.local_addr()).await.unwrap();
    let body = vec![7u8; 8 << 20];
    let headers = [
        ("Content-Type", "application/octet-stream"),
        ("Micro-Endpoint", "Echo.Raw"),
    ];
    stream.write_all(&request_bytes("POST", &headers, &body)).await.unwrap();
    // A slow reader: the server is still writing the answer long after the
    // timeout, which counts only while no call is under way.
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        started.elapsed() > Duration::from_millis(600),
        "the answer went out too fast to test a slow reader"
    );
    assert_eq!(received.len() - head_end, body.len(), "the whole answer arrived");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn metadata_is_case_insensitive_through_the_wire() {
    let running = start().await;
    let echo = EchoClient::new("echo", running.client());
    let mut md = Metadata::new();
    md.insert("x-lower", "1");
    let mut options = micro::client::CallOptions::default();
    options.metadata = md;
    let seen = echo.whoami(Empty {}).options(options).await.unwrap();
    assert_eq!(seen.metadata.get("X-Lower").map(String::as_str), Some("1"));
    running.stop().await.unwrap();
}

/// Runs a helloworld server in a child process: configured only by Go
/// Micro's environment variables, it prints its address and serves until
/// its stdin closes.
#[tokio::test]
#[ignore = "run by typed_client_works_across_two_processes as a child process"]
async fn child_server_process() {
    if std::env::var_os("MICRO_TEST_CHILD").is_none() {
        return;
    }
    let running = Service::new("echo")
        .handle(Echo::new(Client::default()))
        .start()
        .await
        .unwrap();
    println!("LISTENING {} {}", running.local_addr(), running.record().name);
    let mut line = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_works_across_two_processes() {
    let mut child = support::Child::spawn(
        "child_server_process",
        &[
            ("MICRO_TEST_CHILD", "1"),
            ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
            ("MICRO_SERVER_NAME", "echo-child"),
        ],
    );
    let line = tokio::task::block_in_place(|| child.line_starting("LISTENING "));
    let (addr, name) = line.split_once(' ').unwrap();
    assert_eq!(name, "echo-child", "MICRO_SERVER_NAME was read");
    let echo = EchoClient::new("echo-child", Client::default());
    let rsp = echo.hello(Hello { name: "across".into() }).address(addr).await.unwrap();
    assert_eq!(rsp.message, "Hello across");
    child.close_stdin();
    assert!(child.process.wait().unwrap().success());
}

/// Runs `Service::run()` in a child process until it receives SIGTERM.
#[tokio::test]
#[ignore = "run by sigterm_drains_in_flight_calls_then_exits as a child process"]
async fn child_run_until_signal() {
    if std::env::var_os("MICRO_TEST_CHILD").is_none() {
        return;
    }
    let service = Service::new("echo").after_start(|| async {
        println!("STARTED");
        Ok(())
    });
    let client = service.client();
    // Tells the parent when a nap has started, so it signals a call in flight.
    let (naps, mut events) = Naps::new();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if matches!(event, NapEvent::Started { .. }) {
                println!("NAP STARTED");
            }
        }
    });
    service.handle(Echo { client, naps }).run().await.unwrap();
    println!("STOPPED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_calls_then_exits() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = support::Child::spawn(
        "child_run_until_signal",
        &[("MICRO_TEST_CHILD", "1"), ("MICRO_SERVER_ADDRESS", &addr.to_string())],
    );
    tokio::task::block_in_place(|| child.line_starting("STARTED"));
    let in_flight = tokio::spawn(async move {
        let mut conn = RawConnection::open(addr).await;
        conn.post(&[JSON, endpoint("Echo.Nap")], br#"{"millis": 500}"#).await
    });
    tokio::task::block_in_place(|| child.line_starting("NAP STARTED"));
    let pid = child.process.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let rsp = in_flight.await.unwrap();
    assert_eq!(rsp.status, 200, "the in-flight call finished after SIGTERM");
    tokio::task::block_in_place(|| child.line_starting("STOPPED"));
    assert!(child.process.wait().unwrap().success());
}

#[tokio::test]
async fn hooks_run_in_order_and_a_failing_before_start_aborts() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let hook = |name: &'static str| {
        let order = Arc::clone(&order);
        move || async move {
            order.lock().unwrap().push(name);
            Ok(())
        }
    };
    let running = Service::new("echo")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .before_start(hook("before_start"))
        .after_start(hook("after_start"))
        .before_stop(hook("before_stop"))
        .after_stop(hook("after_stop"))
        .handle(Echo::new(Client::default()))
        .start()
        .await
        .unwrap();
    running.stop().await.unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ["before_start", "after_start", "before_stop", "after_stop"]
    );

    let registry = Arc::new(MemoryRegistry::new());
    let failed = Service::new("echo")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(registry.clone())
        .before_start(|| async { Err(Error::internal_server_error("hook", "no database")) })
        .handle(Echo::new(Client::default()))
        .start()
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("no database"), "{failed}");
    assert!(registry.get_service("echo").await.is_err(), "nothing was registered");
}

#[tokio::test]
async fn bad_flags_and_taken_addresses_fail_the_start_clearly() {
    let flags = Flags::parse_from(["svc", "--client", "grpc"]).unwrap();
    let err = Service::new("echo").flags(flags).start().await.unwrap_err();
    assert!(err.to_string().contains("--client \"grpc\""), "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let err = Service::new("echo")
        .flags(Flags::none())
        .address(address.clone())
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("cannot listen on {address}")),
        "{err}"
    );
    let as_micro: micro::Error = err.into();
    assert_eq!(as_micro.code, 500);
}
