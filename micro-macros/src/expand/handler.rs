//! The server side: `impl Handler` (dispatch by method name, delivery to
//! subscribers), the service descriptor, the type checks at the user's
//! spans, and the `inventory` submission.
//!
//! Each type mistake is reported once, by an `assert_*` check spanned at the
//! user's type whose trait carries `#[diagnostic::on_unimplemented]`; the
//! dispatch goes through the `Serve` autoref probe, which falls back to a
//! stub instead of reporting the same mistake again.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::{respan, type_name};
use crate::model::{Endpoint, Served, Service, Shape, Subscriber};

pub fn generate(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let self_ty = &service.self_ty;
    let wire_name = &service.wire_name;
    let rust_name = service.ident.to_string();
    let docs = &service.docs;
    let served = || {
        service
            .endpoints
            .iter()
            .filter_map(|e| e.served.as_ref().map(|served| (e, served)))
    };
    let listed = || served().filter(|(e, _)| e.dispatched);
    let checks = served().map(|(e, served)| checks(service, e, served));
    let describers = listed().map(|(e, served)| describers(service, e, served));
    let entries = listed().map(|(e, _)| entry(service, e));
    let arms = service
        .endpoints
        .iter()
        .filter(|e| e.dispatched)
        .map(|e| arm(service, e));
    let subscriber_checks = service.subscribers.iter().map(|s| subscriber_checks(service, s));
    let subscriber_entries = service.subscribers.iter().map(|s| subscriber_entry(service, s));
    let deliver = deliver(service);
    let request = Ident::new("__micro_request", Span::mixed_site());
    let sync_bound = respan(
        quote!(#self_ty: #private::core::marker::Send + #private::core::marker::Sync + 'static),
        self_ty.span(),
    );
    quote! {
        const _: () = {
            #(#checks)*
            #(#describers)*
            #(#subscriber_checks)*

            static __MICRO_DESCRIPTOR: #private::ServiceDescriptor = #private::service_descriptor(
                #wire_name,
                #private::core::concat!(#private::core::module_path!(), "::", #rust_name),
                #docs,
                &[#(#entries),*],
                &[#(#subscriber_entries),*],
            );

            // The bound, trivially true or false, puts a type that is not
            // `Send + Sync` in one error at the type, not in one per endpoint.
            #[automatically_derived]
            impl #private::Handler for #self_ty where #sync_bound {
                fn descriptor(&self) -> &'static #private::ServiceDescriptor {
                    &__MICRO_DESCRIPTOR
                }

                fn call(
                    self: #private::SharedArc<Self>,
                    #request: #private::Request,
                ) -> #private::BoxFuture<
                    'static,
                    #private::core::result::Result<#private::Response, #private::Error>,
                > {
                    match #request.method() {
                        #(#arms)*
                        _ => #private::unknown_method(&#request, #wire_name),
                    }
                }

                #deliver
            }

            #private::inventory::submit! {
                #private::compiled_service(&__MICRO_DESCRIPTOR)
            }
        };
    }
}

