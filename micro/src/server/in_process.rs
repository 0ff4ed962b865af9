//! The servers of this process that a client may call in place.
//!
//! With [`ClientOptions::local_calls`](crate::client::ClientOptions::local_calls)
//! set, a call whose picked node is a server entered in the client's table
//! runs that server's handler on the caller's task: the request value moves
//! to the handler and the response value moves back (see the crate's
//! `local` values). The table is a value, not a process global: a
//! [`Service`](crate::Service) enters its server in its own table, which its
//! client shares, and several services (and clients) share one by being
//! given the same table.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use foldhash::HashMap;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// A table of servers running in this process, by listening address. Cheap
/// to clone; clones share the table.
#[derive(Clone, Default)]
pub struct InProcess {
    servers: Arc<Mutex<HashMap<String, Entry>>>,
}

/// A running server, as in-process calls find it.
struct Entry {
    shared: Weak<Shared>,
    stop: CancellationToken,
}

impl Entry {
    fn live(&self) -> Option<Arc<Shared>> {
        if self.stop.is_cancelled() {
            return None;
        }
        self.shared.upgrade()
    }
}

impl InProcess {
    /// An empty table.
    pub fn new() -> Self {
        InProcess::default()
    }

    /// Enters a server listening on `address` until `stop` fires.
    pub(crate) fn enter(&self, address: String, shared: &Arc<Shared>, stop: CancellationToken) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.retain(|_, entry| entry.live().is_some());
        let entry = Entry {
            shared: Arc::downgrade(shared),
            stop,
        };
        servers.insert(address, entry);
    }

    /// The server listening on `address`, if one is entered and running.
    pub(crate) fn find(&self, address: &str) -> Option<Arc<Shared>> {
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers.get(address)?.live()
    }

    /// The addresses of the running servers entered.
    pub fn addresses(&self) -> Vec<String> {
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .iter()
            .filter(|(_, entry)| entry.live().is_some())
            .map(|(address, _)| address.clone())
            .collect()
    }
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcess").field("servers", &self.addresses()).finish()
    }
}
