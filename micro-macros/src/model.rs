//! The service model: the `impl` block read into one entry per endpoint
//! and per subscriber.
//!
//! Reading checks each method's shape and reports every problem with a span
//! on the offending tokens and a sentence saying what to write instead. A
//! method with a shape problem is left out of the model, so the expansion
//! only ever sees endpoints it can generate.

use proc_macro2::Span;
use quote::format_ident;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, PathArguments,
    ReceiverKind, ReturnType, Safety, Type,
};

use crate::attr::{self, ServiceArgs};
use crate::case::pascal;
use crate::docs;
use crate::errors::Errors;

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
    /// Whether the block can carry a handler (an inherent, non-generic impl).
    pub servable: bool,
    /// The endpoints that passed the shape checks.
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
    ServerStream,
    /// Requests come in through a `Receiver`; one response.
    ClientStream,
    /// Both ways: one `Stream`, or a `Receiver` and a `Sender` (`halves`).
    Bidi {
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
    /// Whether the method takes `ctx: &Context`.
    pub has_ctx: bool,
    /// Unary or which kind of stream.
    pub shape: Shape,
    /// The request message type (`Self` replaced by the service type).
    pub request: Type,
    /// The return type.
    pub output: Type,
    /// The response message type: of the `Sender` or `Stream` when the
    /// endpoint streams its responses, else `T` of its `Result<T, ..>`.
    pub response: Type,
    /// The method's doc comment.
    pub docs: String,
    /// `#[cfg]` attributes, repeated on everything generated for the endpoint.
    pub cfgs: Vec<Attribute>,
    /// `#[deprecated]` attributes, repeated on the client method.
    pub deprecated: Vec<Attribute>,
    /// Whether calls may run twice safely.
    pub idempotent: bool,
}

/// One `#[subscribe]` method.
pub struct Subscriber {
    /// The Rust method name.
    pub ident: Ident,
    /// The method part of its registry name, e.g. `OnCreated`.
    pub wire_method: String,
    /// The topic.
    pub topic: String,
    /// The queue group, if any.
    pub queue: Option<String>,
    /// Whether the method takes `ctx: &Context`.
    pub has_ctx: bool,
    /// The message type (`Self` replaced by the service type).
    pub message: Type,
    /// The return type.
    pub output: Type,
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

/// Reads the impl block; `item` is left as it is (helper attributes are
/// stripped separately).
pub fn read(args: ServiceArgs, item: &ItemImpl, errors: &mut Errors) -> Option<Service> {
    let servable = check_impl(item, errors);
    let ident = type_ident(&item.self_ty, errors)?;
    let wire_name = args.name.as_ref().map_or_else(|| ident.to_string(), syn::LitStr::value);
    let client = args.client.unwrap_or_else(|| format_ident!("{}Client", ident));
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::micro));
    let mut endpoints = Vec::new();
    let mut subscribers = Vec::new();
    for impl_item in &item.items {
        match impl_item {
            ImplItem::Fn(method) => {
                let endpoint = helper_attr(&method.attrs, "endpoint", errors);
                let subscribe = helper_attr(&method.attrs, "subscribe", errors);
                match (endpoint, subscribe) {
                    (Some(_), Some(subscribe)) => errors.spanned(
                        subscribe,
                        "a method is an endpoint or a subscriber, not both: keep #[endpoint] or #[subscribe]",
                    ),
                    (Some(attr), None) => {
                        let args = attr::endpoint_args(attr, errors);
                        if let Some(endpoint) = read_endpoint(method, args, &item.self_ty, errors) {
                            endpoints.push(endpoint);
                        }
                    }
                    (None, Some(attr)) => {
                        let args = attr::subscribe_args(attr, errors);
                        if let Some(subscriber) = read_subscriber(method, args, &item.self_ty, errors) {
                            subscribers.push(subscriber);
                        }
                    }
                    (None, None) => {}
                }
            }
            other => {
                for name in ["endpoint", "subscribe"] {
                    for attr in item_attrs(other).iter().filter(|a| attr::is_helper(a, name)) {
                        errors.spanned(
                            attr,
                            format_args!("#[{name}] goes on an `async fn` method; this item is not a method"),
                        );
                    }
                }
            }
        }
    }
    Some(Service {
        self_ty: (*item.self_ty).clone(),
        ident,
        wire_name,
        client,
        krate,
        docs: docs::collect(&item.attrs),
        servable,
        endpoints,
        subscribers,
    })
}

