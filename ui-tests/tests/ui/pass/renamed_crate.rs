mod my_micro {
    pub use ::micro::*;
}

use my_micro::prelude::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Renamed;

#[my_micro::service(crate = "crate::my_micro")]
impl Renamed {
    #[my_micro::endpoint]
    async fn hello(&self, req: Request) -> my_micro::Result<Response> {
        Ok(Response { message: req.name })
    }
}

fn main() {
    let _client = RenamedClient::new("renamed", my_micro::Client::default());
}
