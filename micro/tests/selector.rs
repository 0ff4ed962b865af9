//! The `Selector` conformance suite, run against every selector micro
//! ships: each picks only from the pool it is given, honours filters and
//! the call's preferences, gives `None` for an empty pool, and spreads its
//! picks over every candidate. Then what each adds: round robin's exact
//! turns, ejection's passing over failed nodes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use micro::registry::{Node, Service};
use micro::selector::{DEFAULT_EJECTION, Ejecting, Filter, Outcome, Pool, Random, RoundRobin, Selector};

fn nodes(ids: &[&str]) -> Vec<Service> {
    vec![Service {
        name: "s".into(),
        version: "1".into(),
        nodes: ids
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

fn every_selector() -> Vec<(&'static str, Arc<dyn Selector>)> {
    vec![
        ("random", Arc::new(Random)),
        ("round robin", Arc::new(RoundRobin::default())),
        ("ejecting random", Arc::new(Ejecting::new(Random))),
        ("ejecting round robin", Arc::new(Ejecting::new(RoundRobin::default()))),
    ]
}

fn pick(selector: &dyn Selector, pool: &Pool<'_, '_>) -> String {
    selector.select(pool).expect("a node").1.id.clone()
}

#[test]
fn every_selector_picks_only_from_its_pool_and_reaches_every_candidate() {
    let services = nodes(&["a1", "b1", "b2", "b3"]);
    for (name, selector) in every_selector() {
        let zone_b = [Filter::Metadata("zone".into(), "b".into())];
        let pool = Pool::new(&services, &zone_b);
        let mut seen = BTreeMap::new();
        for _ in 0..300 {
            *seen.entry(pick(&*selector, &pool)).or_insert(0) += 1;
        }
        assert_eq!(
            seen.keys().map(String::as_str).collect::<Vec<_>>(),
            ["b1", "b2", "b3"],
            "{name}: {seen:?}"
        );
    }
}

#[test]
fn every_selector_gives_none_for_an_empty_pool() {
    let empty = nodes(&[]);
    let services = nodes(&["a1"]);
    for (name, selector) in every_selector() {
        assert!(selector.select(&Pool::new(&empty, &[])).is_none(), "{name}");
        let nothing = [Filter::Version("2".into())];
        assert!(selector.select(&Pool::new(&services, &nothing)).is_none(), "{name}");
    }
}

#[test]
fn every_selector_honours_the_calls_preferences() {
    let services = nodes(&["a", "b", "c"]);
    let tried = ["a".to_owned(), "b".to_owned()];
    let untried = |node: &Node| !tried.contains(&node.id);
    let nobody = |_: &Node| false;
    for (name, selector) in every_selector() {
        let pool = Pool::new(&services, &[]).prefer(&untried);
        for _ in 0..20 {
            assert_eq!(pick(&*selector, &pool), "c", "{name}");
        }
        // A preference no node meets does not empty the pool.
        let pool = Pool::new(&services, &[]).prefer(&nobody);
        assert_eq!(pool.len(), 3, "{name}");
        assert!(selector.select(&pool).is_some(), "{name}");
    }
}

#[test]
fn round_robin_takes_exact_turns() {
    let services = nodes(&["a", "b", "c"]);
    let selector = RoundRobin::default();
    let pool = Pool::new(&services, &[]);
    let picks: Vec<String> = (0..6).map(|_| pick(&selector, &pool)).collect();
    assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn ejection_passes_over_failed_nodes_for_a_while() {
    let services = nodes(&["a", "b"]);
    let pool = Pool::new(&services, &[]);
    let selector = Ejecting::new(RoundRobin::default());
    selector.mark("a", Outcome::Unreachable);
    assert!(selector.is_ejected("a"));
    for _ in 0..10 {
        assert_eq!(pick(&selector, &pool), "b");
    }
    tokio::time::advance(DEFAULT_EJECTION + Duration::from_millis(1)).await;
    let picks: Vec<String> = (0..4).map(|_| pick(&selector, &pool)).collect();
    assert!(
        picks.contains(&"a".to_owned()),
        "a is back after the ejection: {picks:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn three_timeouts_in_a_row_eject_and_an_answer_clears_them() {
    let selector = Ejecting::new(Random);
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
    let services = nodes(&["a"]);
    assert_eq!(pick(&selector, &Pool::new(&services, &[])), "a");
}

#[test]
fn a_healthy_node_already_tried_beats_an_ejected_one() {
    let services = nodes(&["a", "b"]);
    let selector = Ejecting::new(Random);
    selector.mark("a", Outcome::Unreachable);
    let tried = ["b".to_owned()];
    let untried = |node: &Node| !tried.contains(&node.id);
    let pool = Pool::new(&services, &[]).prefer(&untried);
    for _ in 0..20 {
        assert_eq!(pick(&selector, &pool), "b");
    }
}

/// A selector of one's own: the first candidate, counting what it hears.
#[derive(Debug, Default)]
struct First {
    picks: std::sync::atomic::AtomicUsize,
    answered: std::sync::atomic::AtomicUsize,
}

impl Selector for First {
    fn select<'a>(&self, pool: &Pool<'a, '_>) -> Option<micro::selector::Pick<'a>> {
        self.picks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        pool.nth(0)
    }

    fn mark(&self, _node_id: &str, outcome: Outcome) {
        if outcome == Outcome::Answered {
            self.answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Ping {
    n: u32,
}

struct Echo;

#[micro::service]
impl Echo {
    #[endpoint]
    async fn ping(&self, req: Ping) -> micro::Result<Ping> {
        Ok(req)
    }
}

#[tokio::test]
async fn a_client_given_a_selector_of_its_own_picks_and_marks_with_it() {
    use micro::registry::{MemoryRegistry, Registry};
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    let running = micro::Service::new("echo")
        .flags(micro::Flags::none())
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .handle(Echo)
        .start()
        .await
        .unwrap();
    let first = Arc::new(First::default());
    let options = micro::client::ClientOptions::default().node_selector(Arc::clone(&first) as Arc<dyn Selector>);
    let client = EchoClient::new("echo", micro::Client::with_options(registry, options));
    for n in 0..3 {
        assert_eq!(client.ping(Ping { n }).await.unwrap().n, n);
    }
    assert_eq!(first.picks.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(first.answered.load(std::sync::atomic::Ordering::SeqCst), 3);
    running.stop().await.unwrap();
}
