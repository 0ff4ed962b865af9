//! Client layers (`ClientOptions::layer`): a tower layer around each call
//! attempt, after the node is picked, on every path (HTTP/1.1, mux, stream
//! opens, in-process calls), once per attempt of a retried call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use micro::Flags;
use micro::client::retry::retry_never;
use micro::client::{Attempted, CallAttempt, ClientOptions};
use micro::middleware::{Next, from_fn};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Node, RegisterOptions, Registry};
use micro::selector::{Outcome, Pick, Pool, Selector};
use micro::service::Running;
use micro::stream::Sender;

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    name: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Greeting {
    message: String,
    /// The `X-Trace-Id` the handler saw.
    trace: Option<String>,
    /// `Host`, which only the HTTP transport carries.
    host: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Count {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Tick {
    i: u64,
}

/// What happened, in order: layers and the handler write here.
type Events = Arc<Mutex<Vec<String>>>;

fn push(events: &Events, event: &str) {
    events.lock().unwrap().push(event.to_owned());
}

struct Greeter {
    events: Events,
    handled: Arc<AtomicUsize>,
}

#[micro::service]
impl Greeter {
    #[endpoint]
    async fn hello(&self, ctx: &Context, req: Hello) -> Result<Greeting> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        push(&self.events, "handler");
        Ok(Greeting {
            message: format!("Hello {}", req.name),
            trace: ctx.get("X-Trace-Id").map(str::to_owned),
            host: ctx.get("Host").map(str::to_owned),
        })
    }

    #[endpoint]
    async fn count(&self, req: Count, tx: Sender<Tick>) -> Result<()> {
        for i in 0..req.n {
            tx.send(Tick { i }).await?;
        }
        Ok(())
    }

    /// Answers after two seconds (which the server waits for on stop).
    #[endpoint]
    async fn slow(&self, req: Hello) -> Result<Greeting> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Err(Error::internal_server_error(
            "greeter",
            format!("{} should have timed out", req.name),
        ))
    }
}

struct Started {
    running: Running,
    registry: Arc<dyn Registry>,
    events: Events,
    handled: Arc<AtomicUsize>,
}

impl Started {
    /// The address of the service's node.
    fn address(&self) -> String {
        self.running.record().nodes[0].address.clone()
    }

    /// A client of the service's registry with `options`, sharing the
    /// service's table of servers it may call in place.
    fn client(&self, options: ClientOptions) -> GreeterClient {
        let table = self.running.client().options().in_process.clone();
        let client = Client::with_options(Arc::clone(&self.registry), options.in_process(table));
        GreeterClient::new("greeter", client)
    }
}

async fn start() -> Started {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let events = Events::default();
    let handled = Arc::new(AtomicUsize::new(0));
    let running = Service::new("greeter")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .handle(Greeter {
            events: Arc::clone(&events),
            handled: Arc::clone(&handled),
        })
        .start()
        .await
        .unwrap();
    Started {
        running,
        registry,
        events,
        handled,
    }
}

/// One attempt, as a layer saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    endpoint: String,
    address: String,
    node: Option<String>,
    attempt: u32,
    stream: bool,
    in_process: bool,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// `options` with a layer that records every attempt it sees.
fn recording(options: ClientOptions) -> (ClientOptions, Log) {
    let log = Log::default();
    let seen = Arc::clone(&log);
    let layer = from_fn(move |call: CallAttempt, next: Next<CallAttempt, Attempted>| {
        seen.lock().unwrap().push(Seen {
            endpoint: call.endpoint().to_owned(),
            address: call.address().to_owned(),
            node: call.node().map(|node| node.id.clone()),
            attempt: call.attempt(),
            stream: call.is_stream(),
            in_process: call.in_process(),
        });
        next.run(call)
    });
    (options.layer(layer), log)
}

fn taken(log: &Log) -> Vec<Seen> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn a_layer_sees_each_attempt_with_its_node_on_every_path() {
    let service = start().await;
    let address = service.address();
    let node = Some(service.running.record().nodes[0].id.clone());
    let seen = |endpoint: &str, stream: bool, in_process: bool| Seen {
        endpoint: endpoint.to_owned(),
        address: address.clone(),
        node: node.clone(),
        attempt: 0,
        stream,
        in_process,
    };

    // Unary over HTTP/1.1, which carries `Host`.
    let (options, log) = recording(ClientOptions::default().mux(false));
    let greeter = service.client(options);
    let rsp = greeter.hello(Hello { name: "h1".into() }).await.unwrap();
    assert_eq!(rsp.message, "Hello h1");
    assert!(rsp.host.is_some(), "the call went over HTTP");
    assert_eq!(taken(&log), [seen("Greeter.Hello", false, false)]);

    // A stream open, over HTTP/2.
    let mut ticks = greeter.count(Count { n: 3 }).await.unwrap();
    let mut got = Vec::new();
    while let Some(tick) = ticks.recv().await.unwrap() {
        got.push(tick.i);
    }
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(taken(&log), [seen("Greeter.Count", true, false)]);

    // Unary over mux, which carries no `Host`.
    let (options, log) = recording(ClientOptions::default());
    let rsp = service
        .client(options)
        .hello(Hello { name: "mux".into() })
        .await
        .unwrap();
    assert_eq!(rsp.message, "Hello mux");
    assert_eq!(rsp.host, None, "the call went over mux");
    assert_eq!(taken(&log), [seen("Greeter.Hello", false, false)]);

    // In place: the node is this process's own server.
    let (options, log) = recording(ClientOptions::default().local_calls(true));
    let rsp = service
        .client(options)
        .hello(Hello { name: "local".into() })
        .await
        .unwrap();
    assert_eq!(rsp.message, "Hello local");
    assert_eq!(taken(&log), [seen("Greeter.Hello", false, true)]);

    service.running.stop().await.unwrap();
}

