//! The dag-pb codec (multicodec 0x70): a strict decoder and the byte-exact encoder Go writes
//! (links first, then data; each link's hash, name, size in that order).

use cid::Cid;

/// Multicodec code of dag-pb.
pub const CODEC: u64 = 0x70;

/// A dag-pb node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The links, in the order they are encoded.
    pub links: Vec<Link>,
    /// The data field, if present (an empty field is not the same as an absent one).
    pub data: Option<Vec<u8>>,
}

/// A dag-pb link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The linked block.
    pub hash: Cid,
    /// The name, if present (kubo writes an empty name on file chunks).
    pub name: Option<String>,
    /// The cumulative size of the linked DAG, if present.
    pub tsize: Option<u64>,
}

/// Errors from decoding dag-pb bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DagPbError {
    /// The bytes end inside a field.
    #[error("truncated at byte {at}")]
    Truncated {
        /// Position in the block.
        at: usize,
    },
    /// A varint is longer than 10 bytes or overflows.
    #[error("invalid varint at byte {at}")]
    InvalidVarint {
        /// Position in the block.
        at: usize,
    },
    /// A field number or wire type that dag-pb does not have, or a field out of order.
    #[error("unexpected field {field} (wire type {wire_type}) at byte {at}")]
    UnexpectedField {
        /// Position in the block.
        at: usize,
        /// Field number.
        field: u64,
        /// Wire type.
        wire_type: u64,
    },
    /// A link without a hash.
    #[error("link without hash at byte {at}")]
    MissingHash {
        /// Position in the block.
        at: usize,
    },
    /// A link hash that is not a CID.
    #[error("invalid link cid at byte {at}")]
    InvalidCid {
        /// Position in the block.
        at: usize,
    },
    /// A link name that is not UTF-8.
    #[error("link name is not utf-8 at byte {at}")]
    InvalidName {
        /// Position in the block.
        at: usize,
    },
}

/// Decodes a dag-pb block strictly, as go-codec-dagpb does: links (field 2) come before the
/// data (field 1), which appears at most once; inside a link, hash (1), name (2) and tsize (3)
/// appear at most once each and in that order; nothing else is allowed.
///
/// # Errors
///
/// A [`DagPbError`] naming the byte position.
pub fn decode(bytes: &[u8]) -> Result<Node, DagPbError> {
    let mut node = Node::default();
    let mut pos = 0;
    while pos < bytes.len() {
        let at = pos;
        let key = read_varint(bytes, &mut pos)?;
        let (field, wire_type) = (key >> 3, key & 7);
        if wire_type != 2 || node.data.is_some() || !(field == 1 || field == 2) {
            return Err(DagPbError::UnexpectedField {
                at,
                field,
                wire_type,
            });
        }
        let body = read_bytes(bytes, &mut pos)?;
        if field == 1 {
            node.data = Some(body.to_vec());
        } else {
            node.links.push(decode_link(body, at)?);
        }
    }
    Ok(node)
}

/// Encodes a node the way Go does: links first, then data.
pub fn encode(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_hint(node));
    for link in &node.links {
        let mut body = Vec::with_capacity(64);
        let hash = link.hash.to_bytes();
        write_key(&mut body, 1, 2);
        write_varint(&mut body, hash.len() as u64);
        body.extend_from_slice(&hash);
        if let Some(name) = &link.name {
            write_key(&mut body, 2, 2);
            write_varint(&mut body, name.len() as u64);
            body.extend_from_slice(name.as_bytes());
        }
        if let Some(tsize) = link.tsize {
            write_key(&mut body, 3, 0);
            write_varint(&mut body, tsize);
        }
        write_key(&mut out, 2, 2);
        write_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
    }
    if let Some(data) = &node.data {
        write_key(&mut out, 1, 2);
        write_varint(&mut out, data.len() as u64);
        out.extend_from_slice(data);
    }
    out
}

fn encoded_len_hint(node: &Node) -> usize {
    node.data.as_ref().map_or(0, |d| d.len() + 8) + node.links.len() * 64
}

