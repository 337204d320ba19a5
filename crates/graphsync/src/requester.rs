//! The pure Graphsync requester core (spec §8 and §9): issues requests, verifies every response
//! against a local traversal of the same selector, as go-graphsync's reconciled loader does,
//! and asks the driver to store only blocks it has verified.
//!
//! # Shape
//!
//! [`Requester`] is sans-IO: no async, no clock, no randomness, no blockstore. Inputs are
//! [`Requester::handle_message`], [`Requester::handle_peer_disconnected`], the answers
//! [`Requester::provide_block`], [`Requester::handle_response_decision`] and
//! [`Requester::handle_block_decision`], and the commands [`Requester::request`],
//! [`Requester::pause`], [`Requester::resume`], [`Requester::update`] and
//! [`Requester::cancel`]. Outputs are drained with [`Requester::poll_transmit`] (a peer and a
//! [`Message`] to send) and [`Requester::poll_event`] ([`Event`]).
//!
//! Driving contract: after every input or command, drain `poll_transmit` and `poll_event`
//! until both return `None`. Output queues hold only what the last inputs produced; their size
//! is bounded by those inputs (one message's metadata, one traversal run).
//!
//! Block storage is an output that asks and an input that answers: [`Event::LoadBlock`] asks
//! for a block from the local store and is answered with [`Requester::provide_block`];
//! [`Event::StoreBlock`] hands over a block whose bytes hashed to the CID the verified
//! metadata named, and nothing else is ever handed over.
//!
//! Hooks (spec §8.6) are events that ask and inputs that answer, switched on per kind in
//! [`Config`]. With [`Config::response_hooks`], every [`Event::ResponseReceived`] holds that
//! response back until [`Requester::handle_response_decision`]; with [`Config::block_hooks`],
//! every [`Event::BlockReceived`] stops the traversal until
//! [`Requester::handle_block_decision`]. A libp2p behaviour that runs synchronous Go-style
//! hooks answers at once, inside the same drain loop. With the flags off (the default) these
//! events are plain notifications, like Go's listeners.
//!
//! # Decisions
//!
//! - Requests are sent at once, not "local first". go-graphsync is local first in v0.13.x and,
//!   contrary to spec §8.1, also in v0.18.1 (its executor loads locally until the first miss,
//!   then sends the request with do-not-send-first-blocks; `docs/interop.md`). The
//!   verification still reads local blocks wherever the responder sends `"p"` without bytes,
//!   `"d"`, `"m"` or `"s"`, or the remote has finished.
//! - Remote items already received are consumed before local-only loading starts, even after
//!   a terminal success status (Go's loader checks its queue first); items left when the
//!   traversal completes are ignored.
//! - A request whose local traversal is complete stays open until the responder's terminal
//!   status arrives, so the outcome reports what the responder said (go-graphsync's requester
//!   completes at once and drops a late status, spec §8.3; a Go responder sends the status in a
//!   message of its own after the last block). The wait is bounded: the core emits
//!   [`Event::AwaitingStatus`] with [`Config::terminal_status_timeout`], the driver arms a timer
//!   and calls [`Requester::handle_status_timeout`] when it fires, and the request then ends
//!   with [`Outcome::NoTerminalStatus`]. A request that finished from local blocks after a pause
//!   (its responder was cancelled) completes at once with no status.
//! - A disconnect does not fail requests (Go's requester has no timeout of its own): it emits
//!   [`Event::NetworkError`] for each request to that peer and nothing else changes.
//! - Pause (§8.5, §9.2) takes effect after the current block: a Cancel is sent and remote data
//!   is ignored. Resume continues locally; at the first local miss the request is sent again
//!   as a New with the same id and `do-not-send-first-blocks` = the loads made so far, and the
//!   responder's first entries are replayed against the local record (§8.4).
//!
//! ```
//! use graphsync::requester::{Config, Event, Outcome, Requester};
//! use graphsync::{Block, CidPrefix, LinkAction, Message, Metadatum, Response, ResponseStatus};
//! use ipld_selector::Selector;
//!
//! let data = b"a raw leaf".to_vec();
//! let root = CidPrefix::v1(0x55, 0x12, 32).to_cid(&data)?;
//! let mut requester: Requester<&str> = Requester::new(Config::default());
//! let id = requester.request("peer", root, &Selector::explore_all_recursively(), Default::default())?;
//! let (peer, _new_request) = requester.poll_transmit().expect("the request is sent at once");
//! assert_eq!(peer, "peer");
//!
//! let response = Response::new(id, ResponseStatus::RequestCompletedFull)
//!     .with_metadata(vec![Metadatum::new(root, LinkAction::Present)]);
//! requester.handle_message("peer", Message::new().with_response(response).with_block(Block::from_cid(&root, data)));
//!
//! let mut stored = Vec::new();
//! let mut outcome = None;
//! while let Some(event) = requester.poll_event() {
//!     match event {
//!         Event::StoreBlock { cid, .. } => stored.push(cid),
//!         Event::Completed { outcome: done, .. } => outcome = Some(done),
//!         _ => {}
//!     }
//! }
//! assert_eq!(stored, [root]);
//! assert!(matches!(outcome, Some(Outcome::Completed(_))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use ipld_dagcbor::Node;
use ipld_selector::{Path, Selector, Step, Traversal, TraversalError};

use crate::block::CidPrefix;
use crate::extension::{self, Extensions};
use crate::message::{LinkAction, Message, Request, RequestId, ResponseStatus};

/// Settings of a [`Requester`]; every bound has a documented default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Requests in progress (sent, running or paused) across all peers; more are queued
    /// unsent. Default: 200.
    pub max_in_progress: usize,
    /// Requests in progress to one peer; more to that peer are queued unsent. Default: 20.
    pub max_in_progress_per_peer: usize,
    /// Requests waiting unsent; beyond this [`Requester::request`] fails with
    /// [`RequestError::QueueFull`]. Default: 1024.
    pub max_queued: usize,
    /// Remote metadata entries received but not yet consumed by one request's traversal;
    /// beyond this the request fails with [`Failure::BufferExceeded`]. Default: 65,536.
    pub max_buffered_items: usize,
    /// Verified block bytes received but not yet consumed by one request's traversal; beyond
    /// this the request fails with [`Failure::BufferExceeded`]. Default: 32 MiB.
    pub max_buffered_bytes: usize,
    /// Hold each response until [`Requester::handle_response_decision`] answers its
    /// [`Event::ResponseReceived`] (Go's incoming-response hook). Default: `false`.
    pub response_hooks: bool,
    /// Stop after each block until [`Requester::handle_block_decision`] answers its
    /// [`Event::BlockReceived`] (Go's incoming-block hook). Default: `false`.
    pub block_hooks: bool,
    /// The traversal settings used for the local walk. A set `max_recursion_depth` is checked
    /// by [`Requester::request`]. Default: no depth cap (Go's requester only checks that the
    /// selector parses), no link budget, default block limits.
    pub traversal: ipld_selector::Config,
    /// Seed of the request id generator. Default: 0; a driver should seed it from OS
    /// randomness so ids do not repeat across runs.
    pub id_seed: u64,
    /// How long a request whose local traversal is complete waits for the responder's terminal
    /// status; carried by [`Event::AwaitingStatus`] for the driver's timer. Default: 10 s (a Go
    /// responder queues the status right after the last block; 10 s is also the per-message
    /// read deadline of go-graphsync ≥ 0.17).
    pub terminal_status_timeout: Duration,
}

