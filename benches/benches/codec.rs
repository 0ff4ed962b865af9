//! micro's codec layer against bare serde calls, JSON against MessagePack,
//! on a small message and a large one (20 fields and a nested vec of 100).
//!
//! ```sh
//! cargo bench --manifest-path benches/Cargo.toml --bench codec
//! ```

use criterion::{Criterion, criterion_group, criterion_main};

mod common;

fn codecs(c: &mut Criterion) {
    for (name, case) in common::cases() {
        c.bench_function(&name, |b| b.iter(&case));
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
