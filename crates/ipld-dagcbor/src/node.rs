//! The IPLD data-model value: [`Node`], with [`Text`] and [`Map`].

use std::fmt;

use bytes::Bytes;
use cid::Cid;

/// One IPLD data-model value as it travels in DAG-CBOR.
///
/// Unlike `ipld_core::ipld::Ipld`, a `Node` keeps map entries in the order the bytes held them
/// (traversal order depends on it) and keeps text strings as raw bytes (Go puts peer ids and
/// arbitrary bytes in CBOR text strings).
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// CBOR `null`.
    Null,
    /// CBOR `true` or `false`.
    Bool(bool),
    /// An integer; CBOR can carry −2⁶⁴ … 2⁶⁴−1.
    Integer(i128),
    /// A floating-point number.
    Float(f64),
    /// A text string, whose bytes need not be UTF-8.
    String(Text),
    /// A byte string.
    Bytes(Bytes),
    /// A list.
    List(Vec<Node>),
    /// A map with text keys, in wire order.
    Map(Map),
    /// A link (CBOR tag 42).
    Link(Cid),
}

impl Node {
    /// The smallest integer a CBOR integer can hold: −2⁶⁴.
    pub const MIN_INTEGER: i128 = -(1 << 64);
    /// The largest integer a CBOR integer can hold: 2⁶⁴ − 1.
    pub const MAX_INTEGER: i128 = (1 << 64) - 1;

    /// A text node from a string.
    pub fn text(value: impl Into<Text>) -> Self {
        Node::String(value.into())
    }

    /// An empty map node.
    pub fn empty_map() -> Self {
        Node::Map(Map::new())
    }

    /// The kind of this node, for error messages.
    pub fn kind(&self) -> Kind {
        match self {
            Node::Null => Kind::Null,
            Node::Bool(_) => Kind::Bool,
            Node::Integer(_) => Kind::Integer,
            Node::Float(_) => Kind::Float,
            Node::String(_) => Kind::String,
            Node::Bytes(_) => Kind::Bytes,
            Node::List(_) => Kind::List,
            Node::Map(_) => Kind::Map,
            Node::Link(_) => Kind::Link,
        }
    }

    /// The map, if this node is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Node::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The list, if this node is one.
    pub fn as_list(&self) -> Option<&[Node]> {
        match self {
            Node::List(list) => Some(list),
            _ => None,
        }
    }

    /// The text, if this node is a text string.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Node::String(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, if this node is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Node::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The integer, if this node is one.
    pub fn as_integer(&self) -> Option<i128> {
        match self {
            Node::Integer(value) => Some(*value),
            _ => None,
        }
    }

    /// The boolean, if this node is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Node::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The link, if this node is one.
    pub fn as_link(&self) -> Option<&Cid> {
        match self {
            Node::Link(cid) => Some(cid),
            _ => None,
        }
    }

    /// Whether this node is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }
}

impl From<bool> for Node {
    fn from(value: bool) -> Self {
        Node::Bool(value)
    }
}

impl From<i64> for Node {
    fn from(value: i64) -> Self {
        Node::Integer(value.into())
    }
}

impl From<u64> for Node {
    fn from(value: u64) -> Self {
        Node::Integer(value.into())
    }
}

impl From<&str> for Node {
    fn from(value: &str) -> Self {
        Node::text(value)
    }
}

impl From<Cid> for Node {
    fn from(value: Cid) -> Self {
        Node::Link(value)
    }
}

impl From<Map> for Node {
    fn from(value: Map) -> Self {
        Node::Map(value)
    }
}

impl From<Vec<Node>> for Node {
    fn from(value: Vec<Node>) -> Self {
        Node::List(value)
    }
}

/// The kind of a [`Node`], named as the IPLD data model names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// A boolean.
    Bool,
    /// An integer.
    Integer,
    /// A float.
    Float,
    /// A text string.
    String,
    /// A byte string.
    Bytes,
    /// A list.
    List,
    /// A map.
    Map,
    /// A link.
    Link,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Integer => "int",
            Kind::Float => "float",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::List => "list",
            Kind::Map => "map",
            Kind::Link => "link",
        };
        f.write_str(name)
    }
}

/// The content of a CBOR text string: bytes that are usually, but not always, UTF-8.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Vec<u8>);

impl Text {
    /// Text holding these bytes, UTF-8 or not.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Text(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text as a `&str`, if its bytes are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The raw bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The byte length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Text {
    fn from(value: &str) -> Self {
        Text(value.as_bytes().to_vec())
    }
}

impl From<String> for Text {
    fn from(value: String) -> Self {
        Text(value.into_bytes())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => fmt::Debug::fmt(text, f),
            None => write!(f, "Text(0x{})", HexBytes(&self.0)),
        }
    }
}

impl fmt::Display for Text {
    /// Prints the text, with any byte that is not part of valid UTF-8 replaced by U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// A map with text keys whose entries keep the order in which they were decoded or inserted.
///
/// Keys are unique: the decoder rejects repeated keys and [`Map::insert`] replaces in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map(Vec<(Text, Node)>);

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Map(Vec::new())
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`: replaces the value in place if the key exists, else appends.
    /// Returns the previous value.
    pub fn insert(&mut self, key: impl Into<Text>, value: Node) -> Option<Node> {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => Some(std::mem::replace(slot, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    /// Adds `value` under `key`, builder style (replacing as [`Map::insert`] does).
    pub fn with(mut self, key: impl Into<Text>, value: impl Into<Node>) -> Self {
        self.insert(key, value.into());
        self
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Text, &Node)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The entry at position `index` in map order, if the map has that many entries.
    ///
    /// This is O(1), for walkers that resume an iteration by position.
    pub fn get_index(&self, index: usize) -> Option<(&Text, &Node)> {
        self.0.get(index).map(|(k, v)| (k, v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Text> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in DAG-CBOR canonical order: shorter keys first, then bytewise.
    pub fn canonical_entries(&self) -> Vec<(&Text, &Node)> {
        let mut entries: Vec<_> = self.iter().collect();
        entries.sort_by(|(a, _), (b, _)| canonical_key_order(a.as_bytes(), b.as_bytes()));
        entries
    }

    pub(crate) fn push_unchecked(&mut self, key: Text, value: Node) {
        self.0.push((key, value));
    }
}

impl IntoIterator for Map {
    type Item = (Text, Node);
    type IntoIter = std::vec::IntoIter<(Text, Node)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Into<Text>> FromIterator<(K, Node)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, Node)>>(iter: I) -> Self {
        let mut map = Map::new();
        for (key, value) in iter {
            map.insert(key, value);
        }
        map
    }
}

/// Orders map keys as DAG-CBOR (RFC 7049 canonical form) does: by length, then bytewise.
pub fn canonical_key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_index_follows_insertion_order() {
        let map = Map::new().with("b", 1u64).with("a", 2u64);
        let (key, value) = map.get_index(0).expect("two entries");
        assert_eq!(key, "b");
        assert_eq!(value, &Node::from(1u64));
        let (key, value) = map.get_index(1).expect("two entries");
        assert_eq!(key, "a");
        assert_eq!(value, &Node::from(2u64));
        assert!(map.get_index(2).is_none());
    }
}
