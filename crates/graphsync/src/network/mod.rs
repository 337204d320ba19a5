//! The libp2p side of Graphsync 2.0.0: [`Behaviour`], the stream-control behaviour a swarm
//! carries, and [`Node`], the handle of a tokio driver task that owns one [`Responder`] and one
//! [`Requester`] and moves their messages over libp2p streams (spec §1).
//!
//! # Streams
//!
//! - Inbound: every stream a peer opens for [`PROTOCOL_V2`] gets a reader task that reads
//!   length-prefixed messages until the peer closes it and hands each one to the driver. A
//!   stream whose framing or body is invalid is dropped; other streams and requests go on.
//! - Outbound: everything this node sends to a peer (requests, cancels and responses) goes on
//!   ONE stream per peer that this node opens, so responses travel on a stream the responder
//!   opened, as go-graphsync expects. A writer task per peer opens it on the first message,
//!   reopens it and writes the message once more when a write fails, and closes it after
//!   [`Config::outbound_idle`] without messages (Go ≥ 0.17 resets streams idle for 10 s).
//!
//! # Driver
//!
//! The driver follows the cores' driving contract: after each input it drains their events
//! and transmits until both are empty. Block loads of either core are answered from the
//! [`Blockstore`]; verified blocks the requester hands over are written into it. Requests from
//! callers arrive over a bounded command channel. The incoming-request hook is answered by
//! [`Config::request_hook`], or, without one, by the responder's default validator alone.
//!
//! When the last connection to a peer closes, the driver tells both cores (the requester
//! reports [`RequestEvent::PeerDisconnected`] and keeps the request, as go-graphsync does; the
//! responder drops that peer's responses) and forgets the peer's outbound stream.
//!
//! Limits of this slice: Graphsync 1.0.0 is not spoken; blockstore calls run inside the driver
//! task, one at a time.

mod behaviour;
mod driver;
mod streams;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use blockstore::Blockstore;
use cid::Cid;
use futures::stream::FuturesUnordered;
use ipld_selector::Selector;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

pub use self::behaviour::Behaviour;
use self::driver::{Command, Driver};
use crate::codec::frame::FrameConfig;
use crate::extension::Extensions;
use crate::message::{Request, RequestId, ResponseStatus};
use crate::protocol::PROTOCOL_V2;
use crate::requester::{self, Outcome, Requester};
use crate::responder::{self, RequestDecision, Responder};

/// Settings of a [`Node`]. Every bound has a documented default.
#[derive(Clone, Debug)]
pub struct Config {
    /// The responder core's settings. Default: [`responder::Config::default`]. Its
    /// [`responder::Hooks`] are replaced: the request hook is on exactly when
    /// [`Config::request_hook`] is set; the update and block hooks are off.
    pub responder: responder::Config,
    /// The requester core's settings. Default: [`requester::Config::default`]. Its response
    /// and block hooks are switched off (this driver has none).
    pub requester: requester::Config,
    /// Frame limits for reading and writing. Default: 4 MiB messages.
    pub frame: FrameConfig,
    /// Commands from [`Node`] handles waiting for the driver. Default: 64.
    pub command_capacity: usize,
    /// Inbound messages, from all streams, waiting for the driver. Default: 64.
    pub inbound_capacity: usize,
    /// Messages waiting for one peer's outbound stream. Default: 128. Keep it above
    /// [`responder::Config::max_unsent_messages_per_peer`] (default 64): the responder's own
    /// messages then always fit, and the driver waits on a full queue only when requests and
    /// cancels for that peer fill the difference.
    pub outbound_capacity: usize,
    /// Progress events buffered per request; when the caller does not read them, later ones
    /// are dropped (the outcome never is). Default: 1 024.
    pub event_capacity: usize,
    /// An outbound stream idle this long is closed and reopened on the next message.
    /// Default: 5 s (Go ≥ 0.17 resets streams idle for 10 s).
    pub outbound_idle: Duration,
    /// The incoming-request hook. Default: `None` (the default validator decides).
    pub request_hook: Option<RequestHook>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            responder: responder::Config::default(),
            requester: requester::Config::default(),
            frame: FrameConfig::default(),
            command_capacity: 64,
            inbound_capacity: 64,
            outbound_capacity: 128,
            event_capacity: 1024,
            outbound_idle: Duration::from_secs(5),
            request_hook: None,
        }
    }
}

