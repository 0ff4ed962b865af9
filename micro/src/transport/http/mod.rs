//! Go Micro's HTTP transport: one `POST /` per call, HTTP/1.1 or h2c, and
//! micro's streams over HTTP/2; the listener that serves it on a port shared
//! with [`mux`](super::mux), and the client's connections.

pub(crate) mod client;
mod idle;
pub(crate) mod listen;
mod pool;
pub(crate) mod server;
