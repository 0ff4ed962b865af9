//! An in-process call counted in instructions: makes a given number of
//! calls through micro's generated client with `local_calls(true)`, for
//! `valgrind --tool=callgrind`. `benches/call-count.sh "micro in-process"`
//! runs it twice, with different numbers of calls, and prints the count of
//! one call.
//!
//! ```sh
//! ../shared/netns-run benches/target/release/local-count 1000
//! ```

#[path = "../echo.rs"]
#[allow(dead_code)]
mod echo;

use std::sync::Arc;

use micro::client::ClientOptions;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let Some(Ok(calls)) = std::env::args().nth(1).map(|n| n.parse::<u32>()) else {
        eprintln!("usage: local-count <calls>");
        std::process::exit(2);
    };
    let registry: Arc<dyn micro::registry::Registry> = Arc::new(micro::registry::MemoryRegistry::new());
    let running = micro::Service::new("helloworld")
        .flags(micro::Flags::none())
        .registry(Arc::clone(&registry))
        .address("127.0.0.1:0")
        .handle(echo::Helloworld)
        .start()
        .await?;
    // Sharing the service's table of servers it may call in place.
    let table = running.client().options().in_process.clone();
    let options = ClientOptions::default().local_calls(true).in_process(table);
    let client = echo::HelloworldClient::new("helloworld", micro::Client::with_options(registry, options));
    for _ in 0..calls {
        let request = echo::Request { name: "alice".into() };
        std::hint::black_box(client.greeting(request).await?);
    }
    running.stop().await?;
    Ok(())
}
