//! Interop with real Go Micro: the Go program in `tests/gomicro/` (Go Micro
//! v4.11.0, whose wire is v5's; the proxy this project reaches serves v5
//! only as exact versions, and the peer takes v5.9.0 for its PostgreSQL
//! store, `tests/gomicro_store.rs`) runs as a subprocess, a service or a client on the
//! other side of each test. Ignored unless `MICRO_TEST_GOMICRO` names the
//! built program; `.ci/run` builds it and runs these inside `netns-run`.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

use micro::Flags;
use micro::client::ClientOptions;
use micro::prelude::*;
use micro::registry::{MdnsOptions, MdnsRegistry, MemoryRegistry, Registry};
use micro::service::Running;
use serde_json::{Value, json};

mod peer;

use peer::Peer;

/// The Go Micro error codes a handler may answer with, and the other side sees.
const CODES: [i32; 8] = [400, 401, 403, 404, 408, 409, 429, 500];

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// One call by the Go Micro client; its printed outcome.
async fn go_call(args: &[&str]) -> Value {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    let mut peer = Peer::start(&all);
    let line = peer.line("{").await;
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    name: String,
    #[serde(default)]
    code: i32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    message: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    deadline_ms: Option<i64>,
}

/// The micro side: what the Go peer's helloworld does, in Rust.
struct Helloworld;

#[micro::service]
impl Helloworld {
    #[endpoint]
    async fn greeting(&self, ctx: &Context, req: Request) -> Result<Response> {
        Ok(Response {
            message: format!("Hello {}", req.name),
            metadata: ctx
                .metadata()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            deadline_ms: ctx.remaining().map(|d| d.as_millis() as i64),
        })
    }

    #[endpoint]
    async fn fail(&self, req: Request) -> Result<Response> {
        Err(Error::new(
            "helloworld",
            format!("failed as asked: {}", req.name),
            req.code,
        ))
    }

    /// Streams back every message it receives.
    #[endpoint]
    async fn echo(&self, mut stream: Stream<Value, Value>) -> Result<()> {
        while let Some(message) = stream.recv().await? {
            stream.send(message).await?;
        }
        Ok(())
    }
}