/// Checks that the block is an inherent, non-generic, safe impl.
fn check_impl(item: &ItemImpl, errors: &mut Errors) -> bool {
    let mut ok = true;
    if let Some((path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "#[micro::service] goes on an inherent impl block (`impl Helloworld { .. }`), not on a trait impl",
        );
        ok = false;
    }
    if let Some(token) = &item.unsafety {
        errors.spanned(token, "a service impl block cannot be `unsafe`");
        ok = false;
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.spanned(
            &item.generics,
            "a service type cannot be generic: implement the service on a concrete type",
        );
        ok = false;
    }
    if let Some(token) = &item.modifiers.defaultness {
        errors.spanned(token, "a service impl block cannot be `default`");
        ok = false;
    }
    if let Some(token) = &item.modifiers.polarity {
        errors.spanned(token, "a service impl block cannot be negative");
        ok = false;
    }
    ok
}

/// The last path segment of the implementing type.
fn type_ident(ty: &Type, errors: &mut Errors) -> Option<Ident> {
    if let Type::Path(path) = ty
        && path.qself.is_none()
        && let Some(segment) = path.path.segments.last()
    {
        return Some(segment.ident.clone());
    }
    errors.spanned(ty, "#[micro::service] needs a named type such as `impl Helloworld`");
    None
}

fn item_attrs(item: &ImplItem) -> &[Attribute] {
    match item {
        ImplItem::Const(c) => &c.attrs,
        ImplItem::Type(t) => &t.attrs,
        ImplItem::Macro(m) => &m.attrs,
        _ => &[],
    }
}

/// The method's `#[endpoint]` or `#[subscribe]` attribute; a second one is an error.
fn helper_attr<'a>(attrs: &'a [Attribute], name: &str, errors: &mut Errors) -> Option<&'a Attribute> {
    let mut found = attrs.iter().filter(|a| attr::is_helper(a, name));
    let first = found.next()?;
    for extra in found {
        errors.spanned(extra, format_args!("#[{name}] is given twice; keep one"));
    }
    Some(first)
}

/// What a method of the service is made into.
#[derive(Clone, Copy)]
enum Role {
    Endpoint,
    Subscriber,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Endpoint => "an endpoint",
            Role::Subscriber => "a subscriber",
        }
    }
}

type Fail<'f> = dyn FnMut(&mut Errors, &dyn quote::ToTokens, &str) + 'f;

/// Checks what endpoints and subscribers share (an `async fn`, safe, no ABI,
/// not variadic, not generic, taking `&self`) and returns the parameters
/// after `&self` and the context, and whether there is a context.
fn read_method<'s>(
    sig: &'s syn::Signature,
    role: Role,
    fail: &mut Fail<'_>,
    errors: &mut Errors,
) -> (bool, Vec<&'s syn::PatType>) {
    let noun = role.noun();
    if let Some(token) = &sig.constness {
        fail(
            errors,
            token,
            &format!("{noun} cannot be a `const fn`: write `async fn`"),
        );
    } else if sig.asyncness.is_none() {
        fail(
            errors,
            &sig.fn_token,
            &format!("{noun} must be an `async fn`: write `async fn`"),
        );
    }
    match &sig.safety {
        Safety::Unsafe(token) => fail(
            errors,
            token,
            &format!("{noun} cannot be `unsafe`: callers cannot uphold its contract"),
        ),
        Safety::Safe(token) => fail(errors, token, &format!("remove `safe`: {noun} is a plain `async fn`")),
        _ => {}
    }
    if let Some(abi) = &sig.abi {
        fail(errors, abi, &format!("{noun} cannot have an ABI: remove `extern`"));
    }
    if let Some(variadic) = &sig.variadic {
        fail(errors, variadic, &format!("{noun} cannot be variadic"));
    }
    let generic = sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)));
    if generic || sig.generics.where_clause.is_some() {
        let types = match role {
            Role::Endpoint => "its request and response types must be concrete",
            Role::Subscriber => "its message type must be concrete",
        };
        fail(errors, &sig.generics, &format!("{noun} cannot be generic: {types}"));
    }
    let mut inputs = sig.inputs.iter().peekable();
    match inputs.peek() {
        Some(FnArg::Receiver(receiver)) => {
            inputs.next();
            let shared = matches!(receiver.kind, ReceiverKind::Reference(_, _, None)) && receiver.mutability.is_none();
            if !shared {
                fail(
                    errors,
                    receiver,
                    &format!(
                        "{noun} takes `&self`: one handler value serves concurrent calls, so it cannot be moved or borrowed mutably (use interior mutability for state)"
                    ),
                );
            }
        }
        _ => fail(
            errors,
            &sig.ident,
            &format!("{noun} is a method: add `&self` as its first parameter"),
        ),
    }
    let rest: Vec<&syn::PatType> = inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .collect();
    match rest.split_first() {
        Some((first, tail)) if is_context(&first.ty) => (true, tail.to_vec()),
        _ => (false, rest),
    }
}

