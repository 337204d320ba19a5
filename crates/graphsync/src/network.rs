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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use blockstore::Blockstore;
use bytes::Bytes;
use cid::Cid;
use futures::stream::FuturesUnordered;
use futures::{AsyncWriteExt, StreamExt};
use ipld_selector::Selector;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, Stream};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::codec::frame::FrameConfig;
use crate::extension::Extensions;
use crate::message::{Message, Request, RequestId, ResponseStatus};
use crate::protocol::{MessageReader, PROTOCOL_V2, ProtocolError, write_message};
use crate::requester::{self, Outcome, Requester};
use crate::responder::{self, MessageId, RequestDecision, Responder};

/// The swarm's Graphsync behaviour: a stream-control behaviour (libp2p-stream) through which a
/// [`Node`] opens and accepts Graphsync streams. It emits no events and does no stream I/O.
pub struct Behaviour {
    inner: libp2p_stream::Behaviour,
    disconnects: Arc<Disconnects>,
}

impl Behaviour {
    /// A behaviour with no node attached yet.
    pub fn new() -> Self {
        Behaviour {
            inner: libp2p_stream::Behaviour::new(),
            disconnects: Arc::new(Disconnects::default()),
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::new()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = <libp2p_stream::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = ();

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id,
            remaining_established: 0,
            ..
        }) = event
        {
            self.disconnects.push(peer_id);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<(), THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// Peers whose last connection closed, waiting for the driver. A set: it holds each peer at
/// most once, so it is bounded by the number of peers.
#[derive(Default)]
struct Disconnects {
    peers: Mutex<HashSet<PeerId>>,
    notify: Notify,
}

impl Disconnects {
    fn push(&self, peer: PeerId) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer);
        self.notify.notify_one();
    }

    fn take(&self) -> HashSet<PeerId> {
        std::mem::take(&mut *self.peers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

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

/// A command from a [`Node`] handle.
enum Command {
    Request {
        peer: PeerId,
        root: Cid,
        selector: Box<Selector>,
        extensions: Extensions,
        reply: oneshot::Sender<Result<RequestHandle, NodeError>>,
    },
    Cancel {
        request: RequestId,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
}

/// A message for a peer's writer, with the responder's report slot if it is a response.
struct Outbound {
    message: Message,
    report: Option<oneshot::Sender<bool>>,
}

/// Where a request's progress and outcome go.
struct Subscriber {
    events: mpsc::Sender<RequestEvent>,
    outcome: oneshot::Sender<Outcome>,
}

/// A response message's send result: the peer, its id and whether it was written.
type SendReport = Pin<Box<dyn Future<Output = (PeerId, MessageId, bool)> + Send>>;

/// The driver task's state.
struct Driver<B> {
    config: Config,
    store: Arc<B>,
    control: libp2p_stream::Control,
    responder: Responder<PeerId>,
    requester: Requester<PeerId>,
    writers: HashMap<PeerId, mpsc::Sender<Outbound>>,
    sends: FuturesUnordered<SendReport>,
    subscribers: HashMap<RequestId, Subscriber>,
    inbound_tx: mpsc::Sender<(PeerId, Message)>,
    disconnects: Arc<Disconnects>,
}

impl<B: Blockstore + 'static> Driver<B> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<(PeerId, Message)>,
        mut incoming: libp2p_stream::IncomingStreams,
    ) {
        loop {
            self.drain().await;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                Some((peer, message)) = inbound.recv() => {
                    self.responder.handle_message(peer, message.clone());
                    self.requester.handle_message(peer, message);
                }
                Some((peer, stream)) = incoming.next() => {
                    tokio::spawn(read_stream(
                        peer,
                        stream,
                        self.inbound_tx.clone(),
                        self.config.frame,
                    ));
                }
                () = self.disconnects.notify.notified() => {
                    for peer in self.disconnects.take() {
                        self.writers.remove(&peer);
                        self.responder.handle_peer_disconnected(&peer);
                        self.requester.handle_peer_disconnected(&peer);
                    }
                }
                Some((peer, id, written)) = self.sends.next(), if !self.sends.is_empty() => {
                    let result = if written {
                        self.responder.handle_sent(&peer, id)
                    } else {
                        self.responder.handle_send_failed(&peer, id)
                    };
                    if let Err(error) = result {
                        tracing::debug!(%peer, ?id, %error, "stale send report");
                    }
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                root,
                selector,
                extensions,
                reply,
            } => {
                let result = self
                    .requester
                    .request(peer, root, &selector, extensions)
                    .map_err(|source| NodeError::Request { source })
                    .map(|id| {
                        let (events_tx, events) = mpsc::channel(self.config.event_capacity.max(1));
                        let (outcome_tx, outcome) = oneshot::channel();
                        self.subscribers.insert(
                            id,
                            Subscriber {
                                events: events_tx,
                                outcome: outcome_tx,
                            },
                        );
                        RequestHandle {
                            id,
                            events,
                            outcome,
                        }
                    });
                // A caller that stopped waiting still has its request run to the end.
                let _ = reply.send(result);
            }
            Command::Cancel { request, reply } => {
                let result = self
                    .requester
                    .cancel(request)
                    .map_err(|source| NodeError::Command { request, source });
                let _ = reply.send(result);
            }
        }
    }

    /// Drains both cores until neither has anything left, answering what they ask.
    async fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.responder.poll_event() {
                progressed = true;
                self.responder_event(event).await;
            }
            while let Some(transmit) = self.responder.poll_transmit() {
                progressed = true;
                self.send(transmit.peer, transmit.message, Some(transmit.id))
                    .await;
            }
            while let Some(event) = self.requester.poll_event() {
                progressed = true;
                self.requester_event(event).await;
            }
            while let Some((peer, message)) = self.requester.poll_transmit() {
                progressed = true;
                self.send(peer, message, None).await;
            }
            if !progressed {
                return;
            }
        }
    }

