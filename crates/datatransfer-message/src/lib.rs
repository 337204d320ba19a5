//! Wire types and DAG-CBOR codec of `/fil/datatransfer/1.2.0`, byte for byte as
//! go-data-transfer v1.15.1 writes and reads them.
//!
//! Place in the stack: layer 0, pure (no I/O, clock or randomness). `datatransfer-fsm`,
//! `datatransfer-transport` and `datatransfer-graphsync` build and read messages with it; the
//! same message node rides on a libp2p stream and inside graphsync extensions.
//!
//! Main items:
//! - identifiers: [`PeerId`] (raw multihash bytes, not UTF-8), [`TransferId`] (at most 2⁶³ − 1
//!   on the wire), [`ChannelId`] (printed as Go prints it), [`TypeIdentifier`];
//! - messages: [`Message`] (a [`Request`] or a [`Response`]), [`MessageType`], with Go's
//!   predicates (`is_new`, `is_voucher_result`, …) and constructors ([`new_request`],
//!   [`restart_request`], [`cancel_request`], [`new_response`], [`complete_response`], …).
//!   Vouchers, voucher results and selectors stay raw IPLD [`ipld_dagcbor::Node`]s;
//! - codec: [`encode`] / [`to_vec`], [`decode`] / [`decode_with`] / [`decode_prefix`] (one
//!   message off a stream of several) bounded by [`Limits`], [`Message::to_node`] /
//!   [`Message::from_node`] for graphsync extensions; errors [`EncodeError`], [`DecodeError`].
//!
//! Feature `test-util`: proptest strategies in `testing` (`arb_message()` and friends).
//!
//! ```
//! use bytes::BytesMut;
//! use datatransfer_message::{Message, TransferId, decode, encode, new_request};
//! use ipld_dagcbor::{Map, Node};
//!
//! // A pull request for everything under a root, with a voucher.
//! let root = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?;
//! let everything = Node::Map(Map::new().with(".", Node::empty_map()));
//! let voucher = Node::List(vec![Node::text("my-deal")]);
//! let request = new_request(TransferId(1), true, "FakeDTType".into(), voucher, root, everything);
//! let message = Message::from(request);
//!
//! let mut wire = BytesMut::new();
//! encode(&message, &mut wire)?;
//! let received = decode(&wire)?;
//! assert_eq!(received, message);
//! let request = received.as_request().expect("IsRq was true");
//! assert!(request.is_new() && request.is_pull());
//! assert_eq!(request.voucher_type().as_str(), Some("FakeDTType"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod error;
mod ids;
mod message;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use codec::{Limits, decode, decode_prefix, decode_with, encode, to_vec};
pub use error::{DecodeError, EncodeError};
pub use ids::{ChannelId, PeerId, TransferId, TypeIdentifier};
pub use message::{
    Message, MessageType, Request, Response, cancel_request, cancel_response, complete_response,
    new_request, new_response, restart_existing_channel_request, restart_request, restart_response,
    update_request, update_response, voucher_request, voucher_result_response,
};
