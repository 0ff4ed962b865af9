use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct UserCreated {
    pub id: u64,
}

pub struct Audit;

#[micro::service]
impl Audit {
    #[endpoint]
    #[subscribe(topic = "user.created")]
    async fn on_created(&self, event: UserCreated) -> Result<()> {
        let _ = event.id;
        Ok(())
    }
}

fn main() {}
