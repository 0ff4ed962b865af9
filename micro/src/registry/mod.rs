//! Service discovery: the [`Registry`] trait and Go Micro's registry records.
//!
//! A running service registers a [`Service`] holding its [`Node`] (id and
//! address) and its [`Endpoint`]s; clients look services up by name. The
//! records serialize exactly as Go Micro's (`registry/registry.go`), so both
//! read each other's entries.

pub mod cache;
mod describe;
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd;
pub mod mdns;
pub mod memory;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::mpsc;

pub use cache::CacheRegistry;
pub(crate) use describe::describe;
#[cfg(feature = "etcd")]
pub use etcd::EtcdRegistry;
pub use mdns::{MdnsOptions, MdnsRegistry};
pub use memory::MemoryRegistry;

use crate::BoxFuture;

/// A service discovery backend. Implementations are held as
/// `Arc<dyn Registry>` and swapped by flag, as Go Micro's plugins are.
pub trait Registry: Send + Sync + fmt::Debug {
    /// Registers the service's nodes; each expires after `options.ttl`
    /// unless registered again.
    fn register<'a>(
        &'a self,
        service: &'a Service,
        options: RegisterOptions,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Removes the service's nodes.
    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Every version of the named service with its live nodes;
    /// [`RegistryError::NotFound`] when there is none.
    fn get_service<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>>;

    /// Every registered service (nodes may be left out).
    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>>;

    /// A stream of changes, optionally of one service only.
    fn watch<'a>(&'a self, options: WatchOptions) -> BoxFuture<'a, Result<Watcher, RegistryError>>;

    /// The registry's name as Go Micro prints it (`mdns`, `memory`, `etcd`).
    fn name(&self) -> &'static str;

    /// Tells the registry that a node of `service` refused a connection, so
    /// it can check sooner whether the node is gone.
    fn report_unreachable(&self, service: &str, node: &Node) {
        let _ = (service, node);
    }
}

/// Options of [`Registry::register`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RegisterOptions {
    /// How long the registration lives without being renewed; zero is forever.
    pub ttl: Duration,
}

impl RegisterOptions {
    /// Registration that expires after `ttl` unless renewed.
    pub fn ttl(ttl: Duration) -> Self {
        RegisterOptions { ttl }
    }
}

/// Options of [`Registry::watch`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Only changes of this service.
    pub service: Option<String>,
}

impl WatchOptions {
    /// Watch one service only.
    pub fn service(name: impl Into<String>) -> Self {
        WatchOptions {
            service: Some(name.into()),
        }
    }
}

/// What happened to a service, as Go Micro's watch `Result.Action` says it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A node appeared.
    Create,
    /// A registration was renewed or changed.
    Update,
    /// Nodes left or expired.
    Delete,
}

impl Action {
    /// Go Micro's spelling: `create`, `update`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One change seen by a [`Watcher`]: the service holds the nodes concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub action: Action,
    /// The service and the nodes that changed.
    pub service: Service,
}

/// The sending half of a [`Watcher`], for registry implementations.
pub type WatchSender = mpsc::Sender<Result<WatchEvent, RegistryError>>;

/// A stream of registry [`WatchEvent`]s; dropping it stops the watch.
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::Receiver<Result<WatchEvent, RegistryError>>,
}

impl Watcher {
    /// A watcher fed by a channel, for registry implementations.
    pub fn new(rx: mpsc::Receiver<Result<WatchEvent, RegistryError>>) -> Self {
        Watcher { rx }
    }

    /// The next change; `None` once the registry has stopped the watch.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, RegistryError>> {
        self.rx.recv().await
    }
}

/// Why a registry call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No node of the service is registered.
    #[error("service {service} not found: {hint}")]
    NotFound {
        /// The service looked for.
        service: String,
        /// What was searched and what to try, for the person reading the error.
        hint: String,
    },
    /// The registry could not be reached or refused the call.
    #[error("registry {registry} unavailable: {message}")]
    Unavailable {
        /// Which registry.
        registry: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A record could not be encoded or decoded.
    #[error("registry record is malformed: {0}")]
    Malformed(String),
}

/// A registered service: Go Micro's `registry.Service`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service name, e.g. `helloworld`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The version, `latest` by default.
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Service metadata.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    /// The endpoints the service serves.
    #[serde(default, deserialize_with = "null_default")]
    pub endpoints: Vec<Endpoint>,
    /// The running instances.
    #[serde(default, deserialize_with = "null_default")]
    pub nodes: Vec<Node>,
}

/// One running instance: Go Micro's `registry.Node`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node metadata (`protocol`, `transport`, `server`, `broker`, `registry` ...).
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    /// A unique id, `<service>-<uuid>` by default.
    #[serde(default, deserialize_with = "null_default")]
    pub id: String,
    /// `host:port` to call.
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
}

/// One endpoint: Go Micro's `registry.Endpoint`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The shape of the request.
    #[serde(default)]
    pub request: Option<Value>,
    /// The shape of the response.
    #[serde(default)]
    pub response: Option<Value>,
    /// Endpoint metadata (`stream`, `description` ...).
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    /// `Type.Method`, e.g. `Helloworld.Greeting`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

/// The shape of a message: Go Micro's `registry.Value`, a type with its
/// fields, at most three levels deep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The field name (the type name at the top).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The type name, e.g. `string`, `int64`, `[]string`, `Request`.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub ty: String,
    /// The fields of a struct; empty for other types (JSON `null`, as Go writes it).
    #[serde(default, deserialize_with = "null_default", serialize_with = "empty_as_null")]
    pub values: Vec<Value>,
}

impl Value {
    /// A value with no fields whose name and type are both `name`.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Value {
            ty: name.clone(),
            name,
            values: Vec::new(),
        }
    }
}

/// Go writes nil maps and slices as `null`; read them as empty.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn empty_as_null<S: serde::Serializer>(values: &[Value], serializer: S) -> Result<S::Ok, S::Error> {
    if values.is_empty() {
        serializer.serialize_none()
    } else {
        serializer.collect_seq(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_json_with_nulls() {
        let go = r#"{"name":"helloworld","version":"latest","metadata":null,"endpoints":[{"request":{"name":"Request","type":"Request","values":[{"name":"name","type":"string","values":null}]},"response":null,"metadata":{},"name":"Helloworld.Greeting"}],"nodes":[{"metadata":{"protocol":"mucp"},"id":"helloworld-1","address":"10.0.0.1:8080"}]}"#;
        let svc: Service = serde_json::from_str(go).unwrap();
        assert_eq!(svc.endpoints[0].request.as_ref().unwrap().values[0].ty, "string");
        assert!(svc.metadata.is_empty());
        assert_eq!(svc.nodes[0].metadata["protocol"], "mucp");
    }

    #[test]
    fn writes_go_field_order() {
        let svc = Service {
            name: "s".into(),
            version: "latest".into(),
            nodes: vec![Node {
                id: "s-1".into(),
                address: "127.0.0.1:1".into(),
                ..Node::default()
            }],
            endpoints: vec![Endpoint {
                name: "S.M".into(),
                request: Some(Value::named("Req")),
                ..Endpoint::default()
            }],
            ..Service::default()
        };
        assert_eq!(
            serde_json::to_string(&svc).unwrap(),
            r#"{"name":"s","version":"latest","metadata":{},"endpoints":[{"request":{"name":"Req","type":"Req","values":null},"response":null,"metadata":{},"name":"S.M"}],"nodes":[{"metadata":{},"id":"s-1","address":"127.0.0.1:1"}]}"#
        );
    }
}
