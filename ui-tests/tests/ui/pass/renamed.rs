use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Impl;

#[micro::service(name = "Greeter", client = "GreeterStub")]
impl Impl {
    #[endpoint(name = "SayHi", idempotent)]
    async fn hi(&self, req: Request) -> Result<Response> {
        Ok(Response { message: req.name })
    }
}

fn main() {
    let descriptor = micro::server::Handler::descriptor(&Impl);
    assert_eq!(descriptor.name(), "Greeter");
    let endpoint = &descriptor.endpoints()[0];
    assert_eq!(endpoint.name(), "Greeter.SayHi");
    assert!(endpoint.idempotent());
    let stub = GreeterStub::new("greeter", Client::default());
    assert!(stub.hi(Request { name: "a".into() }).call_options().idempotent);
}
