use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {}

#[derive(Serialize, Deserialize)]
pub struct Response {}

pub struct Lifetimes;

#[micro::service]
impl Lifetimes {
    #[endpoint]
    async fn explicit<'a>(&'a self, ctx: &'a Context, _req: Request) -> Result<Response> {
        let _ = ctx;
        Ok(Response {})
    }

    #[endpoint]
    async fn self_type(&self, _req: Request) -> Result<Response> {
        Ok(Response {})
    }
}

fn main() {}
