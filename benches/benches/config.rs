//! micro's config reads on a 1,000-key config (100 sections of 10 keys,
//! values as an env source would give them: text), against the same reads
//! done with bare serde_json on a `serde_json::Value`; and how long a file
//! change takes to reach a watcher.
//!
//! ```sh
//! cargo bench --manifest-path benches/Cargo.toml --bench config
//! ```

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use micro::config::{Config, File, Memory};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One section: ten settings of mixed types, read from text.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Section {
    host: String,
    port: u16,
    enabled: bool,
    ratio: f64,
    retries: u32,
    name: String,
    zone: String,
    timeout_ms: u64,
    weight: i32,
    tag: String,
}

/// The same section with its values already typed, for serde_json's turn
/// (serde_json does not parse `"8080"` as a number).
fn typed_section(i: usize) -> Value {
    serde_json::json!({
        "host": format!("host-{i}"), "port": 8000 + i, "enabled": i.is_multiple_of(2), "ratio": 0.5,
        "retries": 3, "name": format!("name-{i}"), "zone": "eu", "timeout_ms": 1500, "weight": -2, "tag": "t",
    })
}

fn text_section(i: usize) -> Value {
    let Value::Object(typed) = typed_section(i) else {
        unreachable!()
    };
    Value::Object(
        typed
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, Value::String(text))
            })
            .collect::<Map<_, _>>(),
    )
}

fn document(section: fn(usize) -> Value) -> Value {
    Value::Object((0..100).map(|i| (format!("section{i}"), section(i))).collect())
}

fn reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime
        .block_on(
            Config::builder()
                .source(Memory::from_json(document(text_section)))
                .load(),
        )
        .unwrap();
    assert_eq!(config.snapshot().keys().len(), 1000);
    let raw = document(typed_section);

    let mut group = c.benchmark_group("config_1000_keys");
    group.bench_function("micro get::<u16> leaf", |b| {
        b.iter(|| config.get::<u16>(std::hint::black_box("section42.port")).unwrap())
    });
    let snapshot = config.snapshot();
    group.bench_function("micro snapshot get::<u16> leaf", |b| {
        b.iter(|| snapshot.get::<u16>(std::hint::black_box("section42.port")).unwrap())
    });
    group.bench_function("serde_json pointer + u16::deserialize", |b| {
        b.iter(|| u16::deserialize(raw.pointer(std::hint::black_box("/section42/port")).unwrap()).unwrap())
    });
    group.bench_function("micro scan::<Section>", |b| {
        b.iter(|| config.scan::<Section>(std::hint::black_box("section42")).unwrap())
    });
    group.bench_function("serde_json pointer + Section::deserialize", |b| {
        b.iter(|| Section::deserialize(raw.pointer(std::hint::black_box("/section42")).unwrap()).unwrap())
    });
    group.finish();
}

fn reload(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("micro-config-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, r#"{"n": 0}"#).unwrap();
    let config = runtime
        .block_on(Config::builder().source(File::new(&path)).load())
        .unwrap();
    let mut watch = config.watch::<u64>("n").unwrap();
    let mut n = 0u64;
    let mut group = c.benchmark_group("config_reload");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("file write to watcher", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let start = Instant::now();
                    std::fs::write(&path, format!(r#"{{"n": {n}}}"#)).unwrap();
                    let seen = *watch.changed().await.unwrap();
                    total += start.elapsed();
                    assert_eq!(seen, n);
                }
                total
            })
        })
    });
    group.finish();
    drop(config);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, reads, reload);
criterion_main!(benches);
