use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

/// Not `Deserialize`: cannot be a request.
pub struct Opaque;

pub struct Greeter;

/// Uses the generated client, which has a method for every endpoint, even
/// those with errors: none of these lines adds an error.
pub async fn use_client(client: micro::Client) -> micro::Result<GreeterClient> {
    let greeter = GreeterClient::new("greeter", client);
    let _call = greeter.fine(Request { name: String::new() });
    let _: Response = greeter.not_async(Request { name: String::new() }).await?;
    let _: Response = greeter.by_value(Request { name: String::new() }).await?;
    let _: Response = greeter.two_problems(Request { name: String::new() }).await?;
    Ok(greeter)
}

/// Serves the handler, which exists despite the errors.
pub fn serve() -> micro::Service {
    micro::Service::new("greeter").handle(Greeter)
}

#[micro::service(unknown = "x")]
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
    async fn two_problems(&self, ctx: Context, req: &Request) -> Result<Response> {
        let _ = ctx;
        Ok(Response { message: req.name.clone() })
    }

    #[endpoint]
    async fn fine(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint(name = "Fine")]
    async fn clash(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint]
    async fn opaque(&self, req: Opaque) -> Result<Response> {
        let _ = req;
        Ok(Response { message: String::new() })
    }
}

fn main() {}
