use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
}

pub struct Billing;

#[micro::service]
impl Billing {
    #[consume(topic = "orders", ack_wait = "soon")]
    async fn on_order(&self, order: Order) -> Result<()> {
        let _ = order.id;
        Ok(())
    }
}

fn main() {}
