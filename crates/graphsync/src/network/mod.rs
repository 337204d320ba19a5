//! The libp2p side of Graphsync 2.0.0 and 1.0.0: [`Behaviour`], the stream-control behaviour a
//! swarm carries, and [`Node`], the handle of a tokio driver task that owns one
//! [`Responder`](responder::Responder) and one [`Requester`](requester::Requester) and moves
//! their messages over libp2p streams (spec §1).
//!
//! # Streams
//!
//! - Versions: `/ipfs/graphsync/2.0.0` and `/1.0.0` are both accepted by default
//!   ([`Config::protocols`]). A peer that opened a stream is answered on the version it used;
//!   otherwise streams are opened with 2.0.0 first and 1.0.0 when the peer does not support
//!   it. 1.0.0 integer request ids are mapped per peer (both directions) for the node's
//!   lifetime, as go-graphsync keeps them.
//! - Accepting: the [`Behaviour`]'s connection handlers put every negotiated inbound stream
//!   straight into a bounded queue ([`Config::accept_capacity`], default 256) that the driver
//!   drains, so a burst of streams is not lost while the driver is busy (libp2p-stream's own
//!   acceptor holds one stream and drops the next). A stream arriving while the queue is full
//!   is dropped (logged at debug level; the peer sees its stream reset).
//! - Inbound: every stream a peer opens gets a reader task that reads
//!   length-prefixed messages until the peer closes it and hands each one to the driver. A
//!   stream whose framing or body is invalid is dropped (network-error listeners hear of it);
//!   other streams and requests go on.
//! - Outbound: everything this node sends to a peer (requests, cancels and responses) goes on
//!   ONE stream per peer that this node opens, so responses travel on a stream the responder
//!   opened, as go-graphsync expects. A writer task per peer opens it on the first message
//!   (within [`Config::open_timeout`]), reopens it and writes the message once more when a
//!   write fails, and closes it after [`Config::outbound_idle`] without messages (Go ≥ 0.17
//!   resets streams idle for 10 s). A New request whose message cannot be written ends with
//!   [`NodeError::Unreachable`]. The driver never waits for a writer: messages beyond a full
//!   writer queue wait in the driver, so two nodes flooding each other cannot stall.
//! - Connections: a message goes out only on the connection to its peer that was open when it
//!   was queued. Once the peer's last connection has closed, the messages still queued for it
//!   fail (a response's send fails, a New request ends with [`NodeError::Unreachable`])
//!   instead of going out later on a new connection. Only a New request dials a peer with no
//!   connection; responses, cancels and updates never dial, so after a disconnect the peer
//!   that re-dials is the one that opens a request.
//!
//! # Driver
//!
//! The driver follows the cores' driving contract: after each input it drains their events,
//! answering what they ask, and then their transmits. Block loads and puts run as blockstore
//! calls: a call whose future is ready at its first poll (an in-memory store) is answered at
//! once; others run in spawned tasks, at most [`Config::max_store_tasks`] at a time, and their
//! answers are fed back to the cores when they finish, so a slow store delays only the
//! requests that wait for it; when [`Config::max_waiting_store_calls`] more wait for a slot,
//! inbound messages wait too, so a store slower than the network slows the peers instead of
//! filling memory. Likewise, while more than [`Config::pause_reading_above`] block bytes
//! from one peer wait for this node (read and not yet taken, or buffered ahead of the
//! traversals of its running requests), that peer's streams are not read until half of it
//! is left, so a traversal slower than the network (a block hook waiting for each put)
//! slows the responder instead of failing with
//! [`Failure::BufferExceeded`](requester::Failure::BufferExceeded); other peers go on. A
//! block whose put has not finished is served to loads from
//! memory; [`Node::cancel`] returns, and a request's outcome reaches its caller, only once the
//! request's puts are done (so the caller finds every verified block in its store). Likewise
//! a received block reaches the incoming-block hooks and its [`RequestEvent::BlockReceived`]
//! only once its put has finished (as Go stores a block before it runs the hooks), in order
//! within its request: with a hook registered, the request's traversal waits for that put;
//! without one, only the report waits. Other requests are not held back.
//!
//! # Hooks and listeners
//!
//! Registered at runtime on a [`Node`] (`register_*` methods, each returning a
//! [`HookHandle`] that unregisters), any number per kind, called in registration order as
//! go-graphsync calls them (spec §7.9, §8.6): incoming request, outgoing request, incoming
//! response, incoming block, outgoing block, request updated; listeners for completed
//! responses, requestor cancels, blocks sent, network errors and incoming requests. They run
//! synchronously in the driver task and MUST NOT block; a hook that panics terminates its
//! request. Named stores
//! ([`Node::register_store`]) let hooks choose where a request's blocks are read and written
//! (go-graphsync's persistence options).
//!
//! A request whose local traversal is complete waits for the responder's terminal status for
//! at most [`requester::Config::terminal_status_timeout`]; the driver runs that timer and the
//! request then ends with [`Outcome::NoTerminalStatus`].
//!
//! When the last connection to a peer closes, the driver tells both cores (the requester
//! reports [`RequestEvent::PeerDisconnected`] and keeps the request, as go-graphsync does; the
//! responder drops that peer's responses) and forgets the peer's outbound stream.
//!
//! Progress events are buffered per request ([`Config::event_capacity`]); when the caller does
//! not read them, later ones are dropped, never the outcome, so a caller that never reads
//! cannot stall the node.
//!
//! Limits of this slice: a peer that speaks both versions to us at once is answered on the
//! one it used last, so responses to requests it sent on the other version cannot be encoded
//! (1.0.0 ids do not translate) and fail as network errors; go-graphsync uses one version per
//! peer, so this does not happen with Go. Not offered: go-graphsync's request-processing
//! listeners, link budgets and node-prototype choosers from outgoing-request hooks, and
//! connection-manager protection of connections with transfers in progress.
//!
//! # Examples
//!
//! Registering hooks on a running node and removing one again:
//!
//! ```
//! use std::sync::Arc;
//!
//! use blockstore::InMemoryBlockstore;
//! use graphsync::network::{Behaviour, Config, Node};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let behaviour = Behaviour::new();
//! let store = Arc::new(InMemoryBlockstore::<64>::new());
//! let node = Node::spawn(&behaviour, store, Config::default())?;
//! // Validate every request, whatever its selector; go-graphsync's default validator would
//! // refuse an unlimited recursion.
//! let validate = node.register_incoming_request_hook(|_peer, _request, actions| {
//!     actions.validate();
//! });
//! let _log = node.register_completed_response_listener(|peer, request, status| {
//!     tracing::info!(%peer, %request, ?status, "response completed");
//! });
//! validate.unregister();
//! let stats = node.stats().await?;
//! assert_eq!(stats.incoming_requests.active, 0);
//! # Ok(())
//! # }
//! ```

