//! Calls the helloworld service with the generated typed client.
//!
//! ```sh
//! cargo run -p micro-examples --example helloworld          # in one terminal
//! cargo run -p micro-examples --example helloworld-client -- alice
//! ```
//!
//! The client finds the service by name over mDNS. Give an address as the
//! second argument to call it directly instead.

use micro::Client;
use micro_examples::helloworld::{HelloworldClient, Request};

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "alice".to_owned());
    let hello = HelloworldClient::new("helloworld", Client::default());
    let call = hello.greeting(Request { name });
    let rsp = match args.next() {
        Some(address) => call.address(address).await?,
        None => call.await?,
    };
    println!("{}", rsp.message);
    Ok(())
}
