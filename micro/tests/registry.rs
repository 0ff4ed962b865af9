//! The registry conformance suite, run against every implementation, and
//! mDNS discovery between processes. Everything here runs inside
//! `netns-run`: mDNS multicasts.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use micro::registry::{
    Action, Endpoint, MdnsOptions, MdnsRegistry, MemoryRegistry, Node, RegisterOptions, Registry, RegistryError,
    Service, Value, WatchEvent, WatchOptions, Watcher,
};

/// A name no other test uses, so parallel tests on one network do not meet.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn node(service: &str, n: u16) -> Node {
    Node {
        id: format!("{service}-node-{n}"),
        address: format!("127.0.0.1:{}", 40000 + n),
        metadata: BTreeMap::from([
            ("protocol".to_owned(), "mucp".to_owned()),
            ("n".to_owned(), n.to_string()),
        ]),
    }
}

fn service(name: &str, nodes: Vec<Node>) -> Service {
    Service {
        name: name.to_owned(),
        version: "1.0.0".to_owned(),
        metadata: BTreeMap::new(),
        endpoints: vec![Endpoint {
            name: "Greeter.Hello".to_owned(),
            request: Some(Value {
                name: "Request".to_owned(),
                ty: "Request".to_owned(),
                values: vec![Value {
                    name: "name".to_owned(),
                    ty: "string".to_owned(),
                    values: Vec::new(),
                }],
            }),
            response: Some(Value::named("Response")),
            metadata: BTreeMap::from([("description".to_owned(), "Says hello.".to_owned())]),
        }],
        nodes,
    }
}

async fn next_event(watcher: &mut Watcher, name: &str, action: Action) -> WatchEvent {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, watcher.next())
            .await
            .unwrap_or_else(|_| panic!("no {action:?} event for {name} within 5 s"))
            .expect("watch open")
            .expect("watch event");
        if event.service.name == name && event.action == action {
            return event;
        }
    }
}

async fn nodes_of(registry: &dyn Registry, name: &str) -> Vec<String> {
    match registry.get_service(name).await {
        Ok(services) => {
            let mut ids: Vec<String> = services
                .iter()
                .flat_map(|s| s.nodes.iter().map(|n| n.id.clone()))
                .collect();
            ids.sort();
            ids
        }
        Err(RegistryError::NotFound { .. }) => Vec::new(),
        Err(e) => panic!("lookup failed: {e}"),
    }
}

