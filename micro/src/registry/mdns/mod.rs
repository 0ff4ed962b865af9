//! The default registry: multicast DNS on the local network, no server
//! needed (`mdns-sd`).
//!
//! Each node is a standard DNS-SD instance of the service type
//! `_micro._tcp.local.`, named by its node id, whose SRV and A records give
//! its address and whose TXT record carries Go Micro's encoding of the node
//! (`txt.rs`). One browse of that type, started on first use, keeps a
//! table of every node on the network, so lookups are local reads and
//! watchers hear of nodes as they come and go. A graceful deregistration
//! sends goodbye packets, so browsers drop the node at once; a node that
//! refused a connection is verified (RFC 6762 §10.4) and dropped when it no
//! longer answers.
//!
//! Loopback is always among the interfaces, so services on one host find
//! each other with no network at all.

mod gocompat;
mod record;
mod txt;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use mdns_sd::{IfKind, ResolvedService, ServiceDaemon, ServiceEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use self::gocompat::GoCompat;
use self::record::{decode_instance, instance_info};
use super::{
    Action, Node, RegisterOptions, Registry, RegistryError, Service, WatchEvent, WatchOptions, WatchSender, Watcher,
};
use crate::BoxFuture;

/// The DNS-SD service type of micro nodes.
pub const SERVICE_TYPE: &str = "_micro._tcp.local.";
/// The mDNS port.
pub const MDNS_PORT: u16 = 5353;
/// How long a node that refused a connection has to answer a verify query.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long deregistration waits for the goodbye to be sent.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);
const WATCH_BUFFER: usize = 256;

/// Settings of the mDNS registry.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MdnsOptions {
    /// Interface names or addresses to use besides loopback; empty means
    /// every interface (`--mdns_interfaces`, `MICRO_MDNS_INTERFACES`).
    pub interfaces: Vec<String>,
    /// The UDP port (5353, as RFC 6762 says; another only for isolated tests).
    pub port: u16,
    /// How long a lookup right after start-up waits for answers before it
    /// reports a service as not found (default 1.5 s). A responder stays
    /// silent to a query that comes within a second of its last multicast of
    /// the same records (RFC 6762 §6), such as its own announcement; the
    /// browse asks again a second after its first query, and this window
    /// covers the answer to that second query.
    pub settle: Duration,
    /// Also answer and ask under Go Micro's own names
    /// (`<node-id>.<service>.micro.`), so Go Micro v5 services and micro
    /// services find each other (`--mdns_go_compat`, `MICRO_MDNS_GO_COMPAT`).
    pub go_compat: bool,
}

impl Default for MdnsOptions {
    fn default() -> Self {
        MdnsOptions {
            interfaces: Vec::new(),
            port: MDNS_PORT,
            settle: Duration::from_millis(1500),
            go_compat: false,
        }
    }
}

impl MdnsOptions {
    /// Uses only these interfaces (names such as `eth0`, or addresses), plus loopback.
    #[must_use]
    pub fn interfaces<I: IntoIterator<Item = S>, S: Into<String>>(mut self, interfaces: I) -> Self {
        self.interfaces = interfaces
            .into_iter()
            .map(Into::into)
            .filter(|i: &String| !i.is_empty())
            .collect();
        self
    }

    /// Also speaks Go Micro's own mDNS names (see [`go_compat`](Self::go_compat)).
    #[must_use]
    pub fn go_compat(mut self, enabled: bool) -> Self {
        self.go_compat = enabled;
        self
    }

    /// Parses a `--mdns_interfaces` value: `all`, or names and addresses
    /// separated by commas.
    #[must_use]
    pub fn interfaces_flag(self, value: &str) -> Self {
        if value.trim() == "all" {
            return self.interfaces(Vec::<String>::new());
        }
        self.interfaces(value.split(',').map(str::trim).map(str::to_owned))
    }
}

/// The mDNS registry. Clones share one daemon; the daemon starts on first
/// use and stops when the last clone is dropped.
#[derive(Clone)]
pub struct MdnsRegistry {
    shared: Arc<Shared>,
}

