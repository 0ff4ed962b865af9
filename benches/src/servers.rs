//! The server of each stack, run in a process of its own (`harness serve
//! <server>`) on a single-threaded tokio runtime, bound to 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tarpc::server::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::echo::{self, Greeter, Request, Response, grpc};

/// The servers, one process each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// micro's `#[micro::service]` on its HTTP/1.1 + h2c port, with the
    /// layers a service installs by default (metrics, load shedding).
    Micro,
    /// The same service with none of them (`Observe::none()`).
    MicroBare,
    /// hyper with a hand-written JSON handler.
    Hyper,
    /// tonic unary and streaming gRPC.
    Tonic,
    /// tarpc over TCP with bincode.
    Tarpc,
    /// Length-prefixed JSON frames over TCP: the floor.
    Tcp,
    /// A micro subscriber counting messages on the HTTP broker (mDNS registry).
    CounterHttp,
    /// A micro subscriber counting messages on NATS (`MICRO_TEST_NATS_URL`).
    CounterNats,
    /// Go Micro's helloworld (`micro/tests/gomicro`, named by
    /// `MICRO_BENCH_GOMICRO`), on one OS thread as the others have one.
    GoMicro,
}

impl Server {
    /// Every server.
    pub const ALL: [Server; 6] = [
        Server::Micro,
        Server::MicroBare,
        Server::Hyper,
        Server::Tonic,
        Server::Tarpc,
        Server::Tcp,
    ];

    /// The subscribers of the pub/sub comparison.
    pub const COUNTERS: [Server; 2] = [Server::CounterHttp, Server::CounterNats];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Server::Micro => "micro",
            Server::MicroBare => "micro-bare",
            Server::Hyper => "hyper",
            Server::Tonic => "tonic",
            Server::Tarpc => "tarpc",
            Server::Tcp => "tcp",
            Server::CounterHttp => "http broker",
            Server::CounterNats => "nats",
            Server::GoMicro => "go micro",
        }
    }

    /// The server named `name`.
    pub fn parse(name: &str) -> Option<Server> {
        Server::ALL
            .into_iter()
            .chain(Server::COUNTERS)
            .chain([Server::GoMicro])
            .find(|s| s.name() == name)
    }
}

/// The Go Micro program, if `MICRO_BENCH_GOMICRO` names it.
pub fn gomicro_program() -> Option<String> {
    std::env::var("MICRO_BENCH_GOMICRO").ok().filter(|p| !p.is_empty())
}

/// Serves until killed; prints `READY <address>` once listening.
pub async fn serve(server: Server) -> Result<(), Box<dyn std::error::Error>> {
    let ready = |address: SocketAddr| println!("READY {address}");
    match server {
        Server::GoMicro => return Err("go micro is a Go program of its own: see gomicro_program".into()),
        Server::Micro | Server::MicroBare => {
            let observe = match server {
                Server::MicroBare => micro::observe::Observe::none(),
                _ => micro::observe::Observe::default(),
            };
            let running = micro::Service::new("helloworld")
                .flags(micro::Flags::none())
                .observe(observe)
                .registry(Arc::new(micro::registry::MemoryRegistry::new()))
                .address("127.0.0.1:0")
                .handle(echo::Helloworld)
                .start()
                .await?;
            ready(running.local_addr());
            std::future::pending::<()>().await;
        }
        Server::Hyper => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            ready(listener.local_addr()?);
            loop {
                let (socket, _) = listener.accept().await?;
                socket.set_nodelay(true)?;
                tokio::spawn(async move {
                    let service = service_fn(hyper_greeting);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        }
        Server::Tonic => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            ready(listener.local_addr()?);
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            tonic::transport::Server::builder()
                .add_service(grpc::helloworld_server::HelloworldServer::new(TonicGreeter))
                .serve_with_incoming(incoming)
                .await?;
        }
        Server::Tarpc => {
            let mut incoming =
                tarpc::serde_transport::tcp::listen("127.0.0.1:0", tarpc::tokio_serde::formats::Bincode::default)
                    .await?;
            ready(incoming.local_addr());
            while let Some(transport) = incoming.next().await {
                let Ok(transport) = transport else { continue };
                let _ = transport.get_ref().set_nodelay(true);
                tokio::spawn(
                    tarpc::server::BaseChannel::with_defaults(transport)
                        .execute(TarpcGreeter.serve())
                        .for_each(|response| async move {
                            tokio::spawn(response);
                        }),
                );
            }
        }
        Server::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            ready(listener.local_addr()?);
            loop {
                let (socket, _) = listener.accept().await?;
                socket.set_nodelay(true)?;
                tokio::spawn(tcp_connection(socket));
            }
        }
        Server::CounterHttp | Server::CounterNats => {
            let mut service = micro::Service::new("bench-counter")
                .flags(micro::Flags::none())
                .address("127.0.0.1:0")
                .handle(echo::Counter::default());
            if server == Server::CounterNats {
                service = service.broker(Arc::new(micro::broker::NatsBroker::new(&nats_url()?)));
            }
            let running = service.start().await?;
            ready(running.local_addr());
            std::future::pending::<()>().await;
        }
    }
    Ok(())
}

