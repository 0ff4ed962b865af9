//! Reading a whole HTTP body, at most a limit of bytes.

use std::error::Error as StdError;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

/// Why a body could not be read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is larger than the limit.
    TooLarge,
    /// The connection failed while it was read.
    Read(Box<dyn StdError + Send + Sync>),
}

/// The body's bytes. A body that arrives in one piece, as a small message
/// does, is that piece, neither copied nor gathered in a list.
pub(crate) async fn read<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut body = body;
    let mut first = Bytes::new();
    let mut more: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        // Trailers carry nothing a unary call reads.
        let Ok(data) = frame.map_err(|e| BodyError::Read(e.into()))?.into_data() else {
            continue;
        };
        let read = more.as_ref().map_or(first.len(), BytesMut::len);
        if data.len() > limit.saturating_sub(read) {
            return Err(BodyError::TooLarge);
        }
        match &mut more {
            Some(whole) => whole.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut whole = BytesMut::with_capacity(first.len() + data.len());
                whole.extend_from_slice(&first);
                whole.extend_from_slice(&data);
                more = Some(whole);
            }
        }
    }
    Ok(more.map_or(first, BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::*;

    fn frames(
        parts: &[&'static str],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        frames.push(Ok(Frame::trailers(http::HeaderMap::new())));
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn one_piece_is_kept_and_pieces_are_joined() {
        let one = read(frames(&["hello"]), 5).await.unwrap();
        assert_eq!(&one[..], b"hello");
        let joined = read(frames(&["he", "", "ll", "o"]), 5).await.unwrap();
        assert_eq!(&joined[..], b"hello");
        assert!(read(frames(&[]), 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        assert!(matches!(read(frames(&["hello"]), 4).await, Err(BodyError::TooLarge)));
        assert!(matches!(
            read(frames(&["he", "llo"]), 4).await,
            Err(BodyError::TooLarge)
        ));
        assert!(matches!(
            read(frames(&["he", "ll", "o"]), 4).await,
            Err(BodyError::TooLarge)
        ));
    }
}
