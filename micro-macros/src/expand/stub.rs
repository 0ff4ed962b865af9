//! The `Handler` of an impl block that cannot be served (generic, a trait
//! impl): its error is reported, and this stub keeps `.handle(value)`
//! elsewhere in the crate from failing as well (thiserror's `fallback.rs`).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use crate::model::Service;

/// The `Handler` of a block that cannot be served (generic, a trait impl),
/// whose error is reported: a descriptor without endpoints and a `call` that
/// answers an internal error, so `.handle(value)` elsewhere compiles.
pub fn generate(service: &Service) -> TokenStream {
    let krate = &service.krate;
    let private = quote!(#krate::__private);
    let self_ty = &service.self_ty;
    let wire_name = &service.wire_name;
    let rust_name = service.ident.to_string();
    let mut generics = service.generics.clone();
    if !generics.params.is_empty() {
        generics.make_where_clause().predicates.push(syn::parse_quote!(
            #self_ty: #private::core::marker::Send + #private::core::marker::Sync + 'static
        ));
    }
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let request = Ident::new("__micro_request", Span::mixed_site());
    quote! {
        const _: () = {
            static __MICRO_DESCRIPTOR: #private::ServiceDescriptor = #private::service_descriptor(
                #wire_name,
                #private::core::concat!(#private::core::module_path!(), "::", #rust_name),
                "",
                &[],
                &[],
            );

            #[automatically_derived]
            impl #impl_generics #private::Handler for #self_ty #where_clause {
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
                    #private::unservable(&#request, #wire_name)
                }
            }
        };
    }
}
