//! Proptest strategies for the message types, and a fixed 1.0.0 id mapping (feature
//! `test-util`).

use bytes::Bytes;
use ipld_dagcbor::testing::{arb_cid, arb_node, arb_text};
use ipld_dagcbor::{Node, Text};
use proptest::prelude::*;

use crate::block::CidPrefix;
use crate::codec::EncodeError;
use crate::codec::v1::IdMap;
use crate::extension::{Extensions, RESPONSE_METADATA};
use crate::message::{
    Block, LinkAction, Message, Metadatum, Priority, Request, RequestId, RequestKind, Response,
    ResponseStatus,
};

/// Any request id.
pub fn arb_request_id() -> impl Strategy<Value = RequestId> {
    any::<[u8; 16]>().prop_map(RequestId::new)
}

/// A node in the form decoding gives back: maps in canonical key order. Selectors and
/// extension values must be canonical for `decode(encode(m)) == m`, since the encoders write
/// canonical DAG-CBOR.
pub fn arb_canonical_node() -> impl Strategy<Value = Node> {
    arb_node().prop_map(|node| {
        let bytes = ipld_dagcbor::to_vec(&node).expect("arb_node stays in the cbor range");
        ipld_dagcbor::decode(&bytes).expect("canonical bytes decode")
    })
}

/// Extensions with any names (raw text, UTF-8 or not) and values, some without data.
pub fn arb_extensions() -> impl Strategy<Value = Extensions> {
    prop::collection::vec((arb_text(), prop::option::of(arb_canonical_node())), 0..4)
        .prop_map(|entries| entries.into_iter().collect())
}

/// Extensions that 1.0.0 can carry: UTF-8 names, none named `graphsync/response-metadata`.
pub fn arb_extensions_v1() -> impl Strategy<Value = Extensions> {
    prop::collection::vec(
        (
            "[a-zA-Z0-9/_.-]{0,16}",
            prop::option::of(arb_canonical_node()),
        ),
        0..4,
    )
    .prop_map(|entries| {
        entries
            .into_iter()
            .filter(|(name, _)| name != RESPONSE_METADATA)
            .map(|(name, value)| (Text::from(name), value))
            .collect()
    })
}

/// Any request kind.
pub fn arb_request_kind() -> impl Strategy<Value = RequestKind> {
    prop_oneof![
        (arb_cid(), arb_canonical_node(), any::<i32>()).prop_map(|(root, selector, priority)| {
            RequestKind::New {
                root,
                selector,
                priority: Priority(priority),
            }
        }),
        Just(RequestKind::Cancel),
        Just(RequestKind::Update),
    ]
}

/// Any encodable request with extensions from `extensions` (none on a cancel).
pub fn arb_request_with(
    extensions: impl Strategy<Value = Extensions>,
) -> impl Strategy<Value = Request> {
    (arb_request_id(), arb_request_kind(), extensions).prop_map(|(id, kind, extensions)| {
        let extensions = if kind == RequestKind::Cancel {
            Extensions::new()
        } else {
            extensions
        };
        Request {
            id,
            kind,
            extensions,
        }
    })
}

/// Any status.
pub fn arb_status() -> impl Strategy<Value = ResponseStatus> {
    prop::sample::select(ResponseStatus::ALL.to_vec())
}

/// Any metadatum whose action is drawn from `actions`.
pub fn arb_metadatum(actions: Vec<LinkAction>) -> impl Strategy<Value = Metadatum> {
    (arb_cid(), prop::sample::select(actions)).prop_map(|(link, action)| Metadatum { link, action })
}

/// Any block whose prefix a peer accepts (its data need not match any particular CID).
pub fn arb_block() -> impl Strategy<Value = Block> {
    let prefix = prop_oneof![
        Just(CidPrefix::V0),
        (
            prop::sample::select(vec![0x55u64, 0x70, 0x71, 0x0129, 0xb1_0000]),
            prop::sample::select(vec![
                (0x00u64, 0u64),
                (0x12, 32),
                (0x12, 20),
                (0x13, 64),
                (0xb220, 32),
                (0x1e, 32)
            ]),
        )
            .prop_map(|(codec, (mh_code, mh_len))| CidPrefix::v1(codec, mh_code, mh_len)),
    ];
    (prefix, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(prefix, data)| Block {
        prefix,
        data: Bytes::from(data),
    })
}

