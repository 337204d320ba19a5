//! Data transfer between libp2p peers, wire compatible with go-data-transfer v1.15.1.
//!
//! Place in the stack: layer 3, the facade a user depends on alone. It is the only place where
//! I/O, the clock, the store and the state machine (`datatransfer-fsm`) meet.
//!
//! Main items:
//! - [`Manager`] with its [`Config`]: one node's transfers over a
//!   [`Transport`] (the data), a
//!   [`Network`] (the `/fil/datatransfer/1.2.0` messages) and a
//!   [`ChannelStore`] (`MemStore` or `SledStore`): start,
//!   stop, on-ready, registrations, open push and pull, send voucher, close, pause, resume,
//!   status, channel state, in-progress channels, restart, and subscriptions;
//! - [`Event`] and [`Subscription`]: what subscribers see, through bounded queues (a slow
//!   subscriber loses its oldest events and is told how many, the manager never waits);
//! - [`Voucher`] and [`VoucherResult`]: the application's voucher types (a type identifier and
//!   an IPLD form in [`ipld_dagcbor::Node`]);
//! - [`RequestValidator`], [`Revalidator`] and [`TransportConfigurer`], answering with a
//!   [`Decision`] (accept, pause as Go's `ErrPause`, resume as `ErrResume`, reject);
//! - [`Registry`]: the registered types, and how the state machine's validation questions are
//!   answered from them (an unknown voucher type is rejected with Go's reason);
//! - [`MonitorConfig`]: the channel monitor (off by default, as in Go): accept and complete
//!   timeouts, automatic restarts after transport errors (debounced, backed off, capped) and a
//!   no-progress window; its decisions reach subscribers as [`Event::Monitor`] with a
//!   [`MonitorEvent`], and a channel it fails carries a [`MonitorFailure`] as its message;
//! - [`Error`]: what an operation fails with. Local misuse is a
//!   [`CommandError`] inside it; a peer's illegal message
//!   is an [`Event::ProtocolViolated`] and fails only its channel.
//!
//! Durability: the engine's snapshots of a channel are written to the store before any message
//! or transport command that follows from the same input goes out.
//!
//! Re-exports: the ids ([`ChannelId`], [`PeerId`], [`TransferId`], [`TypeIdentifier`]), the
//! channel's [`ChannelState`], [`ChannelStatus`], [`EventCode`] and [`ChannelEvent`], the
//! errors the API wraps, the stores ([`MemStore`], [`SledStore`]), the [`Transport`] and
//! [`Network`] traits, [`Cid`] and [`Node`].
//!
//! Feature flags: `libp2p` (on by default): the [`libp2p`] module, the
//! `/fil/datatransfer/1.2.0` network over rust-libp2p (`Libp2pNetwork`) and a ready-made swarm
//! for a node (`build_swarm`), and the ready-made [`libp2p::Node`] (with
//! `datatransfer-graphsync`).
//!
//! # Embedding
//! With the `libp2p` feature, [`libp2p::Node`] assembles a whole node (swarm, graphsync,
//! transport, network, channel store, started manager) from a block store. Two nodes on
//! loopback TCP; the client pulls a one-block DAG from the provider (`examples/embed.rs` is
//! the same as a program):
//! ```
//! # use std::sync::Arc;
//! # use blockstore::{Blockstore, InMemoryBlockstore};
//! # use datatransfer::{Cid, Decision, Node, Request, RequestValidator, Voucher, VoucherError};
//! # use multihash_codetable::{Code, MultihashDigest};
//! # struct Ticket;
//! # impl Voucher for Ticket {
//! #     const TYPE: &'static str = "example/ticket";
//! #     fn to_node(&self) -> Node { Node::Null }
//! #     fn from_node(_: &Node) -> Result<Self, VoucherError> { Ok(Ticket) }
//! # }
//! # struct Open;
//! # impl RequestValidator<Ticket> for Open {
//! #     fn validate_push(&self, _: &Request<'_, Ticket>) -> Decision { Decision::reject("no") }
//! #     fn validate_pull(&self, _: &Request<'_, Ticket>) -> Decision { Decision::accept() }
//! # }
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! # let (store, blocks) = (Arc::new(InMemoryBlockstore::<64>::new()), Arc::new(InMemoryBlockstore::<64>::new()));
//! # let block = ipld_dagcbor::to_vec(&Node::text("hello"))?;
//! # let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&block));
//! # store.put_keyed(&root, &block).await?;
//! # let selector = ipld_selector::Selector::match_point().to_node();
//! let provider = datatransfer::libp2p::Node::builder(store).build().await?;
//! provider.manager().register_voucher_type(Open)?;
//! let client = datatransfer::libp2p::Node::builder(blocks).build().await?;
//! let peer = client.dial(provider.listen_addrs()[0].clone()).await?;
//! let channel = client.manager().open_pull(peer, &Ticket, root, selector)?;
//! let state = client.manager().wait_for_end(&channel).await?;
//! println!("{}: received {} bytes", state.status.name(), state.received);
//! # assert_eq!(state.status, datatransfer::ChannelStatus::Completed);
//! # assert_eq!(state.received, block.len() as u64);
//! # Ok(())
//! # }
//! ```
//!
//! # Examples
//! A pull between two nodes on the in-memory transport (`datatransfer-transport`'s `mem`):
//! ```
//! use std::sync::Arc;
//!
//! use blockstore::{Blockstore, InMemoryBlockstore};
//! use cid::Cid;
//! use datatransfer::{Config, Decision, Manager, Request, RequestValidator, Voucher, VoucherError};
//! use datatransfer_fsm::ChannelStatus;
//! use datatransfer_message::PeerId;
//! use datatransfer_store::MemStore;
//! use datatransfer_transport::mem::MemHub;
//! use ipld_dagcbor::Node;
//! use multihash_codetable::{Code, MultihashDigest};
//!
//! struct Ticket;
//! impl Voucher for Ticket {
//!     const TYPE: &'static str = "example/ticket";
//!     fn to_node(&self) -> Node { Node::Null }
//!     fn from_node(_: &Node) -> Result<Self, VoucherError> { Ok(Ticket) }
//! }
//!
//! struct Open;
//! impl RequestValidator<Ticket> for Open {
//!     fn validate_push(&self, _: &Request<'_, Ticket>) -> Decision { Decision::reject("no") }
//!     fn validate_pull(&self, _: &Request<'_, Ticket>) -> Decision { Decision::accept() }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
//! let hub = MemHub::new(Default::default(), |task| {
//!     tokio::spawn(task);
//! });
//! // The provider holds one block.
//! let provider_blocks = Arc::new(InMemoryBlockstore::<64>::new());
//! let block = ipld_dagcbor::to_vec(&Node::text("hello"))?;
//! let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&block));
//! provider_blocks.put_keyed(&root, &block).await?;
//!
//! let mut nodes = Vec::new();
//! for (n, blocks) in [(1u8, Arc::new(InMemoryBlockstore::new())), (2, provider_blocks)] {
//!     let (transport, network) = hub.add_peer(PeerId::from_bytes(vec![n]), blocks)?;
//!     let manager = Manager::new(transport, network, MemStore::new(), Config::default());
//!     manager.register_voucher_type(Open)?;
//!     manager.start().await?;
//!     nodes.push(manager);
//! }
//! let (client, provider) = (&nodes[0], &nodes[1]);
//!
//! let everything = ipld_selector::Selector::match_point().to_node();
//! let mut events = client.subscribe();
//! let channel = client.open_pull(provider.self_peer().clone(), &Ticket, root, everything)?;
//! while client.status(&channel) != ChannelStatus::Completed {
//!     events.recv().await?;
//! }
//! assert_eq!(client.channel_state(&channel)?.received, block.len() as u64);
//! # Ok::<(), anyhow::Error>(())
//! # })
//! # }
//! ```

