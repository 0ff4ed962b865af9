//! Logs for binaries: [`init`] installs a `tracing` subscriber that prints
//! events with their fields to stderr, filtered by `RUST_LOG` when it is set
//! and otherwise by Go Micro's `MICRO_LOG_LEVEL` (`trace`, `debug`, `info`,
//! `warn`, `error`, `fatal`; anything else is `info`, the default).
//!
//! micro itself only emits events and spans (see [`crate::trace`]); a
//! library never installs a subscriber, so this is for `main`:
//!
//! ```no_run
//! micro::logging::init();
//! ```

use tracing_subscriber::EnvFilter;

/// The filter directive `MICRO_LOG_LEVEL`'s value names, as Go Micro reads
/// it (lower case; an unknown value is `info`; `fatal` logs errors).
pub fn level_directive(value: Option<&str>) -> &'static str {
    match value.map(str::trim) {
        Some("trace") => "trace",
        Some("debug") => "debug",
        Some("warn") => "warn",
        Some("error" | "fatal") => "error",
        _ => "info",
    }
}

/// The filter [`init`] uses: `RUST_LOG` if set, else `MICRO_LOG_LEVEL`.
pub fn filter() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => {
            let level = std::env::var("MICRO_LOG_LEVEL").ok();
            EnvFilter::new(level_directive(level.as_deref()))
        }
    }
}

/// Installs the process's subscriber: events and their fields on stderr,
/// filtered by [`filter`]. Does nothing if one is installed already.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_log_level_maps_as_go_micro_reads_it() {
        assert_eq!(level_directive(Some("debug")), "debug");
        assert_eq!(level_directive(Some("fatal")), "error");
        assert_eq!(level_directive(Some("loud")), "info");
        assert_eq!(level_directive(Some("DEBUG")), "info", "Go Micro reads lower case only");
        assert_eq!(level_directive(None), "info");
    }
}
