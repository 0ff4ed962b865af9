//! Compile-fail and pass tests of `#[micro::service]`, run by `tests/ui.rs`.
