//! Opening a stream: pick a node, send the call's headers over HTTP/2, and
//! hand back the two typed halves once the server has answered.
//!
//! Only attempts that never reached a server are retried; once a stream is
//! open, its failures reach the caller. A stream has no deadline unless the
//! call sets a timeout or inherits a deadline (as in Go Micro, where a
//! stream timeout is off by default); opening it is bounded by the request
//! timeout.

use http::HeaderValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::retry::backoff;
use super::{CallOptions, Client, request_headers};
use crate::codec::Codec;
use crate::context::Context;
use crate::error::Result;
use crate::headers::names;
use crate::stream::frame::{ChannelBody, FrameReader, Side};
use crate::stream::{BUFFER, Receiver, Sender};
use crate::transport::Delivery;

impl Client {
    /// Opens a stream of `endpoint` on a node of `service`.
    pub(crate) async fn open<Req, Rsp>(
        &self,
        service: &str,
        endpoint: &str,
        options: &CallOptions,
    ) -> Result<(Sender<Req>, Receiver<Rsp>)>
    where
        Req: Serialize,
        Rsp: DeserializeOwned,
    {
        let context = options.context.clone().or_else(Context::current);
        let now = Instant::now();
        let inherited = context.as_ref().and_then(Context::deadline);
        let own = options.timeout.and_then(|t| now.checked_add(t));
        let deadline = match (own, inherited) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let open_by = now + self.inner.options.request_timeout;
        let open_by = deadline.map_or(open_by, |d| d.min(open_by));
        let retries = options.retries.unwrap_or(self.inner.options.retries);
        let mut tried = Vec::new();
        let mut attempt = 0;
        loop {
            let mut target = self.resolve(service, options, &tried).await?;
            // The legacy JSON-RPC envelope cannot carry a stream.
            if target.codec == Codec::JsonRpc {
                target.codec = Codec::Json;
            }
            let sequence = self.inner.sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut headers = request_headers(
                service,
                endpoint,
                Some(sequence),
                target.codec,
                deadline.map(|d| d.saturating_duration_since(Instant::now())),
                context.as_ref(),
                options,
            );
            headers.insert(names::STREAM, HeaderValue::from(sequence));
            let (tx, rx) = mpsc::channel(BUFFER);
            let opened = self
                .inner
                .transport
                .open_stream(target.address(), headers, ChannelBody::new(rx), open_by)
                .await;
            self.mark(service, &target, opened.as_ref().err());
            match opened {
                Ok(body) => {
                    let reader = FrameReader::new(body, self.inner.options.response_limit, Side::Client);
                    return Ok((Sender::new(tx, target.codec), Receiver::new(reader, target.codec)));
                }
                Err(failure) => {
                    debug!(attempt, node = %target.key(), code = failure.error.code, detail = %failure.error.detail, "stream did not open");
                    let wait = backoff(attempt + 1);
                    let retry =
                        failure.delivery == Delivery::NotSent && attempt < retries && Instant::now() + wait < open_by;
                    if !retry {
                        return Err(failure.error);
                    }
                    tokio::time::sleep(wait).await;
                    tried.push(target.key().to_owned());
                    attempt += 1;
                }
            }
        }
    }
}
