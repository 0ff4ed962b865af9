use micro::prelude::*;
use micro::stream::Sender;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Tick {
    pub i: u64,
}

pub struct Streamer;

#[micro::service]
impl Streamer {
    #[endpoint]
    async fn count(&self, req: Request, tx: &Sender<Tick>) -> Result<()> {
        let _ = req;
        tx.send(Tick { i: 0 }).await
    }
}

fn main() {}
