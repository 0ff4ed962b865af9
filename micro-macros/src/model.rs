//! The service model: one entry per endpoint and per subscriber of the
//! `impl` block, as `read` builds it and `validate` and `expand` use it.

use proc_macro2::Span;
use syn::{Attribute, Generics, Ident, Type};

/// A `#[micro::service]` impl block.
pub struct Service {
    /// The implementing type, as written.
    pub self_ty: Type,
    /// Its last path segment, e.g. `Helloworld`.
    pub ident: Ident,
    /// The handler name on the wire.
    pub wire_name: String,
    /// The generated client's name.
    pub client: Ident,
    /// Where `micro` is.
    pub krate: syn::Path,
    /// The doc comment of the impl block.
    pub docs: String,
    /// Whether the block can carry a handler (an inherent, non-generic impl);
    /// other blocks get a stub `Handler` impl.
    pub servable: bool,
    /// The generics of the impl block, for the stub `Handler` impl.
    pub generics: Generics,
    /// The endpoints, those with shape errors included.
    pub endpoints: Vec<Endpoint>,
    /// The subscribers that passed the shape checks.
    pub subscribers: Vec<Subscriber>,
}

/// What an endpoint exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One request, one response.
    Unary,
    /// One request; responses go out through a `Sender`.
    ServerStreaming,
    /// Requests come in through a `Receiver`; one response.
    ClientStreaming,
    /// Both ways: one `Stream`, or a `Receiver` and a `Sender` (`halves`).
    Bidirectional {
        /// Whether the method takes the two halves apart.
        halves: bool,
    },
}

/// One `#[endpoint]` method.
pub struct Endpoint {
    /// The Rust method name.
    pub ident: Ident,
    /// The method part of the wire name, e.g. `Greeting`.
    pub wire_method: String,
    /// Where the wire name came from (the `name` argument or the method name).
    pub name_span: Span,
    /// Unary or which kind of stream (unary when the signature does not say).
    pub shape: Shape,
    /// The request type as the client names it; `None` when it could not be
    /// read (the client method then takes any type).
    pub request: Option<Type>,
    /// The response type as the client names it; `None` when it could not be read.
    pub response: Option<Type>,
    /// What serving needs; `None` when the signature has errors (reported),
    /// which makes the dispatch arm a stub.
    pub served: Option<Served>,
    /// The method's doc comment.
    pub docs: String,
    /// `#[cfg]` attributes, repeated on everything generated for the endpoint.
    pub cfgs: Vec<Attribute>,
    /// `#[deprecated]` attributes, repeated on the client method.
    pub deprecated: Vec<Attribute>,
    /// Whether calls may run twice safely.
    pub idempotent: bool,
    /// Cleared by validation when the wire name is taken: no dispatch arm
    /// or descriptor entry.
    pub dispatched: bool,
    /// Cleared by validation when the method name is one the client defines.
    pub in_client: bool,
}

/// What the dispatch of an endpoint with a sound signature needs.
pub struct Served {
    /// Whether the method takes `ctx: &Context`.
    pub has_ctx: bool,
    /// The request message type (`Self` replaced by the service type).
    pub request: Type,
    /// The response message type: of the `Sender` or `Stream` when the
    /// endpoint streams its responses, else `T` of its `Result<T, ..>`.
    pub response: Type,
    /// The return type.
    pub output: Type,
    /// `E` of the return type when it is written out.
    pub error: Option<Type>,
}

/// One `#[subscribe]` method.
pub struct Subscriber {
    /// The Rust method name.
    pub ident: Ident,
    /// The method part of its registry name, e.g. `OnCreated`.
    pub wire_method: String,
    /// The topic.
    pub topic: String,
    /// The queue group (the consumer group of a `#[consume]` method), if any.
    pub queue: Option<String>,
    /// For a `#[consume]` method (an event stream consumer): its retry
    /// limit and ack wait in milliseconds.
    pub consume: Option<(Option<u32>, Option<u64>)>,
    /// Whether the method takes `ctx: &Context`.
    pub has_ctx: bool,
    /// The message type (`Self` replaced by the service type).
    pub message: Type,
    /// The return type.
    pub output: Type,
    /// `E` of the return type when it is written out.
    pub error: Option<Type>,
    /// The method's doc comment.
    pub docs: String,
    /// `#[cfg]` attributes, repeated on everything generated for it.
    pub cfgs: Vec<Attribute>,
}

impl Subscriber {
    /// The registry name, `Service.Method`, as Go Micro names subscribers.
    pub fn wire_name(&self, service: &Service) -> String {
        format!("{}.{}", service.wire_name, self.wire_method)
    }
}

impl Endpoint {
    /// The full wire name, `Service.Method`.
    pub fn wire_name(&self, service: &Service) -> String {
        format!("{}.{}", service.wire_name, self.wire_method)
    }
}
