//! Publishes `user.created` events, as alice, to whoever subscribes.
//!
//! ```sh
//! cargo run -p micro-examples --example publisher -- 5
//! ```

use micro::Service;
use micro::client::Publisher;
use micro::context::Context;
use micro_examples::users::{USER_CREATED, UserCreated};

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    let count: u64 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    // The service's client publishes through the service's broker, so the
    // --broker flags apply.
    let client = Service::new("signup").client();
    let created = Publisher::<UserCreated>::new(USER_CREATED, client);
    let ctx = Context::new().with_metadata("X-User", "alice");
    for id in 1..=count {
        let event = UserCreated {
            id,
            name: format!("user{id}"),
        };
        created.publish(&event).context(ctx.clone()).await?;
        println!("published user {id}");
    }
    Ok(())
}