impl Config {
    /// This config with another overall in-progress limit.
    pub fn with_max_in_progress(self, max_in_progress: usize) -> Self {
        Config {
            max_in_progress,
            ..self
        }
    }

    /// This config with another per-peer in-progress limit.
    pub fn with_max_in_progress_per_peer(self, max_in_progress_per_peer: usize) -> Self {
        Config {
            max_in_progress_per_peer,
            ..self
        }
    }

    /// This config with another queue bound.
    pub fn with_max_queued(self, max_queued: usize) -> Self {
        Config { max_queued, ..self }
    }

    /// This config with other per-request buffer bounds (entries, bytes).
    pub fn with_max_buffered(self, items: usize, bytes: usize) -> Self {
        Config {
            max_buffered_items: items,
            max_buffered_bytes: bytes,
            ..self
        }
    }

    /// This config with response hooks on or off.
    pub fn with_response_hooks(self, response_hooks: bool) -> Self {
        Config {
            response_hooks,
            ..self
        }
    }

    /// This config with block hooks on or off.
    pub fn with_block_hooks(self, block_hooks: bool) -> Self {
        Config {
            block_hooks,
            ..self
        }
    }

    /// This config with other traversal settings.
    pub fn with_traversal(self, traversal: ipld_selector::Config) -> Self {
        Config { traversal, ..self }
    }

    /// This config with another id seed.
    pub fn with_id_seed(self, id_seed: u64) -> Self {
        Config { id_seed, ..self }
    }

    /// This config with another wait for the terminal status after a complete traversal.
    pub fn with_terminal_status_timeout(self, terminal_status_timeout: Duration) -> Self {
        Config {
            terminal_status_timeout,
            ..self
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_in_progress: 200,
            max_in_progress_per_peer: 20,
            max_queued: 1024,
            max_buffered_items: 65_536,
            max_buffered_bytes: 32 << 20,
            response_hooks: false,
            block_hooks: false,
            traversal: ipld_selector::Config::default().with_max_recursion_depth(None),
            id_seed: 0,
            terminal_status_timeout: Duration::from_secs(10),
        }
    }
}

/// What the requester reports; drained with [`Requester::poll_event`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<P> {
    /// A queued request left the queue and was sent (Go's outgoing-request-processing
    /// listener). Requests sent at once by [`Requester::request`] report this too.
    Started {
        /// The request.
        request: RequestId,
        /// Requests in progress now, this one included.
        in_progress: usize,
    },
    /// A response entry for this request arrived. With [`Config::response_hooks`] it is held
    /// until [`Requester::handle_response_decision`] answers.
    ResponseReceived {
        /// The request.
        request: RequestId,
        /// The response status.
        status: ResponseStatus,
        /// The response extensions.
        extensions: Extensions,
        /// Whether the core waits for a decision.
        awaits_decision: bool,
    },
    /// Load this block from the local store and answer with [`Requester::provide_block`].
    LoadBlock {
        /// The request.
        request: RequestId,
        /// The block.
        cid: Cid,
    },
    /// Store this verified block (its bytes hash to `cid`, which the responder's metadata
    /// named at the place the local traversal expected it).
    StoreBlock {
        /// The request that received it.
        request: RequestId,
        /// The block's CID.
        cid: Cid,
        /// The block bytes.
        data: Bytes,
    },
    /// A load succeeded, from the remote or the local store. With [`Config::block_hooks`] the
    /// traversal waits for [`Requester::handle_block_decision`].
    BlockReceived {
        /// The request.
        request: RequestId,
        /// The block's CID.
        cid: Cid,
        /// The path of its link.
        path: Path,
        /// The block size in bytes.
        size: u64,
        /// The bytes received over the network for it (0 when it came from the local store).
        wire_size: u64,
        /// The load's position among this request's loads, from 0 (the root).
        index: u64,
        /// Whether the core waits for a decision.
        awaits_decision: bool,
    },
    /// A load found the block neither in the response nor in the local store: non-fatal, the
    /// traversal skips the link (Go's "remote missing block").
    BlockMissing {
        /// The request.
        request: RequestId,
        /// The link.
        cid: Cid,
        /// Its path.
        path: Path,
    },
    /// The traversal visited a node.
    Progress {
        /// The request.
        request: RequestId,
        /// The node's path.
        path: Path,
        /// Whether the selector matched there.
        matched: bool,
        /// The CID of the last block loaded (the one holding the node).
        block: Cid,
        /// That block's size.
        block_size: u64,
    },
    /// The request is paused; a Cancel went to the responder if it was still sending.
    Paused {
        /// The request.
        request: RequestId,
    },
    /// The local traversal is complete but the responder's terminal status has not arrived.
    /// The request stays open; the driver calls [`Requester::handle_status_timeout`] after
    /// `timeout` unless the request has ended by then (a terminal status, or a cancel).
    AwaitingStatus {
        /// The request.
        request: RequestId,
        /// [`Config::terminal_status_timeout`].
        timeout: Duration,
    },
    /// The peer of an in-progress request disconnected. The request stays alive.
    NetworkError {
        /// The peer.
        peer: P,
        /// The request.
        request: RequestId,
    },
    /// The request ended; the core forgets it.
    Completed {
        /// The request.
        request: RequestId,
        /// How it ended.
        outcome: Outcome,
    },
}

/// How a request ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The local traversal completed and the responder's terminal success status arrived (20
    /// or 21), or the responder was no longer asked (the request finished from local blocks
    /// after a pause; `status` is then `None`).
    Completed(Completion),
    /// The local traversal completed, but no terminal status arrived within
    /// [`Config::terminal_status_timeout`] ([`Requester::handle_status_timeout`]); `status` is
    /// `None`. Every block was verified as usual; only the responder's verdict is missing.
    NoTerminalStatus(Completion),
    /// The request failed.
    Failed(Failure),
    /// [`Requester::cancel`] ended it.
    Cancelled,
}

