//! An in-process call: client and handler in the harness's own process, on
//! its one-thread runtime. micro with `local_calls` against the same call
//! over mux to the same process, and the handler's method called directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use micro::client::ClientOptions;

use crate::echo::{self, HelloworldClient, Request};

/// Nanoseconds per call of each way, medians of `rounds` rounds of `calls`.
pub struct InProcess {
    /// The endpoint's body called as a plain function: the floor.
    pub direct_ns: f64,
    /// micro's generated client with `local_calls(true)`.
    pub local_ns: f64,
    /// The same client over mux to the same process.
    pub mux_ns: f64,
}

/// Measures the three ways.
pub async fn measure(calls: u32, rounds: usize) -> Result<InProcess, crate::Error> {
    let registry: Arc<dyn micro::registry::Registry> = Arc::new(micro::registry::MemoryRegistry::new());
    let running = micro::Service::new("helloworld")
        .flags(micro::Flags::none())
        .registry(Arc::clone(&registry))
        .address("127.0.0.1:0")
        .handle(echo::Helloworld)
        .start()
        .await?;
    let client = |local| {
        HelloworldClient::new(
            "helloworld",
            micro::Client::with_options(
                Arc::clone(&registry),
                ClientOptions::default()
                    .local_calls(local)
                    .in_process(running.client().options().in_process.clone()),
            ),
        )
    };
    let (local, mux) = (client(true), client(false));
    let request = || Request { name: "alice".into() };
    let mut direct = Vec::new();
    let mut in_place = Vec::new();
    let mut over_mux = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..calls {
            let response = echo::Response {
                message: echo::greet(&std::hint::black_box(request()).name),
            };
            std::hint::black_box(response);
        }
        direct.push(per_call(started.elapsed(), calls));
        let started = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(local.greeting(request()).await?);
        }
        in_place.push(per_call(started.elapsed(), calls));
        let started = Instant::now();
        for _ in 0..calls / 10 {
            std::hint::black_box(mux.greeting(request()).await?);
        }
        over_mux.push(per_call(started.elapsed(), calls / 10));
    }
    running.stop().await?;
    Ok(InProcess {
        direct_ns: crate::measure::median(&mut direct),
        local_ns: crate::measure::median(&mut in_place),
        mux_ns: crate::measure::median(&mut over_mux),
    })
}

fn per_call(elapsed: Duration, calls: u32) -> f64 {
    elapsed.as_secs_f64() * 1e9 / f64::from(calls.max(1))
}
