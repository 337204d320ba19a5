//! The dag-pb codec (multicodec `0x70`): a strict decoder that accepts exactly what
//! go-codec-dagpb's `DecodeBytes` accepts, the byte-exact encoder Go writes, and the conversion
//! to go-codec-dagpb's data model that the selector traversal walks.
//!
//! [`decode`] gives the typed [`PbNode`] (with [`PbLink`]s); [`encode`] writes it back (links
//! first, then data; in each link `Hash`, `Name`, `Tsize`); [`PbNode::to_node`] turns it into
//! the data model: a map with `Links` then `Data`, whatever the byte layout, each link a map
//! with `Hash` (a link), `Name` and `Tsize`. Go represents absent optional fields (`Data`,
//! `Name`, `Tsize`) as *absent* values, which report kind null and which a traversal still
//! iterates; there they are [`Node::Null`].
//!
//! Where go-codec-dagpb is laxer than the dag-pb spec, this module follows Go:
//! - `Data` before `Links` is accepted (Go keeps this for old IPFS data). `Links` must still be
//!   one run: links, data, links is rejected as a duplicate `Links` section.
//! - In a link's `Hash`, one CID is read from the front of the field (go-cid's `CidFromBytes`)
//!   and any bytes after it are ignored; re-encoding drops them, as Go's does.
//! - `Tsize` is any 64-bit varint. [`PbLink::tsize`] keeps the wire value as a `u64`, and
//!   [`PbNode::to_node`] wraps values above `i64::MAX` to negative integers, as Go's
//!   `int64(v)` does. ([`encode`] writes the `u64` back unchanged; Go's encoder would refuse
//!   the negative value.)
//! - A link's `Name` is any bytes, not necessarily UTF-8 (Go's `string(chunk)`), so
//!   [`PbLink::name`] is bytes and the data model holds it as raw [`Text`].
//!
//! Varints follow `protowire.ConsumeVarint` (at most ten bytes, the tenth at most 1;
//! non-minimal forms accepted). [`encode`] writes links in the order given; Go's encoder sorts
//! them stably by name first, so callers that want Go's bytes for unsorted links sort them.

use cid::Cid;
use ipld_dagcbor::{Map, Node, Text};

/// Multicodec code of dag-pb (the same value as [`codec::DAG_PB`](crate::codec::DAG_PB)).
pub const CODEC: u64 = crate::codec::DAG_PB;

/// A dag-pb node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbNode {
    /// The links, in the order they are encoded.
    pub links: Vec<PbLink>,
    /// The data field, if present (an empty field is not the same as an absent one).
    pub data: Option<Vec<u8>>,
}

/// A dag-pb link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    /// The linked block.
    pub hash: Cid,
    /// The name, if present: raw bytes, not necessarily UTF-8 (kubo writes an empty name on
    /// file chunks).
    pub name: Option<Vec<u8>>,
    /// The cumulative size of the linked DAG, if present, as the varint on the wire.
    pub tsize: Option<u64>,
}

