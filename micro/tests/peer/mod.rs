//! The Go Micro peer (`tests/gomicro/`, built by `.ci/run`) as a child
//! process whose output lines the tests read.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub const NEEDS_PEER: &str = "needs the Go Micro peer: MICRO_TEST_GOMICRO (built by .ci/run)";

pub fn peer_program() -> String {
    std::env::var("MICRO_TEST_GOMICRO").expect(NEEDS_PEER)
}

/// Runs `command` (the peer, set up by the caller) to its end within 20 s,
/// its stdin closed.
pub async fn output(mut command: Command) -> std::process::Output {
    let run = command.stdin(Stdio::null()).kill_on_drop(true).output();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the Go Micro peer did not finish within 20 s")
        .expect("run the Go Micro peer")
}

/// How one run of the Go peer with `args` ended: whether it exited 0, its
/// stdout lines, and its stderr (Go Micro's log).
pub async fn go(args: &[&str]) -> (bool, Vec<String>, String) {
    let mut command = Command::new(peer_program());
    command.args(args);
    let output = output(command).await;
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), lines, stderr)
}

/// `args` run by the Go peer, which must succeed; its stdout lines.
pub async fn go_ok(args: &[&str]) -> Vec<String> {
    let (ok, lines, stderr) = go(args).await;
    assert!(ok, "gomicro-peer {args:?} failed: {lines:?}\n{stderr}");
    lines
}

/// A running Go Micro process; killed when dropped.
pub struct Peer {
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    pub fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(peer_program())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Go Micro peer");
        let stdout = child.stdout.take().expect("piped stdout");
        Peer {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line the peer prints that starts with `prefix`; Go Micro's
    /// own log lines, on the same output, are passed over.
    pub async fn line(&mut self, prefix: &str) -> String {
        let next = async {
            loop {
                let line = self.lines.next_line().await.expect("read the peer's output");
                match line {
                    Some(line) if line.starts_with(prefix) => return line,
                    Some(_) => continue,
                    None => panic!("the Go Micro peer exited"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), next)
            .await
            .expect("the Go Micro peer said nothing within 20 s")
    }

    /// A Go Micro service; its address once it is serving.
    pub async fn serve(name: &str, registry: &str) -> (Peer, String) {
        let mut peer = Peer::start(&["serve", "--name", name, "--registry", registry]);
        let line = peer.line("LISTENING ").await;
        let address = line["LISTENING ".len()..].to_owned();
        (peer, address)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
