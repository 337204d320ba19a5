//! The pure Graphsync responder core: admission, validation, traversal, Go's message batching,
//! pause/unpause/update/cancel and memory back-pressure (spec §1.5, §7, §9).
//!
//! [`Responder`] holds every response this node serves to every peer. It does no I/O and reads
//! no clock: inputs are `handle_*` methods and imperative commands, each returning at once;
//! outputs are drained with [`Responder::poll_transmit`] and [`Responder::poll_event`].
//!
//! # Driving contract
//!
//! After every input or command, drain [`Responder::poll_event`] and answer what it asks
//! (a [`Event::LoadBlock`] with [`Responder::provide_block`]; with hooks on, the `Event`s that
//! ask with the matching `handle_*_decision`), then drain [`Responder::poll_transmit`] and write
//! each [`Transmit`] to its peer; report the outcome with [`Responder::handle_sent`] or
//! [`Responder::handle_send_failed`]. Answering block loads before taking transmits is what
//! lets transactions batch into full messages; taking a transmit closes the message that is
//! being built for that peer. Block loads may also be answered later (an asynchronous
//! blockstore): the request simply waits.
//!
//! # Hooks
//!
//! User hooks leave the core as events that ask and come back as inputs that answer, each
//! switched on in [`Hooks`]: [`Event::RequestReceived`] → [`Responder::handle_request_decision`],
//! [`Event::UpdateReceived`] → [`Responder::handle_update_decision`], [`Event::BlockLoaded`] →
//! [`Responder::handle_block_decision`]. A libp2p behaviour that wants Go-style synchronous
//! hooks runs its hook functions while draining events and answers at once. With a hook off,
//! the core decides alone: requests are judged by the default validator alone, updates are
//! dropped, blocks go on unhooked.
//!
//! # Decisions that differ from go-graphsync (documented deviations)
//!
//! - Admission is bounded. Up to [`Config::max_in_progress`] responses run at once
//!   (at most [`Config::max_in_progress_per_peer`] per peer); further accepted requests wait in
//!   a per-peer queue. Beyond [`Config::max_requests_per_peer`] /
//!   [`Config::max_requests`] requests tracked in any state, a New request is refused at once
//!   with status 30 RequestRejected and [`RequestError::TooManyRequests`] /
//!   [`RequestError::TooManyRequestsFromPeer`]. We do not send 31 RequestFailedBusy because no
//!   Go peer ever sends it; 30 is the refusal every Go requester already expects.
//! - Scheduling: the waiting request of the peer with the fewest running responses starts
//!   first (ties: the peer served least recently), then by priority and arrival within a peer.
//! - Block de-duplication is per request (spec §7.5 recommendation); `dedup-by-key` is parsed
//!   (a bad value answers 32) but shares nothing across requests.
//! - A request cancelled by its requester, or replaced by a New with the same id, has its
//!   not-yet-taken response data removed from the outbox.
//! - Besides Go's 512 KiB of block bytes, a message closes once about
//!   [`Config::max_metadata_bytes_per_message`] of metadata has joined it.
//! - Pending updates are bounded ([`Config::max_pending_updates`]); one more fails the request
//!   with 32 and [`RequestError::TooManyUpdates`].
//! - A request paused by [`Responder::pause`] before it started runs until its first block.
//! - When the request-updated hook terminates a running response at a block, that load is
//!   not reported; 32 follows the earlier transactions.
//! - A block load answered after its request was cancelled or replaced is refused with a
//!   [`CommandError`] that the driver may ignore; an answer for the same CID to a replacing
//!   request is accepted (blocks are content-addressed, so it is the same block).

mod builder;
mod sent;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use bytes::Bytes;
use cid::Cid;
use ipld_dagcbor::Limits as BlockLimits;
use ipld_selector::{ParseError, Selector, Step, Traversal, TraversalError};

use self::builder::{Built, Limits, Outbox, Transaction};
use self::sent::SentBlocks;
use crate::extension::{ExtensionError, Extensions};
use crate::message::{
    LinkAction, Message, Metadatum, Priority, Request, RequestId, RequestKind, ResponseStatus,
};

/// Internal identity of one request instance (ids may be reused by the requester).
type TaskKey = u64;

/// Settings of a [`Responder`]. Every bound is documented with its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Responses whose traversal runs at once, all peers together. Default: 200.
    pub max_in_progress: usize,
    /// Responses whose traversal runs at once for one peer. Default: 20.
    pub max_in_progress_per_peer: usize,
    /// Requests tracked in any state (validating, queued, running, paused), all peers.
    /// A New request beyond it is refused with 30. Default: 10 000.
    pub max_requests: usize,
    /// Requests tracked in any state for one peer. Default: 500.
    pub max_requests_per_peer: usize,
    /// Block bytes queued or in flight but not yet reported sent, all peers, each metadata
    /// entry counting 512 bytes more (its CID and bookkeeping, so that many small blocks are
    /// bounded as well as large ones). Over it, no traversal pulls more blocks. Default:
    /// 256 MiB (go-graphsync's `MaxMemoryResponder`).
    pub max_memory: u64,
    /// The same bound per peer (counted the same way). Default: 16 MiB (go-graphsync's
    /// `MaxMemoryPerPeerResponder`). A transaction whose block alone exceeds the
    /// bound still goes out once nothing else of that peer is held.
    pub max_memory_per_peer: u64,
    /// Block bytes per message (Go's `maxBlockSize`); a larger single block gets a message of
    /// its own. Default: 524 288 (512 KiB).
    pub max_block_bytes_per_message: u64,
    /// Estimated encoded metadata (and extension) bytes per message before a new one starts.
    /// Default: 1 MiB.
    pub max_metadata_bytes_per_message: usize,
    /// Messages built or in flight but not reported sent, per peer; at the bound, traversals
    /// for that peer wait. Default: 64.
    pub max_unsent_messages_per_peer: usize,
    /// Updates stored for one request until its next block. Default: 16.
    pub max_pending_updates: usize,
    /// Link budget per request, the root included, Go style (see
    /// [`ipld_selector::Config::link_budget`]); a request hook may set its own. Default: `None`.
    pub link_budget: Option<u64>,
    /// go-graphsync's default request validator: validates a request whose every
    /// ExploreRecursive has a depth limit of at most this. `None` validates nothing (Go's
    /// `RejectAllRequestsByDefault`): then only a request hook can validate. Default: `Some(100)`.
    pub default_validator: Option<u64>,
    /// Which hooks ask the application. Default: none.
    pub hooks: Hooks,
    /// Bounds for decoding dag-cbor blocks during traversal. Default: [`BlockLimits::default`].
    pub block_limits: BlockLimits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_in_progress: 200,
            max_in_progress_per_peer: 20,
            max_requests: 10_000,
            max_requests_per_peer: 500,
            max_memory: 256 << 20,
            max_memory_per_peer: 16 << 20,
            max_block_bytes_per_message: 512 << 10,
            max_metadata_bytes_per_message: 1 << 20,
            max_unsent_messages_per_peer: 64,
            max_pending_updates: 16,
            link_budget: None,
            default_validator: Some(ipld_selector::GRAPHSYNC_MAX_RECURSION_DEPTH),
            hooks: Hooks::default(),
            block_limits: BlockLimits::default(),
        }
    }
}

