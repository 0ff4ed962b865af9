//! micro against the peers a user would pick instead, side by side in one
//! run: raw hyper, tonic, tarpc and raw TCP frames (the floor).
//!
//! ```sh
//! cargo build --release --manifest-path benches/Cargo.toml
//! ../shared/netns-run benches/target/release/harness            # full run
//! ../shared/netns-run benches/target/release/harness --quick    # smoke run
//! ../shared/netns-run benches/target/release/harness --only mux  # one stack, for a profiler
//! ../shared/netns-run benches/target/release/harness --only mux \
//!     --server-wrapper "valgrind --tool=callgrind"                # servers under a profiler
//! ```
//!
//! Every server runs in a process of its own on a single-threaded tokio
//! runtime; the client runs in this process, also on one thread, so on a
//! two-core machine each side has a core. Each repeat visits every stack in
//! turn (the order rotates between repeats); the table gives medians over
//! the repeats and ratios against raw hyper, and is written to `--out`.

mod clients;
mod echo;
mod inprocess;
mod measure;
mod servers;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clients::Stack;
use servers::Server;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How much to measure.
struct Settings {
    repeats: usize,
    warmup: u64,
    calls: u64,
    seconds: f64,
    in_flight: usize,
    stream_messages: u64,
    pubsub_messages: u64,
    out: String,
    /// Measure only the unary stacks whose name contains this (for profiling).
    only: Option<String>,
    /// Run each unary server under this command, e.g. `valgrind --tool=callgrind`.
    server_wrapper: Option<String>,
}

impl Settings {
    fn from_args(args: &[String]) -> Result<Settings, Error> {
        let mut settings = Settings {
            repeats: 5,
            warmup: 500,
            calls: 5_000,
            seconds: 3.0,
            in_flight: 64,
            stream_messages: 50_000,
            pubsub_messages: 20_000,
            out: "bench-results.md".to_owned(),
            only: None,
            server_wrapper: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => {
                    settings.repeats = 1;
                    settings.warmup = 20;
                    settings.calls = 200;
                    settings.seconds = 0.3;
                    settings.stream_messages = 1_000;
                    settings.pubsub_messages = 500;
                }
                "--repeats" => settings.repeats = value()?.parse()?,
                "--calls" => settings.calls = value()?.parse()?,
                "--seconds" => settings.seconds = value()?.parse()?,
                "--in-flight" => settings.in_flight = value()?.parse()?,
                "--out" => settings.out = value()?.clone(),
                "--only" => settings.only = Some(value()?.clone()),
                "--server-wrapper" => settings.server_wrapper = Some(value()?.clone()),
                other => {
                    return Err(format!("unknown argument {other}; see the doc comment of benches/src/main.rs").into());
                }
            }
        }
        Ok(settings)
    }
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if args.first().map(String::as_str) == Some("serve") {
        let name = args.get(1).ok_or("serve needs a server name")?;
        let server = Server::parse(name).ok_or_else(|| format!("no server {name}"))?;
        return runtime
            .block_on(servers::serve(server))
            .map_err(|e| e.to_string().into());
    }
    let settings = Settings::from_args(&args)?;
    runtime.block_on(run(&settings))
}

