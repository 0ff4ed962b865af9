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
    async fn client(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint]
    async fn service_name(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint]
    async fn r#new(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

// The generated methods keep their meaning.
pub fn names(client: &GreeterClient) -> (&str, &micro::Client) {
    (client.service_name(), client.client())
}

fn main() {}
