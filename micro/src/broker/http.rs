//! Go Micro's HTTP broker (`broker/http.go`), compatible byte for byte.
//!
//! Each subscription registers, in the registry, a service named
//! `micro.http.broker` whose version is the queue name (`ff.http.broadcast`
//! without one) and whose one node has the id `<topic>-<uuid>`, the
//! broker's listening address, and the metadata
//! `{"secure":"false","broker":"http","topic":<topic>}`. A publisher looks
//! that service up and POSTs the JSON message `{"Header":{..},"Body":"<base64>"}`
//! to `http://<node address>/?id=<node id>`: to every node of a broadcast
//! version, to one node of each queue version. The subscriber's HTTP server
//! dispatches by the `Micro-Topic` header and the `id`.
//!
//! Differences from Go Micro, on purpose: bodies are limited (4 MiB, 413),
//! a malformed message gets 400, a handler's error comes back as a 500 with
//! the error JSON (Go answers 200 regardless; Go publishers ignore the
//! answer either way), a queue member that refuses the connection is skipped
//! for another member, and publishing waits for the deliveries instead of
//! sending in the background (Go keeps failed messages in memory and sends
//! them again with the next publish to the topic; here the publisher gets
//! the error instead, and nothing is delivered twice).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Broker, BrokerError, Event, Message, MessageHandler, SubscribeOptions, Subscription, TOPIC_HEADER, Unsubscribe,
};
use crate::BoxFuture;
use crate::body::BodyError;
use crate::error::Error;
use crate::net::Peer;
use crate::registry::{self, CacheRegistry, RegisterOptions, Registry, RegistryError};
use crate::transport::ServerOptions;
use crate::transport::http::listen::{RunningServer, listen};

/// The registry name every HTTP broker subscription registers under.
pub const SERVICE_NAME: &str = "micro.http.broker";
/// The version of subscriptions without a queue.
pub const BROADCAST_VERSION: &str = "ff.http.broadcast";
const ERROR_ID: &str = "go.micro.broker";

/// Settings of the HTTP broker; Go Micro's defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpBrokerOptions {
    /// Where subscribers listen (`--broker_address`; default `127.0.0.1:0`).
    pub address: String,
    /// The address registered instead of the bound one.
    pub advertise: Option<String>,
    /// The largest message accepted or sent.
    pub body_limit: usize,
    /// How long a subscription's registration lives without renewal.
    pub register_ttl: Duration,
    /// How often subscriptions register again.
    pub register_interval: Duration,
    /// How long one delivery may take.
    pub timeout: Duration,
}

