//! A registry in etcd, for clusters beyond one network (feature `etcd`).
//!
//! Keys and values are laid out as Go Micro's etcd plugin lays them out, so
//! Go Micro services on the same etcd are listed and callable: one key per
//! node, `/micro/registry/<service>/<node-id>` (slashes in names become
//! `-`), whose value is the JSON of a `Service` holding that one node,
//! attached to a lease of the registration TTL. Registering again keeps the
//! lease alive (and grants a new one if it expired); deregistering deletes
//! the key and revokes the lease. Watches follow the prefix.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions as EtcdWatchOptions};
use tokio::sync::{OnceCell, mpsc};
use tracing::debug;

use super::{Action, RegisterOptions, Registry, RegistryError, Service, WatchEvent, WatchOptions, Watcher};
use crate::BoxFuture;

/// The prefix of every registry key.
pub const PREFIX: &str = "/micro/registry/";
/// Go Micro's etcd registry timeout.
const TIMEOUT: Duration = Duration::from_secs(5);
const WATCH_BUFFER: usize = 256;

/// The etcd registry. Clones share one connection, made on first use.
#[derive(Clone)]
pub struct EtcdRegistry {
    shared: Arc<Shared>,
}

struct Shared {
    endpoints: Vec<String>,
    client: OnceCell<Client>,
    /// Leases of this process's nodes: key -> (lease id, value written).
    leases: Mutex<HashMap<String, (i64, String)>>,
}

impl EtcdRegistry {
    /// A registry on these etcd endpoints (`host:port` or URLs; comma
    /// separated lists are split); none means `127.0.0.1:2379`.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(endpoints: I) -> Self {
        let mut list: Vec<String> = endpoints
            .into_iter()
            .flat_map(|e| {
                e.as_ref()
                    .split(',')
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|e| !e.is_empty())
            .map(|e| if e.contains("://") { e } else { format!("http://{e}") })
            .collect();
        if list.is_empty() {
            list.push("http://127.0.0.1:2379".to_owned());
        }
        EtcdRegistry {
            shared: Arc::new(Shared {
                endpoints: list,
                client: OnceCell::new(),
                leases: Mutex::default(),
            }),
        }
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &[String] {
        &self.shared.endpoints
    }

    async fn client(&self) -> Result<Client, RegistryError> {
        let client = self
            .shared
            .client
            .get_or_try_init(|| async {
                let options = ConnectOptions::new()
                    .with_connect_timeout(TIMEOUT)
                    .with_timeout(TIMEOUT);
                Client::connect(&self.shared.endpoints, Some(options)).await
            })
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(client.clone())
    }

    fn unavailable(&self, e: impl fmt::Display) -> RegistryError {
        RegistryError::Unavailable {
            registry: "etcd",
            message: format!("{e} (endpoints {})", self.shared.endpoints.join(", ")),
        }
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<String, (i64, String)>> {
        self.shared.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps an existing lease alive; false when it has expired.
    async fn renew(&self, client: &mut Client, lease: i64) -> Result<bool, RegistryError> {
        let (mut keeper, mut answers) = client.lease_keep_alive(lease).await.map_err(|e| self.unavailable(e))?;
        keeper.keep_alive().await.map_err(|e| self.unavailable(e))?;
        let answer = answers.message().await.map_err(|e| self.unavailable(e))?;
        Ok(answer.is_some_and(|a| a.ttl() > 0))
    }

    async fn register_node(&self, key: String, value: String, ttl: Duration) -> Result<(), RegistryError> {
        let mut client = self.client().await?;
        let known = self.leases().get(&key).cloned();
        if let Some((lease, _)) = &known {
            if self.renew(&mut client, *lease).await? {
                // Write again only if the key changed or was removed behind our back.
                let stored = client.get(key.as_str(), None).await.map_err(|e| self.unavailable(e))?;
                let intact = stored
                    .kvs()
                    .first()
                    .is_some_and(|kv| kv.value() == value.as_bytes() && kv.lease() == *lease);
                if intact {
                    return Ok(());
                }
                let options = PutOptions::new().with_lease(*lease);
                client
                    .put(key.as_str(), value.as_str(), Some(options))
                    .await
                    .map_err(|e| self.unavailable(e))?;
                self.leases().insert(key, (*lease, value));
                return Ok(());
            }
            debug!(%key, "lease expired; registering anew");
        }
        let seconds = ttl.as_secs().max(1);
        let lease = if ttl.is_zero() {
            None
        } else {
            let granted = client
                .lease_grant(i64::try_from(seconds).unwrap_or(i64::MAX), None)
                .await
                .map_err(|e| self.unavailable(e))?;
            Some(granted.id())
        };
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        client
            .put(key.as_str(), value.as_str(), options)
            .await
            .map_err(|e| self.unavailable(e))?;
        match lease {
            Some(id) => self.leases().insert(key, (id, value)),
            None => self.leases().remove(&key),
        };
        Ok(())
    }
}

/// `/micro/registry/<service>/<node>`, slashes in names replaced by `-`.
fn node_key(service: &str, node: &str) -> String {
    format!("{PREFIX}{}/{}", service.replace('/', "-"), node.replace('/', "-"))
}

fn service_prefix(service: &str) -> String {
    format!("{PREFIX}{}/", service.replace('/', "-"))
}

fn decode(value: &[u8]) -> Option<Service> {
    match serde_json::from_slice::<Service>(value) {
        Ok(service) => Some(service),
        Err(e) => {
            debug!(error = %e, "registry value is not a Go Micro service; ignored");
            None
        }
    }
}

/// One-node records grouped into one service per version, as Go Micro does.
fn group(records: impl IntoIterator<Item = Service>) -> Vec<Service> {
    let mut by_version: BTreeMap<(String, String), Service> = BTreeMap::new();
    for record in records {
        let entry = by_version
            .entry((record.name.clone(), record.version.clone()))
            .or_insert_with(|| Service {
                nodes: Vec::new(),
                ..record.clone()
            });
        entry.nodes.extend(record.nodes);
    }
    by_version.into_values().collect()
}

impl Registry for EtcdRegistry {
    fn register<'a>(
        &'a self,
        service: &'a Service,
        options: RegisterOptions,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            if service.nodes.is_empty() {
                return Err(RegistryError::Malformed(
                    "a registration needs at least one node".into(),
                ));
            }
            for node in &service.nodes {
                let record = Service {
                    nodes: vec![node.clone()],
                    ..service.clone()
                };
                let value = serde_json::to_string(&record).map_err(|e| RegistryError::Malformed(e.to_string()))?;
                self.register_node(node_key(&service.name, &node.id), value, options.ttl)
                    .await?;
            }
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            for node in &service.nodes {
                let key = node_key(&service.name, &node.id);
                client
                    .delete(key.as_str(), None)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                let lease = self.leases().remove(&key);
                if let Some((lease, _)) = lease {
                    // The key is gone already; a failed revoke only leaves an empty lease to expire.
                    let _ = client.lease_revoke(lease).await;
                }
            }
            Ok(())
        })
    }

