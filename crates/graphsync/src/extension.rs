//! Extensions: the name → value map of requests and responses, the names go-graphsync knows,
//! and typed helpers for their values (spec §5).

use cid::Cid;
use ipld_dagcbor::{Kind, Map, Node, Text, canonical_key_order};

use crate::message::{LinkAction, Metadatum};

/// Request extension: blocks with these CIDs are never sent (value: a list of links).
pub const DO_NOT_SEND_CIDS: &str = "graphsync/do-not-send-cids";
/// Request extension: the first N link loads get metadata but no block (value: an int).
pub const DO_NOT_SEND_FIRST_BLOCKS: &str = "graphsync/do-not-send-first-blocks";
/// Request extension: requests with the same key share a dedup pool (value: a string).
pub const DEDUP_BY_KEY: &str = "graphsync/dedup-by-key";
/// Response extension of protocol 1.0.0 only, carrying the link metadata
/// (value: `[{"link": Link, "blockPresent": Bool}]`). On 2.0.0 it is an ordinary name.
pub const RESPONSE_METADATA: &str = "graphsync/response-metadata";

/// The extensions of a request or response: names mapped to an optional IPLD value (a CBOR
/// `null` on the wire is `None`).
///
/// Entries are kept sorted in DAG-CBOR canonical key order (shorter names first, then
/// bytewise), which is the order both encoders write. Names are raw text bytes, as on the wire.
///
/// # Examples
/// ```
/// use graphsync::{Extensions, extension};
/// use ipld_dagcbor::Node;
///
/// let extensions = Extensions::new()
///     .with(extension::DO_NOT_SEND_FIRST_BLOCKS, Some(Node::from(3u64)))
///     .with(extension::DEDUP_BY_KEY, Some(Node::from("key")));
/// let names: Vec<String> = extensions.iter().map(|(name, _)| name.to_string()).collect();
/// assert_eq!(names, [extension::DEDUP_BY_KEY, extension::DO_NOT_SEND_FIRST_BLOCKS]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extensions(Vec<(Text, Option<Node>)>);

impl Extensions {
    /// No extensions.
    pub fn new() -> Self {
        Extensions(Vec::new())
    }

    /// Sets `name` to `value`, replacing any earlier value, and returns the earlier one.
    /// `Some(Node::Null)` is stored as `None`, since both travel as `null`.
    pub fn insert(&mut self, name: impl Into<Text>, value: Option<Node>) -> Option<Option<Node>> {
        let name = name.into();
        let value = value.filter(|node| !node.is_null());
        match self.0.binary_search_by(|(existing, _)| {
            canonical_key_order(existing.as_bytes(), name.as_bytes())
        }) {
            Ok(index) => Some(std::mem::replace(&mut self.0[index].1, value)),
            Err(index) => {
                self.0.insert(index, (name, value));
                None
            }
        }
    }

    /// Adds `name` = `value`, builder style (as [`Extensions::insert`]).
    pub fn with(mut self, name: impl Into<Text>, value: Option<Node>) -> Self {
        self.insert(name, value);
        self
    }

    /// The value of `name`: `None` if absent, `Some(None)` if present with no data.
    pub fn get(&self, name: &str) -> Option<Option<&Node>> {
        self.position(name.as_bytes())
            .map(|index| self.0[index].1.as_ref())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name.as_bytes()).is_some()
    }

    /// Removes `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Option<Node>> {
        self.position(name.as_bytes())
            .map(|index| self.0.remove(index).1)
    }

    /// The entries, in canonical order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Text, Option<&Node>)> {
        self.0.iter().map(|(name, value)| (name, value.as_ref()))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &[u8]) -> Option<usize> {
        self.0
            .binary_search_by(|(existing, _)| canonical_key_order(existing.as_bytes(), name))
            .ok()
    }
}

impl<N: Into<Text>> FromIterator<(N, Option<Node>)> for Extensions {
    fn from_iter<I: IntoIterator<Item = (N, Option<Node>)>>(iter: I) -> Self {
        let mut extensions = Extensions::new();
        for (name, value) in iter {
            extensions.insert(name, value);
        }
        extensions
    }
}