impl Default for HttpBrokerOptions {
    fn default() -> Self {
        HttpBrokerOptions {
            address: "127.0.0.1:0".to_owned(),
            advertise: None,
            body_limit: 4 * 1024 * 1024,
            register_ttl: Duration::from_secs(60),
            register_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl HttpBrokerOptions {
    /// Sets [`address`](Self::address).
    #[must_use]
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Sets [`body_limit`](Self::body_limit).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets [`register_ttl`](Self::register_ttl) and [`register_interval`](Self::register_interval).
    #[must_use]
    pub fn register(mut self, ttl: Duration, interval: Duration) -> Self {
        self.register_ttl = ttl;
        self.register_interval = interval;
        self
    }
}

/// The HTTP broker. Clones share one listener and its subscriptions.
#[derive(Clone)]
pub struct HttpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    options: HttpBrokerOptions,
    registry: Arc<dyn Registry>,
    lookup: CacheRegistry,
    client: HyperClient<HttpConnector, Full<Bytes>>,
    subscribers: Mutex<HashMap<String, Subscriber>>,
    listener: tokio::sync::Mutex<Option<Listening>>,
}

struct Subscriber {
    topic: String,
    handler: MessageHandler,
    record: registry::Service,
}

struct Listening {
    address: String,
    server: RunningServer,
    renewal: CancellationToken,
}

impl HttpBroker {
    /// A broker registering its subscribers in `registry`.
    pub fn new(registry: Arc<dyn Registry>) -> Self {
        Self::with_options(registry, HttpBrokerOptions::default())
    }

    /// A broker with `options`.
    pub fn with_options(registry: Arc<dyn Registry>, options: HttpBrokerOptions) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        HttpBroker {
            inner: Arc::new(Inner {
                id: uuid::Uuid::new_v4().to_string(),
                lookup: CacheRegistry::new(Arc::clone(&registry)),
                registry,
                options,
                client,
                subscribers: Mutex::default(),
                listener: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The address subscribers are reached at, once connected.
    pub async fn address(&self) -> Option<String> {
        self.inner.listener.lock().await.as_ref().map(|l| l.address.clone())
    }

    fn subscribers(&self) -> MutexGuard<'_, HashMap<String, Subscriber>> {
        self.inner.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the listener and the renewal of registrations.
    async fn listen(&self) -> Result<String, BrokerError> {
        let mut listening = self.inner.listener.lock().await;
        if let Some(listening) = listening.as_ref() {
            return Ok(listening.address.clone());
        }
        let unavailable = |message: String| BrokerError::Unavailable {
            broker: "http",
            message,
        };
        let address = crate::net::normalize_address(&self.inner.options.address);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|e| unavailable(format!("cannot listen on {address}: {e}")))?;
        let bound = listener.local_addr().map_err(|e| unavailable(e.to_string()))?;
        let advertised = crate::net::advertised_address(self.inner.options.advertise.as_deref(), bound);
        let options = ServerOptions::default().body_limit(self.inner.options.body_limit);
        let broker = self.clone();
        let server = listen(
            listener,
            &options,
            move |peer, request| {
                let broker = broker.clone();
                async move { broker.deliver(peer, request).await }
            },
            None,
        );
        let renewal = CancellationToken::new();
        tokio::spawn(self.clone().renew(renewal.clone()));
        *listening = Some(Listening {
            address: advertised.clone(),
            server,
            renewal,
        });
        Ok(advertised)
    }

    /// Registers every subscription again each interval.
    async fn renew(self, stop: CancellationToken) {
        let interval = self.inner.options.register_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let records: Vec<registry::Service> = self.subscribers().values().map(|s| s.record.clone()).collect();
            for record in records {
                let ttl = RegisterOptions::ttl(self.inner.options.register_ttl);
                if let Err(e) = self.inner.registry.register(&record, ttl).await {
                    warn!(error = %e, "cannot renew a broker subscription");
                }
            }
        }
    }

    /// Serves one delivery: `POST /?id=<subscriber>` with a message. A
    /// message the broker cannot take gets its error's status; one the
    /// subscriber failed gets 500 with the subscriber's error.
    async fn deliver(&self, _peer: Arc<Peer>, request: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
        let (status, error) = match self.receive(request).await {
            Ok(Ok(())) => return http::Response::new(Full::new(Bytes::new())),
            Ok(Err(failed)) => (StatusCode::INTERNAL_SERVER_ERROR, failed),
            Err(rejected) => (rejected.http_status(), rejected),
        };
        let mut body = error.to_json().into_bytes();
        body.push(b'\n');
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    /// The subscriber's outcome, or why the message was rejected.
    async fn receive(&self, request: http::Request<Incoming>) -> Result<Result<(), Error>, Error> {
        if request.method() != Method::POST {
            return Err(Error::method_not_allowed(ERROR_ID, "deliver messages with POST"));
        }
        let id = query_id(request.uri().query().unwrap_or_default());
        let limit = self.inner.options.body_limit;
        let body = match crate::body::read(request.into_body(), limit).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Err(Error::payload_too_large(
                    ERROR_ID,
                    format!("the message is over the limit of {limit} bytes"),
                ));
            }
            Err(BodyError::Read(e)) => {
                return Err(Error::bad_request(ERROR_ID, format!("cannot read the message: {e}")));
            }
        };
        let message: Message = serde_json::from_slice(&body)
            .map_err(|e| Error::bad_request(ERROR_ID, format!("the message is not a broker message: {e}")))?;
        let topic = message
            .topic()
            .ok_or_else(|| Error::bad_request(ERROR_ID, "the message has no Micro-Topic header"))?
            .to_owned();
        let handler = {
            let subscribers = self.subscribers();
            let found = id
                .as_deref()
                .and_then(|id| subscribers.get(id))
                .filter(|s| s.topic == topic);
            found.map(|s| Arc::clone(&s.handler))
        };
        let Some(handler) = handler else {
            return Err(Error::not_found(
                ERROR_ID,
                format!("no subscriber {} for topic {topic}", id.as_deref().unwrap_or("(no id)")),
            ));
        };
        Ok(handler(Event { topic, message }).await)
    }

    /// POSTs the encoded message to one subscriber node.
    async fn send(&self, node: &registry::Node, body: Bytes) -> Result<(), Undelivered> {
        let scheme = if node.metadata.get("secure").is_some_and(|s| s == "true") {
            "https"
        } else {
            "http"
        };
        // Go's `url.Values{"id": ..}.Encode()`.
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("id", &node.id)
            .finish();
        let uri = format!("{scheme}://{}/?{query}", node.address);
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Undelivered::unreached(format!("bad subscriber address {:?}: {e}", node.address)))?;
        let exchange = async {
            let response = self.inner.client.request(request).await.map_err(|e| Undelivered {
                // Only a refused connection proves the message never arrived.
                reached: !e.is_connect(),
                gone: false,
                reason: format!("{}: {e}", node.address),
            })?;
            let status = response.status();
            let body = crate::body::read(response.into_body(), self.inner.options.body_limit)
                .await
                .unwrap_or_default();
            let answer = || {
                format!(
                    "{} answered {status}: {}",
                    node.address,
                    String::from_utf8_lossy(&body).trim()
                )
            };
            match status {
                s if s.is_success() => Ok(()),
                StatusCode::INTERNAL_SERVER_ERROR => {
                    // The subscriber got the message; its handler failed.
                    debug!(node = %node.id, answer = %String::from_utf8_lossy(&body), "a subscriber's handler failed");
                    Ok(())
                }
                // The subscription is gone from that node: nothing ran.
                StatusCode::NOT_FOUND => Err(Undelivered {
                    gone: true,
                    ..Undelivered::unreached(answer())
                }),
                _ => Err(Undelivered {
                    reached: true,
                    gone: false,
                    reason: answer(),
                }),
            }
        };
        tokio::time::timeout(self.inner.options.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Undelivered {
                    reached: true,
                    gone: false,
                    reason: format!("{} did not answer in time", node.address),
                })
            })
    }

    /// Delivers to one subscriber node of a broadcast: a subscription gone
    /// from its node since the registry was read wants no more messages, as
    /// if it had not been listed.
    async fn send_to_each(&self, node: &registry::Node, body: Bytes) -> Result<(), String> {
        match self.send(node, body).await {
            Err(e) if e.gone => {
                debug!(node = %node.id, "the subscription is gone; nothing to deliver");
                Ok(())
            }
            sent => sent.map_err(|e| e.reason),
        }
    }

    /// Delivers to one node of a queue group. Another member is tried only
    /// when the message provably did not reach the first (a refused
    /// connection, or no such subscription there), so a message is never
    /// handled twice. When every member's subscription is gone, the group
    /// is, and that is no failure.
    async fn send_to_one(&self, nodes: &[&registry::Node], body: &Bytes) -> Result<(), String> {
        let start = fastrand::usize(..nodes.len().max(1));
        let mut failures = Vec::new();
        let mut all_gone = true;
        for i in 0..nodes.len() {
            let node = nodes[(start + i) % nodes.len()];
            match self.send(node, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.reached => {
                    failures.push(e.reason);
                    all_gone = false;
                    break;
                }
                Err(e) => {
                    all_gone &= e.gone;
                    failures.push(e.reason);
                }
            }
        }
        if all_gone {
            debug!("every subscription of the queue group is gone; nothing to deliver");
            return Ok(());
        }
        Err(failures.join("; "))
    }
}