struct Shared {
    options: MdnsOptions,
    daemon: OnceLock<Result<Running, String>>,
    state: Mutex<State>,
    /// Bumped whenever the table of nodes changes.
    changed: watch::Sender<u64>,
}

struct Running {
    daemon: ServiceDaemon,
    browse_started: Instant,
    go: Option<GoCompat>,
}

#[derive(Default)]
struct State {
    /// Every node seen, by DNS-SD full name, as a one-node service.
    nodes: BTreeMap<String, Service>,
    /// This process's registrations: node id to full name.
    own: BTreeMap<String, String>,
    /// Go Micro nodes heard of under `.micro.` names, by node id, with the
    /// instant their records expire.
    go_nodes: BTreeMap<String, (Service, std::time::Instant)>,
    watchers: Vec<(Option<String>, WatchSender)>,
}

impl Default for MdnsRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MdnsRegistry {
    /// An mDNS registry on every interface and loopback.
    pub fn new() -> Self {
        Self::with_options(MdnsOptions::default())
    }

    /// An mDNS registry with `options`.
    pub fn with_options(options: MdnsOptions) -> Self {
        let (changed, _) = watch::channel(0);
        MdnsRegistry {
            shared: Arc::new(Shared {
                options,
                daemon: OnceLock::new(),
                state: Mutex::new(State::default()),
                changed,
            }),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &MdnsOptions {
        &self.shared.options
    }

    /// The running daemon, started with its browse on first use.
    fn running(&self) -> Result<&Running, RegistryError> {
        let started = self
            .shared
            .daemon
            .get_or_init(|| start(&self.shared).map_err(|e| e.to_string()));
        started.as_ref().map_err(|message| RegistryError::Unavailable {
            registry: "mdns",
            message: message.clone(),
        })
    }

    /// Waits, right after start-up, until `ready` holds or the settle time is
    /// over, so that a first lookup sees the answers to the first query.
    async fn settle(&self, ready: impl Fn(&State) -> bool) -> Result<(), RegistryError> {
        let until = self.running()?.browse_started + self.shared.options.settle;
        let mut changed = self.shared.changed.subscribe();
        while !ready(&self.shared.lock()) && Instant::now() < until {
            if tokio::time::timeout_at(until, changed.changed()).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// With Go Micro compatibility, asks for `<name>.micro.` as a Go client
    /// does, in the background; `None` without it.
    fn ask_go(&self, name: &str) -> Option<tokio::task::JoinHandle<Vec<Service>>> {
        let go = self.running().ok()?.go.clone()?;
        let name = name.to_owned();
        Some(tokio::task::spawn_blocking(move || {
            go.query(&name, gocompat::QUERY_WAIT).unwrap_or_else(|e| {
                debug!(service = %name, error = %e, "Go Micro mDNS query failed");
                Vec::new()
            })
        }))
    }

    fn not_found(&self, name: &str) -> RegistryError {
        let others: BTreeSet<String> = self.shared.lock().nodes.values().map(|s| s.name.clone()).collect();
        let seen = if others.is_empty() {
            "no micro service answered at all".to_owned()
        } else {
            format!(
                "services that answered: {}",
                others.into_iter().collect::<Vec<_>>().join(", ")
            )
        };
        let options = &self.shared.options;
        RegistryError::NotFound {
            service: name.to_owned(),
            hint: format!(
                "searched mDNS ({SERVICE_TYPE} on UDP port {}) on {}; {seen}. Check that {name} is running with the mdns registry on this host or network, that no firewall drops multicast to 224.0.0.251 port {}, choose interfaces with --mdns_interfaces (MICRO_MDNS_INTERFACES), or use a registry server with --registry etcd",
                options.port,
                describe_interfaces(&options.interfaces),
                options.port,
            ),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a resolved instance and tells watchers.
    fn found(&self, resolved: &ResolvedService) {
        let fullname = resolved.get_fullname();
        let Some(service) = decode_instance(resolved) else {
            return;
        };
        let mut state = self.lock();
        let action = match state.nodes.insert(fullname.to_owned(), service.clone()) {
            None => Action::Create,
            Some(previous) if previous == service => return,
            Some(_) => Action::Update,
        };
        notify(&mut state.watchers, action, service);
        drop(state);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Forgets an instance and tells watchers.
    fn lost(&self, fullname: &str) {
        let mut state = self.lock();
        let Some(service) = state.nodes.remove(fullname) else {
            return;
        };
        notify(&mut state.watchers, Action::Delete, service);
        drop(state);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl Shared {
    /// Records a Go Micro node heard under `.micro.` names (a goodbye removes it).
    fn heard_go(&self, heard: gocompat::Heard) {
        let Some(node) = heard.service.nodes.first() else {
            return;
        };
        let id = node.id.clone();
        let mut state = self.lock();
        if state.own.contains_key(&id) || state.nodes.values().any(|s| s.nodes.iter().any(|n| n.id == id)) {
            return;
        }
        let (action, service) = if heard.ttl == 0 {
            match state.go_nodes.remove(&id) {
                Some((service, _)) => (Action::Delete, service),
                None => return,
            }
        } else {
            let expires = std::time::Instant::now() + Duration::from_secs(u64::from(heard.ttl));
            let previous = state.go_nodes.insert(id, (heard.service.clone(), expires));
            match previous {
                Some((old, _)) if old == heard.service => return,
                Some(_) => (Action::Update, heard.service),
                None => (Action::Create, heard.service),
            }
        };
        notify(&mut state.watchers, action, service);
        drop(state);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The live Go Micro nodes of `name`.
    fn go_nodes_named(&self, name: &str) -> Vec<Service> {
        let now = std::time::Instant::now();
        let mut state = self.lock();
        state.go_nodes.retain(|_, (_, expires)| *expires > now);
        state
            .go_nodes
            .values()
            .filter(|(s, _)| s.name == name)
            .map(|(s, _)| s.clone())
            .collect()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(Ok(running)) = self.daemon.get() {
            let _ = running.daemon.shutdown();
            if let Some(go) = &running.go {
                go.stop();
            }
        }
    }
}

/// Starts the daemon on the chosen interfaces and the browse of micro nodes.
fn start(shared: &Arc<Shared>) -> Result<Running, mdns_sd::Error> {
    let options = &shared.options;
    let daemon = ServiceDaemon::new_with_port(options.port)?;
    if !options.interfaces.is_empty() {
        daemon.disable_interface(IfKind::All)?;
        let mut kinds: Vec<IfKind> = options
            .interfaces
            .iter()
            .map(|i| match i.parse::<IpAddr>() {
                Ok(ip) => IfKind::Addr(ip),
                Err(_) => IfKind::Name(i.clone()),
            })
            .collect();
        kinds.extend([IfKind::LoopbackV4, IfKind::LoopbackV6]);
        daemon.enable_interface(kinds)?;
    }
    let events = daemon.browse(SERVICE_TYPE)?;
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("micro-mdns-browse".to_owned())
        .spawn(move || browse(&weak, &events))
        .map_err(|e| mdns_sd::Error::Msg(format!("cannot start the browse thread: {e}")))?;
    let go = if options.go_compat {
        let weak = Arc::downgrade(shared);
        let heard = move |heard: gocompat::Heard| {
            if let Some(shared) = weak.upgrade() {
                shared.heard_go(heard);
            }
        };
        let compat = GoCompat::start(ipv4_interfaces(&options.interfaces), options.port, heard)
            .map_err(|e| mdns_sd::Error::Msg(format!("cannot start Go Micro compatibility: {e}")))?;
        Some(compat)
    } else {
        None
    };
    Ok(Running {
        daemon,
        browse_started: Instant::now(),
        go,
    })
}

/// The IPv4 addresses of the chosen interfaces, loopback included.
fn ipv4_interfaces(chosen: &[String]) -> Vec<std::net::Ipv4Addr> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| {
            i.is_loopback() || chosen.is_empty() || chosen.iter().any(|c| *c == i.name || *c == i.ip().to_string())
        })
        .filter_map(|i| match i.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Applies browse events to the table until the registry is dropped.
fn browse(shared: &Weak<Shared>, events: &mdns_sd::Receiver<ServiceEvent>) {
    while let Ok(event) = events.recv() {
        let Some(shared) = shared.upgrade() else { return };
        match event {
            ServiceEvent::ServiceResolved(resolved) => shared.found(&resolved),
            ServiceEvent::ServiceRemoved(_, fullname) => shared.lost(&fullname),
            _ => {}
        }
    }
}

fn notify(watchers: &mut Vec<(Option<String>, WatchSender)>, action: Action, service: Service) {
    watchers.retain(|(filter, tx)| {
        if filter.as_ref().is_some_and(|f| *f != service.name) {
            return !tx.is_closed();
        }
        let event = WatchEvent {
            action,
            service: service.clone(),
        };
        !matches!(tx.try_send(Ok(event)), Err(mpsc::error::TrySendError::Closed(_)))
    });
}

/// The nodes of `name`, grouped by version.
/// A node heard under both micro's and Go Micro's names (a micro node in
/// compatibility mode announces both) is listed once.
fn services_named(state: &State, name: &str) -> Vec<Service> {
    let mut by_version: BTreeMap<&str, Service> = BTreeMap::new();
    for node in state.nodes.values().filter(|s| s.name == name) {
        let entry = by_version.entry(&node.version).or_insert_with(|| Service {
            nodes: Vec::new(),
            ..node.clone()
        });
        for node in &node.nodes {
            if !entry.nodes.iter().any(|n| n.id == node.id) {
                entry.nodes.push(node.clone());
            }
        }
    }
    by_version.into_values().collect()
}

/// Services of one name merged into one per version.
fn merge_versions(services: Vec<Service>) -> Vec<Service> {
    let mut by_version: BTreeMap<String, Service> = BTreeMap::new();
    for service in services {
        match by_version.get_mut(&service.version) {
            Some(entry) => {
                for node in service.nodes {
                    if !entry.nodes.iter().any(|n| n.id == node.id) {
                        entry.nodes.push(node);
                    }
                }
            }
            None => {
                by_version.insert(service.version.clone(), service);
            }
        }
    }
    by_version.into_values().collect()
}

/// The interfaces in use, for error messages.
fn describe_interfaces(chosen: &[String]) -> String {
    let all = if_addrs::get_if_addrs().unwrap_or_default();
    let used: Vec<String> = all
        .iter()
        .filter(|i| {
            i.is_loopback() || chosen.is_empty() || chosen.iter().any(|c| *c == i.name || *c == i.ip().to_string())
        })
        .map(|i| format!("{} {}", i.name, i.ip()))
        .collect();
    if used.is_empty() {
        "no usable interface".to_owned()
    } else {
        format!("interfaces {}", used.join(", "))
    }
}

impl Registry for MdnsRegistry {
    fn register<'a>(
        &'a self,
        service: &'a Service,
        _options: RegisterOptions,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let running = self.running()?;
            for node in &service.nodes {
                let info = instance_info(service, node)?;
                let fullname = info.get_fullname().to_owned();
                running.daemon.register(info).map_err(unavailable)?;
                let record = Service {
                    nodes: vec![node.clone()],
                    metadata: BTreeMap::new(),
                    ..service.clone()
                };
                let mut state = self.shared.lock();
                state.own.insert(node.id.clone(), fullname.clone());
                let action = match state.nodes.insert(fullname, record.clone()) {
                    None => Action::Create,
                    Some(_) => Action::Update,
                };
                notify(&mut state.watchers, action, record);
            }
            if let Some(go) = &running.go {
                go.publish(service).map_err(RegistryError::Malformed)?;
            }
            self.shared.changed.send_modify(|v| *v = v.wrapping_add(1));
            Ok(())
        })
    }

    fn deregister<'a>(&'a self, service: &'a Service) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let running = self.running()?;
            if let Some(go) = &running.go {
                go.withdraw(service);
            }
            for node in &service.nodes {
                let fullname = self.shared.lock().own.remove(&node.id);
                let Some(fullname) = fullname else { continue };
                let status = running.daemon.unregister(&fullname).map_err(unavailable)?;
                // The goodbye packets are out once the daemon answers.
                if tokio::time::timeout(GOODBYE_TIMEOUT, status.recv_async())
                    .await
                    .is_err()
                {
                    warn!(node = %node.id, "mDNS goodbye not confirmed in time");
                }
                self.shared.lost(&fullname);
            }
            Ok(())
        })
    }

    fn get_service<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            let asked = self.ask_go(name);
            self.settle(|state| state.nodes.values().any(|s| s.name == name))
                .await?;
            if let Some(asked) = asked {
                for service in asked.await.unwrap_or_default() {
                    self.shared.heard_go(gocompat::Heard {
                        service,
                        ttl: gocompat::RECORD_TTL,
                    });
                }
            }
            let mut found = services_named(&self.shared.lock(), name);
            found.extend(self.shared.go_nodes_named(name));
            let found = merge_versions(found);
            if found.is_empty() {
                return Err(self.not_found(name));
            }
            Ok(found)
        })
    }

    fn list_services(&self) -> BoxFuture<'_, Result<Vec<Service>, RegistryError>> {
        Box::pin(async move {
            self.settle(|_| false).await?;
            let state = self.shared.lock();
            let names: BTreeSet<&str> = state.nodes.values().map(|s| s.name.as_str()).collect();
            Ok(names
                .into_iter()
                .flat_map(|name| services_named(&state, name))
                .collect())
        })
    }