mod behaviour;
mod driver;
mod heap;
mod hooks;
mod report_order;
mod store;
mod streams;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use blockstore::Blockstore;
use cid::Cid;
use ipld_selector::Selector;
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

pub use self::behaviour::{AcceptHandler, AcceptUpgrade, Behaviour};
use self::driver::{Command, Driver};
pub use self::heap::{REUSE_FREED_BUFFERS_UP_TO, reuse_freed_buffers};
use self::hooks::Registry;
pub use self::hooks::{
    HookHandle, IncomingBlock, IncomingBlockActions, IncomingRequestActions, IncomingResponse,
    IncomingResponseActions, NetworkFailure, OutgoingBlockActions, OutgoingRequest,
    OutgoingRequestActions, RequestUpdatedActions,
};
use self::store::Stores;
pub use self::store::{DynBlockstore, StoreNameError};
use crate::codec::frame::FrameConfig;
use crate::extension::Extensions;
use crate::message::{Request, RequestId, ResponseStatus};
use crate::protocol::{PROTOCOL_V1, PROTOCOL_V2};
use crate::requester::{self, Outcome};
use crate::responder::{self, BlockRecord, RequestDecision};

/// A Graphsync protocol version on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Version {
    /// `/ipfs/graphsync/2.0.0` (DAG-CBOR messages).
    V2,
    /// `/ipfs/graphsync/1.0.0` (protobuf messages; integer request ids mapped per peer).
    V1,
}

