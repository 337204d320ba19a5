//! The DAG-CBOR decoder: strict where Go is strict, lenient where Go is lenient, and bounded.

use std::collections::HashSet;

use bytes::Bytes;
use cid::Cid;

use crate::node::{Map, Node, Text};

/// Bounds that a decoder enforces before it allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest input accepted, in bytes. Default: 10 MiB, the decoding budget of Go's
    /// go-ipld-prime DAG-CBOR decoder.
    pub max_bytes: usize,
    /// The deepest nesting of lists, maps and tags accepted. Default: 128.
    pub max_depth: usize,
}

impl Limits {
    /// Default of [`Limits::max_bytes`]: 10 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 10 << 20;
    /// Default of [`Limits::max_depth`]: 128.
    pub const DEFAULT_MAX_DEPTH: usize = 128;

    /// These limits with another byte bound.
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        Limits { max_bytes, ..self }
    }

    /// These limits with another depth bound.
    pub fn with_max_depth(self, max_depth: usize) -> Self {
        Limits { max_depth, ..self }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Why some bytes are not one acceptable DAG-CBOR value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than [`Limits::max_bytes`].
    #[error("input of {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The input ended inside a value.
    #[error("input ends inside a value at offset {offset}")]
    UnexpectedEof {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// Bytes follow the one value the input should hold.
    #[error("{count} trailing bytes after the value, at offset {offset}")]
    TrailingBytes {
        /// Where the trailing bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
    /// Lists, maps and tags nest deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {limit} at offset {offset}")]
    TooDeep {
        /// Where the limit was passed.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// An indefinite-length item, which DAG-CBOR forbids.
    #[error("indefinite-length item at offset {offset}")]
    IndefiniteLength {
        /// Where the item starts.
        offset: usize,
    },
    /// A reserved additional-information value (28 to 30).
    #[error("reserved additional information {info} at offset {offset}")]
    ReservedInfo {
        /// The additional-information bits.
        info: u8,
        /// Where the item starts.
        offset: usize,
    },
    /// A CBOR tag other than 42.
    #[error("unsupported tag {tag} at offset {offset}")]
    UnsupportedTag {
        /// The tag number.
        tag: u64,
        /// Where the tag starts.
        offset: usize,
    },
    /// A simple value other than `false`, `true` and `null`.
    #[error("unsupported simple value {value} at offset {offset}")]
    UnsupportedSimple {
        /// The simple value.
        value: u64,
        /// Where it starts.
        offset: usize,
    },
    /// A tag-42 link that is not a byte string, or lacks the leading `0x00`.
    #[error("malformed link at offset {offset}: {reason}")]
    MalformedLink {
        /// Where the link's content starts.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A tag-42 link whose bytes are not one CID.
    #[error("invalid cid in link at offset {offset}")]
    InvalidCid {
        /// Where the link's content starts.
        offset: usize,
        /// The parse error.
        #[source]
        source: cid::Error,
    },
    /// A map key that is not a text string.
    #[error("map key at offset {offset} is not a string")]
    NonStringKey {
        /// Where the key starts.
        offset: usize,
    },
    /// The same key twice in one map.
    #[error("repeated map key {key} at offset {offset}")]
    DuplicateKey {
        /// The key, printed lossily.
        key: String,
        /// Where the second occurrence starts.
        offset: usize,
    },
}

/// Decodes exactly one value from `bytes` with the default [`Limits`].
///
/// # Errors
/// Any [`DecodeError`]: malformed CBOR, a feature DAG-CBOR forbids, trailing bytes, or a limit.
///
/// # Examples
/// ```
/// use ipld_dagcbor::{Node, decode};
///
/// let node = decode(&[0xa1, 0x61, 0x61, 0x01])?;
/// assert_eq!(node.as_map().and_then(|m| m.get("a")), Some(&Node::Integer(1)));
/// # Ok::<(), ipld_dagcbor::DecodeError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Node, DecodeError> {
    decode_with(bytes, &Limits::default())
}

/// Decodes exactly one value from `bytes` within `limits`.
///
/// # Errors
/// As [`decode`].
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Node, DecodeError> {
    check_size(bytes, limits)?;
    let (node, used) = decode_prefix(bytes, limits)?;
    check_all_used(bytes, used)?;
    Ok(node)
}

/// Decodes the first value of `bytes` within `limits`, and says how many bytes it took.
///
/// This reads concatenated values, as a data-transfer stream carries them. Only the first
/// [`Limits::max_bytes`] bytes are looked at.
///
/// # Errors
/// As [`decode`], except that bytes after the first value are left alone.
pub fn decode_prefix(bytes: &[u8], limits: &Limits) -> Result<(Node, usize), DecodeError> {
    prefix_of(bytes, None, limits)
}

/// Decodes exactly one value from `bytes` within `limits`, like [`decode_with`], except that
/// each byte string of at least [`SHARED_BYTES_MIN`] bytes is a slice of `bytes` (sharing its
/// buffer) instead of a copy; shorter ones are copied, so that a small value kept for long
/// does not hold a large buffer alive.
///
/// # Errors
/// As [`decode`].
///
/// # Examples
/// ```
/// use bytes::Bytes;
/// use ipld_dagcbor::{Node, SHARED_BYTES_MIN, decode_shared, Limits};
///
/// let mut cbor = vec![0x59, 0x10, 0x00]; // a byte string of 4096 bytes
/// cbor.resize(3 + 4096, 7);
/// let input = Bytes::from(cbor);
/// let Node::Bytes(value) = decode_shared(&input, &Limits::default())? else { panic!() };
/// assert!(value.len() >= SHARED_BYTES_MIN);
/// assert_eq!(value.as_ptr(), input[3..].as_ptr()); // not copied
/// # Ok::<(), ipld_dagcbor::DecodeError>(())
/// ```
pub fn decode_shared(bytes: &Bytes, limits: &Limits) -> Result<Node, DecodeError> {
    check_size(bytes, limits)?;
    let (node, used) = prefix_of(bytes, Some(bytes), limits)?;
    check_all_used(bytes, used)?;
    Ok(node)
}

/// The shortest byte string [`decode_shared`] shares instead of copying: 1 KiB.
pub const SHARED_BYTES_MIN: usize = 1024;

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

fn check_all_used(bytes: &[u8], used: usize) -> Result<(), DecodeError> {
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            offset: used,
            count: bytes.len() - used,
        });
    }
    Ok(())
}

