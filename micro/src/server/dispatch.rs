//! The dispatch core: what happens to a call once a transport has decoded
//! it, the same for HTTP, h2 streams, mux, in-process calls and broker
//! messages. A routed call gets its context (metadata, deadline, the service
//! and endpoint it was addressed to); its handler runs inside that context,
//! under its deadline, with panics caught and turned into 500 errors; the
//! reply is the handler's response or a Go Micro error.
//!
//! The transports reach it through [`Dispatch`], which [`Shared`] (what
//! every connection of a server shares) implements.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use bytes::Bytes;
use futures_util::{FutureExt, future};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::debug;

use super::guard::guard;
use super::handler::{EndpointDescriptor, Handler, Message, Request, Response, StreamParts};
use super::layered::{HandlerCall, HandlerService, invoke};
use super::router::Router;
use crate::BoxFuture;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{Error, SERVER_ID};
use crate::metadata::LazyMetadata;
use crate::meter::Defaults;
use crate::stream::BUFFER;
use crate::stream::frame::{self, ChannelBody, FrameReader};
use crate::trace;
use crate::transport::{Call, Dispatch, Page};
use tracing::Span;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) body_limit: usize,
    /// The server's name, or else the first `Micro-Service` it was called
    /// with, kept so that calls naming it (nearly all) share it instead of
    /// each copying it.
    pub(crate) service: OnceLock<Arc<str>>,
    /// What happens around every call before the layers: metrics, the
    /// limit of calls at once.
    pub(crate) defaults: Option<Defaults>,
    /// The handler layers around every call, if any.
    pub(crate) layers: Option<HandlerService>,
    /// What `GET` requests on the port are answered with, if anything.
    pub(crate) pages: Option<Arc<dyn Pages>>,
}

/// The pages a server answers `GET` requests with (metrics, health).
pub(crate) trait Pages: Send + Sync + std::fmt::Debug {
    /// The page at `path`, if there is one.
    fn get(&self, path: &str) -> Option<BoxFuture<'static, Page>>;
}

impl Shared {
    /// What calls see as the name of the service they were addressed to.
    pub(crate) fn service_name(&self, name: &str) -> Arc<str> {
        let known = self.service.get_or_init(|| Arc::from(name));
        if **known == *name {
            Arc::clone(known)
        } else {
            Arc::from(name)
        }
    }
}

/// An endpoint's handler and descriptor, as routing found them.
pub(crate) type Routed = (Arc<dyn Handler>, &'static EndpointDescriptor);

impl Dispatch for Shared {
    type Route = Routed;

    fn body_limit(&self) -> usize {
        self.body_limit
    }

    fn service(&self, named: Option<&str>) -> Option<Arc<str>> {
        match named {
            Some(name) => Some(self.service_name(name)),
            None => self.service.get().cloned(),
        }
    }

    fn route(&self, endpoint: &str) -> Result<Routed, Error> {
        let (handler, descriptor) = self.router.route(endpoint)?;
        Ok((Arc::clone(handler), descriptor))
    }

    fn endpoint((_, descriptor): &Routed) -> &'static str {
        descriptor.name()
    }

    fn streams((_, descriptor): &Routed) -> bool {
        descriptor.kind().is_stream()
    }

    fn unary(
        &self,
        (handler, descriptor): Routed,
        call: Call,
    ) -> impl Future<Output = Result<Bytes, Error>> + Send + 'static {
        answer(self, handler, descriptor, Unary::from(call)).map(|response| response?.into_body())
    }

    fn open_stream(
        &self,
        (handler, descriptor): Routed,
        call: Call,
        requests: FrameReader,
    ) -> Result<ChannelBody, Error> {
        open_stream(
            self.defaults.clone(),
            self.layers.clone(),
            handler,
            descriptor,
            call,
            requests,
        )
    }

    fn page(&self, path: &str) -> Option<BoxFuture<'static, Page>> {
        self.pages.as_ref()?.get(path)
    }
}

impl From<Call> for Unary {
    fn from(call: Call) -> Unary {
        Unary {
            service: call.service,
            codec: call.codec,
            metadata: call.metadata,
            deadline: call.deadline,
            message: Message::Body(call.body),
        }
    }
}

/// A unary call however it arrived: decoded from a transport, or made in
/// this process with the caller's value.
pub(crate) struct Unary {
    pub(crate) service: Option<Arc<str>>,
    pub(crate) codec: Codec,
    pub(crate) metadata: LazyMetadata,
    pub(crate) deadline: Option<Instant>,
    /// The encoded body, or in an in-process call the caller's value.
    pub(crate) message: Message,
}

impl Unary {
    /// A call run in place, in this process: `message` for `service`'s
    /// endpoint, with the caller's metadata and deadline.
    pub(crate) fn in_place<'a>(
        shared: &Shared,
        service: &str,
        codec: Codec,
        metadata: impl Iterator<Item = (&'a str, &'a str)>,
        deadline: Instant,
        message: Message,
    ) -> Unary {
        Unary {
            service: Some(shared.service_name(service)),
            codec,
            metadata: metadata.collect::<crate::metadata::Metadata>().into(),
            deadline: Some(deadline),
            message,
        }
    }
}

