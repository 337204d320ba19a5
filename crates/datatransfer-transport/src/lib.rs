//! The transport abstraction under the data-transfer manager: the [`Transport`] that moves a
//! channel's blocks, the [`EventsHandler`] it reports to, and the [`Network`] that carries
//! data-transfer messages outside the data channels, so that a custom transport can be
//! swapped in (Go's `Transport`, `PauseableTransport`, `EventsHandler`,
//! `DataTransferNetwork` and `Receiver`).
//!
//! Place in the stack: layer 1, above `datatransfer-message` (messages, ids) and
//! `ipld-dagcbor` (selectors). It knows nothing about channel status: the `datatransfer`
//! manager turns the handler's reports into state-machine inputs and the state machine's
//! transmits into these commands. `datatransfer-graphsync` implements [`Transport`] over
//! graphsync (`spec/data-transfer.md` §4).
//!
//! # Model
//!
//! A channel's data moves in one **exchange**: a request from the **data receiver** to the
//! **data sender** (always in that direction, whoever initiated the channel; in Go it is a
//! graphsync request), followed by the sender's blocks in selector-traversal order. Data-
//! transfer messages can ride inside the exchange in both directions (Go's graphsync
//! extensions); every other message goes over the [`Network`].
//!
//! | command | who calls it | Go |
//! |---|---|---|
//! | [`Transport::open_channel`] | the data receiver: a pull's initiator, a push's responder | `OpenChannel` |
//! | [`Transport::attach`] | either side: a message inside the current exchange (a pull's deferred accept, a voucher result) | the transport's hook replies |
//! | [`Transport::pause_channel`], [`Transport::resume_channel`] | either side, when [`Capabilities::pause`] | `PauseableTransport` |
//! | [`Transport::close_channel`] | either side: stop the exchange | `CloseChannel` |
//! | [`Transport::cleanup_channel`] | either side: forget the channel | `CleanupChannel` |
//! | [`Transport::shutdown`] | the owner | `Shutdown` |
//!
//! What the [`EventsHandler`] sees, in order, for one exchange of `n` blocks:
//! - data receiver: [`on_channel_opened`](EventsHandler::on_channel_opened), then, in any
//!   interleaving with replies ([`on_response_received`](EventsHandler::on_response_received),
//!   [`on_request_received`](EventsHandler::on_request_received)),
//!   [`on_data_received`](EventsHandler::on_data_received) for indexes `1..=n` (the first
//!   `skip_blocks` with `unique == false`), then
//!   [`on_channel_completed`](EventsHandler::on_channel_completed);
//! - data sender: [`on_transfer_queued`](EventsHandler::on_transfer_queued) (new channels
//!   only, not restarts), the opening message
//!   ([`on_request_received`](EventsHandler::on_request_received) for a pull's request,
//!   [`on_response_received`](EventsHandler::on_response_received) for a push's accept), then
//!   per unique block [`on_data_queued`](EventsHandler::on_data_queued) and
//!   [`on_data_sent`](EventsHandler::on_data_sent), then
//!   [`on_channel_completed`](EventsHandler::on_channel_completed).
//!
//! Handler answers steer the exchange as Go's errors do: [`Flow::Pause`] is `ErrPause`, an
//! `Err(`[`HandlerError`]`)` terminates the exchange, [`RequestAnswer::Hold`] keeps it paused
//! until the owner answers with [`Transport::attach`] or [`Transport::resume_channel`] (this
//! is how validation runs asynchronously), [`RequestAnswer::Reject`] fails it.
//!
//! Handler methods are synchronous and must not block (see [`EventsHandler`]). A handler's
//! owner reacts later through the commands; a [`Transport::resume_channel`] that comes while a
//! handler of the same side is still running lifts the pause that handler answers, so a resume
//! sent right after seeing a call never loses the race against its `Flow::Pause`.
//!
//! The commands are `async fn`s in the trait (return-position `impl Future + Send`), not boxed
//! futures: the manager is generic over its transport, so nothing needs `dyn Transport`, and
//! no allocation per command is paid. A `dyn` wrapper can be added later without changing
//! implementations.
//!
//! # Errors
//! [`TransportError`] for transport commands, [`NetworkError`] for network commands,
//! [`HandlerError`] for what handlers return, [`DataError`] for the failures a transport
//! reports about a channel.
//!
//! # Feature flags
//! - `mem`: [`mem`], the in-memory [`mem::MemTransport`] and [`mem::MemNetwork`] on a shared
//!   [`mem::MemHub`] with fault injection (drop, delay, disconnect, stepping).
//! - `conformance`: [`conformance`], the suite every transport must pass, with its recording
//!   handler; a transport crate enables it in `[dev-dependencies]`.
//!
//! # Example
//!
//! ```
//! use datatransfer_message::{ChannelId, Message, PeerId, TransferId, new_request, new_response};
//! use datatransfer_transport::{OpenChannel, RequestAnswer};
//! use ipld_dagcbor::{Map, Node};
//!
//! // A pull: the initiator (alice) is the data receiver, so it opens the exchange to bob.
//! let (alice, bob) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
//! let channel = ChannelId::new(alice.clone(), bob.clone(), TransferId(7));
//! let root = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?;
//! let everything = Node::Map(Map::new().with(".", Node::empty_map()));
//! let request = new_request(TransferId(7), true, "FakeDTType".into(), Node::Null, root,
//!     everything.clone());
//! let open = OpenChannel::new(bob, channel, root, everything, Message::from(request));
//! assert_eq!(open.skip_blocks, None);
//! // On a restart, the data receiver asks the sender to skip what it already has.
//! let restart = open.with_skip_blocks(3);
//! assert_eq!(restart.skip_blocks, Some(3));
//!
//! // Bob's handler defers its validation: the exchange is held until bob attaches the
//! // answer (an accept lets the data flow).
//! let answer = RequestAnswer::Hold(None);
//! let accept = new_response(TransferId(7), true, false, "".into(), None);
//! assert!(matches!(answer, RequestAnswer::Hold(None)) && accept.accepted());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod events;
#[cfg(feature = "mem")]
pub mod mem;
mod network;
mod transport;

pub use error::{DataError, HandlerError, NetworkError, TransportError};
pub use events::{BlockInfo, EventsHandler, Flow, QueuedAnswer, RequestAnswer};
pub use network::{Network, Receiver};
pub use transport::{Capabilities, OpenChannel, StoreName, Transport};