impl Version {
    /// The protocol id.
    pub fn protocol(self) -> StreamProtocol {
        match self {
            Version::V2 => PROTOCOL_V2,
            Version::V1 => PROTOCOL_V1,
        }
    }

    fn tag(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V1 => 1,
        }
    }

    fn from_tag(tag: u8) -> Option<Version> {
        match tag {
            2 => Some(Version::V2),
            1 => Some(Version::V1),
            _ => None,
        }
    }
}

/// Settings of a [`Node`]. Every bound has a documented default.
#[derive(Clone, Debug)]
pub struct Config {
    /// The responder core's settings. Default: [`responder::Config::default`]. Its
    /// [`responder::Hooks`] are all switched on: the driver answers them at once from the
    /// hooks registered on the node (none registered: the default answer).
    pub responder: responder::Config,
    /// The requester core's settings. Default: [`requester::Config::default`]. Its response
    /// and block hooks are switched on in the same way.
    pub requester: requester::Config,
    /// Frame limits for reading and writing. Default: 4 MiB messages.
    pub frame: FrameConfig,
    /// The protocol versions accepted, and tried in this order when opening a stream to a peer
    /// that has not spoken to us yet (a peer that opened a stream is answered on its version).
    /// Default: `[V2, V1]`, as go-graphsync v0.13.1. Empty means the default.
    pub protocols: Vec<Version>,
    /// Commands from [`Node`] handles waiting for the driver. Default: 64.
    pub command_capacity: usize,
    /// Inbound messages, from all streams, waiting for the driver. Default: 64.
    pub inbound_capacity: usize,
    /// Accepted inbound streams waiting for the driver to start their reader tasks (the
    /// connection handlers queue them without waiting on the driver). A stream arriving while
    /// this many wait is dropped, and its peer sees it reset. Default: 256. 0 means 1.
    pub accept_capacity: usize,
    /// Messages waiting in one peer's writer queue. Default: 128. The driver never waits on a
    /// full queue: further messages wait in the driver, in order, until the writer frees room,
    /// so a slow peer (or two nodes flooding each other) cannot stall the driver. How many
    /// wait is bounded by the responder's
    /// [`max_unsent_messages_per_peer`](responder::Config::max_unsent_messages_per_peer)
    /// (default 64) plus the requester's requests, cancels and updates.
    pub outbound_capacity: usize,
    /// Progress events buffered per request; when the caller does not read them, later ones
    /// are dropped (the outcome never is), so a caller that never reads cannot stall the node.
    /// Default: 1 024.
    pub event_capacity: usize,
    /// An outbound stream idle this long is closed and reopened on the next message.
    /// Default: 5 s (Go ≥ 0.17 resets streams idle for 10 s).
    pub outbound_idle: Duration,
    /// How long opening a stream to a peer may take (dialing included) before the message is
    /// given up as not sent. Default: 10 s.
    pub open_timeout: Duration,
    /// Blockstore calls (loads and puts) running at once in spawned tasks; more wait in the
    /// driver. A call whose future is ready at its first poll (an in-memory store) is
    /// answered at once without a task. Default: 32.
    pub max_store_tasks: usize,
    /// Store calls waiting for one of those task slots. At this many the driver stops taking
    /// inbound messages until some finish (the streams' flow control then slows the peers), so
    /// a store slower than the network bounds the memory of received blocks instead of
    /// queueing every one of them. Default: 64. 0 means 1.
    pub max_waiting_store_calls: usize,
    /// Backpressure per peer: once more than this many block bytes from one peer wait for
    /// this node (in messages read but not yet taken by the driver, and buffered ahead of the
    /// traversals of that peer's running requests), the node stops reading that peer's
    /// inbound streams until they fall to half of it; the streams' flow control then slows
    /// the peer, and a responder faster than this node's traversals (a slow store, a block
    /// hook waiting for each put) does not overflow [`requester::Config::max_buffered_bytes`],
    /// which stays as the last line of defence. Other peers are not held. Paused requests and
    /// requests whose traversal is complete are not counted (their buffers do not drain).
    /// Default `None`: [`DEFAULT_PAUSE_READING_ABOVE`] (4 MiB), or half of
    /// [`requester::Config::max_buffered_bytes`] when that is less.
    ///
    /// More buffering makes no pull faster (the traversal drains it no faster than it hashes
    /// and stores), it only holds more memory: with 16 MiB, a 1 GiB pull's requester peaked at
    /// 38–46 MiB; with 4 MiB, at 23–26 MiB, in the same time (`docs/benchmarks.md`).
    ///
    /// Metadata entries count too: each one weighs at least
    /// `max_buffered_bytes / max_buffered_items` bytes (512 with the defaults), so that with
    /// small blocks the reading pauses before [`requester::Config::max_buffered_items`]
    /// entries are buffered (at half of them with the defaults).
    pub pause_reading_above: Option<usize>,
    /// An incoming-request hook registered first when the node starts (the same as calling
    /// [`Node::register_incoming_request_hook`] right after [`Node::spawn`]). Default: `None`.
    pub request_hook: Option<RequestHook>,
}

