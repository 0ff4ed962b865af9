//! Streaming endpoints: server, client and bidirectional streams.
//!
//! An endpoint's mode follows from its parameters:
//!
//! | signature | mode |
//! |---|---|
//! | `async fn f(&self, req: Req) -> Result<Rsp>` | unary |
//! | `async fn f(&self, req: Req, tx: Sender<Rsp>) -> Result<()>` | server stream |
//! | `async fn f(&self, rx: Receiver<Req>) -> Result<Rsp>` | client stream |
//! | `async fn f(&self, stream: Stream<Req, Rsp>) -> Result<()>` | bidirectional |
//! | `async fn f(&self, rx: Receiver<Req>, tx: Sender<Rsp>) -> Result<()>` | bidirectional |
//!
//! (each may take `ctx: &Context` after `&self`). The halves of a stream are
//! independent: one task may send while another receives, with no lock
//! between them.
//!
//! # Wire
//!
//! A stream is one HTTP/2 (h2c) request on the same port as unary calls,
//! with the same headers (`Content-Type`, `Micro-Endpoint`, `Micro-Service`,
//! `Micro-Id`, `Timeout`, metadata) plus `Micro-Stream`. Both bodies carry
//! length-prefixed frames: 1 flag byte (0), a big-endian `u32` length, and
//! the message encoded with the `Content-Type` codec. The caller ends its
//! side by ending the request body. The server ends the response body with
//! trailers: `Micro-Status: ok`, or `Micro-Error` with Go Micro's error JSON.
//! An error before the stream starts (unknown endpoint, bad content type) is
//! an ordinary error response. HTTP/2 flow control and bounded buffers keep
//! a slow reader from making the sender's memory grow.

pub(crate) mod frame;

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::poll_fn;
use http_body::Frame;
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::frame::{FrameReader, FrameSender};
use crate::codec::Codec;
use crate::error::Error;

/// How many messages a sender may get ahead of the transport.
pub(crate) const BUFFER: usize = 16;

/// The mode of an endpoint.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    Bidirectional,
}

impl Kind {
    /// Whether the endpoint streams in either direction.
    pub fn is_stream(self) -> bool {
        self != Kind::Unary
    }
}

/// Sends messages of type `T` to the other end of a stream. Sending waits
/// while the other end is not reading, so memory stays bounded. Clones send
/// on the same stream; the stream's side closes when every clone is dropped
/// (on the server: when the handler returns).
pub struct Sender<T> {
    tx: FrameSender,
    codec: Codec,
    kind: PhantomData<fn(T)>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            codec: self.codec,
            kind: PhantomData,
        }
    }
}

impl<T: Serialize> Sender<T> {
    pub(crate) fn new(tx: FrameSender, codec: Codec) -> Self {
        Sender {
            tx,
            codec,
            kind: PhantomData,
        }
    }

    /// Sends one message; fails once the other end has gone.
    pub async fn send(&self, message: T) -> Result<(), Error> {
        let payload = self
            .codec
            .encode(&message)
            .map_err(|e| e.into_error(crate::error::SERVER_ID))?;
        self.tx
            .send(Frame::data(frame::encode(&payload)))
            .await
            .map_err(|_| Error::new("go.micro.stream", "the other end of the stream has gone", 499))
    }
}

impl<T> Sender<T> {
    /// Whether the other end has gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the other end has gone (the caller cancelled, or the
    /// server finished).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// Receives messages of type `T` from the other end of a stream.
pub struct Receiver<T> {
    reader: FrameReader,
    codec: Codec,
    kind: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Receiver<T> {
    pub(crate) fn new(reader: FrameReader, codec: Codec) -> Self {
        Receiver {
            reader,
            codec,
            kind: PhantomData,
        }
    }

    /// The next message, `Ok(None)` once the other end has finished, or
    /// the error that ended the stream.
    ///
    /// ```no_run
    /// # async fn demo(mut rx: micro::stream::Receiver<String>) -> micro::Result<()> {
    /// while let Some(message) = rx.recv().await? {
    ///     println!("{message}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<Option<T>, Error> {
        poll_fn(|cx| self.poll_message(cx)).await.transpose()
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>> {
        self.reader.poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.and_then(|payload: Bytes| {
                    self.codec
                        .decode(&payload)
                        .map_err(|e| e.into_error(crate::error::SERVER_ID))
                })
            })
        })
    }
}

impl<T: DeserializeOwned> futures_util::Stream for Receiver<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// Both directions of a stream: receives `In`, sends `Out`. Split it to
/// send and receive from different tasks.
pub struct Stream<In, Out> {
    rx: Receiver<In>,
    tx: Option<Sender<Out>>,
}

impl<In: DeserializeOwned, Out: Serialize> Stream<In, Out> {
    pub(crate) fn new(rx: Receiver<In>, tx: Sender<Out>) -> Self {
        Stream { rx, tx: Some(tx) }
    }

    /// The next message, `Ok(None)` at the end (see [`Receiver::recv`]).
    pub async fn recv(&mut self) -> Result<Option<In>, Error> {
        self.rx.recv().await
    }

    /// Sends one message (see [`Sender::send`]).
    pub async fn send(&self, message: Out) -> Result<(), Error> {
        match &self.tx {
            Some(tx) => tx.send(message).await,
            None => Err(Error::bad_request(
                "go.micro.stream",
                "this side of the stream was closed with close_send",
            )),
        }
    }

    /// Ends this side: the other end sees the end of the stream after the
    /// messages already sent. Receiving goes on.
    pub fn close_send(&mut self) {
        self.tx = None;
    }

    /// The two halves, to use from different tasks. A half-closed stream
    /// gives a sender that is already closed.
    pub fn split(self) -> (Sender<Out>, Receiver<In>) {
        let tx = self.tx.unwrap_or_else(|| {
            let (tx, _) = tokio::sync::mpsc::channel(1);
            Sender::new(tx, self.rx.codec)
        });
        (tx, self.rx)
    }
}

impl<In, Out> fmt::Debug for Stream<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("send_open", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

/// The caller's side of a client stream: send requests, then close and
/// receive the one response.
pub struct ClientStream<Req, Rsp> {
    tx: Sender<Req>,
    rx: Receiver<Rsp>,
}

impl<Req: Serialize, Rsp: DeserializeOwned> ClientStream<Req, Rsp> {
    pub(crate) fn new(tx: Sender<Req>, rx: Receiver<Rsp>) -> Self {
        ClientStream { tx, rx }
    }

    /// Sends one request.
    pub async fn send(&self, message: Req) -> Result<(), Error> {
        self.tx.send(message).await
    }

    /// Ends the requests and waits for the response.
    pub async fn close_and_recv(self) -> Result<Rsp, Error> {
        let ClientStream { tx, mut rx } = self;
        drop(tx);
        let response = rx.recv().await?.ok_or_else(|| {
            Error::internal_server_error(crate::error::CLIENT_ID, "the stream ended without a response")
        })?;
        // Read to the end, so the server's status is seen.
        while rx.recv().await?.is_some() {}
        Ok(response)
    }
}

impl<Req, Rsp> fmt::Debug for ClientStream<Req, Rsp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream").finish_non_exhaustive()
    }
}
