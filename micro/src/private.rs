//! The support surface of the code `#[micro::service]` generates. Not public
//! API: it changes with the macro, which `micro` pins to its exact version.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use ::core;
pub use ::inventory;
pub use ::std::boxed::Box;
pub use ::std::string::String;
pub use ::std::sync::Arc as SharedArc;

pub use crate::BoxFuture;
pub use crate::broker::Event;
pub use crate::client::{Bidirectional, ClientStreaming, ServerStreaming};
pub use crate::client::{Call, Client};
pub use crate::context::Context;
pub use crate::error::Error;
pub use crate::registry::Value;
use crate::registry::describe;
pub use crate::server::{
    CompiledService, EndpointDescriptor, Handler, Request, Response, ServiceDescriptor, SubscriberDescriptor,
};
pub use crate::stream::{Kind, Receiver, Sender, Stream};

use crate::error::SERVER_ID;
use crate::server::handler::Message;

/// What an endpoint returns: `Result<T, E>` with a serializable `T` and an
/// error that converts into [`Error`].
#[diagnostic::on_unimplemented(
    message = "an endpoint must return `Result<T, E>` where `T: Serialize` and `E: Into<micro::Error>`, not `{Self}`",
    label = "this return type cannot be sent back to the caller"
)]
pub trait EndpointOutput: Send + 'static {
    /// The response type.
    type Ok: Serialize + Send + 'static;
    /// The response, or the error as a Go Micro error.
    fn into_result(self) -> Result<Self::Ok, Error>;
}

impl<T, E> EndpointOutput for Result<T, E>
where
    T: Serialize + Send + 'static,
    E: Into<Error> + Send + 'static,
{
    type Ok = T;

    fn into_result(self) -> Result<T, Error> {
        self.map_err(Into::into)
    }
}

/// Decodes the request, runs the endpoint, encodes its response.
pub fn unary<Req, Out, F, Fut>(request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
where
    Req: DeserializeOwned + Send + 'static,
    Out: EndpointOutput,
    F: FnOnce(Context, Req) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    let (context, codec, message) = request.into_message();
    let in_process = matches!(message, Message::Value(_));
    let decoded = match message {
        Message::Body(body) => codec.decode_request::<Req>(&body),
        Message::Value(value) => crate::local::take::<Req>(value, codec),
    };
    let message = match decoded {
        Ok(message) => message,
        Err(e) => return Box::pin(std::future::ready(Err(e.into_error(SERVER_ID)))),
    };
    Box::pin(async move {
        let response = endpoint(context, message).await.into_result()?;
        if in_process {
            return Ok(Response::local(codec, Box::new(response)));
        }
        let body = codec.encode(&response).map_err(|e| e.into_error(SERVER_ID))?;
        Ok(Response::new(codec, body.into()))
    })
}

/// Splits a streaming request into its context, codec and typed halves.
fn stream_halves<In: DeserializeOwned, Out: Serialize>(
    request: Request,
) -> Result<(Context, Receiver<In>, Sender<Out>), Error> {
    let (context, codec, parts) = request
        .into_stream()
        .ok_or_else(|| Error::bad_request(SERVER_ID, "a streaming endpoint was called without a stream"))?;
    Ok((
        context,
        Receiver::new(parts.reader, codec),
        Sender::new(parts.sender, codec),
    ))
}

/// The answer of a streaming handler: its messages went out on the stream.
fn streamed(outcome: Result<(), Error>) -> Result<Response, Error> {
    outcome.map(|()| Response::new(crate::codec::Codec::Bytes, bytes::Bytes::new()))
}

