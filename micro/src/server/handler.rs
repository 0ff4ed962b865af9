//! The contract between a `#[micro::service]` type and the server.
//!
//! The macro implements [`Handler`] for the annotated type: a description of
//! its endpoints ([`ServiceDescriptor`]) and a dispatch function that matches
//! the method name, decodes the request, calls the method and encodes the
//! response.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use tracing::warn;

use crate::BoxFuture;
use crate::broker::Event;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Error;
use crate::local::Value;
use crate::registry;
use crate::stream::Kind;
use crate::stream::frame::{FrameReader, FrameSender};

/// A service implementation the server can dispatch to; implemented by
/// `#[micro::service]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a micro service handler",
    label = "not a handler",
    note = "annotate the type's `impl` block with `#[micro::service]` and its methods with `#[endpoint]`"
)]
pub trait Handler: Send + Sync + 'static {
    /// The service's name and endpoints.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Serves one request addressed to `request.method()`.
    fn call(self: Arc<Self>, request: Request) -> BoxFuture<'static, Result<Response, Error>>;

    /// Hands a broker message to the subscriber `method` (the part of its
    /// name after the dot). Types without subscribers keep the default,
    /// which has none.
    fn deliver(self: Arc<Self>, method: &str, event: Event) -> BoxFuture<'static, Result<(), Error>> {
        drop(event);
        let name = self.descriptor().name();
        let error = Error::not_found(
            crate::error::SERVER_ID,
            format!("service {name} has no subscriber {method}"),
        );
        Box::pin(std::future::ready(Err(error)))
    }
}

/// One request as a handler receives it: the endpoint's method name, the
/// context, and the body with its codec (or, for a streaming endpoint, the
/// two directions of the stream).
pub struct Request {
    /// Borrowed from the endpoint's descriptor when the server builds it.
    method: Cow<'static, str>,
    context: Context,
    codec: Codec,
    message: Message,
    stream: Option<StreamParts>,
}

/// The two directions of a streaming call.
pub(crate) struct StreamParts {
    pub(crate) reader: FrameReader,
    pub(crate) sender: FrameSender,
}

impl Request {
    /// A request for `method` (the part of the endpoint after the dot).
    pub fn new(method: impl Into<Cow<'static, str>>, context: Context, codec: Codec, body: Bytes) -> Self {
        Request {
            method: method.into(),
            context,
            codec,
            message: Message::Body(body),
            stream: None,
        }
    }

    /// A request carrying `message`: an encoded body, or in an in-process
    /// call the caller's value.
    pub(crate) fn with_message(method: &'static str, context: Context, codec: Codec, message: Message) -> Self {
        Request {
            method: Cow::Borrowed(method),
            context,
            codec,
            message,
            stream: None,
        }
    }

    /// A request of a streaming endpoint.
    pub(crate) fn streaming(method: &'static str, context: Context, codec: Codec, stream: StreamParts) -> Self {
        Request {
            method: Cow::Borrowed(method),
            context,
            codec,
            message: Message::Body(Bytes::new()),
            stream: Some(stream),
        }
    }

    /// Context, codec and the stream, for a streaming endpoint.
    pub(crate) fn into_stream(self) -> Option<(Context, Codec, StreamParts)> {
        let stream = self.stream?;
        Some((self.context, self.codec, stream))
    }

    /// The method part of the endpoint, e.g. `Greeting`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The request context, to change.
    pub(crate) fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// The codec of the body.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The encoded body; empty in an in-process call, whose request is not
    /// encoded (see [`into_parts`](Self::into_parts)).
    pub fn body(&self) -> &Bytes {
        self.message.body()
    }

    /// Context, codec and body; the request of an in-process call is
    /// encoded now.
    pub fn into_parts(self) -> (Context, Codec, Bytes) {
        let body = self.message.into_body(self.codec).unwrap_or_else(|e| {
            warn!(error = %e, "the request of an in-process call cannot be encoded; the handler gets an empty body");
            Bytes::new()
        });
        (self.context, self.codec, body)
    }

    /// Context, codec, and the body or the caller's value.
    pub(crate) fn into_message(self) -> (Context, Codec, Message) {
        (self.context, self.codec, self.message)
    }
}

/// A request or response: encoded, or the value itself in an in-process call.
pub(crate) enum Message {
    Body(Bytes),
    Value(Box<dyn Value>),
}

impl Message {
    fn body(&self) -> &Bytes {
        static NOT_ENCODED: Bytes = Bytes::new();
        match self {
            Message::Body(body) => body,
            Message::Value(_) => &NOT_ENCODED,
        }
    }

    fn into_body(self, codec: Codec) -> Result<Bytes, Error> {
        match self {
            Message::Body(body) => Ok(body),
            Message::Value(value) => value
                .encode(codec)
                .map(Bytes::from)
                .map_err(|e| e.into_error(crate::error::SERVER_ID)),
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("codec", &self.codec)
            .field("body_len", &self.body().len())
            .field("in_process", &matches!(self.message, Message::Value(_)))
            .finish()
    }
}

/// A handler's response: encoded, or in an in-process call the value itself.
pub struct Response {
    codec: Codec,
    message: Message,
}

impl Response {
    /// A response body encoded with `codec`.
    pub fn new(codec: Codec, body: Bytes) -> Self {
        Response {
            codec,
            message: Message::Body(body),
        }
    }

