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

pub trait Hello {
    fn hello(&self);
}

#[micro::service]
impl Hello for Greeter {
    fn hello(&self) {}
}

// The handler is a stub meanwhile, so serving the type compiles.
pub fn serve() -> micro::Service {
    micro::Service::new("greeter").handle(Greeter)
}

fn main() {}