/// Serves a server stream: reads the one request, then the endpoint sends
/// its responses.
pub fn server_stream<Req, Rsp, Out, F, Fut>(
    request: Request,
    endpoint: F,
) -> BoxFuture<'static, Result<Response, Error>>
where
    Req: DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    Out: EndpointOutput,
    F: FnOnce(Context, Req, Sender<Rsp>) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    Box::pin(async move {
        let (context, mut rx, tx) = stream_halves::<Req, Rsp>(request)?;
        let message = rx
            .recv()
            .await?
            .ok_or_else(|| Error::bad_request(SERVER_ID, "the stream ended before its request"))?;
        streamed(endpoint(context, message, tx).await.into_result().map(drop))
    })
}

/// Serves a client stream: the endpoint reads the requests and returns the
/// one response, which goes out on the stream.
pub fn client_stream<Req, Out, F, Fut>(request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
where
    Req: DeserializeOwned + Send + 'static,
    Out: EndpointOutput,
    F: FnOnce(Context, Receiver<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    Box::pin(async move {
        let (context, rx, tx) = stream_halves::<Req, Out::Ok>(request)?;
        let response = endpoint(context, rx).await.into_result()?;
        streamed(tx.send(response).await)
    })
}

/// Serves a bidirectional stream handed over as one [`Stream`].
pub fn bidi<Req, Rsp, Out, F, Fut>(request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
where
    Req: DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    Out: EndpointOutput,
    F: FnOnce(Context, Stream<Req, Rsp>) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    Box::pin(async move {
        let (context, rx, tx) = stream_halves::<Req, Rsp>(request)?;
        streamed(endpoint(context, Stream::new(rx, tx)).await.into_result().map(drop))
    })
}

/// Serves a bidirectional stream handed over as its two halves.
pub fn bidi_halves<Req, Rsp, Out, F, Fut>(request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
where
    Req: DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    Out: EndpointOutput,
    F: FnOnce(Context, Receiver<Req>, Sender<Rsp>) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    Box::pin(async move {
        let (context, rx, tx) = stream_halves::<Req, Rsp>(request)?;
        streamed(endpoint(context, rx, tx).await.into_result().map(drop))
    })
}

/// The answer for a method the handler does not have.
#[cold]
pub fn unknown_method(request: &Request, service: &'static str) -> BoxFuture<'static, Result<Response, Error>> {
    let error = Error::not_found(SERVER_ID, format!("unknown endpoint {service}.{}", request.method()));
    Box::pin(std::future::ready(Err(error)))
}

/// Decodes a broker message by its `Content-Type` and runs the subscriber
/// `name` with it, inside the message's context.
pub fn subscriber<Msg, Out, F, Fut>(
    event: Event,
    name: &'static str,
    subscriber: F,
) -> BoxFuture<'static, Result<(), Error>>
where
    Msg: DeserializeOwned + Send + 'static,
    Out: EndpointOutput,
    F: FnOnce(Context, Msg) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send + 'static,
{
    let opened = crate::server::open_message(event, name).and_then(|(context, codec, body)| {
        let message = codec
            .decode_request::<Msg>(&body)
            .map_err(|e| e.into_error(SERVER_ID))?;
        Ok((context, message))
    });
    let (context, message) = match opened {
        Ok(opened) => opened,
        Err(e) => return Box::pin(std::future::ready(Err(e))),
    };
    Box::pin(
        context
            .clone()
            .scope(async move { subscriber(context, message).await.into_result().map(drop) }),
    )
}

/// The answer for a subscriber the handler does not have.
#[cold]
pub fn unknown_subscriber(method: &str, service: &'static str) -> BoxFuture<'static, Result<(), Error>> {
    let error = Error::not_found(SERVER_ID, format!("unknown subscriber {service}.{method}"));
    Box::pin(std::future::ready(Err(error)))
}

/// The registry shape of `T`, via `Deserialize` when `T` has it, else its
/// name only. Call as `Describe::<T>::PROBE.value("T")` with both
/// [`ViaDeserialize`] and [`ViaName`] in scope: method resolution tries the
/// receiver `&Describe<T>` (`ViaDeserialize`, when `T: Deserialize`) before
/// its auto-reference `&&Describe<T>` (`ViaName`).
pub struct Describe<T>(PhantomData<fn() -> T>);

impl<T: 'static> Describe<T> {
    /// The probe for `T`.
    pub const PROBE: &'static Describe<T> = &Describe(PhantomData);
}

/// Describes types that implement `Deserialize` by tracing it.
pub trait ViaDeserialize {
    /// The shape, or the name when tracing fails.
    fn value(&self, name: &'static str) -> Value;
}

impl<T: DeserializeOwned> ViaDeserialize for Describe<T> {
    fn value(&self, name: &'static str) -> Value {
        describe::<T>().unwrap_or_else(|| Value::named(name))
    }
}

/// Describes any other type by its name.
pub trait ViaName {
    /// The type's name.
    fn value(&self, name: &'static str) -> Value;
}

impl<T> ViaName for &Describe<T> {
    fn value(&self, name: &'static str) -> Value {
        Value::named(name)
    }
}

/// The typed client's handle: a client and the service name to call.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    client: Client,
    service: Arc<str>,
}

impl ServiceClient {
    /// Calls of `service` through `client`.
    pub fn new(service: impl Into<String>, client: Client) -> Self {
        ServiceClient {
            client,
            service: Arc::from(service.into()),
        }
    }

    /// A call of `endpoint`.
    pub fn call<Req, Rsp>(&self, endpoint: &'static str, request: Req, idempotent: bool) -> Call<Req, Rsp> {
        self.client
            .call(Arc::clone(&self.service), endpoint, request)
            .idempotent(idempotent)
    }

    /// A call of the server-streaming `endpoint`.
    pub fn server_stream<Req, Rsp>(&self, endpoint: &'static str, request: Req) -> Call<Req, Rsp, ServerStreaming> {
        self.client.server_stream(Arc::clone(&self.service), endpoint, request)
    }

    /// A call of the client-streaming `endpoint`.
    pub fn client_stream<Req, Rsp>(&self, endpoint: &'static str) -> Call<Req, Rsp, ClientStreaming> {
        self.client.client_stream(Arc::clone(&self.service), endpoint)
    }

    /// A call of the bidirectional `endpoint`.
    pub fn bidi<Req, Rsp>(&self, endpoint: &'static str) -> Call<Req, Rsp, Bidirectional> {
        self.client.stream(Arc::clone(&self.service), endpoint)
    }

    /// The service name called.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A type an endpoint can take as its request.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an endpoint's request: it does not implement `serde::Deserialize`",
    label = "requests are decoded with serde",
    note = "add `#[derive(serde::Deserialize)]` to `{Self}`, or take a type that implements `Deserialize`"
)]
pub trait RequestType: DeserializeOwned {}

impl<T: DeserializeOwned> RequestType for T {}

/// A type an endpoint can send as its response.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an endpoint's response: it does not implement `serde::Serialize`",
    label = "responses are encoded with serde",
    note = "add `#[derive(serde::Serialize)]` to `{Self}`, or return a type that implements `Serialize`"
)]
pub trait ResponseType: Serialize {}

