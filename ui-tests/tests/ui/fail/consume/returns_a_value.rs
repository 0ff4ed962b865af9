use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
}

pub struct Billing;

#[micro::service]
impl Billing {
    #[consume(topic = "orders", group = "billing")]
    async fn on_order(&self, order: Order) -> Result<u64> {
        Ok(order.id)
    }
}

fn main() {}