    async fn responder_event(&mut self, event: responder::Event<PeerId>) {
        match event {
            responder::Event::LoadBlock { peer, request, cid } => {
                let data = load(self.store.as_ref(), &cid).await;
                if let Err(error) = self.responder.provide_block(&peer, request, cid, data) {
                    tracing::debug!(%peer, ?request, %error, "block load no longer wanted");
                }
            }
            responder::Event::RequestReceived {
                peer,
                request,
                default_validated,
            } => {
                let decision = match &self.config.request_hook {
                    Some(hook) => (hook.0)(&peer, &request, default_validated),
                    None if default_validated => RequestDecision::validate(),
                    None => RequestDecision::reject(),
                };
                if let Err(error) = self
                    .responder
                    .handle_request_decision(&peer, request.id, decision)
                {
                    tracing::debug!(%peer, request = ?request.id, %error, "stale request decision");
                }
            }
            other => tracing::trace!(event = ?other, "responder event"),
        }
    }

    async fn requester_event(&mut self, event: requester::Event<PeerId>) {
        match event {
            requester::Event::LoadBlock { request, cid } => {
                let data = load(self.store.as_ref(), &cid).await;
                if let Err(error) = self.requester.provide_block(request, cid, data) {
                    tracing::debug!(?request, %error, "local block refused");
                }
            }
            requester::Event::StoreBlock { request, cid, data } => {
                if let Err(error) = self.store.put_keyed(&cid, &data).await {
                    tracing::warn!(?request, %cid, %error, "storing a verified block failed");
                }
            }
            requester::Event::ResponseReceived {
                request, status, ..
            } => self.notify(request, RequestEvent::ResponseReceived { status }),
            requester::Event::BlockReceived {
                request,
                cid,
                size,
                wire_size,
                ..
            } => self.notify(
                request,
                RequestEvent::BlockReceived {
                    cid,
                    size,
                    wire_size,
                },
            ),
            requester::Event::BlockMissing { request, cid, .. } => {
                self.notify(request, RequestEvent::BlockMissing { cid });
            }
            requester::Event::NetworkError { request, .. } => {
                self.notify(request, RequestEvent::PeerDisconnected);
            }
            requester::Event::Completed { request, outcome } => {
                if let Some(subscriber) = self.subscribers.remove(&request) {
                    // A caller that dropped its handle no longer wants the outcome.
                    let _ = subscriber.outcome.send(outcome);
                }
            }
            other => tracing::trace!(event = ?other, "requester event"),
        }
    }

