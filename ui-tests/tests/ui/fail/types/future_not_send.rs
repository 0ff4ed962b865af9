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
    async fn hello(&self, req: Request) -> Result<Response> {
        let shared = std::rc::Rc::new(req.name);
        tokio::task::yield_now().await;
        Ok(Response { message: (*shared).clone() })
    }
}

fn main() {}