/// Which application hooks the responder asks (each off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// Incoming-request hook: [`Event::RequestReceived`], answered by
    /// [`Responder::handle_request_decision`].
    pub request: bool,
    /// Request-updated hook: [`Event::UpdateReceived`], answered by
    /// [`Responder::handle_update_decision`].
    pub update: bool,
    /// Outgoing-block hook: [`Event::BlockLoaded`], answered by
    /// [`Responder::handle_block_decision`].
    pub block: bool,
}

/// The incoming-request hook's answer (spec §7.2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestDecision {
    /// The hook validates the request (the default validator may validate it too).
    pub validated: bool,
    /// Pause the response before the traversal starts (15).
    pub pause: bool,
    /// Terminate with an error (32); wins over everything else.
    pub terminate: bool,
    /// Extensions for the response.
    pub extensions: Extensions,
    /// A link budget for this request, replacing [`Config::link_budget`].
    pub link_budget: Option<u64>,
}

impl RequestDecision {
    /// Validates the request.
    pub fn validate() -> Self {
        RequestDecision {
            validated: true,
            ..RequestDecision::default()
        }
    }

    /// Does not validate it (30 unless the default validator does).
    pub fn reject() -> Self {
        RequestDecision::default()
    }

    /// Terminates it with an error (32).
    pub fn terminate() -> Self {
        RequestDecision {
            terminate: true,
            ..RequestDecision::default()
        }
    }

    /// This decision, also pausing.
    pub fn with_pause(self) -> Self {
        RequestDecision {
            pause: true,
            ..self
        }
    }

    /// This decision with response extensions.
    pub fn with_extensions(self, extensions: Extensions) -> Self {
        RequestDecision { extensions, ..self }
    }

    /// This decision with a link budget.
    pub fn with_link_budget(self, budget: u64) -> Self {
        RequestDecision {
            link_budget: Some(budget),
            ..self
        }
    }
}

/// The request-updated hook's answer (spec §7.6, §7.7).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateDecision {
    /// Unpause the response (only effective while it is paused).
    pub unpause: bool,
    /// Terminate with an error (32).
    pub terminate: bool,
    /// Extensions for the response.
    pub extensions: Extensions,
}

/// The outgoing-block hook's answer (spec §7.3 step 4).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockDecision {
    /// Pause after this block (15 joins its transaction).
    pub pause: bool,
    /// Terminate with an error (32 follows this block).
    pub terminate: bool,
    /// Extensions joining this block's transaction.
    pub extensions: Extensions,
}

/// What the responder did for one link load: the record the outgoing-block hook and the
/// block-sent notification receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    /// The link loaded.
    pub cid: Cid,
    /// The load index k, counting from 1 (every load: present or missing).
    pub index: u64,
    /// The block's size (0 when missing).
    pub size: u64,
    /// Block bytes put on the wire (0 when withheld or missing).
    pub sent: u64,
    /// The block was found and is a first occurrence in this response, so it would have been
    /// sent, but the requester said it already holds it (`do-not-send-first-blocks` covers
    /// its index, or `do-not-send-cids` lists it). A data-transfer sender counts such a block
    /// as delivered on a restart (the requester's count says it arrived); a repeated or
    /// missing block is never withheld.
    pub withheld: bool,
    /// The metadata action (`Present` or `Missing`).
    pub action: LinkAction,
}

/// Identifies one message handed out by [`Responder::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// A message to write to a peer.
#[derive(Clone, Debug, PartialEq)]
pub struct Transmit<P> {
    /// The peer.
    pub peer: P,
    /// Report the outcome with this id.
    pub id: MessageId,
    /// The message.
    pub message: Message,
}

/// What the responder reports or asks.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<P> {
    /// Asks for a block: answer with [`Responder::provide_block`].
    LoadBlock {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
        /// The block wanted.
        cid: Cid,
    },
    /// Asks the incoming-request hook ([`Hooks::request`]): answer with
    /// [`Responder::handle_request_decision`].
    RequestReceived {
        /// The requester.
        peer: P,
        /// The request as received.
        request: Request,
        /// Whether the default validator validates it.
        default_validated: bool,
    },
    /// Asks the request-updated hook ([`Hooks::update`]): answer with
    /// [`Responder::handle_update_decision`].
    UpdateReceived {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
        /// The updates' extensions, in arrival order.
        updates: Vec<Extensions>,
    },
    /// Asks the outgoing-block hook ([`Hooks::block`]) about a found block: answer with
    /// [`Responder::handle_block_decision`].
    BlockLoaded {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
        /// The load.
        record: BlockRecord,
    },
    /// A traversal started (first time only).
    Started {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
    },
    /// The response was paused (15 queued).
    Paused {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
    },
    /// A message holding this load record was reported sent.
    BlockSent {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
        /// The load.
        record: BlockRecord,
    },
    /// A message holding this terminal status was reported sent.
    Completed {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
        /// The terminal status.
        status: ResponseStatus,
    },
    /// The requester cancelled; the response stopped silently.
    CancelledByRequester {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
    },
    /// The request failed; `status` is queued for the requester.
    Failed {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
        /// The status sent.
        status: ResponseStatus,
        /// Why.
        error: RequestError,
    },
    /// A message for this request could not be sent; the response was dropped.
    NetworkError {
        /// The requester.
        peer: P,
        /// The request.
        request: RequestId,
    },
}

