//! Go Micro v5's HTTP transport, byte for byte, in both directions: a Go
//! Micro client calling a micro server, and micro's client calling a Go
//! Micro server. Go cannot be built here, so each Go peer is played from its
//! source: `transport/http_client.go` writes a request with Go's
//! `http.Request.Write` (request line, Host, User-Agent, Content-Length,
//! then the headers sorted by name), and `transport/http_socket.go` answers
//! with `http.Response.Write`: always `200 OK`, the request headers copied
//! back, the error JSON in `Micro-Error`.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use micro::Flags;
use micro::codec::Codec;
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Node, RegisterOptions, Registry};
use micro::service::Running;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use support::{RawConnection, RawResponse};

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    message: String,
}

struct Helloworld;

#[micro::service]
impl Helloworld {
    #[endpoint]
    async fn greeting(&self, req: Request) -> Result<Response> {
        Ok(Response {
            message: format!("Hello {}", req.name),
        })
    }

    #[endpoint]
    async fn missing(&self, req: Request) -> Result<Response> {
        Err(Error::not_found(
            "go.micro.srv.helloworld",
            format!("no user {}", req.name),
        ))
    }

    #[endpoint]
    async fn crash(&self, _req: Request) -> Result<Response> {
        panic!("crashed")
    }
}

async fn server() -> Running {
    Service::new("helloworld")
        .flags(Flags::none())
        .registry(Arc::new(MemoryRegistry::new()))
        .address("127.0.0.1:0")
        .handle(Helloworld)
        .start()
        .await
        .unwrap()
}

/// The bytes Go's `http.Request.Write` produces for a Go Micro v5 client call.
fn go_request(addr: SocketAddr, content_type: &str, endpoint_headers: &[(&str, &str)], id: u64, body: &str) -> Vec<u8> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    headers.insert("Accept".into(), content_type.into());
    headers.insert("Content-Type".into(), content_type.into());
    headers.insert("Micro-Id".into(), id.to_string());
    headers.insert("Micro-Service".into(), "helloworld".into());
    headers.insert("Timeout".into(), "5000000000".into());
    for (k, v) in endpoint_headers {
        headers.insert((*k).into(), (*v).into());
    }
    let mut out = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