/// A server process.
struct Running {
    child: Child,
    address: SocketAddr,
    /// Whether it runs under a wrapper, which SIGTERM lets finish its output.
    wrapped: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.wrapped {
            let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts `server` in a process of its own, under `wrapper` if given.
fn spawn(server: Server, wrapper: Option<&str>) -> Result<Running, Error> {
    let exe = std::env::current_exe()?;
    let mut words = wrapper.unwrap_or_default().split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    let mut child = command.args(["serve", server.name()]).stdout(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .strip_prefix("READY ")
        .ok_or_else(|| format!("{} did not start: {line:?}", server.name()))?
        .trim()
        .parse()?;
    Ok(Running {
        child,
        address,
        wrapped: wrapper.is_some(),
    })
}

/// Starts Go Micro's helloworld (`micro/tests/gomicro`) on one OS thread.
fn spawn_gomicro(program: &str) -> Result<Running, Error> {
    let mut child = Command::new(program)
        .args(["serve", "--registry", "memory", "--address", "127.0.0.1:0", "--plain"])
        .env("GOMAXPROCS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // Go Micro logs on the same output: the address follows `LISTENING `,
    // and the rest is read on, so that its logging never meets a closed pipe.
    let mut lines = BufReader::new(stdout).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("LISTENING ").map(str::to_owned))
        .ok_or("go micro did not start")?
        .trim()
        .parse()?;
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Running {
        child,
        address,
        wrapped: false,
    })
}

/// One repeat's numbers for one stack.
#[derive(Default)]
struct Samples {
    p50: Vec<f64>,
    p99: Vec<f64>,
    rate: Vec<f64>,
    cpu_us: Vec<f64>,
    client_cpu_us: Vec<f64>,
}

async fn run(settings: &Settings) -> Result<(), Error> {
    let mut servers = BTreeMap::new();
    for server in Server::ALL {
        servers.insert(server.name(), spawn(server, settings.server_wrapper.as_deref())?);
    }
    // The NATS row needs a NATS server (`netns-run --services nats`).
    let counters: Vec<Server> = Server::COUNTERS
        .into_iter()
        .filter(|s| *s != Server::CounterNats || servers::nats_url().is_ok())
        .collect();
    for server in &counters {
        servers.insert(server.name(), spawn(*server, None)?);
    }
    // The Go Micro row needs the Go program (`MICRO_BENCH_GOMICRO`).
    if let Some(program) = servers::gomicro_program() {
        servers.insert(Server::GoMicro.name(), spawn_gomicro(&program)?);
    }
    let stacks: Vec<Stack> = Stack::ALL
        .into_iter()
        .filter(|s| servers.contains_key(s.server().name()))
        .collect();
    let mut callers = Vec::new();
    for &stack in &stacks {
        let address = servers[stack.server().name()].address;
        callers.push((stack, stack.connect(address).await?));
    }
    let mut samples: Vec<Samples> = stacks.iter().map(|_| Samples::default()).collect();
    let mut streams: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut pubsub: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let duration = Duration::from_secs_f64(settings.seconds);
    for repeat in 0..settings.repeats {
        eprintln!("repeat {} of {}", repeat + 1, settings.repeats);
        for i in 0..callers.len() {
            let index = (i + repeat) % callers.len();
            let (stack, caller) = &callers[index];
            if settings
                .only
                .as_ref()
                .is_some_and(|only| !stack.name().contains(only.as_str()))
            {
                continue;
            }
            let server = &servers[stack.server().name()];
            let (p50, p99) = measure::latency(caller, settings.warmup, settings.calls).await?;
            let cpu_before = measure::cpu_time(server.child.id());
            let client_before = measure::cpu_time(std::process::id());
            let (calls, rate) = measure::throughput(caller, settings.in_flight, duration).await?;
            let cpu = measure::cpu_time(server.child.id()).saturating_sub(cpu_before);
            let client_cpu = measure::cpu_time(std::process::id()).saturating_sub(client_before);
            let sample = &mut samples[index];
            sample.p50.push(p50);
            sample.p99.push(p99);
            sample.rate.push(rate);
            sample.cpu_us.push(cpu.as_secs_f64() * 1e6 / calls.max(1) as f64);
            sample
                .client_cpu_us
                .push(client_cpu.as_secs_f64() * 1e6 / calls.max(1) as f64);
            eprintln!(
                "  {:<26} p50 {p50:>7.1} µs  p99 {p99:>7.1} µs  {rate:>9.0} calls/s",
                stack.name()
            );
        }
        if settings.only.is_some() {
            continue;
        }
        for server in [Server::Micro, Server::Tonic] {
            let address = servers[server.name()].address;
            let rate = clients::stream_rate(server, address, settings.stream_messages).await?;
            eprintln!("  {:<26} {rate:>9.0} stream messages/s", server.name());
            streams.entry(server.name()).or_default().push(rate);
        }
        for server in &counters {
            let address = servers[server.name()].address;
            let rate = clients::pubsub_rate(*server, address, settings.pubsub_messages, settings.in_flight).await?;
            eprintln!("  {:<26} {rate:>9.0} published messages/s", server.name());
            pubsub.entry(server.name()).or_default().push(rate);
        }
    }
    let in_process = if settings
        .only
        .as_ref()
        .is_none_or(|only| "in-process".contains(only.as_str()))
    {
        let calls = u32::try_from(settings.calls * 20).unwrap_or(u32::MAX);
        let measured = inprocess::measure(calls, settings.repeats.max(1)).await?;
        eprintln!(
            "  in-process: direct {:.0} ns, micro local {:.0} ns, micro mux {:.0} ns per call",
            measured.direct_ns, measured.local_ns, measured.mux_ns
        );
        Some(measured)
    } else {
        None
    };
    let mut report = report(settings, &stacks, &mut samples, &mut streams, &mut pubsub, &servers);
    if let Some(measured) = in_process {
        let _ = writeln!(
            report,
            "
## In-process call

Client and handler in one process, one call at a time; {} calls per round, median of {} rounds.
",
            settings.calls * 20,
            settings.repeats.max(1)
        );
        let _ = writeln!(report, "| way | ns/call |\n|---|---:|");
        let _ = writeln!(
            report,
            "| the endpoint's body as a plain function | {:.0} |",
            measured.direct_ns
        );
        let _ = writeln!(report, "| micro, `local_calls(true)` | {:.0} |", measured.local_ns);
        let _ = writeln!(
            report,
            "| micro over mux to the same process | {:.0} |",
            measured.mux_ns
        );
    }
    println!("{report}");
    std::fs::write(&settings.out, &report)?;
    eprintln!("written to {}", settings.out);
    Ok(())
}

fn report(
    settings: &Settings,
    stacks: &[Stack],
    samples: &mut [Samples],
    streams: &mut BTreeMap<&str, Vec<f64>>,
    pubsub: &mut BTreeMap<&str, Vec<f64>>,
    servers: &BTreeMap<&str, Running>,
) -> String {
    let medians: Vec<[f64; 5]> = samples
        .iter_mut()
        .map(|s| {
            [
                measure::median(&mut s.p50),
                measure::median(&mut s.p99),
                measure::median(&mut s.rate),
                measure::median(&mut s.cpu_us),
                measure::median(&mut s.client_cpu_us),
            ]
        })
        .collect();
    let hyper = stacks
        .iter()
        .position(|s| *s == Stack::HyperJsonH1)
        .map_or([f64::NAN; 5], |i| medians[i]);
    let mut out = String::new();
    let _ = writeln!(out, "## Unary echo\n");
    let _ = writeln!(
        out,
        "{} repeats; sequential: {} calls after {} warm-up; throughput: {} in flight for {} s; {}.\n",
        settings.repeats,
        settings.calls,
        settings.warmup,
        settings.in_flight,
        settings.seconds,
        machine()
    );
    let _ = writeln!(
        out,
        "| stack | p50 µs | p99 µs | calls/s | calls/s ÷ hyper | p50 ÷ hyper | server CPU µs/call | client CPU µs/call | server peak RSS MiB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (stack, [p50, p99, rate, cpu, client_cpu]) in stacks.iter().zip(&medians) {
        let rss = servers
            .get(stack.server().name())
            .map_or(f64::NAN, |s| measure::peak_rss_mib(s.child.id()));
        let _ = writeln!(
            out,
            "| {} | {p50:.1} | {p99:.1} | {rate:.0} | {:.2} | {:.2} | {cpu:.1} | {client_cpu:.1} | {rss:.1} |",
            stack.name(),
            rate / hyper[2],
            p50 / hyper[0],
        );
    }
    let tonic = streams.get_mut("tonic").map_or(f64::NAN, |v| measure::median(v));
    let _ = writeln!(
        out,
        "\n## Bidirectional stream\n\n{} echoes over one stream, sent and received at once.\n",
        settings.stream_messages
    );
    let _ = writeln!(out, "| stack | messages/s | ÷ tonic |\n|---|---:|---:|");
    for (name, rates) in streams.iter_mut() {
        let rate = measure::median(rates);
        let _ = writeln!(out, "| {name} | {rate:.0} | {:.2} |", rate / tonic);
    }
    let _ = writeln!(
        out,
        "\n## Pub/sub\n\n{} messages published with {} in flight, until a micro subscriber in another process has counted them all (at most once; none lost).\n",
        settings.pubsub_messages, settings.in_flight
    );
    let _ = writeln!(out, "| broker | messages/s |\n|---|---:|");
    for (name, rates) in pubsub.iter_mut() {
        let _ = writeln!(out, "| micro, {name} | {:.0} |", measure::median(rates));
    }
    out
}

/// The CPU model and count, for the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} × {model}, loopback")
}
