use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Greeter;

#[micro::service(client = "greeter::Client")]
impl Greeter {
    #[endpoint]
    async fn hello(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

// The client keeps its default name meanwhile.
pub fn client(client: micro::Client) -> GreeterClient {
    GreeterClient::new("greeter", client)
}

fn main() {}