/// The default [`Config::pause_reading_above`]: 4 MiB of one peer's block bytes.
pub const DEFAULT_PAUSE_READING_ABOVE: usize = 4 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            responder: responder::Config::default(),
            requester: requester::Config::default(),
            frame: FrameConfig::default(),
            protocols: vec![Version::V2, Version::V1],
            command_capacity: 64,
            inbound_capacity: 64,
            accept_capacity: 256,
            outbound_capacity: 128,
            event_capacity: 1024,
            outbound_idle: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
            max_store_tasks: 32,
            max_waiting_store_calls: 64,
            pause_reading_above: None,
            request_hook: None,
        }
    }
}

impl Config {
    /// This config speaking only `protocols` (in order of preference).
    pub fn with_protocols(self, protocols: Vec<Version>) -> Self {
        Config { protocols, ..self }
    }

    /// The bytes above which a peer's inbound streams are no longer read
    /// ([`Config::pause_reading_above`], or its default).
    fn read_pause_threshold(&self) -> usize {
        self.pause_reading_above
            .unwrap_or(DEFAULT_PAUSE_READING_ABOVE.min(self.requester.max_buffered_bytes / 2))
            .max(1)
    }

    /// The least weight of one metadata entry in the read gate's count (see
    /// [`Config::pause_reading_above`]).
    fn entry_weight(&self) -> usize {
        (self.requester.max_buffered_bytes / self.requester.max_buffered_items.max(1)).max(1)
    }

    /// This config with an incoming-request hook registered at start.
    pub fn with_request_hook(self, hook: RequestHook) -> Self {
        Config {
            request_hook: Some(hook),
            ..self
        }
    }
}

/// An incoming-request hook given in [`Config`]: called for every new request with the
/// requester, the request and whether go-graphsync's default validator validates it; its
/// [`RequestDecision`] is merged into the actions. Like every hook it runs in the driver and
/// MUST NOT block.
#[derive(Clone)]
pub struct RequestHook(Arc<ConfigHookFn>);

/// The function type behind a [`RequestHook`].
type ConfigHookFn = dyn Fn(&PeerId, &Request, bool) -> RequestDecision + Send + Sync;

impl RequestHook {
    /// Wraps a hook function.
    pub fn new(
        hook: impl Fn(&PeerId, &Request, bool) -> RequestDecision + Send + Sync + 'static,
    ) -> Self {
        RequestHook(Arc::new(hook))
    }
}

impl fmt::Debug for RequestHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestHook")
    }
}

/// What a running request reports before its outcome.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RequestEvent {
    /// A response entry arrived.
    ResponseReceived {
        /// Its status.
        status: ResponseStatus,
    },
    /// A block was verified (from the network or the local store).
    BlockReceived {
        /// The block.
        cid: Cid,
        /// Its size.
        size: u64,
        /// Bytes received over the network for it.
        wire_size: u64,
    },
    /// A link was found neither in responses nor locally.
    BlockMissing {
        /// The link.
        cid: Cid,
    },
    /// The request is paused (by [`Node::pause`] or an incoming-block hook).
    Paused,
    /// The last connection to the responder closed. The request stays alive (go-graphsync's
    /// requester has no timeout of its own); cancel it to end it.
    PeerDisconnected,
}

