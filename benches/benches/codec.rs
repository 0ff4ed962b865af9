//! micro's codec layer against bare serde calls, JSON against MessagePack,
//! on a small message and a large one (20 fields and a nested vec of 100).
//!
//! ```sh
//! cargo bench --manifest-path benches/Cargo.toml --bench codec
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use micro::codec::Codec;
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Clone, Serialize, Deserialize)]
struct Small {
    name: String,
}

#[derive(Clone, Serialize, Deserialize)]
struct Item {
    id: u64,
    label: String,
    price: f64,
    tags: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Large {
    f01: u64,
    f02: u64,
    f03: i64,
    f04: i64,
    f05: f64,
    f06: f64,
    f07: bool,
    f08: bool,
    f09: String,
    f10: String,
    f11: String,
    f12: String,
    f13: Option<String>,
    f14: Option<u64>,
    f15: Vec<u32>,
    f16: Vec<String>,
    f17: u32,
    f18: u16,
    f19: String,
    items: Vec<Item>,
}

fn large() -> Large {
    Large {
        f01: 1,
        f02: u64::MAX / 3,
        f03: -7,
        f04: i64::MIN / 5,
        f05: 3.25,
        f06: -1e-9,
        f07: true,
        f08: false,
        f09: "alpha".into(),
        f10: "a somewhat longer string with spaces".into(),
        f11: "ünïcödé".into(),
        f12: String::new(),
        f13: Some("present".into()),
        f14: None,
        f15: (0..16).collect(),
        f16: vec!["x".into(), "y".into(), "z".into()],
        f17: 42,
        f18: 7,
        f19: "omega".into(),
        items: (0..100)
            .map(|i| Item {
                id: i,
                label: format!("item number {i}"),
                price: i as f64 * 1.5,
                tags: vec!["new".into(), "sale".into()],
            })
            .collect(),
    }
}

fn pair<T: Serialize + for<'de> Deserialize<'de>>(c: &mut Criterion, name: &str, value: &T) {
    let mut group = c.benchmark_group(name);
    let json = Codec::Json.encode(value).unwrap();
    let msgpack = Codec::Msgpack.encode(value).unwrap();
    group.bench_function("encode/json/serde", |b| {
        b.iter(|| serde_json::to_vec(black_box(value)).unwrap())
    });
    // The bytes micro's JSON codec writes: serde's, then the newline Go's
    // json.Encoder ends with, which the Go Micro wire carries.
    group.bench_function("encode/json/serde+newline", |b| {
        b.iter(|| {
            let mut body = Vec::with_capacity(128);
            serde_json::to_writer(&mut body, black_box(value)).unwrap();
            body.push(b'\n');
            body
        })
    });
    group.bench_function("encode/json/micro", |b| {
        b.iter(|| Codec::Json.encode(black_box(value)).unwrap())
    });
    group.bench_function("encode/msgpack/serde", |b| {
        b.iter(|| rmp_serde::to_vec_named(black_box(value)).unwrap())
    });
    group.bench_function("encode/msgpack/micro", |b| {
        b.iter(|| Codec::Msgpack.encode(black_box(value)).unwrap())
    });
    group.bench_function("decode/json/serde", |b| {
        b.iter(|| serde_json::from_slice::<T>(black_box(&json)).unwrap())
    });
    group.bench_function("decode/json/micro", |b| {
        b.iter(|| Codec::Json.decode::<T>(black_box(&json)).unwrap())
    });
    group.bench_function("decode/msgpack/serde", |b| {
        b.iter(|| rmp_serde::from_slice::<T>(black_box(&msgpack)).unwrap())
    });
    group.bench_function("decode/msgpack/micro", |b| {
        b.iter(|| Codec::Msgpack.decode::<T>(black_box(&msgpack)).unwrap())
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    pair(c, "small", &Small { name: "alice".into() });
    pair(c, "large", &large());
}

criterion_group!(benches, codecs);
criterion_main!(benches);