/// A completed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The terminal success status received (20 or 21); `None` when none was expected or it
    /// timed out (see [`Outcome`]).
    pub status: Option<ResponseStatus>,
    /// Links found neither in responses nor locally, in load order (path and CID).
    pub missing: Vec<(Path, Cid)>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Status 30: no hook of the responder validated the request.
    #[error("request rejected by the responder (status 30)")]
    Rejected,
    /// Status 31.
    #[error("responder busy (status 31)")]
    Busy,
    /// Status 32: a hook, an extension value or the traversal failed on the responder.
    #[error("request failed on the responder (status 32)")]
    FailedUnknown,
    /// Status 33.
    #[error("request failed for legal reasons (status 33)")]
    Legal,
    /// Status 34: the responder lacks the root block.
    #[error("content not found (status 34)")]
    ContentNotFound,
    /// Status 35: the responder's application cancelled the response.
    #[error("responder cancelled the request (status 35)")]
    ResponderCancelled,
    /// The responder's metadata named another CID than the local traversal loads (Go's
    /// "remote incorrect response"). A Cancel was sent.
    #[error("remote incorrect response at `{path}`: expected {expected}, received {received}")]
    IncorrectResponse {
        /// Where the local traversal was.
        path: Path,
        /// The CID the local traversal loads.
        expected: Cid,
        /// The CID the metadata named.
        received: Cid,
    },
    /// After a restart, the responder's first entries do not replay the local record (§8.4).
    /// A Cancel was sent.
    #[error(
        "remote incorrect response on restart at load {index}: expected {expected}, received {received}"
    )]
    IncorrectReplay {
        /// The position in the local record.
        index: u64,
        /// The recorded CID.
        expected: Cid,
        /// The CID the metadata named (equal to `expected` when a present block was reported
        /// where the local load had failed).
        received: Cid,
    },
    /// The local traversal failed (undecodable block, unsupported codec, link budget). A Cancel
    /// was sent unless the request was paused (as Go, also after a terminal success status).
    #[error("local traversal failed")]
    Traversal {
        /// The traversal's reason.
        #[source]
        source: Box<TraversalError>,
    },
    /// A hook decision terminated the request. A Cancel was sent unless the request was
    /// paused.
    #[error("request terminated by a hook: {reason}")]
    HookTerminated {
        /// The reason the hook gave.
        reason: String,
    },
    /// The responder sent more than [`Config::max_buffered_items`] entries or
    /// [`Config::max_buffered_bytes`] bytes ahead of the traversal. A Cancel was sent.
    #[error("response buffer exceeded: {items} entries, {bytes} bytes")]
    BufferExceeded {
        /// Entries buffered with the offending response.
        items: usize,
        /// Bytes buffered with the offending response.
        bytes: usize,
    },
}

impl Failure {
    /// The failure a terminal failure status stands for; `None` for other statuses.
    pub fn from_status(status: ResponseStatus) -> Option<Failure> {
        Some(match status {
            ResponseStatus::RequestRejected => Failure::Rejected,
            ResponseStatus::RequestFailedBusy => Failure::Busy,
            ResponseStatus::RequestFailedUnknown => Failure::FailedUnknown,
            ResponseStatus::RequestFailedLegal => Failure::Legal,
            ResponseStatus::RequestFailedContentNotFound => Failure::ContentNotFound,
            ResponseStatus::RequestCancelled => Failure::ResponderCancelled,
            _ => return None,
        })
    }
}

/// The answer to an [`Event::ResponseReceived`] that awaits a decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseDecision {
    extensions: Extensions,
    terminate: Option<String>,
}

impl ResponseDecision {
    /// Go on with the response.
    pub fn proceed() -> Self {
        ResponseDecision::default()
    }

    /// End the request: a Cancel is sent and it fails with [`Failure::HookTerminated`].
    pub fn terminate(reason: impl Into<String>) -> Self {
        ResponseDecision {
            terminate: Some(reason.into()),
            ..ResponseDecision::default()
        }
    }

    /// Also send these extensions to the responder at once, as an Update.
    pub fn with_extensions(self, extensions: Extensions) -> Self {
        ResponseDecision { extensions, ..self }
    }
}

/// The answer to an [`Event::BlockReceived`] that awaits a decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockDecision {
    extensions: Extensions,
    pause: bool,
    terminate: Option<String>,
}

impl BlockDecision {
    /// Go on with the traversal.
    pub fn proceed() -> Self {
        BlockDecision::default()
    }

    /// End the request: a Cancel is sent and it fails with [`Failure::HookTerminated`].
    pub fn terminate(reason: impl Into<String>) -> Self {
        BlockDecision {
            terminate: Some(reason.into()),
            ..BlockDecision::default()
        }
    }

    /// Pause the request after this block, as [`Requester::pause`].
    pub fn with_pause(self) -> Self {
        BlockDecision {
            pause: true,
            ..self
        }
    }

    /// Also send these extensions to the responder at once, as an Update.
    pub fn with_extensions(self, extensions: Extensions) -> Self {
        BlockDecision { extensions, ..self }
    }
}

/// Why [`Requester::request`] refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The selector uses an ADL (`~`), whose block order cannot be reproduced (spec §6.8).
    #[error("selector interprets nodes as adl `{adl}`, which is not supported")]
    AdlSelector {
        /// The ADL name.
        adl: String,
    },
    /// The selector exceeds the recursion depth cap of [`Config::traversal`].
    #[error("selector rejected")]
    SelectorRejected {
        /// The traversal's reason.
        #[source]
        source: Box<TraversalError>,
    },
    /// The canonical selector does not round-trip through DAG-CBOR.
    #[error("selector cannot be encoded")]
    SelectorEncoding {
        /// The decoder's reason.
        #[source]
        source: ipld_dagcbor::DecodeError,
    },
    /// Too many requests wait unsent.
    #[error("request queue full ({limit} requests waiting)")]
    QueueFull {
        /// [`Config::max_queued`].
        limit: usize,
    },
}

