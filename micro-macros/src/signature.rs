//! Reading a method's signature: what endpoints and subscribers share, then
//! their parameters and return type.
//!
//! Every problem is reported, with a span on the offending tokens and a
//! sentence saying what to write instead; reading goes on after a problem
//! (serde's `Ctxt` habit), so one build shows them all. It also returns
//! what it could make out of a broken signature, which the expansion uses to
//! stub the endpoint with the types the user meant.

use std::fmt::Display;

use quote::ToTokens;
use syn::{FnArg, GenericParam, Pat, PatType, ReceiverKind, ReturnType, Safety, Signature, Type};

use crate::errors::Errors;
use crate::model::Shape;
use crate::types::{Param, classify, is_context, is_context_by_value, is_unit, result_ok_type};

/// Reports problems and remembers whether there was one.
pub struct Reader<'e> {
    errors: &'e mut Errors,
    clean: bool,
}

impl<'e> Reader<'e> {
    pub fn new(errors: &'e mut Errors) -> Self {
        Reader { errors, clean: true }
    }

    /// A problem at `tokens`.
    pub fn fail(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors.spanned(tokens, message);
        self.clean = false;
    }

    /// Whether no problem was reported.
    pub fn is_clean(&self) -> bool {
        self.clean
    }
}

/// What a method of the service is made into.
#[derive(Clone, Copy)]
pub enum Role {
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

/// The parameters after `&self`, the context split off.
pub struct Inputs<'s> {
    /// Whether the method takes a context first.
    pub has_ctx: bool,
    /// The parameters after `&self` and the context.
    pub params: Vec<&'s PatType>,
}

/// Checks what endpoints and subscribers share (an `async fn`, safe, no ABI,
/// not variadic, not generic, taking `&self`) and splits off the context.
pub fn read_method<'s>(sig: &'s Signature, role: Role, r: &mut Reader<'_>) -> Inputs<'s> {
    let noun = role.noun();
    if let Some(token) = &sig.constness {
        r.fail(token, format_args!("{noun} cannot be a `const fn`: write `async fn`"));
    } else if sig.asyncness.is_none() {
        r.fail(
            sig.fn_token,
            format_args!("{noun} must be an `async fn`: write `async fn`"),
        );
    }
    match &sig.safety {
        Safety::Unsafe(token) => r.fail(
            token,
            format_args!("{noun} cannot be `unsafe`: callers cannot uphold its contract"),
        ),
        Safety::Safe(token) => r.fail(token, format_args!("remove `safe`: {noun} is a plain `async fn`")),
        _ => {}
    }
    if let Some(abi) = &sig.abi {
        r.fail(abi, format_args!("{noun} cannot have an ABI: remove `extern`"));
    }
    if let Some(variadic) = &sig.variadic {
        r.fail(variadic, format_args!("{noun} cannot be variadic"));
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
        r.fail(&sig.generics, format_args!("{noun} cannot be generic: {types}"));
    }
    let mut inputs = sig.inputs.iter().peekable();
    match inputs.peek() {
        Some(FnArg::Receiver(receiver)) => {
            inputs.next();
            let shared = matches!(receiver.kind, ReceiverKind::Reference(_, _, None)) && receiver.mutability.is_none();
            if !shared {
                r.fail(
                    receiver,
                    format_args!(
                        "{noun} takes `&self`: one handler value serves concurrent calls, so it cannot be moved or borrowed mutably (use interior mutability for state)"
                    ),
                );
            }
        }
        _ => r.fail(
            &sig.ident,
            format_args!("{noun} is a method: add `&self` as its first parameter"),
        ),
    }
    let rest: Vec<&PatType> = inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .collect();
    match rest.split_first() {
        Some((first, tail)) if is_context(&first.ty) => Inputs {
            has_ctx: true,
            params: tail.to_vec(),
        },
        // `ctx: Context, req: Request`: a context meant, taken by value.
        Some((first, tail)) if is_context_by_value(&first.ty) && !tail.is_empty() => {
            r.fail(first, "take the context by reference: `ctx: &Context`");
            Inputs {
                has_ctx: true,
                params: tail.to_vec(),
            }
        }
        _ => Inputs {
            has_ctx: false,
            params: rest,
        },
    }
}

/// The return type as written, when there is one; `unit_only` is the
/// message when its `Ok` type must be `()`.
pub fn read_output(sig: &Signature, role: Role, unit_only: Option<&str>, r: &mut Reader<'_>) -> Option<Type> {
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
        r.fail(&sig.ident, missing);
        return None;
    };
    match (result_ok_type(ty), unit_only) {
        (None, _) => r.fail(ty, written_out),
        (Some(ok), Some(message)) if !is_unit(&ok) => r.fail(ty, message),
        _ => {}
    }
    Some((**ty).clone())
}

/// What the parameters of an endpoint say, as far as they could be read.
pub struct Params {
    /// Unary or which kind of stream (unary when it cannot be told).
    pub shape: Shape,
    /// The request type.
    pub request: Option<Type>,
    /// The response type, when a stream carries it.
    pub streamed_response: Option<Type>,
}

const STREAM_FORMS: &str = "`req: Request` (unary), `req: Request, tx: Sender<Response>` (server stream), `rx: Receiver<Request>` (client stream), `stream: Stream<Request, Response>` or `rx: Receiver<Request>, tx: Sender<Response>` (both ways)";

const ONE_REQUEST: &str = "an endpoint takes one request value: move the extra parameters into the request type";