/// The return type, which must be a `Result` written out; `unit_only` is
/// the message when its `Ok` type must be `()`.
fn read_output(
    sig: &syn::Signature,
    role: Role,
    unit_only: Option<&str>,
    fail: &mut Fail<'_>,
    errors: &mut Errors,
) -> Option<Type> {
    let (written_out, missing) = match role {
        Role::Endpoint => (
            "an endpoint returns a `Result` written out, such as `-> micro::Result<Response>` or `-> Result<Response, MyError>`, so that its response type can be named",
            "an endpoint returns `Result<T, E>`: add a return type such as `-> micro::Result<Response>`",
        ),
        Role::Subscriber => (
            "a subscriber returns a `Result` written out, such as `-> micro::Result<()>` or `-> Result<(), MyError>`",
            "a subscriber returns `Result<(), E>`: add a return type such as `-> micro::Result<()>`",
        ),
    };
    let ReturnType::Type(_, ty) = &sig.output else {
        fail(errors, &sig.ident, missing);
        return None;
    };
    match (result_ok_type(ty), unit_only) {
        (None, _) => fail(errors, ty, written_out),
        (Some(ok), Some(message)) if !is_unit(&ok) => fail(errors, ty, message),
        _ => {}
    }
    Some((**ty).clone())
}

fn cfg_attrs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).cloned().collect()
}

fn read_subscriber(
    method: &ImplItemFn,
    args: Option<attr::SubscribeArgs>,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Subscriber> {
    let sig = &method.sig;
    let mut ok = args.is_some();
    let mut fail = |errors: &mut Errors, tokens: &dyn quote::ToTokens, message: &str| {
        errors.spanned(tokens, message);
        ok = false;
    };
    let (has_ctx, params) = read_method(sig, Role::Subscriber, &mut fail, errors);
    let message = read_message(sig, has_ctx, &params, &mut fail, errors);
    let output = read_output(
        sig,
        Role::Subscriber,
        Some("a subscriber returns `Result<()>`: a message has no caller to answer"),
        &mut fail,
        errors,
    );
    if !ok {
        return None;
    }
    let args = args?;
    Some(Subscriber {
        ident: sig.ident.clone(),
        wire_method: pascal(&sig.ident.to_string()),
        topic: args.topic.value(),
        queue: args.queue.as_ref().map(syn::LitStr::value),
        has_ctx,
        message: replace_self(message?, self_ty),
        output: replace_self(output?, self_ty),
        docs: docs::collect(&method.attrs),
        cfgs: cfg_attrs(&method.attrs),
    })
}

/// The one message value a subscriber takes.
fn read_message(
    sig: &syn::Signature,
    has_ctx: bool,
    params: &[&syn::PatType],
    fail: &mut Fail<'_>,
    errors: &mut Errors,
) -> Option<Type> {
    let message = match params {
        [] => {
            let message = if has_ctx {
                "a subscriber takes the message after the context, e.g. `ctx: &Context, event: UserCreated`"
            } else {
                "a subscriber takes the message after `&self`, e.g. `event: UserCreated`"
            };
            let tokens: &dyn quote::ToTokens = match sig.inputs.last() {
                Some(last) if has_ctx => last,
                _ => &sig.inputs,
            };
            fail(errors, tokens, message);
            return None;
        }
        [one] => one,
        [first, ..] if !has_ctx && params.len() == 2 && is_context_by_value(&first.ty) => {
            fail(errors, first, "take the context by reference: `ctx: &Context`");
            return None;
        }
        [_, extra, ..] => {
            fail(
                errors,
                extra,
                "a subscriber takes one message value (and optionally `ctx: &Context` before it): move the extra parameters into the message type",
            );
            return None;
        }
    };
    match classify(&message.ty) {
        Ok(Param::Value(Type::Reference(reference))) => {
            fail(
                errors,
                reference,
                "take the message by value (`event: UserCreated`): it is decoded for this delivery and owned by it",
            );
            None
        }
        Ok(Param::Value(Type::ImplTrait(ty))) => {
            fail(
                errors,
                ty,
                "a subscriber cannot take `impl Trait`: name a concrete message type",
            );
            None
        }
        Ok(Param::Value(ty)) => Some(ty.clone()),
        Ok(_) | Err(_) => {
            fail(
                errors,
                &message.ty,
                "a subscriber takes one message value, not a stream: each message is one call",
            );
            None
        }
    }
}

fn read_endpoint(
    method: &ImplItemFn,
    args: attr::EndpointArgs,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Endpoint> {
    let sig = &method.sig;
    let mut ok = true;
    let mut fail = |errors: &mut Errors, tokens: &dyn quote::ToTokens, message: &str| {
        errors.spanned(tokens, message);
        ok = false;
    };
    let (has_ctx, params) = read_method(sig, Role::Endpoint, &mut fail, errors);
    let shape = read_params(sig, has_ctx, &params, &mut fail, errors);
    let streams_out = matches!(shape, Some((Shape::ServerStream | Shape::Bidi { .. }, ..)));
    let unit_only = streams_out
        .then_some("an endpoint that streams its responses sends them on the stream and returns `Result<()>`");
    let output = read_output(sig, Role::Endpoint, unit_only, &mut fail, errors);
    if !ok {
        return None;
    }
    let ((shape, request, streamed_response), output) = (shape?, output?);
    let (wire_method, name_span) = match &args.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (pascal(&sig.ident.to_string()), sig.ident.span()),
    };
    let request = replace_self(request, self_ty);
    let output = replace_self(output, self_ty);
    let response = match streamed_response {
        Some(response) => replace_self(response, self_ty),
        None => result_ok_type(&output)?,
    };
    Some(Endpoint {
        ident: sig.ident.clone(),
        wire_method,
        name_span,
        has_ctx,
        shape,
        response,
        request,
        output,
        docs: docs::collect(&method.attrs),
        cfgs: cfg_attrs(&method.attrs),
        deprecated: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("deprecated"))
            .cloned()
            .collect(),
        idempotent: args.idempotent,
    })
}