/// Why a command or an answer was refused. The core's state is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No request with this id is known (never made, or already ended).
    #[error("unknown request {request}")]
    UnknownRequest {
        /// The request.
        request: RequestId,
    },
    /// The request waits unsent in the queue.
    #[error("request {request} is queued, not in progress")]
    Queued {
        /// The request.
        request: RequestId,
    },
    /// The request is already paused (or a pause is pending).
    #[error("request {request} is already paused")]
    AlreadyPaused {
        /// The request.
        request: RequestId,
    },
    /// The request is not paused.
    #[error("request {request} is not paused")]
    NotPaused {
        /// The request.
        request: RequestId,
    },
    /// The responder no longer listens for this request (it is paused or has finished).
    #[error("responder no longer serves request {request}")]
    RemoteNotListening {
        /// The request.
        request: RequestId,
    },
    /// The request does not wait for this block.
    #[error("request {request} is not loading {cid}")]
    NoPendingLoad {
        /// The request.
        request: RequestId,
        /// The block offered.
        cid: Cid,
    },
    /// The bytes offered do not hash to the CID asked for; the load still waits.
    #[error("block offered for {cid} in request {request} does not hash to it")]
    BlockMismatch {
        /// The request.
        request: RequestId,
        /// The block asked for.
        cid: Cid,
    },
    /// The request's traversal is complete; it only waits for the terminal status.
    #[error("request {request} has completed its traversal")]
    TraversalComplete {
        /// The request.
        request: RequestId,
    },
    /// The request does not wait for its terminal status (its traversal is still running).
    #[error("request {request} is not waiting for a terminal status")]
    NotAwaitingStatus {
        /// The request.
        request: RequestId,
    },
    /// The request does not wait for a hook decision of this kind.
    #[error("request {request} awaits no such decision")]
    NoDecisionPending {
        /// The request.
        request: RequestId,
    },
}

/// The requester core: every outgoing request of one node, to any number of peers.
///
/// `P` is the peer type (libp2p's `PeerId` later). See the [module docs](self) for the
/// driving contract.
#[derive(Debug)]
pub struct Requester<P> {
    config: Config,
    ids: IdGenerator,
    requests: HashMap<RequestId, Outgoing<P>>,
    queue: VecDeque<RequestId>,
    in_progress: usize,
    per_peer: HashMap<P, usize>,
    out: Outputs<P>,
    /// The most bytes one request has had buffered.
    peak_buffered_bytes: usize,
}

impl<P: Clone + Eq + Hash + Ord + Debug> Requester<P> {
    /// A requester with no requests.
    pub fn new(config: Config) -> Self {
        Requester {
            ids: IdGenerator::new(config.id_seed),
            config,
            requests: HashMap::new(),
            queue: VecDeque::new(),
            in_progress: 0,
            per_peer: HashMap::new(),
            out: Outputs::default(),
            peak_buffered_bytes: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Requests in progress (sent, running or paused).
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// Requests waiting unsent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Block bytes buffered ahead of the traversal of each running request, as `(peer,
    /// bytes)`, one item per running request with bytes buffered. Requests whose traversal
    /// is complete (leftover entries are never consumed) and paused ones are left out: their
    /// buffers do not drain by the traversal going on, so a driver that slows a peer's
    /// reading on these figures must not count them.
    pub fn buffered_bytes(&self) -> impl Iterator<Item = (&P, usize)> + '_ {
        self.requests
            .values()
            .filter(|req| req.phase == Phase::Running && req.buffered_bytes > 0)
            .map(|req| (&req.peer, req.buffered_bytes))
    }

    /// Per running request (paused ones and those whose traversal is complete are left out,
    /// as in [`Requester::buffered_bytes`]), its peer and the metadata entries it holds
    /// buffered ahead of its traversal (at most [`Config::max_buffered_items`]).
    pub fn buffered_items(&self) -> impl Iterator<Item = (&P, usize)> + '_ {
        self.requests
            .values()
            .filter(|req| req.phase == Phase::Running && req.buffered_items > 0)
            .map(|req| (&req.peer, req.buffered_items))
    }

