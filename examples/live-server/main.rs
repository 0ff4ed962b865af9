//! The live service on 127.0.0.1:8081: a counter and a chat room.
//!
//! ```sh
//! cargo run -p micro-examples --example live-server
//! cargo run -p micro-examples --example live-client -- alice hello everyone
//! ```

use micro::Service;
use micro_examples::live::Live;

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    Service::new("live")
        .address("127.0.0.1:8081")
        .handle(Live::default())
        .run()
        .await
}
