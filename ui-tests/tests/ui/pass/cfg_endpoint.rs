use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {}

#[derive(Serialize, Deserialize)]
pub struct Response {}

pub struct Flags;

#[micro::service]
impl Flags {
    #[cfg(any())]
    #[endpoint]
    async fn disabled(&self, _req: Request) -> Result<Response> {
        Ok(Response {})
    }

    #[cfg(all())]
    #[endpoint]
    async fn enabled(&self, _req: Request) -> Result<Response> {
        Ok(Response {})
    }

    // Two endpoints may share a wire name under exclusive cfgs.
    #[cfg(any())]
    #[endpoint(name = "Switch")]
    async fn switch_a(&self, _req: Request) -> Result<Response> {
        Ok(Response {})
    }

    #[cfg(all())]
    #[endpoint(name = "Switch")]
    async fn switch_b(&self, _req: Request) -> Result<Response> {
        Ok(Response {})
    }
}

trait HasDisabled {
    fn disabled(&self) {}
}
// The client has no `disabled` method, so this blanket trait method is the one found.
impl HasDisabled for FlagsClient {}

fn main() {
    let endpoints: Vec<&str> = micro::server::Handler::descriptor(&Flags).endpoints().iter().map(|e| e.name()).collect();
    assert_eq!(endpoints, ["Flags.Enabled", "Flags.Switch"]);
    let client = FlagsClient::new("flags", Client::default());
    let _ = client.enabled(Request {});
    client.disabled();
}
