//! Conversions between [`Node`] and `ipld_core::ipld::Ipld`.

use ipld_core::ipld::Ipld;

use crate::node::{Map, Node, Text};

/// A [`Node`] that `Ipld` cannot represent: a text string (or map key) that is not UTF-8.
#[derive(Debug, thiserror::Error)]
#[error("text of {len} bytes is not utf-8")]
pub struct NotIpldError {
    /// The byte length of the offending text.
    pub len: usize,
}

impl From<Ipld> for Node {
    /// Converts an `Ipld` value. Its maps come in `BTreeMap` order; encoding re-sorts them.
    fn from(value: Ipld) -> Self {
        match value {
            Ipld::Null => Node::Null,
            Ipld::Bool(value) => Node::Bool(value),
            Ipld::Integer(value) => Node::Integer(value),
            Ipld::Float(value) => Node::Float(value),
            Ipld::String(value) => Node::String(value.into()),
            Ipld::Bytes(value) => Node::Bytes(value.into()),
            Ipld::List(items) => Node::List(items.into_iter().map(Node::from).collect()),
            Ipld::Map(entries) => Node::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Node::from(v)))
                    .collect(),
            ),
            Ipld::Link(cid) => Node::Link(cid),
        }
    }
}

impl TryFrom<Node> for Ipld {
    type Error = NotIpldError;

    /// Converts a node whose every text is UTF-8.
    ///
    /// # Errors
    /// [`NotIpldError`] for the first text or key that is not UTF-8.
    fn try_from(node: Node) -> Result<Self, Self::Error> {
        Ok(match node {
            Node::Null => Ipld::Null,
            Node::Bool(value) => Ipld::Bool(value),
            Node::Integer(value) => Ipld::Integer(value),
            Node::Float(value) => Ipld::Float(value),
            Node::String(text) => Ipld::String(utf8(text)?),
            Node::Bytes(bytes) => Ipld::Bytes(bytes.into()),
            Node::List(items) => Ipld::List(
                items
                    .into_iter()
                    .map(Ipld::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(map) => Ipld::Map(ipld_map(map)?),
            Node::Link(cid) => Ipld::Link(cid),
        })
    }
}

fn ipld_map(map: Map) -> Result<std::collections::BTreeMap<String, Ipld>, NotIpldError> {
    map.into_iter()
        .map(|(key, value)| Ok((utf8(key)?, Ipld::try_from(value)?)))
        .collect()
}

fn utf8(text: Text) -> Result<String, NotIpldError> {
    let len = text.len();
    String::from_utf8(text.into_bytes()).map_err(|_| NotIpldError { len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways_when_all_text_is_utf8() {
        let node = Node::Map(Map::new().with("a", Node::List(vec![Node::text("x"), 7u64.into()])));
        let ipld = Ipld::try_from(node.clone()).expect("utf-8 only");
        assert_eq!(Node::from(ipld), node);
    }

    #[test]
    fn refuses_text_that_is_not_utf8() {
        let node = Node::List(vec![Node::String(Text::from_bytes([0xff]))]);
        let error = Ipld::try_from(node).expect_err("not utf-8");
        assert_eq!(error.len, 1);
    }
}
