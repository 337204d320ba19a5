//! Protocol ids and stream framing: reading and writing one length-prefixed Graphsync message on
//! an async byte stream (spec §1).
//!
//! A Graphsync stream carries many messages, each an unsigned-varint length followed by a body,
//! until the writer closes it: a DAG-CBOR body ([`codec::v2`](crate::codec::v2)) on
//! [`PROTOCOL_V2`], a protobuf body ([`codec::v1`](crate::codec::v1)) on [`PROTOCOL_V1`].
//! [`MessageReader`] reads them one at a time, buffering what arrived beyond the current frame
//! ([`MessageReader::read`] decodes 2.0.0; [`MessageReader::read_body`] hands over the body, for
//! 1.0.0 whose ids need the peer's map); [`write_message`] writes one 2.0.0 message and
//! [`write_body`] one encoded body. All use the framing of
//! [`codec::frame`](crate::codec::frame), so the 4 MiB limit is checked before anything is
//! allocated for the body.

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::codec::frame::{FrameConfig, FrameDecoder, FrameError, write_frame};
use crate::codec::{DecodeError, EncodeError, v2};
use crate::message::Message;

/// The protocol id of Graphsync 2.0.0 (DAG-CBOR messages).
pub const PROTOCOL_V2: StreamProtocol = StreamProtocol::new("/ipfs/graphsync/2.0.0");

/// The protocol id of Graphsync 1.0.0 (protobuf messages, [`codec::v1`](crate::codec::v1)).
pub const PROTOCOL_V1: StreamProtocol = StreamProtocol::new("/ipfs/graphsync/1.0.0");

/// Bytes asked of the stream per read call.
const READ_CHUNK: usize = 16 * 1024;

/// Why reading or writing one message on a stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The stream failed.
    #[error("stream i/o failed")]
    Io {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The length prefix was invalid or over the limit.
    #[error("invalid message frame")]
    Frame {
        /// The cause.
        #[source]
        source: FrameError,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a message ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the unfinished frame that had arrived.
        buffered: usize,
    },
    /// The message body did not decode.
    #[error("invalid message body")]
    Decode {
        /// The cause.
        #[source]
        source: DecodeError,
    },
    /// The message could not be encoded.
    #[error("message could not be encoded")]
    Encode {
        /// The cause.
        #[source]
        source: EncodeError,
    },
}

/// Reads length-prefixed 2.0.0 messages from one stream, one at a time.
#[derive(Debug)]
pub struct MessageReader {
    decoder: FrameDecoder,
    buffer: BytesMut,
}

impl MessageReader {
    /// A reader enforcing the frame limits of `config`.
    pub fn new(config: FrameConfig) -> Self {
        MessageReader {
            decoder: FrameDecoder::new(config),
            buffer: BytesMut::new(),
        }
    }

    /// Reads the next message; `Ok(None)` when the stream ended cleanly between messages.
    ///
    /// # Errors
    /// [`ProtocolError::Io`] when reading fails, [`ProtocolError::Frame`] for an invalid length
    /// prefix, [`ProtocolError::Truncated`] when the stream ends inside a frame and
    /// [`ProtocolError::Decode`] for an invalid body. After an error the stream should be
    /// dropped: its framing can no longer be trusted.
    pub async fn read<S>(&mut self, io: &mut S) -> Result<Option<Message>, ProtocolError>
    where
        S: AsyncRead + Unpin,
    {
        match self.read_body(io).await? {
            Some(body) => v2::decode(&body)
                .map(Some)
                .map_err(|source| ProtocolError::Decode { source }),
            None => Ok(None),
        }
    }

    /// Reads the next frame's body without decoding it (for 1.0.0 bodies, which need the
    /// peer's id map); `Ok(None)` when the stream ended cleanly between messages.
    ///
    /// # Errors
    /// As [`MessageReader::read`], except [`ProtocolError::Decode`].
    pub async fn read_body<S>(&mut self, io: &mut S) -> Result<Option<Bytes>, ProtocolError>
    where
        S: AsyncRead + Unpin,
    {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            if let Some(body) = self
                .decoder
                .decode(&mut self.buffer)
                .map_err(|source| ProtocolError::Frame { source })?
            {
                return Ok(Some(body));
            }
            let read = io
                .read(&mut chunk)
                .await
                .map_err(|source| ProtocolError::Io { source })?;
            if read == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtocolError::Truncated {
                        buffered: self.buffer.len(),
                    })
                };
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

impl Default for MessageReader {
    fn default() -> Self {
        MessageReader::new(FrameConfig::default())
    }
}

/// Writes an already encoded body with its length prefix and flushes the stream.
///
/// # Errors
/// [`ProtocolError::Frame`] when it is over the limit of `config`, [`ProtocolError::Io`] when
/// writing fails.
pub async fn write_body<S>(
    io: &mut S,
    body: &[u8],
    config: &FrameConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    let mut framed = BytesMut::with_capacity(body.len() + 10);
    write_frame(body, config, &mut framed).map_err(|source| ProtocolError::Frame { source })?;
    io.write_all(&framed)
        .await
        .map_err(|source| ProtocolError::Io { source })?;
    io.flush()
        .await
        .map_err(|source| ProtocolError::Io { source })
}

