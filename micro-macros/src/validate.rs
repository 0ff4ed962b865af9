//! Checks that span several endpoints: wire names must be unique, and method
//! names must not collide with what the generated client defines itself.
//!
//! An offending endpoint is reported, with the span on the second
//! occurrence, and kept out of what would clash: a duplicate wire name gets
//! no dispatch arm, a reserved method name no client method.

use std::collections::HashMap;

use quote::ToTokens;
use syn::ext::IdentExt;

use crate::errors::Errors;
use crate::model::{Endpoint, Service};

/// Names the generated client defines; an endpoint method may not use them.
pub const RESERVED: &[&str] = &["new", "service_name", "client"];

pub fn check(service: &mut Service, errors: &mut Errors) {
    check_wire_names(service, errors);
    check_client_names(service, errors);
}

/// The `#[cfg]`s of an endpoint as text, the key under which its wire name
/// must be unique.
fn cfg_key(endpoint: &Endpoint) -> String {
    endpoint
        .cfgs
        .iter()
        .map(|a| a.to_token_stream().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Two endpoints collide when both are compiled whenever one is: under the
/// same `#[cfg]`s, or one of them under none. Endpoints under different
/// `#[cfg]`s may share a name (one for each configuration); if both are
/// compiled, the server refuses the second when it starts.
fn check_wire_names(service: &mut Service, errors: &mut Errors) {
    let mut seen: HashMap<&str, Vec<(String, &syn::Ident)>> = HashMap::new();
    let mut clashes = Vec::new();
    for (index, endpoint) in service.endpoints.iter().enumerate() {
        let key = cfg_key(endpoint);
        let earlier = seen.entry(endpoint.wire_method.as_str()).or_default();
        let first = earlier
            .iter()
            .find(|(cfgs, _)| cfgs.is_empty() || key.is_empty() || *cfgs == key);
        match first {
            Some((cfgs, first)) => {
                let under = if cfgs.is_empty() && key.is_empty() {
                    String::new()
                } else {
                    " when both are compiled".to_owned()
                };
                errors.at(
                    endpoint.name_span,
                    format_args!(
                        "endpoint name `{}` is already used by `{first}`{under}; give one of them another name with #[endpoint(name = \"...\")]",
                        endpoint.wire_name(service),
                    ),
                );
                clashes.push(index);
            }
            None => earlier.push((key, &endpoint.ident)),
        }
    }
    for index in clashes {
        if let Some(endpoint) = service.endpoints.get_mut(index) {
            endpoint.dispatched = false;
        }
    }
}

fn check_client_names(service: &mut Service, errors: &mut Errors) {
    for endpoint in &mut service.endpoints {
        let ident = endpoint.ident.unraw().to_string();
        if RESERVED.contains(&ident.as_str()) {
            errors.spanned(
                &endpoint.ident,
                format_args!(
                    "an endpoint method cannot be named `{ident}`: the generated `{}` has its own `{ident}` method; rename the method and keep the wire name with #[endpoint(name = \"{}\")]",
                    service.client, endpoint.wire_method,
                ),
            );
            endpoint.in_client = false;
        }
    }
}
