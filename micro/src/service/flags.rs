//! Go Micro's command-line flags and their `MICRO_*` environment variables
//! (`util/cmd/cmd.go`), with clap.
//!
//! [`Service::new`](crate::Service::new) reads them from the process:
//! arguments that are not micro flags are left to the application. An
//! application with its own clap parser embeds them instead:
//!
//! ```no_run
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     micro: micro::Flags,
//!     #[arg(long)]
//!     greeting: Option<String>,
//! }
//! ```
//!
//! The `micro` section of the `--config` file is read by
//! [`Flags::from_env`] and [`Flags::parse_from`] (which `Service::new`
//! uses), not by a parser that embeds `Flags`: such an application passes
//! `Flags::from_env()?` to `Service::flags` to have it.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser};

use crate::duration::parse_duration;

/// Go Micro's flags. Each is also read from `MICRO_<NAME>`; a flag on the
/// command line wins over the environment, and both win over the builder.
#[derive(Clone, Debug, Default, Args)]
#[command(rename_all = "snake_case")]
#[non_exhaustive]
pub struct Flags {
    /// Client implementation; micro has `rpc`.
    #[arg(long, env = "MICRO_CLIENT")]
    pub client: Option<String>,
    /// Client request timeout, e.g. 500ms, 5s, 1m (default 30s).
    #[arg(long, env = "MICRO_CLIENT_REQUEST_TIMEOUT", value_parser = parse_duration)]
    pub client_request_timeout: Option<Duration>,
    /// Client retries after the first attempt (default 5).
    #[arg(long, env = "MICRO_CLIENT_RETRIES")]
    pub client_retries: Option<u32>,
    /// Idle connections kept per node (default 100).
    #[arg(long, env = "MICRO_CLIENT_POOL_SIZE")]
    pub client_pool_size: Option<usize>,
    /// How long idle connections are kept, e.g. 1m (default 1m).
    #[arg(long, env = "MICRO_CLIENT_POOL_TTL", value_parser = parse_duration)]
    pub client_pool_ttl: Option<Duration>,
    /// Registration TTL in seconds (default 90).
    #[arg(long, env = "MICRO_REGISTER_TTL", value_parser = parse_duration)]
    pub register_ttl: Option<Duration>,
    /// Re-registration interval in seconds (default 30).
    #[arg(long, env = "MICRO_REGISTER_INTERVAL", value_parser = parse_duration)]
    pub register_interval: Option<Duration>,
    /// Server implementation; micro has `mucp`.
    #[arg(long, env = "MICRO_SERVER")]
    pub server: Option<String>,
    /// Name of the service, e.g. helloworld.
    #[arg(long, env = "MICRO_SERVER_NAME")]
    pub server_name: Option<String>,
    /// Version of the service (default latest).
    #[arg(long, env = "MICRO_SERVER_VERSION")]
    pub server_version: Option<String>,
    /// Id of the node (default a UUID).
    #[arg(long, env = "MICRO_SERVER_ID")]
    pub server_id: Option<String>,
    /// Bind address, e.g. 127.0.0.1:8080 or :8080 (default :0).
    #[arg(long, env = "MICRO_SERVER_ADDRESS")]
    pub server_address: Option<String>,
    /// Address registered instead of the bind address.
    #[arg(long, env = "MICRO_SERVER_ADVERTISE")]
    pub server_advertise: Option<String>,
    /// Node metadata as key=value pairs, comma separated.
    #[arg(long, env = "MICRO_SERVER_METADATA", value_delimiter = ',')]
    pub server_metadata: Vec<String>,
    /// Largest request body in bytes (default 4194304).
    #[arg(long, env = "MICRO_SERVER_BODY_LIMIT")]
    pub server_body_limit: Option<usize>,
    /// How long shutdown waits for in-flight calls, e.g. 30s (default 30s).
    #[arg(long, env = "MICRO_SERVER_DRAIN_TIMEOUT", value_parser = parse_duration)]
    pub server_drain_timeout: Option<Duration>,
    /// Calls served at once past which calls are refused with a 503
    /// (default 10000; 0 for no limit).
    #[arg(long, env = "MICRO_SERVER_MAX_CONCURRENT_CALLS")]
    pub server_max_concurrent_calls: Option<usize>,
    /// Broker for pub/sub.
    #[arg(long, env = "MICRO_BROKER")]
    pub broker: Option<String>,
    /// Comma-separated broker addresses.
    #[arg(long, env = "MICRO_BROKER_ADDRESS")]
    pub broker_address: Option<String>,
    /// Registry for discovery: mdns (default) or memory.
    #[arg(long, env = "MICRO_REGISTRY")]
    pub registry: Option<String>,
    /// Comma-separated registry addresses.
    #[arg(long, env = "MICRO_REGISTRY_ADDRESS")]
    pub registry_address: Option<String>,
    /// Interfaces mDNS uses besides loopback: `all` (default), or names and addresses separated by commas.
    #[arg(long, env = "MICRO_MDNS_INTERFACES")]
    pub mdns_interfaces: Option<String>,
    /// Also answer and ask under Go Micro's own mDNS names, to find and be found by Go Micro v5 services.
    #[arg(long, env = "MICRO_MDNS_GO_COMPAT", num_args = 0..=1, default_missing_value = "true")]
    pub mdns_go_compat: Option<bool>,
    /// Selector strategy: random or roundrobin.
    #[arg(long, env = "MICRO_SELECTOR")]
    pub selector: Option<String>,
    /// Event stream for `#[consume]` methods and `Service::events`: file
    /// (default, a durable log in the data directory), memory, nats or redis.
    #[arg(long, env = "MICRO_EVENTS")]
    pub events: Option<String>,
    /// The event stream's address: servers for nats and redis, the log's
    /// path for file.
    #[arg(long, env = "MICRO_EVENTS_ADDRESS")]
    pub events_address: Option<String>,
    /// The service's data directory (default `$HOME/micro/<service>`), where
    /// the embedded event log and file store are kept.
    #[arg(long, env = "MICRO_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Store for `Service::store`: file (default, one file per database in
    /// the data directory's `store`), memory, postgres or redis.
    #[arg(long, env = "MICRO_STORE")]
    pub store: Option<String>,
    /// The store's address: a PostgreSQL or Redis URL, or the file store's
    /// directory.
    #[arg(long, env = "MICRO_STORE_ADDRESS")]
    pub store_address: Option<String>,
    /// The store's default database (default `micro`).
    #[arg(long, env = "MICRO_STORE_DATABASE")]
    pub store_database: Option<String>,
    /// The store's default table (default the service's name).
    #[arg(long, env = "MICRO_STORE_TABLE")]
    pub store_table: Option<String>,
    /// Transport; micro speaks `http`.
    #[arg(long, env = "MICRO_TRANSPORT")]
    pub transport: Option<String>,
    /// Comma-separated transport addresses.
    #[arg(long, env = "MICRO_TRANSPORT_ADDRESS")]
    pub transport_address: Option<String>,
    /// Tracer for distributed tracing.
    #[arg(long, env = "MICRO_TRACER")]
    pub tracer: Option<String>,
    /// Comma-separated tracer addresses.
    #[arg(long, env = "MICRO_TRACER_ADDRESS")]
    pub tracer_address: Option<String>,
    /// Auth for access control.
    #[arg(long, env = "MICRO_AUTH")]
    pub auth: Option<String>,
    /// Account id used for client authentication.
    #[arg(long, env = "MICRO_AUTH_ID")]
    pub auth_id: Option<String>,
    /// Account secret used for client authentication.
    #[arg(long, env = "MICRO_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Namespace for the service's auth account.
    #[arg(long, env = "MICRO_AUTH_NAMESPACE")]
    pub auth_namespace: Option<String>,
    /// Public key for JWT auth (base64 encoded PEM).
    #[arg(long, env = "MICRO_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<String>,
    /// Private key for JWT auth (base64 encoded PEM).
    #[arg(long, env = "MICRO_AUTH_PRIVATE_KEY", hide_env_values = true)]
    pub auth_private_key: Option<String>,
    /// A config file (JSON, YAML or TOML): its `micro` section sets these
    /// flags by name, below the environment and the command line, and the
    /// whole file is the first source of `Service::config`.
    #[arg(long, env = "MICRO_CONFIG")]
    pub config: Option<String>,
    /// Debug profiler.
    #[arg(long, env = "MICRO_DEBUG_PROFILE")]
    pub profile: Option<String>,
}

