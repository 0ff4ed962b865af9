//! micro's codec layer against bare serde calls, counted in instructions:
//! runs one case a given number of times, for `valgrind --tool=callgrind`.
//! The difference between two runs of different lengths, divided by the
//! difference in calls, is the count of one call: the same on every run,
//! where times on a shared machine are not. `benches/codec-count.sh` runs
//! every case so and prints the table.
//!
//! ```sh
//! benches/target/release/codec-count small/encode/json/micro 10000
//! ```

use std::hint::black_box;

use micro::codec::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[path = "../../benches/common/mod.rs"]
mod common;

type Case = Box<dyn Fn()>;

/// Every case, named as the criterion benchmark names it.
fn cases() -> Vec<(String, Case)> {
    let mut cases = Vec::new();
    pair(&mut cases, "small", common::Small { name: "alice".into() });
    pair(&mut cases, "large", common::large());
    cases
}

fn pair<T: Serialize + DeserializeOwned + 'static>(cases: &mut Vec<(String, Case)>, name: &str, value: T) {
    let json = Codec::Json.encode(&value).unwrap_or_default();
    let msgpack = Codec::Msgpack.encode(&value).unwrap_or_default();
    let value = std::rc::Rc::new(value);
    let mut add = |case: &str, f: Case| cases.push((format!("{name}/{case}"), f));
    let v = value.clone();
    add(
        "encode/json/serde",
        Box::new(move || drop(black_box(serde_json::to_vec(black_box(&*v))))),
    );
    let v = value.clone();
    add(
        "encode/json/serde+newline",
        Box::new(move || {
            let mut body = Vec::with_capacity(128);
            let _ = serde_json::to_writer(&mut body, black_box(&*v));
            body.push(b'\n');
            drop(black_box(body));
        }),
    );
    let v = value.clone();
    add(
        "encode/json/micro",
        Box::new(move || drop(black_box(Codec::Json.encode(black_box(&*v))))),
    );
    let v = value.clone();
    add(
        "encode/msgpack/serde",
        Box::new(move || drop(black_box(rmp_serde::to_vec_named(black_box(&*v))))),
    );
    let v = value;
    add(
        "encode/msgpack/micro",
        Box::new(move || drop(black_box(Codec::Msgpack.encode(black_box(&*v))))),
    );
    let j = json.clone();
    add(
        "decode/json/serde",
        Box::new(move || drop(black_box(serde_json::from_slice::<T>(black_box(&j))))),
    );
    add(
        "decode/json/micro",
        Box::new(move || drop(black_box(Codec::Json.decode::<T>(black_box(&json))))),
    );
    let m = msgpack.clone();
    add(
        "decode/msgpack/serde",
        Box::new(move || drop(black_box(rmp_serde::from_slice::<T>(black_box(&m))))),
    );
    add(
        "decode/msgpack/micro",
        Box::new(move || drop(black_box(Codec::Msgpack.decode::<T>(black_box(&msgpack))))),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases = cases();
    let (Some(name), Some(Ok(times))) = (args.first(), args.get(1).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: codec-count <case> <times>; cases:");
        for (name, _) in &cases {
            eprintln!("  {name}");
        }
        std::process::exit(2);
    };
    let Some((_, case)) = cases.iter().find(|(n, _)| n == name) else {
        eprintln!("no case {name}");
        std::process::exit(2);
    };
    for _ in 0..times {
        case();
    }
}
