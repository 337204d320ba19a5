//! The sans-IO channel state machine of data-transfer, as go-data-transfer v1.15.1 runs it:
//! every status and event of the Go API, its transition table, and an [`Engine`] holding all
//! channels of one node.
//!
//! Place in the stack: layer 1, above `datatransfer-message` (messages) and `ipld-dagcbor`
//! (vouchers and selectors stay IPLD nodes). It performs no I/O, reads no clock, draws no
//! randomness and holds no user callbacks; the `datatransfer` facade drives it, turning
//! [`Transmit`]s into network and transport calls and transport reports into
//! [`TransportInput`]s.
//!
//! Main items:
//! - [`ChannelStatus`] (Go's `Status`, codes 0–16) and [`EventCode`] (Go's `EventCode`, codes
//!   0–30), with Go's names;
//! - [`transition`], the whole transition table of the spec (§5.4, with the pause mapping of
//!   §5.7) as one function; illegal pairs give [`IllegalTransition`], terminal statuses absorb
//!   every event;
//! - [`ChannelState`]: every persisted field of Go's channel record, and the snapshot type,
//!   with the experimental trace [`ChannelStages`] (stamped with the wall-clock anchor the
//!   driver gives [`Engine::handle_wall_clock`]: the engine itself reads no clock);
//! - [`Engine`] with [`Config`]: commands (`open_push`, `open_pull`, `send_voucher`, `pause`,
//!   `resume`, `cancel`, `restart`), inputs (`handle_message`, `handle_transport_event`,
//!   `handle_validation`, `handle_timeout`), outputs (`poll_transmit`, `poll_event`,
//!   `poll_timeout`) and `restore`; errors [`CommandError`] (local misuse) and
//!   [`ProtocolError`] (the peer sent something invalid for the channel).
//!
//! # Driving contract
//!
//! After every command or input, drain [`Engine::poll_event`] until it returns `None`, writing
//! each [`Event::Snapshot`] to the store, then drain [`Engine::poll_transmit`] until `None`
//! (snapshots are persisted before the transmits that depend on them). Then wait for the
//! earliest of an inbound message, a transport report, a command or
//! [`Engine::poll_timeout`], and call the matching `handle_*` with `now`. `now` never goes
//! backwards. Validation questions ([`Event::ValidationRequested`]) are answered later with
//! [`Engine::handle_validation`]. Output queues are bounded by [`Config`]: an engine whose
//! queues are not drained refuses further input with `QueueFull`.
//!
//! Revalidation (Go's `Revalidator`, spec §6.3–§6.4): with [`Config::revalidate_data`] the
//! responder asks [`ValidationKind::PullDataSent`] / [`ValidationKind::PushDataReceived`] about
//! the bytes of each new block, and with [`Config::validate_completion`]
//! [`ValidationKind::Complete`] when its side finishes; a new voucher always asks
//! [`ValidationKind::Voucher`]. The questions are plain outputs, so a driver can answer inside
//! the transport's block handler: report the block, drain the events, answer, drain the
//! transmits; a pause decision then shows up as [`Transmit::PauseChannel`] (with the payment
//! request in [`Transmit::Attach`] for a pull) before the transport reports its next block.
//!
//! Feature `test-util`: [`testing`] with `SimNet`, a deterministic in-memory network of
//! engines with a virtual clock and seeded faults, and proptest strategies.
//!
//! ```
//! use std::time::Instant;
//!
//! use datatransfer_fsm::{
//!     ChannelStatus, Config, Engine, Event, Transmit, Validation, Verdict, Voucher,
//! };
//! use datatransfer_message::PeerId;
//! use ipld_dagcbor::{Map, Node};
//!
//! let (alice, bob) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
//! let mut client = Engine::new(alice.clone(), Config::default().with_transfer_id_seed(7));
//! let mut provider = Engine::new(bob.clone(), Config::default());
//! let now = Instant::now();
//!
//! let root = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?;
//! let everything = Node::Map(Map::new().with(".", Node::empty_map()));
//! let voucher = Voucher::new("FakeDTType", Node::text("deal"));
//! let channel = client.open_pull(bob.clone(), voucher, root, everything, now)?;
//!
//! // The driving loop, for both nodes: events first (persist snapshots, answer questions),
//! // then transmits, delivered here straight to the other engine.
//! let mut nodes = [(client, alice), (provider, bob)];
//! loop {
//!     let mut moved = false;
//!     for i in 0..2 {
//!         let other = 1 - i;
//!         while let Some(event) = nodes[i].0.poll_event() {
//!             moved = true;
//!             match event {
//!                 Event::Snapshot(_state) => { /* write to the store */ }
//!                 Event::ValidationRequested(question) => {
//!                     nodes[i].0.handle_validation(
//!                         &question.channel,
//!                         Validation::new(Verdict::Accept),
//!                         now,
//!                     )?;
//!                 }
//!                 Event::Channel(_notification) => {}
//!             }
//!         }
//!         while let Some(transmit) = nodes[i].0.poll_transmit() {
//!             moved = true;
//!             let from = nodes[i].1.clone();
//!             match transmit {
//!                 Transmit::Message { message, .. }
//!                 | Transmit::OpenChannel { message, .. }
//!                 | Transmit::Attach { message, .. }
//!                 | Transmit::ResumeChannel { message, .. } => {
//!                     nodes[other].0.handle_message(from, message, now)?;
//!                 }
//!                 _ => { /* transport commands */ }
//!             }
//!         }
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//! assert_eq!(nodes[0].0.channel(&channel).map(|c| c.status), Some(ChannelStatus::Ongoing));
//! assert_eq!(nodes[1].0.channel(&channel).map(|c| c.status), Some(ChannelStatus::Ongoing));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
mod error;
mod event_code;
mod state;
mod status;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
mod transition;

pub use engine::{
    ChannelEvent, Config, Engine, Event, REJECTED_MESSAGE, Transmit, TransportInput, Validation,
    ValidationKind, ValidationRequest, Verdict,
};
pub use error::{CommandError, ProtocolError};
pub use event_code::EventCode;
pub use state::{
    ChannelStage, ChannelStages, ChannelState, DataKind, StageLog, UnixNanos, Voucher,
    VoucherResult,
};
pub use status::ChannelStatus;
pub use transition::{IllegalTransition, transition};
