//! Two services tracing one request, a custom layer, and the metrics and
//! health endpoints: `front` (on 127.0.0.1:8081) greets through `back`.
//!
//! ```sh
//! cargo run -p micro-examples --example observability
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Front.Hello' \
//!      -d '{"name": "alice"}' http://127.0.0.1:8081
//! curl http://127.0.0.1:8081/metrics
//! curl http://127.0.0.1:8081/health/ready
//! ```
//!
//! Both services log with the spans their events happen in (`rpc.serve`,
//! `rpc.call`), and the two services' spans share one `trace_id`.

use std::sync::Arc;
use std::time::Instant;

use micro::middleware::{Next, from_fn};
use micro::prelude::*;
use micro::registry::{MemoryRegistry, Registry};
use micro::server::{HandlerCall, Response as HandlerResponse};
use micro_examples::helloworld::{Helloworld, HelloworldClient, Request, Response};

/// The front service: greets through the helloworld service.
pub struct Front {
    helloworld: HelloworldClient,
}

#[micro::service]
impl Front {
    /// Hello asks the back service for the greeting.
    #[endpoint]
    async fn hello(&self, req: Request) -> Result<Response> {
        tracing::info!(name = %req.name, "asking back");
        self.helloworld.greeting(req).await
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    // RUST_LOG or MICRO_LOG_LEVEL; events print inside their spans.
    micro::logging::init();
    let registry: Arc<dyn Registry> = Arc::new(MemoryRegistry::new());

    let back = Service::new("helloworld")
        .address("127.0.0.1:0")
        .registry(Arc::clone(&registry))
        .handle(Helloworld)
        .start()
        .await?;

    // A layer of our own around every call front serves: it sees the
    // endpoint and the context, and times the handler.
    let timing = from_fn(
        |call: HandlerCall, next: Next<HandlerCall, HandlerResponse>| async move {
            let endpoint = call.endpoint().name();
            let started = Instant::now();
            let answer = next.run(call).await;
            tracing::info!(endpoint, ok = answer.is_ok(), took = ?started.elapsed(), "served");
            answer
        },
    );
    let front = Service::new("front")
        .address("127.0.0.1:8081")
        .registry(Arc::clone(&registry))
        .layer(timing);
    let helloworld = HelloworldClient::new("helloworld", front.client());
    let front = front.handle(Front { helloworld }).start().await?;
    println!("front on {}; helloworld on {}", front.local_addr(), back.local_addr());

    tokio::signal::ctrl_c().await.ok();
    front.stop().await?;
    back.stop().await?;
    Ok(())
}
