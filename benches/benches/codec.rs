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

mod common;

use common::{Small, large};

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
