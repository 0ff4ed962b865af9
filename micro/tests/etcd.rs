//! The etcd registry under outages, with a real etcd process the test owns
//! (RELIABILITY R14, R16). Needs the `etcd` feature and the etcd binary
//! (`netns-run --services etcd` installs it).
#![cfg(feature = "etcd")]

mod etcd_server;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_server::EtcdServer;
use micro::Flags;
use micro::prelude::*;
use micro::registry::{EtcdRegistry, Registry};

#[derive(Serialize, Deserialize)]
struct Ping {}

#[derive(Debug, Serialize, Deserialize)]
struct Pong {
    ok: bool,
}

struct Pinger;

#[micro::service]
impl Pinger {
    #[endpoint(idempotent)]
    async fn ping(&self, _req: Ping) -> Result<Pong> {
        Ok(Pong { ok: true })
    }
}

async fn node_key_present(endpoint: &str, key: &str) -> bool {
    let Ok(mut raw) = etcd_client::Client::connect([endpoint], None).await else {
        return false;
    };
    raw.get(key, None).await.is_ok_and(|r| !r.kvs().is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
async fn calls_continue_from_the_cache_while_etcd_is_down_and_registration_recovers() {
    let mut etcd = EtcdServer::start();
    let endpoint = etcd.endpoint();
    let registry: Arc<dyn Registry> = Arc::new(EtcdRegistry::new([endpoint.as_str()]));
    let running = Service::new("pinger")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .register_ttl(Duration::from_secs(4))
        .register_interval(Duration::from_secs(1))
        .handle(Pinger)
        .start()
        .await
        .unwrap();
    let key = format!("/micro/registry/pinger/{}", running.record().nodes[0].id);
    let client = Client::new(Arc::new(EtcdRegistry::new([endpoint.as_str()])));
    let pong: Pong = client.call("pinger", "Pinger.Ping", Ping {}).await.unwrap();
    assert!(pong.ok);

    // R14 (a): a key deleted behind the service's back is written again.
    let mut raw = etcd_client::Client::connect([endpoint.as_str()], None).await.unwrap();
    raw.delete(key.as_str(), None).await.unwrap();
    support::eventually(
        "the deleted key to come back",
        Duration::from_millis(2500),
        async || node_key_present(&endpoint, &key).await,
    )
    .await;

    // R16: etcd goes away; calls to the known node go on from the cache.
    etcd.kill();
    let down = Instant::now();
    let mut calls = 0;
    while down.elapsed() < Duration::from_secs(3) {
        let pong: Pong = client.call("pinger", "Pinger.Ping", Ping {}).await.unwrap();
        assert!(pong.ok);
        calls += 1;
    }
    assert!(calls > 10);
    let err = client
        .call::<_, Pong>("unknown", "Unknown.Ping", Ping {})
        .await
        .unwrap_err();
    assert!(err.detail.contains("registry etcd unavailable"), "{}", err.detail);
    assert!(err.detail.contains(&endpoint), "{}", err.detail);

    // Back up: the node is registered again within an interval or so.
    etcd.spawn();
    support::eventually(
        "the node to be registered again after etcd came back",
        Duration::from_secs(6),
        async || node_key_present(&endpoint, &key).await,
    )
    .await;
    let pong: Pong = client.call("pinger", "Pinger.Ping", Ping {}).await.unwrap();
    assert!(pong.ok);
    running.stop().await.unwrap();
    assert!(!node_key_present(&endpoint, &key).await, "deregistered on stop");
}
