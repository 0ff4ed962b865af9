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
    async fn hello(&self, ctx: &Context, req: Request, other: Request) -> Result<Response> {
        let _ = ctx;
        Ok(Response { message: req.name + &other.name })
    }
}

fn main() {}
