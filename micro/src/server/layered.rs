//! What server layers see: a [`HandlerCall`] on its way to a handler, a
//! [`SubscriberCall`] on its way to a subscriber, and the innermost services
//! that hand them over (see [`crate::middleware`]).

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tokio::task::futures::TaskLocalFuture;

use super::guard::{Guarded, guard};
use super::handler::{EndpointDescriptor, Handler, Request, Response, SubscriberDescriptor};
use crate::BoxFuture;
use crate::broker::Event;
use crate::context::Context;
use crate::error::Error;
use crate::middleware::Boxed;

/// The stack of handler layers of a server.
pub type HandlerService = Boxed<HandlerCall, Response>;

/// The stack of subscriber layers of a server.
pub type SubscriberService = Boxed<SubscriberCall, ()>;

/// A routed call on its way to its handler.
pub struct HandlerCall {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) endpoint: &'static EndpointDescriptor,
    pub(crate) request: Request,
}

impl HandlerCall {
    /// The endpoint called.
    pub fn endpoint(&self) -> &'static EndpointDescriptor {
        self.endpoint
    }

    /// The service the call was addressed to.
    pub fn service(&self) -> Option<&str> {
        self.request.context().service()
    }

    /// The call's context: metadata, deadline.
    pub fn context(&self) -> &Context {
        self.request.context()
    }

    /// The context, to change what the handler sees (metadata it reads, a
    /// shorter deadline).
    pub fn context_mut(&mut self) -> &mut Context {
        self.request.context_mut()
    }

    /// The request (its body, or for a stream nothing yet).
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl fmt::Debug for HandlerCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerCall")
            .field("endpoint", &self.endpoint.name())
            .field("request", &self.request)
            .finish()
    }
}

/// A broker message on its way to a `#[subscribe]` method.
pub struct SubscriberCall {
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) subscriber: &'static SubscriberDescriptor,
    pub(crate) event: Event,
}

impl SubscriberCall {
    /// The subscriber it goes to.
    pub fn subscriber(&self) -> &'static SubscriberDescriptor {
        self.subscriber
    }

    /// The topic and message.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The topic and message, to change what the subscriber sees (headers
    /// become its context's metadata).
    pub fn event_mut(&mut self) -> &mut Event {
        &mut self.event
    }
}

impl fmt::Debug for SubscriberCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriberCall")
            .field("subscriber", &self.subscriber.name())
            .field("topic", &self.event.topic)
            .finish()
    }
}

/// A handler's future, inside its context, catching panics.
pub(crate) type Invoked = TaskLocalFuture<Context, Guarded<BoxFuture<'static, Result<Response, Error>>, Response>>;

/// Runs a call's handler inside its context, catching panics: the
/// innermost handler service, and what a server without layers runs.
pub(crate) fn invoke(call: HandlerCall) -> Invoked {
    let HandlerCall {
        handler,
        endpoint,
        request,
    } = call;
    let name = endpoint.name();
    let context = request.context().clone();
    // The handler's code runs in its future, polled inside the context's
    // scope; `call` itself only decodes the request.
    context.scope(guard(name, || handler.call(request)))
}

/// A subscriber's future, catching panics.
pub(crate) type Delivered = Guarded<BoxFuture<'static, Result<(), Error>>, ()>;

/// Hands a message to its subscriber, catching panics.
pub(crate) fn deliver(call: SubscriberCall) -> Delivered {
    let SubscriberCall {
        handler,
        subscriber,
        event,
    } = call;
    let name = subscriber.name();
    guard(name, || handler.deliver(subscriber.method(), event))
}

/// The innermost handler service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Invoke;

impl tower::Service<HandlerCall> for Invoke {
    type Response = Response;
    type Error = Error;
    type Future = Invoked;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: HandlerCall) -> Self::Future {
        invoke(call)
    }
}

/// The innermost subscriber service.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deliver;

impl tower::Service<SubscriberCall> for Deliver {
    type Response = ();
    type Error = Error;
    type Future = Delivered;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: SubscriberCall) -> Self::Future {
        deliver(call)
    }
}
