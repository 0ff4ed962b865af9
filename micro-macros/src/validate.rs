//! Checks that span several endpoints: wire names must be unique, and method
//! names must not collide with what the generated client defines itself.
//! Offending endpoints are reported and left out of the expansion.

use std::collections::HashMap;

use crate::errors::Errors;
use crate::model::Service;

/// Names the generated client defines; an endpoint method may not use them.
const RESERVED: &[&str] = &["new", "service_name", "client"];

pub fn check(service: &mut Service, errors: &mut Errors) {
    let mut seen: HashMap<String, syn::Ident> = HashMap::new();
    let mut keep = Vec::with_capacity(service.endpoints.len());
    for endpoint in &service.endpoints {
        let mut ok = true;
        // Endpoints under #[cfg]s may share a name: at most one is compiled.
        if endpoint.cfgs.is_empty() {
            if let Some(first) = seen.get(&endpoint.wire_method) {
                errors.at(
                    endpoint.name_span,
                    format_args!(
                        "endpoint name `{}` is already used by `{first}`; give one of them another name with #[endpoint(name = \"...\")]",
                        endpoint.wire_name(service),
                    ),
                );
                ok = false;
            } else {
                seen.insert(endpoint.wire_method.clone(), endpoint.ident.clone());
            }
        }
        let ident = endpoint.ident.to_string();
        if RESERVED.contains(&ident.as_str()) {
            errors.spanned(
                &endpoint.ident,
                format_args!(
                    "an endpoint cannot be named `{ident}`: it would clash with the generated `{}::{ident}`; rename the method and keep the wire name with #[endpoint(name = \"{}\")]",
                    service.client, endpoint.wire_method,
                ),
            );
            ok = false;
        }
        keep.push(ok);
    }
    let mut keep = keep.into_iter();
    service.endpoints.retain(|_| keep.next().unwrap_or(false));
}
