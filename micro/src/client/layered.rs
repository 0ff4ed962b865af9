//! What client layers see: a [`CallAttempt`] on its way to a node, after
//! the node was picked, and the innermost service that sends it (see
//! [`crate::middleware`]). A retried call passes through the layers once per
//! attempt.
//!
//! The attempt loop goes by how far a failed attempt got, which the stack's
//! [`Error`] does not say: the innermost service writes it in a report the
//! attempt shares with the loop. An attempt that never reached it was
//! refused by a layer (not sent); one that reached it without an outcome
//! was given up by a layer (delivery unknown).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::ServiceExt;

use super::Client;
use super::attempt::Attempts;
use super::target::Target;
use crate::BoxFuture;
use crate::codec::Codec;
use crate::context::Context;
use crate::error::{CLIENT_ID, Error};
use crate::metadata::Metadata;
use crate::middleware::Boxed;
use crate::registry::Node;
use crate::server::handler::Message;
use crate::server::{Shared, Unary};
use crate::stream::frame::{ChannelBody, FrameReader};
use crate::transport::{Answer, Delivery, Failure, Outbound, Transport};

/// The stack of a client's layers around each call attempt.
pub type AttemptService = Boxed<CallAttempt, Attempted>;

/// One attempt of a call on its way to the node picked for it: Go Micro's
/// `CallFunc` arguments. A layer may read it, add metadata, and pass it on
/// (or answer with an error without passing it on).
pub struct CallAttempt {
    client: Client,
    target: Target,
    service: Arc<str>,
    endpoint: Cow<'static, str>,
    attempt: u32,
    context: Option<Context>,
    metadata: Metadata,
    codec: Codec,
    /// Go Micro's call number, for a Go Micro node.
    go_micro: Option<u64>,
    /// The timeout sent with the call.
    timeout: Option<Duration>,
    deadline: Instant,
    payload: Payload,
    report: Report,
}

/// What an attempt carries.
pub(super) enum Payload {
    /// A unary request, encoded.
    Encoded(bytes::Bytes),
    /// A unary request run in place on a server of this process.
    InPlace { shared: Arc<Shared>, request: Message },
    /// A stream's request frames, which follow once it is open.
    Stream(ChannelBody),
}

impl CallAttempt {
    /// The `attempt`th attempt of `call` on `target`, sent as `outbound`
    /// says.
    pub(super) fn new(
        client: &Client,
        call: &Attempts<'_>,
        target: &Target,
        attempt: u32,
        outbound: &Outbound<'_>,
        payload: Payload,
    ) -> Self {
        CallAttempt {
            client: client.clone(),
            target: target.clone(),
            service: Arc::clone(call.service),
            endpoint: call.endpoint.clone(),
            attempt,
            context: call.context.cloned(),
            metadata: call.options.metadata.clone(),
            codec: outbound.codec,
            go_micro: outbound.go_micro,
            timeout: outbound.timeout,
            deadline: outbound.deadline,
            payload,
            report: Report::default(),
        }
    }

    /// The service called.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service called, shared.
    pub(crate) fn service_shared(&self) -> &Arc<str> {
        &self.service
    }

    /// The endpoint called, as the call names it.
    pub(crate) fn endpoint_name(&self) -> &Cow<'static, str> {
        &self.endpoint
    }

    /// The endpoint called (`Service.Method`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The registry node picked, unless the call has fixed addresses.
    pub fn node(&self) -> Option<&Node> {
        self.target.node()
    }

    /// The `host:port` the attempt goes to.
    pub fn address(&self) -> &str {
        self.target.address()
    }

    /// Which attempt of the call this is: 0 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the attempt gives up (for a stream: by when it must be open).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The context the call inherits metadata and deadline from, if any.
    pub fn context(&self) -> Option<&Context> {
        self.context.as_ref()
    }

    /// The call's own metadata, sent after the context's (and winning over
    /// it).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The call's own metadata, to add headers to (a trace id, a token).
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The codec of the request.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Whether the attempt opens a stream.
    pub fn is_stream(&self) -> bool {
        matches!(self.payload, Payload::Stream(_))
    }

    /// Whether the attempt runs in place on a server of this process (see
    /// [`ClientOptions::local_calls`](super::ClientOptions::local_calls)).
    pub fn in_process(&self) -> bool {
        matches!(self.payload, Payload::InPlace { .. })
    }

    /// Sends the attempt: what the attempt does without layers.
    async fn transmit(self) -> Result<Attempted, Error> {
        let CallAttempt {
            client,
            target,
            service,
            endpoint,
            context,
            metadata,
            codec,
            go_micro,
            timeout,
            deadline,
            payload,
            report,
            ..
        } = self;
        report.set(Report::REACHED);
        let outbound = Outbound {
            address: target.address(),
            service: &service,
            endpoint: &endpoint,
            codec,
            go_micro,
            timeout,
            deadline,
            context: context.as_ref(),
            metadata: &metadata,
        };
        let outcome = match payload {
            Payload::Encoded(body) => client
                .transport(&target)
                .round_trip(outbound, body)
                .await
                .map(Kind::Answer),
            Payload::Stream(requests) => Transport::open_stream(&client.inner.http, outbound, requests, deadline)
                .await
                .map(Kind::Stream),
            Payload::InPlace { shared, request } => {
                let unary = Unary::in_place(&shared, &service, codec, outbound.metadata(), deadline, request);
                crate::server::respond(&shared, &endpoint, unary)
                    .await
                    .map(|response| Kind::InPlace(response.into_message()))
                    .map_err(|error| Failure::new(error, Delivery::Answered))
            }
        };
        match outcome {
            Ok(kind) => {
                report.set(Report::ANSWERED);
                Ok(Attempted(kind))
            }
            Err(failure) => {
                report.set(Report::of(failure.delivery));
                Err(failure.error)
            }
        }
    }
}