    /// The most block bytes one request has held buffered ahead of its traversal since this
    /// requester was made (never more than [`Config::max_buffered_bytes`]: beyond it the
    /// request fails).
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak_buffered_bytes
    }

    /// Asks `peer` for the DAG under `root` selected by `selector`, with `extensions`.
    ///
    /// The selector is canonicalised (every ExploreFields in length-first order, spec §6.7):
    /// that form is sent and walked locally. The request gets a fresh UUIDv4-shaped id from
    /// the seeded generator and priority 0. Within the in-progress limits it is sent at once
    /// (a transmit and [`Event::Started`]); otherwise it waits in the queue.
    ///
    /// # Errors
    /// [`RequestError::AdlSelector`] for a selector with `~`,
    /// [`RequestError::SelectorRejected`] when [`Config::traversal`] caps the recursion depth
    /// and the selector exceeds it, [`RequestError::QueueFull`] when it would have to wait and
    /// the queue is full.
    pub fn request(
        &mut self,
        peer: P,
        root: Cid,
        selector: &Selector,
        extensions: Extensions,
    ) -> Result<RequestId, RequestError> {
        if let Some(adl) = find_adl(selector) {
            return Err(RequestError::AdlSelector { adl });
        }
        let canonical = selector.canonical();
        let node = ipld_dagcbor::decode(&canonical.to_dag_cbor())
            .map_err(|source| RequestError::SelectorEncoding { source })?;
        let traversal =
            Traversal::new(root, &canonical, self.config.traversal.clone()).map_err(|source| {
                RequestError::SelectorRejected {
                    source: Box::new(source),
                }
            })?;
        let can_start = self.has_room(&peer);
        if !can_start && self.queue.len() >= self.config.max_queued {
            return Err(RequestError::QueueFull {
                limit: self.config.max_queued,
            });
        }
        let id = self.ids.next_free(&self.requests);
        self.requests.insert(
            id,
            Outgoing::new(peer.clone(), root, node, extensions, traversal),
        );
        if can_start {
            self.start(id);
        } else {
            self.queue.push_back(id);
        }
        Ok(id)
    }

    /// Feeds a message from `peer`. Responses for unknown ids, for requests sent to another
    /// peer, for queued or paused requests are ignored; blocks named by no metadata entry of
    /// their own message are discarded. Requests in the message are not this core's business
    /// (the responder core takes them).
    pub fn handle_message(&mut self, peer: P, message: Message) {
        let mut blocks: HashMap<Cid, Bytes> = HashMap::new();
        for block in message.blocks {
            if let Ok(cid) = block.cid() {
                blocks.insert(cid, block.data);
            }
        }
        for response in message.responses {
            let id = response.id;
            let Some(req) = self.requests.get_mut(&id) else {
                continue;
            };
            if req.peer != peer || req.remote != Remote::Listening {
                continue;
            }
            let traversing = match req.phase {
                Phase::Running => true,
                // Only the status matters now: entries are leftovers (spec §8.3, step 5).
                Phase::AwaitingStatus => false,
                Phase::Queued | Phase::Paused => continue,
            };
            let metadata = if traversing {
                response.metadata
            } else {
                Vec::new()
            };
            // The first "p" entry for a CID in this response takes the block.
            let mut taken: HashSet<Cid> = HashSet::new();
            let mut items = Vec::with_capacity(metadata.len());
            let mut bytes_total = 0usize;
            for metadatum in metadata {
                let data =
                    if metadatum.action == LinkAction::Present && taken.insert(metadatum.link) {
                        blocks.get(&metadatum.link).cloned()
                    } else {
                        None
                    };
                bytes_total += data.as_ref().map_or(0, Bytes::len);
                items.push(RemoteItem {
                    cid: metadatum.link,
                    action: metadatum.action,
                    data,
                });
            }
            let items_after = req.buffered_items + items.len();
            let bytes_after = req.buffered_bytes + bytes_total;
            if items_after > self.config.max_buffered_items
                || bytes_after > self.config.max_buffered_bytes
            {
                self.finish(
                    id,
                    Outcome::Failed(Failure::BufferExceeded {
                        items: items_after,
                        bytes: bytes_after,
                    }),
                    true,
                );
                continue;
            }
            req.buffered_items = items_after;
            req.buffered_bytes = bytes_after;
            self.peak_buffered_bytes = self.peak_buffered_bytes.max(bytes_after);
            self.out.events.push_back(Event::ResponseReceived {
                request: id,
                status: response.status,
                extensions: response.extensions,
                awaits_decision: self.config.response_hooks,
            });
            req.held.push_back(Held {
                status: response.status,
                items,
                approved: !self.config.response_hooks,
            });
            self.run(id);
        }
    }

    /// Answers an [`Event::LoadBlock`]: `Some(bytes)` if the local store has the block,
    /// `None` if not.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], [`CommandError::NoPendingLoad`] when the request does
    /// not wait for this CID, [`CommandError::BlockMismatch`] when the bytes do not hash to it
    /// (the load keeps waiting).
    pub fn provide_block(
        &mut self,
        request: RequestId,
        cid: Cid,
        data: Option<Bytes>,
    ) -> Result<(), CommandError> {
        let req = self
            .requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        let Some(pending) = req.pending.as_ref().filter(|pending| pending.cid == cid) else {
            return Err(CommandError::NoPendingLoad { request, cid });
        };
        match data {
            Some(data) => {
                if CidPrefix::of(&cid).to_cid(&data).ok() != Some(cid) {
                    return Err(CommandError::BlockMismatch { request, cid });
                }
                let pending = req.pending.take().expect("checked above");
                if let Err(source) = req.feed(
                    request,
                    &self.config,
                    &mut self.out,
                    &pending.path,
                    cid,
                    data,
                    0,
                ) {
                    self.finish(
                        request,
                        Outcome::Failed(Failure::Traversal { source }),
                        true,
                    );
                    return Ok(());
                }
            }
            None => {
                let restart = pending.restart_on_miss;
                let pending = req.pending.take().expect("checked above");
                if req.pause_requested {
                    // The load stays unanswered; the traversal repeats it after a resume.
                    req.pause(request, &mut self.out);
                } else if restart {
                    req.restart(request, &mut self.out);
                } else {
                    self.out.events.push_back(Event::BlockMissing {
                        request,
                        cid,
                        path: pending.path.clone(),
                    });
                    req.record.push(RecordEntry {
                        cid,
                        depth: pending.path.len(),
                        loaded: false,
                    });
                    if let Err(source) = req.traversal.missing() {
                        self.finish(
                            request,
                            Outcome::Failed(Failure::Traversal {
                                source: Box::new(source),
                            }),
                            true,
                        );
                        return Ok(());
                    }
                }
            }
        }
        self.run(request);
        Ok(())
    }

    /// Answers an [`Event::ResponseReceived`] that awaits a decision (the oldest one of this
    /// request).
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], or [`CommandError::NoDecisionPending`].
    pub fn handle_response_decision(
        &mut self,
        request: RequestId,
        decision: ResponseDecision,
    ) -> Result<(), CommandError> {
        let req = self
            .requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        let Some(held) = req.held.iter_mut().find(|held| !held.approved) else {
            return Err(CommandError::NoDecisionPending { request });
        };
        if let Some(reason) = decision.terminate {
            self.finish(
                request,
                Outcome::Failed(Failure::HookTerminated { reason }),
                true,
            );
            return Ok(());
        }
        held.approved = true;
        if !decision.extensions.is_empty() {
            let peer = req.peer.clone();
            self.out
                .transmit(peer, Request::update(request, decision.extensions));
        }
        self.run(request);
        Ok(())
    }

    /// Answers an [`Event::BlockReceived`] that awaits a decision.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], or [`CommandError::NoDecisionPending`].
    pub fn handle_block_decision(
        &mut self,
        request: RequestId,
        decision: BlockDecision,
    ) -> Result<(), CommandError> {
        let req = self
            .requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        if !req.awaiting_block_decision {
            return Err(CommandError::NoDecisionPending { request });
        }
        if let Some(reason) = decision.terminate {
            self.finish(
                request,
                Outcome::Failed(Failure::HookTerminated { reason }),
                true,
            );
            return Ok(());
        }
        req.awaiting_block_decision = false;
        if !decision.extensions.is_empty() && req.remote == Remote::Listening {
            let peer = req.peer.clone();
            self.out
                .transmit(peer, Request::update(request, decision.extensions));
        }
        if decision.pause && req.phase == Phase::Running {
            req.pause(request, &mut self.out);
        }
        self.run(request);
        Ok(())
    }

    /// Pauses a request in progress (spec §8.5): after the block being loaded, if any, a
    /// Cancel goes to the responder (if it is still sending) and remote data is ignored.
    /// [`Event::Paused`] reports when it took effect.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], [`CommandError::Queued`],
    /// [`CommandError::AlreadyPaused`], [`CommandError::TraversalComplete`] when only the
    /// terminal status is awaited.
    pub fn pause(&mut self, request: RequestId) -> Result<(), CommandError> {
        let req = self
            .requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        match req.phase {
            Phase::Queued => return Err(CommandError::Queued { request }),
            Phase::Paused => return Err(CommandError::AlreadyPaused { request }),
            Phase::AwaitingStatus => return Err(CommandError::TraversalComplete { request }),
            Phase::Running if req.pause_requested => {
                return Err(CommandError::AlreadyPaused { request });
            }
            Phase::Running => {}
        }
        if req.pending.is_some() {
            req.pause_requested = true;
        } else {
            req.pause(request, &mut self.out);
        }
        Ok(())
    }

    /// Resumes a paused request, merging `extensions` into the stored ones (a name given again
    /// takes the new value). The traversal continues from local blocks; at the first local
    /// miss the request is sent again with the same id (spec §9.2).
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], [`CommandError::NotPaused`].
    pub fn resume(
        &mut self,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), CommandError> {
        let req = self
            .requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        if req.phase == Phase::Running && req.pause_requested {
            req.pause_requested = false;
        } else if req.phase != Phase::Paused {
            return Err(CommandError::NotPaused { request });
        }
        for (name, value) in extensions {
            req.extensions.insert(name, value);
        }
        req.phase = Phase::Running;
        self.run(request);
        Ok(())
    }

    /// Sends an Update with `extensions` for a request the responder is serving.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], [`CommandError::Queued`],
    /// [`CommandError::RemoteNotListening`] when it is paused or the responder has finished.
    pub fn update(
        &mut self,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), CommandError> {
        let req = self
            .requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        if req.phase == Phase::Queued {
            return Err(CommandError::Queued { request });
        }
        let serving = matches!(req.phase, Phase::Running | Phase::AwaitingStatus);
        if !serving || req.remote != Remote::Listening {
            return Err(CommandError::RemoteNotListening { request });
        }
        let peer = req.peer.clone();
        self.out
            .transmit(peer, Request::update(request, extensions));
        Ok(())
    }

    /// Cancels a request: a Cancel goes to the responder unless the request is queued (never
    /// sent) or paused (the pause sent one already), the request
    /// ends with [`Outcome::Cancelled`], and from now on no [`Event::StoreBlock`] or
    /// [`Event::LoadBlock`] is emitted for it (queued ones are withdrawn).
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`].
    pub fn cancel(&mut self, request: RequestId) -> Result<(), CommandError> {
        self.requests
            .get_mut(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        self.out.events.retain(|event| {
            !matches!(event,
                Event::StoreBlock { request: r, .. } | Event::LoadBlock { request: r, .. } if *r == request)
        });
        self.finish(request, Outcome::Cancelled, true);
        Ok(())
    }

    /// Reports that the timer of an [`Event::AwaitingStatus`] fired: the request ends with
    /// [`Outcome::NoTerminalStatus`] and a Cancel goes to the responder, which may still hold
    /// it (for instance paused after its last block).
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`] (it ended meanwhile: a stale timer),
    /// [`CommandError::NotAwaitingStatus`].
    pub fn handle_status_timeout(&mut self, request: RequestId) -> Result<(), CommandError> {
        let req = self
            .requests
            .get(&request)
            .ok_or(CommandError::UnknownRequest { request })?;
        if req.phase != Phase::AwaitingStatus {
            return Err(CommandError::NotAwaitingStatus { request });
        }
        let completion = req.completion();
        self.finish(request, Outcome::NoTerminalStatus(completion), true);
        Ok(())
    }

    /// Reports that `peer` disconnected. As in go-graphsync, requests do not fail: each one in
    /// progress to that peer gets an [`Event::NetworkError`].
    pub fn handle_peer_disconnected(&mut self, peer: &P) {
        let mut ids: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, req)| req.peer == *peer && req.phase != Phase::Queued)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        for request in ids {
            self.out.events.push_back(Event::NetworkError {
                peer: peer.clone(),
                request,
            });
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<(P, Message)> {
        self.out.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event<P>> {
        self.out.events.pop_front()
    }

    fn has_room(&self, peer: &P) -> bool {
        self.in_progress < self.config.max_in_progress
            && self.per_peer.get(peer).copied().unwrap_or(0) < self.config.max_in_progress_per_peer
    }

    fn start(&mut self, id: RequestId) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.phase = Phase::Running;
        req.remote = Remote::Listening;
        let new = Request::new(id, req.root, req.selector.clone())
            .with_extensions(req.extensions.clone());
        let peer = req.peer.clone();
        self.in_progress += 1;
        *self.per_peer.entry(peer.clone()).or_insert(0) += 1;
        self.out.transmit(peer, new);
        self.out.events.push_back(Event::Started {
            request: id,
            in_progress: self.in_progress,
        });
        self.run(id);
    }

    /// Ingests held responses and drives the traversal until it blocks or the request ends.
    fn run(&mut self, id: RequestId) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        match req.run(id, &self.config, &mut self.out) {
            None => {}
            Some((outcome, cancel)) => self.finish(id, outcome, cancel),
        }
    }

    /// Ends a request: a Cancel if asked for and the request was sent and not paused (Go sends
    /// one on local errors even after a terminal status), the outcome event, slot release and
    /// queue admission.
    fn finish(&mut self, id: RequestId, outcome: Outcome, cancel: bool) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        if req.phase == Phase::Queued {
            self.queue.retain(|queued| *queued != id);
        } else {
            if cancel && matches!(req.remote, Remote::Listening | Remote::Finished) {
                self.out.transmit(req.peer.clone(), Request::cancel(id));
            }
            self.in_progress -= 1;
            if let Some(count) = self.per_peer.get_mut(&req.peer) {
                *count -= 1;
                if *count == 0 {
                    self.per_peer.remove(&req.peer);
                }
            }
        }
        self.out.events.push_back(Event::Completed {
            request: id,
            outcome,
        });
        self.admit();
    }

    /// Starts queued requests, oldest first, while the limits allow.
    fn admit(&mut self) {
        let mut index = 0;
        while index < self.queue.len() && self.in_progress < self.config.max_in_progress {
            let id = self.queue[index];
            let startable = self
                .requests
                .get(&id)
                .is_some_and(|req| self.has_room(&req.peer));
            if startable {
                self.queue.remove(index);
                self.start(id);
            } else {
                index += 1;
            }
        }
    }
}