fn decode_link(bytes: &[u8], base: usize) -> Result<Link, DagPbError> {
    let mut pos = 0;
    let mut hash = None;
    let mut name = None;
    let mut tsize = None;
    let mut last_field = 0;
    while pos < bytes.len() {
        let at = base + pos;
        let key = read_varint(bytes, &mut pos).map_err(|e| shift(e, base))?;
        let (field, wire_type) = (key >> 3, key & 7);
        let expected_wire = if field == 3 { 0 } else { 2 };
        if field <= last_field || field > 3 || wire_type != expected_wire {
            return Err(DagPbError::UnexpectedField {
                at,
                field,
                wire_type,
            });
        }
        last_field = field;
        match field {
            1 => {
                let body = read_bytes(bytes, &mut pos).map_err(|e| shift(e, base))?;
                hash = Some(Cid::try_from(body).map_err(|_| DagPbError::InvalidCid { at })?);
            }
            2 => {
                let body = read_bytes(bytes, &mut pos).map_err(|e| shift(e, base))?;
                let text = std::str::from_utf8(body).map_err(|_| DagPbError::InvalidName { at })?;
                name = Some(text.to_owned());
            }
            _ => tsize = Some(read_varint(bytes, &mut pos).map_err(|e| shift(e, base))?),
        }
    }
    let hash = hash.ok_or(DagPbError::MissingHash { at: base })?;
    Ok(Link { hash, name, tsize })
}

fn shift(error: DagPbError, base: usize) -> DagPbError {
    match error {
        DagPbError::Truncated { at } => DagPbError::Truncated { at: at + base },
        DagPbError::InvalidVarint { at } => DagPbError::InvalidVarint { at: at + base },
        other => other,
    }
}

pub(crate) fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, DagPbError> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..10 {
        let byte = *bytes.get(*pos).ok_or(DagPbError::Truncated { at: start })?;
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return Err(DagPbError::InvalidVarint { at: start });
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DagPbError::InvalidVarint { at: start })
}

fn read_bytes<'a>(bytes: &'a [u8], pos: &mut usize) -> Result<&'a [u8], DagPbError> {
    let start = *pos;
    let len = read_varint(bytes, pos)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| pos.checked_add(len))
        .filter(|end| *end <= bytes.len())
        .ok_or(DagPbError::Truncated { at: start })?;
    let body = &bytes[*pos..end];
    *pos = end;
    Ok(body)
}

fn write_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    write_varint(out, (field << 3) | wire_type);
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cid(seed: u8) -> Cid {
        crate::blocks::cid_of(cid::Version::V1, 0x55, crate::blocks::SHA2_256, &[seed])
            .expect("sha2-256 is supported")
    }

    #[test]
    fn empty_unixfs_file_node_has_kubo_bytes() {
        let node = Node {
            links: vec![],
            data: Some(vec![0x08, 0x02, 0x18, 0x00]),
        };
        assert_eq!(encode(&node), [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
        assert_eq!(decode(&encode(&node)).unwrap(), node);
    }

    #[test]
    fn data_before_links_is_rejected() {
        let node = Node {
            links: vec![Link {
                hash: cid(1),
                name: Some(String::new()),
                tsize: Some(1),
            }],
            data: Some(vec![1]),
        };
        let bytes = encode(&node);
        let data_len = 3;
        let mut swapped = bytes[bytes.len() - data_len..].to_vec();
        swapped.extend_from_slice(&bytes[..bytes.len() - data_len]);
        assert!(matches!(
            decode(&swapped),
            Err(DagPbError::UnexpectedField { field: 2, .. })
        ));
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips(
            links in proptest::collection::vec(
                (any::<u8>(), proptest::option::of("[a-z]{0,8}"), proptest::option::of(any::<u64>())),
                0..5,
            ),
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        ) {
            let node = Node {
                links: links
                    .into_iter()
                    .map(|(seed, name, tsize)| Link { hash: cid(seed), name, tsize })
                    .collect(),
                data,
            };
            prop_assert_eq!(decode(&encode(&node)).unwrap(), node);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(node) = decode(&bytes) {
                prop_assert_eq!(decode(&encode(&node)).unwrap(), node);
            }
        }
    }
}