/// How a parameter takes part in a call.
enum Param<'a> {
    /// A request value.
    Value(&'a Type),
    /// `Sender<T>`: responses go out.
    Sender(&'a Type),
    /// `Receiver<T>`: requests come in.
    Receiver(&'a Type),
    /// `Stream<In, Out>`: both ways.
    Stream(&'a Type, &'a Type),
}

/// A stream half by the last segment of its type; other types are values.
fn classify(ty: &Type) -> Result<Param<'_>, &'static str> {
    fn named(ty: &Type) -> Option<(String, &PathArguments)> {
        match ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| (s.ident.to_string(), &s.arguments)),
            _ => None,
        }
    }
    if let Type::Reference(r) = ty
        && let Some((name, _)) = named(&r.elem)
        && matches!(name.as_str(), "Sender" | "Receiver" | "Stream")
    {
        return Err("take the stream by value: it belongs to this call");
    }
    let Some((name, arguments)) = named(ty) else {
        return Ok(Param::Value(ty));
    };
    let types: Vec<&Type> = match arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    match (name.as_str(), types.as_slice()) {
        ("Sender", [t]) => Ok(Param::Sender(t)),
        ("Receiver", [t]) => Ok(Param::Receiver(t)),
        ("Stream", [i, o]) => Ok(Param::Stream(i, o)),
        ("Sender", _) => Err("name the message type of the sender: `Sender<Response>`"),
        ("Receiver", _) => Err("name the message type of the receiver: `Receiver<Request>`"),
        ("Stream", _) => Err("name the message types of the stream: `Stream<Request, Response>`"),
        _ => Ok(Param::Value(ty)),
    }
}

const STREAM_FORMS: &str = "`req: Request` (unary), `req: Request, tx: Sender<Response>` (server stream), `rx: Receiver<Request>` (client stream), `stream: Stream<Request, Response>` or `rx: Receiver<Request>, tx: Sender<Response>` (both ways)";

