//! An in-process registry: the reference implementation, for tests and for
//! services that only call each other inside one binary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{
    Action, Node, RegisterOptions, Registry, RegistryError, Service, WatchEvent, WatchOptions, WatchSender, Watcher,
};
use crate::BoxFuture;

/// Watchers that fall this far behind lose the oldest events.
const WATCH_BUFFER: usize = 256;

/// A registry held in memory. Clones share the same entries.
#[derive(Clone, Debug, Default)]
pub struct MemoryRegistry {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// service name -> version -> record
    services: BTreeMap<String, BTreeMap<String, Record>>,
    watchers: Vec<(Option<String>, WatchSender)>,
}

#[derive(Debug)]
struct Record {
    service: Service,
    nodes: BTreeMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    node: Node,
    expires: Option<Instant>,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing the registry; keep serving.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Drops expired nodes and tells watchers.
    fn expire(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for versions in self.services.values_mut() {
            for record in versions.values_mut() {
                let expired: Vec<Node> = record
                    .nodes
                    .values()
                    .filter(|e| e.expires.is_some_and(|t| t <= now))
                    .map(|e| e.node.clone())
                    .collect();
                if expired.is_empty() {
                    continue;
                }
                for node in &expired {
                    record.nodes.remove(&node.id);
                }
                gone.push(Service {
                    nodes: expired,
                    ..record.service.clone()
                });
            }
            versions.retain(|_, r| !r.nodes.is_empty());
        }
        self.services.retain(|_, v| !v.is_empty());
        for service in gone {
            self.notify(Action::Delete, service);
        }
    }

    fn notify(&mut self, action: Action, service: Service) {
        self.watchers.retain(|(filter, tx)| {
            if filter.as_ref().is_some_and(|f| *f != service.name) {
                return !tx.is_closed();
            }
            let event = WatchEvent {
                action,
                service: service.clone(),
            };
            match tx.try_send(Ok(event)) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    fn snapshot(&self, name: &str) -> Vec<Service> {
        self.services
            .get(name)
            .into_iter()
            .flat_map(|versions| versions.values())
            .map(|record| Service {
                nodes: record.nodes.values().map(|e| e.node.clone()).collect(),
                ..record.service.clone()
            })
            .collect()
    }
}

impl Registry for MemoryRegistry {
    fn register<'a>(
        &'a self,
        service: &'a Service,
        options: RegisterOptions,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let now = Instant::now();
            let expires = (!options.ttl.is_zero()).then(|| now + options.ttl.min(Duration::from_secs(u32::MAX.into())));
            let mut state = self.state();
            state.expire(now);
            let record = state
                .services
                .entry(service.name.clone())
                .or_default()
                .entry(service.version.clone())
                .or_insert_with(|| Record {
                    service: Service {
                        nodes: Vec::new(),
                        ..service.clone()
                    },
                    nodes: BTreeMap::new(),
                });
            record.service.metadata.clone_from(&service.metadata);
            record.service.endpoints.clone_from(&service.endpoints);
            let mut created = false;
            for node in &service.nodes {
                let previous = record.nodes.insert(
                    node.id.clone(),
                    Entry {
                        node: node.clone(),
                        expires,
                    },
                );
                created |= previous.is_none();
            }
            let action = if created { Action::Create } else { Action::Update };
            state.notify(action, service.clone());
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.expire(Instant::now());
            let mut removed = Vec::new();
            if let Some(versions) = state.services.get_mut(&service.name) {
                if let Some(record) = versions.get_mut(&service.version) {
                    for node in &service.nodes {
                        if let Some(entry) = record.nodes.remove(&node.id) {
                            removed.push(entry.node);
                        }
                    }
                    if record.nodes.is_empty() {
                        versions.remove(&service.version);
                    }
                }
                if versions.is_empty() {
                    state.services.remove(&service.name);
                }
            }
            if !removed.is_empty() {
                state.notify(
                    Action::Delete,
                    Service {
                        nodes: removed,
                        ..service.clone()
                    },
                );
            }
            Ok(())
        })
    }

    fn get_service<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.expire(Instant::now());
            let found = state.snapshot(name);
            if found.is_empty() {
                return Err(RegistryError::NotFound {
                    service: name.to_owned(),
                    hint: format!(
                        "no node of {name} is registered in this process's memory registry, which other processes cannot see; register it with the same registry, use a shared registry (--registry mdns or etcd), or call a fixed address"
                    ),
                });
            }
            Ok(found)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut state = self.state();
            state.expire(Instant::now());
            let names: Vec<String> = state.services.keys().cloned().collect();
            Ok(names.iter().flat_map(|n| state.snapshot(n)).collect())
        })
    }

    fn watch<'a>(&'a self, options: WatchOptions) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            self.state().watchers.push((options.service, tx));
            Ok(Watcher::new(rx))
        })
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, node: &str) -> Service {
        Service {
            name: name.into(),
            version: "latest".into(),
            nodes: vec![Node {
                id: node.into(),
                address: "127.0.0.1:1".into(),
                ..Node::default()
            }],
            ..Service::default()
        }
    }

    #[tokio::test]
    async fn register_get_deregister() {
        let reg = MemoryRegistry::new();
        reg.register(&service("a", "a-1"), RegisterOptions::default())
            .await
            .unwrap();
        reg.register(&service("a", "a-2"), RegisterOptions::default())
            .await
            .unwrap();
        let found = reg.get_service("a").await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes.len(), 2);
        reg.deregister(&service("a", "a-1")).await.unwrap();
        assert_eq!(reg.get_service("a").await.unwrap()[0].nodes[0].id, "a-2");
        reg.deregister(&service("a", "a-2")).await.unwrap();
        assert!(matches!(reg.get_service("a").await, Err(RegistryError::NotFound { service, .. }) if service == "a"));
    }

    #[tokio::test]
    async fn nodes_expire_after_their_ttl() {
        let reg = MemoryRegistry::new();
        reg.register(&service("a", "a-1"), RegisterOptions::ttl(Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(reg.get_service("a").await.is_ok());
        std::thread::sleep(Duration::from_millis(80));
        assert!(reg.get_service("a").await.is_err());
    }

    #[tokio::test]
    async fn watchers_see_changes_of_their_service() {
        let reg = MemoryRegistry::new();
        let mut all = reg.watch(WatchOptions::default()).await.unwrap();
        let mut only_b = reg.watch(WatchOptions::service("b")).await.unwrap();
        reg.register(&service("a", "a-1"), RegisterOptions::default())
            .await
            .unwrap();
        reg.register(&service("b", "b-1"), RegisterOptions::default())
            .await
            .unwrap();
        reg.register(&service("b", "b-1"), RegisterOptions::default())
            .await
            .unwrap();
        reg.deregister(&service("b", "b-1")).await.unwrap();
        let first = all.next().await.unwrap().unwrap();
        assert_eq!((first.action, first.service.name.as_str()), (Action::Create, "a"));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(only_b.next().await.unwrap().unwrap().action);
        }
        assert_eq!(seen, [Action::Create, Action::Update, Action::Delete]);
    }
}