impl fmt::Debug for CallAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallAttempt")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .field("address", &self.address())
            .field("attempt", &self.attempt)
            .field("metadata", &self.metadata)
            .field("stream", &self.is_stream())
            .field("in_process", &self.in_process())
            .finish_non_exhaustive()
    }
}

/// What a successful attempt gives: the node's answer, which the client
/// decodes once the layers have returned it.
pub struct Attempted(Kind);

enum Kind {
    /// A unary call's encoded response.
    Answer(Answer),
    /// The response of a call run in place.
    InPlace(Message),
    /// An open stream's response frames.
    Stream(FrameReader),
}

impl Attempted {
    /// The encoded response of a unary call over a transport.
    pub(super) fn into_answer(self) -> Result<Answer, Failure> {
        match self.0 {
            Kind::Answer(answer) => Ok(answer),
            _ => Err(mismatch()),
        }
    }

    /// The response of a unary call run in place.
    pub(super) fn into_message(self) -> Result<Message, Error> {
        match self.0 {
            Kind::InPlace(message) => Ok(message),
            _ => Err(mismatch().error),
        }
    }

    /// The response frames of a stream.
    pub(super) fn into_stream(self) -> Result<FrameReader, Failure> {
        match self.0 {
            Kind::Stream(reader) => Ok(reader),
            _ => Err(mismatch()),
        }
    }
}

/// A layer answered an attempt with the response of another attempt.
fn mismatch() -> Failure {
    let error = Error::internal_server_error(CLIENT_ID, "a client layer answered with another call's response");
    Failure::new(error, Delivery::Answered)
}

impl fmt::Debug for Attempted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Kind::Answer(_) => "answer",
            Kind::InPlace(_) => "in process",
            Kind::Stream(_) => "stream",
        };
        f.debug_tuple("Attempted").field(&kind).finish()
    }
}

/// How far an attempt got, as the innermost service reports it.
#[derive(Clone, Default)]
struct Report(Arc<AtomicU8>);

impl Report {
    const UNREACHED: u8 = 0;
    const REACHED: u8 = 1;
    const NOT_SENT: u8 = 2;
    const UNKNOWN: u8 = 3;
    const ANSWERED: u8 = 4;

    fn of(delivery: Delivery) -> u8 {
        match delivery {
            Delivery::NotSent => Self::NOT_SENT,
            Delivery::Unknown => Self::UNKNOWN,
            Delivery::Answered => Self::ANSWERED,
        }
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Relaxed);
    }

    /// The failure of an attempt the layers failed with `error`.
    fn failure(&self, error: Error) -> Failure {
        let delivery = match self.0.load(Ordering::Relaxed) {
            Self::UNREACHED => {
                return Failure {
                    error,
                    delivery: Delivery::NotSent,
                    refused: true,
                };
            }
            Self::NOT_SENT => Delivery::NotSent,
            Self::ANSWERED => Delivery::Answered,
            // Reached, and given up by a layer or failed on the way.
            _ => Delivery::Unknown,
        };
        Failure::new(error, delivery)
    }
}

impl Client {
    /// Runs `attempt` through the client's layers, `stack`: the response,
    /// or the failure and how far the attempt got.
    pub(super) fn through(
        stack: &AttemptService,
        attempt: CallAttempt,
    ) -> BoxFuture<'static, Result<Attempted, Failure>> {
        let report = attempt.report.clone();
        let stack = stack.clone();
        Box::pin(async move { stack.oneshot(attempt).await.map_err(|error| report.failure(error)) })
    }
}

/// The innermost attempt service: sends the attempt over the node's
/// transport, or runs it in place.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transmit;

impl tower::Service<CallAttempt> for Transmit {
    type Response = Attempted;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Attempted, Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, attempt: CallAttempt) -> Self::Future {
        Box::pin(attempt.transmit())
    }
}