/// Routes a unary call and starts its handler: the handler's response or
/// the error, once the returned future is awaited.
pub(crate) fn respond(
    shared: &Shared,
    endpoint: &str,
    call: Unary,
) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    match shared.router.route(endpoint) {
        Ok((handler, descriptor)) => future::Either::Right(answer(shared, Arc::clone(handler), descriptor, call)),
        Err(e) => future::Either::Left(std::future::ready(Err(e))),
    }
}

/// Starts the handler of a routed unary call: its response or the error,
/// once the returned future is awaited.
fn answer(
    shared: &Shared,
    handler: Arc<dyn Handler>,
    descriptor: &'static EndpointDescriptor,
    call: Unary,
) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    let Unary {
        service,
        codec,
        metadata,
        deadline,
        message,
    } = call;
    let endpoint = descriptor.name();
    if descriptor.kind().is_stream() {
        return future::Either::Left(std::future::ready(Err(Error::bad_request(
            SERVER_ID,
            format!(
                "{endpoint} is a streaming endpoint: open it as a stream over HTTP/2, naming it in the Micro-Endpoint header"
            ),
        ))));
    }
    let (context, span) = serving(metadata, deadline, service, endpoint);
    let request = Request::with_message(descriptor.method(), context, codec, message);
    let call = HandlerCall {
        handler,
        endpoint: descriptor,
        request,
    };
    let run = run(shared.defaults.as_ref(), shared.layers.as_ref(), call, deadline);
    future::Either::Right(trace::traced(span, run))
}

/// A call's context and its `rpc.serve` span, which continues the trace
/// its metadata carries when a subscriber records it.
fn serving(
    metadata: LazyMetadata,
    deadline: Option<Instant>,
    service: Option<Arc<str>>,
    endpoint: &'static str,
) -> (Context, Span) {
    let span = trace::serve_span(service.as_deref(), endpoint);
    let trace = trace::place_in(&span, |key| metadata.find(key));
    let context = Context::for_request(metadata, deadline, service, endpoint);
    let context = match trace {
        Some(trace) => context.with_trace(trace),
        None => context,
    };
    (context, span)
}

/// Starts the handler of a stream reading its requests from `requests`;
/// the returned body carries its responses, then its outcome as trailers.
/// When the caller goes away the handler is dropped.
fn open_stream(
    defaults: Option<Defaults>,
    layers: Option<HandlerService>,
    handler: Arc<dyn Handler>,
    descriptor: &'static EndpointDescriptor,
    call: Call,
    requests: FrameReader,
) -> Result<ChannelBody, Error> {
    let endpoint = descriptor.name();
    let Call {
        service,
        codec,
        metadata,
        deadline,
        body: _,
    } = call;
    if codec == Codec::JsonRpc {
        return Err(Error::unsupported_media_type(
            SERVER_ID,
            format!("{endpoint} streams, and application/json-rpc cannot: use application/json or application/msgpack"),
        ));
    }
    let (context, span) = serving(metadata, deadline, service, endpoint);
    let (sender, rx) = mpsc::channel(BUFFER);
    let parts = StreamParts {
        reader: requests,
        sender: sender.clone(),
    };
    let request = Request::streaming(descriptor.method(), context, codec, parts);
    let call = HandlerCall {
        handler,
        endpoint: descriptor,
        request,
    };
    tokio::spawn(async move {
        let outcome = tokio::select! {
            outcome = trace::traced(span, run(defaults.as_ref(), layers.as_ref(), call, deadline)) => outcome.map(drop),
            () = sender.closed() => {
                debug!(endpoint, "the caller left the stream; its handler is dropped");
                return;
            }
        };
        if let Err(error) = &outcome {
            debug!(endpoint, code = error.code, detail = %error.detail, "stream failed");
        }
        // The caller may be gone by now; nothing is left to tell it then.
        let _ = sender.send(http_body::Frame::trailers(frame::trailers(&outcome))).await;
    });
    Ok(ChannelBody::new(rx))
}

/// Starts a call: recorded and admitted by the server's defaults, then
/// through its layers (when it has any) to its handler, which runs inside
/// its context, catching panics; all of it under the call's deadline.
pub(crate) fn run(
    defaults: Option<&Defaults>,
    layers: Option<&HandlerService>,
    call: HandlerCall,
    deadline: Option<Instant>,
) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
    let endpoint = call.endpoint.name();
    let layered = move || match layers {
        None => future::Either::Left(invoke(call)),
        // A layer may panic too.
        Some(layers) => future::Either::Right(guard(endpoint, || layers.clone().oneshot(call))),
    };
    let guarded = match defaults {
        None => future::Either::Left(layered()),
        Some(defaults) => future::Either::Right(defaults.measure(endpoint, layered)),
    };
    async move {
        let mut guarded = pin!(guarded);
        // Most handlers answer on their first poll: those need no timer.
        if let Poll::Ready(answer) = poll_fn(|cx| Poll::Ready(guarded.as_mut().poll(cx))).await {
            return answer;
        }
        let Some(deadline) = deadline else {
            return guarded.await;
        };
        // Boxed: the timer is for handlers that wait, and inline it would
        // widen the future of every call, in-process calls' included.
        let expired = Box::pin(tokio::time::sleep_until(deadline));
        match future::select(guarded, expired).await {
            future::Either::Left((answer, _)) => answer,
            future::Either::Right(_) => Err(Error::timeout(
                SERVER_ID,
                format!("{endpoint} did not finish within the caller's deadline"),
            )),
        }
    }
}
