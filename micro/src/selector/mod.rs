//! Client-side load balancing: which node of a service gets the next call
//! (Go Micro's `selector`).
//!
//! A [`Selector`] picks from a [`Pool`]: the nodes of every version of a
//! service that pass the call's [`Filter`]s, narrowed by preferences that
//! hold while any node meets them (the call avoids the nodes it already
//! tried). [`Random`] (Go Micro's default) and [`RoundRobin`] pick by
//! position; [`Ejecting`] wraps either and passes over the nodes that
//! refused a connection or timed out several times in a row, for a while,
//! unless no other is left (Go Micro's `Mark` is a no-op). A selector of
//! one's own plugs in with
//! [`ClientOptions::node_selector`](crate::client::ClientOptions::node_selector).

mod ejection;
mod pool;
mod random;
mod round_robin;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use self::ejection::{DEFAULT_EJECTION, Ejecting};
pub use self::pool::{Pick, Pool};
pub use self::random::Random;
pub use self::round_robin::RoundRobin;
use crate::registry::{Node, Service};

/// Picks the node of the next attempt, and hears how attempts went.
///
/// Dyn-compatible, held as `Arc<dyn Selector>`; synchronous, since picking
/// never waits (the registry cache has the nodes already).
pub trait Selector: Send + Sync + fmt::Debug {
    /// The next node of `pool`, or `None` when it is empty.
    fn select<'a>(&self, pool: &Pool<'a, '_>) -> Option<Pick<'a>>;

    /// Hears how an attempt on the node `node_id` went.
    fn mark(&self, node_id: &str, outcome: Outcome) {
        let _ = (node_id, outcome);
    }
}

/// The selector of `strategy`, with ejection: what a client uses unless it
/// is given one of its own.
pub fn for_strategy(strategy: Strategy) -> Arc<dyn Selector> {
    match strategy {
        Strategy::Random => Arc::new(Ejecting::new(Random)),
        Strategy::RoundRobin => Arc::new(Ejecting::new(RoundRobin::default())),
    }
}

/// How the next node is chosen.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// A node at random, Go Micro's default.
    #[default]
    Random,
    /// Each node in turn, per service.
    RoundRobin,
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "random" | "" => Ok(Strategy::Random),
            "roundrobin" | "round_robin" | "round-robin" => Ok(Strategy::RoundRobin),
            other => Err(format!("unknown selector strategy {other:?}: use random or roundrobin")),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Random => "random",
            Strategy::RoundRobin => "roundrobin",
        })
    }
}

/// Restricts the nodes a call may go to (Go Micro's selector filters).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// Only nodes of services with this version.
    Version(String),
    /// Only nodes whose metadata has this key with this value.
    Metadata(String, String),
    /// Only services that list this endpoint (`Service.Method`).
    Endpoint(String),
}

impl Filter {
    pub(crate) fn admits(&self, service: &Service, node: &Node) -> bool {
        match self {
            Filter::Version(version) => service.version == *version,
            Filter::Metadata(key, value) => node.metadata.get(key) == Some(value),
            Filter::Endpoint(name) => service.endpoints.iter().any(|e| e.name == *name),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Version(v) => write!(f, "version {v}"),
            Filter::Metadata(k, v) => write!(f, "metadata {k}={v}"),
            Filter::Endpoint(e) => write!(f, "endpoint {e}"),
        }
    }
}

/// What became of an attempt on a node, for ejection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node answered (even with an error).
    Answered,
    /// The node refused or dropped the connection.
    Unreachable,
    /// The node did not answer in time.
    TimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_from_flags() {
        assert_eq!("".parse::<Strategy>(), Ok(Strategy::Random));
        assert_eq!("round_robin".parse::<Strategy>(), Ok(Strategy::RoundRobin));
        assert!("fastest".parse::<Strategy>().is_err());
        assert_eq!(Strategy::RoundRobin.to_string(), "roundrobin");
    }
}
