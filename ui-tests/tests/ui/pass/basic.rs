use std::time::Duration;

use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Helloworld;

#[micro::service]
impl Helloworld {
    #[endpoint]
    async fn greeting(&self, req: Request) -> Result<Response> {
        Ok(Response { message: format!("Hello {}", req.name) })
    }

    /// A helper that is not an endpoint stays an ordinary method.
    fn helper(&self) -> &'static str {
        "help"
    }
}

fn main() {
    let client = HelloworldClient::new("helloworld", Client::default());
    let call = client
        .greeting(Request { name: "alice".into() })
        .timeout(Duration::from_secs(1))
        .metadata("X-User", "alice")
        .retries(2);
    assert_eq!(call.call_options().retries, Some(2));
    assert_eq!(client.service_name(), "helloworld");
    assert_eq!(Helloworld.helper(), "help");
    let descriptor = micro::server::Handler::descriptor(&Helloworld);
    assert_eq!(descriptor.name(), "Helloworld");
    assert_eq!(descriptor.endpoints()[0].name(), "Helloworld.Greeting");
    let _service = Service::new("helloworld").flags(micro::Flags::none()).handle(Helloworld);
}
