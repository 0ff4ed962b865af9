//! Publishing: Go Micro's `client.Publish` and `micro.NewEvent(topic, client)`.
//!
//! A published message carries Go Micro's headers: `Content-Type` (JSON
//! unless another codec is chosen), `Micro-Topic`, a fresh `Micro-Id`, and
//! the metadata of the context (the handler's own when publishing from
//! inside one), so subscribers see who published and on whose behalf.

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;

use serde::Serialize;

use super::Client;
use crate::BoxFuture;
use crate::broker::{Message, TOPIC_HEADER};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{CLIENT_ID, Result};
use crate::headers;
use crate::trace;
use tracing::Span;

impl Client {
    /// Publishes `message` to `topic` through the client's broker; await it,
    /// or set options on it first.
    ///
    /// ```no_run
    /// # async fn demo(client: micro::Client) -> micro::Result<()> {
    /// #[derive(serde::Serialize)]
    /// struct UserCreated { id: u64 }
    ///
    /// client.publish("user.created", UserCreated { id: 1 }).await?;
    /// # Ok(()) }
    /// ```
    pub fn publish<T: Serialize>(&self, topic: impl Into<String>, message: T) -> Publish<T> {
        Publish {
            client: self.clone(),
            topic: topic.into(),
            message,
            codec: Codec::Json,
            context: None,
            headers: Vec::new(),
        }
    }
}

/// A publication being configured; `.await` it to publish.
#[must_use = "a publication does nothing until it is awaited"]
pub struct Publish<T> {
    client: Client,
    topic: String,
    message: T,
    codec: Codec,
    context: Option<Context>,
    headers: Vec<(String, String)>,
}

impl<T: Serialize> Publish<T> {
    /// Encodes the message with `codec` (default JSON, which every Go Micro
    /// subscriber reads).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sends the metadata of `context` instead of the current handler's.
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((key.into(), value.into()));
        self
    }

    /// The broker message: metadata, added headers, then Go Micro's own;
    /// its trace continues `span`'s.
    fn message(self, span: &Span) -> Result<(Client, String, Message)> {
        let body = self.codec.encode(&self.message).map_err(|e| e.into_error(CLIENT_ID))?;
        let mut message = Message::new(body);
        let context = crate::context::continuing(span, self.context).or_else(Context::current);
        if let Some(context) = context {
            for (key, value) in context.forwarded_metadata() {
                message.header.insert(key.to_owned(), value.to_owned());
            }
        }
        message.header.extend(self.headers);
        message
            .header
            .insert("Content-Type".to_owned(), self.codec.content_type().to_owned());
        message.header.insert(TOPIC_HEADER.to_owned(), self.topic.clone());
        message
            .header
            .insert(headers::ID.to_owned(), uuid::Uuid::new_v4().to_string());
        Ok((self.client, self.topic, message))
    }
}

impl<T: Serialize> IntoFuture for Publish<T> {
    type Output = Result<()>;
    type IntoFuture = BoxFuture<'static, Result<()>>;

    fn into_future(self) -> Self::IntoFuture {
        let span = trace::publish_span(&self.topic);
        let prepared = self.message(&span);
        Box::pin(trace::traced(span, async move {
            let (client, topic, message) = prepared?;
            client.broker().publish(&topic, message).await.map_err(Into::into)
        }))
    }
}

impl<T> fmt::Debug for Publish<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("topic", &self.topic)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// Publishes messages of one type to one topic: Go Micro's
/// `micro.NewEvent(topic, client)`, typed.
///
/// ```no_run
/// # async fn demo(client: micro::Client) -> micro::Result<()> {
/// #[derive(serde::Serialize)]
/// struct UserCreated { id: u64 }
///
/// let created = micro::client::Publisher::<UserCreated>::new("user.created", client);
/// created.publish(&UserCreated { id: 1 }).await?;
/// # Ok(()) }
/// ```
pub struct Publisher<T> {
    client: Client,
    topic: String,
    codec: Codec,
    message: PhantomData<fn(&T)>,
}

impl<T: Serialize> Publisher<T> {
    /// A publisher to `topic` through `client`'s broker.
    pub fn new(topic: impl Into<String>, client: Client) -> Self {
        Publisher {
            client,
            topic: topic.into(),
            codec: Codec::Json,
            message: PhantomData,
        }
    }

    /// Encodes with `codec` (default JSON).
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes one message; set options on the result or await it.
    pub fn publish<'a>(&self, message: &'a T) -> Publish<&'a T> {
        self.client.publish(self.topic.clone(), message).codec(self.codec)
    }
}

impl<T> Clone for Publisher<T> {
    fn clone(&self) -> Self {
        Publisher {
            client: self.client.clone(),
            topic: self.topic.clone(),
            codec: self.codec,
            message: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}
