//! What both codec benchmarks measure: a small message and a large one (20
//! fields and a nested vec of 100), each encoded and decoded by bare serde
//! and by micro's codec layer.

use std::hint::black_box;

use micro::codec::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct Small {
    pub name: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Item {
    id: u64,
    label: String,
    price: f64,
    tags: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Large {
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

pub fn large() -> Large {
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

/// One measured call.
pub type Case = Box<dyn Fn()>;

/// Every case: the small and the large message, each encoded and decoded
/// by bare serde and by micro's codec, named `<size>/<op>/<codec>/<who>`.
pub fn cases() -> Vec<(String, Case)> {
    let mut cases = Vec::new();
    pair(&mut cases, "small", Small { name: "alice".into() });
    pair(&mut cases, "large", large());
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
    // The bytes micro's JSON codec writes: serde's, then the newline Go's
    // json.Encoder ends with, which the Go Micro wire carries.
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
