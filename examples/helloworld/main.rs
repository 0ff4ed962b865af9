//! The helloworld service on 127.0.0.1:8080.
//!
//! ```sh
//! cargo run -p micro-examples --example helloworld
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Helloworld.Greeting' \
//!      -d '{"name": "alice"}' http://localhost:8080
//! ```

use micro::Service;
use micro_examples::helloworld::Helloworld;

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    Service::new("helloworld")
        .address("127.0.0.1:8080")
        .handle(Helloworld)
        .run()
        .await
}