async fn hyper_greeting(
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let answer = match request.into_body().collect().await {
        Ok(body) => match serde_json::from_slice::<Request>(&body.to_bytes()) {
            Ok(req) => {
                let mut body = serde_json::to_vec(&Response {
                    message: echo::greet(&req.name),
                })
                .unwrap_or_default();
                body.push(b'\n');
                hyper::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
            }
            Err(_) => hyper::Response::builder().status(400).body(Full::new(Bytes::new())),
        },
        Err(_) => hyper::Response::builder().status(400).body(Full::new(Bytes::new())),
    };
    Ok(answer.unwrap_or_default())
}

struct TonicGreeter;

#[tonic::async_trait]
impl grpc::helloworld_server::Helloworld for TonicGreeter {
    async fn greeting(
        &self,
        request: tonic::Request<grpc::Request>,
    ) -> Result<tonic::Response<grpc::Response>, tonic::Status> {
        Ok(tonic::Response::new(grpc::Response {
            message: echo::greet(&request.into_inner().name),
        }))
    }

    type ChatStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<grpc::Response, tonic::Status>> + Send + 'static>>;

    async fn chat(
        &self,
        request: tonic::Request<tonic::Streaming<grpc::Request>>,
    ) -> Result<tonic::Response<Self::ChatStream>, tonic::Status> {
        let replies = request.into_inner().map(|req| {
            req.map(|req| grpc::Response {
                message: echo::greet(&req.name),
            })
        });
        Ok(tonic::Response::new(Box::pin(replies)))
    }
}

#[derive(Clone)]
struct TarpcGreeter;

impl Greeter for TarpcGreeter {
    async fn greeting(self, _: tarpc::context::Context, req: Request) -> Response {
        Response {
            message: echo::greet(&req.name),
        }
    }
}

/// One connection of the floor: `u32` big-endian length, then JSON.
async fn tcp_connection(socket: TcpStream) {
    let (read, write) = socket.into_split();
    let mut read = BufReader::new(read);
    let mut write = BufWriter::new(write);
    let mut frame = Vec::new();
    loop {
        let Ok(length) = read.read_u32().await else { return };
        frame.resize(length as usize, 0);
        if read.read_exact(&mut frame).await.is_err() {
            return;
        }
        let Ok(req) = serde_json::from_slice::<Request>(&frame) else {
            return;
        };
        let Ok(body) = serde_json::to_vec(&Response {
            message: echo::greet(&req.name),
        }) else {
            return;
        };
        let sent = async {
            write.write_u32(body.len() as u32).await?;
            write.write_all(&body).await?;
            write.flush().await
        };
        if sent.await.is_err() {
            return;
        }
    }
}

/// The NATS server of the pub/sub comparison.
pub fn nats_url() -> Result<String, String> {
    std::env::var("MICRO_TEST_NATS_URL").map_err(|_| "MICRO_TEST_NATS_URL is not set".to_owned())
}
