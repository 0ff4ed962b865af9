//! A service that shows metadata, deadlines and errors.

use std::time::Duration;

use micro::prelude::*;

/// Whom to greet.
#[derive(Debug, Serialize, Deserialize)]
pub struct HelloRequest {
    /// The greeting to use, e.g. `Hello`.
    pub greeting: String,
}

/// A greeting and what the server saw of the call.
#[derive(Debug, Serialize, Deserialize)]
pub struct HelloResponse {
    /// The greeting for the caller named in the `X-User` metadata.
    pub message: String,
    /// Milliseconds left of the caller's deadline when the call arrived.
    pub remaining_ms: Option<u64>,
}

/// A user to look up.
#[derive(Debug, Serialize, Deserialize)]
pub struct LookupRequest {
    /// The user id.
    pub id: String,
}

/// A user.
#[derive(Debug, Serialize, Deserialize)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The display name.
    pub name: String,
}

/// How long to work.
#[derive(Debug, Serialize, Deserialize)]
pub struct SlowRequest {
    /// Milliseconds of work.
    pub millis: u64,
}

/// Nothing.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

/// The greeter handler; it calls other greeters through its client.
pub struct Greeter {
    client: Client,
}

impl Greeter {
    /// A greeter making onward calls through `client`.
    pub fn new(client: Client) -> Self {
        Greeter { client }
    }
}

#[micro::service]
impl Greeter {
    /// Greets the caller named in the `X-User` metadata.
    #[endpoint]
    pub async fn hello(&self, ctx: &Context, req: HelloRequest) -> Result<HelloResponse> {
        let user = ctx.get("X-User").unwrap_or("stranger");
        Ok(HelloResponse {
            message: format!("{} {user}", req.greeting),
            remaining_ms: ctx
                .remaining()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }

    /// Finds a user; only `1` exists, anything else is a 404.
    #[endpoint(idempotent)]
    pub async fn lookup(&self, req: LookupRequest) -> Result<User> {
        match req.id.as_str() {
            "1" => Ok(User {
                id: req.id,
                name: "alice".to_owned(),
            }),
            other => Err(Error::not_found("greeter", format!("no user with id {other}"))),
        }
    }

    /// Works for a while; the caller's deadline cuts it short with a 408.
    #[endpoint]
    pub async fn slow(&self, req: SlowRequest) -> Result<Empty> {
        tokio::time::sleep(Duration::from_millis(req.millis)).await;
        Ok(Empty {})
    }

    /// Calls `Greeter.Hello` onward: the metadata and what is left of the
    /// deadline travel with the onward call on their own.
    #[endpoint]
    pub async fn relay(&self, req: HelloRequest) -> Result<HelloResponse> {
        GreeterClient::new("greeter", self.client.clone()).hello(req).await
    }
}
