//! Calls the helloworld service with the generated typed client.
//!
//! ```sh
//! cargo run -p micro-examples --example helloworld          # in one terminal
//! cargo run -p micro-examples --example helloworld-client -- alice 127.0.0.1:8080
//! ```
//!
//! The registry here is in memory, so the client is given the server's
//! address; with service discovery it finds the server by name.

use micro::Client;
use micro_examples::helloworld::{HelloworldClient, Request};

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro_examples::init_logging();
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "alice".to_owned());
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let hello = HelloworldClient::new("helloworld", Client::default());
    let rsp = hello.greeting(Request { name }).address(address).await?;
    println!("{}", rsp.message);
    Ok(())
}