/// Counters of a node (go-graphsync's `Stats`), from [`Node::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// This node's requests: in progress (sent, running or paused) and waiting unsent.
    pub outgoing_requests: RequestStats,
    /// Requests this node serves: traversals running, and tracked but not running
    /// (validating, queued or paused).
    pub incoming_requests: RequestStats,
    /// Blocks whose bytes went out in messages reported written.
    pub blocks_sent: u64,
    /// Block bytes in messages reported written.
    pub bytes_sent: u64,
    /// Blocks verified from the network (not from the local store).
    pub blocks_received: u64,
    /// Block bytes received over the network and verified.
    pub bytes_received: u64,
    /// Messages written (responses and requests).
    pub messages_sent: u64,
    /// Messages received and decoded.
    pub messages_received: u64,
    /// Response messages that could not be written.
    pub messages_failed: u64,
    /// Block bytes the responder holds queued or in flight (its memory budget in use).
    pub responder_memory: u64,
    /// The most block bytes one outgoing request has held buffered ahead of its traversal
    /// (never more than [`requester::Config::max_buffered_bytes`]).
    pub peak_buffered_bytes: u64,
    /// Times the node stopped reading a peer's streams because too many of its bytes waited
    /// ([`Config::pause_reading_above`]).
    pub reading_pauses: u64,
}

/// Active and pending request counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// In progress.
    pub active: u64,
    /// Waiting.
    pub pending: u64,
}

/// Why a [`Node`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// Another node already accepts Graphsync streams on this behaviour.
    #[error("graphsync streams are already accepted on this behaviour")]
    AlreadyRegistered,
}

/// Why a [`Node`] command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The driver task has stopped.
    #[error("the graphsync driver has stopped")]
    Stopped,
    /// The requester refused the request.
    #[error("request refused")]
    Request {
        /// The cause.
        #[source]
        source: requester::RequestError,
    },
    /// An outgoing-request hook chose a store no one registered.
    #[error("no store named `{name}` is registered")]
    UnknownStore {
        /// The name.
        name: String,
    },
    /// The request could not be sent: no stream to the peer could be opened (dial failure,
    /// unsupported protocol, [`Config::open_timeout`]). The request ended.
    #[error("request {request:?} could not be sent to {peer}")]
    Unreachable {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: RequestId,
    },
    /// The requester refused the command.
    #[error("command refused for request {request:?}")]
    Command {
        /// The request.
        request: RequestId,
        /// The cause.
        #[source]
        source: Box<requester::CommandError>,
    },
    /// The responder refused the command.
    #[error("command refused for response {request:?} to {peer}")]
    Response {
        /// The requester.
        peer: PeerId,
        /// The request.
        request: RequestId,
        /// The cause.
        #[source]
        source: Box<responder::CommandError>,
    },
}

