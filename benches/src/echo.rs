//! The benchmarked call, `{"name":"alice"}` -> `{"message":"Hello alice"}`,
//! as each stack spells it.

use micro::prelude::*;
use micro::stream::Stream;

/// The request of every stack but tonic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    /// Who to greet.
    pub name: String,
}

/// The response of every stack but tonic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// The greeting.
    pub message: String,
}

/// The greeting, shared by every server.
pub fn greet(name: &str) -> String {
    format!("Hello {name}")
}

/// The micro service.
pub struct Helloworld;

#[micro::service]
impl Helloworld {
    /// Says hello.
    #[endpoint]
    async fn greeting(&self, req: Request) -> micro::Result<Response> {
        Ok(Response {
            message: greet(&req.name),
        })
    }

    /// Answers each request on the stream.
    #[endpoint]
    async fn chat(&self, mut stream: Stream<Request, Response>) -> micro::Result<()> {
        while let Some(req) = stream.recv().await? {
            stream
                .send(Response {
                    message: greet(&req.name),
                })
                .await?;
        }
        Ok(())
    }
}

/// Counts the messages published to [`EVENTS`]: the pub/sub comparison.
#[derive(Default)]
pub struct Counter {
    received: std::sync::atomic::AtomicU64,
}

/// The topic of the pub/sub comparison.
pub const EVENTS: &str = "bench.events";

#[micro::service]
impl Counter {
    /// Counts one message.
    #[subscribe(topic = "bench.events")]
    async fn on_event(&self, _event: Request) -> micro::Result<()> {
        self.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// How many messages arrived.
    #[endpoint]
    async fn received(&self, _req: Empty) -> micro::Result<u64> {
        Ok(self.received.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// No fields.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

/// The tonic peer, generated from `proto/echo.proto`.
pub mod grpc {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("echo");
}

/// The tarpc peer.
#[tarpc::service]
pub trait Greeter {
    /// Says hello.
    async fn greeting(req: Request) -> Response;
}
