//! Server middleware (`Service::layer`, `Service::subscriber_layer`): a layer
//! sees every handler call whatever the transport (HTTP/1.1, h2 stream, mux,
//! in-process), layers run first-added outermost, a layer may answer without
//! the handler, tower's own layers work as they are, and subscriber layers
//! see every delivered message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::BoxFuture;
use micro::Flags;
use micro::broker::MemoryBroker;
use micro::client::ClientOptions;
use micro::middleware::{FromFnLayer, Next, from_fn};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::server::{HandlerCall, Response, SubscriberCall};
use micro::service::Running;
use tokio::sync::mpsc;

#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    n: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Said {
    n: u32,
    tag: Option<String>,
}

struct Talker {
    heard: mpsc::UnboundedSender<u32>,
}

#[micro::service]
impl Talker {
    #[endpoint]
    async fn say(&self, ctx: &Context, req: Ask) -> Result<Said> {
        Ok(Said {
            n: req.n,
            tag: ctx.get("X-Layer-Tag").map(str::to_owned),
        })
    }

    #[endpoint]
    async fn count(&self, req: Ask, tx: Sender<Said>) -> Result<()> {
        for n in 0..req.n {
            tx.send(Said { n, tag: None }).await?;
        }
        Ok(())
    }

    #[endpoint]
    async fn slow(&self, req: Ask) -> Result<Said> {
        tokio::time::sleep(Duration::from_millis(u64::from(req.n))).await;
        Ok(Said { n: req.n, tag: None })
    }

