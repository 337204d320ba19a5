//! Length-prefix framing, the same for both protocol versions (spec §1.3): an unsigned LEB128
//! varint holding the body length N, then N bytes of body.
//!
//! Like go-msgio, the reader requires the minimal varint, refuses bodies over
//! [`MAX_MESSAGE_SIZE`] (a body of exactly that size is accepted) before buffering them, and
//! this codec also refuses an empty body, which no Go peer sends and the 2.0.0 decoder could
//! not read. [`decode_frame`] and [`FrameDecoder`] are incremental and pure: they look at what
//! has arrived so far and say whether a frame is complete.

use bytes::{BufMut, Bytes, BytesMut};

/// The largest body go-graphsync accepts: `1 << 22` = 4,194,304 bytes.
pub const MAX_MESSAGE_SIZE: usize = 1 << 22;

/// The longest varint that can hold a length: Go's reader accepts at most 9 bytes.
pub(crate) const MAX_VARINT_LEN: usize = 9;

/// Limits of the framing layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameConfig {
    /// The largest body accepted or written, in bytes. Default: [`MAX_MESSAGE_SIZE`], the
    /// limit every Go peer enforces; raising it only makes sense between Rust peers.
    pub max_message_size: usize,
}

impl FrameConfig {
    /// This configuration with another body limit.
    pub fn with_max_message_size(self, max_message_size: usize) -> Self {
        FrameConfig { max_message_size }
    }
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig {
            max_message_size: MAX_MESSAGE_SIZE,
        }
    }
}

/// Why bytes are not a frame, or a body cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces (or the body has) more bytes than allowed.
    #[error("message of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// A zero length prefix, or an empty body to write.
    #[error("empty message")]
    Empty,
    /// The length prefix is not in its shortest form.
    #[error("length prefix is not a minimal varint")]
    NonMinimalLength,
    /// The length prefix runs over the nine bytes Go reads.
    #[error("length prefix is longer than {MAX_VARINT_LEN} bytes")]
    LengthOverflow,
}

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// More bytes are needed; `needed` is a lower bound of how many, when the length prefix is
    /// complete, or 1 while it is not.
    Incomplete {
        /// How many more bytes at least.
        needed: usize,
    },
    /// A whole frame.
    Complete {
        /// The body.
        body: &'a [u8],
        /// The bytes the frame takes in the buffer: prefix and body.
        consumed: usize,
    },
}

/// Looks for one frame at the start of `buf`.
///
/// # Errors
/// [`FrameError`] as soon as the length prefix is known to be bad: not minimal, over nine
/// bytes, zero, or above the limit. The body is not waited for in those cases.
///
/// # Examples
/// ```
/// use graphsync::codec::frame::{Frame, FrameConfig, decode_frame};
///
/// let config = FrameConfig::default();
/// assert_eq!(decode_frame(&[0x03, b'a'], &config)?, Frame::Incomplete { needed: 2 });
/// assert_eq!(
///     decode_frame(&[0x03, b'a', b'b', b'c', 0x01], &config)?,
///     Frame::Complete { body: b"abc", consumed: 4 }
/// );
/// # Ok::<(), graphsync::codec::frame::FrameError>(())
/// ```
pub fn decode_frame<'a>(buf: &'a [u8], config: &FrameConfig) -> Result<Frame<'a>, FrameError> {
    let Some((len, prefix_len)) = read_length(buf)? else {
        return Ok(Frame::Incomplete { needed: 1 });
    };
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let body_len = usize::try_from(len)
        .ok()
        .filter(|&body_len| body_len <= config.max_message_size)
        .ok_or(FrameError::TooLarge {
            len,
            limit: config.max_message_size,
        })?;
    let total = prefix_len + body_len;
    match buf.get(prefix_len..total) {
        Some(body) => Ok(Frame::Complete {
            body,
            consumed: total,
        }),
        None => Ok(Frame::Incomplete {
            needed: total - buf.len(),
        }),
    }
}

/// Appends `body` to `out` with its length prefix.
///
/// # Errors
/// [`FrameError::Empty`] for an empty body and [`FrameError::TooLarge`] for one over the
/// limit; `out` is then unchanged.
pub fn write_frame(
    body: &[u8],
    config: &FrameConfig,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let mut prefix = unsigned_varint::encode::u64_buffer();
    let prefix = length_prefix(body.len(), config, &mut prefix)?;
    out.reserve(prefix.len() + body.len());
    out.put_slice(prefix);
    out.put_slice(body);
    Ok(())
}

