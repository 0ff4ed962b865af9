//! Length-prefixed frames over an HTTP/2 body, and the trailers that end a
//! stream.
//!
//! A frame is 1 flag byte (0: an uncompressed message), a 4-byte big-endian
//! length, and that many bytes of the message encoded with the stream's
//! codec. The answering side ends its body with trailers: `Micro-Status: ok`,
//! or `Micro-Error` holding Go Micro's error JSON.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::headers::names;

/// Bytes before a frame's payload.
pub(crate) const HEADER_LEN: usize = 5;
/// The trailer that marks a clean end of a stream.
pub(crate) const STATUS: HeaderName = HeaderName::from_static("micro-status");

/// The sending half of a body: frames go out as they are produced, with
/// backpressure from HTTP/2 flow control through a bounded channel.
pub(crate) type FrameSender = mpsc::Sender<Frame<Bytes>>;

/// Encodes one message as a frame.
pub(crate) fn encode(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(HEADER_LEN + payload.len());
    frame.put_u8(0);
    // Payloads are bounded by the message limit, far below 4 GiB.
    frame.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    frame.put_slice(payload);
    frame.freeze()
}

/// The trailers of a stream that ended with `outcome`.
pub(crate) fn trailers(outcome: &Result<(), Error>) -> HeaderMap {
    let mut map = HeaderMap::new();
    match outcome {
        Ok(()) => {
            map.insert(STATUS, HeaderValue::from_static("ok"));
        }
        Err(error) => {
            let value = HeaderValue::from_str(&error.to_json())
                .unwrap_or_else(|_| HeaderValue::from_static(r#"{"code":500,"detail":"unprintable error"}"#));
            map.insert(names::ERROR[0].clone(), value);
        }
    }
    map
}

/// The outcome trailers announce: `Ok` for `Micro-Status: ok`.
fn outcome_of(trailers: Option<&HeaderMap>) -> Result<(), Error> {
    let Some(trailers) = trailers else {
        return Err(Error::internal_server_error(
            crate::error::CLIENT_ID,
            "the stream ended without its trailers: the peer closed it early",
        ));
    };
    if let Some(error) = trailers.get(&names::ERROR[0]).and_then(|v| v.to_str().ok()) {
        return Err(Error::parse(error));
    }
    if trailers.get(STATUS).is_some_and(|v| v == "ok") {
        return Ok(());
    }
    Err(Error::internal_server_error(
        crate::error::CLIENT_ID,
        "the stream ended with unknown trailers",
    ))
}

/// Which end of a call reads: a server reads requests (whose body simply
/// ends), a client reads responses (which end with trailers).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Reads frames off an HTTP body.
pub(crate) struct FrameReader {
    body: Incoming,
    buf: BytesMut,
    limit: usize,
    side: Side,
    trailers: Option<HeaderMap>,
    ended: bool,
}

impl FrameReader {
    pub(crate) fn new(body: Incoming, limit: usize, side: Side) -> Self {
        FrameReader {
            body,
            buf: BytesMut::new(),
            limit,
            side,
            trailers: None,
            ended: false,
        }
    }

    /// The next message's bytes; `None` at a clean end.
    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            match self.buffered() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
            if self.ended {
                if !self.buf.is_empty() {
                    self.buf.clear();
                    return Poll::Ready(Some(Err(self.error(400, "the stream ended in the middle of a frame"))));
                }
                return Poll::Ready(match self.side {
                    Side::Server => None,
                    Side::Client => outcome_of(self.trailers.as_ref()).err().map(Err),
                });
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => self.trailers = frame.into_trailers().ok(),
                },
                Some(Err(e)) => {
                    self.ended = true;
                    self.buf.clear();
                    let what = if e.is_canceled() || self.side == Side::Server {
                        "the peer cancelled the stream"
                    } else {
                        "the stream broke"
                    };
                    return Poll::Ready(Some(Err(self.error(499, &format!("{what}: {e}")))));
                }
                None => self.ended = true,
            }
        }
    }

    /// A complete frame from the buffer, if one is there.
    fn buffered(&mut self) -> Result<Option<Bytes>, Error> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let flags = self.buf[0];
        if flags != 0 {
            return Err(self.error(
                400,
                &format!("unsupported frame flags {flags:#04x}: compression is not supported"),
            ));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.limit {
            return Err(self.error(
                413,
                &format!(
                    "a stream message of {len} bytes is over the limit of {} bytes",
                    self.limit
                ),
            ));
        }
        if self.buf.len() < HEADER_LEN + len {
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    fn error(&self, code: i32, detail: &str) -> Error {
        let id = match self.side {
            Side::Server => crate::error::SERVER_ID,
            Side::Client => crate::error::CLIENT_ID,
        };
        Error::new(id, detail, code)
    }
}

/// The most message bytes gathered into one HTTP/2 DATA frame.
const COALESCE: usize = 64 * 1024;

/// A body fed from a channel of frames. Messages already waiting are sent
/// together in one DATA frame: fewer, larger frames cost less, and HTTP/2
/// peers (h2's DATA frame budget) end connections that receive too many
/// tiny frames they have not yet read.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Frame<Bytes>>,
    /// Trailers met while gathering, sent after the gathered data.
    trailers: Option<Frame<Bytes>>,
}

impl ChannelBody {
    pub(crate) fn new(rx: mpsc::Receiver<Frame<Bytes>>) -> Self {
        ChannelBody { rx, trailers: None }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(trailers)));
        }
        let first = match ready!(self.rx.poll_recv(cx)) {
            None => return Poll::Ready(None),
            Some(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
            },
        };
        let mut gathered: Option<BytesMut> = None;
        while gathered.as_ref().map_or(first.len(), BytesMut::len) < COALESCE {
            let Ok(next) = self.rx.try_recv() else { break };
            match next.into_data() {
                Ok(data) => gathered
                    .get_or_insert_with(|| {
                        let mut buf = BytesMut::with_capacity((first.len() + data.len()) * 2);
                        buf.extend_from_slice(&first);
                        buf
                    })
                    .extend_from_slice(&data),
                Err(trailers) => {
                    self.trailers = Some(trailers);
                    break;
                }
            }
        }
        let data = gathered.map_or(first, BytesMut::freeze);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_a_flag_and_a_big_endian_length() {
        assert_eq!(&encode(b"abc")[..], b"\x00\x00\x00\x00\x03abc");
        assert_eq!(&encode(b"")[..], b"\x00\x00\x00\x00\x00");
    }

    #[test]
    fn trailers_say_ok_or_carry_the_error() {
        assert_eq!(outcome_of(Some(&trailers(&Ok(())))), Ok(()));
        let error = Error::not_found("s", "gone");
        assert_eq!(outcome_of(Some(&trailers(&Err(error.clone())))), Err(error));
        assert_eq!(outcome_of(None).unwrap_err().code, 500);
    }
}