/// Why some bytes are not a dag-pb node go-codec-dagpb accepts. Every offset counts from the
/// start of the block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end inside a varint or a length-delimited field.
    #[error("truncated at offset {offset}")]
    Truncated {
        /// Where the cut item starts.
        offset: usize,
    },
    /// A varint longer than ten bytes, or whose tenth byte overflows 64 bits.
    #[error("invalid varint at offset {offset}")]
    InvalidVarint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A PBNode field other than `Data` (1) or `Links` (2), or one with the wrong wire type.
    #[error("invalid pbnode field {field} with wire type {wire_type} at offset {offset}")]
    InvalidNodeField {
        /// Where the tag starts.
        offset: usize,
        /// The field number.
        field: u64,
        /// The wire type.
        wire_type: u8,
    },
    /// A PBLink field other than `Hash` (1), `Name` (2), `Tsize` (3), or one with the wrong
    /// wire type.
    #[error("invalid pblink field {field} with wire type {wire_type} at offset {offset}")]
    InvalidLinkField {
        /// Where the tag starts.
        offset: usize,
        /// The field number.
        field: u64,
        /// The wire type.
        wire_type: u8,
    },
    /// A field that appears twice, or `Links` resumed after `Data`.
    #[error("duplicate {field} at offset {offset}")]
    Duplicate {
        /// Where the repeated field's tag starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// PBLink fields out of order (`Hash`, `Name`, `Tsize`).
    #[error("{field} out of order at offset {offset}")]
    OutOfOrder {
        /// Where the field's tag starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// A link without a `Hash`.
    #[error("link without hash at offset {offset}")]
    MissingHash {
        /// Where the link's bytes start.
        offset: usize,
    },
    /// A link whose `Hash` does not start with a CID.
    #[error("invalid hash in link at offset {offset}")]
    InvalidHash {
        /// Where the `Hash` tag starts.
        offset: usize,
        /// Why the bytes are not a CID.
        #[source]
        source: cid::Error,
    },
}

impl PbNode {
    /// This node in go-codec-dagpb's data model: a map with `Links` then `Data`; each link a
    /// map with `Hash`, `Name` and `Tsize`; absent fields are [`Node::Null`].
    ///
    /// # Examples
    /// ```
    /// use ipld_selector::dagpb::PbNode;
    /// use ipld_dagcbor::Node;
    ///
    /// let node = PbNode { links: vec![], data: None }.to_node();
    /// let map = node.as_map().unwrap();
    /// assert_eq!(map.get("Links"), Some(&Node::List(vec![])));
    /// assert_eq!(map.get("Data"), Some(&Node::Null));
    /// ```
    pub fn to_node(&self) -> Node {
        let links = self.links.iter().map(PbLink::to_node).collect();
        let mut node = Map::new();
        node.insert("Links", Node::List(links));
        node.insert(
            "Data",
            self.data
                .clone()
                .map_or(Node::Null, |data| Node::Bytes(data.into())),
        );
        Node::Map(node)
    }
}

impl PbLink {
    /// This link in go-codec-dagpb's data model: a map with `Hash`, `Name` and `Tsize`, absent
    /// fields as [`Node::Null`], a `Tsize` above `i64::MAX` wrapped as Go's `int64(v)` does.
    pub fn to_node(&self) -> Node {
        let mut link = Map::new();
        link.insert("Hash", Node::Link(self.hash));
        link.insert(
            "Name",
            self.name
                .clone()
                .map_or(Node::Null, |name| Node::String(Text::from_bytes(name))),
        );
        link.insert(
            "Tsize",
            // Go stores the varint as int64(v), wrapping values above i64::MAX.
            self.tsize
                .map_or(Node::Null, |size| Node::Integer((size as i64).into())),
        );
        Node::Map(link)
    }
}

/// Decodes a dag-pb block strictly, accepting exactly what go-codec-dagpb accepts (see the
/// [module docs](self) for its quirks): `Data` (1) at most once, `Links` (2) in one run before
/// or after it; inside a link, `Hash` (1, required), `Name` (2) and `Tsize` (3) at most once
/// each and in that order; nothing else.
///
/// # Errors
/// A [`DecodeError`] naming the byte offset, for anything go-codec-dagpb rejects.
///
/// # Examples
/// ```
/// use ipld_selector::dagpb;
///
/// // A node with only `Data` = 0x0801.
/// let node = dagpb::decode(&[0x0a, 0x02, 0x08, 0x01])?;
/// assert_eq!(node.data.as_deref(), Some(&[0x08, 0x01][..]));
/// assert!(node.links.is_empty());
/// assert_eq!(dagpb::encode(&node), [0x0a, 0x02, 0x08, 0x01]);
/// # Ok::<(), dagpb::DecodeError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<PbNode, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut node = PbNode::default();
    // Whether a run of Links fields is open (Go closes it when Data arrives).
    let mut links_open = false;
    while !reader.done() {
        let tag_at = reader.pos;
        let (field, wire_type) = reader.tag()?;
        if wire_type != 2 {
            return Err(DecodeError::InvalidNodeField {
                offset: tag_at,
                field,
                wire_type,
            });
        }
        match field {
            1 => {
                if node.data.is_some() {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Data",
                    });
                }
                node.data = Some(reader.length_delimited()?.to_vec());
                links_open = false;
            }
            2 => {
                let (chunk_at, chunk) = reader.length_delimited_at()?;
                if !links_open && !node.links.is_empty() {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Links",
                    });
                }
                links_open = true;
                node.links.push(decode_link(chunk, chunk_at)?);
            }
            _ => {
                return Err(DecodeError::InvalidNodeField {
                    offset: tag_at,
                    field,
                    wire_type,
                });
            }
        }
    }
    Ok(node)
}

