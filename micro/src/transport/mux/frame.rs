//! The frames of the mux transport and their decoder.
//!
//! Every frame is `length: u32` (of what follows), `id: u32`, `kind: u8`,
//! then the payload; integers are big-endian, strings are a `u16` length and
//! UTF-8 bytes.
//!
//! | kind | payload |
//! |---|---|
//! | `CALL` | `timeout_ns: u64` (0: none), content type, service, endpoint, `pairs: u16` metadata pairs (key, value), then the body |
//! | `REPLY` | content type, then the body |
//! | `ERROR` | the Go Micro error JSON |
//! | `GOAWAY` | nothing; `id` is the last call the server read and will answer |

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// A call from client to server.
pub(crate) const CALL: u8 = 1;
/// A successful answer.
pub(crate) const REPLY: u8 = 2;
/// A failed answer.
pub(crate) const ERROR: u8 = 3;
/// The server stops reading calls; those after `id` were not read.
pub(crate) const GOAWAY: u8 = 4;

/// `length`, `id` and `kind`.
const HEAD: usize = 4 + 4 + 1;

/// Payloads up to this size are copied out of the read buffer.
const COPY_BELOW: usize = 4096;

/// Room allowed beyond the body limit for a call's header fields.
pub(crate) const HEADER_ALLOWANCE: usize = 64 * 1024;

/// One decoded frame, or the head of one too large to take.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A frame within the limit.
    Frame { id: u32, kind: u8, payload: Bytes },
    /// A frame over the limit: its payload is skipped.
    TooLarge { id: u32, len: usize },
}

/// Splits a byte stream into frames; skips over frames longer than the
/// limit instead of failing the connection, so one oversized call costs
/// only that call.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    limit: usize,
    skipping: usize,
}

impl FrameDecoder {
    /// A decoder refusing payloads over `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        FrameDecoder { limit, skipping: 0 }
    }
}

impl Decoder for FrameDecoder {
    type Item = Inbound;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Inbound>> {
        if self.skipping > 0 {
            let n = self.skipping.min(src.len());
            src.advance(n);
            self.skipping -= n;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        if src.len() < HEAD {
            src.reserve(HEAD);
            return Ok(None);
        }
        let len = read_u32(&src[0..4]) as usize;
        let id = read_u32(&src[4..8]);
        let kind = src[8];
        let Some(payload_len) = len.checked_sub(HEAD - 4) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("mux frame length {len} is shorter than a frame head"),
            ));
        };
        if payload_len > self.limit {
            src.advance(HEAD);
            let n = payload_len.min(src.len());
            src.advance(n);
            self.skipping = payload_len - n;
            return Ok(Some(Inbound::TooLarge { id, len: payload_len }));
        }
        if src.len() < HEAD + payload_len {
            src.reserve(HEAD + payload_len - src.len());
            return Ok(None);
        }
        // Small payloads are copied out, so the read buffer is never shared
        // and is reused instead of reallocated; large ones are split off.
        let payload = if payload_len <= COPY_BELOW {
            let payload = Bytes::copy_from_slice(&src[HEAD..HEAD + payload_len]);
            src.advance(HEAD + payload_len);
            payload
        } else {
            let mut frame = src.split_to(HEAD + payload_len);
            frame.advance(HEAD);
            frame.freeze()
        };
        Ok(Some(Inbound::Frame { id, kind, payload }))
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |n, b| (n << 8) | u32::from(*b))
}

/// Writes one frame: reserve with [`FrameWriter::new`], add fields, then
/// [`finish`](FrameWriter::finish).
pub(crate) struct FrameWriter {
    buf: BytesMut,
}

impl FrameWriter {
    /// Starts a frame of `kind` for call `id`, with room for `capacity` more bytes.
    pub(crate) fn new(id: u32, kind: u8, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(HEAD + capacity);
        buf.put_u32(0);
        buf.put_u32(id);
        buf.put_u8(kind);
        FrameWriter { buf }
    }

    /// Sets the call id.
    /// The frame's size so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn set_id(&mut self, id: u32) {
        self.buf[4..8].copy_from_slice(&id.to_be_bytes());
    }

    /// Adds a `u64`.
    pub(crate) fn u64(&mut self, n: u64) {
        self.buf.put_u64(n);
    }

    /// Adds a `u16`.
    pub(crate) fn u16(&mut self, n: u16) {
        self.buf.put_u16(n);
    }

    /// Adds a string; `false` (and nothing written) if it is longer than 64 KiB.
    pub(crate) fn str(&mut self, s: &str) -> bool {
        let Ok(len) = u16::try_from(s.len()) else { return false };
        self.buf.put_u16(len);
        self.buf.put_slice(s.as_bytes());
        true
    }

    /// Adds raw bytes (the body, always last).
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.put_slice(b);
    }

    /// The frame, with its length filled in.
    pub(crate) fn finish(mut self) -> Bytes {
        let len = u32::try_from(self.buf.len() - 4).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_be_bytes());
        self.buf.freeze()
    }
}

