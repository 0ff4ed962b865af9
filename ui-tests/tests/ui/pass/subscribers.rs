use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct UserCreated {
    pub id: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Request {}

pub struct Audit;

#[micro::service]
impl Audit {
    /// Records new users.
    #[subscribe(topic = "user.created", queue = "audit")]
    async fn on_created(&self, ctx: &Context, event: UserCreated) -> Result<()> {
        let _ = (ctx.get("X-User"), event.id);
        Ok(())
    }

    #[micro::subscribe(topic = "user.deleted")]
    async fn on_deleted(&self, event: UserCreated) -> std::result::Result<(), micro::Error> {
        let _ = event.id;
        Ok(())
    }

    #[cfg(any())]
    #[subscribe(topic = "never.compiled")]
    async fn never(&self, event: UserCreated) -> Result<()> {
        let _ = event.id;
        Ok(())
    }

    #[endpoint]
    async fn status(&self, _req: Request) -> Result<u32> {
        Ok(1)
    }
}

/// A service with subscribers only.
pub struct Listener;

#[micro::service]
impl Listener {
    #[subscribe(topic = "ping")]
    async fn on_ping(&self, _ping: String) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let descriptor = micro::server::Handler::descriptor(&Audit);
    let subscribers = descriptor.subscribers();
    assert_eq!(subscribers.len(), 2);
    assert_eq!(subscribers[0].name(), "Audit.OnCreated");
    assert_eq!(subscribers[0].topic(), "user.created");
    assert_eq!(subscribers[0].queue(), Some("audit"));
    assert_eq!(subscribers[0].docs(), "Records new users.");
    assert_eq!(subscribers[1].queue(), None);
    assert_eq!(descriptor.endpoints().len(), 1);
    assert_eq!(descriptor.registry_endpoints().len(), 3);
    assert_eq!(micro::server::Handler::descriptor(&Listener).subscribers()[0].topic(), "ping");
}
