//! One call and its options: built by [`Client::call`] or a generated client
//! method, then awaited.

use std::borrow::Cow;
use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Client;
use super::retry::RetryPolicy;
use crate::BoxFuture;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Result;
use crate::metadata::Metadata;
use crate::selector::Filter;
use crate::stream::{ClientStream, Receiver, Sender, Stream};

/// Options of one call; unset fields take the client's.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// How long the call may take, retries included.
    pub timeout: Option<Duration>,
    /// Attempts after the first.
    pub retries: Option<u32>,
    /// Metadata sent as headers, beside what the context forwards.
    pub metadata: Metadata,
    /// The codec; by default chosen per node.
    pub codec: Option<Codec>,
    /// Call these `host:port` addresses instead of asking the registry.
    pub address: Vec<String>,
    /// The context to inherit metadata and deadline from; by default the
    /// handler context of the calling task ([`Context::current`]).
    pub context: Option<Context>,
    /// Whether the endpoint may safely run twice, so that failures after the
    /// request was sent are retried too.
    pub idempotent: bool,
    /// Which answered errors are retried; by default the client's policy.
    pub retry: Option<RetryPolicy>,
    /// Restrictions on the nodes the call may go to.
    pub filters: Vec<Filter>,
}

/// A call that has not been sent yet. Set options, then `.await` it.
///
/// ```no_run
/// # async fn demo(client: micro::Client) -> micro::Result<()> {
/// # #[derive(serde::Serialize)] struct Request { name: String }
/// # #[derive(serde::Deserialize)] struct Response { message: String }
/// let rsp: Response = client
///     .call("helloworld", "Helloworld.Greeting", Request { name: "bob".into() })
///     .metadata("X-Request-Id", "42")
///     .retries(1)
///     .await?;
/// # Ok(()) }
/// ```
///
/// The mode `M` says what awaiting gives: a response ([`Unary`]), a
/// [`Receiver`] of responses ([`ServerStreaming`]), a [`ClientStream`]
/// ([`ClientStreaming`]) or a [`Stream`] ([`Bidirectional`]).
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<Req, Rsp, M: Mode = Unary> {
    client: Client,
    service: Arc<str>,
    endpoint: Cow<'static, str>,
    input: M::Input<Req>,
    options: CallOptions,
    response: PhantomData<fn(Req) -> Rsp>,
}

/// What a call sends and gives back; see [`Call`].
pub trait Mode: sealed::Sealed {
    /// What the call is built with: the request, or nothing for calls that
    /// stream their requests.
    type Input<Req>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! modes {
    ($($(#[$doc:meta])* $name:ident => $input:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;
            impl sealed::Sealed for $name {}
            impl Mode for $name {
                type Input<Req> = $input;
            }
        )*
    };
}

modes! {
    /// One request, one response.
    Unary => Req;
    /// One request, a stream of responses.
    ServerStreaming => Req;
    /// A stream of requests, one response.
    ClientStreaming => ();
    /// Streams both ways.
    Bidirectional => ();
}

impl<Req, Rsp, M: Mode> Call<Req, Rsp, M> {
    pub(crate) fn new(client: Client, service: Arc<str>, endpoint: Cow<'static, str>, input: M::Input<Req>) -> Self {
        Call {
            client,
            service,
            endpoint,
            input,
            options: CallOptions::default(),
            response: PhantomData,
        }
    }

    /// Gives up after `timeout`, retries included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Makes at most `retries` attempts after the first.
    pub fn retries(mut self, retries: u32) -> Self {
        self.options.retries = Some(retries);
        self
    }

    /// Sends a metadata pair as a header.
    pub fn metadata(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.options.metadata.insert(key, value);
        self
    }

    /// Encodes the request with `codec`.
    pub fn content_type(mut self, codec: Codec) -> Self {
        self.options.codec = Some(codec);
        self
    }

    /// Calls `address` (`host:port`) instead of asking the registry; may be
    /// given several times.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.options.address.push(address.into());
        self
    }

    /// Inherits metadata and deadline from `context`.
    pub fn context(mut self, context: &Context) -> Self {
        self.options.context = Some(context.clone());
        self
    }

    /// Declares the endpoint safe to run twice (see [`CallOptions::idempotent`]).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.options.idempotent = idempotent;
        self
    }

    /// Retries answered errors that `policy` accepts (see [`retry`](super::retry)).
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.options.retry = Some(policy.into());
        self
    }

    /// Only calls nodes that pass `filter`; may be given several times.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.options.filters.push(filter);
        self
    }

    /// Only calls nodes of services registered with `version`.
    pub fn version(self, version: impl Into<String>) -> Self {
        self.filter(Filter::Version(version.into()))
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    /// The options set so far.
    pub fn call_options(&self) -> &CallOptions {
        &self.options
    }
}

impl<Req, Rsp> IntoFuture for Call<Req, Rsp, Unary>
where
    Req: Serialize + Send + 'static,
    Rsp: DeserializeOwned + Send + 'static,
{
    type Output = Result<Rsp>;
    type IntoFuture = BoxFuture<'static, Result<Rsp>>;

    fn into_future(self) -> Self::IntoFuture {
        let Call {
            client,
            service,
            endpoint,
            input,
            options,
            ..
        } = self;
        client.invoke(service, endpoint, input, options)
    }
}

impl<Req, Rsp, M> Call<Req, Rsp, M>
where
    Req: Serialize,
    Rsp: DeserializeOwned,
    M: Mode,
{
    /// Opens the stream; gives its halves and what the call was built with.
    async fn open(self) -> Result<(Sender<Req>, Receiver<Rsp>, M::Input<Req>)> {
        let (tx, rx) = self.client.open(&self.service, &self.endpoint, &self.options).await?;
        Ok((tx, rx, self.input))
    }
}

impl<Req, Rsp> IntoFuture for Call<Req, Rsp, ServerStreaming>
where
    Req: Serialize + Send + 'static,
    Rsp: DeserializeOwned + Send + 'static,
{
    type Output = Result<Receiver<Rsp>>;
    type IntoFuture = BoxFuture<'static, Result<Receiver<Rsp>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (tx, rx, request) = self.open().await?;
            tx.send(request).await?;
            Ok(rx)
        })
    }
}

impl<Req, Rsp> IntoFuture for Call<Req, Rsp, ClientStreaming>
where
    Req: Serialize + Send + 'static,
    Rsp: DeserializeOwned + Send + 'static,
{
    type Output = Result<ClientStream<Req, Rsp>>;
    type IntoFuture = BoxFuture<'static, Result<ClientStream<Req, Rsp>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (tx, rx, ()) = self.open().await?;
            Ok(ClientStream::new(tx, rx))
        })
    }
}

impl<Req, Rsp> IntoFuture for Call<Req, Rsp, Bidirectional>
where
    Req: Serialize + Send + 'static,
    Rsp: DeserializeOwned + Send + 'static,
{
    type Output = Result<Stream<Rsp, Req>>;
    type IntoFuture = BoxFuture<'static, Result<Stream<Rsp, Req>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let (tx, rx, ()) = self.open().await?;
            Ok(Stream::new(rx, tx))
        })
    }
}

impl<Req, Rsp, M: Mode> fmt::Debug for Call<Req, Rsp, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