/// A frame that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("malformed mux frame: {0}")]
pub(crate) struct Malformed(&'static str);

/// Reads a payload's fields in order.
pub(crate) struct FieldReader {
    payload: Bytes,
}

impl FieldReader {
    pub(crate) fn new(payload: Bytes) -> Self {
        FieldReader { payload }
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Malformed> {
        if self.payload.len() < 8 {
            return Err(Malformed("truncated number"));
        }
        Ok(self.payload.get_u64())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Malformed> {
        if self.payload.len() < 2 {
            return Err(Malformed("truncated count"));
        }
        Ok(self.payload.get_u16())
    }

    /// A string field, zero-copy.
    pub(crate) fn str(&mut self) -> Result<Str, Malformed> {
        let len = usize::from(self.u16()?);
        if self.payload.len() < len {
            return Err(Malformed("truncated string"));
        }
        let bytes = self.payload.split_to(len);
        std::str::from_utf8(&bytes).map_err(|_| Malformed("string is not UTF-8"))?;
        Ok(Str(bytes))
    }

    /// What is left: the body.
    pub(crate) fn rest(self) -> Bytes {
        self.payload
    }
}

/// A UTF-8 string field, sharing the frame's buffer.
#[derive(Clone, Debug)]
pub(crate) struct Str(Bytes);

impl Str {
    pub(crate) fn as_str(&self) -> &str {
        // Checked in FieldReader::str.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The header fields of a call frame.
#[derive(Debug)]
pub(crate) struct CallHead {
    pub(crate) timeout: Option<Duration>,
    pub(crate) content_type: Str,
    pub(crate) service: Str,
    pub(crate) endpoint: Str,
    pub(crate) metadata: Vec<(Str, Str)>,
}

impl CallHead {
    /// Reads a call's fields; the reader is left at the body.
    pub(crate) fn read(reader: &mut FieldReader) -> Result<CallHead, Malformed> {
        let timeout = match reader.u64()? {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        };
        let content_type = reader.str()?;
        let service = reader.str()?;
        let endpoint = reader.str()?;
        let pairs = reader.u16()?;
        let mut metadata = Vec::with_capacity(usize::from(pairs).min(64));
        for _ in 0..pairs {
            metadata.push((reader.str()?, reader.str()?));
        }
        Ok(CallHead {
            timeout,
            content_type,
            service,
            endpoint,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_frame(id: u32, body: &[u8]) -> Bytes {
        let mut w = FrameWriter::new(id, CALL, 64);
        w.u64(1_500_000_000);
        w.str("application/json");
        w.str("greeter");
        w.str("Greeter.Hello");
        w.u16(1);
        w.str("X-User");
        w.str("alice");
        w.bytes(body);
        w.finish()
    }

    #[test]
    fn a_call_round_trips_through_the_decoder() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&call_frame(7, b"{}"));
        let Some(Inbound::Frame { id, kind, payload }) = FrameDecoder::new(1024).decode(&mut buf).unwrap() else {
            panic!("no frame");
        };
        assert_eq!((id, kind), (7, CALL));
        let mut reader = FieldReader::new(payload);
        let head = CallHead::read(&mut reader).unwrap();
        assert_eq!(head.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(head.endpoint.as_str(), "Greeter.Hello");
        assert_eq!(head.metadata[0].1.as_str(), "alice");
        assert_eq!(&reader.rest()[..], b"{}");
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_frames_wait_for_the_rest() {
        let frame = call_frame(1, b"{}");
        let mut decoder = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&frame[..5]);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&frame[5..]);
        assert!(matches!(
            decoder.decode(&mut buf).unwrap(),
            Some(Inbound::Frame { id: 1, .. })
        ));
    }

    #[test]
    fn an_oversized_frame_is_skipped_and_the_next_one_read() {
        let big = call_frame(1, &[b'x'; 100]);
        let small = call_frame(2, b"{}");
        let mut decoder = FrameDecoder::new(90);
        // The big frame arrives in two pieces, the small one right after.
        let mut buf = BytesMut::from(&big[..40]);
        assert!(matches!(
            decoder.decode(&mut buf).unwrap(),
            Some(Inbound::TooLarge { id: 1, .. })
        ));
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&big[40..]);
        buf.extend_from_slice(&small);
        assert!(matches!(
            decoder.decode(&mut buf).unwrap(),
            Some(Inbound::Frame { id: 2, .. })
        ));
    }

    #[test]
    fn truncated_fields_are_malformed_not_panics() {
        let frame = call_frame(1, b"");
        for cut in HEAD..frame.len() - 1 {
            let mut reader = FieldReader::new(frame.slice(HEAD..cut));
            assert!(CallHead::read(&mut reader).is_err(), "cut at {cut}");
        }
        let mut bad = BytesMut::new();
        bad.put_u32(2);
        bad.put_u32(0);
        bad.put_u8(CALL);
        assert!(FrameDecoder::new(10).decode(&mut bad).is_err());
    }
}
