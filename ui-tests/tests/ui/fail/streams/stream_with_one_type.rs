use micro::prelude::*;
use micro::stream::Stream;

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
    async fn chat(&self, stream: Stream<Request>) -> Result<()> {
        let _ = stream;
        Ok(())
    }
}

fn main() {}