/// Encodes `message` as 2.0.0, writes it with its length prefix and flushes the stream.
///
/// # Errors
/// [`ProtocolError::Encode`] when the message cannot be encoded, [`ProtocolError::Frame`] when
/// it is over the limit of `config`, [`ProtocolError::Io`] when writing fails.
pub async fn write_message<S>(
    io: &mut S,
    message: &Message,
    config: &FrameConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    let mut body = BytesMut::new();
    v2::encode(message, &mut body).map_err(|source| ProtocolError::Encode { source })?;
    let mut framed = BytesMut::with_capacity(body.len() + 10);
    write_frame(&body, config, &mut framed).map_err(|source| ProtocolError::Frame { source })?;
    io.write_all(&framed)
        .await
        .map_err(|source| ProtocolError::Io { source })?;
    io.flush()
        .await
        .map_err(|source| ProtocolError::Io { source })
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::io::Cursor;

    use super::*;
    use crate::message::{Request, RequestId, Response, ResponseStatus};

    fn sample(n: u8) -> Message {
        let root: cid::Cid = "bafyreiaeth2oqylkuauom7tbqesf4jlc37dk27v4e4zggaaeccx5riac5e"
            .parse()
            .expect("a valid cid literal");
        let selector = ipld_dagcbor::decode(&[0xa1, 0x61, b'.', 0xa0]).expect("a valid selector");
        Message::new()
            .with_request(Request::new(RequestId::new([n; 16]), root, selector))
            .with_response(Response::new(
                RequestId::new([n + 1; 16]),
                ResponseStatus::RequestCompletedFull,
            ))
    }

    #[test]
    fn many_messages_on_one_stream_read_back_in_order_then_eof() {
        let mut wire = Cursor::new(Vec::new());
        let config = FrameConfig::default();
        for n in 0..3 {
            block_on(write_message(&mut wire, &sample(n), &config)).expect("writes");
        }
        let mut io = Cursor::new(wire.into_inner());
        let mut reader = MessageReader::default();
        for n in 0..3 {
            let got = block_on(reader.read(&mut io)).expect("reads");
            assert_eq!(got, Some(sample(n)));
        }
        assert_eq!(block_on(reader.read(&mut io)).expect("clean eof"), None);
    }

    /// A reader that hands out one byte per call, to exercise partial frames.
    struct Trickle(Cursor<Vec<u8>>);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let len = buf.len().min(1);
            std::pin::Pin::new(&mut self.0).poll_read(cx, &mut buf[..len])
        }
    }

    #[test]
    fn byte_by_byte_delivery_reassembles_frames() {
        let mut wire = Cursor::new(Vec::new());
        let config = FrameConfig::default();
        block_on(write_message(&mut wire, &sample(7), &config)).expect("writes");
        block_on(write_message(&mut wire, &sample(9), &config)).expect("writes");
        let mut io = Trickle(Cursor::new(wire.into_inner()));
        let mut reader = MessageReader::default();
        assert_eq!(
            block_on(reader.read(&mut io)).expect("reads"),
            Some(sample(7))
        );
        assert_eq!(
            block_on(reader.read(&mut io)).expect("reads"),
            Some(sample(9))
        );
        assert_eq!(block_on(reader.read(&mut io)).expect("eof"), None);
    }

    #[test]
    fn eof_inside_a_frame_is_truncated() {
        let mut wire = Cursor::new(Vec::new());
        block_on(write_message(
            &mut wire,
            &sample(1),
            &FrameConfig::default(),
        ))
        .expect("writes");
        let mut bytes = wire.into_inner();
        bytes.truncate(bytes.len() - 1);
        let total = bytes.len();
        let mut reader = MessageReader::default();
        let err = block_on(reader.read(&mut Cursor::new(bytes))).expect_err("truncated");
        assert!(
            matches!(err, ProtocolError::Truncated { buffered } if buffered == total),
            "{err:?}"
        );
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_the_body_arrives() {
        // A varint of 4 MiB + 1, and nothing after it.
        let mut prefix = BytesMut::new();
        let mut varint = unsigned_varint::encode::usize_buffer();
        prefix.extend_from_slice(unsigned_varint::encode::usize(
            crate::codec::frame::MAX_MESSAGE_SIZE + 1,
            &mut varint,
        ));
        let mut reader = MessageReader::default();
        let err = block_on(reader.read(&mut Cursor::new(prefix.to_vec()))).expect_err("too large");
        assert!(matches!(err, ProtocolError::Frame { .. }), "{err:?}");
    }

    #[test]
    fn invalid_body_is_a_decode_error() {
        // A frame of length 1 holding a CBOR unsigned integer, not a message map.
        let mut reader = MessageReader::default();
        let err = block_on(reader.read(&mut Cursor::new(vec![1u8, 0x01]))).expect_err("invalid");
        assert!(matches!(err, ProtocolError::Decode { .. }), "{err:?}");
    }

    #[test]
    fn writing_over_the_limit_fails_without_writing() {
        let mut wire = Cursor::new(Vec::new());
        let config = FrameConfig::default().with_max_message_size(8);
        let err = block_on(write_message(&mut wire, &sample(1), &config)).expect_err("too big");
        assert!(matches!(err, ProtocolError::Frame { .. }), "{err:?}");
        assert!(wire.into_inner().is_empty());
    }
}
