//! Pub/sub end to end: `#[subscribe]` services and publishers over the HTTP
//! broker (real sockets, Go Micro's wire) and over NATS (`--services nats`).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use micro::Flags;
use micro::broker::{Broker, HttpBroker, HttpBrokerOptions, MemoryBroker};
use micro::client::{ClientOptions, Publisher};
use micro::codec::Codec;
use micro::prelude::*;
use micro::registry::{self, MemoryRegistry, RegisterOptions, Registry, RegistryError};
use micro::server::Handler;
use micro::service::Running;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use support::RawConnection;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct UserCreated {
    id: u64,
    name: String,
}

fn user(id: u64) -> UserCreated {
    UserCreated {
        id,
        name: format!("user{id}"),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Empty {}

/// What a subscriber received: ids in order, and the metadata of each.
#[derive(Clone, Default)]
struct Inbox {
    ids: Arc<Mutex<Vec<u64>>>,
    metadata: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
}

impl Inbox {
    fn push(&self, id: u64, ctx: Option<&Context>) {
        self.ids.lock().unwrap().push(id);
        if let Some(ctx) = ctx {
            let metadata = ctx
                .metadata()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            self.metadata.lock().unwrap().push(metadata);
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.ids.lock().unwrap().clone()
    }

    fn sorted(&self) -> Vec<u64> {
        let mut ids = self.ids();
        ids.sort_unstable();
        ids
    }

    fn len(&self) -> usize {
        self.ids.lock().unwrap().len()
    }

    fn last_metadata(&self) -> BTreeMap<String, String> {
        self.metadata.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

/// A queue-group subscriber.
struct Audit {
    inbox: Inbox,
}

#[micro::service]
impl Audit {
    /// Keeps an audit trail of new users.
    #[subscribe(topic = "user.created", queue = "audit")]
    async fn on_created(&self, ctx: &Context, event: UserCreated) -> Result<()> {
        self.inbox.push(event.id, Some(ctx));
        Ok(())
    }
}

/// A broadcast subscriber beside an endpoint.
struct Notify {
    inbox: Inbox,
}

#[micro::service]
impl Notify {
    #[subscribe(topic = "user.created")]
    async fn on_created(&self, event: UserCreated) -> Result<()> {
        self.inbox.push(event.id, None);
        Ok(())
    }

    #[endpoint]
    async fn count(&self, _req: Empty) -> Result<usize> {
        Ok(self.inbox.len())
    }
}

/// Fails one message in three and panics on another.
struct Picky {
    inbox: Inbox,
}

#[micro::service]
impl Picky {
    #[subscribe(topic = "picky")]
    async fn on_message(&self, event: UserCreated) -> Result<()> {
        match event.id % 3 {
            1 => Err(Error::bad_request("picky", format!("refusing {}", event.id))),
            2 => panic!("picky panics on {}", event.id),
            _ => {
                self.inbox.push(event.id, None);
                Ok(())
            }
        }
    }
}

/// Fails every message.
struct Grumpy {
    seen: Inbox,
}

#[micro::service]
impl Grumpy {
    #[subscribe(topic = "user.created")]
    async fn on_created(&self, event: UserCreated) -> Result<()> {
        self.seen.push(event.id, None);
        Err(Error::internal_server_error("grumpy", "never happy"))
    }
}

/// Publishes from inside an endpoint, so the caller's metadata travels on.
struct Signup {
    client: Client,
}

#[micro::service]
impl Signup {
    #[endpoint]
    async fn create(&self, user: UserCreated) -> Result<Empty> {
        self.client.publish("user.created", user).await?;
        Ok(Empty {})
    }
}

fn http_broker(registry: &Arc<dyn Registry>) -> Arc<dyn Broker> {
    let options = HttpBrokerOptions::default().address("127.0.0.1:0");
    Arc::new(HttpBroker::with_options(Arc::clone(registry), options))
}

fn memory_registry() -> Arc<dyn Registry> {
    Arc::new(MemoryRegistry::new())
}

fn service(name: &str, registry: &Arc<dyn Registry>, broker: Arc<dyn Broker>) -> Service {
    Service::new(name)
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(registry))
        .broker(broker)
}

/// A publisher in a process of its own: its own client and HTTP broker.
fn publisher(registry: &Arc<dyn Registry>) -> Client {
    Client::with_options(
        Arc::clone(registry),
        ClientOptions::default().broker(http_broker(registry)),
    )
}

async fn start(name: &str, registry: &Arc<dyn Registry>, broker: Arc<dyn Broker>, handler: impl Handler) -> Running {
    service(name, registry, broker)
        .handle(handler)
        .start()
        .await
        .unwrap_or_else(|e| panic!("{name} starts: {e}"))
}

async fn audit(registry: &Arc<dyn Registry>, broker: Arc<dyn Broker>) -> (Running, Inbox) {
    let inbox = Inbox::default();
    let running = start("audit", registry, broker, Audit { inbox: inbox.clone() }).await;
    (running, inbox)
}

async fn notify(registry: &Arc<dyn Registry>, broker: Arc<dyn Broker>) -> (Running, Inbox) {
    let inbox = Inbox::default();
    let running = start("notify", registry, broker, Notify { inbox: inbox.clone() }).await;
    (running, inbox)
}

/// The HTTP broker node of the subscription to `topic` in `version`.
async fn broker_node(registry: &Arc<dyn Registry>, version: &str, topic: &str) -> registry::Node {
    let services = registry.get_service("micro.http.broker").await.expect("broker records");
    services
        .iter()
        .filter(|s| s.version == version)
        .flat_map(|s| &s.nodes)
        .find(|n| n.metadata.get("topic").map(String::as_str) == Some(topic))
        .cloned()
        .expect("a subscriber node for the topic")
}

fn envelope(header: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let header: BTreeMap<&str, &str> = header.iter().copied().collect();
    serde_json::to_vec(&serde_json::json!({ "Header": header, "Body": BASE64.encode(body) })).unwrap()
}

/// Registers what Go Micro's HTTP broker registers for a subscription to
/// `user.created` in `version` (the queue, or `ff.http.broadcast`).
async fn register_member(registry: &Arc<dyn Registry>, version: &str, id: &str, address: String) -> registry::Service {
    let record = registry::Service {
        name: "micro.http.broker".into(),
        version: version.into(),
        nodes: vec![registry::Node {
            id: id.into(),
            address,
            metadata: BTreeMap::from([
                ("secure".into(), "false".into()),
                ("broker".into(), "http".into()),
                ("topic".into(), "user.created".into()),
            ]),
        }],
        ..Default::default()
    };
    registry.register(&record, RegisterOptions::default()).await.unwrap();
    record
}

/// Reads one HTTP/1.1 request: its head lines and its body.
async fn read_request(socket: &mut BufReader<tokio::net::TcpStream>) -> Option<(Vec<String>, Vec<u8>)> {
    let mut head = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if socket.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        head.push(line.trim_end().to_owned());
    }
    let mut body = vec![0; length];
    socket.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

/// RELIABILITY R17: the default broker's semantics under load: 1,000
/// messages, none lost, to a queue group and to broadcast subscribers.
#[tokio::test]
async fn r17_http_broker_queue_broadcast_oversize_and_errors() {
    use futures_util::StreamExt;

    let registry = memory_registry();
    let (a1, audit1) = audit(&registry, http_broker(&registry)).await;
    let (a2, audit2) = audit(&registry, http_broker(&registry)).await;
    let (n1, notify1) = notify(&registry, http_broker(&registry)).await;
    let (n2, notify2) = notify(&registry, http_broker(&registry)).await;
    let grumpy_seen = Inbox::default();
    let grumpy = Grumpy {
        seen: grumpy_seen.clone(),
    };
    let g = start("grumpy", &registry, http_broker(&registry), grumpy).await;
    let created = Publisher::<UserCreated>::new("user.created", publisher(&registry));
    let results: Vec<Result<()>> = futures_util::stream::iter(0..1000)
        .map(|id| {
            let created = created.clone();
            async move { created.publish(&user(id)).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        results.iter().all(Result::is_ok),
        "a failing subscriber does not fail the publish"
    );
    let all: Vec<u64> = (0..1000).collect();
    let mut audited = audit1.ids();
    audited.extend(audit2.ids());
    audited.sort_unstable();
    assert_eq!(audited, all, "queue: each message handled exactly once");
    assert!(
        audit1.len() > 100 && audit2.len() > 100,
        "both members took a share: {} and {}",
        audit1.len(),
        audit2.len()
    );
    assert_eq!(notify1.sorted(), all, "no queue: every message");
    assert_eq!(notify2.sorted(), all, "no queue: every message");
    assert_eq!(grumpy_seen.len(), 1000, "the failing subscriber kept receiving");
    assert_eq!(g.subscribers()[0].failed(), 1000);
    assert_eq!((n1.subscribers()[0].handled(), n1.subscribers()[0].failed()), (1000, 0));

    let big = UserCreated {
        id: 5000,
        name: "x".repeat(5 * 1024 * 1024),
    };
    let err = created.publish(&big).await.unwrap_err();
    assert_eq!(err.code, 413, "{err}");
    assert_eq!(
        notify1.len() + notify2.len() + audit1.len() + audit2.len(),
        3000,
        "no subscriber invoked"
    );
    for running in [a1, a2, n1, n2, g] {
        running.stop().await.unwrap();
    }
}

/// At most once: a queue member that takes a message and dies before
/// answering is not replaced by another member for that message; a member
/// that refuses the connection never got it, and another member takes it.
#[tokio::test]
async fn a_queue_member_that_dies_mid_delivery_is_not_replaced() {
    let registry = memory_registry();
    let (running, audited) = audit(&registry, http_broker(&registry)).await;

    // A member that reads each message whole, then drops the connection.
    let crashing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let member = register_member(
        &registry,
        "audit",
        "user.created-crashing",
        crashing.local_addr().unwrap().to_string(),
    )
    .await;
    let taken = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&taken);
    let crasher = tokio::spawn(async move {
        loop {
            let (socket, _) = crashing.accept().await.unwrap();
            if read_request(&mut BufReader::new(socket)).await.is_some() {
                *counter.lock().unwrap() += 1;
            }
        }
    });
    let client = publisher(&registry);
    let mut lost = Vec::new();
    for id in 0..40 {
        if client.publish("user.created", user(id)).await.is_err() {
            lost.push(id);
        }
    }
    assert!(!lost.is_empty(), "some messages went to the crashing member");
    assert_eq!(
        *taken.lock().unwrap(),
        lost.len(),
        "each failed publish reached the crashing member"
    );
    let handled = audited.ids();
    assert!(
        lost.iter().all(|id| !handled.contains(id)),
        "never redelivered: {lost:?} vs {handled:?}"
    );
    assert_eq!(handled.len() + lost.len(), 40);
    crasher.abort();
    registry.deregister(&member).await.unwrap();

    // A member whose port is closed: refused, so another member takes it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    register_member(&registry, "audit", "user.created-refusing", closed.to_string()).await;
    for id in 100..120 {
        client
            .publish("user.created", user(id))
            .await
            .expect("delivered to the live member");
    }
    assert_eq!(audited.ids()[handled.len()..], (100..120).collect::<Vec<_>>()[..]);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_messages_are_rejected_and_the_subscriber_keeps_running() {
    let registry = memory_registry();
    let (running, inbox) = notify(&registry, http_broker(&registry)).await;
    let node = broker_node(&registry, "ff.http.broadcast", "user.created").await;
    let address: SocketAddr = node.address.parse().unwrap();
    let path = format!("/?id={}", node.id);
    let json = ("Content-Type", "application/json");
    let mut conn = RawConnection::open(address).await;

    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("malformed JSON", b"{\"Header\":".to_vec(), 400),
        (
            "a body that is not base64",
            br#"{"Header":{"Micro-Topic":"user.created"},"Body":"%%%"}"#.to_vec(),
            400,
        ),
        ("no topic", envelope(&[], b"{}"), 400),
        ("an empty body", Vec::new(), 400),
        ("another topic", envelope(&[("Micro-Topic", "other")], b"{}"), 404),
    ];
    for (what, body, status) in cases {
        let rsp = conn.post_to(&path, &[json], &body).await;
        assert_eq!(rsp.status, status, "{what}: {}", rsp.body_text());
        assert_eq!(rsp.error().id, "go.micro.broker", "{what}");
    }
    let unknown = envelope(&[("Micro-Topic", "user.created")], b"{}");
    let rsp = conn.post_to("/?id=nobody", &[json], &unknown).await;
    assert_eq!(rsp.status, 404, "unknown subscriber id");
    conn.send_raw(&support::request_bytes_to("GET", &path, &[], b"")).await;
    assert_eq!(conn.read_response().await.status, 405);

    // A well-formed envelope whose payload is not a UserCreated: the
    // subscriber's method fails (counted); the delivery itself happened.
    let mistyped = envelope(&[("Micro-Topic", "user.created"), json], br#"{"id":"seven"}"#);
    let rsp = conn.post_to(&path, &[json], &mistyped).await;
    assert_eq!(rsp.status, 500, "{}", rsp.body_text());
    assert_eq!(
        rsp.error().code,
        400,
        "the handler's error says why: {}",
        rsp.body_text()
    );
    let unsupported = envelope(
        &[("Micro-Topic", "user.created"), ("Content-Type", "text/xml")],
        b"<x/>",
    );
    let rsp = conn.post_to(&path, &[json], &unsupported).await;
    assert_eq!(rsp.status, 500);
    assert_eq!(rsp.error().code, 415, "{}", rsp.body_text());

    // Over the 4 MiB limit: 413, and the connection is closed.
    let huge = envelope(&[("Micro-Topic", "user.created")], &vec![b'x'; 4 * 1024 * 1024]);
    let rsp = conn.post_to(&path, &[json], &huge).await;
    assert_eq!(rsp.status, 413);

    // The publisher refuses an oversized message before sending it.
    let client = publisher(&registry);
    let big = UserCreated {
        id: 99,
        name: "x".repeat(4 * 1024 * 1024),
    };
    let err = client.publish("user.created", big).await.unwrap_err();
    assert_eq!(err.code, 413, "{err}");

    // And the subscriber still takes good messages, on a new connection too.
    let good = envelope(&[("Micro-Topic", "user.created"), json], br#"{"id":7,"name":"seven"}"#);
    let rsp = RawConnection::open(address).await.post_to(&path, &[json], &good).await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_text());
    client.publish("user.created", user(8)).await.unwrap();
    assert_eq!(inbox.ids(), [7, 8]);
    let stats = &running.subscribers()[0];
    assert_eq!((stats.handled(), stats.failed()), (2, 2));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_or_panicking_handler_keeps_its_subscription() {
    let registry = memory_registry();
    let inbox = Inbox::default();
    let running = start(
        "picky",
        &registry,
        http_broker(&registry),
        Picky { inbox: inbox.clone() },
    )
    .await;
    let client = publisher(&registry);
    for id in 0..12 {
        client
            .publish("picky", user(id))
            .await
            .expect("delivered, whatever the handler did");
    }
    assert_eq!(inbox.ids(), [0, 3, 6, 9]);
    let stats = &running.subscribers()[0];
    assert_eq!(stats.descriptor().name(), "Picky.OnMessage");
    assert_eq!((stats.handled(), stats.failed()), (4, 8));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn subscribers_are_registered_and_stop_removes_them() {
    let registry = memory_registry();
    let (running, inbox) = audit(&registry, http_broker(&registry)).await;
    let record = &registry.get_service("audit").await.unwrap()[0];
    let endpoint = record
        .endpoints
        .iter()
        .find(|e| e.name == "Audit.OnCreated")
        .expect("subscriber endpoint");
    assert_eq!(endpoint.metadata["subscriber"], "true");
    assert_eq!(endpoint.metadata["topic"], "user.created");
    assert_eq!(endpoint.metadata["queue"], "audit");
    assert_eq!(endpoint.metadata["description"], "Keeps an audit trail of new users.");
    assert_eq!(endpoint.request.as_ref().unwrap().name, "UserCreated");
    assert_eq!(record.nodes[0].metadata["broker"], "http");

    let node = broker_node(&registry, "audit", "user.created").await;
    assert_eq!(node.metadata["broker"], "http");
    assert_eq!(node.metadata["secure"], "false");
    assert!(node.id.starts_with("user.created-"), "{}", node.id);

    running.stop().await.unwrap();
    match registry.get_service("micro.http.broker").await {
        Err(RegistryError::NotFound { .. }) => {}
        Ok(services) => assert!(services.iter().all(|s| s.nodes.is_empty()), "{services:?}"),
        Err(e) => panic!("{e}"),
    }
    publisher(&registry)
        .publish("user.created", user(1))
        .await
        .expect("no subscriber is no error");
    assert!(inbox.ids().is_empty());
}

#[tokio::test]
async fn metadata_travels_from_publisher_to_subscriber() {
    let registry = memory_registry();
    let (a, inbox) = audit(&registry, http_broker(&registry)).await;

    let client = publisher(&registry);
    let ctx = Context::new().with_metadata("X-User", "alice");
    client.publish("user.created", user(1)).context(ctx).await.unwrap();
    let seen = inbox.last_metadata();
    assert_eq!(seen.get("X-User").map(String::as_str), Some("alice"), "{seen:?}");
    assert_eq!(seen.get("Micro-Topic").map(String::as_str), Some("user.created"));
    assert_eq!(seen.get("Content-Type").map(String::as_str), Some("application/json"));
    assert_eq!(seen.get("Micro-Id").map(String::len), Some(36), "a UUID");

    // MessagePack, decoded by the message's Content-Type.
    client
        .publish("user.created", user(2))
        .codec(Codec::Msgpack)
        .await
        .unwrap();
    assert_eq!(inbox.last_metadata()["Content-Type"], "application/msgpack");

    // Published from inside an endpoint: the caller's metadata goes on.
    let signup = service("signup", &registry, http_broker(&registry));
    let signup_client = signup.client();
    let s = signup.handle(Signup { client: signup_client }).start().await.unwrap();
    let caller = Client::new(Arc::clone(&registry));
    let _: Empty = caller
        .call("signup", "Signup.Create", user(3))
        .metadata("X-Trace", "t-3")
        .await
        .unwrap();
    assert_eq!(inbox.ids(), [1, 2, 3]);
    assert_eq!(inbox.last_metadata().get("X-Trace").map(String::as_str), Some("t-3"));
    a.stop().await.unwrap();
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_go_micro_publisher_reaches_a_micro_subscriber() {
    let registry = memory_registry();
    let (running, inbox) = audit(&registry, http_broker(&registry)).await;
    let node = broker_node(&registry, "audit", "user.created").await;
    // What Go Micro's http broker sends: http.Client.Post(uri,
    // "application/json", body) with the JSON of broker.Message (keys in
    // Go's sorted map order; the payload encoded by the JSON codec, with
    // its newline).
    let payload = b"{\"id\":42,\"name\":\"gopher\"}\n";
    let body = format!(
        r#"{{"Header":{{"Content-Type":"application/json","Micro-Id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","Micro-Topic":"user.created","X-From":"go"}},"Body":"{}"}}"#,
        BASE64.encode(payload)
    );
    let request = format!(
        "POST /?id={} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{body}",
        node.id,
        node.address,
        body.len()
    );
    let mut conn = RawConnection::open(node.address.parse().unwrap()).await;
    conn.send_raw(request.as_bytes()).await;
    let rsp = conn.read_response().await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_text());
    assert_eq!(inbox.ids(), [42]);
    assert_eq!(inbox.last_metadata().get("X-From").map(String::as_str), Some("go"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_micro_publisher_reaches_a_go_micro_subscriber() {
    let registry = memory_registry();
    // A Go Micro subscriber: its broker's listener, and the record Go's
    // http broker registers for `Subscribe("user.created", h)`.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let id = "user.created-0b2f5e4c-2ad1-4b8e-9b0a-2c7f1c4f9e51";
    let address = listener.local_addr().unwrap().to_string();
    register_member(&registry, "ff.http.broadcast", id, address).await;
    let go = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut socket = BufReader::new(socket);
        let (head, body) = read_request(&mut socket).await.expect("a request");
        socket
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        (head, body)
    });

    let client = publisher(&registry);
    client
        .publish("user.created", user(5))
        .context(Context::new().with_metadata("X-User", "alice"))
        .await
        .unwrap();
    let (head, body) = go.await.unwrap();
    assert_eq!(head[0], format!("POST /?id={id} HTTP/1.1"));
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: application/json")),
        "{head:?}"
    );
    // Go decodes the body into broker.Message: Header map, Body base64.
    let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let header = &message["Header"];
    assert_eq!(header["Micro-Topic"], "user.created");
    assert_eq!(header["Content-Type"], "application/json");
    assert_eq!(header["X-User"], "alice");
    assert_eq!(header["Micro-Id"].as_str().map(str::len), Some(36));
    let payload = BASE64.decode(message["Body"].as_str().unwrap()).unwrap();
    let event: UserCreated = serde_json::from_slice(&payload).unwrap();
    assert_eq!(event, user(5));
}

#[tokio::test]
async fn the_memory_broker_flag_connects_services_in_one_process() {
    let registry = memory_registry();
    let flags = || Flags::parse_from(["svc", "--broker", "memory"]).unwrap();
    let inbox = Inbox::default();
    let running = Service::new("notify")
        .flags(flags())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .handle(Notify { inbox: inbox.clone() })
        .start()
        .await
        .unwrap();
    let other = Service::new("other").flags(flags()).registry(Arc::clone(&registry));
    other.client().publish("user.created", user(1)).await.unwrap();
    MemoryBroker::shared()
        .publish(
            "user.created",
            micro::broker::Message::new(&b"{\"id\":2,\"name\":\"b\"}"[..]),
        )
        .await
        .unwrap();
    assert_eq!(inbox.ids(), [1, 2]);
    assert_eq!(running.record().nodes[0].metadata["broker"], "memory");
    running.stop().await.unwrap();
    other.client().publish("user.created", user(3)).await.unwrap();
    assert_eq!(inbox.ids(), [1, 2], "unsubscribed on stop");
}

#[cfg(feature = "nats")]
mod nats {
    //! The same guarantees on NATS. Needs `MICRO_TEST_NATS_URL`
    //! (`netns-run --services nats`).

    use std::time::Duration;

    use super::*;
    use micro::broker::NatsBroker;

    /// Waits until `done` holds, for at most 10 s.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        support::eventually(what, Duration::from_secs(10), async || done()).await;
    }

    fn url() -> String {
        std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL: run inside `netns-run --services nats`")
    }

    fn nats() -> Arc<dyn Broker> {
        Arc::new(NatsBroker::new(&url()))
    }

    fn nats_publisher() -> Client {
        Client::with_options(memory_registry(), ClientOptions::default().broker(nats()))
    }

    /// Publishes raw bytes on a subject with the NATS text protocol, as
    /// another client (Go Micro's broker, or a broken one) would.
    async fn publish_raw(subject: &str, payload: &[u8]) {
        let address = url().trim_start_matches("nats://").to_owned();
        let socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut socket = BufReader::new(socket);
        let mut info = String::new();
        socket.read_line(&mut info).await.unwrap();
        assert!(info.starts_with("INFO"), "{info}");
        let mut out = format!("CONNECT {{\"verbose\":false}}\r\nPUB {subject} {}\r\n", payload.len()).into_bytes();
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\nPING\r\n");
        socket.get_mut().write_all(&out).await.unwrap();
        let mut pong = String::new();
        socket.read_line(&mut pong).await.unwrap();
        assert_eq!(pong.trim_end(), "PONG");
    }

    #[tokio::test]
    #[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
    async fn nats_queue_groups_share_and_broadcast_subscribers_get_all() {
        let registry = memory_registry();
        let (a1, audit1) = audit(&registry, nats()).await;
        let (a2, audit2) = audit(&registry, nats()).await;
        let (n1, notify1) = notify(&registry, nats()).await;
        let (n2, notify2) = notify(&registry, nats()).await;
        assert_eq!(n1.record().nodes[0].metadata["broker"], "nats");
        let client = nats_publisher();
        for id in 0..200 {
            client.publish("user.created", user(id)).await.unwrap();
        }
        eventually("every delivery", || {
            audit1.len() + audit2.len() == 200 && notify1.len() == 200 && notify2.len() == 200
        })
        .await;
        let mut audited = audit1.ids();
        audited.extend(audit2.ids());
        audited.sort_unstable();
        let all: Vec<u64> = (0..200).collect();
        assert_eq!(audited, all, "each message went to one member of the queue group");
        assert_eq!(notify1.sorted(), all);
        assert_eq!(notify2.sorted(), all);
        // Nothing more arrives late.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(audit1.len() + audit2.len(), 200);
        for running in [a1, a2, n1, n2] {
            running.stop().await.unwrap();
        }
    }

    #[tokio::test]
    #[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
    async fn nats_a_thousand_messages_none_lost() {
        let registry = memory_registry();
        let (n, inbox) = notify(&registry, nats()).await;
        let created = Publisher::<UserCreated>::new("user.created", nats_publisher());
        for id in 0..1000 {
            created.publish(&user(id)).await.unwrap();
        }
        eventually("1,000 messages", || inbox.len() >= 1000).await;
        assert_eq!(inbox.ids(), (0..1000).collect::<Vec<_>>(), "all, in order");
        n.stop().await.unwrap();
    }

    #[tokio::test]
    #[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
    async fn nats_go_envelopes_are_read_and_bad_ones_skipped() {
        let registry = memory_registry();
        let inbox = Inbox::default();
        let running = start("picky", &registry, nats(), Picky { inbox: inbox.clone() }).await;
        publish_raw("picky", b"not json at all").await;
        publish_raw("picky", br#"{"Header":{},"Body":"%%%"}"#).await;
        publish_raw(
            "picky",
            &envelope(&[("Content-Type", "application/json")], b"{\"id\":\"x\"}"),
        )
        .await;
        // Go Micro's NATS broker publishes the same JSON envelope as its HTTP broker.
        publish_raw(
            "picky",
            &envelope(&[("Content-Type", "application/json")], b"{\"id\":3,\"name\":\"go\"}\n"),
        )
        .await;
        let client = nats_publisher();
        client.publish("picky", user(1)).await.unwrap();
        client.publish("picky", user(6)).await.unwrap();
        eventually("the good messages", || inbox.len() >= 2).await;
        assert_eq!(inbox.ids(), [3, 6]);
        let stats = &running.subscribers()[0];
        eventually("the failures counted", || stats.failed() == 2).await;
        running.stop().await.unwrap();

        // Stopped: unsubscribed from the subject.
        client.publish("picky", user(9)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(inbox.ids(), [3, 6]);
    }

    #[tokio::test]
    #[ignore = "needs NATS: MICRO_TEST_NATS_URL (netns-run --services nats)"]
    async fn nats_unreachable_is_a_clear_start_error() {
        let registry = memory_registry();
        let broker: Arc<dyn Broker> = Arc::new(NatsBroker::new("nats://127.0.0.1:1"));
        let err = service("audit", &registry, broker)
            .handle(Audit {
                inbox: Inbox::default(),
            })
            .start()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nats"), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
