//! Proptest strategies for messages and identifiers (feature `test-util`).

use ipld_dagcbor::testing::{arb_cid, arb_node};
use ipld_dagcbor::{Node, canonical_key_order};
use proptest::prelude::*;

use crate::ids::{ChannelId, PeerId, TransferId, TypeIdentifier};
use crate::message::{Message, MessageType, Request, Response, non_null};

/// A peer id of arbitrary bytes, including the empty one and bytes that are not UTF-8.
pub fn arb_peer_id() -> impl Strategy<Value = PeerId> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(PeerId::from_bytes)
}

/// A transfer id the wire can carry: `0 ..= TransferId::MAX_WIRE`.
pub fn arb_transfer_id() -> impl Strategy<Value = TransferId> {
    prop_oneof![
        Just(TransferId(0)),
        Just(TransferId(TransferId::MAX_WIRE)),
        (0..=TransferId::MAX_WIRE).prop_map(TransferId),
    ]
}

/// A channel id with arbitrary peers and a wire-sized transfer id.
pub fn arb_channel_id() -> impl Strategy<Value = ChannelId> {
    (arb_peer_id(), arb_peer_id(), arb_transfer_id()).prop_map(|(initiator, responder, id)| {
        ChannelId {
            initiator,
            responder,
            id,
        }
    })
}

/// A type identifier: empty, a name, or arbitrary bytes.
pub fn arb_type_identifier() -> impl Strategy<Value = TypeIdentifier> {
    prop_oneof![
        Just(TypeIdentifier::EMPTY),
        "[A-Za-z/0-9]{1,24}".prop_map(TypeIdentifier::new),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(TypeIdentifier::from_bytes),
    ]
}

/// Any of the eight message types.
pub fn arb_message_type() -> impl Strategy<Value = MessageType> {
    prop::sample::select(MessageType::ALL.to_vec())
}

/// An embedded value (voucher, result, selector), or none; never `Some(Node::Null)`, which
/// the wire cannot tell from none. Maps are in canonical key order, as a decoded message holds
/// them, so that `decode(encode(m)) == m` (node equality is order-sensitive).
pub fn arb_embedded() -> impl Strategy<Value = Option<Node>> {
    prop_oneof![
        Just(None),
        arb_node().prop_map(|node| non_null(canonical(node)))
    ]
}

/// `node` with every map in canonical key order: what decoding its encoding gives.
fn canonical(node: Node) -> Node {
    match node {
        Node::List(items) => Node::List(items.into_iter().map(canonical).collect()),
        Node::Map(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| canonical_key_order(a.as_bytes(), b.as_bytes()));
            Node::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, canonical(value)))
                    .collect(),
            )
        }
        other => other,
    }
}

/// A request with every field arbitrary (within what the wire carries), not only the
/// combinations Go's constructors make.
pub fn arb_request() -> impl Strategy<Value = Request> {
    (
        (
            arb_message_type(),
            arb_transfer_id(),
            prop::option::of(arb_cid()),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (
            arb_embedded(),
            arb_embedded(),
            arb_type_identifier(),
            arb_channel_id(),
        ),
    )
        .prop_map(
            |(
                (message_type, transfer_id, base_cid),
                (paused, partial, pull),
                (selector, voucher, voucher_type, restart_channel),
            )| Request {
                message_type,
                transfer_id,
                base_cid,
                paused,
                partial,
                pull,
                selector,
                voucher,
                voucher_type,
                restart_channel,
            },
        )
}

/// A response with every field arbitrary (within what the wire carries).
pub fn arb_response() -> impl Strategy<Value = Response> {
    (
        arb_message_type(),
        arb_transfer_id(),
        any::<bool>(),
        any::<bool>(),
        arb_embedded(),
        arb_type_identifier(),
    )
        .prop_map(
            |(message_type, transfer_id, accepted, paused, voucher_result, voucher_result_type)| {
                Response {
                    message_type,
                    transfer_id,
                    accepted,
                    paused,
                    voucher_result,
                    voucher_result_type,
                }
            },
        )
}

/// Any message the wire can carry.
pub fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        arb_request().prop_map(Message::Request),
        arb_response().prop_map(Message::Response)
    ]
}
