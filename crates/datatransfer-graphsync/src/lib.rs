//! The data-transfer transport over Graphsync, wire compatible with go-data-transfer v1.15.1's
//! `transport/graphsync` (spec `data-transfer.md` §4).
//!
//! Place in the stack: layer 2. [`GraphsyncTransport`] implements the `datatransfer-transport`
//! [`Transport`](datatransfer_transport::Transport) trait, with the pause capability, on a
//! [`graphsync::Node`] whose hooks it registers; the `datatransfer` manager drives it and
//! hears its [`EventsHandler`](datatransfer_transport::EventsHandler) reports. [`extension`]
//! holds the extension names, Go's three name lists, and Go's `ToExtensionData`
//! ([`extension::insert`]) and `GetTransferData` ([`extension::read`]).
//!
//! Main items: [`GraphsyncTransport`] with its [`Config`], [`StoreError`] (registering
//! stores), [`extension::ExtensionError`] (a data-transfer extension that does not decode),
//! the peer-id conversions [`dt_peer`] / [`libp2p_peer`], and [`store_name`].
//!
//! Feature flags: none.
//!
//! # Where messages ride
//!
//! The data receiver always opens the graphsync request ([`Transport::open_channel`]); the
//! data sender is always the graphsync responder. Every data-transfer message is the
//! `TransferMessage` node of `datatransfer-message`, embedded as an extension value:
//!
//! | carrier | names written | read with |
//! |---|---|---|
//! | the receiver's request (a pull or pull restart request, a push or push restart accept) | `fil/data-transfer/1.1`, plus `graphsync/do-not-send-first-blocks` = N on a restart (also when N = 0) | `fil/data-transfer/1.1` |
//! | the sender's answer to that request (hook reply, or the `attach` that answers a held request) | `…/incoming-request/1.1` and `…/1.1` | `…/incoming-request/1.1`, else `…/1.1` |
//! | a message returned with a queued block (payment request) | `…/outgoing-block/1.1` and `…/1.1`, in the block's response | as above, then `…/outgoing-block/1.1` alone (Go's double delivery) |
//! | a resume (`resume_channel`) | `…/1.1`: in the sender's next response, or in the receiver's re-issued request | `…/1.1` |
//! | `attach` on a running exchange | `…/1.1`: a sender's response update, or a receiver's update request | `…/1.1` |
//! | a reply from a hook on the receiver | `…/1.1` in an update request | `…/1.1` |
//!
//! Messages that Go sends over `/fil/datatransfer/1.2.0` (push requests, pauses, vouchers,
//! completes, cancels) are the manager's business, not the transport's. The legacy
//! `fil/data-transfer` name (1.0 tuple format) is neither sent nor read, as in v1.15.1.
//!
//! # Go's hooks, ours, and what the handler hears
//!
//! | Go hook (spec §4.2) | `graphsync::Node` registration | side | [`EventsHandler`](datatransfer_transport::EventsHandler) call and effect |
//! |---|---|---|---|
//! | 1 outgoing request | `register_outgoing_request_hook` | receiver | `on_channel_opened`; the channel's store chosen (`use_store`) |
//! | 2 incoming request queued | `register_incoming_request_queued_listener` | sender | `on_transfer_queued` for New messages only (not restarts) |
//! | 3 incoming request | `register_incoming_request_hook` | sender | request → `on_request_received`: `Proceed` validates, `Hold` validates paused, `Reject` terminates (32); the reply goes out under the incoming-request names. Response (push accept) → `on_response_received`: `Pause` pauses, `Err` terminates. A message queued while the requester had cancelled is sent now; Go's quirk: a channel that had a request on which data never started starts paused |
//! | 4 completed response | `register_completed_response_listener` | sender | 20 → `on_channel_completed(Ok)`; 35 ignored; others → `Err` |
//! | 5 incoming block | `register_incoming_block_hook` | receiver | `on_data_received` with index = load index + 1 and `unique = wire size != 0`; `Pause` pauses (graphsync cancels the remote response), `Err` terminates |
//! | 6 outgoing block | `register_outgoing_block_hook` | sender | blocks with bytes on the wire only: `on_data_queued`; its message joins the block under the outgoing-block names, `Pause` pauses after it, `Err` terminates |
//! | 7 block sent | `register_block_sent_listener` | sender | `on_data_sent` for blocks with bytes on the wire once their message is written, and for blocks a restart withholds because the receiver holds them (see [Sent totals](#sent-totals)). Hooks 6 and 7 report each index once per exchange: blocks a paused requester dropped and the responder sends again after the re-issued request are not reported twice (Go's manager drops them by index, spec §5.6) |
//! | 8 incoming response | `register_incoming_response_hook` | receiver | requests → `on_request_received` (reply in an update), responses → `on_response_received`; a non-accepting New/Restart response terminates the request, which then completes with `DataError::Rejected`; a message naming another channel terminates |
//! | 9 request updated | `register_request_updated_hook` | sender | as 8, reply in the response; `Hold` and `Pause` ignored as Go ignores `ErrPause` here |
//! | 10 requestor cancelled | `register_requestor_cancelled_listener` | sender | the channel remembers it: later pauses leave graphsync alone, resumes and attaches are queued for the next request |
//! | 11 network error (send) | `register_network_error_listener` (`ResponseNotSent`) | sender | `on_send_data_error` |
//! | 12 receiver network error | `register_network_error_listener` (`ResponderDisconnected`, `Receive`) | receiver | `on_receive_data_error` for the request's channel, or every channel with the peer |
//! | `executeGsRequest` | a watcher task per request (its [`RequestHandle`](graphsync::network::RequestHandle)) | receiver | success → `on_channel_completed(Ok)`; failure, or a remote cancel after a rejection → `Err`; local cancel → `on_request_cancelled`; unreachable sender → `on_request_disconnected`; remote cancel otherwise → nothing |
//!
//! Commands: `open_channel` cancels the channel's previous request (waiting at most
//! [`Config::cancel_wait`], Go's `maxGSCancelWait`) and reports nothing for it, then requests;
//! `pause_channel` → `Node::pause` / `Node::pause_response`; `resume_channel` →
//! `Node::unpause` (graphsync re-issues the request with the message) /
//! `Node::unpause_response` (the message goes first as a 14 response); `close_channel` →
//! `Node::cancel` / `Node::cancel_response`; `cleanup_channel` forgets the channel, drops its
//! exchange and unregisters its store; [`GraphsyncTransport::use_store`] is Go's `UseStore`
//! (graphsync store `"data-transfer-" + channel`, on either side) and
//! [`GraphsyncTransport::register_store`] names stores for [`OpenChannel::store`](datatransfer_transport::OpenChannel::store).
//!
//! # Sent totals
//!
//! A block counts as sent once: the first time its traversal index exceeds the highest index
//! counted (Go's `DataSent` rule, spec §5.6; the manager keeps the channel's
//! `SentBlocksTotal`). It is counted when the graphsync message holding its bytes is confirmed
//! written, or, on a restart, when the restarted response passes a block that
//! `graphsync/do-not-send-first-blocks` withholds ([`BlockRecord::withheld`](graphsync::responder::BlockRecord::withheld): a first occurrence
//! the receiver says it already holds). Go counts only the first case, so a block written
//! but not confirmed when the connection goes, which the receiver did get and the restart then
//! skips, is never counted there and its totals end short. Here the receiver's count vouches
//! for it, so `sent` and `sent_blocks_total` end exact whatever the disconnect point; a block
//! counted but lost is sent again and, its index not being new, not counted twice.
//!
//! # Invariants
//! - Opens are serialised: at most one request is between its outgoing hook and the moment
//!   its id is known, so hooks of a request whose id is not mapped yet belong to that open.
//! - A `resume_channel` that comes while a pausing handler of the channel runs voids that
//!   handler's pause and sends its message in the same graphsync message (the trait's rule).
//! - Per-channel state is bounded: [`Config::max_channels`] channels, one pending message each;
//!   a new channel whose opening request is refused or terminated leaves nothing behind, so a
//!   peer's refused requests cannot fill the table.
//! - Hooks hold the transport weakly and never block; [`Transport::shutdown`] unregisters them.
//!
//! [`Transport::open_channel`]: datatransfer_transport::Transport::open_channel
//! [`Transport::shutdown`]: datatransfer_transport::Transport::shutdown
//!
//! # Where this differs from Go
//! - Hook 8: a handler's `Pause` (Go: `ErrPause`) pauses the receiver's request, as the trait
//!   says, where Go terminates it (a Go quirk, spec §4.6).
//! - A held request answered with a rejecting `attach` is sent the rejection in a 14 response
//!   and then cancelled (35), since `graphsync::Node` has no command to terminate a response
//!   with 32. The receiver ends its request as soon as it reads a rejection (Go waits for the
//!   32 that follows it) and reports
//!   [`DataError::Rejected`](datatransfer_transport::DataError::Rejected) either way.
//! - `on_channel_opened` refusing cancels the request once `open_channel` knows its id (the
//!   outgoing-request hook cannot); `open_channel` still returns `Ok`, and nothing more is
//!   reported for that request.
//! - `on_transfer_queued` is reported for a new pull too (Go's fails silently there because
//!   the responder has no channel yet).
//!
//! # Example
//!
//! ```
//! use datatransfer_graphsync::extension::{self, INCOMING_REQUEST_NAMES};
//! use datatransfer_message::{Message, TransferId, new_response};
//!
//! // A responder's accept rides in a graphsync response under two names.
//! let accept = Message::from(new_response(TransferId(1), true, false, "".into(), None));
//! let ext = extension::extensions(&accept, INCOMING_REQUEST_NAMES)?;
//! assert_eq!(ext.len(), 2);
//! assert_eq!(extension::read(&ext, INCOMING_REQUEST_NAMES)?, Some(accept));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A transport on a node (on libp2p's memory transport, say) is made with
//! [`GraphsyncTransport::new`]:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use blockstore::InMemoryBlockstore;
//! use datatransfer_graphsync::{Config, GraphsyncTransport};
//! use datatransfer_transport::Transport;
//! use graphsync::network::{Behaviour, Config as NodeConfig, Node};
//!
//! # async fn demo(local: libp2p::PeerId) -> Result<(), Box<dyn std::error::Error>> {
//! let behaviour = Behaviour::new(); // goes into the swarm that `local` runs
//! let node = Node::spawn(&behaviour, Arc::new(InMemoryBlockstore::<64>::new()), NodeConfig::default())?;
//! let transport = GraphsyncTransport::new(node, local, Config::default());
//! assert!(transport.capabilities().pause);
//! # Ok(())
//! # }
//! ```

pub mod extension;
mod transport;

pub use transport::{
    Config, GraphsyncTransport, STORE_PREFIX, StoreError, dt_peer, libp2p_peer, store_name,
};