impl IntoIterator for Extensions {
    type Item = (Text, Option<Node>);
    type IntoIter = std::vec::IntoIter<(Text, Option<Node>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Why an extension value does not have the shape its name requires.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The value, or a part of it, is of the wrong kind.
    #[error("{name}: expected {expected} at {at}, found {found}")]
    WrongKind {
        /// The extension name.
        name: &'static str,
        /// Where in the value (`"value"`, `"value[2].link"`…).
        at: String,
        /// The kind required.
        expected: &'static str,
        /// The kind found.
        found: Kind,
    },
    /// The value is absent (the extension carries `null`).
    #[error("{name}: the extension has no value")]
    NoValue {
        /// The extension name.
        name: &'static str,
    },
    /// A map in the value lacks a field.
    #[error("{name}: missing field {field} at {at}")]
    MissingField {
        /// The extension name.
        name: &'static str,
        /// Where in the value.
        at: String,
        /// The missing field.
        field: &'static str,
    },
    /// A map in the value has a field the schema does not name.
    #[error("{name}: unknown field {field:?} at {at}")]
    UnknownField {
        /// The extension name.
        name: &'static str,
        /// Where in the value.
        at: String,
        /// The unknown field, printed lossily.
        field: String,
    },
    /// An integer outside the range Go reads it into.
    #[error("{name}: integer {value} is out of range")]
    OutOfRange {
        /// The extension name.
        name: &'static str,
        /// The integer.
        value: i128,
    },
}

/// The value of [`DO_NOT_SEND_CIDS`]: a list of links, in the given order.
pub fn encode_do_not_send_cids(cids: &[Cid]) -> Node {
    Node::List(cids.iter().copied().map(Node::Link).collect())
}

/// Reads a [`DO_NOT_SEND_CIDS`] value.
///
/// # Errors
/// [`ExtensionError::WrongKind`] when it is not a list of links (Go answers 32 then).
pub fn decode_do_not_send_cids(value: &Node) -> Result<Vec<Cid>, ExtensionError> {
    let name = DO_NOT_SEND_CIDS;
    let items = value
        .as_list()
        .ok_or_else(|| wrong_kind(name, "value".into(), "list", value))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_link()
                .copied()
                .ok_or_else(|| wrong_kind(name, format!("value[{index}]"), "link", item))
        })
        .collect()
}

/// The value of [`DO_NOT_SEND_FIRST_BLOCKS`]: an int.
pub fn encode_do_not_send_first_blocks(count: i64) -> Node {
    Node::from(count)
}

/// Reads a [`DO_NOT_SEND_FIRST_BLOCKS`] value (Go reads it as an int64).
///
/// # Errors
/// [`ExtensionError::WrongKind`] when it is not an int, [`ExtensionError::OutOfRange`] when
/// it does not fit an `i64`.
pub fn decode_do_not_send_first_blocks(value: &Node) -> Result<i64, ExtensionError> {
    let name = DO_NOT_SEND_FIRST_BLOCKS;
    let int = value
        .as_integer()
        .ok_or_else(|| wrong_kind(name, "value".into(), "int", value))?;
    i64::try_from(int).map_err(|_| ExtensionError::OutOfRange { name, value: int })
}

/// The value of [`DEDUP_BY_KEY`]: a string.
pub fn encode_dedup_by_key(key: impl Into<Text>) -> Node {
    Node::String(key.into())
}

/// Reads a [`DEDUP_BY_KEY`] value.
///
/// # Errors
/// [`ExtensionError::WrongKind`] when it is not a string.
pub fn decode_dedup_by_key(value: &Node) -> Result<Text, ExtensionError> {
    value
        .as_text()
        .cloned()
        .ok_or_else(|| wrong_kind(DEDUP_BY_KEY, "value".into(), "string", value))
}

/// The 1.0.0 value of [`RESPONSE_METADATA`]: `[{"link": Link, "blockPresent": Bool}]`.
///
/// `blockPresent` is true only for [`LinkAction::Present`], as in Go: the other actions all
/// read back as [`LinkAction::Missing`].
pub fn encode_response_metadata(metadata: &[Metadatum]) -> Node {
    Node::List(
        metadata
            .iter()
            .map(|entry| {
                Node::Map(
                    Map::new()
                        .with("link", entry.link)
                        .with("blockPresent", entry.action == LinkAction::Present),
                )
            })
            .collect(),
    )
}

/// Reads a 1.0.0 [`RESPONSE_METADATA`] value: `blockPresent` true is
/// [`LinkAction::Present`], false is [`LinkAction::Missing`]. Like Go's schema decoder it
/// requires both fields and refuses others.
///
/// # Errors
/// The [`ExtensionError`] naming the first entry that does not fit.
pub fn decode_response_metadata(value: &Node) -> Result<Vec<Metadatum>, ExtensionError> {
    let name = RESPONSE_METADATA;
    let items = value
        .as_list()
        .ok_or_else(|| wrong_kind(name, "value".into(), "list", value))?;
    let mut metadata = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = format!("value[{index}]");
        let map = item
            .as_map()
            .ok_or_else(|| wrong_kind(name, at.clone(), "map", item))?;
        let mut link = None;
        let mut present = None;
        for (key, field) in map.iter() {
            match key.as_bytes() {
                b"link" => {
                    let cid = field
                        .as_link()
                        .ok_or_else(|| wrong_kind(name, format!("{at}.link"), "link", field))?;
                    link = Some(*cid);
                }
                b"blockPresent" => {
                    let flag = field.as_bool().ok_or_else(|| {
                        wrong_kind(name, format!("{at}.blockPresent"), "bool", field)
                    })?;
                    present = Some(flag);
                }
                _ => {
                    return Err(ExtensionError::UnknownField {
                        name,
                        at,
                        field: key.to_string(),
                    });
                }
            }
        }
        let link = link.ok_or_else(|| ExtensionError::MissingField {
            name,
            at: at.clone(),
            field: "link",
        })?;
        let present = present.ok_or(ExtensionError::MissingField {
            name,
            at,
            field: "blockPresent",
        })?;
        let action = if present {
            LinkAction::Present
        } else {
            LinkAction::Missing
        };
        metadata.push(Metadatum { link, action });
    }
    Ok(metadata)
}

