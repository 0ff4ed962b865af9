//! Tower layers recording calls in a service's [`Metrics`]: handler calls,
//! client call attempts, subscriber deliveries. A [`Service`](crate::Service)
//! records its handler calls without a layer (see [`crate::observe`]); these
//! are for the client, the subscribers, and for servers built by hand.

use std::task::{Context as TaskContext, Poll};

use tower::{Layer, Service};

use crate::client::{Attempted, CallAttempt};
use crate::error::Error;
pub use crate::meter::{Metrics, Recorded};
use crate::server::{HandlerCall, Response, SubscriberCall};

impl Metrics {
    /// A layer recording every handler call.
    pub fn server_layer(&self) -> MetricsLayer<Server> {
        MetricsLayer {
            metrics: self.clone(),
            side: Server,
        }
    }

    /// A layer recording every attempt of the calls a client makes.
    pub fn client_layer(&self) -> MetricsLayer<Client> {
        MetricsLayer {
            metrics: self.clone(),
            side: Client,
        }
    }

    /// A layer recording every message delivered to a subscriber.
    pub fn subscriber_layer(&self) -> MetricsLayer<Subscriber> {
        MetricsLayer {
            metrics: self.clone(),
            side: Subscriber,
        }
    }
}

/// Which calls a [`MetricsLayer`] records: handler calls.
#[derive(Clone, Copy, Debug)]
pub struct Server;

/// Which calls a [`MetricsLayer`] records: attempts of calls made.
#[derive(Clone, Copy, Debug)]
pub struct Client;

/// Which calls a [`MetricsLayer`] records: subscriber deliveries.
#[derive(Clone, Copy, Debug)]
pub struct Subscriber;

/// A layer recording calls in a service's [`Metrics`].
#[derive(Clone, Debug)]
pub struct MetricsLayer<Side> {
    metrics: Metrics,
    side: Side,
}

impl<S, Side: Copy> Layer<S> for MetricsLayer<Side> {
    type Service = MetricsService<S, Side>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
            _side: self.side,
        }
    }
}

/// The service of a [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct MetricsService<S, Side> {
    inner: S,
    metrics: Metrics,
    _side: Side,
}

impl<S> Service<HandlerCall> for MetricsService<S, Server>
where
    S: Service<HandlerCall, Response = Response, Error = Error>,
{
    type Response = Response;
    type Error = Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: HandlerCall) -> Self::Future {
        let endpoint = call.endpoint().name();
        let recording = self.metrics.serve(endpoint);
        Recorded::new(self.inner.call(call), Some(recording), endpoint)
    }
}

impl<S> Service<CallAttempt> for MetricsService<S, Client>
where
    S: Service<CallAttempt, Response = Attempted, Error = Error>,
{
    type Response = Attempted;
    type Error = Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, attempt: CallAttempt) -> Self::Future {
        let recording = self.metrics.attempt(attempt.service_shared(), attempt.endpoint_name());
        Recorded::new(self.inner.call(attempt), Some(recording), "")
    }
}

impl<S> Service<SubscriberCall> for MetricsService<S, Subscriber>
where
    S: Service<SubscriberCall, Response = (), Error = Error>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = Error;
    type Future = crate::BoxFuture<'static, Result<(), Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: SubscriberCall) -> Self::Future {
        let subscriber = call.subscriber().name();
        let topic = call.event().topic.clone();
        let metrics = self.metrics.clone();
        let delivered = self.inner.call(call);
        Box::pin(async move {
            let outcome = delivered.await;
            metrics.delivered(&topic, subscriber, outcome.as_ref().map(|_| ()));
            outcome
        })
    }
}