impl<T: Serialize> ResponseType for T {}

/// A type a subscriber can take as its message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a subscriber's message: it does not implement `serde::Deserialize`",
    label = "messages are decoded with serde",
    note = "add `#[derive(serde::Deserialize)]` to `{Self}`, or take a type that implements `Deserialize`"
)]
pub trait MessageType: DeserializeOwned {}

impl<T: DeserializeOwned> MessageType for T {}

/// The two halves of what an endpoint or subscriber returns.
#[diagnostic::on_unimplemented(
    message = "an endpoint returns `Result<T, E>`, not `{Self}`",
    label = "write the return type as `Result<Response, MyError>` or `micro::Result<Response>`"
)]
pub trait EndpointResult {
    /// The response type.
    type Ok;
    /// The error type.
    type Err;
}

impl<T, E> EndpointResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// The error of an endpoint's `Result`, checked on [`Error`] so that the
/// message below is the one the compiler shows.
#[diagnostic::on_unimplemented(
    message = "the error type `{E}` does not convert into `micro::Error`",
    label = "an endpoint's errors are sent as `micro::Error`",
    note = "implement `From<{E}> for micro::Error`, or map the error before returning it"
)]
pub trait FromEndpointError<E> {}

impl<E: Into<Error>> FromEndpointError<E> for Error {}

