//! A dag-pb reader (multicodec `0x70`) giving go-codec-dagpb's data model.
//!
//! The result is a map with `Links` then `Data`, whatever the byte layout; each link is a map
//! with `Hash` (a link), `Name` and `Tsize`. Go represents absent optional fields (`Data`,
//! `Name`, `Tsize`) as *absent* values, which report kind null and which a traversal still
//! iterates; here they are [`Node::Null`]. Acceptance follows go-codec-dagpb's `DecodeBytes`.

use cid::Cid;
use ipld_dagcbor::{Map, Node, Text};

/// Why some bytes are not a dag-pb node go-codec-dagpb accepts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A varint, tag or length-delimited field is cut short or overflows.
    #[error("malformed protobuf at offset {offset}")]
    Malformed {
        /// Where the bad item starts.
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
        /// Where the repeated field starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// PBLink fields out of order (`Hash`, `Name`, `Tsize`).
    #[error("{field} out of order at offset {offset}")]
    OutOfOrder {
        /// Where the field starts.
        offset: usize,
        /// Which field.
        field: &'static str,
    },
    /// A link without a `Hash`, or whose `Hash` is not a CID.
    #[error("invalid hash in link at offset {offset}")]
    InvalidHash {
        /// Where the link starts.
        offset: usize,
    },
}

/// Decodes a dag-pb block into go-codec-dagpb's data model.
///
/// # Errors
/// A [`DecodeError`] for anything go-codec-dagpb rejects.
///
/// # Examples
/// ```
/// use ipld_selector::dagpb;
///
/// // A node with only `Data` = 0x0801.
/// let node = dagpb::decode(&[0x0a, 0x02, 0x08, 0x01])?;
/// let keys: Vec<String> = node.as_map().unwrap().keys().map(|k| k.to_string()).collect();
/// assert_eq!(keys, ["Links", "Data"]);
/// # Ok::<(), dagpb::DecodeError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Node, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut links: Vec<Node> = Vec::new();
    let mut data: Option<Vec<u8>> = None;
    // Whether a run of Links fields is open (Go closes it when Data arrives).
    let mut links_open = false;
    let mut have_links = false;
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
                if data.is_some() {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Data",
                    });
                }
                data = Some(reader.length_delimited()?.to_vec());
                links_open = false;
            }
            2 => {
                let chunk_at = reader.pos;
                let chunk = reader.length_delimited()?;
                if !links_open && have_links {
                    return Err(DecodeError::Duplicate {
                        offset: tag_at,
                        field: "Links",
                    });
                }
                links_open = true;
                have_links = true;
                links.push(decode_link(chunk, chunk_at)?);
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
    let mut node = Map::new();
    node.insert("Links", Node::List(links));
    node.insert("Data", data.map_or(Node::Null, Node::Bytes));
    Ok(Node::Map(node))
}

fn decode_link(bytes: &[u8], base: usize) -> Result<Node, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let mut hash: Option<Cid> = None;
    let mut name: Option<Vec<u8>> = None;
    let mut tsize: Option<i64> = None;
    while !reader.done() {
        let tag_at = base + reader.pos;
        let (field, wire_type) = reader
            .tag()
            .map_err(|_| DecodeError::Malformed { offset: tag_at })?;
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
                let chunk = reader
                    .length_delimited()
                    .map_err(|_| DecodeError::Malformed { offset: tag_at })?;
                // Like go-cid's CidFromBytes, read one CID from the front of the field.
                let cid = Cid::read_bytes(chunk)
                    .map_err(|_| DecodeError::InvalidHash { offset: tag_at })?;
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
                let chunk = reader
                    .length_delimited()
                    .map_err(|_| DecodeError::Malformed { offset: tag_at })?;
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
                let value = reader
                    .varint()
                    .map_err(|_| DecodeError::Malformed { offset: tag_at })?;
                // Go stores the varint as int64(v), wrapping values above i64::MAX.
                tsize = Some(value as i64);
            }
            _ => return Err(invalid),
        }
    }
    let Some(hash) = hash else {
        return Err(DecodeError::InvalidHash { offset: base });
    };
    let mut link = Map::new();
    link.insert("Hash", Node::Link(hash));
    link.insert(
        "Name",
        name.map_or(Node::Null, |name| Node::String(Text::from_bytes(name))),
    );
    link.insert(
        "Tsize",
        tsize.map_or(Node::Null, |size| Node::Integer(size.into())),
    );
    Ok(Node::Map(link))
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
                .ok_or(DecodeError::Malformed { offset: start })?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(DecodeError::Malformed { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed { offset: start })
    }

    /// A field tag: field numbers must be 1 ..= 2³¹−1, as `protowire.ConsumeTag` requires.
    fn tag(&mut self) -> Result<(u64, u8), DecodeError> {
        let start = self.pos;
        let value = self.varint()?;
        let field = value >> 3;
        if field == 0 || field > i32::MAX as u64 {
            return Err(DecodeError::Malformed { offset: start });
        }
        Ok((field, (value & 7) as u8))
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.varint()?;
        let remaining = (self.bytes.len() - self.pos) as u64;
        if len > remaining {
            return Err(DecodeError::Malformed { offset: start });
        }
        let end = self.pos + len as usize;
        let chunk = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dag-pb root of `vectors/graphsync/fixture_dagpb.json`.
    const FIXTURE_ROOT: &str = "122b0a240155122063c5cdfc617fb8fe93888e68674717590957a25b5e08219b1a61c3f031f88ee61201611806122b0a2401551220ee8869b8de3c8de510951bc7ef5eed482198e21ed4a71cc9213274898cac21c112016218060a020801";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn fixture_root_decodes_to_go_field_names_and_order() {
        let node = decode(&unhex(FIXTURE_ROOT)).expect("valid dag-pb");
        let map = node.as_map().expect("map");
        assert_eq!(
            map.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            ["Links", "Data"]
        );
        assert_eq!(map.get("Data"), Some(&Node::Bytes(vec![0x08, 0x01])));
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
        let node = decode(&[]).expect("empty node is valid");
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
            Err(DecodeError::InvalidHash { .. })
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
        let node = decode(&bytes).expect("go accepts data first");
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
}
