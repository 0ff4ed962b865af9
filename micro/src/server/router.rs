//! Routes `Service.Method` to the handler registered under `Service`.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::handler::{EndpointDescriptor, Handler};
use crate::error::{Error, SERVER_ID};

/// The handlers of one server, by wire name.
#[derive(Clone, Default)]
pub struct Router {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
    /// Every endpoint by its full name, `Service.Method`: a call is routed
    /// with one lookup. The keys are fixed at start, so a fast hasher is safe.
    endpoints: HashMap<Box<str>, (Arc<dyn Handler>, &'static EndpointDescriptor), RandomState>,
}

/// Registering two handlers under one name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a handler named {0} is already registered; give one of them another name with #[micro::service(name = \"...\")]"
)]
pub struct DuplicateHandler(pub &'static str);

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler under its descriptor's name.
    pub fn add(&mut self, handler: Arc<dyn Handler>) -> Result<(), DuplicateHandler> {
        let name = handler.descriptor().name();
        if self.handlers.contains_key(name) {
            return Err(DuplicateHandler(name));
        }
        for endpoint in handler.descriptor().endpoints() {
            let key = format!("{name}.{}", endpoint.method()).into_boxed_str();
            self.endpoints.insert(key, (Arc::clone(&handler), endpoint));
        }
        self.handlers.insert(name, handler);
        Ok(())
    }

    /// The registered handlers.
    pub fn handlers(&self) -> impl Iterator<Item = &Arc<dyn Handler>> {
        self.handlers.values()
    }

    /// The handler for `endpoint` (`Service.Method`) and the endpoint's descriptor.
    pub fn route(&self, endpoint: &str) -> Result<(&Arc<dyn Handler>, &'static EndpointDescriptor), Error> {
        match self.endpoints.get(endpoint) {
            Some((handler, descriptor)) => Ok((handler, descriptor)),
            None => Err(self.unroutable(endpoint)),
        }
    }

    /// Why `endpoint` has no handler.
    #[cold]
    fn unroutable(&self, endpoint: &str) -> Error {
        let Some((service, _)) = endpoint.split_once('.').filter(|(s, m)| !s.is_empty() && !m.is_empty()) else {
            return Error::bad_request(
                SERVER_ID,
                format!("endpoint {endpoint:?} is ill-formed: expected Service.Method, e.g. Helloworld.Greeting"),
            );
        };
        if self.handlers.contains_key(service) {
            Error::not_found(SERVER_ID, format!("unknown endpoint {endpoint}"))
        } else {
            Error::not_found(SERVER_ID, format!("unknown service {service} (endpoint {endpoint})"))
        }
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}