/// Output queues, kept apart from the request map so both can be borrowed at once.
#[derive(Debug)]
struct Outputs<P> {
    transmits: VecDeque<(P, Message)>,
    events: VecDeque<Event<P>>,
}

impl<P> Default for Outputs<P> {
    fn default() -> Self {
        Outputs {
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl<P> Outputs<P> {
    fn transmit(&mut self, peer: P, request: Request) {
        self.transmits
            .push_back((peer, Message::new().with_request(request)));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Paused,
    /// The traversal is complete; the terminal status has not arrived.
    AwaitingStatus,
}

/// What the responder side of a request is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Remote {
    /// Not sent yet (queued).
    Idle,
    /// Sent; responses are accepted.
    Listening,
    /// A terminal success arrived; loads beyond the buffered items go local.
    Finished,
    /// Cancelled by a pause; the first local miss sends the request again.
    Detached,
}

/// One metadata entry, with the block bytes it took from its message.
#[derive(Debug)]
struct RemoteItem {
    cid: Cid,
    action: LinkAction,
    data: Option<Bytes>,
}

/// A response waiting to be ingested (for a hook decision, or just until `run`).
#[derive(Debug)]
struct Held {
    status: ResponseStatus,
    items: Vec<RemoteItem>,
    approved: bool,
}

/// One load the local traversal made: what restart verification replays against.
#[derive(Debug)]
struct RecordEntry {
    cid: Cid,
    depth: usize,
    loaded: bool,
}

/// A load waiting for [`Requester::provide_block`].
#[derive(Debug)]
struct PendingLoad {
    cid: Cid,
    path: Path,
    restart_on_miss: bool,
}

/// Result of one traversal step (short-lived, so its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Flow {
    Continue,
    Blocked,
    End(Outcome, bool),
}

struct Outgoing<P> {
    peer: P,
    root: Cid,
    selector: Node,
    extensions: Extensions,
    phase: Phase,
    remote: Remote,
    traversal: Traversal,
    held: VecDeque<Held>,
    fifo: VecDeque<RemoteItem>,
    buffered_items: usize,
    buffered_bytes: usize,
    unfollowed: Option<usize>,
    replay: Option<usize>,
    record: Vec<RecordEntry>,
    pending: Option<PendingLoad>,
    awaiting_block_decision: bool,
    pause_requested: bool,
    last_status: Option<ResponseStatus>,
    last_block: Option<(Cid, u64)>,
}

impl<P: Debug> Debug for Outgoing<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("peer", &self.peer)
            .field("root", &self.root)
            .field("phase", &self.phase)
            .field("remote", &self.remote)
            .field("loads", &self.record.len())
            .finish_non_exhaustive()
    }
}