    fn watch<'a>(&'a self, options: WatchOptions) -> BoxFuture<'a, Result<Watcher, RegistryError>> {
        Box::pin(async move {
            self.running()?;
            let (tx, rx) = mpsc::channel(WATCH_BUFFER);
            self.shared.lock().watchers.push((options.service, tx));
            Ok(Watcher::new(rx))
        })
    }

    fn name(&self) -> &'static str {
        "mdns"
    }

    fn report_unreachable(&self, _service: &str, node: &Node) {
        let Ok(running) = self.running() else { return };
        if let Some((gone, _)) = self.shared.lock().go_nodes.remove(&node.id) {
            debug!(node = %node.id, service = %gone.name, "dropped an unreachable Go Micro node");
            return;
        }
        let fullname = {
            let state = self.shared.lock();
            state
                .nodes
                .iter()
                .find(|(_, s)| s.nodes.iter().any(|n| n.id == node.id))
                .map(|(fullname, _)| fullname.clone())
        };
        if let Some(fullname) = fullname {
            debug!(node = %node.id, "verifying an unreachable node");
            let _ = running.daemon.verify(fullname, VERIFY_TIMEOUT);
        }
    }
}

fn unavailable(e: mdns_sd::Error) -> RegistryError {
    RegistryError::Unavailable {
        registry: "mdns",
        message: e.to_string(),
    }
}

impl fmt::Debug for MdnsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MdnsRegistry")
            .field("options", &self.shared.options)
            .field("started", &self.shared.daemon.get().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_heard_under_two_names_is_listed_once() {
        let node = Node {
            id: "n1".into(),
            address: "127.0.0.1:1".into(),
            metadata: BTreeMap::new(),
        };
        let service = Service {
            name: "s".into(),
            version: "1".into(),
            nodes: vec![node],
            ..Service::default()
        };
        let mut state = State::default();
        state.nodes.insert("n1._micro._tcp.local.".into(), service.clone());
        state.nodes.insert("n1.s.micro.".into(), service);
        let listed = services_named(&state, "s");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].nodes.len(), 1);
    }

    #[test]
    fn interface_flag_parses_lists_and_all() {
        assert_eq!(
            MdnsOptions::default().interfaces_flag("lo, eth0").interfaces,
            ["lo", "eth0"]
        );
        assert!(MdnsOptions::default().interfaces_flag("all").interfaces.is_empty());
    }
}
