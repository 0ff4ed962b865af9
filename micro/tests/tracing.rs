//! Distributed tracing: one trace across three services (an HTTP hop, a
//! mux hop, a publish and its delivery), read from an in-memory recorder of
//! the spans micro opens; a Go Micro-shaped request (`Micro-Trace-Id`,
//! `Micro-Span-Id`) is joined, and W3C `traceparent` is continued.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::Flags;
use micro::broker::{Broker, MemoryBroker};
use micro::client::ClientOptions;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::service::Running;
use support::RawConnection;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

/// A span as recorded: its name and fields.
#[derive(Clone, Debug, Default)]
struct Recorded {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

impl Recorded {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

impl Visit for Recorded {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Every span opened, in order, and where each id's span is.
#[derive(Default)]
struct Opened {
    spans: Vec<Recorded>,
    by_id: HashMap<u64, usize>,
}

/// The in-memory recorder.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Opened>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: LayerContext<'_, S>) {
        let mut span = Recorded {
            name: attrs.metadata().name(),
            ..Recorded::default()
        };
        attrs.record(&mut span);
        let mut opened = self.0.lock().unwrap();
        let index = opened.spans.len();
        opened.spans.push(span);
        opened.by_id.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: LayerContext<'_, S>) {
        let mut opened = self.0.lock().unwrap();
        if let Some(&index) = opened.by_id.get(&id.into_u64()) {
            values.record(&mut opened.spans[index]);
        }
    }
}

impl Spans {
    fn named(&self, name: &str, field: &str, value: &str) -> Recorded {
        let opened = self.0.lock().unwrap();
        let found: Vec<_> = opened
            .spans
            .iter()
            .filter(|s| s.name == name && s.field(field) == value)
            .cloned()
            .collect();
        assert_eq!(found.len(), 1, "one {name} with {field}={value} in {:#?}", opened.spans);
        found.into_iter().next().unwrap()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().spans.len()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

/// The first service: relays to the middle over HTTP/1.1; hears the
/// back's message.
struct Front {
    client: Client,
    heard: mpsc::UnboundedSender<Option<String>>,
}

#[micro::service]
impl Front {
    #[endpoint]
    async fn start(&self, req: Note) -> Result<Note> {
        MiddleClient::new("middle", self.client.clone()).relay(req).await
    }

    #[subscribe(topic = "stored")]
    async fn stored(&self, ctx: &Context, _note: Note) -> Result<()> {
        let _ = self.heard.send(ctx.get("traceparent").map(str::to_owned));
        Ok(())
    }
}

/// The second: relays to the back over mux.
struct Middle {
    client: Client,
}

#[micro::service]
impl Middle {
    #[endpoint]
    async fn relay(&self, ctx: &Context, req: Note) -> Result<Note> {
        assert!(ctx.trace().is_some(), "the handler knows its span");
        BackClient::new("back", self.client.clone()).store(req).await
    }
}

/// The third: publishes what it stores.
struct Back {
    client: Client,
}

#[micro::service]
impl Back {
    #[endpoint]
    async fn store(&self, req: Note) -> Result<Note> {
        self.client.publish("stored", &req).await?;
        Ok(req)
    }
}

async fn start(service: Service, registry: &Arc<dyn Registry>, broker: &Arc<dyn Broker>) -> Running {
    service
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(registry))
        .broker(Arc::clone(broker))
        .start()
        .await
        .unwrap()
}

/// The Go Micro trace the flow's first request carries.
const GO_TRACE: &str = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
/// The same trace id, as W3C writes it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The Go Micro caller's span.
const GO_SPAN: &str = "00f067aa0ba902b7";

/// The three services, running.
struct Flow {
    front: Running,
    middle: Running,
    back: Running,
}

/// Starts front, middle and back, and sends front a Go Micro-shaped call
/// (`Micro-Id`, its legacy trace headers): front calls middle over HTTP/1.1,
/// middle calls back over mux, back publishes, front's subscriber hears it.
/// Gives the services and the `traceparent` the subscriber saw.
async fn run_flow() -> (Flow, Option<String>) {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
    let client = |mux: bool| {
        Client::with_options(
            Arc::clone(&registry),
            ClientOptions::default().mux(mux).broker(Arc::clone(&broker)),
        )
    };
    let (heard, mut heard_rx) = mpsc::unbounded_channel();
    let back = start(
        Service::new("back").handle(Back { client: client(false) }),
        &registry,
        &broker,
    )
    .await;
    let middle = start(
        Service::new("middle").handle(Middle { client: client(true) }),
        &registry,
        &broker,
    )
    .await;
    let front = start(
        Service::new("front").handle(Front {
            client: client(false),
            heard,
        }),
        &registry,
        &broker,
    )
    .await;
    let rsp = RawConnection::open(front.local_addr())
        .await
        .post(
            &[
                ("Content-Type", "application/json"),
                ("Micro-Endpoint", "Front.Start"),
                ("Micro-Id", "1"),
                ("Micro-Trace-Id", GO_TRACE),
                ("Micro-Span-Id", GO_SPAN),
            ],
            br#"{"text":"hi"}"#,
        )
        .await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_text());
    let delivered = tokio::time::timeout(Duration::from_secs(5), heard_rx.recv())
        .await
        .unwrap()
        .unwrap();
    (Flow { front, middle, back }, delivered)
}

impl Flow {
    async fn stop(self) {
        for running in [self.front, self.middle, self.back] {
            running.stop().await.unwrap();
        }
    }
}

#[tokio::test]
async fn one_trace_crosses_three_services_a_publish_and_a_go_micro_caller() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let (flow, delivered) = run_flow().await;

