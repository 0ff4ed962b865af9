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

/// Uses the generated client, which exists despite the errors.
pub fn use_client(client: micro::Client) -> GreeterClient {
    let greeter = GreeterClient::new("greeter", client);
    let _call = greeter.fine(Request { name: String::new() });
    greeter
}

#[micro::service]
impl Greeter {
    #[endpoint]
    fn not_async(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint(unknown)]
    async fn bad_key(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint]
    async fn by_value(self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint]
    async fn fine(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint(name = "Fine")]
    async fn clash(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

fn main() {}
