//! A unary call: the request encoded once per codec, sent over the
//! transport of the picked node, the response decoded; or, with
//! [`local_calls`](super::ClientOptions::local_calls), run in place on a
//! server of this process, the request and response values moved rather than
//! encoded.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Either;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::attempt::{Attempt, Attempts, Step, deadline};
use super::layered::{Attempted, CallAttempt, Payload};
use super::retry::{RetryPolicy, retryable};
use super::target::Target;
use super::{CallOptions, Client};
use crate::BoxFuture;
use crate::codec::{Codec, jsonrpc};
use crate::context::Context;
use crate::error::{CLIENT_ID, Error, Result};
use crate::server::handler::Message;
use crate::server::{Shared, Unary};
use crate::trace;
use crate::transport::{Answer, Delivery, Failure, Outbound, call_metadata};

impl Client {
    /// Makes a unary call: attempts on nodes the selector picks, retried as
    /// the options allow, until one answers or the deadline passes.
    ///
    /// It takes what it needs by value, so that the boxed future holds each
    /// once. With [`ClientOptions::local_calls`](super::ClientOptions::local_calls),
    /// a call first looks for its node in this process, and boxes the
    /// network's part (most of a call's state) apart, so that an in-process
    /// call does not carry it.
    pub(crate) fn invoke<Req, Rsp>(
        self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        request: Req,
        options: CallOptions,
    ) -> BoxFuture<'static, Result<Rsp>>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + Send + 'static,
    {
        let span = trace::call_span(&service, &endpoint);
        // Untraced, the call's future is boxed as it is, no wider.
        if span.is_disabled() {
            return match self.inner.options.local_calls {
                true => Box::pin(self.local_first(service, endpoint, request, options)),
                false => Box::pin(self.remote(service, endpoint, request, options)),
            };
        }
        let mut options = options;
        options.context = crate::context::continuing(&span, options.context);
        match self.inner.options.local_calls {
            true => Box::pin(trace::traced(
                span,
                self.local_first(service, endpoint, request, options),
            )),
            false => Box::pin(trace::traced(span, self.remote(service, endpoint, request, options))),
        }
    }

