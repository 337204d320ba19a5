//! The DAG-CBOR encoder: canonical form, as go-ipld-prime's `dagcbor.Encode` writes it.

use bytes::BufMut;

use crate::node::Node;

/// Why a [`Node`] cannot be written as DAG-CBOR.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An integer outside −2⁶⁴ … 2⁶⁴−1, which CBOR cannot carry.
    #[error("integer {value} is outside the cbor range")]
    IntegerOutOfRange {
        /// The integer.
        value: i128,
    },
}

/// Appends the canonical DAG-CBOR encoding of `node` to `out`.
///
/// Canonical means: map keys sorted by length then bytewise at every level, shortest-form
/// integer and length heads, definite lengths, floats as 64-bit, links as tag 42 over
/// `0x00 ‖ cid`. This is the form Go emits, whatever order the node's maps hold.
///
/// # Errors
/// [`EncodeError::IntegerOutOfRange`] for an integer CBOR cannot carry; `out` may then hold
/// part of the encoding.
///
/// # Examples
/// ```
/// use ipld_dagcbor::{Map, Node, encode};
///
/// let map = Map::new().with("bb", 1u64).with("a", 2u64);
/// let mut out = Vec::new();
/// encode(&Node::Map(map), &mut out)?;
/// assert_eq!(out, [0xa2, 0x61, b'a', 0x02, 0x62, b'b', b'b', 0x01]);
/// # Ok::<(), ipld_dagcbor::EncodeError>(())
/// ```
pub fn encode(node: &Node, out: &mut impl BufMut) -> Result<(), EncodeError> {
    match node {
        Node::Null => out.put_u8(0xf6),
        Node::Bool(false) => out.put_u8(0xf4),
        Node::Bool(true) => out.put_u8(0xf5),
        Node::Integer(value) => encode_integer(*value, out)?,
        Node::Float(value) => {
            out.put_u8(0xfb);
            out.put_f64(*value);
        }
        Node::String(text) => {
            write_head(3, len_u64(text.len()), out);
            out.put_slice(text.as_bytes());
        }
        Node::Bytes(bytes) => {
            write_head(2, len_u64(bytes.len()), out);
            out.put_slice(bytes);
        }
        Node::List(items) => {
            write_head(4, len_u64(items.len()), out);
            for item in items {
                encode(item, out)?;
            }
        }
        Node::Map(map) => {
            write_head(5, len_u64(map.len()), out);
            for (key, value) in map.canonical_entries() {
                write_head(3, len_u64(key.len()), out);
                out.put_slice(key.as_bytes());
                encode(value, out)?;
            }
        }
        Node::Link(cid) => {
            let cid_bytes = cid.to_bytes();
            write_head(6, 42, out);
            write_head(2, len_u64(cid_bytes.len() + 1), out);
            out.put_u8(0);
            out.put_slice(&cid_bytes);
        }
    }
    Ok(())
}

/// The canonical DAG-CBOR encoding of `node` in a new vector.
///
/// # Errors
/// As [`encode`].
pub fn to_vec(node: &Node) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode(node, &mut out)?;
    Ok(out)
}

/// Writes a CBOR head: major type and argument in shortest form.
pub fn write_head(major: u8, arg: u64, out: &mut impl BufMut) {
    let major = major << 5;
    if arg < 24 {
        out.put_u8(major | arg as u8);
    } else if let Ok(arg) = u8::try_from(arg) {
        out.put_u8(major | 24);
        out.put_u8(arg);
    } else if let Ok(arg) = u16::try_from(arg) {
        out.put_u8(major | 25);
        out.put_u16(arg);
    } else if let Ok(arg) = u32::try_from(arg) {
        out.put_u8(major | 26);
        out.put_u32(arg);
    } else {
        out.put_u8(major | 27);
        out.put_u64(arg);
    }
}

fn encode_integer(value: i128, out: &mut impl BufMut) -> Result<(), EncodeError> {
    if let Ok(unsigned) = u64::try_from(value) {
        write_head(0, unsigned, out);
    } else if let Ok(magnitude) = u64::try_from(-1 - value) {
        write_head(1, magnitude, out);
    } else {
        return Err(EncodeError::IntegerOutOfRange { value });
    }
    Ok(())
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).expect("a length in memory fits in u64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Map, Text, decode};

    #[test]
    fn sorts_keys_by_length_then_bytes_at_every_level() {
        let inner = Map::new().with(":>", 1u64).with("l", 2u64);
        let outer = Map::new()
            .with("Response", Node::Null)
            .with("IsRq", true)
            .with("R", inner);
        let bytes = to_vec(&Node::Map(outer)).expect("encodable");
        let again = decode(&bytes).expect("decodable");
        let keys: Vec<_> = again.as_map().expect("map").keys().cloned().collect();
        assert_eq!(keys, ["R", "IsRq", "Response"].map(Text::from));
        let inner = again
            .as_map()
            .and_then(|m| m.get("R"))
            .and_then(Node::as_map)
            .expect("R");
        assert_eq!(
            inner.keys().cloned().collect::<Vec<_>>(),
            ["l", ":>"].map(Text::from)
        );
    }

    #[test]
    fn writes_shortest_integer_heads() {
        let cases: [(i128, &[u8]); 6] = [
            (23, &[0x17]),
            (24, &[0x18, 24]),
            (256, &[0x19, 1, 0]),
            (-1, &[0x20]),
            (-25, &[0x38, 24]),
            (1 << 32, &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (value, expected) in cases {
            assert_eq!(
                to_vec(&Node::Integer(value)).expect("in range"),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn refuses_integers_cbor_cannot_hold() {
        let error = to_vec(&Node::Integer(Node::MAX_INTEGER + 1)).expect_err("out of range");
        assert!(matches!(error, EncodeError::IntegerOutOfRange { .. }));
        assert!(to_vec(&Node::Integer(Node::MIN_INTEGER - 1)).is_err());
    }

    #[test]
    fn writes_floats_as_64_bit() {
        let bytes = to_vec(&Node::Float(1.5)).expect("float");
        assert_eq!(bytes, [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
    }
}