/// Decodes a dag-pb block straight into go-codec-dagpb's data model: [`decode`], then
/// [`PbNode::to_node`]. This is what [`codec::decode_block`](crate::codec::decode_block) gives
/// the traversal for dag-pb blocks.
///
/// # Errors
/// As [`decode`].
///
/// # Examples
/// ```
/// use ipld_selector::dagpb;
///
/// let node = dagpb::decode_node(&[0x0a, 0x02, 0x08, 0x01])?;
/// let keys: Vec<String> = node.as_map().unwrap().keys().map(|k| k.to_string()).collect();
/// assert_eq!(keys, ["Links", "Data"]);
/// # Ok::<(), dagpb::DecodeError>(())
/// ```
pub fn decode_node(bytes: &[u8]) -> Result<Node, DecodeError> {
    decode(bytes).map(|node| node.to_node())
}

/// Encodes a node the way Go does: links first, then data; in each link `Hash`, then `Name`
/// and `Tsize` when present. Links are written in the order given (Go's encoder sorts them
/// stably by name first).
///
/// # Examples
/// ```
/// use ipld_selector::dagpb::{self, PbNode};
///
/// // kubo's empty UnixFS file node.
/// let node = PbNode { links: vec![], data: Some(vec![0x08, 0x02, 0x18, 0x00]) };
/// assert_eq!(dagpb::encode(&node), [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
/// ```
pub fn encode(node: &PbNode) -> Vec<u8> {
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
            body.extend_from_slice(name);
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

fn encoded_len_hint(node: &PbNode) -> usize {
    node.data.as_ref().map_or(0, |d| d.len() + 8) + node.links.len() * 64
}

/// Decodes the bytes of one PBLink; `base` is where they start in the block.
fn decode_link(bytes: &[u8], base: usize) -> Result<PbLink, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut hash: Option<Cid> = None;
    let mut name: Option<Vec<u8>> = None;
    let mut tsize: Option<u64> = None;
    while !reader.done() {
        let tag_at = base + reader.pos;
        let (field, wire_type) = reader.tag().map_err(|e| e.shifted(base))?;
        let invalid = DecodeError::InvalidLinkField {
            offset: tag_at,
            field,
            wire_type,
        };
        match field {
            1 => {
                if hash.is_some() {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Hash",
                    });
                }
                if name.is_some() || tsize.is_some() {
                    return Err(DecodeError::OutOfOrder {
                        offset: tag_at,
                        field: "Hash",
                    });
                }
                if wire_type != 2 {
                    return Err(invalid);
                }
                let chunk = reader.length_delimited().map_err(|e| e.shifted(base))?;
                // Like go-cid's CidFromBytes, read one CID from the front of the field and
                // ignore what follows it.
                let cid = Cid::read_bytes(chunk).map_err(|source| DecodeError::InvalidHash {
                    offset: tag_at,
                    source,
                })?;
                hash = Some(cid);
            }
            2 => {
                if name.is_some() {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Name",
                    });
                }
                if tsize.is_some() {
                    return Err(DecodeError::OutOfOrder {
                        offset: tag_at,
                        field: "Name",
                    });
                }
                if wire_type != 2 {
                    return Err(invalid);
                }
                let chunk = reader.length_delimited().map_err(|e| e.shifted(base))?;
                name = Some(chunk.to_vec());
            }
            3 => {
                if tsize.is_some() {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Tsize",
                    });
                }
                if wire_type != 0 {
                    return Err(invalid);
                }
                tsize = Some(reader.varint().map_err(|e| e.shifted(base))?);
            }
            _ => return Err(invalid),
        }
    }
    let Some(hash) = hash else {
        return Err(DecodeError::MissingHash { offset: base });
    };
    Ok(PbLink { hash, name, tsize })
}

