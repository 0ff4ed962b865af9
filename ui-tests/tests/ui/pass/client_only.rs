//! A binary that only calls a service: it never serves the handler.
use micro::prelude::*;

mod shared {
    use micro::prelude::*;

    #[derive(Serialize, Deserialize)]
    pub struct Request {
        pub n: u32,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Response {
        pub n: u32,
    }

    pub struct Counter;

    #[micro::service]
    impl Counter {
        #[endpoint]
        async fn incr(&self, req: Request) -> Result<Response> {
            Ok(Response { n: req.n + 1 })
        }
    }
}

fn main() {
    let counter = shared::CounterClient::new("counter", Client::default());
    let call = counter.incr(shared::Request { n: 1 }).address("127.0.0.1:1");
    assert_eq!(call.call_options().address, ["127.0.0.1:1"]);
}
