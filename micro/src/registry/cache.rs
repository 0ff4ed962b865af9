//! A registry cache fed by watch events, so clients never query the registry
//! per call (Go Micro's `registry/cache`).
//!
//! The first lookup of a service fetches it and starts a watch that keeps the
//! entry current. Entries are fetched again after their TTL as a safety net.
//! When the registry cannot be reached, the last known nodes keep being
//! served (and the registry is asked again only every `retry` interval), so
//! calls to known nodes continue through a registry outage.

use foldhash::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::wire::Wire;
use super::{Action, Node, RegisterOptions, Registry, RegistryError, Service, WatchEvent, WatchOptions, Watcher};
use crate::BoxFuture;

/// Go Micro's cache TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// How long stale entries are served before the registry is asked again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// A caching view of another registry; writes pass through.
#[derive(Clone)]
pub struct CacheRegistry {
    inner: Arc<dyn Registry>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    ttl: Duration,
}

#[derive(Debug)]
struct Entry {
    /// Shared with the lookups in flight; a watch event copies on write.
    services: Arc<Snapshot>,
    /// When to ask the registry again.
    refresh_at: Instant,
    watching: bool,
}

impl CacheRegistry {
    /// Caches `inner` with Go Micro's TTL of one minute.
    pub fn new(inner: Arc<dyn Registry>) -> Self {
        Self::with_ttl(inner, DEFAULT_TTL)
    }

    /// Caches `inner`, fetching entries again after `ttl`.
    pub fn with_ttl(inner: Arc<dyn Registry>, ttl: Duration) -> Self {
        CacheRegistry {
            inner,
            entries: Arc::default(),
            ttl,
        }
    }

    /// The registry behind the cache.
    pub fn inner(&self) -> &Arc<dyn Registry> {
        &self.inner
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached services, if the entry is current and has nodes.
    fn cached(&self, name: &str) -> Option<Arc<Snapshot>> {
        let entries = self.entries();
        let entry = entries.get(name)?;
        let has_nodes = entry.services.iter().any(|s| !s.nodes.is_empty());
        (has_nodes && Instant::now() < entry.refresh_at).then(|| Arc::clone(&entry.services))
    }

    /// The versions of `name`, shared with the cache rather than copied: what
    /// the client reads on every call.
    pub(crate) async fn lookup(&self, name: &str) -> Result<Arc<Snapshot>, RegistryError> {
        match self.cached(name) {
            Some(services) => Ok(services),
            None => self.fetch(name).await,
        }
    }

    async fn fetch(&self, name: &str) -> Result<Arc<Snapshot>, RegistryError> {
        // Watch before reading, so no change between the read and the start
        // of the watch is missed; a change seen twice is applied twice harmlessly.
        let watcher = if self.is_watching(name) {
            None
        } else {
            self.inner.watch(WatchOptions::service(name)).await.ok()
        };
        match self.inner.get_service(name).await {
            Ok(services) => {
                let services = Arc::new(Snapshot::new(services));
                {
                    let mut entries = self.entries();
                    let entry = entries.entry(name.to_owned()).or_insert_with(|| Entry {
                        services: Arc::new(Snapshot::new(Vec::new())),
                        refresh_at: Instant::now(),
                        watching: false,
                    });
                    entry.services = Arc::clone(&services);
                    entry.refresh_at = Instant::now() + self.ttl;
                    if let Some(watcher) = watcher.filter(|_| !entry.watching) {
                        entry.watching = true;
                        self.follow_in_background(name.to_owned(), watcher);
                    }
                }
                Ok(services)
            }
            Err(RegistryError::NotFound { service, hint }) => {
                self.entries().remove(name);
                Err(RegistryError::NotFound { service, hint })
            }
            Err(error) => {
                let mut entries = self.entries();
                match entries.get_mut(name) {
                    Some(entry) if entry.services.iter().any(|s| !s.nodes.is_empty()) => {
                        warn!(service = name, registry = self.inner.name(), %error, "registry unreachable; serving the last known nodes");
                        entry.refresh_at = Instant::now() + RETRY_AFTER_FAILURE;
                        Ok(Arc::clone(&entry.services))
                    }
                    _ => Err(error),
                }
            }
        }
    }

    fn is_watching(&self, name: &str) -> bool {
        self.entries().get(name).is_some_and(|e| e.watching)
    }

    /// Keeps the entry of `name` current from `watcher` until it ends.
    fn follow_in_background(&self, name: String, watcher: Watcher) {
        let cache = self.clone();
        tokio::spawn(async move {
            cache.follow(&name, watcher).await;
            if let Some(entry) = cache.entries().get_mut(&name) {
                entry.watching = false;
            }
        });
    }

    async fn follow(&self, name: &str, mut watcher: Watcher) {
        while let Some(event) = watcher.next().await {
            match event {
                Ok(event) => {
                    let mut entries = self.entries();
                    let Some(entry) = entries.get_mut(name) else { return };
                    Arc::make_mut(&mut entry.services).change(|services| apply(services, event));
                }
                Err(e) => {
                    debug!(service = name, error = %e, "watch failed; the cache refreshes on its TTL");
                    return;
                }
            }
        }
    }
}

/// The versions of a service as the cache holds them, with what a client
/// reads of each node on every call ([`Wire`]) worked out once.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    services: Vec<Service>,
    /// `wire[s][n]` is that of `services[s].nodes[n]`.
    wire: Vec<Vec<Wire>>,
}

