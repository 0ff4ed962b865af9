use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct UserCreated {
    pub id: u64,
}

pub struct Audit;

impl Audit {
    #[subscribe(topic = "user.created")]
    pub async fn on_created(&self, event: UserCreated) -> Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {}
