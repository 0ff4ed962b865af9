//! Metadata, deadlines and errors, in one process: a greeter service and a
//! client calling it through the shared in-memory registry.
//!
//! ```sh
//! cargo run -p micro-examples --example context
//! ```

use std::time::Duration;

use micro::Service;
use micro_examples::greeter::{Greeter, GreeterClient, HelloRequest, LookupRequest, SlowRequest};

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    let service = Service::new("greeter").address("127.0.0.1:0");
    let client = service.client();
    let running = service.handle(Greeter::new(client.clone())).start().await?;
    let greeter = GreeterClient::new("greeter", client);

    // Metadata travels as headers and reaches the handler's context.
    let rsp = greeter
        .hello(HelloRequest {
            greeting: "Hello".into(),
        })
        .metadata("X-User", "alice")
        .timeout(Duration::from_secs(2))
        .await?;
    println!(
        "hello:  {} ({:?} ms of the deadline left on arrival)",
        rsp.message, rsp.remaining_ms
    );

    // A call made inside a handler inherits metadata and the remaining deadline.
    let rsp = greeter
        .relay(HelloRequest { greeting: "Hi".into() })
        .metadata("X-User", "bob")
        .timeout(Duration::from_millis(800))
        .await?;
    println!(
        "relay:  {} ({:?} ms left at the second hop)",
        rsp.message, rsp.remaining_ms
    );

    // Errors arrive as Go Micro errors, with their code.
    match greeter.lookup(LookupRequest { id: "7".into() }).await {
        Ok(user) => println!("lookup: {user:?}"),
        Err(e) => println!("lookup: error {} {}: {}", e.code, e.status, e.detail),
    }

    // The deadline is enforced on the server and the client.
    match greeter
        .slow(SlowRequest { millis: 5_000 })
        .timeout(Duration::from_millis(200))
        .await
    {
        Ok(_) => println!("slow:   finished"),
        Err(e) => println!("slow:   error {} {}: {}", e.code, e.status, e.detail),
    }

    running.stop().await?;
    Ok(())
}
