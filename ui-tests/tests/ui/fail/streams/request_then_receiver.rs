use micro::prelude::*;
use micro::stream::Receiver;

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
    async fn mixed(&self, req: Request, rx: Receiver<Request>) -> Result<()> {
        let _ = (req, rx);
        Ok(())
    }
}

fn main() {}