/// The mode and the message types (request, and the response when a stream
/// carries it) from the parameters after `&self` and the context.
#[allow(clippy::type_complexity)]
fn read_params(
    sig: &syn::Signature,
    has_ctx: bool,
    params: &[&syn::PatType],
    fail: &mut Fail<'_>,
    errors: &mut Errors,
) -> Option<(Shape, Type, Option<Type>)> {
    let mut kinds = Vec::with_capacity(params.len());
    for param in params {
        match classify(&param.ty) {
            Ok(kind) => kinds.push(kind),
            Err(message) => {
                fail(errors, &param.ty, message);
                return None;
            }
        }
    }
    let shape = match kinds.as_slice() {
        [Param::Value(req)] => (Shape::Unary, (*req).clone(), None),
        [Param::Value(req), Param::Sender(rsp)] => (Shape::ServerStream, (*req).clone(), Some((*rsp).clone())),
        [Param::Receiver(req)] => (Shape::ClientStream, (*req).clone(), None),
        [Param::Stream(req, rsp)] => (Shape::Bidi { halves: false }, (*req).clone(), Some((*rsp).clone())),
        [Param::Receiver(req), Param::Sender(rsp)] => {
            (Shape::Bidi { halves: true }, (*req).clone(), Some((*rsp).clone()))
        }
        [] => {
            let message = if has_ctx {
                "an endpoint takes a request value after the context, e.g. `ctx: &Context, req: Request`"
            } else {
                "an endpoint takes a request value after `&self`, e.g. `req: Request`"
            };
            // Point at the context when there is one, else at the parameters.
            let tokens: &dyn quote::ToTokens = match sig.inputs.last() {
                Some(last) if has_ctx => last,
                _ => &sig.inputs,
            };
            fail(errors, tokens, message);
            return None;
        }
        [Param::Sender(_)] => {
            fail(
                errors,
                params[0],
                "a server stream takes its request before the sender: `req: Request, tx: Sender<Response>`",
            );
            return None;
        }
        [Param::Sender(_), Param::Receiver(_)] => {
            fail(
                errors,
                params[0],
                "put the receiver before the sender: `rx: Receiver<Request>, tx: Sender<Response>`",
            );
            return None;
        }
        [Param::Value(first), Param::Value(_)] if !has_ctx => {
            let message = if is_context_by_value(first) {
                "take the context by reference: `ctx: &Context`"
            } else {
                "an endpoint takes one request value; with two parameters the first must be `ctx: &Context`"
            };
            fail(errors, params[0], message);
            return None;
        }
        [Param::Value(_), Param::Value(_)] => {
            fail(
                errors,
                params[1],
                "an endpoint takes one request value: move the extra parameters into the request type",
            );
            return None;
        }
        [_, _, _, ..] => {
            fail(
                errors,
                params[2],
                "an endpoint takes one request value: move the extra parameters into the request type",
            );
            return None;
        }
        _ => {
            let last = params
                .last()
                .map_or(&sig.inputs as &dyn quote::ToTokens, |p| p as &dyn quote::ToTokens);
            fail(
                errors,
                last,
                &format!("these parameters make no endpoint; write one of {STREAM_FORMS}"),
            );
            return None;
        }
    };
    if let Param::Value(req) = &kinds[0] {
        let req_param = params[0];
        if let Type::Reference(reference) = req {
            fail(
                errors,
                reference,
                "take the request by value (`req: Request`): it is decoded for this call and owned by it",
            );
            return None;
        }
        if matches!(req, Type::ImplTrait(_)) {
            fail(
                errors,
                *req,
                "an endpoint cannot take `impl Trait`: name a concrete request type",
            );
            return None;
        }
        if matches!(&*req_param.pat, Pat::Ident(p) if p.ident == "self") {
            fail(
                errors,
                &req_param.pat,
                "name the request parameter, e.g. `req: Request`",
            );
            return None;
        }
    }
    Some(shape)
}

/// `()`
fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// `&Context`, `&micro::Context`, `&'a Context` ...
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => r.mutability.is_none() && is_context_by_value(&r.elem),
        _ => false,
    }
}

fn is_context_by_value(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Context"))
}

/// `T` of `Result<T>` or `Result<T, E>`, as written.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// Replaces `Self` in a type with the service type, so the type can be named
/// outside the impl block (in the client and the descriptor).
fn replace_self(mut ty: Type, self_ty: &Type) -> Type {
    struct ReplaceSelf<'a>(&'a Type);
    impl VisitMut for ReplaceSelf<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::Path(path) = ty
                && path.qself.is_none()
                && path.path.segments.first().is_some_and(|s| s.ident == "Self")
            {
                if path.path.segments.len() == 1 {
                    *ty = self.0.clone();
                    return;
                }
                let self_ty = self.0;
                let rest: Vec<_> = path.path.segments.iter().skip(1).cloned().collect();
                let span = path.span();
                *ty = syn::parse_quote_spanned!(span=> <#self_ty>::#(#rest)::*);
                return;
            }
            visit_mut::visit_type_mut(self, ty);
        }
    }
    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    ty
}