#[tokio::test]
async fn the_first_layer_added_is_the_outermost() {
    let service = start().await;
    let around = |name: &'static str| {
        let events = Arc::clone(&service.events);
        from_fn(move |call: CallAttempt, next: Next<CallAttempt, Attempted>| {
            let events = Arc::clone(&events);
            async move {
                push(&events, &format!("{name} in"));
                let answer = next.run(call).await;
                push(&events, &format!("{name} out"));
                answer
            }
        })
    };
    let options = ClientOptions::default().layer(around("A")).layer(around("B"));
    service.client(options).hello(Hello { name: "x".into() }).await.unwrap();
    assert_eq!(
        *service.events.lock().unwrap(),
        ["A in", "B in", "handler", "B out", "A out"]
    );
    service.running.stop().await.unwrap();
}

/// The node `greeter-dead` while it is a candidate, else the first
/// candidate; with every outcome it hears.
#[derive(Debug, Default)]
struct DeadFirst {
    marks: Mutex<Vec<(String, Outcome)>>,
}

impl Selector for DeadFirst {
    fn select<'a>(&self, pool: &Pool<'a, '_>) -> Option<Pick<'a>> {
        let dead = pool.picks().find(|(_, node)| node.id == "greeter-dead");
        dead.or_else(|| pool.nth(0))
    }

    fn mark(&self, node_id: &str, outcome: Outcome) {
        self.marks.lock().unwrap().push((node_id.to_owned(), outcome));
    }
}

/// A registry of the service's node and a node that refuses connections.
async fn with_a_dead_node(service: &Started) -> (Arc<dyn Registry>, String) {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut record = service.running.record().clone();
    let dead_node = Node {
        id: "greeter-dead".into(),
        address: dead.clone(),
        metadata: record.nodes[0].metadata.clone(),
    };
    record.nodes.push(dead_node);
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    registry.register(&record, RegisterOptions::default()).await.unwrap();
    (registry, dead)
}

#[tokio::test]
async fn a_retried_call_passes_through_the_layers_once_per_attempt() {
    let service = start().await;
    let (registry, dead) = with_a_dead_node(&service).await;
    let selector = Arc::new(DeadFirst::default());
    let (options, log) = recording(ClientOptions::default().node_selector(Arc::clone(&selector) as _));
    let greeter = GreeterClient::new("greeter", Client::with_options(registry, options));

    let rsp = greeter.hello(Hello { name: "again".into() }).await.unwrap();
    assert_eq!(rsp.message, "Hello again");
    let attempts: Vec<(String, u32)> = taken(&log).into_iter().map(|s| (s.address, s.attempt)).collect();
    assert_eq!(attempts, [(dead, 0), (service.address(), 1)]);
    let good = service.running.record().nodes[0].id.clone();
    assert_eq!(
        *selector.marks.lock().unwrap(),
        [
            ("greeter-dead".to_owned(), Outcome::Unreachable),
            (good, Outcome::Answered)
        ]
    );
    service.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_layer_that_answers_itself_refuses_the_attempt_before_it_is_sent() {
    let service = start().await;
    let selector = Arc::new(DeadFirst::default());
    let (options, log) = recording(ClientOptions::default().node_selector(Arc::clone(&selector) as _));
    let options = options.layer(from_fn(|_: CallAttempt, _: Next<CallAttempt, Attempted>| async {
        Err(Error::service_unavailable("breaker", "open"))
    }));
    let greeter = service.client(options);

    // Not sent, so tried again although the policy retries no answer.
    let err = greeter
        .hello(Hello { name: "x".into() })
        .retries(1)
        .retry(retry_never)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code, err.id.as_str(), err.detail.as_str()),
        (503, "breaker", "open")
    );
    let attempts: Vec<u32> = taken(&log).into_iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [0, 1], "the refusal was retried as not sent");
    assert_eq!(service.handled.load(Ordering::SeqCst), 0, "nothing reached the server");
    assert_eq!(*selector.marks.lock().unwrap(), [], "the node was not tried");
    service.running.stop().await.unwrap();
}

#[tokio::test]
async fn a_layer_adds_metadata_the_handler_sees() {
    let service = start().await;
    let trace = |options: ClientOptions| {
        options.layer(from_fn(|mut call: CallAttempt, next: Next<CallAttempt, Attempted>| {
            let id = format!("trace-{}", call.attempt());
            call.metadata_mut().insert("X-Trace-Id", id);
            next.run(call)
        }))
    };
    for (path, options) in [
        ("http", ClientOptions::default().mux(false)),
        ("mux", ClientOptions::default()),
        ("in process", ClientOptions::default().local_calls(true)),
    ] {
        let rsp = service
            .client(trace(options))
            .hello(Hello { name: "t".into() })
            .metadata("X-Trace-Id", "the caller's")
            .await
            .unwrap();
        assert_eq!(rsp.trace.as_deref(), Some("trace-0"), "{path}");
    }
    service.running.stop().await.unwrap();
}

#[tokio::test]
async fn towers_timeout_layer_gives_a_408() {
    let service = start().await;
    let options = ClientOptions::default().layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(100)));
    let started = Instant::now();
    let err = service
        .client(options)
        .slow(Hello { name: "late".into() })
        .retries(0)
        .await
        .unwrap_err();
    assert_eq!(err.code, 408, "{err:?}");
    assert_eq!(err.id, "go.micro.client");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    service.running.stop().await.unwrap();
}
