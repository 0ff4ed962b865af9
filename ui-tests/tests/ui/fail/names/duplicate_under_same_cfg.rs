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
    #[cfg(target_pointer_width = "64")]
    #[endpoint(name = "Hello")]
    async fn hello_64(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[cfg(target_pointer_width = "64")]
    #[endpoint(name = "Hello")]
    async fn hello_again(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    #[endpoint]
    async fn bye(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    // Compiled whenever `bye` is: a clash too.
    #[cfg(unix)]
    #[endpoint(name = "Bye")]
    async fn bye_unix(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }

    // Under other cfgs: one name per configuration is allowed.
    #[cfg(target_pointer_width = "32")]
    #[endpoint(name = "Hello")]
    async fn hello_32(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

fn main() {}