/// Checks, at the user's span, that a request type can be decoded.
pub const fn assert_request<T: RequestType + Send + 'static>() {}

/// Checks, at the user's span, that a response type can be encoded.
pub const fn assert_response<T: ResponseType + Send + 'static>() {}

/// Checks, at the user's span, that a subscriber's message can be decoded.
pub const fn assert_message<T: MessageType + Send + 'static>() {}

/// Checks, at the user's span, that an endpoint's error converts into [`Error`].
pub const fn assert_error<E: Send + 'static>()
where
    Error: FromEndpointError<E>,
{
}

/// Picks how an endpoint is dispatched by autoref: `(&Serve::<Req, Rsp,
/// Out>::new()).unary(..)` resolves to [`ViaServe`] when the types have
/// what serving needs, else to [`ViaStub`]. The `assert_*` checks have then
/// already reported the type at the user's span, so the dispatch does not
/// report it a second time; the stub is never built into a program.
pub struct Serve<Req, Rsp, Out>(PhantomData<Types<Req, Rsp, Out>>);

/// The types a [`Serve`] probe stands for; a function pointer, so the probe
/// is `Send`, `Sync` and `'static` whatever they are.
type Types<Req, Rsp, Out> = fn() -> (Req, Rsp, Out);

impl<Req, Rsp, Out> Serve<Req, Rsp, Out> {
    /// The probe.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Serve(PhantomData)
    }
}

/// Serves an endpoint whose types can be decoded and encoded.
pub trait ViaServe<Req, Rsp, Out> {
    /// See [`unary`].
    fn unary<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static;
    /// See [`server_stream`].
    fn server_stream<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Req, Sender<Rsp>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static;
    /// See [`client_stream`].
    fn client_stream<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Receiver<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static;
    /// See [`bidi`].
    fn bidi<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Stream<Req, Rsp>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static;
    /// See [`bidi_halves`].
    fn bidi_halves<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Receiver<Req>, Sender<Rsp>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static;
    /// See [`subscriber`] (`Req` is the message).
    fn subscriber<F, Fut>(
        &self,
        event: Event,
        name: &'static str,
        subscriber: F,
    ) -> BoxFuture<'static, Result<(), Error>>
    where
        F: FnOnce(Context, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static;
}

impl<Req, Rsp, Out> ViaServe<Req, Rsp, Out> for Serve<Req, Rsp, Out>
where
    Req: DeserializeOwned + Send + 'static,
    Rsp: Serialize + Send + 'static,
    Out: EndpointOutput,
{
    fn unary<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        unary(request, endpoint)
    }

    fn server_stream<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Req, Sender<Rsp>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        server_stream(request, endpoint)
    }

    fn client_stream<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Receiver<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        client_stream(request, endpoint)
    }

    fn bidi<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Stream<Req, Rsp>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        bidi(request, endpoint)
    }

    fn bidi_halves<F, Fut>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>>
    where
        F: FnOnce(Context, Receiver<Req>, Sender<Rsp>) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        bidi_halves(request, endpoint)
    }

    fn subscriber<F, Fut>(
        &self,
        event: Event,
        name: &'static str,
        subscriber: F,
    ) -> BoxFuture<'static, Result<(), Error>>
    where
        F: FnOnce(Context, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Out> + Send + 'static,
    {
        self::subscriber(event, name, subscriber)
    }
}

