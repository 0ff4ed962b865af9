//! Closed-loop measurements: sequential latency, throughput at a fixed
//! number of calls in flight, and a server process's CPU time and peak RSS
//! from `/proc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::clients::Caller;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Median and 99th percentile of sequential calls, in microseconds.
pub async fn latency(caller: &Caller, warmup: u64, calls: u64) -> Result<(f64, f64), Error> {
    for _ in 0..warmup {
        caller.call().await?;
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..calls {
        let started = Instant::now();
        caller.call().await?;
        histogram.record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1))?;
    }
    let micros = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok((micros(0.5), micros(0.99)))
}

/// Calls per second with `in_flight` callers looping for `duration`.
pub async fn throughput(caller: &Caller, in_flight: usize, duration: Duration) -> Result<(u64, f64), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let caller = caller.fork().await?;
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                caller.call().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, Error>(())
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let calls = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for task in tasks {
        task.await??;
    }
    Ok((calls, calls as f64 / elapsed))
}

/// User plus system CPU time of process `pid` so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields of the line, in clock ticks (100 per second).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The peak resident set of process `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The median of `values`.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
