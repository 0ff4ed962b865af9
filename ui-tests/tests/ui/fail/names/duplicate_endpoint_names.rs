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

#[micro::service]
impl Greeter {
    #[endpoint]
    async fn say_hello(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint(name = "SayHello")]
    async fn greet(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

fn main() {}