    let trace_id = TRACE_ID;
    let serve_front = spans.named("rpc.serve", "rpc.method", "Front.Start");
    let call_middle = spans.named("rpc.call", "rpc.method", "Middle.Relay");
    let serve_middle = spans.named("rpc.serve", "rpc.method", "Middle.Relay");
    let call_back = spans.named("rpc.call", "rpc.method", "Back.Store");
    let serve_back = spans.named("rpc.serve", "rpc.method", "Back.Store");
    let publish = spans.named("message.publish", "messaging.destination.name", "stored");
    let process = spans.named("message.process", "messaging.destination.name", "stored");
    let chain = [
        (&serve_front, GO_SPAN),
        (&call_middle, serve_front.field("span_id")),
        (&serve_middle, call_middle.field("span_id")),
        (&call_back, serve_middle.field("span_id")),
        (&serve_back, call_back.field("span_id")),
        (&publish, serve_back.field("span_id")),
        (&process, publish.field("span_id")),
    ];
    for (span, parent) in chain {
        assert_eq!(span.field("trace_id"), trace_id, "{span:#?}");
        assert_eq!(span.field("parent_id"), parent, "{span:#?}");
        assert_eq!(span.field("span_id").len(), 16, "{span:#?}");
    }
    assert_eq!(serve_front.field("otel.kind"), "server");
    assert_eq!(call_back.field("otel.kind"), "client");
    assert_eq!(serve_back.field("rpc.response.status_code"), "200");
    assert_eq!(serve_back.field("rpc.service"), "back");
    // The subscriber's context carries its own span on.
    let expected = format!("00-{trace_id}-{}-01", process.field("span_id"));
    assert_eq!(delivered.as_deref(), Some(expected.as_str()));

    // W3C traceparent is continued too; a failure is recorded as one.
    let before = spans.count();
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let rsp = RawConnection::open(flow.middle.local_addr())
        .await
        .post(
            &[
                ("Content-Type", "application/json"),
                ("Micro-Endpoint", "Middle.Missing"),
                ("traceparent", parent),
            ],
            b"{}",
        )
        .await;
    assert_eq!(rsp.status, 404);
    assert_eq!(spans.count(), before, "an unknown endpoint opens no span");
    let rsp = RawConnection::open(flow.middle.local_addr())
        .await
        .post(
            &[
                ("Content-Type", "application/json"),
                ("Micro-Endpoint", "Middle.Relay"),
                ("traceparent", parent),
            ],
            b"{\"text\": 7}",
        )
        .await;
    assert_eq!(rsp.status, 400);
    let failed = spans.named("rpc.serve", "parent_id", "b7ad6b7169203331");
    assert_eq!(failed.field("trace_id"), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(failed.field("rpc.response.status_code"), "400");
    assert_eq!(failed.field("otel.status_code"), "ERROR");

    flow.stop().await;
}

/// With OpenTelemetry's layer installed, the exported spans form the trace:
/// their ids are OpenTelemetry's, their parents and kinds as recorded.
#[cfg(feature = "otel")]
#[tokio::test]
async fn opentelemetry_exports_the_trace_with_its_parents() {
    use opentelemetry::trace::{SpanKind, TracerProvider};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

    /// An exporter that keeps what it is given.
    #[derive(Clone, Debug, Default)]
    struct InMemory(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for InMemory {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    let exported = InMemory::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exported.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let (flow, delivered) = run_flow().await;
    flow.stop().await;
    provider.force_flush().unwrap();

    let spans = exported.0.lock().unwrap().clone();
    let find = |name: &str, kind: SpanKind| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name && s.span_kind == kind).collect();
        assert_eq!(
            found.len(),
            1,
            "one {kind:?} span {name} among {:#?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        found[0].clone()
    };
    let serve_front = find("Front.Start", SpanKind::Server);
    let call_middle = find("Middle.Relay", SpanKind::Client);
    let serve_middle = find("Middle.Relay", SpanKind::Server);
    let call_back = find("Back.Store", SpanKind::Client);
    let serve_back = find("Back.Store", SpanKind::Server);
    let publish = find("stored", SpanKind::Producer);
    let process = find("stored", SpanKind::Consumer);
    let go_parent = u64::from_str_radix(GO_SPAN, 16).unwrap();
    let chain = [
        (&serve_front, go_parent),
        (
            &call_middle,
            u64::from_be_bytes(serve_front.span_context.span_id().to_bytes()),
        ),
        (
            &serve_middle,
            u64::from_be_bytes(call_middle.span_context.span_id().to_bytes()),
        ),
        (
            &call_back,
            u64::from_be_bytes(serve_middle.span_context.span_id().to_bytes()),
        ),
        (
            &serve_back,
            u64::from_be_bytes(call_back.span_context.span_id().to_bytes()),
        ),
        (
            &publish,
            u64::from_be_bytes(serve_back.span_context.span_id().to_bytes()),
        ),
        (&process, u64::from_be_bytes(publish.span_context.span_id().to_bytes())),
    ];
    for (span, parent) in chain {
        assert_eq!(
            format!("{:032x}", span.span_context.trace_id()),
            TRACE_ID,
            "{}",
            span.name
        );
        assert_eq!(
            u64::from_be_bytes(span.parent_span_id.to_bytes()),
            parent,
            "{}",
            span.name
        );
    }
    let expected = format!("00-{TRACE_ID}-{:016x}-01", process.span_context.span_id());
    assert_eq!(delivered.as_deref(), Some(expected.as_str()));
}
