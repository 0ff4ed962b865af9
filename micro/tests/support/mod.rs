//! Helpers shared by the integration tests: a raw HTTP/1.1 connection that
//! writes requests byte by byte and parses responses, so tests see exactly
//! what travels on the wire; [`eventually`], for conditions that come true
//! on their own time; and [`Child`], this test binary run as another process.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Waits until `condition` holds, checking it again and again (every 5 ms at
/// first, backing off to every 100 ms), for at most `within`; panics saying
/// it timed out waiting for `what` if it never does.
///
/// For what the test cannot be told about: a registry seen from another
/// process, a file descriptor closed, a message on an asynchronous broker.
/// When the code under test can signal the event (a handler that has
/// started), wait for the signal instead.
pub async fn eventually(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition().await {
            return;
        }
        let now = tokio::time::Instant::now();
        assert!(now < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 response as read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The Go Micro error JSON of the body.
    pub fn error(&self) -> micro::Error {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not an error JSON ({e}): {}", self.body_text()))
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct RawConnection {
    stream: BufReader<TcpStream>,
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> RawConnection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawConnection {
            stream: BufReader::new(stream),
        }
    }

    /// Writes raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    /// Writes a POST with `headers` and `body` (Content-Length added).
    pub async fn post(&mut self, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        self.post_to("/", headers, body).await
    }

    /// Writes a POST to `path` (with its query string).
    pub async fn post_to(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        self.send_raw(&request_bytes_to("POST", path, headers, body)).await;
        self.read_response().await
    }

    /// Writes a GET of `path` and reads the response.
    pub async fn get(&mut self, path: &str) -> RawResponse {
        self.send_raw(&request_bytes_to("GET", path, &[], b"")).await;
        self.read_response().await
    }

    /// Reads one response; panics if the connection closes first.
    pub async fn read_response(&mut self) -> RawResponse {
        tokio::time::timeout(Duration::from_secs(10), self.try_read_response())
            .await
            .expect("response within 10 s")
            .expect("a response, not a closed connection")
    }

    /// Reads one response, or `None` when the server closed the connection.
    pub async fn try_read_response(&mut self) -> Option<RawResponse> {
        let mut status_line = String::new();
        if self.stream.read_line(&mut status_line).await.ok()? == 0 {
            return None;
        }
        let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(RawResponse { status, headers, body })
    }

    /// Whether the server has closed the connection (reads EOF) within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, self.stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// The bytes of an HTTP/1.1 request.
pub fn request_bytes(method: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    request_bytes_to(method, "/", headers, body)
}

/// The bytes of an HTTP/1.1 request to `path`.
pub fn request_bytes_to(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: micro.test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// This test binary run again as a child process, to run one ignored test
/// (a server, say) in a process of its own; its stdout lines are collected.
pub struct Child {
    pub process: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Child {
    /// Runs the ignored test `test` with `envs` set.
    pub fn spawn(test: &str, envs: &[(&str, &str)]) -> Child {
        use std::io::BufRead;
        use std::process::{Command, Stdio};

        let mut process = Command::new(std::env::current_exe().expect("test binary"))
            .args([test, "--exact", "--ignored", "--nocapture", "--quiet"])
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let stdout = process.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        // Read every line, so the child never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Child { process, lines }
    }

    /// The rest of the first line that starts with `prefix` (blocking; up to 20 s).
    pub fn line_starting(&self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Err(_) => panic!("the child printed no line starting with {prefix:?}"),
            }
        }
    }

    /// Every line the child printed and no one read yet, waiting `settle`
    /// for the last ones to come through.
    pub fn lines(&self, settle: Duration) -> Vec<String> {
        std::thread::sleep(settle);
        self.lines.try_iter().collect()
    }

    /// Closes the child's stdin, which tells it to stop.
    pub fn close_stdin(&mut self) {
        drop(self.process.stdin.take());
    }
}

/// The samples of a Prometheus text exposition, by `name{labels}` as written.
pub fn scrape_text(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

pub async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let rsp = RawConnection::open(addr).await.get("/metrics").await;
    assert_eq!(rsp.status, 200);
    assert!(rsp.header("content-type").unwrap().contains("openmetrics-text"));
    scrape_text(&rsp.body_text())
}

pub fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {:#?}", samples.keys().collect::<Vec<_>>()))
}