async fn micro_service(name: &str, registry: Arc<dyn Registry>) -> Running {
    Service::new(name)
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(registry)
        .handle(Helloworld)
        .start()
        .await
        .expect("start the micro service")
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_micro_client_calls_a_go_micro_service_with_metadata_and_deadline() {
    let (_go, address) = Peer::serve(&unique("go-hello"), "memory").await;
    let client = Client::with_options(Arc::new(MemoryRegistry::new()), ClientOptions::default());
    let rsp: Response = client
        .call("helloworld", "Helloworld.Greeting", json!({"name": "micro"}))
        .address(address)
        .metadata("X-User", "alice")
        .timeout(Duration::from_secs(3))
        .await
        .expect("the Go Micro service answers");
    assert_eq!(rsp.message, "Hello micro");
    assert_eq!(
        rsp.metadata.get("X-User").map(String::as_str),
        Some("alice"),
        "{:?}",
        rsp.metadata
    );
    let left = rsp
        .deadline_ms
        .expect("the Timeout header became the handler's deadline");
    assert!(left > 1000 && left <= 3000, "{left} ms left");
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn go_micro_errors_reach_a_micro_client_with_their_codes() {
    let (_go, address) = Peer::serve(&unique("go-hello"), "memory").await;
    let client = Client::with_options(Arc::new(MemoryRegistry::new()), ClientOptions::default().retries(0));
    for code in CODES {
        let err = client
            .call::<_, Response>("helloworld", "Helloworld.Fail", json!({"name": "x", "code": code}))
            .address(address.clone())
            .await
            .expect_err("Fail fails");
        assert_eq!((err.code, err.id.as_str()), (code, "helloworld"), "{err}");
        assert_eq!(err.detail, "failed as asked: x");
    }
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_go_micro_client_calls_a_micro_service_with_metadata_and_deadline() {
    let running = micro_service(&unique("rs-hello"), Arc::new(MemoryRegistry::new())).await;
    let address = running.local_addr().to_string();
    let out = go_call(&[
        "--registry",
        "memory",
        "--address",
        &address,
        "--service",
        "helloworld",
        "--body",
        r#"{"name":"go"}"#,
        "--metadata",
        "X-User=bob",
        "--timeout",
        "3s",
    ])
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["body"]["message"], "Hello go");
    assert_eq!(out["body"]["metadata"]["X-User"], "bob", "{out}");
    // Go Micro's client sends its connection timeout (5 s by default) as
    // `Timeout`, whatever the call's own timeout: that is the deadline the
    // handler gets.
    let left = out["body"]["deadline_ms"]
        .as_i64()
        .expect("a deadline from Go's Timeout");
    assert!(left > 4000 && left <= 5000, "{left} ms left");
    running.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn micro_errors_reach_a_go_micro_client_with_their_codes() {
    let running = micro_service(&unique("rs-hello"), Arc::new(MemoryRegistry::new())).await;
    let address = running.local_addr().to_string();
    for code in CODES {
        let body = format!(r#"{{"name":"x","code":{code}}}"#);
        let out = go_call(&[
            "--registry",
            "memory",
            "--address",
            &address,
            "--endpoint",
            "Helloworld.Fail",
            "--body",
            &body,
            "--retries",
            "0",
        ])
        .await;
        assert_eq!(out["ok"], false, "{out}");
        assert_eq!(out["error"]["code"], code, "{out}");
        assert_eq!(out["error"]["detail"], "failed as asked: x", "{out}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn over_mdns_a_micro_client_finds_and_calls_a_go_micro_service() {
    let name = unique("go-hello");
    let (_go, _) = Peer::serve(&name, "mdns").await;
    let registry: Arc<dyn Registry> = Arc::new(MdnsRegistry::with_options(MdnsOptions::default().go_compat(true)));
    let client = Client::with_options(registry, ClientOptions::default());
    let rsp: Response = client
        .call(name.as_str(), "Helloworld.Greeting", json!({"name": "mdns"}))
        .timeout(Duration::from_secs(10))
        .await
        .expect("found over mDNS and answered");
    assert_eq!(rsp.message, "Hello mdns");
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn over_mdns_a_go_micro_client_finds_and_calls_a_micro_service() {
    let name = unique("rs-hello");
    let registry: Arc<dyn Registry> = Arc::new(MdnsRegistry::with_options(MdnsOptions::default().go_compat(true)));
    let running = micro_service(&name, registry).await;
    let out = go_call(&[
        "--registry",
        "mdns",
        "--service",
        &name,
        "--body",
        r#"{"name":"mdns"}"#,
        "--timeout",
        "10s",
    ])
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["body"]["message"], "Hello mdns");
    running.stop().await.unwrap();
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Greeted {
    name: String,
    n: u32,
}

/// A micro subscriber that hands what it receives to the test.
struct Listener {
    received: tokio::sync::mpsc::UnboundedSender<(Greeted, Option<String>)>,
}

#[micro::service]
impl Listener {
    #[subscribe(topic = "interop.greeted")]
    async fn on_greeted(&self, ctx: &Context, event: Greeted) -> Result<()> {
        let topic = ctx.get("Micro-Topic").map(str::to_owned);
        let _ = self.received.send((event, topic));
        Ok(())
    }
}

fn compat_mdns() -> Arc<dyn Registry> {
    Arc::new(MdnsRegistry::with_options(MdnsOptions::default().go_compat(true)))
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_go_micro_publisher_reaches_a_micro_subscriber_over_the_http_broker() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let running = Service::new(unique("rs-listener"))
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(compat_mdns())
        .handle(Listener { received: tx })
        .start()
        .await
        .expect("start the micro subscriber");
    let mut publisher = Peer::start(&[
        "publish",
        "--registry",
        "mdns",
        "--topic",
        "interop.greeted",
        "--body",
        r#"{"name":"go","n":1}"#,
    ]);
    let out = publisher.line("{").await;
    assert_eq!(out, r#"{"ok":true}"#);
    let (event, topic) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the micro subscriber got the Go message within 10 s")
        .expect("a message");
    assert_eq!(
        event,
        Greeted {
            name: "go".into(),
            n: 1
        }
    );
    assert_eq!(topic.as_deref(), Some("interop.greeted"));
    running.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_micro_publisher_reaches_a_go_micro_subscriber_over_the_http_broker() {
    let topic = unique("interop.topic");
    let mut subscriber = Peer::start(&["subscribe", "--registry", "mdns", "--topic", &topic]);
    subscriber.line("SUBSCRIBED").await;
    let client = Client::with_options(compat_mdns(), ClientOptions::default());
    // Until the Go subscriber's broker node is seen over mDNS, a publication
    // has nobody to go to (and that is no error): publish until one arrives.
    let greeted = Greeted {
        name: "micro".into(),
        n: 2,
    };
    let mut line = None;
    for _ in 0..50 {
        client.publish(topic.as_str(), greeted.clone()).await.expect("publish");
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), subscriber.line("{")).await {
            line = Some(got);
            break;
        }
    }
    let line = line.expect("the Go subscriber got a message within 15 s");
    let received: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(received["body"], json!({"name": "micro", "n": 2}), "{line}");
    assert_eq!(received["header"]["Micro-Topic"], topic.as_str(), "{line}");
}

/// Sends SIGTERM, so that Go Micro deregisters before it exits.
async fn terminate(mut peer: Peer) {
    if let Some(pid) = peer.child.id() {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), peer.child.wait()).await;
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn over_mdns_micro_reads_a_go_micro_services_full_record_and_sees_it_leave() {
    let name = unique("go-record");
    let mut go = Peer::start(&[
        "serve",
        "--name",
        &name,
        "--registry",
        "mdns",
        "--version",
        "1.2.3",
        "--metadata",
        "team=core",
    ]);
    go.line("LISTENING ").await;
    let registry = compat_mdns();
    let mut records = Vec::new();
    for _ in 0..50 {
        records = registry.get_service(&name).await.unwrap_or_default();
        if !records.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(
        (record.name.as_str(), record.version.as_str()),
        (name.as_str(), "1.2.3")
    );
    assert_eq!(record.nodes.len(), 1);
    assert_eq!(
        record.nodes[0].metadata.get("team").map(String::as_str),
        Some("core"),
        "{record:?}"
    );
    let mut endpoints: Vec<&str> = record.endpoints.iter().map(|e| e.name.as_str()).collect();
    endpoints.sort_unstable();
    assert_eq!(endpoints, ["Helloworld.Echo", "Helloworld.Fail", "Helloworld.Greeting"]);
    let greeting = record
        .endpoints
        .iter()
        .find(|e| e.name == "Helloworld.Greeting")
        .unwrap();
    let request = greeting.request.as_ref().expect("the request's shape");
    let fields: Vec<&str> = request.values.iter().map(|v| v.name.as_str()).collect();
    assert!(fields.contains(&"name"), "{request:?}");

    terminate(go).await;
    let mut gone = false;
    for _ in 0..50 {
        if registry.get_service(&name).await.map_or(true, |r| r.is_empty()) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "the Go Micro service was still listed after it deregistered");
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn over_mdns_go_micro_reads_a_micro_services_full_record_and_sees_it_leave() {
    let name = unique("rs-record");
    let running = Service::new(name.as_str())
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .version("2.0.0")
        .metadata("team", "edge")
        .registry(compat_mdns())
        .handle(Helloworld)
        .start()
        .await
        .expect("start the micro service");
    let mut get = Peer::start(&["get", "--registry", "mdns", "--service", &name]);
    let line = get.line("[").await;
    let records: Value = serde_json::from_str(&line).unwrap();
    let record = &records[0];
    assert_eq!(record["name"], name.as_str(), "{line}");
    assert_eq!(record["version"], "2.0.0", "{line}");
    assert_eq!(record["nodes"][0]["metadata"]["team"], "edge", "{line}");
    assert_eq!(
        record["nodes"][0]["address"],
        running.local_addr().to_string(),
        "{line}"
    );
    let endpoints: Vec<&str> = record["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        endpoints.contains(&"Helloworld.Greeting") && endpoints.contains(&"Helloworld.Fail"),
        "{line}"
    );

    running.stop().await.unwrap();
    let mut gone = Peer::start(&["get", "--registry", "mdns", "--service", &name, "--absent"]);
    assert_eq!(gone.line("[").await, "[]", "Go Micro still lists the micro service");
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_go_micro_client_speaks_json_rpc_to_a_node_that_names_no_protocol() {
    // Go Micro calls a node whose metadata has no `protocol` with its legacy
    // JSON-RPC codec; an empty value counts as none.
    let name = unique("rs-legacy");
    let running = Service::new(name.as_str())
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .metadata("protocol", "")
        .registry(compat_mdns())
        .handle(Helloworld)
        .start()
        .await
        .expect("start the micro service");
    let out = go_call(&[
        "--registry",
        "mdns",
        "--service",
        &name,
        "--body",
        r#"{"name":"legacy"}"#,
        "--timeout",
        "10s",
    ])
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["body"]["message"], "Hello legacy");
    assert_eq!(
        out["body"]["metadata"]["Content-Type"], "application/json-rpc",
        "the call came as JSON-RPC: {out}"
    );
    let body = r#"{"name":"legacy","code":409}"#;
    let out = go_call(&[
        "--registry",
        "mdns",
        "--service",
        &name,
        "--endpoint",
        "Helloworld.Fail",
        "--body",
        body,
        "--retries",
        "0",
    ])
    .await;
    assert_eq!(out["error"]["code"], 409, "{out}");
    running.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_micro_client_speaks_json_rpc_to_a_go_micro_service() {
    let (_go, address) = Peer::serve(&unique("go-hello"), "memory").await;
    let client = Client::with_options(Arc::new(MemoryRegistry::new()), ClientOptions::default().retries(0));
    let rsp: Response = client
        .call("helloworld", "Helloworld.Greeting", json!({"name": "rpc"}))
        .address(address.clone())
        .content_type(micro::codec::Codec::JsonRpc)
        .await
        .expect("the Go Micro service answers JSON-RPC");
    assert_eq!(rsp.message, "Hello rpc");
    assert_eq!(
        rsp.metadata.get("Content-Type").map(String::as_str),
        Some("application/json-rpc")
    );
    let err = client
        .call::<_, Response>("helloworld", "Helloworld.Fail", json!({"name": "rpc", "code": 404}))
        .address(address)
        .content_type(micro::codec::Codec::JsonRpc)
        .await
        .expect_err("Fail fails");
    assert_eq!(err.code, 404, "{err}");
}

#[cfg(feature = "etcd")]
#[tokio::test]
#[ignore = "needs the Go Micro peer and etcd: MICRO_TEST_GOMICRO, MICRO_TEST_ETCD_ENDPOINTS"]
async fn over_etcd_go_micro_and_micro_find_and_call_each_other() {
    let endpoints = std::env::var("MICRO_TEST_ETCD_ENDPOINTS").expect("MICRO_TEST_ETCD_ENDPOINTS");
    let registry: Arc<dyn Registry> = Arc::new(micro::registry::EtcdRegistry::new(endpoints.split(',')));

    let go_name = unique("go-etcd");
    let (_go, _) = Peer::serve(&go_name, "etcd").await;
    let client = Client::with_options(Arc::clone(&registry), ClientOptions::default());
    let rsp: Response = client
        .call(go_name.as_str(), "Helloworld.Greeting", json!({"name": "etcd"}))
        .timeout(Duration::from_secs(10))
        .await
        .expect("the Go Micro service found on etcd answers");
    assert_eq!(rsp.message, "Hello etcd");

    let rs_name = unique("rs-etcd");
    let running = micro_service(&rs_name, Arc::clone(&registry)).await;
    let out = go_call(&[
        "--registry",
        "etcd",
        "--service",
        &rs_name,
        "--body",
        r#"{"name":"etcd"}"#,
    ])
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["body"]["message"], "Hello etcd");
    running.stop().await.unwrap();
    let mut gone = Peer::start(&["get", "--registry", "etcd", "--service", &rs_name, "--absent"]);
    assert_eq!(
        gone.line("[").await,
        "[]",
        "Go Micro still lists the deregistered micro service"
    );
}

#[cfg(feature = "nats")]
#[tokio::test]
#[ignore = "needs the Go Micro peer and NATS: MICRO_TEST_GOMICRO, MICRO_TEST_NATS_URL"]
async fn over_nats_go_micro_and_micro_publish_to_each_other() {
    use micro::broker::{Broker, NatsBroker};
    let url = std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL");
    let broker: Arc<dyn Broker> = Arc::new(NatsBroker::new(&url));

    // Go publishes, a micro subscriber receives.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let running = Service::new(unique("rs-listener"))
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .broker(Arc::clone(&broker))
        .handle(Listener { received: tx })
        .start()
        .await
        .expect("start the micro subscriber");
    let mut publisher = Peer::start(&[
        "publish",
        "--registry",
        "memory",
        "--broker",
        "nats",
        "--topic",
        "interop.greeted",
        "--body",
        r#"{"name":"go","n":3}"#,
    ]);
    assert_eq!(publisher.line("{").await, r#"{"ok":true}"#);
    let (event, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the micro subscriber got the Go message over NATS within 10 s")
        .expect("a message");
    assert_eq!(
        event,
        Greeted {
            name: "go".into(),
            n: 3
        }
    );
    running.stop().await.unwrap();

    // micro publishes, a Go subscriber receives.
    let topic = unique("interop.nats");
    let mut subscriber = Peer::start(&[
        "subscribe",
        "--registry",
        "memory",
        "--broker",
        "nats",
        "--topic",
        &topic,
    ]);
    subscriber.line("SUBSCRIBED").await;
    let client = Client::with_options(
        Arc::new(MemoryRegistry::new()),
        ClientOptions::default().broker(Arc::clone(&broker)),
    );
    client
        .publish(
            topic.as_str(),
            Greeted {
                name: "micro".into(),
                n: 4,
            },
        )
        .await
        .expect("publish over NATS");
    let line = subscriber.line("{").await;
    let received: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(received["body"], json!({"name": "micro", "n": 4}), "{line}");
}

/// A micro member of the queue group the Go subscriber also joins.
struct Worker {
    received: tokio::sync::mpsc::UnboundedSender<u32>,
}

#[micro::service]
impl Worker {
    #[subscribe(topic = "interop.shared", queue = "workers")]
    async fn on_shared(&self, event: Greeted) -> Result<()> {
        let _ = self.received.send(event.n);
        Ok(())
    }
}

/// Publishes to the queue group of `Worker` and the Go member `go`, and
/// checks that each message reached one member only, and each member some.
async fn share_the_queue(client: &Client, go: &mut Peer, micro: &mut tokio::sync::mpsc::UnboundedReceiver<u32>) {
    const MESSAGES: u32 = 40;
    // The Go member prints SUBSCRIBED once its service started, which may
    // be before its broker's server knows the subscription (NATS takes the
    // SUB asynchronously): probes go out until one reaches Go, so that the
    // group has both members when the counted messages are published.
    const PROBE: u32 = 1_000_000;
    let mut probe = PROBE;
    loop {
        client
            .publish(
                "interop.shared",
                Greeted {
                    name: "probe".into(),
                    n: probe,
                },
            )
            .await
            .expect("publish a probe");
        probe += 1;
        let reached_go = tokio::select! {
            line = go.line("{") => {
                let received: Value = serde_json::from_str(&line).unwrap();
                received["body"]["n"].as_u64().is_some_and(|n| n >= u64::from(PROBE))
            }
            Some(_) = micro.recv() => false,
            () = tokio::time::sleep(Duration::from_millis(100)) => false,
        };
        if reached_go {
            break;
        }
        assert!(probe < PROBE + 200, "the Go member never got a probe");
    }
    // Probes still on their way to micro are not counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while micro.try_recv().is_ok() {}
    for n in 0..MESSAGES {
        client
            .publish("interop.shared", Greeted { name: "q".into(), n })
            .await
            .expect("publish");
    }
    let mut seen = Vec::new();
    let mut by_go = 0;
    while seen.len() < MESSAGES as usize {
        tokio::select! {
            Some(n) = micro.recv() => if n < PROBE { seen.push(n) },
            line = go.line("{") => {
                let received: Value = serde_json::from_str(&line).unwrap();
                let n = received["body"]["n"].as_u64().expect("n") as u32;
                if n < PROBE {
                    seen.push(n);
                    by_go += 1;
                }
            }
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..MESSAGES).collect::<Vec<_>>(),
        "each message once, to one member"
    );
    assert!(
        by_go > 0 && by_go < MESSAGES as usize,
        "both members got some: Go got {by_go}"
    );
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_queue_group_shared_by_go_micro_and_micro_members_gets_each_message_once() {
    let registry = compat_mdns();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let running = Service::new(unique("rs-worker"))
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .handle(Worker { received: tx })
        .start()
        .await
        .expect("start the micro member");
    let mut go = Peer::start(&[
        "subscribe",
        "--registry",
        "mdns",
        "--topic",
        "interop.shared",
        "--queue",
        "workers",
    ]);
    go.line("SUBSCRIBED").await;
    // Publish once both members are seen, so that the group is whole.
    let mut members = Vec::new();
    for _ in 0..100 {
        let records = registry.get_service("micro.http.broker").await.unwrap_or_default();
        members = records
            .iter()
            .filter(|s| s.version == "workers")
            .flat_map(|s| &s.nodes)
            .filter(|n| n.metadata.get("topic").map(String::as_str) == Some("interop.shared"))
            .map(|n| (n.id.clone(), n.address.clone()))
            .collect();
        if members.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(members.len(), 2, "both members of the group, each once: {members:?}");
    let client = Client::with_options(Arc::clone(&registry), ClientOptions::default());
    share_the_queue(&client, &mut go, &mut rx).await;
    running.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_go_micro_stream_client_gets_a_clear_error_from_a_micro_stream() {
    // Go Micro's HTTP transport carries a stream as a run of HTTP/1.1
    // exchanges on one connection, answered out of step with the requests;
    // micro's streams are HTTP/2. The Go client is told so, promptly.
    let running = micro_service(&unique("rs-stream"), Arc::new(MemoryRegistry::new())).await;
    let address = running.local_addr().to_string();
    let mut peer = Peer::start(&[
        "stream",
        "--address",
        &address,
        "--endpoint",
        "Helloworld.Echo",
        "--body",
        r#"{"x":1}"#,
        "--timeout",
        "5s",
    ]);
    let line = peer.line("{").await;
    let out: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(out["ok"], false, "{out}");
    assert_eq!(out["error"]["code"], 400, "{out}");
    assert!(
        out["error"]["detail"].as_str().is_some_and(|d| d.contains("HTTP/2")),
        "{out}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_micro_stream_to_a_go_micro_service_fails_promptly_with_an_error() {
    let (_go, address) = Peer::serve(&unique("go-stream"), "memory").await;
    let client = Client::with_options(Arc::new(MemoryRegistry::new()), ClientOptions::default().retries(0));
    let opened = tokio::time::timeout(
        Duration::from_secs(10),
        client
            .stream::<Value, Value>("helloworld", "Helloworld.Echo")
            .address(address)
            .timeout(Duration::from_secs(3)),
    )
    .await
    .expect("the open ended within 10 s");
    let err = opened.expect_err("Go Micro's HTTP/1 server does not speak micro's HTTP/2 streams");
    assert!(err.code >= 400, "{err}");
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn a_refused_node_loses_go_micro_calls_but_not_micro_calls() {
    // Go Micro retries only 408s (RetryOnError), so a call its selector
    // sends to a node that refuses connections fails; micro retries every
    // attempt that never reached a server, on another node.
    let name = unique("rs-retry");
    let registry = compat_mdns();
    let running = micro_service(&name, Arc::clone(&registry)).await;
    // A second node of the same service, registered as another process
    // would (its own registry), where nobody listens any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut record = running.record().clone();
    record.nodes[0].id = format!("{name}-dead");
    record.nodes[0].address = dead.to_string();
    let other = compat_mdns();
    other
        .register(&record, micro::registry::RegisterOptions::default())
        .await
        .expect("register the dead node");
    // Go Micro sees both nodes.
    let mut listed = Value::Null;
    for _ in 0..20 {
        let mut get = Peer::start(&["get", "--registry", "mdns", "--service", &name]);
        listed = serde_json::from_str(&get.line("[").await).unwrap();
        if listed[0]["nodes"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
    }
    let nodes = listed[0]["nodes"].as_array().map_or(0, Vec::len);
    assert_eq!(nodes, 2, "Go Micro lists the live and the dead node: {listed}");
    let (mut answered, mut refused) = (0, 0);
    for n in 0..12 {
        let body = format!(r#"{{"name":"retry {n}"}}"#);
        let out = go_call(&[
            "--registry",
            "mdns",
            "--service",
            &name,
            "--body",
            &body,
            "--retries",
            "5",
        ])
        .await;
        if out["ok"] == true {
            answered += 1;
        } else if out["error"]["detail"].as_str().is_some_and(|d| d.contains("refused")) {
            refused += 1;
        } else {
            panic!("neither an answer nor a refused connection: {out}");
        }
    }
    assert!(
        answered > 0 && refused > 0,
        "Go Micro: {answered} answered, {refused} refused"
    );
    let client = Client::with_options(Arc::clone(&registry), ClientOptions::default());
    for n in 0..12 {
        let rsp: Response = client
            .call(
                name.as_str(),
                "Helloworld.Greeting",
                json!({"name": format!("retry {n}")}),
            )
            .await
            .expect("micro retries a refused connection on the live node");
        assert_eq!(rsp.message, format!("Hello retry {n}"));
    }
    running.stop().await.unwrap();
}

#[cfg(feature = "nats")]
#[tokio::test]
#[ignore = "needs the Go Micro peer and NATS: MICRO_TEST_GOMICRO, MICRO_TEST_NATS_URL"]
async fn over_nats_a_queue_group_shared_by_go_micro_and_micro_members_gets_each_message_once() {
    use micro::broker::{Broker, NatsBroker};
    let url = std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL");
    let broker: Arc<dyn Broker> = Arc::new(NatsBroker::new(&url));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let running = Service::new(unique("rs-worker"))
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .broker(Arc::clone(&broker))
        .handle(Worker { received: tx })
        .start()
        .await
        .expect("start the micro member");
    let mut go = Peer::start(&[
        "subscribe",
        "--registry",
        "memory",
        "--broker",
        "nats",
        "--topic",
        "interop.shared",
        "--queue",
        "workers",
    ]);
    go.line("SUBSCRIBED").await;
    let client = Client::with_options(
        Arc::new(MemoryRegistry::new()),
        ClientOptions::default().broker(Arc::clone(&broker)),
    );
    share_the_queue(&client, &mut go, &mut rx).await;
    running.stop().await.unwrap();
}
