//! Orders: an endpoint takes orders and publishes each as an `orders`
//! event; a billing consumer bills them (an order over the limit fails, is
//! retried with backoff and, after its retries, goes to `orders.dead`); a
//! review consumer reads the dead letters.
//!
//! ```text
//! cargo run -p micro-examples --example orders
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Orders.Place' \
//!      -d '{"id": 1, "amount": 30}' http://localhost:8081
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Orders.Place' \
//!      -d '{"id": 2, "amount": 5000}' http://localhost:8081
//! ```
//!
//! The events are kept in the embedded log (`$HOME/micro/orders/events.redb`,
//! or `--data_dir`): stop the service while an order is being retried and
//! it is billed, or dead-lettered, after the restart. With NATS JetStream or
//! Redis Streams instead: `--events nats --events_address nats://127.0.0.1:4222`
//! (micro built with the `nats` feature).

use micro::events::{Publisher, dead_letter};
use micro::prelude::*;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    amount: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    /// The event's id.
    event: String,
}

/// Takes orders.
struct Orders {
    events: Publisher,
}

#[micro::service]
impl Orders {
    /// Places an order: published as an `orders` event.
    #[endpoint]
    async fn place(&self, ctx: &Context, order: Order) -> Result<Placed> {
        let event = self.events.publish(ctx, "orders", &order).await?;
        Ok(Placed { event })
    }
}

/// Bills orders, one at a time, in order.
struct Billing;

/// The largest amount billing accepts.
const LIMIT: u64 = 1000;

#[micro::service]
impl Billing {
    /// An error nacks the event: it comes back after 1 s, 2 s, 5 s, then
    /// goes to `orders.dead`.
    #[consume(topic = "orders", group = "billing", retry_limit = 3, ack_wait = "30s")]
    async fn bill(&self, order: Order) -> Result<()> {
        if order.amount > LIMIT {
            return Err(micro::Error::bad_request(
                "billing",
                format!("{} is over the limit", order.amount),
            ));
        }
        tracing::info!(order = order.id, amount = order.amount, "billed");
        Ok(())
    }

    /// Orders billing gave up on, with why.
    #[consume(topic = "orders.dead", group = "review")]
    async fn review(&self, ctx: &Context, order: Order) -> Result<()> {
        tracing::warn!(
            order = order.id,
            deliveries = ctx.get(dead_letter::DELIVERIES),
            error = ctx.get(dead_letter::ERROR),
            "needs a person"
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    micro::logging::init();
    let service = Service::new("orders").address("127.0.0.1:8081");
    let events = service.events().await?;
    service.handle(Orders { events }).handle(Billing).run().await
}
