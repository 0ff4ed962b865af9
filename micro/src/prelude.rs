//! What a service file needs: `use micro::prelude::*;`.

pub use crate::client::Client;
pub use crate::context::Context;
pub use crate::error::{Error, Result};
pub use crate::metadata::Metadata;
pub use crate::service::Service;
pub use crate::stream::{Receiver, Sender, Stream};
pub use micro_macros::{consume, endpoint, service, subscribe};
pub use serde::{Deserialize, Serialize};
