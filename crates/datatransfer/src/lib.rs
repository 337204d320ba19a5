//! Data transfer between libp2p peers, wire compatible with go-data-transfer v1.15.1.
//!
//! Place in the stack: layer 3, the facade a user depends on alone. It is the only place where
//! I/O, the clock, the store and the state machine (`datatransfer-fsm`) meet.
//!
//! Main items:
//! - [`Voucher`] and [`VoucherResult`]: the application's voucher types (a type identifier and
//!   an IPLD form in [`ipld_dagcbor::Node`]);
//! - [`RequestValidator`], [`Revalidator`] and [`TransportConfigurer`], answering with a
//!   [`Decision`] (accept, pause as Go's `ErrPause`, resume as `ErrResume`, reject);
//! - [`Registry`]: the registered types, and how the state machine's validation questions are
//!   answered from them (an unknown voucher type is rejected with Go's reason).
//!
//! Feature flags: none.
//!
//! # Examples
//! ```
//! use datatransfer::{Decision, Registry, Request, RequestValidator, Voucher, VoucherError};
//! use datatransfer_fsm::{ValidationKind, Verdict};
//! use datatransfer_message::{ChannelId, PeerId, TransferId};
//! use ipld_dagcbor::Node;
//!
//! struct Ticket;
//! impl Voucher for Ticket {
//!     const TYPE: &'static str = "example/ticket";
//!     fn to_node(&self) -> Node { Node::Null }
//!     fn from_node(_: &Node) -> Result<Self, VoucherError> { Ok(Ticket) }
//! }
//!
//! struct PullsOnly;
//! impl RequestValidator<Ticket> for PullsOnly {
//!     fn validate_push(&self, _: &Request<'_, Ticket>) -> Decision { Decision::reject("no") }
//!     fn validate_pull(&self, _: &Request<'_, Ticket>) -> Decision { Decision::accept() }
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_voucher_type(PullsOnly)?;
//! let channel = ChannelId::new(PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]), TransferId(1));
//! let question = ValidationKind::Open {
//!     pull: true,
//!     voucher: datatransfer::encode_voucher(&Ticket),
//!     base_cid: "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?,
//!     selector: Node::empty_map(),
//! };
//! assert_eq!(registry.answer(&channel, &question).verdict, Verdict::Accept);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod event;
mod manager;
mod registry;
mod voucher;

pub use error::Error;
pub use event::{Event, Subscription, SubscriptionError};
pub use manager::{Config, Manager};
pub use registry::{Hook, Registry, RegistryError};
pub use voucher::{
    Decision, Request, RequestValidator, Revalidator, TransportConfigurer, Voucher, VoucherError,
    VoucherResult, decode_result, decode_voucher, encode_result, encode_voucher,
};