/// What every registry must do.
async fn conformance(registry: Arc<dyn Registry>) {
    let name = unique("conform");
    let mut watcher = registry.watch(WatchOptions::service(name.clone())).await.unwrap();
    let mut all = registry.watch(WatchOptions::default()).await.unwrap();

    let first = service(&name, vec![node(&name, 1), node(&name, 2)]);
    registry
        .register(&first, RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    next_event(&mut watcher, &name, Action::Create).await;
    next_event(&mut all, &name, Action::Create).await;

    let found = registry.get_service(&name).await.unwrap();
    assert_eq!(found.len(), 1, "one version");
    let record = &found[0];
    assert_eq!(
        (record.name.as_str(), record.version.as_str()),
        (name.as_str(), "1.0.0")
    );
    assert_eq!(
        record.endpoints, first.endpoints,
        "endpoints survive the registry's encoding"
    );
    let mut nodes = record.nodes.clone();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(nodes, first.nodes, "nodes, addresses and metadata survive");
    let listed = registry.list_services().await.unwrap();
    assert!(listed.iter().any(|s| s.name == name), "listed");

    // Registering again renews without duplicating.
    registry
        .register(&first, RegisterOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(nodes_of(registry.as_ref(), &name).await.len(), 2);

    registry
        .deregister(&service(&name, vec![node(&name, 1)]))
        .await
        .unwrap();
    let gone = next_event(&mut watcher, &name, Action::Delete).await;
    assert_eq!(gone.service.nodes[0].id, node(&name, 1).id);
    assert_eq!(nodes_of(registry.as_ref(), &name).await, [node(&name, 2).id]);

    registry
        .deregister(&service(&name, vec![node(&name, 2)]))
        .await
        .unwrap();
    next_event(&mut watcher, &name, Action::Delete).await;
    match registry.get_service(&name).await {
        Err(RegistryError::NotFound { service, hint }) => {
            assert_eq!(service, name);
            assert!(!hint.is_empty());
        }
        other => panic!("expected not found, got {other:?}"),
    }

    // A watch filtered on another service hears nothing of this one.
    let other = unique("other");
    let mut filtered = registry.watch(WatchOptions::service(other.clone())).await.unwrap();
    registry
        .register(&service(&name, vec![node(&name, 3)]), RegisterOptions::default())
        .await
        .unwrap();
    registry
        .register(&service(&other, vec![node(&other, 4)]), RegisterOptions::default())
        .await
        .unwrap();
    let event = next_event(&mut filtered, &other, Action::Create).await;
    assert_eq!(event.service.name, other);
    registry
        .deregister(&service(&name, vec![node(&name, 3)]))
        .await
        .unwrap();
    registry
        .deregister(&service(&other, vec![node(&other, 4)]))
        .await
        .unwrap();
}

#[tokio::test]
async fn memory_registry_conforms() {
    conformance(Arc::new(MemoryRegistry::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_registry_conforms() {
    conformance(Arc::new(MdnsRegistry::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_registries_in_one_process_see_each_other() {
    let publisher = MdnsRegistry::new();
    let browser = MdnsRegistry::new();
    let name = unique("pair");
    publisher
        .register(&service(&name, vec![node(&name, 1)]), RegisterOptions::default())
        .await
        .unwrap();
    support::eventually("the browser to find the node", Duration::from_secs(5), async || {
        !nodes_of(&browser, &name).await.is_empty()
    })
    .await;
    assert_eq!(nodes_of(&browser, &name).await, [node(&name, 1).id]);
    publisher
        .deregister(&service(&name, vec![node(&name, 1)]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_not_found_says_what_was_searched_and_what_to_try() {
    let registry = MdnsRegistry::with_options(MdnsOptions::default().interfaces(["lo"]));
    let err = registry.get_service("no-such-service").await.unwrap_err();
    let text = err.to_string();
    for expected in [
        "no-such-service",
        "_micro._tcp.local.",
        "lo 127.0.0.1",
        "--mdns_interfaces",
        "--registry etcd",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from: {text}");
    }
}

/// Registers a node over mDNS in a child process until its stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the mDNS process tests as a child process"]
async fn child_mdns_publisher() {
    let Ok(name) = std::env::var("MICRO_TEST_CHILD_SERVICE") else {
        return;
    };
    let registry = MdnsRegistry::new();
    let record = service(&name, vec![node(&name, 7)]);
    registry.register(&record, RegisterOptions::default()).await.unwrap();
    println!("REGISTERED");
    let mut line = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
    if std::env::var_os("MICRO_TEST_CHILD_NO_GOODBYE").is_none() {
        registry.deregister(&record).await.unwrap();
    }
    println!("DEREGISTERED");
}

fn publisher(name: &str) -> support::Child {
    support::Child::spawn("child_mdns_publisher", &[("MICRO_TEST_CHILD_SERVICE", name)])
}

/// When the child printed `line`.
fn printed(child: &support::Child, line: &str) -> Instant {
    child.line_starting(line);
    Instant::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_discover_each_other_and_goodbyes_remove_nodes_at_once() {
    let name = unique("twoproc");
    let browser = MdnsRegistry::new();
    let mut watcher = browser.watch(WatchOptions::service(name.clone())).await.unwrap();
    let mut child = publisher(&name);
    let registered = tokio::task::block_in_place(|| printed(&child, "REGISTERED"));
    next_event(&mut watcher, &name, Action::Create).await;
    let seen_after = registered.elapsed();
    assert!(seen_after < Duration::from_secs(1), "visible after {seen_after:?}");
    let found = browser.get_service(&name).await.unwrap();
    assert_eq!(found[0].nodes[0].address, "127.0.0.1:40007");
    assert_eq!(found[0].endpoints[0].name, "Greeter.Hello");

    child.close_stdin();
    let stopped = tokio::task::block_in_place(|| printed(&child, "DEREGISTERED"));
    next_event(&mut watcher, &name, Action::Delete).await;
    // RFC 6762 §10.1: a goodbye (TTL 0) is honoured one second after it arrives.
    let gone_after = stopped.elapsed();
    assert!(
        gone_after < Duration::from_secs(2),
        "removed {gone_after:?} after the goodbye"
    );
    assert!(nodes_of(&browser, &name).await.is_empty());
    assert!(child.process.wait().unwrap().success());
}

/// A browser that starts while the node's records are inside the
/// one-second multicast rate limit (RFC 6762 §6: here, 1.6 s after start-up,
/// half a second after the second announcement) gets no answer to its first
/// query; its first lookup must still find the node, through the answer to
/// the browse's second query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_browser_finds_a_node_that_registered_earlier() {
    let name = unique("earlier");
    let mut child = publisher(&name);
    tokio::task::block_in_place(|| printed(&child, "REGISTERED"));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let browser = MdnsRegistry::new();
    let found = browser.get_service(&name).await.expect("found on the first lookup");
    assert_eq!(found[0].nodes[0].id, node(&name, 7).id);
    child.close_stdin();
    assert!(child.process.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_dropped_once_reported_unreachable() {
    let name = unique("killed");
    let browser = MdnsRegistry::new();
    let mut child = publisher(&name);
    tokio::task::block_in_place(|| printed(&child, "REGISTERED"));
    support::eventually("the node to be discovered", Duration::from_secs(5), async || {
        !nodes_of(&browser, &name).await.is_empty()
    })
    .await;
    child.process.kill().unwrap();
    child.process.wait().unwrap();
    assert_eq!(nodes_of(&browser, &name).await.len(), 1, "no goodbye: still listed");
    let dead = node(&name, 7);
    browser.report_unreachable(&name, &dead);
    support::eventually(
        "the node to be dropped after the report",
        Duration::from_secs(5),
        async || nodes_of(&browser, &name).await.is_empty(),
    )
    .await;
}

#[cfg(feature = "etcd")]
mod etcd {
    use super::*;
    use micro::registry::EtcdRegistry;

    fn endpoints() -> Option<String> {
        std::env::var("MICRO_TEST_ETCD_ENDPOINTS").ok()
    }

    #[tokio::test]
    #[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_registry_conforms() {
        let endpoints = endpoints().expect("MICRO_TEST_ETCD_ENDPOINTS");
        conformance(Arc::new(EtcdRegistry::new([endpoints]))).await;
    }

    #[tokio::test]
    #[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_keys_and_values_are_go_micros() {
        let endpoints = endpoints().expect("MICRO_TEST_ETCD_ENDPOINTS");
        let registry = EtcdRegistry::new([endpoints.as_str()]);
        let name = unique("layout");
        let record = service(&name, vec![node(&name, 1)]);
        registry
            .register(&record, RegisterOptions::ttl(Duration::from_secs(30)))
            .await
            .unwrap();
        let mut raw = etcd_client::Client::connect([endpoints.as_str()], None).await.unwrap();
        let key = format!("/micro/registry/{name}/{name}-node-1");
        let found = raw.get(key.as_str(), None).await.unwrap();
        let kv = found.kvs().first().expect("the node's key");
        assert!(kv.lease() > 0, "attached to a lease");
        let stored: Service = serde_json::from_slice(kv.value()).unwrap();
        assert_eq!(stored, record, "the value is the JSON of a one-node service");
        let json: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
        assert_eq!(json["nodes"][0]["address"], "127.0.0.1:40001");

        // A Go Micro service registered by the Go plugin is listed too.
        let go = format!(
            r#"{{"name":"{name}-go","version":"latest","metadata":null,"endpoints":null,"nodes":[{{"metadata":{{"protocol":"mucp"}},"id":"go-1","address":"10.1.1.1:9000"}}]}}"#
        );
        raw.put(format!("/micro/registry/{name}-go/go-1"), go, None)
            .await
            .unwrap();
        let found = registry.get_service(&format!("{name}-go")).await.unwrap();
        assert_eq!(found[0].nodes[0].address, "10.1.1.1:9000");
        registry.deregister(&record).await.unwrap();
        raw.delete(format!("/micro/registry/{name}-go/go-1"), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    #[ignore = "needs etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_registrations_expire_with_their_lease_unless_renewed() {
        let registry = EtcdRegistry::new([endpoints().expect("MICRO_TEST_ETCD_ENDPOINTS")]);
        let name = unique("lease");
        let renewed = service(&name, vec![node(&name, 1)]);
        let lapsed = service(&name, vec![node(&name, 2)]);
        let ttl = RegisterOptions::ttl(Duration::from_secs(2));
        registry.register(&renewed, ttl.clone()).await.unwrap();
        registry.register(&lapsed, ttl.clone()).await.unwrap();
        assert_eq!(nodes_of(&registry, &name).await.len(), 2);
        // Renewing one node at every look, until the other's lease lapses.
        support::eventually("the lapsed lease to expire", Duration::from_secs(8), async || {
            registry.register(&renewed, ttl.clone()).await.unwrap();
            nodes_of(&registry, &name).await.len() < 2
        })
        .await;
        assert_eq!(
            nodes_of(&registry, &name).await,
            [node(&name, 1).id],
            "the renewed node stays"
        );
        registry.deregister(&renewed).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_etcd_is_reported_with_its_address() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let registry = EtcdRegistry::new([dead.to_string()]);
        let err = registry.get_service("anything").await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("registry etcd unavailable") && text.contains(&dead.to_string()),
            "{text}"
        );
    }
}
