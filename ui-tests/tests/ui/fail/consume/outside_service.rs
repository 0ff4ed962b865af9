use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
}

pub struct Billing;

impl Billing {
    #[micro::consume(topic = "orders")]
    async fn on_order(&self, order: Order) -> Result<()> {
        let _ = order.id;
        Ok(())
    }
}

fn main() {}