/// The length prefix of a body of `len` bytes, encoded into `buf`, for writers that send the
/// prefix and the body without joining them.
///
/// # Errors
/// As [`write_frame`]: [`FrameError::Empty`] for 0, [`FrameError::TooLarge`] over the limit.
pub(crate) fn length_prefix<'a>(
    len: usize,
    config: &FrameConfig,
    buf: &'a mut [u8; 10],
) -> Result<&'a [u8], FrameError> {
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let wide = u64::try_from(len).expect("a length in memory fits in u64");
    if len > config.max_message_size {
        return Err(FrameError::TooLarge {
            len: wide,
            limit: config.max_message_size,
        });
    }
    Ok(unsigned_varint::encode::u64(wide, buf))
}

/// An incremental frame reader over a growing buffer, for a stream reader that appends what
/// arrives and asks for frames.
///
/// # Examples
/// ```
/// use bytes::BytesMut;
/// use graphsync::codec::frame::FrameDecoder;
///
/// let mut decoder = FrameDecoder::default();
/// let mut buf = BytesMut::from(&[0x02, b'h'][..]);
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(b"i");
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"hi"[..]));
/// assert!(buf.is_empty());
/// # Ok::<(), graphsync::codec::frame::FrameError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct FrameDecoder {
    config: FrameConfig,
}

impl FrameDecoder {
    /// A decoder with these limits.
    pub fn new(config: FrameConfig) -> Self {
        FrameDecoder { config }
    }

    /// Takes the next whole frame off the front of `buf` and returns its body, or returns
    /// `None` and leaves `buf` alone when more bytes are needed. When the length prefix is
    /// complete it reserves room for the rest of the frame (never more than the limit).
    ///
    /// # Errors
    /// As [`decode_frame`]. After an error the stream is unusable, as in Go.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match decode_frame(buf, &self.config)? {
            Frame::Incomplete { needed } => {
                buf.reserve(needed);
                Ok(None)
            }
            Frame::Complete { body, consumed } => {
                let prefix_len = consumed - body.len();
                let mut frame = buf.split_to(consumed);
                Ok(Some(frame.split_off(prefix_len).freeze()))
            }
        }
    }
}

/// Reads the length prefix: `None` while it is incomplete, else the length and prefix size.
fn read_length(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    match unsigned_varint::decode::u64(buf) {
        Ok((len, rest)) => Ok(Some((len, buf.len() - rest.len()))),
        Err(unsigned_varint::decode::Error::NotMinimal) => Err(FrameError::NonMinimalLength),
        Err(unsigned_varint::decode::Error::Insufficient) if buf.len() < MAX_VARINT_LEN => Ok(None),
        Err(_) => Err(FrameError::LengthOverflow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_prefix_over_the_limit_before_the_body_arrives() {
        let config = FrameConfig::default();
        // 4 MiB + 1 = 0x400001 → 81 80 80 02.
        assert_eq!(
            decode_frame(&[0x81, 0x80, 0x80, 0x02], &config),
            Err(FrameError::TooLarge {
                len: (1 << 22) + 1,
                limit: 1 << 22
            })
        );
        assert_eq!(
            decode_frame(&[0x80, 0x80, 0x80, 0x02], &config),
            Ok(Frame::Incomplete { needed: 1 << 22 })
        );
    }

    #[test]
    fn an_incomplete_prefix_needs_more() {
        assert_eq!(
            decode_frame(&[], &FrameConfig::default()),
            Ok(Frame::Incomplete { needed: 1 })
        );
        assert_eq!(
            decode_frame(&[0x80, 0x80], &FrameConfig::default()),
            Ok(Frame::Incomplete { needed: 1 })
        );
    }

    #[test]
    fn rejects_prefixes_over_nine_bytes() {
        let prefix = [0xff; 9];
        assert_eq!(
            decode_frame(&prefix, &FrameConfig::default()),
            Err(FrameError::LengthOverflow)
        );
    }

    #[test]
    fn write_refuses_empty_and_oversized_bodies() {
        let config = FrameConfig::default().with_max_message_size(3);
        let mut out = BytesMut::new();
        assert_eq!(write_frame(b"", &config, &mut out), Err(FrameError::Empty));
        assert_eq!(
            write_frame(b"abcd", &config, &mut out),
            Err(FrameError::TooLarge { len: 4, limit: 3 })
        );
        assert!(out.is_empty());
        write_frame(b"abc", &config, &mut out).expect("at the limit");
        assert_eq!(&out[..], [0x03, b'a', b'b', b'c']);
    }
}
