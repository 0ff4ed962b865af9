//! The boxed future every pluggable trait returns, so the traits stay
//! dyn-compatible (`Arc<dyn Registry>`, `Arc<dyn Handler>`).

use std::pin::Pin;

/// A heap-allocated, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