    async fn remote<Req, Rsp>(
        self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        request: Req,
        options: CallOptions,
    ) -> Result<Rsp>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let context = options.context.clone().or_else(Context::current);
        let call = self.unary_attempts(&service, &endpoint, &options, context.as_ref());
        self.attempt(&call, None, &mut self.unary_attempt(&options, request))
            .await
    }

    async fn local_first<Req, Rsp>(
        self,
        service: Arc<str>,
        endpoint: Cow<'static, str>,
        request: Req,
        options: CallOptions,
    ) -> Result<Rsp>
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let context = options.context.clone().or_else(Context::current);
        let call = self.unary_attempts(&service, &endpoint, &options, context.as_ref());
        let target = self.resolve(call.service, call.options, &[]).await?;
        if let Some(shared) = self.local_server(&target) {
            let answered = self.run_in_place(&shared, &call, &target, 0, request).await;
            self.mark(call.service, &target, None);
            return answered;
        }
        let mut attempt = self.unary_attempt(&options, request);
        Box::pin(self.attempt(&call, Some(target), &mut attempt)).await
    }

    /// What every attempt of a unary call starting now shares: it has the
    /// call's timeout (the client's request timeout by default), or the
    /// context's deadline when that is earlier.
    #[expect(
        clippy::ptr_arg,
        reason = "client layers get the endpoint's name owned: a clone of the Cow"
    )]
    fn unary_attempts<'a>(
        &self,
        service: &'a Arc<str>,
        endpoint: &'a Cow<'static, str>,
        options: &'a CallOptions,
        context: Option<&'a Context>,
    ) -> Attempts<'a> {
        let started = Instant::now();
        let timeout = options.timeout.unwrap_or(self.inner.options.request_timeout);
        Attempts {
            service,
            endpoint,
            options,
            context,
            started,
            deadline: deadline(Some(timeout), context, started).unwrap_or(started),
        }
    }

    fn unary_attempt<'p, Req, Rsp>(&'p self, options: &'p CallOptions, request: Req) -> UnaryAttempt<'p, Req, Rsp> {
        UnaryAttempt {
            request: Some(request),
            encoded: None,
            idempotent: options.idempotent,
            policy: options.retry.as_ref().unwrap_or(&self.inner.options.retry),
            response: PhantomData,
        }
    }

    /// An attempt run in place on `shared`: through the client's layers
    /// when it has any, else straight to the handler.
    fn run_in_place<Req, Rsp>(
        &self,
        shared: &Arc<Shared>,
        call: &Attempts<'_>,
        target: &Target,
        attempt: u32,
        request: Req,
    ) -> impl Future<Output = Result<Rsp>> + 'static
    where
        Req: Serialize + Send + 'static,
        Rsp: DeserializeOwned + 'static,
    {
        let Some(stack) = &self.inner.layers else {
            return Either::Left(in_place(shared, call, target.codec, request));
        };
        let outbound = Outbound {
            address: target.address(),
            service: call.service,
            endpoint: call.endpoint,
            codec: target.codec,
            go_micro: None,
            timeout: Some(call.deadline.saturating_duration_since(Instant::now())),
            deadline: call.deadline,
            context: call.context,
            metadata: &call.options.metadata,
        };
        let payload = Payload::InPlace {
            shared: Arc::clone(shared),
            request: Message::Value(Box::new(request)),
        };
        let attempted = Client::through(stack, CallAttempt::new(self, call, target, attempt, &outbound, payload));
        let codec = target.codec;
        Either::Right(attempted.map(move |attempted| {
            let message = attempted.map_err(|failure| failure.error)?.into_message()?;
            decode_message(codec, message)
        }))
    }

    /// This process's server of the picked node, when calls to it run in place.
    fn local_server(&self, target: &Target) -> Option<Arc<Shared>> {
        if !self.inner.options.local_calls {
            return None;
        }
        self.inner.options.in_process.find(target.address())
    }
}

/// The attempts of one unary call.
struct UnaryAttempt<'p, Req, Rsp> {
    /// Taken by an attempt that runs in place.
    request: Option<Req>,
    /// The request in the codec of the last attempt, kept for the next.
    encoded: Option<(Codec, Bytes)>,
    idempotent: bool,
    policy: &'p RetryPolicy,
    response: PhantomData<fn() -> Rsp>,
}

impl<Req, Rsp> Attempt for UnaryAttempt<'_, Req, Rsp>
where
    Req: Serialize + Send + 'static,
    Rsp: DeserializeOwned + 'static,
{
    type Output = Rsp;

    async fn once(&mut self, client: &Client, call: &Attempts<'_>, target: &Target, attempt: u32) -> Step<Rsp> {
        if let Some(shared) = client.local_server(target)
            && let Some(request) = self.request.take()
        {
            // Not retried: the answer came from the handler itself (or a
            // layer took the request).
            return match client.run_in_place(&shared, call, target, attempt, request).await {
                Ok(response) => Step::Done(response),
                Err(error) => Step::Final(error),
            };
        }
        let body = match self.body(target.codec, call.endpoint) {
            Ok(body) => body,
            Err(error) => return Step::Final(error),
        };
        let go_micro = (!target.micro).then(|| client.inner.sequence.fetch_add(1, Ordering::Relaxed));
        let now = if attempt == 0 { call.started } else { Instant::now() };
        let outbound = Outbound {
            address: target.address(),
            service: call.service,
            endpoint: call.endpoint,
            codec: target.codec,
            go_micro,
            timeout: Some(call.deadline.saturating_duration_since(now)),
            deadline: call.deadline,
            context: call.context,
            metadata: &call.options.metadata,
        };
        let answer = match &client.inner.layers {
            None => client.transport(target).round_trip(outbound, body).await,
            Some(stack) => {
                let layered = CallAttempt::new(client, call, target, attempt, &outbound, Payload::Encoded(body));
                Client::through(stack, layered).await.and_then(Attempted::into_answer)
            }
        };
        match answer.and_then(|answer| decode_response(target.codec, answer)) {
            Ok(response) => Step::Done(response),
            Err(failure) => Step::Failed(failure),
        }
    }

    fn retryable(&self, failure: &Failure) -> bool {
        retryable(failure, self.idempotent, self.policy)
    }
}

