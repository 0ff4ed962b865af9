//! The client side of each stack: one call of the echo, and a stream of
//! echoes for the streaming comparison.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Mutex;

use crate::echo::{GreeterClient, HelloworldClient, Request, Response, grpc};
use crate::servers::Server;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A client stack: what is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// micro's typed client, JSON over HTTP/1.1 (what curl and Go speak).
    MicroJsonH1,
    /// micro's typed client, MessagePack over HTTP/1.1 (micro to micro).
    MicroMsgpackH1,
    /// micro's typed client, MessagePack over h2c.
    MicroMsgpackH2c,
    /// micro's typed client, MessagePack over mux (micro to micro, the default
    /// between micro nodes).
    MicroMsgpackMux,
    /// hyper's pooled client and server, JSON over HTTP/1.1, hand-written.
    HyperJsonH1,
    /// tonic unary gRPC.
    Tonic,
    /// JSON over HTTP/1.1 to micro's service without its default layers.
    MicroBareJsonH1,
    /// tarpc with bincode over TCP.
    TarpcBincode,
    /// Length-prefixed JSON frames over TCP, one connection per caller.
    TcpFloor,
    /// Go Micro's server, called by micro's client as a Go Micro client calls
    /// it: JSON over HTTP/1.1 with `Micro-Id` and `Micro-Service`.
    GoMicroJsonH1,
}

impl Stack {
    /// Every stack, in table order.
    pub const ALL: [Stack; 10] = [
        Stack::MicroJsonH1,
        Stack::MicroBareJsonH1,
        Stack::MicroMsgpackH1,
        Stack::MicroMsgpackH2c,
        Stack::MicroMsgpackMux,
        Stack::HyperJsonH1,
        Stack::Tonic,
        Stack::TarpcBincode,
        Stack::TcpFloor,
        Stack::GoMicroJsonH1,
    ];

    /// The row name.
    pub fn name(self) -> &'static str {
        match self {
            Stack::MicroJsonH1 => "micro json http/1.1",
            Stack::MicroBareJsonH1 => "micro-bare json http/1.1",
            Stack::MicroMsgpackH1 => "micro msgpack http/1.1",
            Stack::MicroMsgpackH2c => "micro msgpack h2c",
            Stack::MicroMsgpackMux => "micro msgpack mux",
            Stack::HyperJsonH1 => "raw hyper json http/1.1",
            Stack::Tonic => "tonic grpc",
            Stack::TarpcBincode => "tarpc bincode",
            Stack::TcpFloor => "raw tcp frames (floor)",
            Stack::GoMicroJsonH1 => "go micro server, json http/1.1",
        }
    }

    /// The server it calls.
    pub fn server(self) -> Server {
        match self {
            Stack::MicroJsonH1 | Stack::MicroMsgpackH1 | Stack::MicroMsgpackH2c | Stack::MicroMsgpackMux => {
                Server::Micro
            }
            Stack::MicroBareJsonH1 => Server::MicroBare,
            Stack::HyperJsonH1 => Server::Hyper,
            Stack::Tonic => Server::Tonic,
            Stack::TarpcBincode => Server::Tarpc,
            Stack::TcpFloor => Server::Tcp,
            Stack::GoMicroJsonH1 => Server::GoMicro,
        }
    }

    /// A connected caller.
    pub async fn connect(self, address: SocketAddr) -> Result<Caller, Error> {
        let caller = match self {
            Stack::MicroJsonH1
            | Stack::MicroBareJsonH1
            | Stack::MicroMsgpackH1
            | Stack::MicroMsgpackH2c
            | Stack::MicroMsgpackMux => {
                use micro::codec::Codec;
                let wire = match self {
                    Stack::MicroJsonH1 | Stack::MicroBareJsonH1 => Wire::Http(Codec::Json, false),
                    Stack::MicroMsgpackH1 => Wire::Http(Codec::Msgpack, false),
                    Stack::MicroMsgpackH2c => Wire::Http(Codec::Msgpack, true),
                    _ => Wire::Mux,
                };
                Caller::Micro(micro_client(address, wire).await?)
            }
            Stack::GoMicroJsonH1 => Caller::Micro(micro_client(address, Wire::GoMicro).await?),
            Stack::HyperJsonH1 => {
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                let client = HyperClient::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(128)
                    .build(connector);
                Caller::Hyper(client, Arc::from(format!("http://{address}/")))
            }
            Stack::Tonic => {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                Caller::Tonic(grpc::helloworld_client::HelloworldClient::new(channel))
            }
            Stack::TarpcBincode => {
                let transport =
                    tarpc::serde_transport::tcp::connect(address, tarpc::tokio_serde::formats::Bincode::default)
                        .await?;
                transport.get_ref().set_nodelay(true)?;
                Caller::Tarpc(GreeterClient::new(tarpc::client::Config::default(), transport).spawn())
            }
            Stack::TcpFloor => Caller::Tcp(address, Arc::new(Mutex::new(TcpCaller::connect(address).await?))),
        };
        Ok(caller)
    }
}