impl DecodeError {
    /// Moves a reader error's offset from a link's bytes to the whole block.
    fn shifted(self, base: usize) -> Self {
        match self {
            Self::Truncated { offset } => Self::Truncated {
                offset: offset + base,
            },
            Self::InvalidVarint { offset } => Self::InvalidVarint {
                offset: offset + base,
            },
            other => other,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// A protobuf varint as Go's `protowire.ConsumeVarint` reads it: at most ten bytes, the
    /// tenth at most 1; non-minimal forms are accepted.
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or(DecodeError::Truncated { offset: start })?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(DecodeError::InvalidVarint { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::InvalidVarint { offset: start })
    }

    /// A field tag as (field number, wire type). Field numbers that `protowire.ConsumeTag`
    /// refuses (0, or above 2³¹−1) are returned as they are; no dag-pb field has them, so the
    /// caller rejects them as invalid fields, as Go rejects them.
    fn tag(&mut self) -> Result<(u64, u8), DecodeError> {
        let value = self.varint()?;
        Ok((value >> 3, (value & 7) as u8))
    }

    /// A length-delimited field's bytes.
    fn length_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        self.length_delimited_at().map(|(_, chunk)| chunk)
    }

    /// A length-delimited field's bytes and the offset where they start.
    fn length_delimited_at(&mut self) -> Result<(usize, &'a [u8]), DecodeError> {
        let start = self.pos;
        let len = self.varint()?;
        let remaining = self.bytes.len() - self.pos;
        let end = usize::try_from(len)
            .ok()
            .filter(|len| *len <= remaining)
            .map(|len| self.pos + len)
            .ok_or(DecodeError::Truncated { offset: start })?;
        let chunk_at = self.pos;
        let chunk = &self.bytes[chunk_at..end];
        self.pos = end;
        Ok((chunk_at, chunk))
    }
}

fn write_key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    write_varint(out, (field << 3) | wire_type);
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use multihash::Multihash;
    use proptest::prelude::*;

    use super::*;