    fn get_service<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let found = client
                .get(service_prefix(name), Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|e| self.unavailable(e))?;
            let services = group(found.kvs().iter().filter_map(|kv| decode(kv.value())));
            if services.is_empty() {
                return Err(RegistryError::NotFound {
                    service: name.to_owned(),
                    hint: format!(
                        "no key under {} in etcd at {}; check that {name} is running with --registry etcd and the same --registry_address",
                        service_prefix(name),
                        self.shared.endpoints.join(", ")
                    ),
                });
            }
            Ok(services)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let found = client
                .get(PREFIX, Some(GetOptions::new().with_prefix()))
                .await
                .map_err(|e| self.unavailable(e))?;
            Ok(group(found.kvs().iter().filter_map(|kv| decode(kv.value()))))
        })
    }

    fn watch<'a>(&'a self, options: WatchOptions) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let prefix = options
                .service
                .as_deref()
                .map_or_else(|| PREFIX.to_owned(), service_prefix);
            let watch = EtcdWatchOptions::new().with_prefix().with_prev_key();
            let stream = client
                .watch(prefix, Some(watch))
                .await
                .map_err(|e| self.unavailable(e))?;
            let (requests, mut responses) = stream.split();
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            let registry = self.clone();
            tokio::spawn(async move {
                // The request half must live as long as the watch.
                let _requests = requests;
                loop {
                    let response = tokio::select! {
                        () = tx.closed() => return,
                        response = responses.message() => response,
                    };
                    let response = match response {
                        Ok(Some(response)) => response,
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(registry.unavailable(e))).await;
                            return;
                        }
                    };
                    for event in response.events() {
                        let (action, kv) = match event.event_type() {
                            EventType::Put => {
                                let created = event.kv().is_some_and(|kv| kv.version() == 1);
                                (if created { Action::Create } else { Action::Update }, event.kv())
                            }
                            EventType::Delete => (Action::Delete, event.prev_kv()),
                        };
                        let Some(service) = kv.and_then(|kv| decode(kv.value())) else {
                            continue;
                        };
                        if tx.send(Ok(WatchEvent { action, service })).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(Watcher::new(rx))
        })
    }

    fn name(&self) -> &'static str {
        "etcd"
    }
}

impl fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("endpoints", &self.shared.endpoints)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_go_micro() {
        assert_eq!(
            node_key("helloworld", "helloworld-1"),
            "/micro/registry/helloworld/helloworld-1"
        );
        assert_eq!(node_key("a/b", "n/1"), "/micro/registry/a-b/n-1");
        assert_eq!(service_prefix("a/b"), "/micro/registry/a-b/");
    }

    #[test]
    fn endpoints_get_a_scheme_and_a_default() {
        assert_eq!(
            EtcdRegistry::new(["10.0.0.1:2379, http://h:1"]).endpoints(),
            ["http://10.0.0.1:2379", "http://h:1"]
        );
        assert_eq!(
            EtcdRegistry::new(Vec::<String>::new()).endpoints(),
            ["http://127.0.0.1:2379"]
        );
    }
}