/// Why one request failed. Only that request is affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// [`Config::max_requests`] requests are already tracked (30).
    #[error("too many requests in total (limit {limit})")]
    TooManyRequests {
        /// The bound.
        limit: usize,
    },
    /// [`Config::max_requests_per_peer`] requests of this peer are already tracked (30).
    #[error("too many requests from this peer (limit {limit})")]
    TooManyRequestsFromPeer {
        /// The bound.
        limit: usize,
    },
    /// The selector does not parse (32).
    #[error("invalid selector")]
    InvalidSelector {
        /// The parser's reason.
        #[source]
        source: ParseError,
    },
    /// No validator validated the request (30).
    #[error("request not validated")]
    NotValidated,
    /// A hook terminated the request (32).
    #[error("terminated by a hook")]
    TerminatedByHook,
    /// A known request extension has a bad value (32).
    #[error("invalid request extension")]
    InvalidExtension {
        /// The extension's reason.
        #[source]
        source: ExtensionError,
    },
    /// The traversal failed: undecodable block, unknown codec, link budget, ADL (32).
    #[error("traversal failed")]
    Traversal {
        /// The traversal's reason.
        #[source]
        source: TraversalError,
    },
    /// More than [`Config::max_pending_updates`] updates arrived before the next block (32).
    #[error("too many pending updates (limit {limit})")]
    TooManyUpdates {
        /// The bound.
        limit: usize,
    },
}

/// Local misuse of a [`Responder`] command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No request with this id is tracked for this peer (it may have finished or been
    /// cancelled; a late answer for it is harmless to ignore).
    #[error("unknown request {request}")]
    UnknownRequest {
        /// The request.
        request: RequestId,
    },
    /// The request is not waiting for this answer.
    #[error("request {request} is not waiting for this answer")]
    NotAwaiting {
        /// The request.
        request: RequestId,
    },
    /// The block answered is not the one the request waits for.
    #[error("request {request} waits for another block")]
    UnexpectedBlock {
        /// The request.
        request: RequestId,
    },
    /// Unpause of a response that is not paused.
    #[error("request {request} is not paused")]
    NotPaused {
        /// The request.
        request: RequestId,
    },
    /// Pause of a response that is already paused or not yet accepted.
    #[error("request {request} cannot be paused now")]
    CannotPause {
        /// The request.
        request: RequestId,
    },
    /// No message with this id is in flight for this peer.
    #[error("unknown message {message:?}")]
    UnknownMessage {
        /// The message.
        message: MessageId,
    },
}

/// The responder core for all peers. `P` identifies a peer (libp2p's `PeerId` later).
///
/// # Examples
///
/// ```
/// use graphsync::responder::{Config, Event, Responder};
/// use graphsync::{Message, Request, RequestId, ResponseStatus, codec::v2};
/// use ipld_dagcbor::{Cid, Node};
///
/// let leaf: Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let selector = ipld_dagcbor::decode(&[0xa1, 0x61, b'.', 0xa0])?; // {".": {}}
/// let id = RequestId::new([1; 16]);
/// let mut responder = Responder::new(Config::default());
/// responder.handle_message("alice", Message::new().with_request(Request::new(id, leaf, selector)));
/// // Drain events, answering block loads from the store.
/// while let Some(event) = responder.poll_event() {
///     if let Event::LoadBlock { peer, request, cid } = event {
///         responder.provide_block(&peer, request, cid, Some(b"leaf one".to_vec().into()))?;
///     }
/// }
/// let transmit = responder.poll_transmit().expect("a response");
/// assert_eq!(transmit.message.responses[0].status, ResponseStatus::RequestCompletedFull);
/// assert_eq!(transmit.message.blocks.len(), 1);
/// v2::to_vec(&transmit.message)?;
/// responder.handle_sent(&transmit.peer, transmit.id)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Responder<P> {
    config: Config,
    peers: BTreeMap<P, PeerState>,
    tasks: BTreeMap<TaskKey, Task<P>>,
    /// Tasks that can make progress without an input (ready, or waiting for memory).
    runnable: BTreeSet<TaskKey>,
    events: VecDeque<Event<P>>,
    next_key: TaskKey,
    next_seq: u64,
    next_message: u64,
    tick: u64,
    running: usize,
    memory: u64,
    last_transmit_peer: Option<P>,
}

#[derive(Debug, Default)]
struct PeerState {
    /// Queued tasks: highest priority first, then arrival.
    queue: BTreeSet<(Reverse<i64>, u64, TaskKey)>,
    ids: HashMap<RequestId, TaskKey>,
    running: usize,
    tracked: usize,
    last_served: u64,
    memory: u64,
    outbox: Outbox,
    in_flight: BTreeMap<MessageId, Built>,
}

#[derive(Debug)]
struct Task<P> {
    peer: P,
    id: RequestId,
    priority: i64,
    seq: u64,
    root: Cid,
    selector: Option<Selector>,
    /// The request's extensions, until they are applied.
    extensions: Extensions,
    default_validated: bool,
    traversal: Option<Traversal>,
    state: State,
    started: bool,
    loads: u64,
    skip_first: u64,
    do_not_send: HashSet<Cid>,
    sent: SentBlocks,
    pending_updates: Vec<Extensions>,
    update_asked: bool,
    pause_requested: bool,
}

#[derive(Debug)]
enum State {
    Validating,
    Queued,
    Ready,
    AwaitingBlock(Cid),
    AwaitingUpdateDecision(Loaded),
    AwaitingBlockDecision(Pending),
    AwaitingMemory(Pending),
    Paused,
}

