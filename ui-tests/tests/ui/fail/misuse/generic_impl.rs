use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Greeter<T>(T);

#[micro::service]
impl<T: Send + Sync + 'static> Greeter<T> {
    #[endpoint]
    async fn hello(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

// The handler is a stub meanwhile, so serving the type compiles.
pub fn serve() -> micro::Service {
    micro::Service::new("greeter").handle(Greeter(1_u32))
}

fn main() {}