/// The handle of a running Graphsync driver task; clones share the task, which stops when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Node {
    commands: mpsc::Sender<Command>,
    hooks: Arc<Registry>,
    stores: Arc<Stores>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the driver task for the swarm that carries `behaviour`, serving from and storing
    /// into `store` (unless a hook chooses a named store).
    ///
    /// # Errors
    /// [`SpawnError::AlreadyRegistered`] when a node already runs on this behaviour.
    ///
    /// # Panics
    /// When called outside a tokio runtime (the driver and its stream tasks are spawned on it).
    pub fn spawn<B>(
        behaviour: &Behaviour,
        store: Arc<B>,
        config: Config,
    ) -> Result<Node, SpawnError>
    where
        B: Blockstore + 'static,
    {
        let mut config = config;
        if config.protocols.is_empty() {
            config.protocols = Config::default().protocols;
        }
        let mut seen = Vec::new();
        config.protocols.retain(|version| {
            let first = !seen.contains(version);
            seen.push(*version);
            first
        });
        let control = behaviour.inner.new_control();
        let incoming = behaviour
            .acceptor
            .register(config.protocols.clone(), config.accept_capacity)
            .ok_or(SpawnError::AlreadyRegistered)?;
        let (commands, command_rx) = mpsc::channel(config.command_capacity.max(1));
        let hooks = Arc::new(Registry::default());
        let stores = Arc::new(Stores::default());
        let node = Node {
            commands,
            hooks: hooks.clone(),
            stores: stores.clone(),
        };
        if let Some(RequestHook(hook)) = config.request_hook.clone() {
            // Kept for the node's lifetime: a hook from the config is never unregistered.
            let _handle = node.register_incoming_request_hook(move |peer, request, actions| {
                let decision = hook(peer, request, actions.default_validated());
                if decision.validated {
                    actions.validate();
                }
                if decision.pause {
                    actions.pause();
                }
                for (name, value) in decision.extensions {
                    actions.add_extension(name, value);
                }
                if let Some(budget) = decision.link_budget {
                    actions.set_link_budget(budget);
                }
                if decision.terminate {
                    actions.terminate("terminated by the config request hook");
                }
            });
        }
        let driver = Driver::new(
            config,
            store,
            control,
            hooks,
            stores,
            behaviour.disconnects.clone(),
        );
        tokio::spawn(driver.run(command_rx, incoming));
        Ok(node)
    }

    /// Asks `peer` for the DAG under `root` selected by `selector`, with `extensions`. The
    /// outgoing-request hooks run first.
    ///
    /// # Errors
    /// [`NodeError::Request`] when the requester refuses it, [`NodeError::UnknownStore`] when
    /// a hook chose an unregistered store, [`NodeError::Stopped`] when the driver has stopped.
    pub async fn request(
        &self,
        peer: PeerId,
        root: Cid,
        selector: Selector,
        extensions: Extensions,
    ) -> Result<RequestHandle, NodeError> {
        self.call(|reply| Command::Request {
            peer,
            root,
            selector: Box::new(selector),
            extensions,
            reply,
        })
        .await
    }

    /// Cancels a request of this node; its outcome becomes [`Outcome::Cancelled`]. No block of
    /// it is stored after this returns.
    ///
    /// # Errors
    /// [`NodeError::Command`] for a request the requester does not know,
    /// [`NodeError::Stopped`] when the driver has stopped.
    pub async fn cancel(&self, request: RequestId) -> Result<(), NodeError> {
        self.call(|reply| Command::Cancel { request, reply }).await
    }

    /// Pauses a request of this node after its current block (spec §9.2: a Cancel goes to the
    /// responder; [`RequestEvent::Paused`] reports when it took effect).
    ///
    /// # Errors
    /// [`NodeError::Command`] when the request is unknown, queued or already paused;
    /// [`NodeError::Stopped`].
    pub async fn pause(&self, request: RequestId) -> Result<(), NodeError> {
        self.call(|reply| Command::Pause { request, reply }).await
    }

    /// Resumes a paused request of this node, merging `extensions` into its stored ones; the
    /// request is sent again (same id, `do-not-send-first-blocks`) at the first block missing
    /// locally.
    ///
    /// # Errors
    /// [`NodeError::Command`] when the request is unknown or not paused; [`NodeError::Stopped`].
    pub async fn unpause(
        &self,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::Unpause {
            request,
            extensions,
            reply,
        })
        .await
    }

    /// Sends an Update request with `extensions` to the responder of a request of this node.
    ///
    /// # Errors
    /// [`NodeError::Command`] when the request is unknown, queued, paused or finished on the
    /// remote side; [`NodeError::Stopped`].
    pub async fn send_update(
        &self,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::Update {
            request,
            extensions,
            reply,
        })
        .await
    }

    /// Pauses a response this node serves to `peer`: noticed at its next block, which is still
    /// sent, with 15 after it.
    ///
    /// # Errors
    /// [`NodeError::Response`] when the response is unknown, already paused or still being
    /// validated; [`NodeError::Stopped`].
    pub async fn pause_response(&self, peer: PeerId, request: RequestId) -> Result<(), NodeError> {
        self.call(|reply| Command::PauseResponse {
            peer,
            request,
            reply,
        })
        .await
    }

    /// Resumes a paused response, first sending `extensions` (if any) as a 14 response.
    ///
    /// # Errors
    /// [`NodeError::Response`] when the response is unknown or not paused;
    /// [`NodeError::Stopped`].
    pub async fn unpause_response(
        &self,
        peer: PeerId,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::UnpauseResponse {
            peer,
            request,
            extensions,
            reply,
        })
        .await
    }

    /// Sends `extensions` to the requester of a response as a 14 response (go-graphsync's
    /// `SendUpdate` on the responder side).
    ///
    /// # Errors
    /// [`NodeError::Response`] when the response is unknown; [`NodeError::Stopped`].
    pub async fn send_response_update(
        &self,
        peer: PeerId,
        request: RequestId,
        extensions: Extensions,
    ) -> Result<(), NodeError> {
        self.call(|reply| Command::ResponseUpdate {
            peer,
            request,
            extensions,
            reply,
        })
        .await
    }

    /// Cancels a response this node serves: terminal 35 goes to the requester.
    ///
    /// # Errors
    /// [`NodeError::Response`] when the response is unknown; [`NodeError::Stopped`].
    pub async fn cancel_response(&self, peer: PeerId, request: RequestId) -> Result<(), NodeError> {
        self.call(|reply| Command::CancelResponse {
            peer,
            request,
            reply,
        })
        .await
    }

    /// The node's counters.
    ///
    /// # Errors
    /// [`NodeError::Stopped`].
    pub async fn stats(&self) -> Result<Stats, NodeError> {
        self.call(|reply| Command::Stats { reply }).await
    }

    /// Registers a block store under `name`, for hooks to choose (go-graphsync's
    /// `RegisterPersistenceOption`).
    ///
    /// # Errors
    /// [`StoreNameError::AlreadyRegistered`] when the name is taken.
    pub fn register_store(
        &self,
        name: impl Into<String>,
        store: Arc<dyn DynBlockstore>,
    ) -> Result<(), StoreNameError> {
        self.stores.register(name.into(), store)
    }

    /// Removes a named store; requests already using it keep it until they end.
    ///
    /// # Errors
    /// [`StoreNameError::Unknown`] when no store has that name.
    pub fn unregister_store(&self, name: &str) -> Result<(), StoreNameError> {
        self.stores.unregister(name)
    }

    /// Registers an incoming-request hook (responder side): called for every New request,
    /// after the hooks registered before it. It may validate, pause, terminate, add response
    /// extensions, choose a named store and set a link budget. It runs in the driver and MUST
    /// NOT block.
    pub fn register_incoming_request_hook(
        &self,
        hook: impl Fn(&PeerId, &Request, &mut IncomingRequestActions) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.incoming_request.add(Arc::new(hook))
    }

    /// Registers an outgoing-request hook (requester side): called before each request of this
    /// node is sent; it may choose a named store. It runs in the driver and MUST NOT block.
    pub fn register_outgoing_request_hook(
        &self,
        hook: impl Fn(&PeerId, &OutgoingRequest<'_>, &mut OutgoingRequestActions)
        + Send
        + Sync
        + 'static,
    ) -> HookHandle {
        self.hooks.outgoing_request.add(Arc::new(hook))
    }

    /// Registers an incoming-response hook (requester side): called for every response entry
    /// received for a request of this node; it may send extensions back (an Update) or
    /// terminate the request. It runs in the driver and MUST NOT block.
    pub fn register_incoming_response_hook(
        &self,
        hook: impl Fn(&PeerId, &IncomingResponse<'_>, &mut IncomingResponseActions)
        + Send
        + Sync
        + 'static,
    ) -> HookHandle {
        self.hooks.incoming_response.add(Arc::new(hook))
    }

    /// Registers an incoming-block hook (requester side): called after each verified load,
    /// remote or local, in traversal order; it may send extensions (an Update), pause or
    /// terminate. It runs in the driver and MUST NOT block.
    pub fn register_incoming_block_hook(
        &self,
        hook: impl Fn(&PeerId, &IncomingBlock<'_>, &mut IncomingBlockActions) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.incoming_block.add(Arc::new(hook))
    }

    /// Registers an outgoing-block hook (responder side): called after each load whose block
    /// was found (sent or withheld); it may add extensions to that block's message, pause or
    /// terminate. It runs in the driver and MUST NOT block.
    pub fn register_outgoing_block_hook(
        &self,
        hook: impl Fn(&PeerId, &Request, &BlockRecord, &mut OutgoingBlockActions)
        + Send
        + Sync
        + 'static,
    ) -> HookHandle {
        self.hooks.outgoing_block.add(Arc::new(hook))
    }

    /// Registers a request-updated hook (responder side): called for each Update received for
    /// a response (at once while it is paused, else at its next block) with the original
    /// request and the update's extensions; it may unpause, add extensions or terminate. It
    /// runs in the driver and MUST NOT block.
    pub fn register_request_updated_hook(
        &self,
        hook: impl Fn(&PeerId, &Request, &Extensions, &mut RequestUpdatedActions)
        + Send
        + Sync
        + 'static,
    ) -> HookHandle {
        self.hooks.request_updated.add(Arc::new(hook))
    }

    /// Registers a completed-response listener: called once the message holding a response's
    /// terminal status was written. It runs in the driver and MUST NOT block.
    pub fn register_completed_response_listener(
        &self,
        listener: impl Fn(&PeerId, RequestId, ResponseStatus) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.completed.add(Arc::new(listener))
    }

    /// Registers a requestor-cancelled listener: called when a requester cancelled a response
    /// of this node. It runs in the driver and MUST NOT block.
    pub fn register_requestor_cancelled_listener(
        &self,
        listener: impl Fn(&PeerId, RequestId) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.requestor_cancelled.add(Arc::new(listener))
    }

    /// Registers a block-sent listener: called for every load record of a response once the
    /// message holding it was written, in traversal order. It runs in the driver and MUST NOT
    /// block.
    pub fn register_block_sent_listener(
        &self,
        listener: impl Fn(&PeerId, RequestId, &BlockRecord) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.block_sent.add(Arc::new(listener))
    }

    /// Registers a network-error listener, for both directions: responses that could not be
    /// sent, responders lost by requests of this node, inbound streams that failed. It runs in
    /// the driver and MUST NOT block.
    pub fn register_network_error_listener(
        &self,
        listener: impl Fn(&PeerId, &NetworkFailure) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.network_error.add(Arc::new(listener))
    }

    /// Registers an incoming-request-queued listener: called when a New request arrives,
    /// before the incoming-request hooks. It runs in the driver and MUST NOT block.
    pub fn register_incoming_request_queued_listener(
        &self,
        listener: impl Fn(&PeerId, &Request) + Send + Sync + 'static,
    ) -> HookHandle {
        self.hooks.request_queued.add(Arc::new(listener))
    }

    /// Sends a command and waits for its answer.
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, NodeError>>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)?
    }
}