impl<P: Clone> Outgoing<P> {
    fn new(
        peer: P,
        root: Cid,
        selector: Node,
        extensions: Extensions,
        traversal: Traversal,
    ) -> Self {
        Outgoing {
            peer,
            root,
            selector,
            extensions,
            phase: Phase::Queued,
            remote: Remote::Idle,
            traversal,
            held: VecDeque::new(),
            fifo: VecDeque::new(),
            buffered_items: 0,
            buffered_bytes: 0,
            unfollowed: None,
            replay: None,
            record: Vec::new(),
            pending: None,
            awaiting_block_decision: false,
            pause_requested: false,
            last_status: None,
            last_block: None,
        }
    }

    /// Ingests approved responses and drives the traversal; `Some` when the request ends
    /// (outcome, whether to send a Cancel).
    fn run(
        &mut self,
        id: RequestId,
        config: &Config,
        out: &mut Outputs<P>,
    ) -> Option<(Outcome, bool)> {
        while self.held.front().is_some_and(|held| held.approved) {
            let held = self.held.pop_front().expect("front checked");
            if let Some(end) = self.ingest(held) {
                return Some(end);
            }
        }
        if self.phase == Phase::AwaitingStatus {
            // `ingest` ends the request on a failure status; a success marks the remote done.
            return (self.remote == Remote::Finished)
                .then(|| (Outcome::Completed(self.completion()), false));
        }
        loop {
            match self.step(id, config, out) {
                Flow::Continue => {}
                Flow::Blocked => return None,
                Flow::End(outcome, cancel) => return Some((outcome, cancel)),
            }
        }
    }

    /// Moves one response's entries into the FIFO, replaying them first against the local
    /// record after a restart, and applies its status.
    fn ingest(&mut self, held: Held) -> Option<(Outcome, bool)> {
        for item in held.items {
            if let Some(position) = self.replay {
                self.buffered_items -= 1;
                self.buffered_bytes -= item.data.as_ref().map_or(0, Bytes::len);
                if let Some(failure) = self.replay_one(position, &item) {
                    return Some((Outcome::Failed(failure), true));
                }
                continue;
            }
            self.fifo.push_back(item);
        }
        self.last_status = Some(held.status);
        if let Some(failure) = Failure::from_status(held.status) {
            return Some((Outcome::Failed(failure), false));
        }
        if held.status.is_success() {
            self.remote = Remote::Finished;
        }
        None
    }

    /// The completion of a finished traversal, with the terminal success status if one came.
    fn completion(&self) -> Completion {
        Completion {
            status: self.last_status.filter(|status| status.is_success()),
            missing: self.traversal.missing_links().to_vec(),
        }
    }

    /// Checks one restarted entry against record entry `position`; advances the replay.
    fn replay_one(&mut self, position: usize, item: &RemoteItem) -> Option<Failure> {
        let entry = &self.record[position];
        if entry.cid != item.cid || (!entry.loaded && item.action.is_followed()) {
            return Some(Failure::IncorrectReplay {
                index: position as u64,
                expected: entry.cid,
                received: item.cid,
            });
        }
        let depth = entry.depth;
        let mut next = position + 1;
        if !item.action.is_followed() {
            // The responder does not describe the subtree; skip what the record holds of it.
            while next < self.record.len() && self.record[next].depth > depth {
                next += 1;
            }
        }
        self.replay = (next < self.record.len()).then_some(next);
        None
    }

    fn step(&mut self, id: RequestId, config: &Config, out: &mut Outputs<P>) -> Flow {
        if self.phase != Phase::Running || self.pending.is_some() || self.awaiting_block_decision {
            return Flow::Blocked;
        }
        let (cid, path) = match self.traversal.next() {
            Err(source) => {
                let failure = Failure::Traversal {
                    source: Box::new(source),
                };
                return Flow::End(Outcome::Failed(failure), true);
            }
            Ok(Step::Done) => {
                if self.remote == Remote::Listening {
                    // The responder has not said how it ended yet: wait for it, bounded.
                    self.phase = Phase::AwaitingStatus;
                    out.events.push_back(Event::AwaitingStatus {
                        request: id,
                        timeout: config.terminal_status_timeout,
                    });
                    return Flow::Blocked;
                }
                return Flow::End(Outcome::Completed(self.completion()), false);
            }
            Ok(Step::Visit(visit)) => {
                let (block, block_size) = self.last_block.unwrap_or((self.root, 0));
                out.events.push_back(Event::Progress {
                    request: id,
                    path: visit.path.clone(),
                    matched: visit.matched,
                    block,
                    block_size,
                });
                return Flow::Continue;
            }
            Ok(Step::Load(load)) => (load.cid, load.path.clone()),
        };
        if self.remote == Remote::Detached {
            return self.load_local(id, out, cid, path, true);
        }
        if let Some(unfollowed) = self.unfollowed {
            if path.len() > unfollowed {
                // Under a branch the responder did not follow: local only, no remote item.
                return self.load_local(id, out, cid, path, false);
            }
            self.unfollowed = None;
        }
        let Some(item) = self.fifo.pop_front() else {
            return match self.remote {
                Remote::Listening => Flow::Blocked,
                _ => self.load_local(id, out, cid, path, false),
            };
        };
        self.buffered_items -= 1;
        self.buffered_bytes -= item.data.as_ref().map_or(0, Bytes::len);
        if item.cid != cid {
            let failure = Failure::IncorrectResponse {
                path,
                expected: cid,
                received: item.cid,
            };
            return Flow::End(Outcome::Failed(failure), true);
        }
        if !item.action.is_followed() {
            self.unfollowed = Some(path.len());
        }
        match item.data {
            Some(data) => {
                out.events.push_back(Event::StoreBlock {
                    request: id,
                    cid,
                    data: data.clone(),
                });
                let wire_size = data.len() as u64;
                match self.feed(id, config, out, &path, cid, data, wire_size) {
                    Ok(()) => Flow::Continue,
                    Err(source) => Flow::End(Outcome::Failed(Failure::Traversal { source }), true),
                }
            }
            None => self.load_local(id, out, cid, path, false),
        }
    }