/// Type checks reported at the user's own tokens, one per type.
fn checks(service: &Service, endpoint: &Endpoint, served: &Served) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let cfgs = &endpoint.cfgs;
    let Served {
        request,
        response,
        output,
        ..
    } = served;
    let request_check = quote_spanned!(request.span()=> #private::assert_request::<#request>(););
    // A unary or client-stream response is `T` of the `Result`, checked as
    // the compiler reads it (the dispatch relies on exactly that).
    let response_ty = match endpoint.shape {
        Shape::Unary | Shape::ClientStreaming => {
            respan(quote!(<#output as #private::EndpointResult>::Ok), response.span())
        }
        Shape::ServerStreaming | Shape::Bidirectional { .. } => quote!(#response),
    };
    let response_check = quote_spanned!(response.span()=> #private::assert_response::<#response_ty>(););
    let error_check = error_check(&private, output, served.error.as_ref());
    quote! {
        #(#cfgs)*
        const _: () = {
            #request_check
            #response_check
            #error_check
        };
    }
}

/// The check that the error of `output` converts into `micro::Error`, at the
/// error type when it is written out, else at the return type.
fn error_check(private: &TokenStream, output: &syn::Type, error: Option<&syn::Type>) -> TokenStream {
    match error {
        Some(error) => quote_spanned!(error.span()=> #private::assert_error::<#error>();),
        None => {
            let error = respan(quote!(<#output as #private::EndpointResult>::Err), output.span());
            quote_spanned!(output.span()=> #private::assert_error::<#error>();)
        }
    }
}

fn describer_names(endpoint: &Endpoint) -> (Ident, Ident) {
    (
        format_ident!("__micro_request_of_{}", endpoint.ident),
        format_ident!("__micro_response_of_{}", endpoint.ident),
    )
}

/// Functions that describe the request and response for the registry.
fn describers(service: &Service, endpoint: &Endpoint, served: &Served) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let cfgs = &endpoint.cfgs;
    let (request_fn, response_fn) = describer_names(endpoint);
    let request = &served.request;
    let request_name = type_name(request);
    let response = &served.response;
    let response_name = type_name(response);
    quote! {
        #(#cfgs)*
        fn #request_fn() -> #private::Value {
            #[allow(unused_imports)]
            use #private::{ViaDeserialize as _, ViaName as _};
            #private::Describe::<#request>::PROBE.value(#request_name)
        }

        #(#cfgs)*
        fn #response_fn() -> #private::Value {
            #[allow(unused_imports)]
            use #private::{ViaDeserialize as _, ViaName as _};
            #private::Describe::<#response>::PROBE.value(#response_name)
        }
    }
}

/// The endpoint's descriptor entry.
fn entry(service: &Service, endpoint: &Endpoint) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &endpoint.cfgs;
    let wire = endpoint.wire_name(service);
    let method = &endpoint.wire_method;
    let docs = &endpoint.docs;
    let idempotent = endpoint.idempotent;
    let (request_fn, response_fn) = describer_names(endpoint);
    let kind = match endpoint.shape {
        Shape::Unary => quote!(Unary),
        Shape::ServerStreaming => quote!(ServerStreaming),
        Shape::ClientStreaming => quote!(ClientStreaming),
        Shape::Bidirectional { .. } => quote!(Bidirectional),
    };
    quote! {
        #(#cfgs)*
        #krate::__private::endpoint_descriptor(
            #wire, #method, #docs, #request_fn, #response_fn, #idempotent, #krate::__private::Kind::#kind,
        )
    }
}

/// The dispatch arm: decode, call the method, encode; a stub that answers
/// an internal error for an endpoint with errors.
fn arm(service: &Service, endpoint: &Endpoint) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &endpoint.cfgs;
    let method = &endpoint.wire_method;
    let request = Ident::new("__micro_request", Span::mixed_site());
    let Some(served) = &endpoint.served else {
        let wire_name = &service.wire_name;
        return quote! {
            #(#cfgs)*
            #method => #krate::__private::unservable(&#request, #wire_name),
        };
    };
    let ident = &endpoint.ident;
    // Spanned at the method, so a future that is not `Send` is reported there.
    let private = respan(quote!(#krate::__private), ident.span());
    let Served {
        request: request_ty,
        response: response_ty,
        output,
        ..
    } = served;
    // Prefixed names: hygiene does not keep a pattern from matching a unit
    // struct of the same name in the user's scope.
    let ctx = Ident::new("__micro_ctx", Span::mixed_site());
    let message = Ident::new("__micro_message", Span::mixed_site());
    let tx = Ident::new("__micro_tx", Span::mixed_site());
    let ctx_arg = served.has_ctx.then(|| quote!(&#ctx,));
    let ctx_param = if served.has_ctx { quote!(#ctx) } else { quote!(_) };
    let (helper, params, args) = match endpoint.shape {
        Shape::Unary => (quote!(unary), quote!(#message: #request_ty), quote!(#message)),
        Shape::ServerStreaming => (
            quote!(server_stream),
            quote!(#message: #request_ty, #tx: #private::Sender<#response_ty>),
            quote!(#message, #tx),
        ),
        Shape::ClientStreaming => (
            quote!(client_stream),
            quote!(#message: #private::Receiver<#request_ty>),
            quote!(#message),
        ),
        Shape::Bidirectional { halves: false } => (
            quote!(bidi),
            quote!(#message: #private::Stream<#request_ty, #response_ty>),
            quote!(#message),
        ),
        Shape::Bidirectional { halves: true } => (
            quote!(bidi_halves),
            quote!(#message: #private::Receiver<#request_ty>, #tx: #private::Sender<#response_ty>),
            quote!(#message, #tx),
        ),
    };
    let helper = respan(helper, ident.span());
    let dispatch = quote_spanned! {ident.span()=>
        {
            #[allow(unused_imports)]
            use #private::{ViaServe as _, ViaStub as _};
            (&#private::Serve::<#request_ty, #response_ty, #output>::new()).#helper(
                #request,
                move |#ctx_param: #private::Context, #params| async move {
                    Self::#ident(&*self, #ctx_arg #args).await
                },
            )
        }
    };
    // Serving a deprecated endpoint is not a use of it.
    let allow = (!endpoint.deprecated.is_empty()).then(|| quote!(#[allow(deprecated)]));
    quote! {
        #(#cfgs)*
        #allow
        #method => #dispatch,
    }
}

/// A subscriber's type checks at the user's spans and the function that
/// describes its message.
fn subscriber_checks(service: &Service, subscriber: &Subscriber) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let cfgs = &subscriber.cfgs;
    let message = &subscriber.message;
    let output = &subscriber.output;
    let message_check = quote_spanned!(message.span()=> #private::assert_message::<#message>(););
    let error_check = error_check(&private, output, subscriber.error.as_ref());
    let describer = message_describer(subscriber);
    let message_name = type_name(message);
    quote! {
        #(#cfgs)*
        const _: () = {
            #message_check
            #error_check
        };

        #(#cfgs)*
        fn #describer() -> #private::Value {
            #[allow(unused_imports)]
            use #private::{ViaDeserialize as _, ViaName as _};
            #private::Describe::<#message>::PROBE.value(#message_name)
        }
    }
}

fn message_describer(subscriber: &Subscriber) -> Ident {
    format_ident!("__micro_message_of_{}", subscriber.ident)
}

/// The subscriber's descriptor entry.
fn subscriber_entry(service: &Service, subscriber: &Subscriber) -> TokenStream {
    let krate = &service.krate;
    let cfgs = &subscriber.cfgs;
    let name = subscriber.wire_name(service);
    let method = &subscriber.wire_method;
    let topic = &subscriber.topic;
    let queue = match &subscriber.queue {
        Some(queue) => quote!(#krate::__private::core::option::Option::Some(#queue)),
        None => quote!(#krate::__private::core::option::Option::None),
    };
    let docs = &subscriber.docs;
    let describer = message_describer(subscriber);
    let some = |value: Option<TokenStream>| match value {
        Some(value) => quote!(#krate::__private::core::option::Option::Some(#value)),
        None => quote!(#krate::__private::core::option::Option::None),
    };
    match subscriber.consume {
        None => quote! {
            #(#cfgs)*
            #krate::__private::subscriber_descriptor(#name, #method, #topic, #queue, #docs, #describer)
        },
        Some((retry_limit, ack_wait_ms)) => {
            let retry_limit = some(retry_limit.map(|n| quote!(#n)));
            let ack_wait_ms = some(ack_wait_ms.map(|n| quote!(#n)));
            quote! {
                #(#cfgs)*
                #krate::__private::consumer_descriptor(#name, #method, #topic, #queue, #retry_limit, #ack_wait_ms, #docs, #describer)
            }
        }
    }
}

/// `Handler::deliver`: decode the message, call the subscriber method.
fn deliver(service: &Service) -> Option<TokenStream> {
    if service.subscribers.is_empty() {
        return None;
    }
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let wire_name = &service.wire_name;
    let method = Ident::new("__micro_method", Span::mixed_site());
    let event = Ident::new("__micro_event", Span::mixed_site());
    let ctx = Ident::new("__micro_ctx", Span::mixed_site());
    let message = Ident::new("__micro_message", Span::mixed_site());
    let arms = service.subscribers.iter().map(|subscriber| {
        let cfgs = &subscriber.cfgs;
        let wire_method = &subscriber.wire_method;
        let name = subscriber.wire_name(service);
        let ident = &subscriber.ident;
        let message_ty = &subscriber.message;
        let output = &subscriber.output;
        let ctx_arg = subscriber.has_ctx.then(|| quote!(&#ctx,));
        let ctx_param = if subscriber.has_ctx { quote!(#ctx) } else { quote!(_) };
        let private = respan(&private, ident.span());
        let dispatch = quote_spanned! {ident.span()=>
            {
                #[allow(unused_imports)]
                use #private::{ViaServe as _, ViaStub as _};
                (&#private::Serve::<#message_ty, (), #output>::new()).subscriber(
                    #event,
                    #name,
                    move |#ctx_param: #private::Context, #message: #message_ty| async move {
                        Self::#ident(&*self, #ctx_arg #message).await
                    },
                )
            }
        };
        quote! {
            #(#cfgs)*
            #wire_method => #dispatch,
        }
    });
    Some(quote! {
        fn deliver(
            self: #private::SharedArc<Self>,
            #method: &str,
            #event: #private::Event,
        ) -> #private::BoxFuture<'static, #private::core::result::Result<(), #private::Error>> {
            match #method {
                #(#arms)*
                _ => #private::unknown_subscriber(#method, #wire_name),
            }
        }
    })
}
