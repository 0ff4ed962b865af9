//! The service of Go Micro's README, in Rust.

use micro::prelude::*;

/// What to greet.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Who to greet.
    pub name: String,
}

/// The greeting.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// `Hello <name>`.
    pub message: String,
}

/// The helloworld handler.
pub struct Helloworld;

/// Says hello.
#[micro::service]
impl Helloworld {
    /// Greeting says hello.
    #[endpoint]
    pub async fn greeting(&self, req: Request) -> Result<Response> {
        Ok(Response {
            message: format!("Hello {}", req.name),
        })
    }
}
