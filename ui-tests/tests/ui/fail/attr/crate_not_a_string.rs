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

#[micro::service(crate = micro)]
impl Greeter {
    #[endpoint]
    async fn hello(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

fn main() {}
