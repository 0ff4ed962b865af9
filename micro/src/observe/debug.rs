//! Go Micro's `Debug` service, registered on every service: `Debug.Health`
//! answers `{"status":"ok"}` while the service serves, and `Debug.Stats`
//! the shape of Go Micro's debug proto (`started`, `uptime`, `memory`,
//! `threads`, `gc`, `requests`, `errors`, `timestamp`). `memory` is the
//! resident set in bytes, `threads` the tasks alive on the runtime (Go
//! counts goroutines), `gc` is 0 (no collector).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Metrics;
use crate::context::Context;
use crate::error::Result;

/// `Debug.Health`'s request.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct HealthRequest {
    /// The service asked about (unused, as in Go Micro).
    #[serde(default)]
    pub service: String,
}

/// `Debug.Health`'s response.
#[derive(Debug, Deserialize, Serialize)]
pub struct HealthResponse {
    /// `ok`.
    pub status: String,
}

/// `Debug.Stats`'s request.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct StatsRequest {
    /// The service asked about (unused, as in Go Micro).
    #[serde(default)]
    pub service: String,
}

/// `Debug.Stats`'s response, Go Micro's fields.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct StatsResponse {
    /// When the stats were read, in Unix seconds.
    pub timestamp: u64,
    /// When the service started, in Unix seconds.
    pub started: u64,
    /// Seconds since it started.
    pub uptime: u64,
    /// Resident memory in bytes.
    pub memory: u64,
    /// Tasks alive on the runtime.
    pub threads: u64,
    /// Total garbage-collection pause: always 0.
    pub gc: u64,
    /// Calls served.
    pub requests: u64,
    /// Calls that failed.
    pub errors: u64,
}

/// The `Debug` handler of a service.
pub struct Debug {
    metrics: Metrics,
    started: u64,
}

impl Debug {
    /// The debug handler of a service whose calls `metrics` counts,
    /// started now.
    pub fn new(metrics: Metrics) -> Self {
        Debug {
            metrics,
            started: unix_seconds(),
        }
    }
}

impl std::fmt::Debug for Debug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Debug").field("started", &self.started).finish()
    }
}

#[micro_macros::service(crate = "crate")]
impl Debug {
    /// Health answers ok while the service serves.
    #[endpoint]
    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse> {
        Ok(HealthResponse {
            status: "ok".to_owned(),
        })
    }

    /// Stats reports the process's uptime, memory, tasks and calls.
    #[endpoint]
    async fn stats(&self, _ctx: &Context, _req: StatsRequest) -> Result<StatsResponse> {
        let timestamp = unix_seconds();
        let (requests, errors) = self.metrics.served();
        Ok(StatsResponse {
            timestamp,
            started: self.started,
            uptime: timestamp.saturating_sub(self.started),
            memory: resident_bytes(),
            threads: tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks() as u64)
                .unwrap_or(0),
            gc: 0,
            requests,
            errors,
        })
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The resident set size, from `/proc/self/statm` (0 where there is none).
fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // The page size is 4 KiB on the platforms with /proc micro runs on.
    pages * 4096
}
