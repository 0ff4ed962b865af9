//! Writes the code: the impl block itself (helper attributes stripped), the
//! typed client, the handler and the descriptor, and the errors found.
//!
//! Expansion never validates. An endpoint with errors gets a client method
//! and a stub dispatch arm, and a block that cannot be served (generic, a
//! trait impl) a stub `Handler` impl, so a build with errors shows the
//! errors and nothing that cascades from them.

mod client;
mod handler;
mod stub;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{ImplItem, ItemImpl};

use crate::errors::Errors;
use crate::{attr, validate};

/// `#[micro::service]`.
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = attr::service_args(args, &mut errors);
    let item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[micro::service] goes on an impl block: `#[micro::service] impl Helloworld { .. }`",
            )
            .to_compile_error();
            return quote!(#error #input);
        }
    };
    let model = crate::read::read(args, &item, &mut errors);
    let generated = model.map(|mut service| {
        validate::check(&mut service, &mut errors);
        let client = client::generate(&service);
        let handler = if service.servable {
            handler::generate(&service)
        } else {
            stub::generate(&service)
        };
        quote!(#client #handler)
    });
    let item = strip_helpers(item);
    let errors = errors.to_compile_errors();
    quote! {
        #item
        #generated
        #errors
    }
}

/// `#[endpoint]` or `#[subscribe]` outside a `#[micro::service]` block: an error, and the item
/// kept as written.
pub fn misplaced(name: &str, input: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        Span::call_site(),
        format!("#[{name}] only works on a method inside an `impl` block annotated with #[micro::service]"),
    )
    .to_compile_error();
    quote!(#error #input)
}

/// The impl block without our helper attributes, which have done their work.
fn strip_helpers(mut item: ItemImpl) -> ItemImpl {
    for impl_item in &mut item.items {
        let attrs = match impl_item {
            ImplItem::Fn(f) => &mut f.attrs,
            ImplItem::Const(c) => &mut c.attrs,
            ImplItem::Type(t) => &mut t.attrs,
            ImplItem::Macro(m) => &mut m.attrs,
            _ => continue,
        };
        attrs.retain(|a| {
            !["endpoint", "subscribe", "consume"]
                .iter()
                .any(|name| attr::is_helper(a, name))
        });
    }
    item
}

/// The name of a type for the registry when it cannot be traced: its last
/// path segment.
fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default(),
        other => quote!(#other).to_string().replace(' ', ""),
    }
}

/// `tokens` with every span set to `span`: generated code that rustc may
/// report on (a bound not met) points at the user's tokens, not at the
/// `#[micro::service]` attribute.
fn respan(tokens: impl ToTokens, span: Span) -> TokenStream {
    tokens
        .into_token_stream()
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
