//! Opening a stream: pick a node, send the call's headers over HTTP/2, and
//! hand back the two typed halves once the server has answered.
//!
//! Only attempts that never reached a server are retried; once a stream is
//! open, its failures reach the caller. A stream has no deadline unless the
//! call sets a timeout or inherits a deadline (as in Go Micro, where a
//! stream timeout is off by default); opening it is bounded by the request
//! timeout.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::attempt::{Attempt, Attempts, Step, deadline};
use super::layered::{Attempted, CallAttempt, Payload};
use super::target::Target;
use super::{CallOptions, Client};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Result;
use crate::stream::frame::{ChannelBody, FrameReader, FrameSender};
use crate::stream::{BUFFER, Receiver, Sender};
use crate::trace;
use crate::transport::{Delivery, Failure, Outbound, Transport};

impl Client {
    /// Opens a stream of `endpoint` on a node of `service`.
    #[expect(
        clippy::ptr_arg,
        reason = "client layers get the endpoint's name owned: a clone of the Cow"
    )]
    pub(crate) async fn open<Req, Rsp>(
        &self,
        service: &Arc<str>,
        endpoint: &Cow<'static, str>,
        options: &CallOptions,
    ) -> Result<(Sender<Req>, Receiver<Rsp>)>
    where
        Req: Serialize,
        Rsp: DeserializeOwned,
    {
        // The span covers the opening; the stream then lives on its own.
        let span = trace::call_span(service, endpoint);
        let context = crate::context::continuing(&span, options.context.clone()).or_else(Context::current);
        let started = Instant::now();
        let stream_deadline = deadline(options.timeout, context.as_ref(), started);
        let open_by = started + self.inner.options.request_timeout;
        let call = Attempts {
            service,
            endpoint,
            options,
            context: context.as_ref(),
            started,
            deadline: stream_deadline.map_or(open_by, |d| d.min(open_by)),
        };
        let mut opening = StreamOpen {
            deadline: stream_deadline,
        };
        let (tx, reader, codec) = trace::traced(span, self.attempt(&call, None, &mut opening)).await?;
        Ok((Sender::new(tx, codec), Receiver::new(reader, codec)))
    }
}

/// The attempts to open one stream.
struct StreamOpen {
    /// The stream's own deadline, if it has one.
    deadline: Option<Instant>,
}

impl Attempt for StreamOpen {
    type Output = (FrameSender, FrameReader, Codec);

    async fn once(
        &mut self,
        client: &Client,
        call: &Attempts<'_>,
        target: &Target,
        attempt: u32,
    ) -> Step<Self::Output> {
        // The legacy JSON-RPC envelope cannot carry a stream.
        let codec = match target.codec {
            Codec::JsonRpc => Codec::Json,
            codec => codec,
        };
        let outbound = Outbound {
            address: target.address(),
            service: call.service,
            endpoint: call.endpoint,
            codec,
            go_micro: Some(client.inner.sequence.fetch_add(1, Ordering::Relaxed)),
            timeout: self.deadline.map(|d| d.saturating_duration_since(Instant::now())),
            deadline: call.deadline,
            context: call.context,
            metadata: &call.options.metadata,
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        // Streams travel over HTTP/2 whatever the node's unary transport.
        let requests = ChannelBody::new(rx);
        let opened = match &client.inner.layers {
            None => Transport::open_stream(&client.inner.http, outbound, requests, call.deadline).await,
            Some(stack) => {
                let layered = CallAttempt::new(client, call, target, attempt, &outbound, Payload::Stream(requests));
                Client::through(stack, layered).await.and_then(Attempted::into_stream)
            }
        };
        match opened {
            Ok(reader) => Step::Done((tx, reader, codec)),
            Err(failure) => Step::Failed(failure),
        }
    }

    fn retryable(&self, failure: &Failure) -> bool {
        failure.delivery == Delivery::NotSent
    }
}
