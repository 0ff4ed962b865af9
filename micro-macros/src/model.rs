//! The service model: the `impl` block read into one entry per endpoint.
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
    /// The request type (`Self` replaced by the service type).
    pub request: Type,
    /// The return type.
    pub output: Type,
    /// `T` of the `Result<T, ..>` return type.
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
    for impl_item in &item.items {
        match impl_item {
            ImplItem::Fn(method) => {
                let Some(attr) = endpoint_attr(&method.attrs, errors) else {
                    continue;
                };
                let args = attr::endpoint_args(attr, errors);
                if let Some(endpoint) = read_endpoint(method, args, &item.self_ty, errors) {
                    endpoints.push(endpoint);
                }
            }
            other => {
                for attr in item_attrs(other).iter().filter(|a| attr::is_helper(a, "endpoint")) {
                    errors.spanned(
                        attr,
                        "#[endpoint] goes on an `async fn` method; this item is not a method",
                    );
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

/// The method's `#[endpoint]` attribute; a second one is an error.
fn endpoint_attr<'a>(attrs: &'a [Attribute], errors: &mut Errors) -> Option<&'a Attribute> {
    let mut found = attrs.iter().filter(|a| attr::is_helper(a, "endpoint"));
    let first = found.next()?;
    for extra in found {
        errors.spanned(extra, "#[endpoint] is given twice; keep one");
    }
    Some(first)
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
    if let Some(token) = &sig.constness {
        fail(errors, token, "an endpoint cannot be a `const fn`: write `async fn`");
    } else if sig.asyncness.is_none() {
        fail(
            errors,
            &sig.fn_token,
            "an endpoint must be an `async fn`: write `async fn`",
        );
    }
    match &sig.safety {
        Safety::Unsafe(token) => fail(
            errors,
            token,
            "an endpoint cannot be `unsafe`: callers cannot uphold its contract",
        ),
        Safety::Safe(token) => fail(errors, token, "remove `safe`: an endpoint is a plain `async fn`"),
        _ => {}
    }
    if let Some(abi) = &sig.abi {
        fail(errors, abi, "an endpoint cannot have an ABI: remove `extern`");
    }
    if let Some(variadic) = &sig.variadic {
        fail(errors, variadic, "an endpoint cannot be variadic");
    }
    let generic = sig
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, GenericParam::Lifetime(_)));
    if generic || sig.generics.where_clause.is_some() {
        fail(
            errors,
            &sig.generics,
            "an endpoint cannot be generic: its request and response types must be concrete",
        );
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
                    "an endpoint takes `&self`: one handler value serves concurrent calls, so it cannot be moved or borrowed mutably (use interior mutability for state)",
                );
            }
        }
        _ => fail(
            errors,
            &sig.ident,
            "an endpoint is a method: add `&self` as its first parameter",
        ),
    }
    let rest: Vec<&syn::PatType> = inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let (has_ctx, request) = match rest.as_slice() {
        [] => {
            fail(
                errors,
                &sig.inputs,
                "an endpoint takes a request value after `&self`, e.g. `req: Request`",
            );
            (false, None)
        }
        [only] if is_context(&only.ty) => {
            fail(
                errors,
                only,
                "an endpoint takes a request value after the context, e.g. `ctx: &Context, req: Request`",
            );
            (true, None)
        }
        [only] => (false, Some(*only)),
        [ctx, req] if is_context(&ctx.ty) => (true, Some(*req)),
        [first, _] => {
            let message = if is_context_by_value(&first.ty) {
                "take the context by reference: `ctx: &Context`"
            } else {
                "an endpoint takes one request value; with two parameters the first must be `ctx: &Context`"
            };
            fail(errors, first, message);
            (false, None)
        }
        [_, _, extra, ..] => {
            fail(
                errors,
                extra,
                "an endpoint takes one request value: move the extra parameters into the request type",
            );
            (false, None)
        }
    };
    if let Some(req) = request {
        if let Type::Reference(reference) = &*req.ty {
            fail(
                errors,
                reference,
                "take the request by value (`req: Request`): it is decoded for this call and owned by it",
            );
        } else if matches!(&*req.ty, Type::ImplTrait(_)) {
            fail(
                errors,
                &req.ty,
                "an endpoint cannot take `impl Trait`: name a concrete request type",
            );
        }
        if matches!(&*req.pat, Pat::Ident(p) if p.ident == "self") {
            fail(errors, &req.pat, "name the request parameter, e.g. `req: Request`");
        }
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => {
            if result_ok_type(ty).is_none() {
                fail(
                    errors,
                    ty,
                    "an endpoint returns a `Result` written out, such as `-> micro::Result<Response>` or `-> Result<Response, MyError>`, so that its response type can be named",
                );
            }
            Some((**ty).clone())
        }
        ReturnType::Default => {
            fail(
                errors,
                &sig.ident,
                "an endpoint returns `Result<T, E>`: add a return type such as `-> micro::Result<Response>`",
            );
            None
        }
    };
    if !ok {
        return None;
    }
    let (request, output) = (request?, output?);
    let (wire_method, name_span) = match &args.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (pascal(&sig.ident.to_string()), sig.ident.span()),
    };
    let request = replace_self((*request.ty).clone(), self_ty);
    let output = replace_self(output, self_ty);
    let response = result_ok_type(&output)?;
    Some(Endpoint {
        ident: sig.ident.clone(),
        wire_method,
        name_span,
        has_ctx,
        response,
        request,
        output,
        docs: docs::collect(&method.attrs),
        cfgs: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .cloned()
            .collect(),
        deprecated: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("deprecated"))
            .cloned()
            .collect(),
        idempotent: args.idempotent,
    })
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