impl Config {
    /// This config with an incoming-request hook.
    pub fn with_request_hook(self, hook: RequestHook) -> Self {
        Config {
            request_hook: Some(hook),
            ..self
        }
    }
}

/// The application's incoming-request hook: called in the driver for every new request, with
/// the requester and the request; `default_validated` tells whether go-graphsync's default
/// validator accepts it.
#[derive(Clone)]
pub struct RequestHook(Arc<HookFn>);

/// The function type behind a [`RequestHook`].
type HookFn = dyn Fn(&PeerId, &Request, bool) -> RequestDecision + Send + Sync;

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
    /// The last connection to the responder closed. The request stays alive (go-graphsync's
    /// requester has no timeout of its own); cancel it to end it.
    PeerDisconnected,
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
    /// The requester refused the command.
    #[error("command refused for request {request:?}")]
    Command {
        /// The request.
        request: RequestId,
        /// The cause.
        #[source]
        source: requester::CommandError,
    },
}

/// The handle of a running Graphsync driver task; clones share the task, which stops when the
/// last handle is dropped.
#[derive(Clone, Debug)]
pub struct Node {
    commands: mpsc::Sender<Command>,
}

impl Node {
    /// Starts the driver task for the swarm that carries `behaviour`, serving from and storing
    /// into `store`.
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
        let mut control = behaviour.inner.new_control();
        let incoming = control
            .accept(PROTOCOL_V2)
            .map_err(|_| SpawnError::AlreadyRegistered)?;
        let (commands, command_rx) = mpsc::channel(config.command_capacity.max(1));
        let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_capacity.max(1));
        let mut responder_config = config.responder.clone();
        responder_config.hooks = responder::Hooks {
            request: config.request_hook.is_some(),
            update: false,
            block: false,
        };
        let requester_config = config
            .requester
            .clone()
            .with_response_hooks(false)
            .with_block_hooks(false);
        let driver = Driver {
            responder: Responder::new(responder_config),
            requester: Requester::new(requester_config),
            config,
            store,
            control,
            writers: HashMap::new(),
            sends: FuturesUnordered::new(),
            subscribers: HashMap::new(),
            inbound_tx,
            disconnects: behaviour.disconnects.clone(),
        };
        tokio::spawn(driver.run(command_rx, inbound_rx, incoming));
        Ok(Node { commands })
    }

    /// Asks `peer` for the DAG under `root` selected by `selector`, with `extensions`.
    ///
    /// # Errors
    /// [`NodeError::Request`] when the requester refuses it, [`NodeError::Stopped`] when the
    /// driver has stopped.
    pub async fn request(
        &self,
        peer: PeerId,
        root: Cid,
        selector: Selector,
        extensions: Extensions,
    ) -> Result<RequestHandle, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request {
                peer,
                root,
                selector: Box::new(selector),
                extensions,
                reply,
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        answer.await.map_err(|_| NodeError::Stopped)?
    }

    /// Cancels a request of this node; its outcome becomes [`Outcome::Cancelled`].
    ///
    /// # Errors
    /// [`NodeError::Command`] for a request the requester does not know,
    /// [`NodeError::Stopped`] when the driver has stopped.
    pub async fn cancel(&self, request: RequestId) -> Result<(), NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Cancel { request, reply })
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
    outcome: oneshot::Receiver<Outcome>,
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
    /// [`NodeError::Stopped`] when the driver stopped first.
    pub async fn outcome(self) -> Result<Outcome, NodeError> {
        self.outcome.await.map_err(|_| NodeError::Stopped)
    }
}
