//! Client-side load balancing: which node of a service gets the next call.
//!
//! `Random` (Go Micro's default) and `RoundRobin` strategies pick among the
//! nodes of every version of a service, skipping the nodes a call has
//! already tried when others are left.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use crate::registry::{Node, Service};

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

/// Picks nodes with a [`Strategy`].
#[derive(Debug, Default)]
pub struct Selector {
    strategy: Strategy,
    turns: Mutex<HashMap<String, usize>>,
}

impl Selector {
    /// A selector with `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        Selector {
            strategy,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The next node of `services` (every version of one service). Nodes in
    /// `tried` (the ids a call has tried, in order) are avoided while others
    /// are left; once every node was tried, the last one tried is avoided.
    pub fn select<'a>(&self, services: &'a [Service], tried: &[String]) -> Option<(&'a Service, &'a Node)> {
        let all: Vec<(&Service, &Node)> = services
            .iter()
            .flat_map(|s| s.nodes.iter().map(move |n| (s, n)))
            .collect();
        let mut pool: Vec<(&Service, &Node)> = all.iter().copied().filter(|(_, n)| !tried.contains(&n.id)).collect();
        if pool.is_empty() {
            pool = all
                .iter()
                .copied()
                .filter(|(_, n)| tried.last() != Some(&n.id))
                .collect();
        }
        if pool.is_empty() {
            pool = all;
        }
        if pool.is_empty() {
            return None;
        }
        let index = match self.strategy {
            Strategy::Random => fastrand::usize(..pool.len()),
            Strategy::RoundRobin => {
                let name = services.first().map(|s| s.name.as_str()).unwrap_or_default();
                let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
                let turn = turns.entry(name.to_owned()).or_default();
                let index = *turn % pool.len();
                *turn = turn.wrapping_add(1);
                index
            }
        };
        pool.get(index).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(nodes: &[&str]) -> Vec<Service> {
        vec![Service {
            name: "s".into(),
            nodes: nodes
                .iter()
                .map(|id| Node {
                    id: (*id).into(),
                    ..Node::default()
                })
                .collect(),
            ..Service::default()
        }]
    }

    #[test]
    fn round_robin_is_exactly_even() {
        let selector = Selector::new(Strategy::RoundRobin);
        let services = service(&["a", "b", "c"]);
        let mut counts = HashMap::new();
        for _ in 0..300 {
            let (_, node) = selector.select(&services, &[]).unwrap();
            *counts.entry(node.id.clone()).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
    }

    #[test]
    fn tried_nodes_are_avoided_while_others_remain() {
        let selector = Selector::new(Strategy::Random);
        let services = service(&["a", "b"]);
        for _ in 0..50 {
            let (_, node) = selector.select(&services, &["a".into()]).unwrap();
            assert_eq!(node.id, "b");
        }
        for _ in 0..20 {
            let (_, node) = selector.select(&services, &["a".into(), "b".into()]).unwrap();
            assert_eq!(node.id, "a", "all tried: the last one tried is avoided");
        }
        let single = service(&["a"]);
        assert_eq!(selector.select(&single, &["a".into()]).unwrap().1.id, "a");
        assert!(selector.select(&service(&[]), &[]).is_none());
    }
}