    fn load_local(
        &mut self,
        id: RequestId,
        out: &mut Outputs<P>,
        cid: Cid,
        path: Path,
        restart_on_miss: bool,
    ) -> Flow {
        out.events.push_back(Event::LoadBlock { request: id, cid });
        self.pending = Some(PendingLoad {
            cid,
            path,
            restart_on_miss,
        });
        Flow::Blocked
    }

    /// Gives a verified block to the traversal and reports it.
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        id: RequestId,
        config: &Config,
        out: &mut Outputs<P>,
        path: &Path,
        cid: Cid,
        data: Bytes,
        wire_size: u64,
    ) -> Result<(), Box<TraversalError>> {
        self.traversal.provide_shared(&data)?;
        let index = self.record.len() as u64;
        self.record.push(RecordEntry {
            cid,
            depth: path.len(),
            loaded: true,
        });
        let size = data.len() as u64;
        self.last_block = Some((cid, size));
        out.events.push_back(Event::BlockReceived {
            request: id,
            cid,
            path: path.clone(),
            size,
            wire_size,
            index,
            awaits_decision: config.block_hooks,
        });
        // The block hook's decision still comes (it may add extensions or terminate); a pause
        // asked for during this load takes effect now, after the block.
        self.awaiting_block_decision = config.block_hooks;
        if self.pause_requested {
            self.pause(id, out);
        }
        Ok(())
    }

    /// Pauses now: Cancel to a responder still sending, remote data dropped.
    fn pause(&mut self, id: RequestId, out: &mut Outputs<P>) {
        self.pause_requested = false;
        self.phase = Phase::Paused;
        if self.remote == Remote::Listening {
            out.transmit(self.peer.clone(), Request::cancel(id));
            self.remote = Remote::Detached;
            self.held.clear();
            self.fifo.clear();
            self.buffered_items = 0;
            self.buffered_bytes = 0;
            self.replay = None;
        }
        out.events.push_back(Event::Paused { request: id });
    }

    /// Sends the request again after a pause: same id, merged extensions,
    /// do-not-send-first-blocks = loads made so far (at least the caller's own value).
    fn restart(&mut self, id: RequestId, out: &mut Outputs<P>) {
        let loads = self.record.len() as i64;
        let mut extensions = self.extensions.clone();
        let own = extensions
            .do_not_send_first_blocks()
            .and_then(Result::ok)
            .unwrap_or(0);
        let skip = loads.max(own);
        if skip > 0 {
            extensions.insert(
                extension::DO_NOT_SEND_FIRST_BLOCKS,
                Some(extension::encode_do_not_send_first_blocks(skip)),
            );
        }
        out.transmit(
            self.peer.clone(),
            Request::new(id, self.root, self.selector.clone()).with_extensions(extensions),
        );
        self.remote = Remote::Listening;
        self.replay = (!self.record.is_empty()).then_some(0);
    }
}

/// The first ADL name in a selector, if any.
fn find_adl(selector: &Selector) -> Option<String> {
    match selector {
        Selector::ExploreInterpretAs { adl, .. } => Some(adl.to_string()),
        Selector::Matcher { .. } | Selector::ExploreRecursiveEdge => None,
        Selector::ExploreAll { next }
        | Selector::ExploreIndex { next, .. }
        | Selector::ExploreRange { next, .. } => find_adl(next),
        Selector::ExploreRecursive { sequence, .. } => find_adl(sequence),
        Selector::ExploreFields { fields } => {
            fields.iter().find_map(|(_, selector)| find_adl(selector))
        }
        Selector::ExploreUnion(members) => members.iter().find_map(find_adl),
        _ => None,
    }
}

/// Request ids from a seed: splitmix64, shaped as UUIDv4 (version and variant bits set).
#[derive(Debug)]
struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    fn new(seed: u64) -> Self {
        IdGenerator { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_id(&mut self) -> RequestId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        RequestId::new(bytes)
    }

    /// The next id not in use.
    fn next_free<V>(&mut self, in_use: &HashMap<RequestId, V>) -> RequestId {
        loop {
            let id = self.next_id();
            if !in_use.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v4_shaped_and_deterministic() {
        let mut a = IdGenerator::new(7);
        let mut b = IdGenerator::new(7);
        let first = a.next_id();
        assert_eq!(first, b.next_id());
        assert_eq!(first.as_bytes()[6] >> 4, 4);
        assert_eq!(first.as_bytes()[8] >> 6, 0b10);
        assert_ne!(first, a.next_id());
        assert_ne!(IdGenerator::new(8).next_id(), first);
    }

    #[test]
    fn next_free_skips_ids_in_use() {
        let mut probe = IdGenerator::new(3);
        let taken = probe.next_id();
        let mut in_use = HashMap::new();
        in_use.insert(taken, ());
        let mut generator = IdGenerator::new(3);
        assert_ne!(generator.next_free(&in_use), taken);
    }

    #[test]
    fn every_failure_status_maps_to_its_failure() {
        use ResponseStatus as S;
        let cases = [
            (S::RequestRejected, "Rejected"),
            (S::RequestFailedBusy, "Busy"),
            (S::RequestFailedUnknown, "FailedUnknown"),
            (S::RequestFailedLegal, "Legal"),
            (S::RequestFailedContentNotFound, "ContentNotFound"),
            (S::RequestCancelled, "ResponderCancelled"),
        ];
        for (status, name) in cases {
            let failure = Failure::from_status(status).expect("a failure status");
            assert!(
                format!("{failure:?}").starts_with(name),
                "{status}: {failure:?}"
            );
        }
        for status in ResponseStatus::ALL {
            assert_eq!(Failure::from_status(status).is_some(), status.is_failure());
        }
    }
}
