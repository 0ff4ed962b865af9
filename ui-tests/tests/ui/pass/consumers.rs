use std::time::Duration;

use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
}

pub struct Billing;

#[micro::service]
impl Billing {
    /// Bills orders.
    #[consume(topic = "orders", group = "billing", retry_limit = 5, ack_wait = "1m")]
    async fn on_order(&self, ctx: &Context, order: Order) -> Result<()> {
        let _ = (ctx.get("Tenant"), order.id);
        Ok(())
    }

    #[micro::consume(topic = "orders.dead")]
    async fn on_dead(&self, order: Order) -> std::result::Result<(), micro::Error> {
        let _ = order.id;
        Ok(())
    }

    #[subscribe(topic = "ping")]
    async fn on_ping(&self, _ping: String) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let descriptor = micro::server::Handler::descriptor(&Billing);
    let subscribers = descriptor.subscribers();
    assert_eq!(subscribers.len(), 3);
    let billing = subscribers[0].consumption().expect("a consumer");
    assert_eq!(subscribers[0].queue(), Some("billing"));
    assert_eq!(billing.retry_limit(), Some(5));
    assert_eq!(billing.ack_wait(), Some(Duration::from_secs(60)));
    let dead = subscribers[1].consumption().expect("a consumer");
    assert_eq!((dead.retry_limit(), dead.ack_wait()), (None, None));
    assert_eq!(subscribers[1].queue(), None);
    assert!(subscribers[2].consumption().is_none(), "a broker subscriber");
}