    /// The dag-pb root of `vectors/graphsync/fixture_dagpb.json`.
    const FIXTURE_ROOT: &str = "122b0a240155122063c5cdfc617fb8fe93888e68674717590957a25b5e08219b1a61c3f031f88ee61201611806122b0a2401551220ee8869b8de3c8de510951bc7ef5eed482198e21ed4a71cc9213274898cac21c112016218060a020801";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A raw-codec CIDv1 whose sha2-256-coded digest is 32 copies of `seed` (the codec never
    /// checks digests, so it need not be a real hash).
    fn cid(seed: u8) -> Cid {
        let mh = Multihash::wrap(0x12, &[seed; 32]).expect("32 bytes fit");
        Cid::new_v1(0x55, mh)
    }

    /// The link map of a one-link node, through the data model.
    fn single_link_in_data_model(node: &PbNode) -> Map {
        let model = node.to_node();
        let links = model
            .as_map()
            .and_then(|map| map.get("Links"))
            .and_then(Node::as_list)
            .expect("a links list");
        assert_eq!(links.len(), 1);
        links[0].as_map().expect("a link map").clone()
    }

    // Tests from ipld-selector's data-model reader.

    #[test]
    fn fixture_root_decodes_to_go_field_names_and_order() {
        let node = decode_node(&unhex(FIXTURE_ROOT)).expect("valid dag-pb");
        let map = node.as_map().expect("map");
        assert_eq!(
            map.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            ["Links", "Data"]
        );
        assert_eq!(map.get("Data"), Some(&Node::Bytes(vec![0x08, 0x01].into())));
        let links = map.get("Links").and_then(Node::as_list).expect("links");
        assert_eq!(links.len(), 2);
        let first = links[0].as_map().expect("link map");
        assert_eq!(
            first.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            ["Hash", "Name", "Tsize"]
        );
        assert_eq!(first.get("Name"), Some(&Node::text("a")));
        assert_eq!(first.get("Tsize"), Some(&Node::Integer(6)));
        assert_eq!(
            first
                .get("Hash")
                .and_then(Node::as_link)
                .map(ToString::to_string)
                .as_deref(),
            Some("bafkreiddyxg7yyl7xd7jhceonbtuof2zbfl2ew26baqzwgtbypydd6eo4y")
        );
    }

    #[test]
    fn empty_block_has_empty_links_and_absent_data() {
        let node = decode_node(&[]).expect("empty node is valid");
        let map = node.as_map().expect("map");
        assert_eq!(map.get("Links"), Some(&Node::List(vec![])));
        assert_eq!(map.get("Data"), Some(&Node::Null));
    }

    #[test]
    fn go_rejections_are_rejected() {
        let link = unhex(&FIXTURE_ROOT[4..90]);
        // Data twice.
        assert!(matches!(
            decode(&[0x0a, 0x00, 0x0a, 0x00]),
            Err(DecodeError::Duplicate { .. })
        ));
        // Links, Data, Links.
        let mut bytes = vec![0x12, link.len() as u8];
        bytes.extend_from_slice(&link);
        bytes.extend_from_slice(&[0x0a, 0x00, 0x12, link.len() as u8]);
        bytes.extend_from_slice(&link);
        assert!(matches!(decode(&bytes), Err(DecodeError::Duplicate { .. })));
        // Unknown field 3, wrong wire type, truncated length.
        assert!(decode(&[0x1a, 0x00]).is_err());
        assert!(decode(&[0x08, 0x01]).is_err());
        assert!(decode(&[0x0a, 0x05, 0x00]).is_err());
        // A link without a hash, and Name before Hash.
        assert!(matches!(
            decode(&[0x12, 0x02, 0x18, 0x01]),
            Err(DecodeError::MissingHash { .. })
        ));
        assert!(matches!(
            decode(&[0x12, 0x04, 0x12, 0x00, 0x0a, 0x00]),
            Err(DecodeError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn data_before_links_is_accepted_as_go_does() {
        let link = unhex(&FIXTURE_ROOT[4..90]);
        let mut bytes = vec![0x0a, 0x00, 0x12, link.len() as u8];
        bytes.extend_from_slice(&link);
        let node = decode_node(&bytes).expect("go accepts data first");
        let map = node.as_map().expect("map");
        assert_eq!(
            map.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            ["Links", "Data"]
        );
        assert_eq!(
            map.get("Links").and_then(Node::as_list).map(<[Node]>::len),
            Some(1)
        );
    }

    // Tests from dag-io's typed codec.

    #[test]
    fn empty_unixfs_file_node_has_kubo_bytes() {
        let node = PbNode {
            links: vec![],
            data: Some(vec![0x08, 0x02, 0x18, 0x00]),
        };
        assert_eq!(encode(&node), [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
        assert_eq!(decode(&encode(&node)).unwrap(), node);
    }

    /// dag-io's decoder rejected `Data` before `Links` (`data_before_links_is_rejected`);
    /// go-codec-dagpb accepts it, and so does the merged decoder. The swapped bytes decode to
    /// the same node, which encodes back in Go's order.
    #[test]
    fn data_before_links_decodes_to_the_same_node_and_reencodes_in_go_order() {
        let node = PbNode {
            links: vec![PbLink {
                hash: cid(1),
                name: Some(Vec::new()),
                tsize: Some(1),
            }],
            data: Some(vec![1]),
        };
        let bytes = encode(&node);
        let data_len = 3;
        let mut swapped = bytes[bytes.len() - data_len..].to_vec();
        swapped.extend_from_slice(&bytes[..bytes.len() - data_len]);
        assert_ne!(swapped, bytes);
        assert_eq!(decode(&swapped).unwrap(), node);
        assert_eq!(encode(&decode(&swapped).unwrap()), bytes);
    }

    proptest! {
        #[test]
        fn decode_encode_round_trips(
            links in proptest::collection::vec(
                (
                    any::<u8>(),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                    proptest::option::of(any::<u64>()),
                ),
                0..5,
            ),
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        ) {
            let node = PbNode {
                links: links
                    .into_iter()
                    .map(|(seed, name, tsize)| PbLink { hash: cid(seed), name, tsize })
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

    // The go-codec-dagpb quirks, pinned one by one.

    #[test]
    fn bytes_after_the_cid_in_hash_are_ignored_as_go_does() {
        let hash = cid(7).to_bytes();
        let mut field = hash.clone();
        field.extend_from_slice(&[0xde, 0xad]);
        let mut link = vec![0x0a, field.len() as u8];
        link.extend_from_slice(&field);
        let mut bytes = vec![0x12, link.len() as u8];
        bytes.extend_from_slice(&link);
        let node = decode(&bytes).expect("go ignores trailing hash bytes");
        assert_eq!(node.links[0].hash, cid(7));
        // Re-encoding drops the trailing bytes, as Go's encoder does.
        let mut canonical = vec![0x12, (hash.len() + 2) as u8, 0x0a, hash.len() as u8];
        canonical.extend_from_slice(&hash);
        assert_eq!(encode(&node), canonical);
    }

    #[test]
    fn tsize_above_i64_max_is_kept_typed_and_wrapped_in_the_data_model() {
        let node = PbNode {
            links: vec![PbLink {
                hash: cid(2),
                name: None,
                tsize: Some(u64::MAX),
            }],
            data: None,
        };
        let decoded = decode(&encode(&node)).expect("a ten-byte varint is valid");
        assert_eq!(decoded.links[0].tsize, Some(u64::MAX));
        let link = single_link_in_data_model(&decoded);
        assert_eq!(link.get("Tsize"), Some(&Node::Integer(-1)));
        assert_eq!(link.get("Name"), Some(&Node::Null));
    }

    #[test]
    fn non_utf8_names_are_accepted_as_go_does() {
        let node = PbNode {
            links: vec![PbLink {
                hash: cid(3),
                name: Some(vec![0xff, 0xfe]),
                tsize: None,
            }],
            data: None,
        };
        let decoded = decode(&encode(&node)).expect("go accepts any name bytes");
        assert_eq!(decoded, node);
        let link = single_link_in_data_model(&decoded);
        assert_eq!(
            link.get("Name"),
            Some(&Node::String(Text::from_bytes(vec![0xff, 0xfe])))
        );
    }

    #[test]
    fn errors_name_offsets_in_the_whole_block() {
        // A valid first link, then a second link whose Tsize varint is cut short.
        let first = unhex(&FIXTURE_ROOT[..90]);
        let mut bytes = first.clone();
        bytes.extend_from_slice(&[0x12, 0x02, 0x18, 0x80]);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::Truncated { offset }) if offset == first.len() + 3
        ));
        // An explicit CIDv0 in Hash is not a CID (go-cid refuses it too).
        let mut link = vec![0x0a, 0x24, 0x00, 0x70, 0x12, 0x20];
        link.extend_from_slice(&[0; 32]);
        let mut bytes = vec![0x0a, 0x00, 0x12, link.len() as u8];
        bytes.extend_from_slice(&link);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::InvalidHash { offset: 4, .. })
        ));
        // An eleven-byte varint.
        assert!(matches!(
            decode(&[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(DecodeError::InvalidVarint { offset: 1 })
        ));
    }
}