    fn notify(&mut self, request: RequestId, event: RequestEvent) {
        if let Some(subscriber) = self.subscribers.get(&request)
            && subscriber.events.try_send(event).is_err()
        {
            tracing::trace!(?request, "progress event dropped: receiver full or gone");
        }
    }

    /// Queues `message` on `peer`'s writer, starting the writer if needed.
    async fn send(&mut self, peer: PeerId, message: Message, id: Option<MessageId>) {
        let writer = self
            .writers
            .entry(peer)
            .or_insert_with(|| spawn_writer(peer, self.control.clone(), &self.config));
        let report = id.map(|id| {
            let (report, written) = oneshot::channel();
            self.sends.push(Box::pin(async move {
                (peer, id, written.await.unwrap_or(false))
            }));
            report
        });
        if writer.send(Outbound { message, report }).await.is_err() {
            // The writer is gone: its report slot was dropped, which reads as a failed send.
            self.writers.remove(&peer);
            tracing::debug!(%peer, "outbound writer stopped");
        }
    }
}

/// Reads a block from the store; a store error counts as a missing block.
async fn load<B: Blockstore>(store: &B, cid: &Cid) -> Option<Bytes> {
    match store.get(cid).await {
        Ok(data) => data.map(Bytes::from),
        Err(error) => {
            tracing::warn!(%cid, %error, "blockstore read failed");
            None
        }
    }
}

/// Starts the writer task of `peer`.
fn spawn_writer(
    peer: PeerId,
    control: libp2p_stream::Control,
    config: &Config,
) -> mpsc::Sender<Outbound> {
    let (tx, rx) = mpsc::channel(config.outbound_capacity.max(1));
    tokio::spawn(write_stream(
        peer,
        control,
        rx,
        config.frame,
        config.outbound_idle,
    ));
    tx
}

/// The writer task of one peer: keeps one outbound stream, opened lazily, closed when idle.
async fn write_stream(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut queue: mpsc::Receiver<Outbound>,
    frame: FrameConfig,
    idle: Duration,
) {
    let mut stream: Option<Stream> = None;
    loop {
        let next = match stream.as_mut() {
            Some(open) => match tokio::time::timeout(idle, queue.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    if let Err(error) = open.close().await {
                        tracing::debug!(%peer, %error, "closing an idle stream failed");
                    }
                    stream = None;
                    continue;
                }
            },
            None => queue.recv().await,
        };
        let Some(outbound) = next else {
            if let Some(mut open) = stream.take() {
                let _ = open.close().await;
            }
            return;
        };
        let written = write_once_or_twice(peer, &mut control, &mut stream, &outbound, &frame).await;
        if let Some(report) = outbound.report {
            let _ = report.send(written);
        }
    }
}

/// Writes one message, opening the stream if needed; an I/O failure reopens the stream and
/// writes once more.
async fn write_once_or_twice(
    peer: PeerId,
    control: &mut libp2p_stream::Control,
    stream: &mut Option<Stream>,
    outbound: &Outbound,
    frame: &FrameConfig,
) -> bool {
    for attempt in 0..2 {
        let open = match stream {
            Some(open) => open,
            None => match control.open_stream(peer, PROTOCOL_V2).await {
                Ok(opened) => stream.insert(opened),
                Err(error) => {
                    tracing::debug!(%peer, attempt, %error, "opening a graphsync stream failed");
                    continue;
                }
            },
        };
        match write_message(open, &outbound.message, frame).await {
            Ok(()) => return true,
            Err(error @ ProtocolError::Io { .. }) => {
                tracing::debug!(%peer, attempt, %error, "write failed; reopening the stream");
                *stream = None;
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "message not sendable");
                return false;
            }
        }
    }
    false
}

/// The reader task of one inbound stream: hands each message to the driver until EOF.
async fn read_stream(
    peer: PeerId,
    mut stream: Stream,
    driver: mpsc::Sender<(PeerId, Message)>,
    frame: FrameConfig,
) {
    let mut reader = MessageReader::new(frame);
    loop {
        match reader.read(&mut stream).await {
            Ok(Some(message)) => {
                if driver.send((peer, message)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%peer, %error, "dropping an invalid inbound stream");
                return;
            }
        }
    }
}
