use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct UserCreated {
    pub id: u64,
}

pub struct Audit;

#[micro::service]
impl Audit {
    #[subscribe(topic = "user.created")]
    async fn on_created(&self, event: UserCreated) {
        let _ = event.id;
    }
}

fn main() {}
