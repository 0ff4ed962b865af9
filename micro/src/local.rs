//! In-process calls: a client that finds the picked node served by this
//! process hands the request to the handler without touching the network,
//! and without encoding it when both sides use the same Rust types.
//!
//! Every running server enters its address here. With
//! [`ClientOptions::local_calls`](crate::client::ClientOptions::local_calls)
//! set, a call whose node is one of them runs the handler directly: the
//! request value moves to the handler and the response value moves back.
//! When a side's type differs (a client with its own copy of the request
//! struct, say), that value goes through the node's codec instead, exactly as
//! over the wire.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use foldhash::HashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::codec::{Codec, CodecError};
use crate::server::Shared;

/// A request or response value that can still be encoded if the other side
/// wants a different type.
pub(crate) trait Value: Any + Send {
    /// The value in `codec`, as the wire would carry it.
    fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError>;
}

impl<T: Serialize + Send + 'static> Value for T {
    fn encode(&self, codec: Codec) -> Result<Vec<u8>, CodecError> {
        codec.encode(self)
    }
}

/// The value as a `T`: moved when it is one, else encoded with `codec` and
/// decoded as a `T`.
pub(crate) fn take<T: DeserializeOwned + 'static>(value: Box<dyn Value>, codec: Codec) -> Result<T, CodecError> {
    if (*value).type_id() == std::any::TypeId::of::<T>() {
        let any: Box<dyn Any> = value;
        return any.downcast::<T>().map(|value| *value).map_err(|_| CodecError::Decode {
            content_type: codec.content_type(),
            message: "the value changed type".into(),
        });
    }
    let body = value.encode(codec)?;
    codec.decode_request(&body)
}

/// A running server, as in-process calls find it.
struct Entry {
    shared: Weak<Shared>,
    stop: CancellationToken,
}

impl Entry {
    fn live(&self) -> Option<Arc<Shared>> {
        if self.stop.is_cancelled() {
            return None;
        }
        self.shared.upgrade()
    }
}

/// Running servers by listening address.
static SERVERS: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);

/// Enters a server listening on `address` until `stop` fires.
pub(crate) fn register(address: String, shared: &Arc<Shared>, stop: CancellationToken) {
    let mut servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    let servers = servers.get_or_insert_with(HashMap::default);
    servers.retain(|_, entry| entry.live().is_some());
    let entry = Entry {
        shared: Arc::downgrade(shared),
        stop,
    };
    servers.insert(address, entry);
}

/// The server of this process listening on `address`, if one is running.
pub(crate) fn find(address: &str) -> Option<Arc<Shared>> {
    let servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    servers.as_ref()?.get(address)?.live()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Mine {
        name: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Theirs {
        name: String,
    }

    #[test]
    fn a_value_of_the_same_type_moves_and_another_type_is_decoded() {
        let value: Box<dyn Value> = Box::new(Mine { name: "a".into() });
        assert_eq!(take::<Mine>(value, Codec::Msgpack).unwrap(), Mine { name: "a".into() });
        let value: Box<dyn Value> = Box::new(Mine { name: "b".into() });
        assert_eq!(take::<Theirs>(value, Codec::Json).unwrap(), Theirs { name: "b".into() });
        let value: Box<dyn Value> = Box::new(5u32);
        assert!(take::<Mine>(value, Codec::Json).is_err());
    }
}