mod error;
mod event;
#[cfg(feature = "libp2p")]
pub mod libp2p;
mod manager;
mod monitor;
mod registry;
mod voucher;

// What the manager's API names from the crates below, so that an application depends on this
// crate alone (ARCHITECTURE.md, "Boundaries").
pub use cid::Cid;
pub use datatransfer_fsm::{
    ChannelEvent, ChannelStage, ChannelStages, ChannelState, ChannelStatus, CommandError,
    EventCode, ProtocolError, StageLog, UnixNanos,
};
pub use datatransfer_message::{ChannelId, PeerId, TransferId, TypeIdentifier};
pub use datatransfer_store::{ChannelStore, MemStore, SledStore, StoreError};
pub use datatransfer_transport::{Network, NetworkError, Transport, TransportError};
pub use ipld_dagcbor::Node;

pub use error::Error;
pub use event::{Event, QueueScope, Subscription, SubscriptionError};
pub use manager::{Config, Manager, OutboundStats};
pub use monitor::{MonitorConfig, MonitorEvent, MonitorFailure};
pub use registry::{Hook, Registry, RegistryError};
pub use voucher::{
    Decision, Request, RequestValidator, Revalidator, TransportConfigurer, Voucher, VoucherError,
    VoucherResult, decode_result, decode_voucher, encode_result, encode_voucher,
};
