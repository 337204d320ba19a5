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
//!
//! Neither direction copies the bytes of a body: [`MessageReader`] has the stream write into
//! the very buffer the body is then split off, and the writers hand the body's own bytes to
//! the stream (see each item for how).

use bytes::{Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use crate::codec::frame::{
    Frame, FrameConfig, FrameError, MAX_VARINT_LEN, decode_frame, length_prefix,
};
use crate::codec::{DecodeError, EncodeError, v2};
use crate::message::Message;

/// The protocol id of Graphsync 2.0.0 (DAG-CBOR messages).
pub const PROTOCOL_V2: StreamProtocol = StreamProtocol::new("/ipfs/graphsync/2.0.0");

/// The protocol id of Graphsync 1.0.0 (protobuf messages, [`codec::v1`](crate::codec::v1)).
pub const PROTOCOL_V1: StreamProtocol = StreamProtocol::new("/ipfs/graphsync/1.0.0");

/// The most bytes a read call is given room for. The room is zeroed before the read (the
/// stream API takes initialised memory), so this bounds the memory touched ahead of what has
/// arrived: a peer announcing a 4 MiB frame and sending nothing costs at most this much.
const READ_STEP: usize = 64 * 1024;

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
///
/// The stream reads straight into the frame buffer, and each body is split off that buffer:
/// no byte of a body is copied between the stream and the returned [`Bytes`]. Once a frame's
/// length is known its whole size is reserved (within the frame limit) and reads stop at its
/// end; while the length prefix is incomplete a read asks for at most the longest prefix, so
/// at most a prefix's worth of the next frame (never block bytes) is moved when the buffer is
/// reallocated for that frame.
#[derive(Debug)]
pub struct MessageReader {
    config: FrameConfig,
    /// Bytes `..filled` arrived from the stream; any bytes after them are zeroed room for the
    /// next read.
    buffer: BytesMut,
    filled: usize,
}

impl MessageReader {
    /// A reader enforcing the frame limits of `config`.
    pub fn new(config: FrameConfig) -> Self {
        MessageReader {
            config,
            buffer: BytesMut::new(),
            filled: 0,
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
            Some(body) => v2::decode_shared(&body)
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
        loop {
            let needed = match decode_frame(&self.buffer[..self.filled], &self.config)
                .map_err(|source| ProtocolError::Frame { source })?
            {
                Frame::Complete { body, consumed } => {
                    let prefix_len = consumed - body.len();
                    let mut frame = self.buffer.split_to(consumed);
                    self.filled -= consumed;
                    return Ok(Some(frame.split_off(prefix_len).freeze()));
                }
                Frame::Incomplete { needed } => needed,
            };
            // Up to the frame's end once its length is known, else up to the longest prefix
            // (which may run past a frame smaller than a prefix, by less than a prefix).
            let want = needed
                .max(MAX_VARINT_LEN.saturating_sub(self.filled))
                .min(READ_STEP);
            let end = self.filled + want;
            if self.buffer.len() < end {
                if self.buffer.capacity() < self.filled + needed.max(want) {
                    // Room for the whole frame at once (`needed` is within the frame limit), so
                    // that it never moves while it arrives; only what arrived is carried over.
                    self.buffer.truncate(self.filled);
                    self.buffer.reserve(needed.max(want));
                }
                self.buffer.resize(end, 0);
            }
            let read = io
                .read(&mut self.buffer[self.filled..end])
                .await
                .map_err(|source| ProtocolError::Io { source })?;
            if read == 0 {
                return if self.filled == 0 {
                    Ok(None)
                } else {
                    Err(ProtocolError::Truncated {
                        buffered: self.filled,
                    })
                };
            }
            self.filled += read;
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
/// The prefix and the body go to the stream as two writes, so the body is not copied; `io` is
/// borrowed exclusively for the whole frame, so nothing else can be written between them. As
/// with any write, a call cancelled part way leaves the stream unusable.
///
/// # Errors
/// [`ProtocolError::Frame`] when it is over the limit of `config` (nothing is written),
/// [`ProtocolError::Io`] when writing fails.
pub async fn write_body<S>(
    io: &mut S,
    body: &[u8],
    config: &FrameConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    write_frame_of(io, &[body], config).await
}

/// Writes a body given as pieces (as [`v2::encode_pieces`] makes them) with its length prefix,
/// and flushes the stream: one frame, each piece handed to the stream as it is (not copied
/// into one buffer first). As [`write_body`] otherwise.
///
/// # Errors
/// As [`write_body`].
pub async fn write_pieces<S>(
    io: &mut S,
    pieces: &[Bytes],
    config: &FrameConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    let pieces: Vec<&[u8]> = pieces.iter().map(|piece| piece.as_ref()).collect();
    write_frame_of(io, &pieces, config).await
}

/// Writes the length prefix of the body made of `pieces`, then each piece, then flushes.
async fn write_frame_of<S>(
    io: &mut S,
    pieces: &[&[u8]],
    config: &FrameConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    let len = pieces.iter().map(|piece| piece.len()).sum();
    let mut prefix = unsigned_varint::encode::u64_buffer();
    let prefix = length_prefix(len, config, &mut prefix)
        .map_err(|source| ProtocolError::Frame { source })?;
    for bytes in std::iter::once(&prefix).chain(pieces) {
        io.write_all(bytes)
            .await
            .map_err(|source| ProtocolError::Io { source })?;
    }
    io.flush()
        .await
        .map_err(|source| ProtocolError::Io { source })
}

/// Encodes `message` as 2.0.0, writes it with its length prefix and flushes the stream.
///
/// Large blocks are not copied: the body is encoded as pieces ([`v2::encode_pieces`]) that go
/// to the stream as they are.
///
/// # Errors
/// [`ProtocolError::Encode`] when the message cannot be encoded, [`ProtocolError::Frame`] when
/// it is over the limit of `config` (nothing is written in either case), [`ProtocolError::Io`]
/// when writing fails.
pub async fn write_message<S>(
    io: &mut S,
    message: &Message,
    config: &FrameConfig,
) -> Result<(), ProtocolError>
where
    S: AsyncWrite + Unpin,
{
    let pieces = v2::encode_pieces(message).map_err(|source| ProtocolError::Encode { source })?;
    write_pieces(io, &pieces, config).await
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

    /// A message carrying one 256 KiB block and a small one.
    fn with_blocks() -> Message {
        let mut message = sample(3);
        let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 253) as u8).collect();
        let prefix = crate::CidPrefix::v1(0x55, 0x12, 32);
        message.blocks.push(crate::Block::new(prefix, data));
        message
            .blocks
            .push(crate::Block::new(prefix, b"a small block".to_vec()));
        message
    }

    /// Whether the address ranges `(start, len)` cover every byte of `target`.
    fn covered(ranges: &[(usize, usize)], target: &[u8]) -> bool {
        let mut ranges = ranges.to_vec();
        ranges.sort_unstable();
        let mut next = target.as_ptr() as usize;
        let end = next + target.len();
        for (start, len) in ranges {
            if start <= next && next < start + len {
                next = start + len;
            }
        }
        next >= end
    }

    /// A stream that hands out at most `step` bytes per read and records where it wrote them.
    struct RecordingReader {
        inner: Cursor<Vec<u8>>,
        step: usize,
        writes: Vec<(usize, usize)>,
    }

    impl AsyncRead for RecordingReader {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let len = buf.len().min(self.step);
            let target = &mut buf[..len];
            let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, target);
            if let std::task::Poll::Ready(Ok(read)) = poll {
                self.writes.push((target.as_ptr() as usize, read));
            }
            poll
        }
    }

    #[test]
    fn the_stream_reads_straight_into_the_returned_bodies() {
        let config = FrameConfig::default();
        let mut wire = Cursor::new(Vec::new());
        let bodies = [
            v2::to_vec(&with_blocks()).expect("encodes"),
            v2::to_vec(&sample(1)).expect("encodes"),
            v2::to_vec(&with_blocks()).expect("encodes"),
        ];
        for body in &bodies {
            block_on(write_body(&mut wire, body, &config)).expect("writes");
        }
        for step in [1000, 100_000] {
            let mut io = RecordingReader {
                inner: Cursor::new(wire.get_ref().clone()),
                step,
                writes: Vec::new(),
            };
            let mut reader = MessageReader::default();
            let mut received = Vec::new();
            while let Some(body) = block_on(reader.read_body(&mut io)).expect("reads") {
                received.push(body);
            }
            assert_eq!(received, bodies, "step {step}");
            for body in &received {
                // The reader asks for at most a prefix's worth of bytes before it knows a
                // frame's length, and moves them once when it makes room for the frame: up to
                // the first `MAX_VARINT_LEN - prefix` bytes of a body (its envelope header,
                // never block bytes). Every later byte must lie where the stream wrote it.
                let mut varint = unsigned_varint::encode::usize_buffer();
                let prefix = unsigned_varint::encode::usize(body.len(), &mut varint).len();
                let moved = MAX_VARINT_LEN - prefix;
                assert!(
                    covered(&io.writes, &body[moved..]),
                    "step {step}: a body of {} bytes was copied after the stream wrote it",
                    body.len()
                );
            }
        }
    }

    #[test]
    fn a_frame_announced_but_not_sent_touches_at_most_one_read_step() {
        // A 4 MiB length prefix and 3 bytes of body: the reader may reserve the frame but
        // zeroes room only one read step ahead of what arrived.
        let mut varint = unsigned_varint::encode::usize_buffer();
        let mut bytes =
            unsigned_varint::encode::usize(crate::codec::frame::MAX_MESSAGE_SIZE, &mut varint)
                .to_vec();
        bytes.extend_from_slice(b"abc");
        let arrived = bytes.len();
        let mut reader = MessageReader::default();
        let err = block_on(reader.read_body(&mut Cursor::new(bytes))).expect_err("truncated");
        assert!(
            matches!(err, ProtocolError::Truncated { buffered } if buffered == arrived),
            "{err:?}"
        );
        assert!(reader.buffer.len() <= arrived + READ_STEP);
    }

    /// A stream that records where the bytes it was given lay, and keeps them.
    #[derive(Default)]
    struct RecordingWriter {
        written: Vec<u8>,
        sources: Vec<(usize, usize)>,
    }

    impl AsyncWrite for RecordingWriter {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            // At most 10 000 bytes per call, as a transport with small frames would take.
            let taken = &buf[..buf.len().min(10_000)];
            self.sources.push((taken.as_ptr() as usize, taken.len()));
            self.written.extend_from_slice(taken);
            std::task::Poll::Ready(Ok(taken.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn write_body_hands_the_body_itself_to_the_stream() {
        let body = v2::to_vec(&with_blocks()).expect("encodes");
        let mut io = RecordingWriter::default();
        block_on(write_body(&mut io, &body, &FrameConfig::default())).expect("writes");
        let mut expected = BytesMut::new();
        crate::codec::frame::write_frame(&body, &FrameConfig::default(), &mut expected)
            .expect("frames");
        assert_eq!(io.written, expected);
        assert!(
            covered(&io.sources, &body),
            "the body was copied before it reached the stream"
        );
    }

    #[test]
    fn write_message_hands_large_blocks_themselves_to_the_stream() {
        let message = with_blocks();
        let mut io = RecordingWriter::default();
        block_on(write_message(&mut io, &message, &FrameConfig::default())).expect("writes");
        assert!(
            covered(&io.sources, &message.blocks[0].data),
            "the 256 KiB block was copied before it reached the stream"
        );
    }

    #[test]
    fn write_pieces_writes_one_frame_of_the_joined_pieces() {
        let pieces = v2::encode_pieces(&with_blocks()).expect("encodes");
        assert!(pieces.len() > 1, "{} pieces", pieces.len());
        let mut io = RecordingWriter::default();
        block_on(write_pieces(&mut io, &pieces, &FrameConfig::default())).expect("writes");
        let mut expected = BytesMut::new();
        crate::codec::frame::write_frame(&pieces.concat(), &FrameConfig::default(), &mut expected)
            .expect("frames");
        assert_eq!(io.written, expected);
        for piece in &pieces {
            assert!(covered(&io.sources, piece), "a piece was copied");
        }
    }

    #[test]
    fn write_message_writes_one_frame_of_the_v2_body() {
        let config = FrameConfig::default();
        for message in [with_blocks(), sample(4), Message::new()] {
            let mut io = RecordingWriter::default();
            block_on(write_message(&mut io, &message, &config)).expect("writes");
            let mut expected = BytesMut::new();
            crate::codec::frame::write_frame(
                &v2::to_vec(&message).expect("encodes"),
                &config,
                &mut expected,
            )
            .expect("frames");
            assert_eq!(io.written, expected);
        }
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