/// Why a delivery failed, and whether the subscriber may have run.
struct Undelivered {
    reached: bool,
    /// The node answered that it has no such subscription (any more).
    gone: bool,
    reason: String,
}

impl Undelivered {
    fn unreached(reason: String) -> Self {
        Undelivered {
            reached: false,
            gone: false,
            reason,
        }
    }
}

/// The `id` of a query string, as Go's `req.Form.Get("id")` reads it.
fn query_id(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| (key == "id").then(|| value.into_owned()))
}

impl Broker for HttpBroker {
    fn connect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move { self.listen().await.map(drop) })
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            let records: Vec<registry::Service> = self.subscribers().drain().map(|(_, s)| s.record).collect();
            for record in records {
                if let Err(e) = self.inner.registry.deregister(&record).await {
                    warn!(error = %e, "cannot deregister a broker subscription");
                }
            }
            if let Some(listening) = self.inner.listener.lock().await.take() {
                listening.renewal.cancel();
                listening.server.shutdown().await;
            }
            Ok(())
        })
    }

    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            let message = message.with_header(TOPIC_HEADER, topic);
            let body = Bytes::from(serde_json::to_vec(&message).map_err(|e| BrokerError::Delivery {
                topic: topic.to_owned(),
                message: e.to_string(),
            })?);
            let limit = self.inner.options.body_limit;
            if body.len() > limit {
                return Err(BrokerError::TooLarge {
                    size: body.len(),
                    limit,
                });
            }
            let services = match self.inner.lookup.lookup(SERVICE_NAME).await {
                Ok(services) => services,
                Err(RegistryError::NotFound { .. }) => {
                    debug!(topic, "no subscriber at all; the message is dropped");
                    return Ok(());
                }
                Err(e) => {
                    return Err(BrokerError::Unavailable {
                        broker: "http",
                        message: e.to_string(),
                    });
                }
            };
            let mut groups: BTreeMap<&str, Vec<&registry::Node>> = BTreeMap::new();
            for service in services.iter() {
                let nodes = service
                    .nodes
                    .iter()
                    .filter(|n| n.metadata.get("broker").is_some_and(|b| b == "http"))
                    .filter(|n| n.metadata.get("topic").is_some_and(|t| t == topic));
                groups.entry(service.version.as_str()).or_default().extend(nodes);
            }
            let mut deliveries = Vec::new();
            for (version, nodes) in &groups {
                if nodes.is_empty() {
                    continue;
                }
                if *version == BROADCAST_VERSION {
                    deliveries.extend(nodes.iter().map(|node| {
                        let body = body.clone();
                        Box::pin(self.send_to_each(node, body)) as BoxFuture<'_, Result<(), String>>
                    }));
                } else {
                    let body = body.clone();
                    deliveries.push(Box::pin(async move { self.send_to_one(nodes, &body).await }));
                }
            }
            let failures: Vec<String> = join_all(deliveries).await.into_iter().filter_map(Result::err).collect();
            if failures.is_empty() {
                Ok(())
            } else {
                Err(BrokerError::Delivery {
                    topic: topic.to_owned(),
                    message: failures.join("; "),
                })
            }
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        handler: MessageHandler,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription, BrokerError>> {
        Box::pin(async move {
            let address = self.listen().await?;
            let id = format!("{topic}-{}", uuid::Uuid::new_v4());
            let record = registry::Service {
                name: SERVICE_NAME.to_owned(),
                version: options.queue.clone().unwrap_or_else(|| BROADCAST_VERSION.to_owned()),
                nodes: vec![registry::Node {
                    id: id.clone(),
                    address,
                    metadata: BTreeMap::from([
                        ("secure".to_owned(), "false".to_owned()),
                        ("broker".to_owned(), "http".to_owned()),
                        ("topic".to_owned(), topic.to_owned()),
                    ]),
                }],
                ..registry::Service::default()
            };
            self.subscribers().insert(
                id.clone(),
                Subscriber {
                    topic: topic.to_owned(),
                    handler,
                    record: record.clone(),
                },
            );
            let ttl = RegisterOptions::ttl(self.inner.options.register_ttl);
            if let Err(e) = self.inner.registry.register(&record, ttl).await {
                self.subscribers().remove(&id);
                return Err(BrokerError::Unavailable {
                    broker: "http",
                    message: format!("cannot register the subscription: {e}"),
                });
            }
            let end = Box::new(HttpUnsubscribe {
                broker: self.clone(),
                id,
            });
            Ok(Subscription::new(topic, options.queue, end))
        })
    }

    fn name(&self) -> &'static str {
        "http"
    }
}

struct HttpUnsubscribe {
    broker: HttpBroker,
    id: String,
}

impl Unsubscribe for HttpUnsubscribe {
    fn unsubscribe(self: Box<Self>) -> BoxFuture<'static, Result<(), BrokerError>> {
        Box::pin(async move {
            let removed = self.broker.subscribers().remove(&self.id);
            if let Some(subscriber) = removed {
                self.broker
                    .inner
                    .registry
                    .deregister(&subscriber.record)
                    .await
                    .map_err(|e| BrokerError::Unavailable {
                        broker: "http",
                        message: format!("cannot deregister the subscription: {e}"),
                    })?;
            }
            Ok(())
        })
    }
}

impl fmt::Debug for HttpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBroker")
            .field("id", &self.inner.id)
            .field("registry", &self.inner.registry.name())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_the_query_string() {
        let id = "user.created-7 a/b";
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("x", "1")
            .append_pair("id", id)
            .finish();
        assert_eq!(query, "x=1&id=user.created-7+a%2Fb", "as Go's url.Values encodes it");
        assert_eq!(query_id(&query).as_deref(), Some(id));
        assert_eq!(query_id("id=a%2"), Some("a%2".to_owned()));
        assert_eq!(query_id("other=1"), None);
    }
}