impl Extensions {
    /// The [`DO_NOT_SEND_CIDS`] extension, if present.
    ///
    /// # Errors
    /// As [`decode_do_not_send_cids`], or [`ExtensionError::NoValue`] for a `null` value.
    pub fn do_not_send_cids(&self) -> Option<Result<Vec<Cid>, ExtensionError>> {
        self.typed(DO_NOT_SEND_CIDS, decode_do_not_send_cids)
    }

    /// The [`DO_NOT_SEND_FIRST_BLOCKS`] extension, if present.
    ///
    /// # Errors
    /// As [`decode_do_not_send_first_blocks`], or [`ExtensionError::NoValue`].
    pub fn do_not_send_first_blocks(&self) -> Option<Result<i64, ExtensionError>> {
        self.typed(DO_NOT_SEND_FIRST_BLOCKS, decode_do_not_send_first_blocks)
    }

    /// The [`DEDUP_BY_KEY`] extension, if present.
    ///
    /// # Errors
    /// As [`decode_dedup_by_key`], or [`ExtensionError::NoValue`].
    pub fn dedup_by_key(&self) -> Option<Result<Text, ExtensionError>> {
        self.typed(DEDUP_BY_KEY, decode_dedup_by_key)
    }

    fn typed<T>(
        &self,
        name: &'static str,
        decode: impl FnOnce(&Node) -> Result<T, ExtensionError>,
    ) -> Option<Result<T, ExtensionError>> {
        self.get(name).map(|value| match value {
            Some(node) => decode(node),
            None => Err(ExtensionError::NoValue { name }),
        })
    }
}

fn wrong_kind(
    name: &'static str,
    at: String,
    expected: &'static str,
    found: &Node,
) -> ExtensionError {
    ExtensionError::WrongKind {
        name,
        at,
        expected,
        found: found.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_names_in_canonical_order_and_replaces_in_place() {
        let mut extensions = Extensions::new()
            .with("bb", Some(Node::from(1u64)))
            .with("a", None)
            .with("ab", Some(Node::from(2u64)));
        let names: Vec<String> = extensions.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["a", "ab", "bb"]);
        assert_eq!(
            extensions.insert("ab", Some(Node::from(3u64))),
            Some(Some(Node::from(2u64)))
        );
        assert_eq!(extensions.get("ab"), Some(Some(&Node::from(3u64))));
        assert_eq!(extensions.get("a"), Some(None));
        assert_eq!(extensions.get("c"), None);
        assert_eq!(extensions.remove("a"), Some(None));
        assert_eq!(extensions.len(), 2);
    }

    #[test]
    fn a_null_value_is_stored_as_no_value() {
        let extensions = Extensions::new().with("x", Some(Node::Null));
        assert_eq!(extensions.get("x"), Some(None));
    }

    #[test]
    fn typed_accessors_report_wrong_kinds() {
        let extensions = Extensions::new()
            .with(DO_NOT_SEND_FIRST_BLOCKS, Some(Node::from("three")))
            .with(DEDUP_BY_KEY, None)
            .with(DO_NOT_SEND_CIDS, Some(Node::List(vec![Node::from(1u64)])));
        assert!(matches!(
            extensions.do_not_send_first_blocks(),
            Some(Err(ExtensionError::WrongKind {
                found: Kind::String,
                ..
            }))
        ));
        assert_eq!(
            extensions.dedup_by_key(),
            Some(Err(ExtensionError::NoValue { name: DEDUP_BY_KEY }))
        );
        assert!(matches!(
            extensions.do_not_send_cids(),
            Some(Err(ExtensionError::WrongKind { ref at, .. })) if at == "value[0]"
        ));
    }

    #[test]
    fn response_metadata_needs_exactly_link_and_block_present() {
        let cid = Cid::default();
        let extra = Node::List(vec![Node::Map(
            Map::new()
                .with("link", cid)
                .with("blockPresent", true)
                .with("x", 1u64),
        )]);
        assert!(matches!(
            decode_response_metadata(&extra),
            Err(ExtensionError::UnknownField { ref field, .. }) if field == "x"
        ));
        let missing = Node::List(vec![Node::Map(Map::new().with("link", cid))]);
        assert!(matches!(
            decode_response_metadata(&missing),
            Err(ExtensionError::MissingField {
                field: "blockPresent",
                ..
            })
        ));
    }

    #[test]
    fn response_metadata_collapses_actions_to_present_or_missing() {
        let cid = Cid::default();
        let metadata: Vec<Metadatum> = LinkAction::ALL
            .into_iter()
            .map(|action| Metadatum::new(cid, action))
            .collect();
        let back = decode_response_metadata(&encode_response_metadata(&metadata)).expect("decodes");
        let actions: Vec<LinkAction> = back.into_iter().map(|m| m.action).collect();
        assert_eq!(
            actions,
            [
                LinkAction::Present,
                LinkAction::Missing,
                LinkAction::Missing,
                LinkAction::Missing
            ]
        );
    }
}
