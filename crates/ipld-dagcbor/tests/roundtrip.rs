//! Property tests: every node round-trips, and no input makes the decoder panic.

use bytes::Bytes;
use ipld_dagcbor::testing::arb_node;
use ipld_dagcbor::{Limits, Node, decode, decode_shared, decode_with, to_vec};
use proptest::prelude::*;

proptest! {
    #[test]
    fn decode_of_encode_is_the_node_in_canonical_order(node in arb_node()) {
        let bytes = to_vec(&node).expect("arb_node stays in range");
        let decoded = decode(&bytes).expect("our own encoding decodes");
        // Re-encoding the decoded node gives the same bytes: the encoding is canonical.
        prop_assert_eq!(to_vec(&decoded).expect("in range"), bytes);
        prop_assert_eq!(canonical(decoded), canonical(node));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_with(&bytes, &Limits::default().with_max_depth(8));
    }

    #[test]
    fn decode_shared_agrees_with_decode_on_any_input(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let limits = Limits::default().with_max_depth(8);
        let shared = decode_shared(&Bytes::from(bytes.clone()), &limits);
        prop_assert_eq!(format!("{shared:?}"), format!("{:?}", decode_with(&bytes, &limits)));
    }

    #[test]
    fn decode_shared_agrees_with_decode_on_long_byte_strings(
        node in arb_node(),
        long in prop::collection::vec(any::<u8>(), 1000..5000),
    ) {
        let node = Node::List(vec![Node::Bytes(long.into()), node]);
        let bytes = Bytes::from(to_vec(&node).expect("in range"));
        let shared = decode_shared(&bytes, &Limits::default()).expect("decodes");
        prop_assert_eq!(shared, decode(&bytes).expect("decodes"));
    }

    #[test]
    fn truncated_encodings_are_errors(node in arb_node(), cut in any::<prop::sample::Index>()) {
        let bytes = to_vec(&node).expect("in range");
        let cut = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..cut]).is_err());
    }
}

/// The node with every map in canonical key order, for comparing across a round trip.
fn canonical(node: Node) -> Node {
    match node {
        Node::List(items) => Node::List(items.into_iter().map(canonical).collect()),
        Node::Map(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| {
                ipld_dagcbor::canonical_key_order(a.as_bytes(), b.as_bytes())
            });
            Node::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        other => other,
    }
}