/// The first value of `bytes`; byte strings are sliced from `shared` (which holds the same
/// bytes) where given and long enough.
fn prefix_of(
    bytes: &[u8],
    shared: Option<&Bytes>,
    limits: &Limits,
) -> Result<(Node, usize), DecodeError> {
    let window = &bytes[..bytes.len().min(limits.max_bytes)];
    let mut decoder = Decoder {
        input: window,
        shared,
        pos: 0,
        max_depth: limits.max_depth,
    };
    match decoder.value(0) {
        Ok(node) => Ok((node, decoder.pos)),
        Err(DecodeError::UnexpectedEof { .. }) if window.len() < bytes.len() => {
            Err(DecodeError::TooLarge {
                len: bytes.len(),
                limit: limits.max_bytes,
            })
        }
        Err(error) => Err(error),
    }
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_LIST: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;
const TAG_LINK: u64 = 42;

struct Decoder<'a> {
    input: &'a [u8],
    /// The input as a shared buffer, when long byte strings may be slices of it.
    shared: Option<&'a Bytes>,
    pos: usize,
    max_depth: usize,
}

impl<'a> Decoder<'a> {
    fn value(&mut self, depth: usize) -> Result<Node, DecodeError> {
        let start = self.pos;
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        if major == MAJOR_SIMPLE {
            return self.simple(info, start);
        }
        let arg = self.argument(info, start)?;
        match major {
            MAJOR_UNSIGNED => Ok(Node::Integer(i128::from(arg))),
            MAJOR_NEGATIVE => Ok(Node::Integer(-1 - i128::from(arg))),
            MAJOR_BYTES => self.byte_string(arg),
            MAJOR_TEXT => Ok(Node::String(Text::from_bytes(self.take(arg)?))),
            MAJOR_LIST => self.list(arg, depth, start),
            MAJOR_MAP => self.map(arg, depth, start),
            MAJOR_TAG => self.tag(arg, depth, start),
            _ => unreachable!("a major type has three bits and 7 is handled above"),
        }
    }

