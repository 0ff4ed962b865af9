//! An etcd server of a test's own on loopback, which the test can kill and
//! restart on the same port and data (the `etcd` binary comes with
//! `netns-run --services etcd`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An etcd server on loopback that the test can kill and restart on the
/// same port and data.
pub struct EtcdServer {
    dir: std::path::PathBuf,
    client: u16,
    peer: u16,
    process: Option<Child>,
}

impl EtcdServer {
    /// A new server on free ports with a fresh data directory.
    pub fn start() -> EtcdServer {
        let mut server = EtcdServer {
            dir: std::env::temp_dir().join(format!("micro-etcd-{}", uuid::Uuid::new_v4().simple())),
            client: free_port(),
            peer: free_port(),
            process: None,
        };
        server.spawn();
        server
    }

    /// `127.0.0.1:<port>` of its clients.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client)
    }

    /// Starts the server (again, on the same port and data).
    pub fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client);
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let process = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the etcd binary (netns-run --services etcd installs it)");
        self.process = Some(process);
        let addr: SocketAddr = self.endpoint().parse().unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "etcd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server; its data stays.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
