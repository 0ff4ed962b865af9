//! Services shared by the examples: a crate like this one is how a service
//! and its callers share the request types and the generated client.

pub mod greeter;
pub mod helloworld;
pub mod live;
pub mod users;

/// Logs to stderr at `info`, or as `RUST_LOG` says.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