/// How micro's client reaches the server.
#[derive(Clone, Copy, Debug)]
pub enum Wire {
    /// HTTP with this codec, h2c if set.
    Http(micro::codec::Codec, bool),
    /// mux with MessagePack, as between two micro nodes: the node's registry
    /// record says it serves both.
    Mux,
    /// JSON over HTTP/1.1 to a Go Micro node (`protocol=mucp`, no `framework`).
    GoMicro,
}

async fn micro_client(address: SocketAddr, wire: Wire) -> Result<HelloworldClient, Error> {
    use micro::registry::{MemoryRegistry, Node, RegisterOptions, Registry, Service};
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());
    // The record a micro server registers says it is one (`framework`); the
    // HTTP stacks' record leaves out that it serves mux.
    let micro_node = ("framework".to_owned(), "micro-rs".to_owned());
    let (options, metadata) = match wire {
        Wire::Http(codec, http2) => (
            micro::client::ClientOptions::default().codec(codec).http2(http2),
            BTreeMap::from([micro_node]),
        ),
        Wire::GoMicro => (
            micro::client::ClientOptions::default().codec(micro::codec::Codec::Json),
            BTreeMap::from([("protocol".to_owned(), "mucp".to_owned())]),
        ),
        Wire::Mux => (
            micro::client::ClientOptions::default(),
            BTreeMap::from([
                micro_node,
                ("mux".to_owned(), "1".to_owned()),
                ("content-types".to_owned(), "application/msgpack".to_owned()),
            ]),
        ),
    };
    let record = Service {
        name: "helloworld".into(),
        version: "latest".into(),
        nodes: vec![Node {
            id: "helloworld-1".into(),
            address: address.to_string(),
            metadata,
        }],
        ..Default::default()
    };
    registry.register(&record, RegisterOptions::default()).await?;
    Ok(HelloworldClient::new(
        "helloworld",
        micro::Client::with_options(registry, options),
    ))
}

/// One stack's caller; clones share its connections (the floor's clones
/// share one connection, so [`Caller::fork`] opens another).
#[derive(Clone)]
pub enum Caller {
    /// micro's generated client.
    Micro(HelloworldClient),
    /// hyper's pooled client and the URI.
    Hyper(HyperClient<HttpConnector, Full<Bytes>>, Arc<str>),
    /// tonic's client over one h2 channel.
    Tonic(grpc::helloworld_client::HelloworldClient<tonic::transport::Channel>),
    /// tarpc's client over one connection.
    Tarpc(GreeterClient),
    /// One floor connection.
    Tcp(SocketAddr, Arc<Mutex<TcpCaller>>),
}

fn request() -> Request {
    Request { name: "alice".into() }
}

fn check(message: &str) -> Result<(), Error> {
    if message == "Hello alice" {
        Ok(())
    } else {
        Err(format!("unexpected answer {message:?}").into())
    }
}

impl Caller {
    /// A caller for another concurrent task.
    pub async fn fork(&self) -> Result<Caller, Error> {
        match self {
            Caller::Tcp(address, _) => Ok(Caller::Tcp(
                *address,
                Arc::new(Mutex::new(TcpCaller::connect(*address).await?)),
            )),
            other => Ok(other.clone()),
        }
    }

    /// One echo.
    pub async fn call(&self) -> Result<(), Error> {
        match self {
            Caller::Micro(client) => check(&client.greeting(request()).await?.message),
            Caller::Hyper(client, uri) => {
                let body = serde_json::to_vec(&request())?;
                let http_request = hyper::Request::post(&**uri)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                let response = client.request(http_request).await?;
                let body = response.into_body().collect().await?.to_bytes();
                check(&serde_json::from_slice::<Response>(&body)?.message)
            }
            Caller::Tonic(client) => {
                let response = client.clone().greeting(grpc::Request { name: "alice".into() }).await?;
                check(&response.into_inner().message)
            }
            Caller::Tarpc(client) => check(&client.greeting(tarpc::context::current(), request()).await?.message),
            Caller::Tcp(_, connection) => check(&connection.lock().await.call().await?.message),
        }
    }
}