impl State {
    fn is_running(&self) -> bool {
        !matches!(self, State::Validating | State::Queued | State::Paused)
    }
}

#[derive(Debug)]
struct Loaded {
    cid: Cid,
    bytes: Option<Bytes>,
}

#[derive(Debug)]
struct Pending {
    txn: Transaction,
    fail: Option<RequestError>,
    pause: bool,
}

impl<P: Clone + Eq + Hash + Ord + Debug> Responder<P> {
    /// A responder with no requests.
    pub fn new(config: Config) -> Self {
        Responder {
            config,
            peers: BTreeMap::new(),
            tasks: BTreeMap::new(),
            runnable: BTreeSet::new(),
            events: VecDeque::new(),
            next_key: 0,
            next_seq: 0,
            next_message: 0,
            tick: 0,
            running: 0,
            memory: 0,
            last_transmit_peer: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles the requests of a message received from `peer`, in order (responses and blocks
    /// in it are the requester core's business and are ignored here).
    pub fn handle_message(&mut self, peer: P, message: Message) {
        for request in message.requests {
            match request.kind {
                RequestKind::New { .. } => self.receive_new(&peer, request),
                RequestKind::Cancel => self.receive_cancel(&peer, request.id),
                RequestKind::Update => self.receive_update(&peer, request.id, request.extensions),
            }
        }
        self.run();
    }

    /// Answers [`Event::LoadBlock`]: the block's bytes, or `None` when the store lacks it.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`] / [`CommandError::NotAwaiting`] when the request is
    /// gone or not loading (a late answer after a cancel: ignore it);
    /// [`CommandError::UnexpectedBlock`] for another CID.
    pub fn provide_block(
        &mut self,
        peer: &P,
        request: RequestId,
        cid: Cid,
        bytes: Option<Bytes>,
    ) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        let task = self.task_mut(key);
        match task.state {
            State::AwaitingBlock(expected) if expected == cid => {}
            State::AwaitingBlock(_) => return Err(CommandError::UnexpectedBlock { request }),
            _ => return Err(CommandError::NotAwaiting { request }),
        }
        self.on_loaded(key, Loaded { cid, bytes });
        self.run();
        Ok(())
    }

    /// Answers [`Event::RequestReceived`].
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], or [`CommandError::NotAwaiting`] when the request was
    /// already decided.
    pub fn handle_request_decision(
        &mut self,
        peer: &P,
        request: RequestId,
        decision: RequestDecision,
    ) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        if !matches!(self.task_mut(key).state, State::Validating) {
            return Err(CommandError::NotAwaiting { request });
        }
        self.decide(key, decision);
        self.run();
        Ok(())
    }