    fn byte_string(&mut self, len: u64) -> Result<Node, DecodeError> {
        let start = self.pos;
        let bytes = self.take(len)?;
        Ok(Node::Bytes(match self.shared {
            Some(shared) if bytes.len() >= SHARED_BYTES_MIN => {
                shared.slice(start..start + bytes.len())
            }
            _ => Bytes::copy_from_slice(bytes),
        }))
    }

    fn simple(&mut self, info: u8, start: usize) -> Result<Node, DecodeError> {
        match info {
            20 => Ok(Node::Bool(false)),
            21 => Ok(Node::Bool(true)),
            22 => Ok(Node::Null),
            25 => Ok(Node::Float(half_to_f64(u16::from_be_bytes(self.array()?)))),
            26 => Ok(Node::Float(f32::from_be_bytes(self.array()?).into())),
            27 => Ok(Node::Float(f64::from_be_bytes(self.array()?))),
            24 => Err(DecodeError::UnsupportedSimple {
                value: self.byte()?.into(),
                offset: start,
            }),
            28..=30 => Err(DecodeError::ReservedInfo {
                info,
                offset: start,
            }),
            31 => Err(DecodeError::IndefiniteLength { offset: start }),
            value => Err(DecodeError::UnsupportedSimple {
                value: value.into(),
                offset: start,
            }),
        }
    }