impl Snapshot {
    fn new(services: Vec<Service>) -> Snapshot {
        let wire = wire_of(&services);
        Snapshot { services, wire }
    }

    fn change(&mut self, edit: impl FnOnce(&mut Vec<Service>)) {
        edit(&mut self.services);
        self.wire = wire_of(&self.services);
    }

    /// What a client reads of node `node` of version `service`.
    pub(crate) fn wire(&self, service: usize, node: usize) -> Option<Wire> {
        self.wire.get(service)?.get(node).copied()
    }
}

impl std::ops::Deref for Snapshot {
    type Target = [Service];

    fn deref(&self) -> &[Service] {
        &self.services
    }
}

fn wire_of(services: &[Service]) -> Vec<Vec<Wire>> {
    services
        .iter()
        .map(|s| s.nodes.iter().map(|n| Wire::of(&n.metadata)).collect())
        .collect()
}

/// Applies one watch event to the cached versions of a service.
fn apply(services: &mut Vec<Service>, event: WatchEvent) {
    let WatchEvent { action, service } = event;
    let position = services.iter().position(|s| s.version == service.version);
    match action {
        Action::Create | Action::Update => {
            let Some(index) = position else {
                services.push(service);
                return;
            };
            let record = &mut services[index];
            record.metadata = service.metadata;
            if !service.endpoints.is_empty() {
                record.endpoints = service.endpoints;
            }
            for node in service.nodes {
                upsert(&mut record.nodes, node);
            }
        }
        Action::Delete => {
            if let Some(index) = position {
                let record = &mut services[index];
                record
                    .nodes
                    .retain(|n| !service.nodes.iter().any(|gone| gone.id == n.id));
                if record.nodes.is_empty() {
                    services.remove(index);
                }
            }
        }
    }
}

fn upsert(nodes: &mut Vec<Node>, node: Node) {
    match nodes.iter_mut().find(|n| n.id == node.id) {
        Some(existing) => *existing = node,
        None => nodes.push(node),
    }
}

impl Registry for CacheRegistry {
    fn register<'a>(
        &'a self,
        service: &'a Service,
        options: RegisterOptions,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.inner.register(service, options)
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.inner.deregister(service)
    }

    fn get_service<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move { self.lookup(name).await.map(|services| services.to_vec()) })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        self.inner.list_services()
    }

    fn watch<'a>(&'a self, options: WatchOptions) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        self.inner.watch(options)
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn report_unreachable(&self, service: &str, node: &Node) {
        self.inner.report_unreachable(service, node);
    }
}