    #[subscribe(topic = "talk.heard")]
    async fn hear(&self, msg: Ask) -> Result<()> {
        let _ = self.heard.send(msg.n);
        Ok(())
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// What a handler layer made with `from_fn` gives for a call.
type Answer = BoxFuture<'static, Result<Response>>;

/// A layer that writes `name>` into `log` on the way in and `<name` on the
/// way out, with the endpoint, and tags the call's metadata.
fn recording(
    name: &'static str,
    log: Log,
) -> FromFnLayer<impl Fn(HandlerCall, Next<HandlerCall, Response>) -> Answer + Clone + Send + Sync> {
    from_fn(move |mut call: HandlerCall, next: Next<HandlerCall, Response>| {
        let log = Arc::clone(&log);
        Box::pin(async move {
            let endpoint = call.endpoint().name();
            log.lock().unwrap().push(format!("{name}>{endpoint}"));
            let tag = call.context().get("X-Layer-Tag").unwrap_or_default().to_owned();
            *call.context_mut() = call
                .context()
                .clone()
                .with_metadata("X-Layer-Tag", format!("{tag}{name}"));
            let answer = next.run(call).await;
            log.lock().unwrap().push(format!("<{name}"));
            answer
        }) as Answer
    })
}

async fn start(service: Service) -> (Running, Arc<dyn Registry>, mpsc::UnboundedReceiver<u32>) {
    let (heard, rx) = mpsc::unbounded_channel();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let running = service
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .broker(Arc::new(MemoryBroker::new()))
        .handle(Talker { heard })
        .start()
        .await
        .unwrap();
    (running, registry, rx)
}

fn drain(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn layers_see_every_call_on_every_transport_first_added_outermost() {
    let log: Log = Arc::default();
    let service = Service::new("talker")
        .layer(recording("a", Arc::clone(&log)))
        .layer(recording("b", Arc::clone(&log)));
    let (running, registry, _) = start(service).await;
    let nested = ["a>Talker.Say", "b>Talker.Say", "<b", "<a"];

    // HTTP/1.1.
    let http = TalkerClient::new(
        "talker",
        Client::with_options(Arc::clone(&registry), ClientOptions::default().mux(false)),
    );
    let said = http.say(Ask { n: 1 }).await.unwrap();
    assert_eq!(said.tag.as_deref(), Some("ab"), "the outer layer ran first");
    assert_eq!(drain(&log), nested, "http");

    // mux.
    let mux = TalkerClient::new(
        "talker",
        Client::with_options(Arc::clone(&registry), ClientOptions::default().mux(true)),
    );
    assert_eq!(mux.say(Ask { n: 2 }).await.unwrap().tag.as_deref(), Some("ab"));
    assert_eq!(drain(&log), nested, "mux");

    // In-process.
    let table = running.client().options().in_process.clone();
    let local = TalkerClient::new(
        "talker",
        Client::with_options(
            Arc::clone(&registry),
            ClientOptions::default().local_calls(true).in_process(table),
        ),
    );
    assert_eq!(local.say(Ask { n: 3 }).await.unwrap().tag.as_deref(), Some("ab"));
    assert_eq!(drain(&log), nested, "in-process");

    // An h2 stream is one call that lasts as long as the stream.
    let mut ticks = http.count(Ask { n: 3 }).await.unwrap();
    let mut got = Vec::new();
    while let Some(said) = ticks.recv().await.unwrap() {
        got.push(said.n);
    }
    assert_eq!(got, [0, 1, 2]);
    wait_for_entries(&log, 4).await;
    assert_eq!(drain(&log), ["a>Talker.Count", "b>Talker.Count", "<b", "<a"], "stream");

    running.stop().await.unwrap();
}

/// Waits for the stream's layers to finish, which they do once the
/// handler's task has sent its trailers.
async fn wait_for_entries(log: &Log, entries: usize) {
    for _ in 0..200 {
        if log.lock().unwrap().len() >= entries {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the stream's layers did not finish: {:?}", log.lock().unwrap());
}

#[tokio::test]
async fn a_layer_answers_without_the_handler() {
    let refuse = from_fn(|call: HandlerCall, next: Next<HandlerCall, Response>| async move {
        if call.context().get("X-Let-In").is_none() {
            return Err(Error::forbidden("doorman", "no pass"));
        }
        next.run(call).await
    });
    let (running, _, _) = start(Service::new("talker").layer(refuse)).await;
    let talker = TalkerClient::new("talker", running.client());
    let err = talker.say(Ask { n: 1 }).await.unwrap_err();
    assert_eq!((err.code, err.detail.as_str()), (403, "no pass"));
    let ok = talker.say(Ask { n: 1 }).metadata("X-Let-In", "yes").await.unwrap();
    assert_eq!(ok.n, 1);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn towers_limit_shed_and_timeout_layers_work_as_they_are() {
    let service = Service::new("talker")
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(300)))
        .layer(tower::load_shed::LoadShedLayer::new())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1));
    let (running, _, _) = start(service).await;
    let talker = TalkerClient::new("talker", running.client());

    // Once a slow call holds the only slot, another one is shed with a 503.
    let held = tokio::spawn({
        let talker = talker.clone();
        // Until it is admitted: the calls below may hold the slot first.
        async move {
            loop {
                match talker.slow(Ask { n: 250 }).retries(0).await {
                    Err(e) if e.code == 503 => continue,
                    answer => break answer,
                }
            }
        }
    });
    let shed = loop {
        match talker.slow(Ask { n: 0 }).retries(0).await {
            Ok(_) => assert!(!held.is_finished(), "no call was shed while the slow one ran"),
            Err(e) => break e,
        }
    };
    assert_eq!(shed.code, 503, "{shed:?}");
    assert_eq!(held.await.unwrap().unwrap().n, 250);

    // The slot is free again; the timeout layer turns a slow call into a 408.
    let late = talker.slow(Ask { n: 1_000 }).retries(0).await.unwrap_err();
    assert_eq!(late.code, 408, "{late:?}");
    assert_eq!(talker.slow(Ask { n: 1 }).await.unwrap().n, 1);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn subscriber_layers_see_every_message_first_added_outermost() {
    let log: Log = Arc::default();
    let layer = |name: &'static str| {
        let log = Arc::clone(&log);
        from_fn(move |call: SubscriberCall, next: Next<SubscriberCall, ()>| {
            let log = Arc::clone(&log);
            async move {
                log.lock()
                    .unwrap()
                    .push(format!("{name}>{}@{}", call.subscriber().name(), call.event().topic));
                let out = next.run(call).await;
                log.lock().unwrap().push(format!("<{name}"));
                out
            }
        })
    };
    // The second layer drops messages whose n is odd.
    let odd = from_fn(|call: SubscriberCall, next: Next<SubscriberCall, ()>| async move {
        let body: Ask = serde_json::from_slice(&call.event().message.body).unwrap();
        if body.n % 2 == 1 {
            return Ok(());
        }
        next.run(call).await
    });
    let service = Service::new("talker")
        .subscriber_layer(layer("a"))
        .subscriber_layer(odd)
        .subscriber_layer(layer("b"));
    let (running, _, mut heard) = start(service).await;
    let client = running.client();
    for n in 0..4 {
        client.publish("talk.heard", &Ask { n }).await.unwrap();
    }
    assert_eq!(heard.recv().await, Some(0));
    assert_eq!(heard.recv().await, Some(2));
    wait_for_entries(&log, 12).await;
    let log = drain(&log);
    assert_eq!(
        log.iter().filter(|e| e.starts_with("a>Talker.Hear@talk.heard")).count(),
        4
    );
    assert_eq!(log.iter().filter(|e| e.starts_with("b>")).count(), 2, "{log:?}");
    running.stop().await.unwrap();
}
