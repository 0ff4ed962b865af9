//! # micro: Go Micro for Rust
//!
//! A framework for distributed systems: annotate a plain struct's `impl`
//! block with [`#[micro::service]`](macro@service) and its methods with
//! `#[endpoint]`, and get a service that curl, Go Micro clients and a
//! generated typed Rust client can call, registered in service discovery.
//! Methods marked [`#[subscribe(topic = "..")]`](macro@subscribe) receive the
//! messages published to a topic through the [`broker`].
//!
//! ```no_run
//! use micro::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Request { pub name: String }
//! #[derive(Serialize, Deserialize)]
//! pub struct Response { pub message: String }
//!
//! pub struct Helloworld;
//!
//! #[micro::service]
//! impl Helloworld {
//!     /// Greeting says hello.
//!     #[endpoint]
//!     async fn greeting(&self, req: Request) -> Result<Response> {
//!         Ok(Response { message: format!("Hello {}", req.name) })
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> micro::Result<()> {
//!     Service::new("helloworld").address("127.0.0.1:8080").handle(Helloworld).run().await
//! }
//! ```
//!
//! The wire is Go Micro v5's: `POST /` with `Micro-Endpoint: Helloworld.Greeting`,
//! codecs chosen by `Content-Type`, errors as `{"id","code","detail","status"}`.
#![doc = include_str!("../docs/modules.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
mod body;
pub mod broker;
pub mod cache;
pub mod client;
pub mod codec;
pub mod config;
pub mod context;
mod duration;
pub mod error;
pub mod events;
mod future;
pub mod headers;
mod local;
pub mod logging;
pub mod metadata;
mod meter;
pub mod middleware;
mod net;
pub mod observe;
pub mod prelude;
#[cfg(feature = "redis")]
mod redis_link;
pub mod registry;
pub mod selector;
pub mod server;
pub mod service;
pub mod store;
pub mod stream;
pub mod trace;
mod transport;

/// The guides in `docs/`, whose code samples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/observability.md")]
pub struct ObservabilityGuide;

/// The guides in `docs/`, whose code samples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/config.md")]
pub struct ConfigGuide;

/// The guides in `docs/`, whose code samples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/events.md")]
pub struct EventsGuide;

/// The guides in `docs/`, whose code samples compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/store.md")]
pub struct StoreGuide;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use client::Client;
pub use context::Context;
pub use error::{Error, Result};
pub use future::BoxFuture;
pub use metadata::Metadata;
pub use micro_macros::{consume, endpoint, service, subscribe};
pub use service::{Flags, Service};
