//! Services shared by the examples: a crate like this one is how a service
//! and its callers share the request types and the generated client.

pub mod greeter;
pub mod helloworld;
pub mod live;
pub mod users;