impl<Req: Serialize, Rsp> UnaryAttempt<'_, Req, Rsp> {
    /// The request in `codec`, encoded once for every attempt in that codec.
    fn body(&mut self, codec: Codec, endpoint: &str) -> Result<Bytes> {
        match (&self.encoded, &self.request) {
            (Some((encoded, body)), _) if *encoded == codec => Ok(body.clone()),
            (_, Some(request)) => {
                let body = encode_request(codec, endpoint, request)?;
                self.encoded = Some((codec, body.clone()));
                Ok(body)
            }
            (_, None) => Err(Error::internal_server_error(CLIENT_ID, "the request was already taken")),
        }
    }
}

/// An attempt on a node this process serves: the handler runs here, and the
/// request and response values move rather than being encoded. Not an
/// `async fn`, whose future would keep its arguments beside the call it
/// builds from them.
fn in_place<Req, Rsp>(
    shared: &Shared,
    call: &Attempts<'_>,
    codec: Codec,
    request: Req,
) -> impl Future<Output = Result<Rsp>> + 'static
where
    Req: Serialize + Send + 'static,
    Rsp: DeserializeOwned + 'static,
{
    let metadata = call_metadata(call.context, &call.options.metadata);
    let unary = Unary::in_place(
        shared,
        call.service,
        codec,
        metadata,
        call.deadline,
        Message::Value(Box::new(request)),
    );
    crate::server::respond(shared, call.endpoint, unary)
        .map(move |response| decode_message(codec, response?.into_message()))
}

/// The response of a call run in place, as a `Rsp`.
fn decode_message<Rsp: DeserializeOwned + 'static>(codec: Codec, message: Message) -> Result<Rsp> {
    let decoded = match message {
        Message::Value(value) => crate::local::take::<Rsp>(value, codec),
        Message::Body(body) => codec.decode(&body),
    };
    decoded.map_err(|e| Error::internal_server_error(CLIENT_ID, format!("cannot decode the response: {e}")))
}

fn encode_request<Req: Serialize + ?Sized>(codec: Codec, endpoint: &str, request: &Req) -> Result<Bytes> {
    let body = codec.encode(request).map_err(|e| e.into_error(CLIENT_ID))?;
    match codec {
        Codec::JsonRpc => jsonrpc::encode_request(endpoint, 0, &body).map_err(|e| e.into_error(CLIENT_ID)),
        _ => Ok(Bytes::from(body)),
    }
}

fn decode_response<Rsp: DeserializeOwned>(codec: Codec, inbound: Answer) -> std::result::Result<Rsp, Failure> {
    let codec = inbound.codec.unwrap_or(codec);
    let decoded = match codec {
        Codec::JsonRpc => match jsonrpc::decode_response(&inbound.body) {
            Ok(Ok(result)) => Codec::Json.decode(&result),
            Ok(Err(text)) => return Err(Failure::new(Error::parse(&text), Delivery::Answered)),
            Err(e) => Err(e),
        },
        _ => codec.decode(&inbound.body),
    };
    decoded.map_err(|e| {
        Failure::new(
            Error::internal_server_error(CLIENT_ID, format!("cannot decode the response: {e}")),
            Delivery::Answered,
        )
    })
}
