//! Publishing typed events from a handler: the payload as JSON, the
//! calling context's metadata carried along.

use std::sync::Arc;

use serde::Serialize;

use super::{EventsError, PublishOptions, Stream};
use crate::context::Context;

/// Publishes typed events on a stream. Cheap to clone; get one from
/// `Service::events` or make one over any [`Stream`].
#[derive(Clone)]
pub struct Publisher {
    stream: Arc<dyn Stream>,
}

impl Publisher {
    /// A publisher on `stream`.
    pub fn new(stream: Arc<dyn Stream>) -> Self {
        Publisher { stream }
    }

    /// Publishes `message` as JSON to `topic`, carrying `ctx`'s metadata
    /// (its trace among it); the event's id once stored.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        topic: &str,
        message: &T,
    ) -> Result<String, EventsError> {
        self.publish_with(ctx, topic, message, PublishOptions::default()).await
    }

    /// [`publish`](Self::publish) with options: a set id (a repeat is
    /// dropped where the backend deduplicates), more metadata (which wins
    /// over the context's).
    pub async fn publish_with<T: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        topic: &str,
        message: &T,
        mut options: PublishOptions,
    ) -> Result<String, EventsError> {
        for (key, value) in ctx.metadata().iter() {
            options
                .metadata
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
        super::publish_json(&*self.stream, topic, message, options).await
    }

    /// The stream it publishes on.
    pub fn stream(&self) -> &Arc<dyn Stream> {
        &self.stream
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stream", &self.stream.name())
            .finish()
    }
}
