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

pub struct MyError;

#[micro::service]
impl Greeter {
    #[endpoint]
    async fn hello(&self, req: Request) -> std::result::Result<Response, MyError> {
        Ok(Response { message: req.name })
    }
}

fn main() {}
