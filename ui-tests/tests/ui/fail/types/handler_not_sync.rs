use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Greeter {
    calls: std::cell::Cell<u64>,
}

#[micro::service]
impl Greeter {
    #[endpoint]
    async fn hello(&self, req: Request) -> Result<Response> {
        self.calls.set(self.calls.get() + 1);
        Ok(Response { message: req.name })
    }
}

fn main() {}