fn endpoint(name: &str) -> [(&'static str, &str); 2] {
    [("Micro-Endpoint", name), ("Micro-Method", name)]
}

fn micro_error(rsp: &RawResponse) -> micro::Error {
    let header = rsp.header("micro-error").expect("a Micro-Error header");
    serde_json::from_str(header).unwrap_or_else(|e| panic!("Micro-Error is not error JSON ({e}): {header}"))
}

#[tokio::test]
async fn a_go_client_request_is_answered_as_go_micro_answers_it() {
    let running = server().await;
    let addr = running.local_addr();
    let mut conn = RawConnection::open(addr).await;
    conn.send_raw(&go_request(
        addr,
        "application/json",
        &endpoint("Helloworld.Greeting"),
        0,
        "{\"name\":\"alice\"}\n",
    ))
    .await;
    let rsp = conn.read_response().await;
    assert_eq!(rsp.status, 200);
    assert_eq!(
        rsp.body_text(),
        "{\"message\":\"Hello alice\"}\n",
        "what Go's json.Encoder writes"
    );
    assert_eq!(rsp.header("content-type"), Some("application/json"));
    let names: Vec<&str> = rsp.headers.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["content-length", "content-type", "date"],
        "the body's headers and no error; the call headers are not echoed"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_go_client_gets_every_error_as_200_with_micro_error_on_one_connection() {
    let running = server().await;
    let addr = running.local_addr();
    let mut conn = RawConnection::open(addr).await;
    let cases = [
        (
            "Helloworld.Missing",
            "{\"name\":\"bob\"}\n",
            404,
            "no user bob",
            "go.micro.srv.helloworld",
        ),
        (
            "Helloworld.Nope",
            "{\"name\":\"bob\"}\n",
            404,
            "unknown endpoint Helloworld.Nope",
            "go.micro.server",
        ),
        (
            "Nope.Greeting",
            "{\"name\":\"bob\"}\n",
            404,
            "unknown service Nope",
            "go.micro.server",
        ),
        (
            "Helloworld.Crash",
            "{\"name\":\"bob\"}\n",
            500,
            "panic recovered: crashed",
            "go.micro.server",
        ),
        (
            "Helloworld.Greeting",
            "{\"name\":",
            400,
            "cannot decode application/json body",
            "go.micro.server",
        ),
        (
            "Helloworld.Greeting",
            "{\"name\":7}",
            400,
            "invalid type",
            "go.micro.server",
        ),
    ];
    for (id, (name, body, code, detail, source)) in (1u64..).zip(cases) {
        conn.send_raw(&go_request(addr, "application/json", &endpoint(name), id, body))
            .await;
        let rsp = conn.read_response().await;
        assert_eq!(
            rsp.status, 200,
            "{name}: a Go client treats any other status as a transport failure"
        );
        let err = micro_error(&rsp);
        assert_eq!((err.code, err.id.as_str()), (code, source), "{name}");
        assert!(err.detail.contains(detail), "{name}: {}", err.detail);
        assert_eq!(err.status, micro::Error::new("", "", code).status);
        assert!(rsp.body.is_empty(), "{name}: the error travels in the header only");
        assert_eq!(
            rsp.header("x-micro-error"),
            rsp.header("micro-error"),
            "{name}: Go's server writes it twice"
        );
    }
    conn.send_raw(&go_request(
        addr,
        "application/json",
        &endpoint("Helloworld.Greeting"),
        99,
        "{\"name\":\"eve\"}\n",
    ))
    .await;
    let rsp = conn.read_response().await;
    assert_eq!(
        (rsp.status, rsp.body_text().as_str()),
        (200, "{\"message\":\"Hello eve\"}\n")
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_go_client_on_the_legacy_json_rpc_codec_is_served() {
    // A Go client sends this to a node whose metadata names no protocol.
    let running = server().await;
    let addr = running.local_addr();
    let mut conn = RawConnection::open(addr).await;
    let envelope = "{\"method\":\"Helloworld.Greeting\",\"params\":[{\"name\":\"alice\"}],\"id\":0}\n";
    conn.send_raw(&go_request(
        addr,
        "application/json-rpc",
        &endpoint("Helloworld.Greeting"),
        0,
        envelope,
    ))
    .await;
    let rsp = conn.read_response().await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.header("content-type"), Some("application/json-rpc"));
    assert_eq!(
        rsp.body_text(),
        "{\"id\":\"0\",\"result\":{\"message\":\"Hello alice\"},\"error\":null}\n"
    );
    // The endpoint may come from the envelope alone.
    let envelope = "{\"method\":\"Helloworld.Greeting\",\"params\":[{\"name\":\"bob\"}],\"id\":1}\n";
    conn.send_raw(&go_request(addr, "application/json-rpc", &[], 1, envelope))
        .await;
    let rsp = conn.read_response().await;
    assert_eq!(
        rsp.body_text(),
        "{\"id\":\"1\",\"result\":{\"message\":\"Hello bob\"},\"error\":null}\n"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn x_prefixed_call_headers_are_read() {
    let running = server().await;
    let addr = running.local_addr();
    let mut conn = RawConnection::open(addr).await;
    let headers = [("X-Micro-Endpoint", "Helloworld.Greeting")];
    conn.send_raw(&go_request(addr, "application/json", &headers, 3, "{\"name\":\"x\"}\n"))
        .await;
    let rsp = conn.read_response().await;
    assert_eq!(
        (rsp.status, rsp.body_text().as_str()),
        (200, "{\"message\":\"Hello x\"}\n")
    );
    running.stop().await.unwrap();
}

/// One request as the fake Go server read it.
#[derive(Debug, Default, Clone)]
struct Seen {
    request_line: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A Go Micro v5 server played byte for byte: it answers every request on a
/// connection with `respond(request)` as `(Micro-Error, body)`.
async fn go_server(respond: fn(&Seen) -> (Option<String>, String)) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            tokio::spawn(serve_go_connection(stream, log, respond));
        }
    });
    (addr, seen)
}

async fn serve_go_connection(
    stream: TcpStream,
    log: Arc<Mutex<Vec<Seen>>>,
    respond: fn(&Seen) -> (Option<String>, String),
) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request = Seen::default();
        if stream.read_line(&mut request.request_line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            request.headers.insert(canonical(k.trim()), v.trim().to_owned());
        }
        let length: usize = request.headers.get("Content-Length").map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        request.body = String::from_utf8(body).unwrap();
        let (error, body) = respond(&request);
        // http_socket.go sendHTTP1: the request headers copied, then the message headers set.
        let mut headers: BTreeMap<String, String> = request.headers.clone();
        for hop in [
            "Content-Length",
            "Host",
            "User-Agent",
            "Accept-Encoding",
            "Transfer-Encoding",
        ] {
            headers.remove(hop);
        }
        if let Some(error) = error {
            headers.insert("Micro-Error".into(), error);
        }
        let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        log.lock().unwrap().push(request);
        stream.get_mut().write_all(out.as_bytes()).await.unwrap();
    }
}

