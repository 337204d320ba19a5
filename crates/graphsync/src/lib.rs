//! The Graphsync protocol as go-graphsync speaks it: the message model, the byte-exact codec for
//! `/ipfs/graphsync/2.0.0` (DAG-CBOR) and `/ipfs/graphsync/1.0.0` (protobuf), and the pure
//! requester and responder cores, and the libp2p driver that runs them over streams.
//!
//! Place in the stack: layer 1, beneath `datatransfer-graphsync`; it builds on `ipld-dagcbor`
//! for every DAG-CBOR value. The codec and the cores are sans-IO (no async, clock or sockets);
//! only [`protocol`] and [`network`] touch async streams, libp2p and tokio.
//!
//! Main items:
//! - the model: [`Message`] with [`Request`] ([`RequestKind`], [`RequestId`], [`Priority`]),
//!   [`Response`] ([`ResponseStatus`], [`Metadatum`], [`LinkAction`]), [`Block`]
//!   ([`CidPrefix`], [`Block::cid`]) and [`Extensions`] (known names and typed value helpers in
//!   [`extension`]);
//! - [`codec::v2`] and [`codec::v1`] (`encode` / `decode` of message bodies; 1.0.0 integer ids
//!   go through a [`codec::v1::IdMap`]), [`codec::frame`] (varint length prefix, the 4 MiB
//!   limit, an incremental frame decoder), and the errors [`codec::DecodeError`] and
//!   [`codec::EncodeError`];
//! - [`responder`]: the pure responder core ([`responder::Responder`], its
//!   [`responder::Config`], [`responder::Event`]s and hook answers): admission, validation,
//!   traversal in go-ipld-prime's order, Go's message batching, pause/update/cancel, memory
//!   back-pressure.
//! - [`requester`]: the pure requester core ([`requester::Requester`], its
//!   [`requester::Config`], [`requester::Event`]s, typed [`requester::Outcome`]s and hook
//!   decisions): requests with seeded ids and in-progress limits, verification of every
//!   response against a local traversal (go-graphsync's reconciled loader), pause/resume with
//!   restart verification, update, cancel.
//! - [`protocol`]: the protocol ids [`protocol::PROTOCOL_V2`] and [`protocol::PROTOCOL_V1`],
//!   [`protocol::MessageReader`] / [`protocol::write_message`] (one length-prefixed message on
//!   an async stream).
//! - [`network`]: [`Behaviour`] (libp2p-stream based stream control for the swarm) and
//!   [`Node`], the handle of a tokio driver task owning one responder and one requester,
//!   speaking 2.0.0 and 1.0.0, serving from and storing into blockstores (named stores for
//!   hooks to choose), with go-graphsync's hooks and listeners registered at runtime, an async
//!   API for both roles ([`network::RequestHandle`], pause, unpause, update, cancel,
//!   [`network::Stats`]) and its settings in [`network::Config`].
//!
//! Feature `test-util`: proptest strategies and a fixed 1.0.0 id map in `testing`.
//!
//! ```
//! use bytes::BytesMut;
//! use graphsync::codec::{frame, v2};
//! use graphsync::{Extensions, Message, Request, RequestId, extension};
//! use ipld_dagcbor::{Cid, Node};
//!
//! let root: Cid = "bafyreiaeth2oqylkuauom7tbqesf4jlc37dk27v4e4zggaaeccx5riac5e".parse()?;
//! let selector = ipld_dagcbor::decode(&[0xa1, 0x61, b'.', 0xa0])?; // {".": {}}
//! let id = RequestId::new([0x8b; 16]);
//! let request = Request::new(id, root, selector).with_extensions(
//!     Extensions::new().with(extension::DO_NOT_SEND_FIRST_BLOCKS, Some(Node::from(3u64))),
//! );
//! let message = Message::new().with_request(request);
//!
//! // Encode the body, frame it, and read both back.
//! let mut body = BytesMut::new();
//! v2::encode(&message, &mut body)?;
//! let mut stream = BytesMut::new();
//! frame::write_frame(&body, &frame::FrameConfig::default(), &mut stream)?;
//! let received = frame::FrameDecoder::default().decode(&mut stream)?.expect("a whole frame");
//! let decoded = v2::decode(&received)?;
//! assert_eq!(decoded, message);
//! assert_eq!(decoded.requests[0].extensions.do_not_send_first_blocks(), Some(Ok(3)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod block;
pub mod codec;
pub mod extension;
mod message;
pub mod network;
pub mod protocol;
pub mod requester;
pub mod responder;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use block::{CidPrefix, CidPrefixError};
pub use extension::{ExtensionError, Extensions};
pub use message::{
    Block, LinkAction, Message, Metadatum, Priority, Request, RequestId, RequestKind, Response,
    ResponseStatus,
};
pub use network::{Behaviour, Node};
