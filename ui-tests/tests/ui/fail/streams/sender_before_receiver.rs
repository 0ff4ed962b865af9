use micro::prelude::*;
use micro::stream::{Receiver, Sender};

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
    async fn chat(&self, tx: Sender<Tick>, rx: Receiver<Request>) -> Result<()> {
        let _ = (tx, rx);
        Ok(())
    }
}

fn main() {}
