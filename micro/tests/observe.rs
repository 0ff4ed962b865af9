//! What a service tells about itself: `/metrics` scraped after known
//! traffic gives exact counts (panics included, R07); Go Micro's
//! `Debug.Health` and `Debug.Stats`; the `/health` probes, which follow the
//! registration and the broker. (Load shedding, R11, is `overload.rs`.)

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use micro::Flags;
use micro::broker::MemoryBroker;
use micro::observe::debug::{HealthResponse, StatsResponse};
use micro::observe::{Check, Observe};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::service::Running;
use support::RawConnection;

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Done {
    n: u64,
}

#[derive(Default)]
struct Worker {
    delivered: AtomicUsize,
}

#[micro::service]
impl Worker {
    #[endpoint]
    async fn work(&self, req: Job) -> Result<Done> {
        match req.n % 10 {
            0 => panic!("job {} blew up", req.n),
            1 => Err(Error::conflict("worker", "taken")),
            _ => Ok(Done { n: req.n }),
        }
    }

    #[endpoint]
    async fn slow(&self, req: Job) -> Result<Done> {
        tokio::time::sleep(Duration::from_millis(req.n)).await;
        Ok(Done { n: req.n })
    }

    #[subscribe(topic = "jobs")]
    async fn take(&self, job: Job) -> Result<()> {
        self.delivered.fetch_add(1, Ordering::SeqCst);
        if job.n.is_multiple_of(2) {
            panic!("job {} cannot be taken", job.n);
        }
        Ok(())
    }
}

async fn start(observe: Observe) -> (Running, Arc<Worker>) {
    let worker = Arc::new(Worker::default());
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let running = Service::new("worker")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(registry)
        .broker(Arc::new(MemoryBroker::new()))
        .observe(observe)
        .handle_arc(Arc::clone(&worker) as Arc<dyn micro::server::Handler>)
        .start()
        .await
        .unwrap();
    (running, worker)
}

