//! The nodes a selector picks from: those of every version of a service
//! that pass the call's filters, narrowed by preferences, each of which
//! holds only while some node meets it. The pool is walked again rather
//! than collected, so that picking a node allocates nothing.

use std::fmt;

use super::Filter;
use crate::registry::{Node, Service};

/// A node and the version of the service it runs.
pub type Pick<'a> = (&'a Service, &'a Node);

/// Nodes that meet a preference are picked while any is left.
type Preference<'p> = &'p dyn Fn(&Node) -> bool;

/// The most preferences a pool keeps; more are ignored, the latest first.
const MOST: usize = 4;

/// The candidates of one pick: the nodes of every version of a service that
/// pass the call's filters, narrowed by preferences, each of which holds
/// only while some node meets it.
#[derive(Clone, Copy)]
pub struct Pool<'a, 'p> {
    services: &'a [Service],
    filters: &'p [Filter],
    /// The preferences in force, highest first.
    kept: [Option<Preference<'p>>; MOST],
}

impl<'a, 'p> Pool<'a, 'p> {
    /// The nodes of `services` (every version of one service) that pass
    /// every filter.
    pub fn new(services: &'a [Service], filters: &'p [Filter]) -> Self {
        Pool {
            services,
            filters,
            kept: [None; MOST],
        }
    }

    /// This pool narrowed to the nodes that meet `preference`, after the
    /// preferences it has; unchanged when no node would be left.
    #[must_use]
    pub fn prefer<'q>(&self, preference: &'q dyn Fn(&Node) -> bool) -> Pool<'a, 'q>
    where
        'p: 'q,
    {
        let mut order = self.kept.iter().flatten().copied().chain(std::iter::once(preference));
        self.with(&mut order)
    }

    /// This pool narrowed to the nodes that meet `preference` first, the
    /// preferences it has after it; unchanged when no node would be left.
    #[must_use]
    pub fn prefer_first<'q>(&self, preference: &'q dyn Fn(&Node) -> bool) -> Pool<'a, 'q>
    where
        'p: 'q,
    {
        let mut order = std::iter::once(preference).chain(self.kept.iter().flatten().copied());
        self.with(&mut order)
    }

    /// A pool with `preferences`, in order, each kept while a node meets it
    /// and those kept before it.
    fn with<'q>(&self, preferences: &mut dyn Iterator<Item = Preference<'q>>) -> Pool<'a, 'q>
    where
        'p: 'q,
    {
        let mut pool = Pool {
            services: self.services,
            filters: self.filters,
            kept: [None; MOST],
        };
        let mut slot = 0;
        for preference in preferences.take(MOST) {
            pool.kept[slot] = Some(preference);
            if pool.picks().next().is_some() {
                slot += 1;
            } else {
                pool.kept[slot] = None;
            }
        }
        pool
    }

    /// The candidates, in registry order.
    pub fn picks(&self) -> impl Iterator<Item = Pick<'a>> + '_ {
        let filters = self.filters;
        let kept = self.kept;
        self.services
            .iter()
            .flat_map(|service| service.nodes.iter().map(move |node| (service, node)))
            .filter(move |&(service, node)| {
                filters.iter().all(|f| f.admits(service, node)) && kept.iter().flatten().all(|meets| meets(node))
            })
    }

    /// How many candidates there are.
    pub fn len(&self) -> usize {
        self.picks().count()
    }

    /// Whether there is no candidate.
    pub fn is_empty(&self) -> bool {
        self.picks().next().is_none()
    }

    /// The candidate at `index`, in registry order.
    pub fn nth(&self, index: usize) -> Option<Pick<'a>> {
        self.picks().nth(index)
    }

    /// The name of the service the pool's nodes run.
    pub fn service_name(&self) -> &'a str {
        self.services.first().map_or("", |s| s.name.as_str())
    }
}

impl fmt::Debug for Pool<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.picks().map(|(_, node)| node.id.as_str()).collect();
        f.debug_struct("Pool")
            .field("service", &self.service_name())
            .field("nodes", &ids)
            .finish()
    }
}