/// The fallback of [`Serve`] for types that an `assert_*` check rejected.
pub trait ViaStub {
    /// An internal error.
    fn unary<F>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>> {
        drop(endpoint);
        unservable(&request, "")
    }
    /// An internal error.
    fn server_stream<F>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>> {
        drop(endpoint);
        unservable(&request, "")
    }
    /// An internal error.
    fn client_stream<F>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>> {
        drop(endpoint);
        unservable(&request, "")
    }
    /// An internal error.
    fn bidi<F>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>> {
        drop(endpoint);
        unservable(&request, "")
    }
    /// An internal error.
    fn bidi_halves<F>(&self, request: Request, endpoint: F) -> BoxFuture<'static, Result<Response, Error>> {
        drop(endpoint);
        unservable(&request, "")
    }
    /// An internal error.
    fn subscriber<F>(&self, event: Event, name: &'static str, subscriber: F) -> BoxFuture<'static, Result<(), Error>> {
        drop((event, subscriber));
        let error = Error::internal_server_error(SERVER_ID, format!("subscriber {name} was not built"));
        Box::pin(std::future::ready(Err(error)))
    }
}

impl<Req, Rsp, Out> ViaStub for &Serve<Req, Rsp, Out> {}

/// The answer of an endpoint that `#[micro::service]` could not build (it
/// reported why at compile time, so no program serves it): an internal error.
#[cold]
pub fn unservable(request: &Request, service: &'static str) -> BoxFuture<'static, Result<Response, Error>> {
    let method = request.method();
    let detail = if service.is_empty() {
        format!("endpoint {method} was not built")
    } else {
        format!("endpoint {service}.{method} was not built")
    };
    let error = Error::internal_server_error(SERVER_ID, detail);
    Box::pin(std::future::ready(Err(error)))
}

/// A service's descriptor.
pub const fn service_descriptor(
    name: &'static str,
    rust_path: &'static str,
    docs: &'static str,
    endpoints: &'static [EndpointDescriptor],
    subscribers: &'static [SubscriberDescriptor],
) -> ServiceDescriptor {
    ServiceDescriptor::new(name, rust_path, docs, endpoints, subscribers)
}

/// An endpoint's descriptor.
#[allow(clippy::too_many_arguments)]
pub const fn endpoint_descriptor(
    name: &'static str,
    method: &'static str,
    docs: &'static str,
    request: fn() -> Value,
    response: fn() -> Value,
    idempotent: bool,
    kind: Kind,
) -> EndpointDescriptor {
    EndpointDescriptor::new(name, method, docs, request, response, idempotent, kind)
}

/// A subscriber's descriptor.
pub const fn subscriber_descriptor(
    name: &'static str,
    method: &'static str,
    topic: &'static str,
    queue: Option<&'static str>,
    docs: &'static str,
    message: fn() -> Value,
) -> SubscriberDescriptor {
    SubscriberDescriptor::new(name, method, topic, queue, docs, message)
}

/// A `#[consume]` method's descriptor.
#[allow(clippy::too_many_arguments)]
pub const fn consumer_descriptor(
    name: &'static str,
    method: &'static str,
    topic: &'static str,
    group: Option<&'static str>,
    retry_limit: Option<u32>,
    ack_wait_ms: Option<u64>,
    docs: &'static str,
    message: fn() -> Value,
) -> SubscriberDescriptor {
    SubscriberDescriptor::new(name, method, topic, group, docs, message).consuming(retry_limit, ack_wait_ms)
}

/// A service compiled into this binary, for `inventory`.
pub const fn compiled_service(descriptor: &'static ServiceDescriptor) -> CompiledService {
    CompiledService::new(descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Traced {
        name: String,
    }

    struct Opaque;

    #[test]
    fn describe_prefers_deserialize_and_falls_back_to_the_name() {
        #[allow(unused_imports)]
        use super::{ViaDeserialize as _, ViaName as _};
        let traced = Describe::<Traced>::PROBE.value("Traced");
        assert_eq!(traced.values.len(), 1);
        let opaque = Describe::<Opaque>::PROBE.value("Opaque");
        assert_eq!(opaque, Value::named("Opaque"));
    }
}