    /// The response value of an in-process call, not encoded.
    pub(crate) fn local(codec: Codec, value: Box<dyn Value>) -> Self {
        Response {
            codec,
            message: Message::Value(value),
        }
    }

    /// The codec the body is encoded with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The encoded body; empty in an in-process call, whose response is not
    /// encoded (see [`into_body`](Self::into_body)).
    pub fn body(&self) -> &Bytes {
        self.message.body()
    }

    /// The encoded body, owned; a value not encoded yet is encoded now.
    pub fn into_body(self) -> Result<Bytes, Error> {
        self.message.into_body(self.codec)
    }

    /// The body, or the value of an in-process call.
    pub(crate) fn into_message(self) -> Message {
        self.message
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("codec", &self.codec)
            .field("body_len", &self.body().len())
            .field("in_process", &matches!(self.message, Message::Value(_)))
            .finish()
    }
}

/// A service type's name and endpoints, generated by `#[micro::service]`.
#[derive(Debug)]
pub struct ServiceDescriptor {
    name: &'static str,
    rust_path: &'static str,
    docs: &'static str,
    endpoints: &'static [EndpointDescriptor],
    subscribers: &'static [SubscriberDescriptor],
}

impl ServiceDescriptor {
    pub(crate) const fn new(
        name: &'static str,
        rust_path: &'static str,
        docs: &'static str,
        endpoints: &'static [EndpointDescriptor],
        subscribers: &'static [SubscriberDescriptor],
    ) -> Self {
        ServiceDescriptor {
            name,
            rust_path,
            docs,
            endpoints,
            subscribers,
        }
    }

    /// The handler name on the wire, e.g. `Helloworld`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Rust path of the type, e.g. `helloworld::Helloworld`.
    pub fn rust_path(&self) -> &'static str {
        self.rust_path
    }

    /// The doc comment of the `impl` block.
    pub fn docs(&self) -> &'static str {
        self.docs
    }

    /// The endpoints, in declaration order.
    pub fn endpoints(&self) -> &'static [EndpointDescriptor] {
        self.endpoints
    }

    /// The subscribers, in declaration order.
    pub fn subscribers(&self) -> &'static [SubscriberDescriptor] {
        self.subscribers
    }

    /// The endpoints and subscribers as Go Micro registry records.
    pub fn registry_endpoints(&self) -> Vec<registry::Endpoint> {
        let endpoints = self.endpoints.iter().map(EndpointDescriptor::to_registry);
        endpoints
            .chain(self.subscribers.iter().map(SubscriberDescriptor::to_registry))
            .collect()
    }
}

/// One `#[subscribe]` method (broker messages) or `#[consume]` method
/// (events of a stream) of a service type.
pub struct SubscriberDescriptor {
    name: &'static str,
    method: &'static str,
    topic: &'static str,
    queue: Option<&'static str>,
    docs: &'static str,
    message: fn() -> registry::Value,
    consume: Option<Consumption>,
}

/// How a `#[consume]` method consumes its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumption {
    retry_limit: Option<u32>,
    ack_wait: Option<std::time::Duration>,
}

impl Consumption {
    /// Redeliveries before the dead-letter topic (`None`: no limit).
    pub fn retry_limit(&self) -> Option<u32> {
        self.retry_limit
    }

    /// How long an event may be handled before it is delivered again
    /// (`None`: the stream's default, 30 s).
    pub fn ack_wait(&self) -> Option<std::time::Duration> {
        self.ack_wait
    }
}

impl SubscriberDescriptor {
    pub(crate) const fn new(
        name: &'static str,
        method: &'static str,
        topic: &'static str,
        queue: Option<&'static str>,
        docs: &'static str,
        message: fn() -> registry::Value,
    ) -> Self {
        SubscriberDescriptor {
            name,
            method,
            topic,
            queue,
            docs,
            message,
            consume: None,
        }
    }

    /// This subscriber as an event consumer.
    pub(crate) const fn consuming(mut self, retry_limit: Option<u32>, ack_wait_ms: Option<u64>) -> Self {
        let ack_wait = match ack_wait_ms {
            Some(ms) => Some(std::time::Duration::from_millis(ms)),
            None => None,
        };
        self.consume = Some(Consumption { retry_limit, ack_wait });
        self
    }

    /// How it consumes, for a `#[consume]` method; `None` for a
    /// `#[subscribe]` one.
    pub fn consumption(&self) -> Option<Consumption> {
        self.consume
    }

