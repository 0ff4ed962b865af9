//! The audit service: subscribes to `user.created` in the `audit` queue
//! group over the default HTTP broker, found through mDNS.
//!
//! ```sh
//! cargo run -p micro-examples --example subscriber
//! cargo run -p micro-examples --example publisher -- 5
//! ```
//!
//! Start it twice and the events are shared between the two. With NATS:
//! `--broker nats --broker_address nats://127.0.0.1:4222` on both sides
//! (the `nats` feature of micro).

use micro::Service;
use micro_examples::users::Audit;

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    Service::new("audit").address("127.0.0.1:0").handle(Audit).run().await
}