impl fmt::Debug for CacheRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheRegistry")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::registry::MemoryRegistry;

    /// A registry that counts lookups and can be switched off.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryRegistry,
        lookups: AtomicUsize,
        down: AtomicBool,
    }

    impl Registry for Flaky {
        fn register<'a>(&'a self, s: &'a Service, o: RegisterOptions) -> BoxFuture<'a, Result<(), RegistryError>> {
            self.inner.register(s, o)
        }
        fn deregister<'a>(&'a self, s: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
            self.inner.deregister(s)
        }
        fn get_service<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Box::pin(async {
                    Err(RegistryError::Unavailable {
                        registry: "flaky",
                        message: "connection refused".into(),
                    })
                });
            }
            self.inner.get_service(name)
        }
        fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
            self.inner.list_services()
        }
        fn watch<'a>(&'a self, o: WatchOptions) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
            self.inner.watch(o)
        }
        fn name(&self) -> &'static str {
            "flaky"
        }
    }

    fn service(node: &str) -> Service {
        Service {
            name: "s".into(),
            version: "latest".into(),
            nodes: vec![Node {
                id: node.into(),
                address: format!("127.0.0.1:{}", node.len()),
                ..Node::default()
            }],
            ..Service::default()
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn lookups_are_served_from_the_cache_and_kept_current_by_watch() {
        let flaky = Arc::new(Flaky::default());
        let cache = CacheRegistry::new(flaky.clone());
        flaky.register(&service("a"), RegisterOptions::default()).await.unwrap();
        for _ in 0..100 {
            assert_eq!(cache.get_service("s").await.unwrap()[0].nodes.len(), 1);
        }
        assert_eq!(
            flaky.lookups.load(Ordering::SeqCst),
            1,
            "one registry lookup for 100 calls"
        );
        settle().await;
        flaky.register(&service("b"), RegisterOptions::default()).await.unwrap();
        settle().await;
        assert_eq!(cache.get_service("s").await.unwrap()[0].nodes.len(), 2, "watch added b");
        flaky.deregister(&service("a")).await.unwrap();
        settle().await;
        let nodes = &cache.get_service("s").await.unwrap()[0].nodes;
        assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(flaky.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_registry_leaves_the_last_known_nodes() {
        let flaky = Arc::new(Flaky::default());
        let cache = CacheRegistry::with_ttl(flaky.clone(), Duration::from_secs(1));
        flaky.register(&service("a"), RegisterOptions::default()).await.unwrap();
        cache.get_service("s").await.unwrap();
        flaky.down.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(2)).await;
        let before = flaky.lookups.load(Ordering::SeqCst);
        for _ in 0..50 {
            assert_eq!(cache.get_service("s").await.unwrap()[0].nodes[0].id, "a");
        }
        assert_eq!(
            flaky.lookups.load(Ordering::SeqCst),
            before + 1,
            "asked once, then waits"
        );
        assert!(matches!(
            cache.get_service("t").await,
            Err(RegistryError::Unavailable { .. })
        ));
    }

    #[test]
    fn delete_events_remove_nodes_and_empty_versions() {
        let mut services = vec![service("a")];
        apply(
            &mut services,
            WatchEvent {
                action: Action::Create,
                service: service("b"),
            },
        );
        assert_eq!(services[0].nodes.len(), 2);
        for gone in ["a", "b"] {
            apply(
                &mut services,
                WatchEvent {
                    action: Action::Delete,
                    service: service(gone),
                },
            );
        }
        assert!(services.is_empty());
    }

    #[test]
    fn a_snapshot_reads_each_node_once_and_again_after_a_change() {
        let mut snapshot = Snapshot::new(vec![service("a")]);
        let plain = Wire::of(&snapshot[0].nodes[0].metadata);
        assert_eq!(snapshot.wire(0, 0), Some(plain));
        assert_eq!(snapshot.wire(0, 1), None);
        let mut fast = service("b");
        fast.nodes[0].metadata = crate::registry::wire::node_metadata(&Default::default(), "memory", "memory");
        let fast_wire = Wire::of(&fast.nodes[0].metadata);
        assert_ne!(fast_wire, plain);
        snapshot.change(|services| {
            apply(
                services,
                WatchEvent {
                    action: Action::Create,
                    service: fast,
                },
            )
        });
        assert_eq!(snapshot.wire(0, 1), Some(fast_wire));
        assert_eq!(snapshot.wire(0, 0), Some(plain));
    }
}