    /// The registry name, e.g. `Audit.OnCreated`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The method part of the name, e.g. `OnCreated`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The topic subscribed to.
    pub fn topic(&self) -> &'static str {
        self.topic
    }

    /// The queue group (a consumer's group), if any.
    pub fn queue(&self) -> Option<&'static str> {
        self.queue
    }

    /// The method's doc comment.
    pub fn docs(&self) -> &'static str {
        self.docs
    }

    /// The message's shape.
    pub fn message(&self) -> registry::Value {
        (self.message)()
    }

    /// The subscriber as Go Micro lists it in the registry: an endpoint with
    /// the message as its request and `{"topic", "subscriber": "true"}`
    /// metadata (and the queue, which Go Micro leaves out).
    pub fn to_registry(&self) -> registry::Endpoint {
        let mut metadata = std::collections::BTreeMap::from([
            ("topic".to_owned(), self.topic.to_owned()),
            ("subscriber".to_owned(), "true".to_owned()),
        ]);
        if let Some(queue) = self.queue {
            metadata.insert("queue".to_owned(), queue.to_owned());
        }
        if self.consume.is_some() {
            metadata.insert("stream".to_owned(), "true".to_owned());
        }
        if !self.docs.is_empty() {
            metadata.insert("description".to_owned(), self.docs.to_owned());
        }
        registry::Endpoint {
            name: self.name.to_owned(),
            request: Some(self.message()),
            response: None,
            metadata,
        }
    }
}

impl fmt::Debug for SubscriberDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberDescriptor")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .field("consume", &self.consume)
            .finish_non_exhaustive()
    }
}

/// One endpoint of a service type.
pub struct EndpointDescriptor {
    name: &'static str,
    method: &'static str,
    docs: &'static str,
    request: fn() -> registry::Value,
    response: fn() -> registry::Value,
    idempotent: bool,
    kind: Kind,
}

impl EndpointDescriptor {
    pub(crate) const fn new(
        name: &'static str,
        method: &'static str,
        docs: &'static str,
        request: fn() -> registry::Value,
        response: fn() -> registry::Value,
        idempotent: bool,
        kind: Kind,
    ) -> Self {
        EndpointDescriptor {
            name,
            method,
            docs,
            request,
            response,
            idempotent,
            kind,
        }
    }

    /// The wire name, e.g. `Helloworld.Greeting`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The method part of the name, e.g. `Greeting`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The method's doc comment.
    pub fn docs(&self) -> &'static str {
        self.docs
    }

    /// The request's shape.
    pub fn request(&self) -> registry::Value {
        (self.request)()
    }

    /// The response's shape.
    pub fn response(&self) -> registry::Value {
        (self.response)()
    }

    /// Whether a call may be repeated safely (`#[endpoint(idempotent)]`).
    pub fn idempotent(&self) -> bool {
        self.idempotent
    }

    /// Unary or which kind of stream.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The endpoint as a Go Micro registry record; the doc comment travels as
    /// `description` metadata, as Go Micro v5 extracts it.
    pub fn to_registry(&self) -> registry::Endpoint {
        let mut metadata = std::collections::BTreeMap::new();
        if !self.docs.is_empty() {
            metadata.insert("description".to_owned(), self.docs.to_owned());
        }
        if self.idempotent {
            metadata.insert("idempotent".to_owned(), "true".to_owned());
        }
        if self.kind.is_stream() {
            // Go Micro marks stream endpoints so.
            metadata.insert("stream".to_owned(), "true".to_owned());
        }
        registry::Endpoint {
            name: self.name.to_owned(),
            request: Some(self.request()),
            response: Some(self.response()),
            metadata,
        }
    }
}

impl fmt::Debug for EndpointDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointDescriptor")
            .field("name", &self.name)
            .field("idempotent", &self.idempotent)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A service type compiled into this binary, collected with `inventory`.
#[derive(Debug)]
pub struct CompiledService(&'static ServiceDescriptor);

impl CompiledService {
    pub(crate) const fn new(descriptor: &'static ServiceDescriptor) -> Self {
        CompiledService(descriptor)
    }

    /// The service's descriptor.
    pub fn descriptor(&self) -> &'static ServiceDescriptor {
        self.0
    }
}

inventory::collect!(CompiledService);

/// Every `#[micro::service]` type compiled into this binary.
///
/// This lists what the binary contains (for docs and tooling); serving still
/// goes through [`crate::Service::handle`]. On platforms where `inventory`
/// finds no submissions the list is empty.
pub fn compiled_services() -> impl Iterator<Item = &'static ServiceDescriptor> {
    inventory::iter::<CompiledService>
        .into_iter()
        .map(CompiledService::descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_process_value_is_encoded_when_a_body_is_asked_for() {
        let value: Box<dyn Value> = Box::new(("alice".to_owned(), 7u8));
        let request = Request::with_message("Greeting", Context::new(), Codec::Json, Message::Value(value));
        assert!(request.body().is_empty(), "not encoded until asked");
        let (_, codec, body) = request.into_parts();
        assert_eq!((codec, &body[..]), (Codec::Json, &b"[\"alice\",7]\n"[..]));

        let response = Response::local(Codec::Json, Box::new("hi".to_owned()));
        assert_eq!(&response.into_body().unwrap()[..], b"\"hi\"\n");
    }
}
