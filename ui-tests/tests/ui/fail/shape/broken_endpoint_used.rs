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
    // Not async: the one error. The client method and the dispatch exist
    // anyway, so the code below compiles as if the endpoint were right.
    #[endpoint]
    fn hello(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    // No return type: the response type cannot be read, so the client
    // method takes it from the caller.
    #[endpoint]
    async fn bye(&self, req: &Request) {
        let _ = req;
    }
}

pub async fn call(client: micro::Client) -> micro::Result<String> {
    let greeter = GreeterClient::new("greeter", client);
    let hello = greeter.hello(Request { name: "a".into() }).await?;
    let bye: Response = greeter.bye(Request { name: "b".into() }).await?;
    Ok(hello.message + &bye.message)
}

pub fn serve() -> micro::Service {
    micro::Service::new("greeter").handle(Greeter)
}

fn main() {}
