//! Proptest strategies for [`Node`] (feature `test-util`).

use cid::Cid;
use multihash::Multihash;
use proptest::prelude::*;

use crate::node::{Map, Node, Text};

/// Any CIDv1 with a sha2-256-sized digest, or a CIDv0.
pub fn arb_cid() -> impl Strategy<Value = Cid> {
    (
        any::<bool>(),
        prop::sample::select(vec![0x55u64, 0x70, 0x71]),
        any::<[u8; 32]>(),
    )
        .prop_map(|(v0, codec, digest)| {
            let hash = Multihash::wrap(0x12, &digest).expect("32 bytes fit a multihash");
            if v0 {
                Cid::new_v0(hash).expect("sha2-256 digest")
            } else {
                Cid::new_v1(codec, hash)
            }
        })
}

/// Text of arbitrary bytes, UTF-8 or not.
pub fn arb_text() -> impl Strategy<Value = Text> {
    prop_oneof![
        "[a-zA-Z0-9/_-]{0,12}".prop_map(Text::from),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Text::from_bytes),
    ]
}

/// Any node whose encoding round-trips exactly: no NaN (it is not equal to itself), keys
/// unique, nesting at most four deep.
pub fn arb_node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        Just(Node::Null),
        any::<bool>().prop_map(Node::Bool),
        (Node::MIN_INTEGER..=Node::MAX_INTEGER).prop_map(Node::Integer),
        any::<i64>().prop_map(Node::from),
        any::<f64>()
            .prop_filter("nan is not equal to itself", |f| !f.is_nan())
            .prop_map(Node::Float),
        arb_text().prop_map(Node::String),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|bytes| Node::Bytes(bytes.into())),
        arb_cid().prop_map(Node::Link),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Node::List),
            prop::collection::vec((arb_text(), inner), 0..6)
                .prop_map(|entries| Node::Map(entries.into_iter().collect::<Map>())),
        ]
    })
}
