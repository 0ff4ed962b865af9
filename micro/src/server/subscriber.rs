//! Subscribers on a broker: every `#[subscribe]` method of the served
//! handlers becomes one subscription, whose deliveries are counted and whose
//! failures (errors and panics) are logged without ending it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tracing::{info, warn};

use tower::ServiceExt;

use super::guard::guard;
use super::handler::{Handler, SubscriberDescriptor};
use super::layered::{SubscriberCall, SubscriberService, deliver};
use crate::broker::{self, Broker, BrokerError, Event, SubscribeOptions, Subscription};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{Error, SERVER_ID};
use crate::metadata::Metadata;
use crate::trace;

/// Deliveries to one subscriber so far.
#[derive(Debug)]
pub struct SubscriberStats {
    descriptor: &'static SubscriberDescriptor,
    handled: AtomicU64,
    failed: AtomicU64,
}

impl SubscriberStats {
    pub(super) fn new(descriptor: &'static SubscriberDescriptor) -> Arc<SubscriberStats> {
        Arc::new(SubscriberStats {
            descriptor,
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// The subscriber.
    pub fn descriptor(&self) -> &'static SubscriberDescriptor {
        self.descriptor
    }

    /// Messages its method handled without error.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Messages it failed: undecodable, or its method returned an error or panicked.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The live subscriptions of a server.
#[derive(Debug, Default)]
pub(crate) struct Subscribed {
    subscriptions: Vec<Subscription>,
    stats: Vec<Arc<SubscriberStats>>,
}

impl Subscribed {
    /// Subscribes every subscriber of `handlers`; on a failure, ends the
    /// subscriptions made so far.
    pub(crate) async fn subscribe<'h>(
        broker: &dyn Broker,
        handlers: impl IntoIterator<Item = &'h Arc<dyn Handler>>,
        layers: Option<SubscriberService>,
    ) -> Result<Subscribed, BrokerError> {
        let mut subscribed = Subscribed::default();
        for handler in handlers {
            // `#[consume]` methods read a stream, not the broker.
            for descriptor in handler
                .descriptor()
                .subscribers()
                .iter()
                .filter(|s| s.consumption().is_none())
            {
                let stats = SubscriberStats::new(descriptor);
                let options = SubscribeOptions {
                    queue: descriptor.queue().map(str::to_owned),
                };
                let on_message = deliverer(Arc::clone(handler), Arc::clone(&stats), layers.clone());
                match broker.subscribe(descriptor.topic(), on_message, options).await {
                    Ok(subscription) => {
                        info!(subscriber = descriptor.name(), topic = descriptor.topic(), queue = ?descriptor.queue(), broker = broker.name(), "subscribed");
                        subscribed.subscriptions.push(subscription);
                        subscribed.stats.push(stats);
                    }
                    Err(e) => {
                        subscribed.unsubscribe().await;
                        return Err(e);
                    }
                }
            }
        }
        Ok(subscribed)
    }

    /// The counters of every subscriber.
    pub(crate) fn stats(&self) -> &[Arc<SubscriberStats>] {
        &self.stats
    }

    /// Ends every subscription; failures are logged.
    pub(crate) async fn unsubscribe(self) {
        for subscription in self.subscriptions {
            let topic = subscription.topic().to_owned();
            if let Err(e) = subscription.unsubscribe().await {
                warn!(%topic, error = %e, "cannot unsubscribe");
            }
        }
    }
}

/// The broker handler of one subscriber: deliver through the layers,
/// count, catch panics.
pub(super) fn deliverer(
    handler: Arc<dyn Handler>,
    stats: Arc<SubscriberStats>,
    layers: Option<SubscriberService>,
) -> broker::MessageHandler {
    Arc::new(move |mut event: Event| {
        let stats = Arc::clone(&stats);
        let descriptor = stats.descriptor;
        let span = trace::process_span(&event.topic, descriptor.name());
        continue_trace(&span, &mut event);
        let call = SubscriberCall {
            handler: Arc::clone(&handler),
            subscriber: descriptor,
            event,
        };
        let delivery = match layers.clone() {
            None => futures_util::future::Either::Left(deliver(call)),
            // A layer may panic too.
            Some(layers) => futures_util::future::Either::Right(guard(descriptor.name(), || layers.oneshot(call))),
        };
        let delivery = trace::traced(span, delivery);
        Box::pin(async move {
            let result = delivery.await;
            match &result {
                Ok(()) => stats.handled.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    warn!(subscriber = descriptor.name(), topic = descriptor.topic(), error = %e, "subscriber failed; the subscription goes on");
                    stats.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            result
        })
    })
}

/// Puts the trace headers of `span` in the message, for the subscriber's
/// context to continue: its own calls and messages then follow it.
fn continue_trace(span: &tracing::Span, event: &mut Event) {
    let header = &mut event.message.header;
    let lookup = |key: &str| {
        header
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    };
    let Some(trace) = trace::place_in(span, lookup) else {
        return;
    };
    header.retain(|key, _| !trace::is_trace_header(key));
    for (key, value) in trace.headers() {
        header.insert(key.to_owned(), value.to_owned());
    }
}

/// What a subscriber method gets from a message: its context (the headers
/// as metadata), the codec its `Content-Type` names (JSON when it names
/// none) and the body.
pub(crate) fn open(event: Event, subscriber: &'static str) -> Result<(Context, Codec, Bytes), Error> {
    let broker::Message { header, body } = event.message;
    let codec = match header.get("Content-Type").filter(|c| !c.is_empty()) {
        Some(content_type) => Codec::from_content_type(content_type).map_err(|e| e.into_error(SERVER_ID))?,
        None => Codec::Json,
    };
    let mut metadata = Metadata::new();
    for (key, value) in header {
        metadata.insert(key, value);
    }
    let context = Context::for_request(metadata, None, None, subscriber);
    Ok((context, codec, body))
}