/// R07 with metrics: 1,000 calls over 8 connections, one in ten panicking,
/// one in ten failing; and a subscriber that panics on every other message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_failures_and_panics_exactly() {
    let mut observe = Observe::default();
    observe.go_micro_names = true;
    let (running, worker) = start(observe).await;
    let addr = running.local_addr();
    let workers = (0..8u64).map(|w| {
        tokio::spawn(async move {
            let mut conn = RawConnection::open(addr).await;
            let mut statuses = BTreeMap::<u16, u32>::new();
            for i in 0..125u64 {
                let body = format!(r#"{{"n":{}}}"#, w * 125 + i);
                let rsp = conn
                    .post(
                        &[("Content-Type", "application/json"), ("Micro-Endpoint", "Worker.Work")],
                        body.as_bytes(),
                    )
                    .await;
                *statuses.entry(rsp.status).or_default() += 1;
            }
            statuses
        })
    });
    let mut statuses = BTreeMap::<u16, u32>::new();
    for worker in workers.collect::<Vec<_>>() {
        for (status, n) in worker.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    assert_eq!(statuses, BTreeMap::from([(200, 800), (409, 100), (500, 100)]));

    let client = running.client();
    for n in 0..10 {
        client.publish("jobs", &Job { n }).await.unwrap();
    }
    support::eventually("ten deliveries", Duration::from_secs(5), async || {
        worker.delivered.load(Ordering::SeqCst) == 10
    })
    .await;

    // Calls made through the service's client are counted on the client side.
    for n in 2..5 {
        let _: Done = client.call("worker", "Worker.Work", Job { n }).await.unwrap();
    }
    let err = client
        .call::<_, Done>("worker", "Worker.Work", Job { n: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.code, 409);

    let samples = support::scrape(addr).await;
    let labels = r#"rpc_service="worker",rpc_method="Worker.Work""#;
    for (status, count) in [(200, 3.0), (409, 1.0)] {
        let series =
            format!(r#"rpc_client_call_duration_seconds_count{{{labels},rpc_response_status_code="{status}"}}"#);
        assert_eq!(support::sample(&samples, &series), count, "{series}");
    }
    assert_eq!(
        support::sample(&samples, &format!("rpc_client_calls_in_flight{{{labels}}}")),
        0.0
    );
    for (status, count) in [(200, 803.0), (409, 101.0), (500, 100.0)] {
        let series =
            format!(r#"rpc_server_call_duration_seconds_count{{{labels},rpc_response_status_code="{status}"}}"#);
        assert_eq!(support::sample(&samples, &series), count, "{series}");
    }
    assert_eq!(
        support::sample(&samples, &format!("rpc_server_calls_in_flight{{{labels}}}")),
        0.0
    );
    assert_eq!(
        support::sample(&samples, r#"micro_panics_total{endpoint="Worker.Work"}"#),
        100.0
    );
    assert_eq!(
        support::sample(&samples, r#"micro_panics_total{endpoint="Worker.Take"}"#),
        5.0
    );
    for outcome in ["ok", "error"] {
        let series = format!(
            r#"micro_subscriber_deliveries_total{{topic="jobs",subscriber="Worker.Take",outcome="{outcome}"}}"#
        );
        assert_eq!(support::sample(&samples, &series), 5.0, "{series}");
    }
    // Go Micro's names, for dashboards built for Go services.
    let go = r#"service="worker",endpoint="Worker.Work""#;
    assert_eq!(
        support::sample(&samples, &format!(r#"micro_request_total{{{go},status="success"}}"#)),
        803.0
    );
    assert_eq!(
        support::sample(&samples, &format!(r#"micro_request_total{{{go},status="fail"}}"#)),
        201.0
    );
    assert_eq!(
        support::sample(&samples, &format!("micro_request_duration_seconds_count{{{go}}}")),
        1004.0
    );

    // Debug.Stats counts the same calls.
    let stats: StatsResponse = client
        .call("worker", "Debug.Stats", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!((stats.requests, stats.errors), (1004, 201));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn go_micros_debug_endpoints_answer() {
    let (running, _) = start(Observe::default()).await;
    let client = running.client();
    let health: HealthResponse = client
        .call("worker", "Debug.Health", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(health.status, "ok");
    let _: Done = client.call("worker", "Worker.Work", Job { n: 2 }).await.unwrap();
    let stats: StatsResponse = client
        .call("worker", "Debug.Stats", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(stats.uptime, stats.timestamp - stats.started);
    assert!(stats.memory > 0 && stats.threads > 0, "{stats:?}");
    // Debug.Health itself is a call served.
    assert_eq!((stats.requests, stats.errors), (2, 0));
    assert!(running.record().endpoints.iter().any(|e| e.name == "Debug.Stats"));
    running.stop().await.unwrap();

    // Off, there is neither the Debug service nor /metrics.
    let (running, _) = start(Observe::none()).await;
    let err = running
        .client()
        .call::<_, HealthResponse>("worker", "Debug.Health", serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, 404);
    let rsp = RawConnection::open(running.local_addr()).await.get("/metrics").await;
    assert_eq!(rsp.status, 405);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn readiness_follows_registration_and_the_checks() {
    let failing = Arc::new(AtomicUsize::new(1));
    let check = Check::new("database", {
        let failing = Arc::clone(&failing);
        move || {
            let failing = failing.load(Ordering::SeqCst) == 1;
            async move {
                if failing {
                    Err("no connection".to_owned())
                } else {
                    Ok(())
                }
            }
        }
    });
    let mut observe = Observe::default();
    observe.checks.push(check);
    observe
        .checks
        .push(Check::new("cache", || async { Err("cold".to_owned()) }).non_critical());
    let (running, _) = start(observe).await;
    let addr = running.local_addr();
    let mut conn = RawConnection::open(addr).await;

    let live = conn.get("/health/live").await;
    assert_eq!((live.status, live.body_text().as_str()), (200, r#"{"status":"up"}"#));

    let ready = conn.get("/health/ready").await;
    assert_eq!(ready.status, 503);
    let report: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(report["status"], "down");
    let checks = report["checks"].as_array().unwrap();
    let by_name = |name: &str| checks.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(by_name("registry")["status"], "up");
    assert_eq!(by_name("broker")["status"], "up");
    assert_eq!(by_name("database")["error"], "no connection");
    assert_eq!(by_name("cache")["status"], "down");

    failing.store(0, Ordering::SeqCst);
    let ready = conn.get("/health").await;
    assert_eq!(ready.status, 200, "a non-critical failure does not fail readiness");
    assert_eq!(running.health().ready().await.status, "up");

    // A stopping service is no longer ready.
    let health = running.health().clone();
    running.stop().await.unwrap();
    let report = health.ready().await;
    assert_eq!(report.status, "down");
}

/// Readiness follows the broker: a NATS server of the test's own is
/// stopped (503) and started again on the same port (200 once the client
/// has reconnected).
#[cfg(feature = "nats")]
#[tokio::test]
#[ignore = "needs nats-server and a loopback-only namespace: netns-run --services nats"]
async fn readiness_goes_down_with_the_broker_and_comes_back_with_it() {
    use std::process::{Command, Stdio};

    std::env::var("MICRO_TEST_NATS_URL").expect("MICRO_TEST_NATS_URL: run inside `netns-run --services nats`");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nats = |port: u16| {
        Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on the PATH")
    };
    let mut server = nats(port);
    let url = format!("nats://127.0.0.1:{port}");
    support::eventually("nats-server to listen", Duration::from_secs(10), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;

    let running = Service::new("worker")
        .flags(Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::new(MemoryRegistry::new()))
        .broker(Arc::new(micro::broker::NatsBroker::new(&url)))
        .handle(Worker::default())
        .start()
        .await
        .unwrap();
    let addr = running.local_addr();
    let ready = async || RawConnection::open(addr).await.get("/health/ready").await;
    assert_eq!(ready().await.status, 200);

    server.kill().unwrap();
    server.wait().unwrap();
    support::eventually(
        "readiness to fail with the broker",
        Duration::from_secs(10),
        async || {
            let rsp = ready().await;
            rsp.status == 503 && rsp.body_text().contains(r#""name":"broker","status":"down""#)
        },
    )
    .await;
    assert_eq!(RawConnection::open(addr).await.get("/health/live").await.status, 200);

    let mut server = nats(port);
    support::eventually(
        "readiness to come back with the broker",
        Duration::from_secs(20),
        async || ready().await.status == 200,
    )
    .await;
    running.stop().await.unwrap();
    server.kill().unwrap();
    let _ = server.wait();
}