/// A standalone parser around [`Flags`], for reading them alone.
#[derive(Debug, Parser)]
#[command(name = "micro", disable_help_flag = true, disable_version_flag = true)]
struct Standalone {
    #[command(flatten)]
    flags: Flags,
}

impl Flags {
    /// Reads the flags from the process arguments and environment, ignoring
    /// arguments that are not micro flags.
    pub fn from_env() -> Result<Flags, clap::Error> {
        Self::parse_from(std::env::args_os())
    }

    /// Reads the flags from `args` (the first is the program name) and the
    /// environment, ignoring arguments that are not micro flags.
    pub fn parse_from<I, T>(args: I) -> Result<Flags, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let ours = own_arguments(args.into_iter().map(Into::into).collect());
        let mut command = Standalone::command();
        let matches = command.try_get_matches_from_mut(ours.clone())?;
        let from_file = super::settings::from_file(&matches, &mut command)?;
        let matches = match from_file.is_empty() {
            true => matches,
            false => Standalone::command().try_get_matches_from(ours.into_iter().chain(from_file))?,
        };
        Ok(Standalone::from_arg_matches(&matches)?.flags)
    }

    /// No flags at all, not even from the environment: the builder decides.
    pub fn none() -> Flags {
        Flags::default()
    }

    /// `server_metadata` as pairs; entries without `=` are reported.
    pub fn metadata_pairs(&self) -> Result<Vec<(String, String)>, String> {
        self.server_metadata
            .iter()
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
                _ => Err(format!("--server_metadata {kv:?} is not key=value")),
            })
            .collect()
    }
}

