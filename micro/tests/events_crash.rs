//! The file stream under SIGKILL: a publisher process killed at a random
//! point, twenty times over, loses none of the publishes it was told were
//! stored.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use micro::events::{ConsumeOptions, FileStream, PublishOptions, Start, Stream};

const FILE: &str = "MICRO_TEST_EVENTS_FILE";
const ROUND: &str = "MICRO_TEST_EVENTS_ROUND";

/// The child: publishes until killed, printing each publish once it
/// returned.
#[tokio::test]
#[ignore = "run by the_file_log_loses_no_acknowledged_publish_under_sigkill"]
async fn child_publisher() {
    let path = std::env::var(FILE).expect("the file");
    let round = std::env::var(ROUND).expect("the round");
    let stream = FileStream::open(&path).unwrap();
    for i in 0.. {
        let id = format!("{round}-{i}");
        stream
            .publish("crash", id.clone().into(), PublishOptions::default().id(id.clone()))
            .await
            .unwrap();
        println!("acked {id}");
    }
}

#[tokio::test]
async fn the_file_log_loses_no_acknowledged_publish_under_sigkill() {
    let path = std::env::temp_dir().join(format!("micro-events-crash-{}.redb", uuid::Uuid::new_v4().simple()));
    let mut acked = BTreeSet::new();
    for round in 0..20 {
        let round = round.to_string();
        let mut child = support::Child::spawn(
            "child_publisher",
            &[(FILE, path.to_str().unwrap()), (ROUND, round.as_str())],
        );
        let first = child.line_starting("acked");
        acked.insert(first);
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..40)));
        child.process.kill().unwrap();
        child.process.wait().unwrap();
        for line in child.lines(Duration::from_millis(20)) {
            if let Some(id) = line.strip_prefix("acked ") {
                acked.insert(id.trim().to_owned());
            }
        }
    }
    let stream = FileStream::open(&path).unwrap();
    let mut all = stream
        .consume("crash", ConsumeOptions::default().start(Start::All))
        .await
        .unwrap();
    let mut stored = BTreeSet::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), all.next()).await {
        stored.insert(String::from_utf8(event.payload.to_vec()).unwrap());
    }
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} acknowledged publishes lost: {lost:?}", lost.len());
    assert!(acked.len() >= 20, "every round acked at least one publish");
    println!(
        "{} acknowledged publishes over 20 kills, {} stored",
        acked.len(),
        stored.len()
    );
    let _ = std::fs::remove_file(&path);
}