/// Go's `http.CanonicalHeaderKey`.
fn canonical(key: &str) -> String {
    key.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn greet(request: &Seen) -> (Option<String>, String) {
    let req: Request = serde_json::from_str(&request.body).unwrap();
    (None, format!("{{\"message\":\"Hi {}\"}}\n", req.name))
}

fn refuse(_: &Seen) -> (Option<String>, String) {
    let error = r#"{"id":"go.micro.srv.greeter","code":403,"detail":"not allowed","status":"Forbidden"}"#;
    (Some(error.to_owned()), String::new())
}

fn legacy(request: &Seen) -> (Option<String>, String) {
    let envelope: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    let name = envelope["params"][0]["name"].as_str().unwrap();
    let id = envelope["id"].to_string();
    (
        None,
        format!("{{\"id\":\"{id}\",\"result\":{{\"message\":\"Hi {name}\"}},\"error\":null}}\n"),
    )
}

#[tokio::test]
async fn micro_calls_a_go_micro_server() {
    let (addr, seen) = go_server(greet).await;
    let client = Client::new(Arc::new(MemoryRegistry::new()));
    let call = || {
        client
            .call::<_, Response>("greeter", "Greeter.Hello", Request { name: "alice".into() })
            .address(addr.to_string())
            .content_type(Codec::Json)
            .metadata("X-User", "alice")
    };
    assert_eq!(call().await.unwrap().message, "Hi alice");
    assert_eq!(
        call().await.unwrap().message,
        "Hi alice",
        "again, on the kept-alive connection"
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.request_line.trim_end(), "POST / HTTP/1.1");
    let header = |name: &str| first.headers.get(name).map(String::as_str);
    assert_eq!(header("Content-Type"), Some("application/json"));
    assert_eq!(header("Micro-Endpoint"), Some("Greeter.Hello"));
    assert_eq!(header("Micro-Service"), Some("greeter"));
    assert_eq!(header("X-User"), Some("alice"));
    assert!(header("Micro-Id").is_some_and(|id| id.parse::<u64>().is_ok()));
    let timeout: u64 = header("Timeout").unwrap().parse().unwrap();
    assert!(
        timeout > 29_000_000_000 && timeout <= 30_000_000_000,
        "nanoseconds of the 30 s default: {timeout}"
    );
}

#[tokio::test]
async fn a_go_micro_error_becomes_a_micro_error() {
    let (addr, _) = go_server(refuse).await;
    let client = Client::new(Arc::new(MemoryRegistry::new()));
    let err = client
        .call::<_, Response>("greeter", "Greeter.Hello", Request { name: "x".into() })
        .address(addr.to_string())
        .content_type(Codec::Json)
        .await
        .unwrap_err();
    assert_eq!(
        (err.id.as_str(), err.code, err.detail.as_str(), err.status.as_str()),
        ("go.micro.srv.greeter", 403, "not allowed", "Forbidden")
    );
}

#[tokio::test]
async fn nodes_without_protocol_metadata_get_the_legacy_json_rpc_codec_as_go_clients_send_it() {
    let (addr, seen) = go_server(legacy).await;
    let registry = MemoryRegistry::new();
    let service = micro::registry::Service {
        name: "greeter".into(),
        version: "latest".into(),
        nodes: vec![Node {
            id: "greeter-legacy".into(),
            address: addr.to_string(),
            metadata: BTreeMap::new(),
        }],
        ..micro::registry::Service::default()
    };
    registry.register(&service, RegisterOptions::default()).await.unwrap();
    let client = Client::new(Arc::new(registry));
    let rsp: Response = client
        .call("greeter", "Greeter.Hello", Request { name: "bob".into() })
        .await
        .unwrap();
    assert_eq!(rsp.message, "Hi bob");
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(
        request.headers.get("Content-Type").map(String::as_str),
        Some("application/json-rpc")
    );
    let envelope: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(envelope["method"], "Greeter.Hello");
    assert_eq!(envelope["params"][0]["name"], "bob");
}
