use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub user: String,
}

pub struct Whoami;

#[micro::service]
impl Whoami {
    #[endpoint]
    async fn whoami(&self, ctx: &Context, _req: Request) -> Result<Response> {
        Ok(Response { user: ctx.get("X-User").unwrap_or("anonymous").to_owned() })
    }

    #[endpoint]
    async fn qualified(&self, ctx: &micro::Context, _req: Request) -> micro::Result<Response> {
        Ok(Response { user: format!("{:?}", ctx.remaining()) })
    }
}

fn main() {
    let endpoints = micro::server::Handler::descriptor(&Whoami).endpoints();
    assert_eq!(endpoints.len(), 2);
}