/// The mode and the message types from the parameters after `&self` and the
/// context; every parameter is checked, whatever the others hold.
pub fn read_params(sig: &Signature, inputs: &Inputs<'_>, r: &mut Reader<'_>) -> Params {
    let params = &inputs.params;
    let mut kinds = Vec::with_capacity(params.len());
    for param in params {
        let (kind, problem) = classify(&param.ty);
        if let Some(problem) = problem {
            r.fail(&param.ty, problem);
        }
        kinds.push(kind);
    }
    let unknown = Params {
        shape: Shape::Unary,
        request: None,
        streamed_response: None,
    };
    let Some(kinds) = kinds.into_iter().collect::<Option<Vec<_>>>() else {
        return unknown;
    };
    let params_of = |shape, request: &Type, response: Option<&Type>| Params {
        shape,
        request: Some(request.clone()),
        streamed_response: response.cloned(),
    };
    let read = match kinds.as_slice() {
        [Param::Value(req)] => params_of(Shape::Unary, req, None),
        [Param::Value(req), Param::Sender(rsp)] => params_of(Shape::ServerStreaming, req, Some(rsp)),
        [Param::Receiver(req)] => params_of(Shape::ClientStreaming, req, None),
        [Param::Stream(req, rsp)] => params_of(Shape::Bidirectional { halves: false }, req, Some(rsp)),
        [Param::Receiver(req), Param::Sender(rsp)] => params_of(Shape::Bidirectional { halves: true }, req, Some(rsp)),
        [] => {
            let message = if inputs.has_ctx {
                "an endpoint takes a request value after the context, e.g. `ctx: &Context, req: Request`"
            } else {
                "an endpoint takes a request value after `&self`, e.g. `req: Request`"
            };
            // Point at the context when there is one, else at the parameters.
            match sig.inputs.last() {
                Some(last) if inputs.has_ctx => r.fail(last, message),
                _ => r.fail(&sig.inputs, message),
            }
            return unknown;
        }
        [Param::Sender(rsp)] => {
            r.fail(
                params[0],
                "a server stream takes its request before the sender: `req: Request, tx: Sender<Response>`",
            );
            return Params {
                shape: Shape::ServerStreaming,
                request: None,
                streamed_response: Some((*rsp).clone()),
            };
        }
        [Param::Sender(rsp), Param::Receiver(req)] => {
            r.fail(
                params[0],
                "put the receiver before the sender: `rx: Receiver<Request>, tx: Sender<Response>`",
            );
            return params_of(Shape::Bidirectional { halves: true }, req, Some(rsp));
        }
        [Param::Value(_), Param::Value(_)] if !inputs.has_ctx => {
            r.fail(
                params[0],
                "an endpoint takes one request value; with two parameters the first must be `ctx: &Context`",
            );
            return unknown;
        }
        [Param::Value(req), Param::Value(_)] => {
            r.fail(params[1], ONE_REQUEST);
            return params_of(Shape::Unary, req, None);
        }
        [_, _, _, ..] => {
            r.fail(params[2], ONE_REQUEST);
            return unknown;
        }
        _ => {
            match params.last() {
                Some(last) => r.fail(
                    last,
                    format_args!("these parameters make no endpoint; write one of {STREAM_FORMS}"),
                ),
                None => r.fail(
                    &sig.inputs,
                    format_args!("these parameters make no endpoint; write one of {STREAM_FORMS}"),
                ),
            }
            return unknown;
        }
    };
    if matches!(kinds.first(), Some(Param::Value(_)))
        && let Some(param) = params.first()
    {
        check_value(param, Role::Endpoint, "request", "req: Request", r);
    }
    read
}

/// The checks of a value taken by an endpoint or subscriber: owned, a
/// concrete type, a named parameter.
fn check_value(param: &PatType, role: Role, what: &str, example: &str, r: &mut Reader<'_>) {
    match &*param.ty {
        Type::Reference(reference) => r.fail(
            reference,
            format_args!(
                "take the {what} by value (`{example}`): it is decoded for this {} and owned by it",
                match role {
                    Role::Endpoint => "call",
                    Role::Subscriber => "delivery",
                }
            ),
        ),
        Type::ImplTrait(ty) => r.fail(
            ty,
            format_args!("{} cannot take `impl Trait`: name a concrete {what} type", role.noun()),
        ),
        _ => {}
    }
    if matches!(&*param.pat, Pat::Ident(p) if p.ident == "self") {
        r.fail(&param.pat, format_args!("name the {what} parameter, e.g. `{example}`"));
    }
}

/// The one message value a subscriber takes.
pub fn read_message(sig: &Signature, inputs: &Inputs<'_>, r: &mut Reader<'_>) -> Option<Type> {
    let message = match inputs.params.as_slice() {
        [] => {
            let message = if inputs.has_ctx {
                "a subscriber takes the message after the context, e.g. `ctx: &Context, event: UserCreated`"
            } else {
                "a subscriber takes the message after `&self`, e.g. `event: UserCreated`"
            };
            match sig.inputs.last() {
                Some(last) if inputs.has_ctx => r.fail(last, message),
                _ => r.fail(&sig.inputs, message),
            }
            return None;
        }
        [one] => one,
        [_, extra, ..] => {
            r.fail(
                extra,
                "a subscriber takes one message value (and optionally `ctx: &Context` before it): move the extra parameters into the message type",
            );
            return None;
        }
    };
    match classify(&message.ty) {
        (Some(Param::Value(ty)), None) => {
            check_value(message, Role::Subscriber, "message", "event: UserCreated", r);
            Some(ty.clone())
        }
        _ => {
            r.fail(
                &message.ty,
                "a subscriber takes one message value, not a stream: each message is one call",
            );
            None
        }
    }
}
