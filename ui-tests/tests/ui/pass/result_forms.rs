use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
}

#[derive(Debug)]
pub struct AppError;

impl From<AppError> for micro::Error {
    fn from(_: AppError) -> Self {
        micro::Error::internal_server_error("app", "failed")
    }
}

pub struct Aliased;

#[micro::service]
impl Aliased {
    #[endpoint]
    async fn qualified(&self, _req: Request) -> ::std::result::Result<Response, micro::Error> {
        Ok(Response { ok: true })
    }

    #[endpoint]
    async fn own_error(&self, _req: Request) -> std::result::Result<Response, AppError> {
        Err(AppError)
    }

    #[endpoint]
    async fn primitive(&self, req: u64) -> Result<Vec<String>> {
        Ok(vec![req.to_string()])
    }
}

fn main() {
    let client = AliasedClient::new("aliased", Client::default());
    let _: micro::client::Call<Request, Response> = client.qualified(Request {});
    let _: micro::client::Call<u64, Vec<String>> = client.primitive(7);
    let endpoints = micro::server::Handler::descriptor(&Aliased).endpoints();
    assert_eq!(endpoints[2].request().ty, "uint64");
    assert_eq!(endpoints[2].response().ty, "[]string");
}
