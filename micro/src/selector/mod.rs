//! Client-side load balancing: which node of a service gets the next call.
//!
//! `Random` (Go Micro's default) and `RoundRobin` strategies pick among the
//! nodes of every version of a service that pass the call's [`Filter`]s.
//! Go Micro's `Mark` is a no-op; here a node that refused a connection, or
//! timed out several times in a row, is ejected: skipped for a while unless
//! no other node is left. A call also avoids the nodes it already tried.

use foldhash::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::registry::{Node, Service};

/// How long an ejected node is skipped.
pub const DEFAULT_EJECTION: Duration = Duration::from_secs(10);
/// Consecutive timeouts that eject a node.
const TIMEOUTS_TO_EJECT: u32 = 3;

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
    fn admits(&self, service: &Service, node: &Node) -> bool {
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

/// Picks nodes with a [`Strategy`], honouring filters and ejections.
#[derive(Debug)]
pub struct Selector {
    strategy: Strategy,
    ejection: Duration,
    turns: Mutex<HashMap<String, usize>>,
    health: Mutex<HashMap<String, Health>>,
}

#[derive(Debug, Default)]
struct Health {
    timeouts: u32,
    ejected_until: Option<Instant>,
}

impl Default for Selector {
    fn default() -> Self {
        Selector::new(Strategy::default())
    }
}

impl Selector {
    /// A selector with `strategy` and the default ejection time.
    pub fn new(strategy: Strategy) -> Self {
        Self::with_ejection(strategy, DEFAULT_EJECTION)
    }

    /// A selector that skips failing nodes for `ejection`.
    pub fn with_ejection(strategy: Strategy, ejection: Duration) -> Self {
        Selector {
            strategy,
            ejection,
            turns: Mutex::default(),
            health: Mutex::default(),
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    fn health(&self) -> MutexGuard<'_, HashMap<String, Health>> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how an attempt on `node_id` went. A refused connection ejects
    /// the node at once; timeouts eject it after three in a row; an answer
    /// clears its record.
    pub fn mark(&self, node_id: &str, outcome: Outcome) {
        let mut health = self.health();
        match outcome {
            Outcome::Answered => {
                if !health.is_empty() {
                    health.remove(node_id);
                }
            }
            Outcome::Unreachable => {
                health.entry(node_id.to_owned()).or_default().ejected_until = Some(Instant::now() + self.ejection);
            }
            Outcome::TimedOut => {
                let entry = health.entry(node_id.to_owned()).or_default();
                entry.timeouts += 1;
                if entry.timeouts >= TIMEOUTS_TO_EJECT {
                    entry.timeouts = 0;
                    entry.ejected_until = Some(Instant::now() + self.ejection);
                }
            }
        }
    }

    /// Whether `node_id` is ejected now.
    pub fn is_ejected(&self, node_id: &str) -> bool {
        let now = Instant::now();
        self.health()
            .get(node_id)
            .and_then(|h| h.ejected_until)
            .is_some_and(|until| until > now)
    }

    /// The next node of `services` (every version of one service) that
    /// passes `filters`. Ejected nodes are skipped while others are left;
    /// nodes in `tried` (the ids this call has tried, in order) are avoided
    /// while others are left, and once every node was tried the last one is.
    pub fn select<'a>(
        &self,
        services: &'a [Service],
        filters: &[Filter],
        tried: &[String],
    ) -> Option<(&'a Service, &'a Node)> {
        let health = self.health();
        let now = (!health.is_empty()).then(Instant::now);
        let healthy = |(_, node): Pick<'_>| {
            health
                .get(&node.id)
                .and_then(|h| h.ejected_until)
                .is_none_or(|until| now.is_none_or(|now| until <= now))
        };
        let untried = |(_, node): Pick<'_>| !tried.contains(&node.id);
        let not_last = |(_, node): Pick<'_>| tried.last() != Some(&node.id);
        // Each preference narrows the pool unless no node left meets it;
        // once every node was tried, the last one tried is avoided. The pool
        // is walked again rather than collected, so that a call allocates
        // nothing here.
        let preferences: [&dyn Fn(Pick<'_>) -> bool; 3] = [&healthy, &untried, &not_last];
        let mut kept = [false; 3];
        let admitted = services
            .iter()
            .flat_map(|s| s.nodes.iter().map(move |n| (s, n)))
            .filter(|&(s, n)| filters.iter().all(|f| f.admits(s, n)));
        let in_pool =
            |pick: Pick<'_>, kept: &[bool; 3]| preferences.iter().zip(kept).all(|(meets, &on)| !on || meets(pick));
        let apply = [now.is_some(), !tried.is_empty(), !tried.is_empty()];
        for i in (0..preferences.len()).filter(|&i| apply[i]) {
            kept[i] = true;
            if !admitted.clone().any(|pick| in_pool(pick, &kept)) {
                kept[i] = false;
            }
        }
        let pool = || admitted.clone().filter(|&pick| in_pool(pick, &kept));
        let len = pool().count();
        if len == 0 {
            return None;
        }
        let index = match self.strategy {
            Strategy::Random => fastrand::usize(..len),
            Strategy::RoundRobin => {
                let name = services.first().map(|s| s.name.as_str()).unwrap_or_default();
                let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
                if !turns.contains_key(name) {
                    turns.insert(name.to_owned(), 0);
                }
                let turn = turns.get_mut(name)?;
                let index = *turn % len;
                *turn = turn.wrapping_add(1);
                index
            }
        };
        pool().nth(index)
    }
}

/// A node and the version of the service it runs.
type Pick<'a> = (&'a Service, &'a Node);

#[cfg(test)]
mod tests {
    use super::*;

    fn service(nodes: &[&str]) -> Vec<Service> {
        vec![Service {
            name: "s".into(),
            version: "1".into(),
            nodes: nodes
                .iter()
                .map(|id| Node {
                    id: (*id).into(),
                    metadata: [(
                        "zone".to_owned(),
                        if id.starts_with('a') { "a" } else { "b" }.to_owned(),
                    )]
                    .into(),
                    ..Node::default()
                })
                .collect(),
            ..Service::default()
        }]
    }

    fn pick(selector: &Selector, services: &[Service], filters: &[Filter], tried: &[&str]) -> String {
        let tried: Vec<String> = tried.iter().map(|t| (*t).to_owned()).collect();
        selector.select(services, filters, &tried).unwrap().1.id.clone()
    }

    #[test]
    fn round_robin_is_exactly_even() {
        let selector = Selector::new(Strategy::RoundRobin);
        let services = service(&["a", "b", "c"]);
        let mut counts = HashMap::default();
        for _ in 0..300 {
            *counts.entry(pick(&selector, &services, &[], &[])).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
    }

    #[test]
    fn tried_nodes_are_avoided_while_others_remain() {
        let selector = Selector::new(Strategy::Random);
        let services = service(&["a", "b"]);
        for _ in 0..50 {
            assert_eq!(pick(&selector, &services, &[], &["a"]), "b");
            assert_eq!(
                pick(&selector, &services, &[], &["a", "b"]),
                "a",
                "all tried: the last one is avoided"
            );
        }
        assert_eq!(pick(&selector, &service(&["a"]), &[], &["a"]), "a");
        assert!(selector.select(&service(&[]), &[], &[]).is_none());
    }

    #[test]
    fn filters_restrict_the_nodes() {
        let selector = Selector::new(Strategy::Random);
        let services = service(&["a1", "b1", "b2"]);
        let zone_a = [Filter::Metadata("zone".into(), "a".into())];
        for _ in 0..20 {
            assert_eq!(pick(&selector, &services, &zone_a, &[]), "a1");
        }
        assert!(
            selector
                .select(&services, &[Filter::Version("2".into())], &[])
                .is_none()
        );
        assert!(
            selector
                .select(&services, &[Filter::Endpoint("S.M".into())], &[])
                .is_none()
        );
        assert!(
            selector
                .select(&services, &[Filter::Version("1".into())], &[])
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unreachable_nodes_are_ejected_for_a_while() {
        let selector = Selector::new(Strategy::RoundRobin);
        let services = service(&["a", "b"]);
        selector.mark("a", Outcome::Unreachable);
        for _ in 0..10 {
            assert_eq!(pick(&selector, &services, &[], &[]), "b");
        }
        tokio::time::advance(DEFAULT_EJECTION + Duration::from_millis(1)).await;
        let picks: Vec<String> = (0..4).map(|_| pick(&selector, &services, &[], &[])).collect();
        assert!(
            picks.contains(&"a".to_owned()),
            "a is back after the ejection: {picks:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_timeouts_eject_and_answers_clear() {
        let selector = Selector::new(Strategy::Random);
        selector.mark("a", Outcome::TimedOut);
        selector.mark("a", Outcome::TimedOut);
        assert!(!selector.is_ejected("a"));
        selector.mark("a", Outcome::Answered);
        selector.mark("a", Outcome::TimedOut);
        selector.mark("a", Outcome::TimedOut);
        assert!(!selector.is_ejected("a"), "the answer reset the count");
        selector.mark("a", Outcome::TimedOut);
        assert!(selector.is_ejected("a"));
        // With every node ejected, they are still used.
        assert_eq!(pick(&selector, &service(&["a"]), &[], &[]), "a");
    }
}
