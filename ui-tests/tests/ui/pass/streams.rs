use micro::client::{Bidirectional, Call, ClientStreaming, ServerStreaming};
use micro::prelude::*;
use micro::stream::{Kind, Receiver, Sender, Stream};

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub n: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Tick {
    pub i: u64,
}

pub struct Streamer;

#[micro::service]
impl Streamer {
    #[endpoint]
    async fn unary(&self, req: Request) -> Result<Tick> {
        Ok(Tick { i: req.n })
    }

    #[endpoint]
    async fn count(&self, ctx: &Context, req: Request, tx: Sender<Tick>) -> Result<()> {
        let _ = ctx;
        for i in 0..req.n {
            tx.send(Tick { i }).await?;
        }
        Ok(())
    }

    #[endpoint]
    async fn sum(&self, mut rx: Receiver<Request>) -> Result<Tick> {
        let mut i = 0;
        while let Some(req) = rx.recv().await? {
            i += req.n;
        }
        Ok(Tick { i })
    }

    #[endpoint]
    async fn chat(&self, mut stream: Stream<Request, Tick>) -> Result<()> {
        while let Some(req) = stream.recv().await? {
            stream.send(Tick { i: req.n }).await?;
        }
        Ok(())
    }

    #[endpoint]
    async fn halves(&self, ctx: &Context, mut rx: Receiver<Request>, tx: Sender<Tick>) -> Result<()> {
        let _ = ctx;
        while let Some(req) = rx.recv().await? {
            tx.send(Tick { i: req.n }).await?;
        }
        Ok(())
    }
}

fn main() {
    let client = StreamerClient::new("streamer", Client::default());
    let _: Call<Request, Tick> = client.unary(Request { n: 1 });
    let _: Call<Request, Tick, ServerStreaming> = client.count(Request { n: 1 });
    let _: Call<Request, Tick, ClientStreaming> = client.sum();
    let _: Call<Request, Tick, Bidirectional> = client.chat();
    let _: Call<Request, Tick, Bidirectional> = client.halves();
    let kinds: Vec<Kind> = micro::server::Handler::descriptor(&Streamer).endpoints().iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [Kind::Unary, Kind::ServerStreaming, Kind::ClientStreaming, Kind::Bidirectional, Kind::Bidirectional]);
}
