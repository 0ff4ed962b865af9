//! Several instances of a helloworld service and a client that spreads
//! calls over them, found through mDNS with no configuration.
//!
//! ```sh
//! cargo run -p micro-examples --example cluster -- 3 30
//! ```
//!
//! Each instance is a separate `Service` with its own mDNS registry, as
//! separate processes would be; the client discovers all of them by name.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use micro::client::ClientOptions;
use micro::prelude::*;
use micro::registry::MdnsRegistry;
use micro::selector::Strategy;
use micro_examples::helloworld::{Request, Response};

/// One instance of the helloworld handler, numbered.
struct Instance {
    number: usize,
    calls: Arc<AtomicUsize>,
}

#[micro::service(name = "Helloworld", client = "HelloClient")]
impl Instance {
    /// Greeting says hello, and which instance answered.
    #[endpoint(idempotent)]
    async fn greeting(&self, req: Request) -> Result<Response> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Response {
            message: format!("Hello {} from instance {}", req.name, self.number),
        })
    }
}

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    let mut args = std::env::args().skip(1);
    let instances: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);

    let mut running = Vec::new();
    let mut counters = Vec::new();
    for number in 1..=instances {
        let calls = Arc::new(AtomicUsize::new(0));
        counters.push(Arc::clone(&calls));
        let service = Service::new("helloworld-cluster")
            .flags(micro::Flags::none())
            .address("127.0.0.1:0")
            .metadata("instance", number.to_string())
            .handle(Instance { number, calls });
        running.push(service.start().await?);
    }

    // A client of its own, as in another process: it finds every instance over mDNS.
    let registry = Arc::new(MdnsRegistry::new());
    let client = Client::with_options(registry, ClientOptions::default().selector(Strategy::RoundRobin));
    let hello = HelloClient::new("helloworld-cluster", client);
    // Discovery hears from each instance within a second or so; wait for all.
    for _ in 0..50 {
        let seen = hello.client().registry().get_service("helloworld-cluster").await;
        if seen.is_ok_and(|s| s.iter().map(|s| s.nodes.len()).sum::<usize>() == instances) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..calls {
        let rsp = hello
            .greeting(Request {
                name: format!("caller-{i}"),
            })
            .await?;
        println!("{}", rsp.message);
    }
    for (number, count) in counters.iter().enumerate() {
        println!("instance {} served {} calls", number + 1, count.load(Ordering::Relaxed));
    }
    for service in running {
        service.stop().await?;
    }
    Ok(())
}
