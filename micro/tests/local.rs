//! In-process calls (`ClientOptions::local_calls`): a client calling a node
//! served by its own process hands the request value to the handler, and
//! nothing is encoded when both sides use the same types.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use micro::Flags;
use micro::client::ClientOptions;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, RegisterOptions, Registry};
use micro::service::Running;
use serde::Serializer;

thread_local! {
    /// How many times a `Counted` value was serialized on this thread: each
    /// test runs on its own thread, and a call encodes its request on the
    /// caller's.
    static SERIALIZED: Cell<usize> = const { Cell::new(0) };
}

fn serialized() -> usize {
    SERIALIZED.get()
}

/// A request that counts its serializations.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Counted {
    name: String,
}

impl Serialize for Counted {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        SERIALIZED.set(SERIALIZED.get() + 1);
        #[derive(Serialize)]
        struct Plain<'a> {
            name: &'a str,
        }
        Plain { name: &self.name }.serialize(serializer)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Echoed {
    name: String,
    endpoint: Option<String>,
    user: Option<String>,
    /// `Host`, which only the HTTP transport carries.
    host: Option<String>,
}

/// The same shapes as `Counted` and `Echoed`, as another crate might declare them.
#[derive(Debug, Serialize)]
struct TheirRequest {
    name: String,
}

#[derive(Debug, Deserialize)]
struct TheirResponse {
    name: String,
    endpoint: Option<String>,
}

struct Echo;

#[micro::service]
impl Echo {
    #[endpoint]
    async fn echo(&self, ctx: &Context, req: Counted) -> Result<Echoed> {
        Ok(Echoed {
            name: req.name,
            endpoint: ctx.endpoint().map(str::to_owned),
            user: ctx.get("X-User").map(str::to_owned),
            host: ctx.get("Host").map(str::to_owned),
        })
    }

    #[endpoint]
    async fn slow(&self, req: Counted) -> Result<Echoed> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Err(Error::internal_server_error(
            "echo",
            format!("{} should have timed out", req.name),
        ))
    }

    #[endpoint]
    async fn refuse(&self, _req: Counted) -> Result<Echoed> {
        Err(Error::forbidden("echo", "not you"))
    }
}

async fn start() -> (Running, Arc<dyn Registry>) {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let running = Service::new("echo")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .handle(Echo)
        .start()
        .await
        .unwrap();
    (running, registry)
}

/// A client sharing the service's table of servers it may call in place.
fn client(running: &Running, registry: &Arc<dyn Registry>, local: bool) -> Client {
    let table = running.client().options().in_process.clone();
    Client::with_options(
        Arc::clone(registry),
        ClientOptions::default().local_calls(local).in_process(table),
    )
}

#[tokio::test]
async fn local_calls_skip_the_wire_and_the_codec_when_types_match() {
    let (running, registry) = start().await;
    let request = Counted { name: "alice".into() };

    // Over the wire the request is serialized, and the transport's metadata is seen.
    let wire = EchoClient::new("echo", client(&running, &registry, false));
    let before = serialized();
    let rsp = wire.echo(request.clone()).metadata("X-User", "u1").await.unwrap();
    assert!(serialized() > before, "the wire call serialized the request");
    assert_eq!(rsp.user.as_deref(), Some("u1"));

    // In place: same answer, nothing serialized, no transport headers.
    let local = EchoClient::new("echo", client(&running, &registry, true));
    let before = serialized();
    let rsp = local.echo(request.clone()).metadata("X-User", "u2").await.unwrap();
    assert_eq!(serialized(), before, "an in-process call encodes nothing");
    assert_eq!(
        rsp,
        Echoed {
            name: "alice".into(),
            endpoint: Some("Echo.Echo".into()),
            user: Some("u2".into()),
            host: None,
        }
    );

    // Types that differ on either side go through the codec and still arrive.
    let rsp: TheirResponse = client(&running, &registry, true)
        .call("echo", "Echo.Echo", TheirRequest { name: "bob".into() })
        .await
        .unwrap();
    assert_eq!(rsp.name, "bob");
    assert_eq!(rsp.endpoint.as_deref(), Some("Echo.Echo"));

    // Errors keep their code; the deadline holds; unknown endpoints are 404.
    let err = local.refuse(request.clone()).await.unwrap_err();
    assert_eq!((err.code, err.detail.as_str()), (403, "not you"));
    let started = std::time::Instant::now();
    let err = local
        .slow(request.clone())
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err.code, 408, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = client(&running, &registry, true)
        .call::<_, Echoed>("echo", "Echo.Missing", request.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code, 404, "{err}");

    // Once the server stops, calls no longer run in place: the registry
    // still lists the node, and the network call to it fails.
    let record = registry.get_service("echo").await.unwrap().remove(0);
    let table = running.client().options().in_process.clone();
    running.stop().await.unwrap();
    registry.register(&record, RegisterOptions::default()).await.unwrap();
    let err = EchoClient::new(
        "echo",
        Client::with_options(
            Arc::clone(&registry),
            ClientOptions::default().local_calls(true).retries(0).in_process(table),
        ),
    )
    .echo(request)
    .await
    .unwrap_err();
    assert_eq!(err.code, 500, "a stopped server is not called in place: {err}");
}

#[tokio::test]
async fn only_clients_sharing_the_services_table_call_it_in_place() {
    let (running, registry) = start().await;
    let request = Counted { name: "carol".into() };
    // A client sharing the service's table calls it in place. (Both clients
    // here would otherwise call over HTTP, whose Host header the handler sees.)
    let own = Client::with_options(
        Arc::clone(&registry),
        ClientOptions::default()
            .local_calls(true)
            .mux(false)
            .in_process(running.client().options().in_process.clone()),
    );
    let rsp = EchoClient::new("echo", own).echo(request.clone()).await.unwrap();
    assert_eq!(rsp.host, None, "the call sharing the table went over HTTP");
    // A client with a table of its own does not know the server: the call
    // goes over the wire, as it would to a server in another process.
    let stranger = Client::with_options(
        Arc::clone(&registry),
        ClientOptions::default().local_calls(true).mux(false),
    );
    let rsp = EchoClient::new("echo", stranger).echo(request).await.unwrap();
    assert!(rsp.host.is_some(), "a client not sharing the table called in place");
    running.stop().await.unwrap();
}
