//! Reading the `impl` block into the model.
//!
//! Reading checks each method's shape (`signature`) and reports every
//! problem with a span on the offending tokens. An endpoint with a shape
//! problem stays in the model without a `Served` part: the expansion gives
//! it a client method and a dispatch arm that answers an internal error, so
//! code that uses it gets no second error. A subscriber with a problem is
//! left out (nothing else names it).

use quote::format_ident;
use syn::{Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::attr::{self, ServiceArgs};
use crate::case::pascal;
use crate::docs;
use crate::errors::Errors;
use crate::model::{Endpoint, Served, Service, Shape, Subscriber};
use crate::signature::{self, Reader, Role};
use crate::types::{is_nameable, replace_self, result_err_type, result_ok_type};

/// Reads the impl block; `item` is left as it is (helper attributes are
/// stripped separately).
pub fn read(args: ServiceArgs, item: &ItemImpl, errors: &mut Errors) -> Option<Service> {
    let servable = check_impl(item, errors);
    let ident = type_ident(&item.self_ty, errors)?;
    let wire_name = args.name.as_ref().map_or_else(|| ident.to_string(), syn::LitStr::value);
    let client = match args.client {
        Some(client) if client == ident => {
            errors.spanned(
                &client,
                format_args!(
                    "`client` names the generated client type, which cannot share the name of the service type `{ident}`: write e.g. `client = \"{ident}Client\"`"
                ),
            );
            format_ident!("{}Client", ident)
        }
        Some(client) => client,
        None => format_ident!("{}Client", ident),
    };
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::micro));
    let mut endpoints = Vec::new();
    let mut subscribers = Vec::new();
    for impl_item in &item.items {
        match impl_item {
            ImplItem::Fn(method) => {
                let endpoint = helper_attr(&method.attrs, "endpoint", errors);
                let subscribe = helper_attr(&method.attrs, "subscribe", errors);
                let consume = helper_attr(&method.attrs, "consume", errors);
                let second = [subscribe, consume]
                    .into_iter()
                    .flatten()
                    .nth(usize::from(endpoint.is_none()));
                match (endpoint, subscribe, consume) {
                    _ if second.is_some() => errors.spanned(
                        second,
                        "a method is one of an endpoint, a subscriber or a consumer: keep one of #[endpoint], #[subscribe] and #[consume]",
                    ),
                    (Some(attr), None, None) => {
                        let args = attr::endpoint_args(attr, errors);
                        endpoints.push(read_endpoint(method, args, &item.self_ty, errors));
                    }
                    (None, Some(attr), None) => {
                        let args = attr::subscribe_args(attr, errors).map(|a| (a.topic, a.queue, None));
                        if let Some(subscriber) = read_subscriber(method, args, &item.self_ty, errors) {
                            subscribers.push(subscriber);
                        }
                    }
                    (None, None, Some(attr)) => {
                        let args = attr::consume_args(attr, errors)
                            .map(|a| (a.topic, a.group, Some((a.retry_limit, a.ack_wait_ms))));
                        if let Some(consumer) = read_subscriber(method, args, &item.self_ty, errors) {
                            subscribers.push(consumer);
                        }
                    }
                    _ => {}
                }
            }
            other => {
                for name in ["endpoint", "subscribe", "consume"] {
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
        generics: item.generics.clone(),
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

fn cfg_attrs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).cloned().collect()
}

/// Reads an endpoint; one with errors is kept with what could be read.
fn read_endpoint(method: &ImplItemFn, args: attr::EndpointArgs, self_ty: &Type, errors: &mut Errors) -> Endpoint {
    let sig = &method.sig;
    let mut r = Reader::new(errors);
    let inputs = signature::read_method(sig, Role::Endpoint, &mut r);
    let params = signature::read_params(sig, &inputs, &mut r);
    let streams_out = matches!(params.shape, Shape::ServerStreaming | Shape::Bidirectional { .. });
    let unit_only = streams_out
        .then_some("an endpoint that streams its responses sends them on the stream and returns `Result<()>`");
    let output = signature::read_output(sig, Role::Endpoint, unit_only, &mut r);
    let clean = r.is_clean();
    let (wire_method, name_span) = match &args.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (pascal(&sig.ident.to_string()), sig.ident.span()),
    };
    let request = params.request.map(|t| replace_self(t, self_ty));
    let output = output.map(|t| replace_self(t, self_ty));
    let response = match params.streamed_response {
        Some(response) => Some(replace_self(response, self_ty)),
        None => output.as_ref().and_then(result_ok_type),
    };
    let served = match (clean, &request, &response, &output) {
        (true, Some(request), Some(response), Some(output)) => Some(Served {
            has_ctx: inputs.has_ctx,
            request: request.clone(),
            response: response.clone(),
            output: output.clone(),
            error: result_err_type(output),
        }),
        _ => None,
    };
    // A stub's client names only what it can; the rest becomes generic.
    let nameable = |ty: Option<Type>| ty.filter(|t| served.is_some() || is_nameable(t));
    Endpoint {
        ident: sig.ident.clone(),
        wire_method,
        name_span,
        shape: params.shape,
        request: nameable(request),
        response: nameable(response),
        served,
        docs: docs::collect(&method.attrs),
        cfgs: cfg_attrs(&method.attrs),
        deprecated: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("deprecated"))
            .cloned()
            .collect(),
        idempotent: args.idempotent,
        dispatched: true,
        in_client: true,
    }
}

/// What a subscriber or consumer attribute says: topic, queue or group,
/// and for a consumer its retry limit and ack wait.
type SubscriberArgs = (syn::LitStr, Option<syn::LitStr>, Option<(Option<u32>, Option<u64>)>);

/// Reads a subscriber (or a consumer); one with errors is left out.
fn read_subscriber(
    method: &ImplItemFn,
    args: Option<SubscriberArgs>,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Subscriber> {
    let sig = &method.sig;
    let mut r = Reader::new(errors);
    let inputs = signature::read_method(sig, Role::Subscriber, &mut r);
    let message = signature::read_message(sig, &inputs, &mut r);
    let output = signature::read_output(
        sig,
        Role::Subscriber,
        Some("a subscriber returns `Result<()>`: a message has no caller to answer"),
        &mut r,
    );
    if !r.is_clean() {
        return None;
    }
    let (args, message, output) = (args?, message?, output?);
    let output = replace_self(output, self_ty);
    Some(Subscriber {
        ident: sig.ident.clone(),
        wire_method: pascal(&sig.ident.to_string()),
        topic: args.0.value(),
        queue: args.1.as_ref().map(syn::LitStr::value),
        consume: args.2,
        has_ctx: inputs.has_ctx,
        message: replace_self(message, self_ty),
        error: result_err_type(&output),
        output,
        docs: docs::collect(&method.attrs),
        cfgs: cfg_attrs(&method.attrs),
    })
}
