//! The messages both codec benchmarks encode and decode: a small one and a
//! large one (20 fields and a nested vec of 100).

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
