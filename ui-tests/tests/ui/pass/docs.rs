use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {}

#[derive(Serialize, Deserialize)]
pub struct Response {}

pub struct Documented;

/// The documented service.
#[micro::service]
impl Documented {
    /// Says hello.
    ///
    /// In two paragraphs.
    #[endpoint]
    #[deprecated = "use the new one"]
    async fn old(&self, _req: Request) -> Result<Response> {
        Ok(Response {})
    }
}

fn main() {
    let descriptor = micro::server::Handler::descriptor(&Documented);
    assert_eq!(descriptor.docs(), "The documented service.");
    assert_eq!(descriptor.endpoints()[0].docs(), "Says hello.\n\nIn two paragraphs.");
    let registry = descriptor.registry_endpoints();
    assert_eq!(registry[0].metadata["description"], "Says hello.\n\nIn two paragraphs.");
    #[allow(deprecated)]
    let _ = DocumentedClient::new("documented", Client::default()).old(Request {});
}