    /// Answers [`Event::UpdateReceived`].
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], or [`CommandError::NotAwaiting`] when no update
    /// question is open for the request.
    pub fn handle_update_decision(
        &mut self,
        peer: &P,
        request: RequestId,
        decision: UpdateDecision,
    ) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        let task = self.task_mut(key);
        if !task.update_asked {
            return Err(CommandError::NotAwaiting { request });
        }
        task.update_asked = false;
        if decision.terminate {
            self.finish(
                key,
                ResponseStatus::RequestFailedUnknown,
                decision.extensions,
                Some(RequestError::TerminatedByHook),
            );
        } else {
            match std::mem::replace(&mut task.state, State::Ready) {
                // The task stays running through the replacement; build the load's transaction
                // with the hooks' extensions.
                State::AwaitingUpdateDecision(loaded) => {
                    self.build_txn(key, loaded, decision.extensions);
                }
                other => {
                    task.state = other;
                    self.send_extension_only(key, decision.extensions);
                    let task = self.task_mut(key);
                    if decision.unpause && matches!(task.state, State::Paused) {
                        self.requeue_unpaused(key);
                    } else if matches!(task.state, State::Paused)
                        && !task.pending_updates.is_empty()
                    {
                        self.ask_update(key);
                    }
                }
            }
        }
        self.run();
        Ok(())
    }

    /// Answers [`Event::BlockLoaded`].
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`], or [`CommandError::NotAwaiting`] when no block
    /// question is open for the request.
    pub fn handle_block_decision(
        &mut self,
        peer: &P,
        request: RequestId,
        decision: BlockDecision,
    ) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        let task = self.task_mut(key);
        let mut pending = match std::mem::replace(&mut task.state, State::Ready) {
            State::AwaitingBlockDecision(pending) => pending,
            other => {
                task.state = other;
                return Err(CommandError::NotAwaiting { request });
            }
        };
        for (name, value) in decision.extensions {
            pending.txn.extensions.insert(name, value);
        }
        pending.pause |= decision.pause;
        if decision.terminate && pending.fail.is_none() {
            pending.fail = Some(RequestError::TerminatedByHook);
        }
        self.finish_txn(key, pending);
        self.run();
        Ok(())
    }

    /// Pauses a response: noticed at its next block, which is still sent with 15 after it.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`]; [`CommandError::CannotPause`] when it is already
    /// paused or still being validated.
    pub fn pause(&mut self, peer: &P, request: RequestId) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        let task = self.task_mut(key);
        if matches!(task.state, State::Paused | State::Validating) {
            return Err(CommandError::CannotPause { request });
        }
        task.pause_requested = true;
        Ok(())
    }

    /// Resumes a paused response, first sending `extensions` (if any) as a 14 response. It is
    /// queued again with the highest priority and continues from the next link.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`]; [`CommandError::NotPaused`].
    pub fn unpause(
        &mut self,
        peer: &P,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        if !matches!(self.task_mut(key).state, State::Paused) {
            return Err(CommandError::NotPaused { request });
        }
        self.send_extension_only(key, extensions);
        self.requeue_unpaused(key);
        self.run();
        Ok(())
    }

    /// Cancels a response locally: terminal 35 to the requester, state cleared.
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`].
    pub fn cancel(&mut self, peer: &P, request: RequestId) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        self.finish(
            key,
            ResponseStatus::RequestCancelled,
            Extensions::new(),
            None,
        );
        self.run();
        Ok(())
    }

    /// Sends extensions to the requester as a 14 response (Go's `SendUpdate` on a response).
    ///
    /// # Errors
    /// [`CommandError::UnknownRequest`].
    pub fn send_extensions(
        &mut self,
        peer: &P,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), CommandError> {
        let key = self.key_of(peer, request)?;
        self.send_extension_only(key, extensions);
        self.run();
        Ok(())
    }

    /// The driver wrote message `id` to `peer`: frees its memory and fires
    /// [`Event::BlockSent`] and [`Event::Completed`].
    ///
    /// # Errors
    /// [`CommandError::UnknownMessage`].
    pub fn handle_sent(&mut self, peer: &P, id: MessageId) -> Result<(), CommandError> {
        let built = self.take_in_flight(peer, id)?;
        for entry in built.entries {
            for record in entry.records {
                self.events.push_back(Event::BlockSent {
                    peer: peer.clone(),
                    request: entry.id,
                    record,
                });
            }
            if entry.status.is_terminal() {
                self.events.push_back(Event::Completed {
                    peer: peer.clone(),
                    request: entry.id,
                    status: entry.status,
                });
            }
        }
        self.gc_peer(peer);
        self.run();
        Ok(())
    }

    /// The driver could not write message `id` (after its retries): every response in it is
    /// dropped without a terminal status, with [`Event::NetworkError`].
    ///
    /// # Errors
    /// [`CommandError::UnknownMessage`].
    pub fn handle_send_failed(&mut self, peer: &P, id: MessageId) -> Result<(), CommandError> {
        let built = self.take_in_flight(peer, id)?;
        self.network_failure(peer, built);
        self.gc_peer(peer);
        self.run();
        Ok(())
    }

    /// The peer is gone: everything for it is dropped, with [`Event::NetworkError`] for the
    /// responses that had messages queued or in flight and for every other response it still
    /// had (an idle one too: waiting for a block load, paused, or queued), so that the owner
    /// of each response learns at once that it ended.
    pub fn handle_peer_disconnected(&mut self, peer: &P) {
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        self.memory -= std::mem::take(&mut state.memory);
        let mut failed: Vec<Built> = std::mem::take(&mut state.in_flight).into_values().collect();
        failed.extend(state.outbox.drain());
        let keys: Vec<TaskKey> = state.ids.values().copied().collect();
        for built in failed {
            self.network_failure(peer, built);
        }
        for key in keys {
            if self.tasks.contains_key(&key) {
                let task = self.remove_task(key);
                self.events.push_back(Event::NetworkError {
                    peer: peer.clone(),
                    request: task.id,
                });
            }
        }
        self.peers.remove(peer);
        self.run();
    }

    /// The next message to write, if any. Peers take turns.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        let peer = {
            let after = self.last_transmit_peer.as_ref();
            let later = self
                .peers
                .iter()
                .filter(|(peer, _)| after.is_none_or(|last| *peer > last));
            let earlier = self
                .peers
                .iter()
                .filter(|(peer, _)| after.is_some_and(|last| *peer <= last));
            later
                .chain(earlier)
                .find(|(_, state)| state.outbox.has_message())
                .map(|(peer, _)| peer.clone())?
        };
        let state = self.peers.get_mut(&peer)?;
        let built = state.outbox.pop()?;
        let id = MessageId(self.next_message);
        self.next_message += 1;
        let mut built = built;
        let message = std::mem::take(&mut built.message);
        state.in_flight.insert(id, built);
        self.last_transmit_peer = Some(peer.clone());
        Some(Transmit { peer, id, message })
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<P>> {
        self.events.pop_front()
    }

    /// Responses tracked in any state, all peers.
    pub fn tracked(&self) -> usize {
        self.tasks.len()
    }

    /// Responses whose traversal is running, all peers.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Block bytes queued or in flight, not yet reported sent: all peers, and for `peer`.
    pub fn memory(&self, peer: &P) -> (u64, u64) {
        (
            self.memory,
            self.peers.get(peer).map_or(0, |state| state.memory),
        )
    }

    /// Memory queued or in flight, not yet reported sent, all peers together: block bytes plus
    /// the per-entry charge of [`Config::max_memory`].
    pub fn total_memory(&self) -> u64 {
        self.memory
    }

    fn receive_new(&mut self, peer: &P, request: Request) {
        let RequestKind::New {
            root,
            selector,
            priority: Priority(priority),
        } = &request.kind
        else {
            return;
        };
        let id = request.id;
        if let Some(old) = self.peers.get(peer).and_then(|state| state.ids.get(&id)) {
            // §2.7: a New for an id in progress replaces the old response silently.
            let old = *old;
            self.purge(peer, old);
            self.remove_task(old);
        }
        let peer_tracked = self.peers.get(peer).map_or(0, |state| state.tracked);
        let refusal = if self.tasks.len() >= self.config.max_requests {
            Some(RequestError::TooManyRequests {
                limit: self.config.max_requests,
            })
        } else if peer_tracked >= self.config.max_requests_per_peer {
            Some(RequestError::TooManyRequestsFromPeer {
                limit: self.config.max_requests_per_peer,
            })
        } else {
            None
        };
        if let Some(error) = refusal {
            self.refuse(peer, id, ResponseStatus::RequestRejected, error);
            return;
        }
        let parsed = match Selector::from_node(selector) {
            Ok(parsed) => parsed,
            Err(source) => {
                let error = RequestError::InvalidSelector { source };
                self.refuse(peer, id, ResponseStatus::RequestFailedUnknown, error);
                return;
            }
        };
        let default_validated = self
            .config
            .default_validator
            .is_some_and(|max| parsed.check_recursion_depth(max).is_ok());
        let key = self.next_key;
        self.next_key += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let task = Task {
            peer: peer.clone(),
            id,
            priority: i64::from(*priority),
            seq,
            root: *root,
            selector: Some(parsed),
            extensions: request.extensions.clone(),
            default_validated,
            traversal: None,
            state: State::Validating,
            started: false,
            loads: 0,
            skip_first: 0,
            do_not_send: HashSet::new(),
            sent: SentBlocks::default(),
            pending_updates: Vec::new(),
            update_asked: false,
            pause_requested: false,
        };
        self.tasks.insert(key, task);
        let state = self.peers.entry(peer.clone()).or_default();
        state.ids.insert(id, key);
        state.tracked += 1;
        if self.config.hooks.request {
            self.events.push_back(Event::RequestReceived {
                peer: peer.clone(),
                request,
                default_validated,
            });
        } else {
            self.decide(key, RequestDecision::reject());
        }
    }

    fn decide(&mut self, key: TaskKey, decision: RequestDecision) {
        let task = self.task_mut(key);
        if decision.terminate {
            let error = RequestError::TerminatedByHook;
            let status = ResponseStatus::RequestFailedUnknown;
            self.finish(key, status, decision.extensions, Some(error));
            return;
        }
        if !(decision.validated || task.default_validated) {
            let error = RequestError::NotValidated;
            let status = ResponseStatus::RequestRejected;
            self.finish(key, status, decision.extensions, Some(error));
            return;
        }
        if let Err(source) = self.apply_request_extensions(key) {
            let error = RequestError::InvalidExtension { source };
            let status = ResponseStatus::RequestFailedUnknown;
            self.finish(key, status, decision.extensions, Some(error));
            return;
        }
        let budget = decision.link_budget.or(self.config.link_budget);
        let traversal_config = ipld_selector::Config::default()
            .with_max_recursion_depth(None)
            .with_link_budget(budget)
            .with_block_limits(self.config.block_limits);
        let task = self.task_mut(key);
        let selector = task
            .selector
            .take()
            .expect("the selector is kept until the decision");
        match Traversal::new(task.root, &selector, traversal_config) {
            Ok(traversal) => task.traversal = Some(traversal),
            Err(source) => {
                let error = RequestError::Traversal { source };
                let status = ResponseStatus::RequestFailedUnknown;
                self.finish(key, status, decision.extensions, Some(error));
                return;
            }
        }
        if decision.pause {
            let txn = self
                .txn(key)
                .with_status(ResponseStatus::RequestPaused)
                .with_extensions(decision.extensions);
            self.push_txn(txn);
            self.set_state(key, State::Paused);
            self.emit_paused(key);
        } else {
            self.send_extension_only(key, decision.extensions);
            self.enqueue(key);
        }
    }

    /// Parses the three request extensions in Go's order (§5.2).
    fn apply_request_extensions(&mut self, key: TaskKey) -> Result<(), ExtensionError> {
        let extensions = std::mem::take(&mut self.task_mut(key).extensions);
        if let Some(result) = extensions.dedup_by_key() {
            result?;
        }
        let do_not_send = match extensions.do_not_send_cids() {
            Some(result) => result?,
            None => Vec::new(),
        };
        let skip_first = match extensions.do_not_send_first_blocks() {
            Some(result) => result?,
            None => 0,
        };
        let task = self.task_mut(key);
        task.do_not_send = do_not_send.into_iter().collect();
        task.skip_first = u64::try_from(skip_first).unwrap_or(0);
        Ok(())
    }

    fn receive_cancel(&mut self, peer: &P, id: RequestId) {
        let Some(key) = self.peers.get(peer).and_then(|state| state.ids.get(&id)) else {
            return;
        };
        let key = *key;
        self.purge(peer, key);
        self.remove_task(key);
        self.events.push_back(Event::CancelledByRequester {
            peer: peer.clone(),
            request: id,
        });
    }

    fn receive_update(&mut self, peer: &P, id: RequestId, extensions: Extensions) {
        if !self.config.hooks.update {
            return;
        }
        let Some(key) = self.peers.get(peer).and_then(|state| state.ids.get(&id)) else {
            return;
        };
        let key = *key;
        let limit = self.config.max_pending_updates;
        let task = self.task_mut(key);
        if task.pending_updates.len() >= limit {
            let error = RequestError::TooManyUpdates { limit };
            self.finish(
                key,
                ResponseStatus::RequestFailedUnknown,
                Extensions::new(),
                Some(error),
            );
            return;
        }
        task.pending_updates.push(extensions);
        if matches!(task.state, State::Paused) && !task.update_asked {
            self.ask_update(key);
        }
    }

    fn ask_update(&mut self, key: TaskKey) {
        let task = self.task_mut(key);
        task.update_asked = true;
        let updates = std::mem::take(&mut task.pending_updates);
        let event = Event::UpdateReceived {
            peer: task.peer.clone(),
            request: task.id,
            updates,
        };
        self.events.push_back(event);
    }

    /// A load was answered: one transaction (§7.3).
    fn on_loaded(&mut self, key: TaskKey, loaded: Loaded) {
        let task = self.task_mut(key);
        task.loads += 1;
        if !task.pending_updates.is_empty() && !task.update_asked {
            task.state = State::AwaitingUpdateDecision(loaded);
            self.ask_update(key);
            return;
        }
        self.build_txn(key, loaded, Extensions::new());
    }

    fn build_txn(&mut self, key: TaskKey, loaded: Loaded, extensions: Extensions) {
        let mut txn = self.txn(key).with_extensions(extensions);
        let ask_block_hook = self.config.hooks.block;
        let task = self.task_mut(key);
        let index = task.loads;
        let traversal = task
            .traversal
            .as_mut()
            .expect("a running task has a traversal");
        let mut fail = None;
        let found = loaded.bytes.is_some();
        let record = match loaded.bytes {
            Some(bytes) => {
                let fresh = task.sent.insert(&loaded.cid);
                let withheld =
                    fresh && (index <= task.skip_first || task.do_not_send.contains(&loaded.cid));
                let send = fresh && !withheld;
                if let Err(source) = traversal.provide_shared(&bytes) {
                    fail = Some(RequestError::Traversal { source });
                }
                let size = bytes.len() as u64;
                txn.metadata = Some(Metadatum::new(loaded.cid, LinkAction::Present));
                let sent = if send {
                    txn.block = Some((loaded.cid, bytes));
                    size
                } else {
                    0
                };
                BlockRecord {
                    cid: loaded.cid,
                    index,
                    size,
                    sent,
                    withheld,
                    action: LinkAction::Present,
                }
            }
            None => {
                if let Err(source) = traversal.missing() {
                    fail = Some(RequestError::Traversal { source });
                }
                txn.metadata = Some(Metadatum::new(loaded.cid, LinkAction::Missing));
                BlockRecord {
                    cid: loaded.cid,
                    index,
                    size: 0,
                    sent: 0,
                    withheld: false,
                    action: LinkAction::Missing,
                }
            }
        };
        txn.record = Some(record);
        let pending = Pending {
            txn,
            fail,
            pause: false,
        };
        if found && ask_block_hook {
            let event = Event::BlockLoaded {
                peer: task.peer.clone(),
                request: task.id,
                record,
            };
            task.state = State::AwaitingBlockDecision(pending);
            self.events.push_back(event);
            return;
        }
        self.finish_txn(key, pending);
    }

    /// Commits a transaction once memory allows, then moves the task on.
    fn finish_txn(&mut self, key: TaskKey, mut pending: Pending) {
        let task = self.task_mut(key);
        if std::mem::take(&mut task.pause_requested) {
            pending.pause = true;
        }
        let peer = task.peer.clone();
        if !self.fits(&peer, pending.txn.memory()) {
            self.task_mut(key).state = State::AwaitingMemory(pending);
            self.runnable.insert(key);
            return;
        }
        let Pending {
            mut txn,
            fail,
            pause,
        } = pending;
        if pause && fail.is_none() {
            txn.status = Some(ResponseStatus::RequestPaused);
        }
        self.push_txn(txn);
        if let Some(error) = fail {
            let status = ResponseStatus::RequestFailedUnknown;
            self.finish(key, status, Extensions::new(), Some(error));
        } else if pause {
            self.set_state(key, State::Paused);
            self.emit_paused(key);
        } else {
            self.set_state(key, State::Ready);
        }
    }

    /// Runs a ready traversal to its next load, its end, or its failure.
    fn advance(&mut self, key: TaskKey) {
        let task = self.task_mut(key);
        let traversal = task
            .traversal
            .as_mut()
            .expect("a running task has a traversal");
        let outcome = loop {
            match traversal.next() {
                Ok(Step::Visit(_)) => continue,
                Ok(Step::Load(load)) => break Ok(Some(load.cid)),
                Ok(Step::Done) => break Ok(None),
                Err(source) => break Err(source),
            }
        };
        match outcome {
            Ok(Some(cid)) => {
                let event = Event::LoadBlock {
                    peer: task.peer.clone(),
                    request: task.id,
                    cid,
                };
                self.set_state(key, State::AwaitingBlock(cid));
                self.events.push_back(event);
            }
            Ok(None) => {
                let status = if traversal.root_missing() {
                    ResponseStatus::RequestFailedContentNotFound
                } else if traversal.missing_links().is_empty() {
                    ResponseStatus::RequestCompletedFull
                } else {
                    ResponseStatus::RequestCompletedPartial
                };
                self.finish(key, status, Extensions::new(), None);
            }
            Err(source) => {
                let error = RequestError::Traversal { source };
                let status = ResponseStatus::RequestFailedUnknown;
                self.finish(key, status, Extensions::new(), Some(error));
            }
        }
    }

    /// Starts queued tasks and moves runnable ones until nothing more can happen without input.
    fn run(&mut self) {
        loop {
            self.start_queued();
            let mut progressed = false;
            let keys: Vec<TaskKey> = self.runnable.iter().copied().collect();
            for key in keys {
                let Some(task) = self.tasks.get(&key) else {
                    self.runnable.remove(&key);
                    continue;
                };
                let peer = task.peer.clone();
                match &task.state {
                    State::Ready => {
                        if self.throttled(&peer) {
                            continue;
                        }
                        self.runnable.remove(&key);
                        self.advance(key);
                        progressed = true;
                    }
                    State::AwaitingMemory(pending) => {
                        if !self.fits(&peer, pending.txn.memory()) {
                            continue;
                        }
                        self.runnable.remove(&key);
                        let task = self.task_mut(key);
                        let State::AwaitingMemory(pending) =
                            std::mem::replace(&mut task.state, State::Ready)
                        else {
                            unreachable!("matched just above");
                        };
                        self.finish_txn(key, pending);
                        progressed = true;
                    }
                    _ => {
                        self.runnable.remove(&key);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// Whether traversals of `peer` must wait (memory or unsent messages at their bounds).
    fn throttled(&self, peer: &P) -> bool {
        let Some(state) = self.peers.get(peer) else {
            return false;
        };
        state.memory >= self.config.max_memory_per_peer
            || self.memory >= self.config.max_memory
            || state.outbox.len() + state.in_flight.len()
                >= self.config.max_unsent_messages_per_peer
    }

    /// Whether `size` more bytes of memory (as [`Config::max_memory`] counts it) may be queued
    /// for `peer`.
    fn fits(&self, peer: &P, size: u64) -> bool {
        if size == 0 {
            return true;
        }
        let peer_memory = self.peers.get(peer).map_or(0, |state| state.memory);
        (peer_memory == 0 || peer_memory + size <= self.config.max_memory_per_peer)
            && (self.memory == 0 || self.memory + size <= self.config.max_memory)
    }

    fn start_queued(&mut self) {
        while self.running < self.config.max_in_progress {
            let per_peer = self.config.max_in_progress_per_peer;
            let next = self
                .peers
                .iter()
                .filter(|(_, state)| !state.queue.is_empty() && state.running < per_peer)
                .min_by_key(|(_, state)| (state.running, state.last_served))
                .map(|(peer, _)| peer.clone());
            let Some(peer) = next else {
                return;
            };
            self.tick += 1;
            let tick = self.tick;
            let state = self.peers.get_mut(&peer).expect("peer found just above");
            let (_, _, key) = state.queue.pop_first().expect("queue is not empty");
            state.last_served = tick;
            self.set_state(key, State::Ready);
            let task = self.task_mut(key);
            if !std::mem::replace(&mut task.started, true) {
                let event = Event::Started {
                    peer: task.peer.clone(),
                    request: task.id,
                };
                self.events.push_back(event);
            }
        }
    }

    fn enqueue(&mut self, key: TaskKey) {
        let task = self.task_mut(key);
        let entry = (Reverse(task.priority), task.seq, key);
        let peer = task.peer.clone();
        self.set_state(key, State::Queued);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.queue.insert(entry);
        }
    }

    fn requeue_unpaused(&mut self, key: TaskKey) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let task = self.task_mut(key);
        task.priority = i64::from(i32::MAX);
        task.seq = seq;
        self.enqueue(key);
    }

    /// Changes a task's state, keeping the running counters and the runnable set right.
    fn set_state(&mut self, key: TaskKey, new: State) {
        let task = self.tasks.get_mut(&key).expect("task exists");
        let was_running = task.state.is_running();
        let is_running = new.is_running();
        if matches!(new, State::Ready) {
            self.runnable.insert(key);
        }
        task.state = new;
        let peer = task.peer.clone();
        if was_running != is_running {
            let state = self.peers.get_mut(&peer).expect("a task's peer exists");
            if is_running {
                state.running += 1;
                self.running += 1;
            } else {
                state.running -= 1;
                self.running -= 1;
            }
        }
    }

    /// Queues a terminal status and forgets the request.
    fn finish(
        &mut self,
        key: TaskKey,
        status: ResponseStatus,
        extensions: Extensions,
        error: Option<RequestError>,
    ) {
        let txn = self
            .txn(key)
            .with_status(status)
            .with_extensions(extensions);
        self.push_txn(txn);
        let task = self.remove_task(key);
        if let Some(error) = error {
            self.events.push_back(Event::Failed {
                peer: task.peer,
                request: task.id,
                status,
                error,
            });
        }
    }

    /// Refuses a New request that never became a task.
    fn refuse(&mut self, peer: &P, id: RequestId, status: ResponseStatus, error: RequestError) {
        let key = self.next_key;
        self.next_key += 1;
        let txn = Transaction::new(key, id).with_status(status);
        self.push_txn_to(peer, txn);
        self.events.push_back(Event::Failed {
            peer: peer.clone(),
            request: id,
            status,
            error,
        });
    }

    fn remove_task(&mut self, key: TaskKey) -> Task<P> {
        self.set_state(key, State::Paused);
        let task = self.tasks.remove(&key).expect("task exists");
        self.runnable.remove(&key);
        if let Some(state) = self.peers.get_mut(&task.peer) {
            state.queue.remove(&(Reverse(task.priority), task.seq, key));
            if state.ids.get(&task.id) == Some(&key) {
                state.ids.remove(&task.id);
            }
            state.tracked -= 1;
        }
        let peer = task.peer.clone();
        self.gc_peer(&peer);
        task
    }

    fn purge(&mut self, peer: &P, key: TaskKey) {
        if let Some(state) = self.peers.get_mut(peer) {
            let freed = state.outbox.purge(key);
            state.memory -= freed;
            self.memory -= freed;
        }
    }

    fn send_extension_only(&mut self, key: TaskKey, extensions: Extensions) {
        if !extensions.is_empty() {
            let txn = self.txn(key).with_extensions(extensions);
            self.push_txn(txn);
        }
    }

    fn emit_paused(&mut self, key: TaskKey) {
        let task = self.task_mut(key);
        let event = Event::Paused {
            peer: task.peer.clone(),
            request: task.id,
        };
        self.events.push_back(event);
    }

    fn txn(&mut self, key: TaskKey) -> Transaction {
        Transaction::new(key, self.task_mut(key).id)
    }

    fn push_txn(&mut self, txn: Transaction) {
        let peer = self.task_mut(txn.key).peer.clone();
        self.push_txn_to(&peer, txn);
    }

    fn push_txn_to(&mut self, peer: &P, txn: Transaction) {
        let limits = Limits {
            max_block_bytes: self.config.max_block_bytes_per_message,
            max_metadata_bytes: self.config.max_metadata_bytes_per_message,
        };
        let size = txn.memory();
        let state = self.peers.entry(peer.clone()).or_default();
        state.memory += size;
        self.memory += size;
        state.outbox.push(txn, limits);
    }

    fn take_in_flight(&mut self, peer: &P, id: MessageId) -> Result<Built, CommandError> {
        let state = self
            .peers
            .get_mut(peer)
            .ok_or(CommandError::UnknownMessage { message: id })?;
        let built = state
            .in_flight
            .remove(&id)
            .ok_or(CommandError::UnknownMessage { message: id })?;
        state.memory -= built.memory;
        self.memory -= built.memory;
        Ok(built)
    }

    fn network_failure(&mut self, peer: &P, built: Built) {
        for entry in built.entries {
            self.events.push_back(Event::NetworkError {
                peer: peer.clone(),
                request: entry.id,
            });
            if self.tasks.contains_key(&entry.key) {
                self.purge(peer, entry.key);
                self.remove_task(entry.key);
            }
        }
    }

    fn gc_peer(&mut self, peer: &P) {
        let idle = self.peers.get(peer).is_some_and(|state| {
            state.tracked == 0 && state.in_flight.is_empty() && !state.outbox.has_message()
        });
        if idle {
            self.peers.remove(peer);
        }
    }

    fn key_of(&self, peer: &P, request: RequestId) -> Result<TaskKey, CommandError> {
        self.peers
            .get(peer)
            .and_then(|state| state.ids.get(&request))
            .copied()
            .ok_or(CommandError::UnknownRequest { request })
    }

    fn task_mut(&mut self, key: TaskKey) -> &mut Task<P> {
        self.tasks.get_mut(&key).expect("task exists")
    }
}