/// One running request: its id, a bounded receiver of progress and its final outcome.
#[derive(Debug)]
pub struct RequestHandle {
    id: RequestId,
    events: mpsc::Receiver<RequestEvent>,
    outcome: oneshot::Receiver<Result<Outcome, NodeError>>,
}

impl RequestHandle {
    /// The request id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next progress event; `None` once the request has ended and all were read.
    pub async fn next_event(&mut self) -> Option<RequestEvent> {
        self.events.recv().await
    }

    /// Waits for the outcome.
    ///
    /// # Errors
    /// [`NodeError::Unreachable`] when the request could not be sent, [`NodeError::Stopped`]
    /// when the driver stopped first.
    pub async fn outcome(self) -> Result<Outcome, NodeError> {
        self.outcome.await.map_err(|_| NodeError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_pauses_at_4_mib_by_default() {
        assert_eq!(Config::default().read_pause_threshold(), 4 * 1024 * 1024);
    }

    #[test]
    fn the_default_pause_stays_below_a_small_requester_buffer() {
        let mut config = Config::default();
        config.requester.max_buffered_bytes = 2 * 1024 * 1024;
        assert_eq!(config.read_pause_threshold(), 1024 * 1024);
    }

    #[test]
    fn a_configured_pause_is_taken_as_it_is() {
        let pausing_at = |bytes| Config {
            pause_reading_above: Some(bytes),
            ..Config::default()
        };
        assert_eq!(pausing_at(64 << 20).read_pause_threshold(), 64 << 20);
        assert_eq!(pausing_at(0).read_pause_threshold(), 1);
    }
}
