//! The client's circuit breaker (`client::breaker`): a node failing again
//! and again stops getting attempts for the cooldown, then gets one probe.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use micro::Flags;
use micro::client::ClientOptions;
use micro::client::breaker::CircuitBreakerLayer;
use micro::client::retry::retry_always;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::service::Running;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {}

#[derive(Debug, Serialize, Deserialize)]
struct Pong {}

struct Flaky {
    fail: bool,
    calls: Arc<AtomicUsize>,
}

#[micro::service]
impl Flaky {
    #[endpoint]
    async fn ping(&self, _req: Ping) -> Result<Pong> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(Error::service_unavailable("flaky", "down for maintenance"));
        }
        Ok(Pong {})
    }
}

async fn node(registry: &Arc<dyn Registry>, fail: bool) -> (Running, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let running = Service::new("flaky")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(registry))
        .handle(Flaky {
            fail,
            calls: Arc::clone(&calls),
        })
        .start()
        .await
        .unwrap();
    (running, calls)
}

#[tokio::test]
async fn a_failing_node_is_cut_off_for_the_cooldown_then_probed_once() {
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let (bad, bad_calls) = node(&registry, true).await;
    let (good, good_calls) = node(&registry, false).await;
    let cooldown = Duration::from_secs(1);
    let client = Client::with_options(
        Arc::clone(&registry),
        ClientOptions::default()
            .retry(retry_always)
            .layer(CircuitBreakerLayer::new(3, cooldown)),
    );
    let flaky = FlakyClient::new("flaky", client);
    let ping = async || {
        for _ in 0..30 {
            flaky.ping(Ping {}).await.unwrap();
        }
    };

    // The calls that try the failing node first go on to the good one;
    // after three failures the failing node gets no more attempts.
    ping().await;
    assert_eq!(bad_calls.load(Ordering::SeqCst), 3);
    assert_eq!(good_calls.load(Ordering::SeqCst), 30);

    // After the cooldown, one probe; it fails, and the circuit opens again.
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    ping().await;
    assert_eq!(bad_calls.load(Ordering::SeqCst), 4);
    assert_eq!(good_calls.load(Ordering::SeqCst), 60);

    bad.stop().await.unwrap();
    good.stop().await.unwrap();
}