/// Any 2.0.0 message: unique ids, any actions and extensions.
pub fn arb_message() -> impl Strategy<Value = Message> {
    arb_message_with(arb_extensions, LinkAction::ALL.to_vec())
}

/// Any message 1.0.0 can carry without loss: UTF-8 extension names other than
/// `graphsync/response-metadata`, and only the actions `Present` and `Missing` (1.0.0 folds the
/// others into `Missing`).
pub fn arb_message_v1() -> impl Strategy<Value = Message> {
    arb_message_with(
        arb_extensions_v1,
        vec![LinkAction::Present, LinkAction::Missing],
    )
}

fn arb_message_with<E: Strategy<Value = Extensions> + 'static>(
    extensions: fn() -> E,
    actions: Vec<LinkAction>,
) -> impl Strategy<Value = Message> {
    let response = (
        arb_request_id(),
        arb_status(),
        prop::collection::vec(arb_metadatum(actions), 0..4),
        extensions(),
    )
        .prop_map(|(id, status, metadata, extensions)| Response {
            id,
            status,
            metadata,
            extensions,
        });
    (
        prop::collection::vec(arb_request_with(extensions()), 0..3),
        prop::collection::vec(response, 0..3),
        prop::collection::vec(arb_block(), 0..3),
    )
        .prop_map(|(requests, responses, blocks)| {
            let mut seen = std::collections::HashSet::new();
            let requests = requests.into_iter().filter(|r| seen.insert(r.id)).collect();
            seen.clear();
            let responses = responses
                .into_iter()
                .filter(|r| seen.insert(r.id))
                .collect();
            Message {
                requests,
                responses,
                blocks,
            }
        })
}

/// An [`IdMap`] that needs no state: integer `n` is the request id of twelve zero bytes followed
/// by `n` big-endian, in both directions. Ids of another shape have no integer.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedIds;

impl FixedIds {
    /// The request id standing for integer `wire`.
    pub fn id(wire: i32) -> RequestId {
        let mut bytes = [0u8; 16];
        bytes[12..].copy_from_slice(&wire.to_be_bytes());
        RequestId::new(bytes)
    }

    fn wire(id: RequestId) -> Result<i32, EncodeError> {
        let bytes = id.as_bytes();
        if bytes[..12].iter().any(|&byte| byte != 0) {
            return Err(EncodeError::UnmappedRequestId { id });
        }
        let mut wire = [0u8; 4];
        wire.copy_from_slice(&bytes[12..]);
        Ok(i32::from_be_bytes(wire))
    }
}

impl IdMap for FixedIds {
    fn outgoing_request(&mut self, id: RequestId) -> Result<i32, EncodeError> {
        Self::wire(id)
    }

    fn outgoing_response(&mut self, id: RequestId) -> Result<i32, EncodeError> {
        Self::wire(id)
    }

    fn incoming_request(&mut self, wire: i32) -> RequestId {
        Self::id(wire)
    }

    fn incoming_response(&mut self, wire: i32) -> RequestId {
        Self::id(wire)
    }
}

/// Any message 1.0.0 can carry whose ids [`FixedIds`] maps.
pub fn arb_message_v1_fixed_ids() -> impl Strategy<Value = Message> {
    (arb_message_v1(), any::<u32>()).prop_map(|(mut message, base)| {
        let base = base as i32;
        for (offset, request) in message.requests.iter_mut().enumerate() {
            request.id = FixedIds::id(base.wrapping_add(offset as i32));
        }
        for (offset, response) in message.responses.iter_mut().enumerate() {
            response.id = FixedIds::id(base.wrapping_sub(1 + offset as i32));
        }
        message
    })
}