    fn list(&mut self, count: u64, depth: usize, start: usize) -> Result<Node, DecodeError> {
        self.enter(depth, start)?;
        let count = self.bounded_count(count, 1)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.value(depth + 1)?);
        }
        Ok(Node::List(items))
    }

    fn map(&mut self, count: u64, depth: usize, start: usize) -> Result<Node, DecodeError> {
        self.enter(depth, start)?;
        let count = self.bounded_count(count, 2)?;
        let mut seen = HashSet::with_capacity(count);
        let mut map = Map::new();
        for _ in 0..count {
            let key_offset = self.pos;
            let key = self.key()?;
            if !seen.insert(key) {
                let key = String::from_utf8_lossy(key).into_owned();
                return Err(DecodeError::DuplicateKey {
                    key,
                    offset: key_offset,
                });
            }
            let value = self.value(depth + 1)?;
            map.push_unchecked(Text::from_bytes(key), value);
        }
        Ok(Node::Map(map))
    }

    fn key(&mut self) -> Result<&'a [u8], DecodeError> {
        let offset = self.pos;
        let initial = self.byte()?;
        if initial >> 5 != MAJOR_TEXT {
            return Err(DecodeError::NonStringKey { offset });
        }
        let len = self.argument(initial & 0x1f, offset)?;
        self.take(len)
    }

    fn tag(&mut self, tag: u64, depth: usize, start: usize) -> Result<Node, DecodeError> {
        if tag != TAG_LINK {
            return Err(DecodeError::UnsupportedTag { tag, offset: start });
        }
        self.enter(depth, start)?;
        let offset = self.pos;
        let initial = self.byte()?;
        if initial >> 5 != MAJOR_BYTES {
            return Err(DecodeError::MalformedLink {
                offset,
                reason: "content is not bytes",
            });
        }
        let len = self.argument(initial & 0x1f, offset)?;
        let content = self.take(len)?;
        let Some((&0, mut cid_bytes)) = content.split_first() else {
            return Err(DecodeError::MalformedLink {
                offset,
                reason: "no leading 0x00 byte",
            });
        };
        let cid = Cid::read_bytes(&mut cid_bytes)
            .map_err(|source| DecodeError::InvalidCid { offset, source })?;
        if !cid_bytes.is_empty() {
            return Err(DecodeError::MalformedLink {
                offset,
                reason: "bytes after the cid",
            });
        }
        Ok(Node::Link(cid))
    }

    fn enter(&self, depth: usize, start: usize) -> Result<(), DecodeError> {
        if depth >= self.max_depth {
            return Err(DecodeError::TooDeep {
                offset: start,
                limit: self.max_depth,
            });
        }
        Ok(())
    }

    /// A list or map count, checked against what the input can still hold (each entry takes
    /// at least `min_entry_bytes`), so that a lying header cannot make us allocate.
    fn bounded_count(&self, count: u64, min_entry_bytes: usize) -> Result<usize, DecodeError> {
        let remaining = self.input.len() - self.pos;
        match usize::try_from(count) {
            Ok(count) if count <= remaining / min_entry_bytes => Ok(count),
            _ => Err(DecodeError::UnexpectedEof {
                offset: self.input.len(),
            }),
        }
    }

    fn argument(&mut self, info: u8, start: usize) -> Result<u64, DecodeError> {
        match info {
            0..=23 => Ok(info.into()),
            24 => Ok(self.byte()?.into()),
            25 => Ok(u16::from_be_bytes(self.array()?).into()),
            26 => Ok(u32::from_be_bytes(self.array()?).into()),
            27 => Ok(u64::from_be_bytes(self.array()?)),
            31 => Err(DecodeError::IndefiniteLength { offset: start }),
            _ => Err(DecodeError::ReservedInfo {
                info,
                offset: start,
            }),
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let [byte] = self.array()?;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N as u64)?;
        Ok(bytes.try_into().expect("take returned exactly N bytes"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let remaining = self.input.len() - self.pos;
        match usize::try_from(len) {
            Ok(len) if len <= remaining => {
                let bytes = &self.input[self.pos..self.pos + len];
                self.pos += len;
                Ok(bytes)
            }
            _ => Err(DecodeError::UnexpectedEof {
                offset: self.input.len(),
            }),
        }
    }
}

/// Widens an IEEE 754 half-precision float.
fn half_to_f64(half: u16) -> f64 {
    let sign = if half & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((half >> 10) & 0x1f);
    let fraction = f64::from(half & 0x3ff);
    let magnitude = match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    };
    sign * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_hex(hex: &str) -> Result<Node, DecodeError> {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("test hex is valid"))
            .collect();
        decode(&bytes)
    }

    #[test]
    fn keeps_map_entries_in_wire_order() {
        let node = decode_hex("a2616202616101").expect("valid map");
        let keys: Vec<_> = node.as_map().expect("a map").keys().cloned().collect();
        assert_eq!(keys, vec![Text::from("b"), Text::from("a")]);
    }

    #[test]
    fn accepts_text_that_is_not_utf8() {
        let node = decode_hex("62ff00").expect("text with raw bytes");
        assert_eq!(node.as_text().map(Text::as_bytes), Some(&[0xff, 0x00][..]));
    }

    #[test]
    fn reads_integers_at_both_ends_of_the_cbor_range() {
        assert_eq!(
            decode_hex("1bffffffffffffffff").ok(),
            Some(Node::Integer(Node::MAX_INTEGER))
        );
        assert_eq!(
            decode_hex("3bffffffffffffffff").ok(),
            Some(Node::Integer(Node::MIN_INTEGER))
        );
    }

    #[test]
    fn reads_half_and_single_floats() {
        assert_eq!(decode_hex("f93c00").ok(), Some(Node::Float(1.0)));
        assert_eq!(decode_hex("f9c400").ok(), Some(Node::Float(-4.0)));
        assert_eq!(decode_hex("fa47c35000").ok(), Some(Node::Float(100000.0)));
    }

    #[test]
    fn rejects_a_repeated_key() {
        let error = decode_hex("a2616101616102").expect_err("repeated key");
        assert!(
            matches!(error, DecodeError::DuplicateKey { offset: 4, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn rejects_a_non_string_key() {
        let error = decode_hex("a10101").expect_err("integer key");
        assert!(
            matches!(error, DecodeError::NonStringKey { offset: 1 }),
            "{error:?}"
        );
    }

    #[test]
    fn rejects_tags_other_than_42() {
        let error = decode_hex("c11a514b67b0").expect_err("tag 1");
        assert!(
            matches!(error, DecodeError::UnsupportedTag { tag: 1, offset: 0 }),
            "{error:?}"
        );
    }

    #[test]
    fn rejects_a_link_without_the_zero_prefix() {
        let error = decode_hex("d82a4401551220").expect_err("no 0x00");
        assert!(
            matches!(error, DecodeError::MalformedLink { offset: 2, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn rejects_a_link_to_an_invalid_cid() {
        let error = decode_hex("d82a43000155").expect_err("truncated cid");
        assert!(matches!(error, DecodeError::InvalidCid { .. }), "{error:?}");
    }

    #[test]
    fn rejects_indefinite_lengths_and_undefined() {
        assert!(matches!(
            decode_hex("9fff"),
            Err(DecodeError::IndefiniteLength { offset: 0 })
        ));
        assert!(matches!(
            decode_hex("f7"),
            Err(DecodeError::UnsupportedSimple { value: 23, .. })
        ));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let error = decode_hex("0102").expect_err("two values");
        assert!(
            matches!(
                error,
                DecodeError::TrailingBytes {
                    offset: 1,
                    count: 1
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_lying_length_fails_without_allocating() {
        // A byte string claiming 2^64-1 bytes, and a list claiming 2^32 entries.
        assert!(matches!(
            decode_hex("5bffffffffffffffff"),
            Err(DecodeError::UnexpectedEof { .. })
        ));
        assert!(matches!(
            decode_hex("9b0000000100000000"),
            Err(DecodeError::UnexpectedEof { .. })
        ));
    }

    #[test]
    fn depth_is_bounded() {
        let limits = Limits::default().with_max_depth(3);
        assert!(decode_with(&[0x81, 0x81, 0x81, 0x00], &limits).is_ok());
        let error = decode_with(&[0x81, 0x81, 0x81, 0x81, 0x00], &limits).expect_err("too deep");
        assert!(
            matches!(
                error,
                DecodeError::TooDeep {
                    offset: 3,
                    limit: 3
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn size_is_bounded_before_decoding() {
        let limits = Limits::default().with_max_bytes(4);
        let bytes = [0x45, 1, 2, 3, 4, 5];
        let error = decode_with(&bytes, &limits).expect_err("too large");
        assert!(
            matches!(error, DecodeError::TooLarge { len: 6, limit: 4 }),
            "{error:?}"
        );
    }

    /// Whether `inner` lies inside `outer`'s memory.
    fn within(inner: &[u8], outer: &[u8]) -> bool {
        outer.as_ptr_range().contains(&inner.as_ptr())
    }

    /// A list of a byte string of `len` bytes, then the integer 1.
    fn list_with_bytes(len: usize) -> Bytes {
        let mut cbor = vec![0x82, 0x59];
        cbor.extend_from_slice(&u16::try_from(len).expect("short").to_be_bytes());
        cbor.resize(cbor.len() + len, 0xab);
        cbor.push(0x01);
        Bytes::from(cbor)
    }

    #[test]
    fn decode_shared_slices_long_byte_strings_and_copies_short_ones() {
        for (len, shared) in [(SHARED_BYTES_MIN, true), (SHARED_BYTES_MIN - 1, false)] {
            let input = list_with_bytes(len);
            let node = decode_shared(&input, &Limits::default()).expect("decodes");
            let items = node.as_list().expect("a list");
            let bytes = items[0].as_bytes().expect("bytes");
            assert_eq!(bytes, &vec![0xab; len][..]);
            assert_eq!(items[1], Node::Integer(1));
            assert_eq!(within(bytes, &input), shared, "{len} bytes");
        }
    }

    #[test]
    fn decode_shared_keeps_the_limits_and_the_trailing_check() {
        let input = list_with_bytes(SHARED_BYTES_MIN);
        let small = Limits::default().with_max_bytes(100);
        assert!(matches!(
            decode_shared(&input, &small),
            Err(DecodeError::TooLarge { limit: 100, .. })
        ));
        let mut longer = input.to_vec();
        longer.push(0x00);
        assert!(matches!(
            decode_shared(&Bytes::from(longer), &Limits::default()),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
        assert!(matches!(
            decode_shared(&input.slice(..input.len() - 2), &Limits::default()),
            Err(DecodeError::UnexpectedEof { .. })
        ));
    }

    #[test]
    fn decode_prefix_reads_concatenated_values() {
        let bytes = [0x01, 0x02];
        let (first, used) = decode_prefix(&bytes, &Limits::default()).expect("first value");
        assert_eq!((first, used), (Node::Integer(1), 1));
    }
}
