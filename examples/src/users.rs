//! Events about users, and a service that keeps an audit trail of them.

use micro::prelude::*;

/// Published to `user.created` when a user signs up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserCreated {
    /// The new user's id.
    pub id: u64,
    /// Their name.
    pub name: String,
}

/// The topic of [`UserCreated`].
pub const USER_CREATED: &str = "user.created";

/// Keeps an audit trail of new users. Run several: they share the work as
/// the `audit` queue group, each event going to one of them.
#[derive(Debug, Default)]
pub struct Audit;

#[micro::service]
impl Audit {
    /// Records a new user, with who created it.
    #[subscribe(topic = "user.created", queue = "audit")]
    async fn on_created(&self, ctx: &Context, event: UserCreated) -> Result<()> {
        let by = ctx.get("X-User").unwrap_or("someone");
        println!("audit: user {} ({}) created by {by}", event.id, event.name);
        Ok(())
    }
}