/// A floor connection: frames of a `u32` big-endian length and JSON.
pub struct TcpCaller {
    read: BufReader<OwnedReadHalf>,
    write: BufWriter<OwnedWriteHalf>,
    frame: Vec<u8>,
}

impl TcpCaller {
    async fn connect(address: SocketAddr) -> Result<TcpCaller, Error> {
        let socket = TcpStream::connect(address).await?;
        socket.set_nodelay(true)?;
        let (read, write) = socket.into_split();
        Ok(TcpCaller {
            read: BufReader::new(read),
            write: BufWriter::new(write),
            frame: Vec::new(),
        })
    }

    async fn call(&mut self) -> Result<Response, Error> {
        let body = serde_json::to_vec(&request())?;
        self.write.write_u32(u32::try_from(body.len())?).await?;
        self.write.write_all(&body).await?;
        self.write.flush().await?;
        let length = self.read.read_u32().await?;
        self.frame.resize(length as usize, 0);
        self.read.read_exact(&mut self.frame).await?;
        Ok(serde_json::from_slice(&self.frame)?)
    }
}

/// The streaming comparison: `messages` echoes over one bidirectional
/// stream, sending and receiving at once; messages per second.
pub async fn stream_rate(server: Server, address: SocketAddr, messages: u64) -> Result<f64, Error> {
    let started;
    match server {
        Server::Micro => {
            let client = micro_client(address, Wire::Http(micro::codec::Codec::Msgpack, true)).await?;
            let (tx, mut rx) = client.chat().await?.split();
            started = Instant::now();
            let sending = tokio::spawn(async move {
                for _ in 0..messages {
                    tx.send(request()).await?;
                }
                Ok::<_, micro::Error>(())
            });
            let mut received = 0;
            while let Some(rsp) = rx.recv().await? {
                check(&rsp.message)?;
                received += 1;
                if received == messages {
                    break;
                }
            }
            sending.await??;
        }
        Server::Tonic => {
            let mut client = grpc::helloworld_client::HelloworldClient::new(
                tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?,
            );
            let outbound = futures_util::stream::iter((0..messages).map(|_| grpc::Request { name: "alice".into() }));
            started = Instant::now();
            let mut inbound = client.chat(outbound).await?.into_inner();
            let mut received = 0;
            while let Some(rsp) = inbound.message().await? {
                check(&rsp.message)?;
                received += 1;
            }
            if received != messages {
                return Err(format!("{received} of {messages} answers").into());
            }
        }
        other => return Err(format!("{} has no streaming peer here", other.name()).into()),
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

/// The pub/sub comparison: `messages` published with `in_flight` at once
/// through `server`'s broker, until its subscriber has counted them all;
/// messages per second.
pub async fn pubsub_rate(server: Server, address: SocketAddr, messages: u64, in_flight: usize) -> Result<f64, Error> {
    use futures_util::StreamExt;
    use micro::broker::{Broker, HttpBroker, NatsBroker};
    use micro::registry::{MdnsRegistry, Registry};

    use crate::echo::{CounterClient, EVENTS, Empty};

    let registry: Arc<dyn Registry> = Arc::new(MdnsRegistry::new());
    let broker: Arc<dyn Broker> = match server {
        Server::CounterNats => Arc::new(NatsBroker::new(&crate::servers::nats_url()?)),
        _ => Arc::new(HttpBroker::new(Arc::clone(&registry))),
    };
    let client = micro::Client::with_options(registry, micro::client::ClientOptions::default().broker(broker));
    let counter = CounterClient::new("bench-counter", client.clone());
    let received = || async { counter.received(Empty {}).address(address.to_string()).await };
    let publisher = micro::client::Publisher::<Request>::new(EVENTS, client);
    // Until the subscriber is found and answers: discovery is not measured.
    let ready_by = Instant::now() + std::time::Duration::from_secs(10);
    while received().await? == 0 {
        if Instant::now() > ready_by {
            return Err(format!("the {} subscriber got nothing in 10 s", server.name()).into());
        }
        publisher.publish(&request()).await?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = received().await?;
    let started = Instant::now();
    let published: Vec<micro::Result<()>> = futures_util::stream::iter(0..messages)
        .map(|_| {
            let publisher = publisher.clone();
            async move { publisher.publish(&request()).await }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    if let Some(Err(e)) = published.into_iter().find(Result::is_err) {
        return Err(e.into());
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while received().await? < before + messages {
        if Instant::now() > deadline {
            return Err(format!("the {} subscriber lost messages", server.name()).into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}