/// The program name and the micro flags (with their values) among `args`.
fn own_arguments(args: Vec<OsString>) -> Vec<OsString> {
    let known: Vec<String> = Standalone::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    let is_ours = |name: &str| known.iter().any(|k| k == name || k.replace('_', "-") == name);
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    if let Some(program) = args.next() {
        out.push(program);
    }
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str().and_then(|s| s.strip_prefix("--")) else {
            continue;
        };
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        if !is_ours(name) {
            continue;
        }
        let canonical = name.replace('-', "_");
        match inline {
            Some(value) => out.push(format!("--{canonical}={value}").into()),
            None => {
                out.push(format!("--{canonical}").into());
                // The value is the next argument, unless that is another flag
                // (a switch such as --mdns_go_compat takes no value).
                let next_is_value = args
                    .as_slice()
                    .first()
                    .is_some_and(|next| !next.to_string_lossy().starts_with("--"));
                if next_is_value && let Some(value) = args.next() {
                    out.push(value);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_micro_flags_and_skips_the_rest() {
        let flags = Flags::parse_from([
            "svc",
            "--greeting",
            "hi",
            "--server_address=127.0.0.1:9000",
            "--client-retries",
            "2",
            "--client_request_timeout",
            "1m30s",
            "--server_metadata",
            "a=1,b=2",
            "--mdns_go_compat",
            "--registry",
            "mdns",
        ])
        .unwrap();
        assert_eq!(flags.server_address.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(flags.client_retries, Some(2));
        assert_eq!(flags.client_request_timeout, Some(Duration::from_secs(90)));
        assert_eq!(flags.mdns_go_compat, Some(true));
        assert_eq!(flags.registry.as_deref(), Some("mdns"));
        assert_eq!(
            flags.metadata_pairs().unwrap(),
            [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]
        );
    }

    #[test]
    fn bad_values_of_our_flags_are_errors() {
        assert!(Flags::parse_from(["svc", "--client_retries", "many"]).is_err());
        assert!(Flags::parse_from(["svc", "--register_ttl", "soon"]).is_err());
    }
}
