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

/// A handler that cannot be added: a name it would serve is taken. Nothing
/// of the handler is added, so no call is routed to the wrong method.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DuplicateHandler {
    /// A handler of this name is already registered.
    #[error(
        "a handler named {0} is already registered; give one of them another name with #[micro::service(name = \"...\")]"
    )]
    Handler(&'static str),
    /// This endpoint (`Service.Method`) is already served, by another
    /// handler or twice in the handler's own descriptor.
    #[error("endpoint {0} is registered twice; give one of them another name with #[endpoint(name = \"...\")]")]
    Endpoint(Box<str>),
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler under its descriptor's name. A taken handler name or
    /// endpoint name is refused before anything is added: serving it would
    /// silently shadow one of the two.
    pub fn add(&mut self, handler: Arc<dyn Handler>) -> Result<(), DuplicateHandler> {
        let name = handler.descriptor().name();
        if self.handlers.contains_key(name) {
            return Err(DuplicateHandler::Handler(name));
        }
        let endpoints = handler.descriptor().endpoints();
        let mut keys: Vec<Box<str>> = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let key = format!("{name}.{}", endpoint.method()).into_boxed_str();
            if self.endpoints.contains_key(&key) || keys.contains(&key) {
                return Err(DuplicateHandler::Endpoint(key));
            }
            keys.push(key);
        }
        for (key, endpoint) in keys.into_iter().zip(endpoints) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxFuture;
    use crate::registry::Value;
    use crate::server::handler::{Request, Response, ServiceDescriptor};
    use crate::stream::Kind;

    fn value() -> Value {
        Value::named("Empty")
    }

    const fn endpoint(name: &'static str, method: &'static str) -> EndpointDescriptor {
        EndpointDescriptor::new(name, method, "", value, value, false, Kind::Unary)
    }

    /// A hand-written handler serving what its descriptor lists.
    struct Listed(&'static ServiceDescriptor);

    impl Handler for Listed {
        fn descriptor(&self) -> &'static ServiceDescriptor {
            self.0
        }

        fn call(self: Arc<Self>, _request: Request) -> BoxFuture<'static, Result<Response, Error>> {
            Box::pin(std::future::ready(Err(Error::internal_server_error(
                SERVER_ID, "unused",
            ))))
        }
    }

    static TWICE: ServiceDescriptor = ServiceDescriptor::new(
        "Twice",
        "tests::Twice",
        "",
        &[endpoint("Twice.Hello", "Hello"), endpoint("Twice.Hello", "Hello")],
        &[],
    );
    static OUTER: ServiceDescriptor = ServiceDescriptor::new(
        "Outer",
        "tests::Outer",
        "",
        &[endpoint("Outer.Inner.Call", "Inner.Call")],
        &[],
    );
    static NESTED: ServiceDescriptor = ServiceDescriptor::new(
        "Outer.Inner",
        "tests::Nested",
        "",
        &[endpoint("Outer.Inner.Call", "Call")],
        &[],
    );

    #[test]
    fn an_endpoint_listed_twice_is_refused_and_nothing_is_added() {
        let mut router = Router::new();
        let refused = router.add(Arc::new(Listed(&TWICE)));
        assert_eq!(refused, Err(DuplicateHandler::Endpoint("Twice.Hello".into())));
        assert_eq!(router.handlers().count(), 0);
        assert!(router.route("Twice.Hello").is_err());
    }

    #[test]
    fn an_endpoint_name_another_handler_serves_is_refused() {
        let mut router = Router::new();
        assert_eq!(router.add(Arc::new(Listed(&OUTER))), Ok(()));
        let refused = router.add(Arc::new(Listed(&NESTED)));
        assert_eq!(refused, Err(DuplicateHandler::Endpoint("Outer.Inner.Call".into())));
        let Ok((handler, _)) = router.route("Outer.Inner.Call") else {
            panic!("the first handler's endpoint is no longer routed");
        };
        assert_eq!(handler.descriptor().name(), "Outer");
    }

    #[test]
    fn a_handler_name_registered_twice_is_refused() {
        let mut router = Router::new();
        assert_eq!(router.add(Arc::new(Listed(&OUTER))), Ok(()));
        assert_eq!(
            router.add(Arc::new(Listed(&OUTER))),
            Err(DuplicateHandler::Handler("Outer"))
        );
    }
}
