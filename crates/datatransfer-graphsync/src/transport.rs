//! [`GraphsyncTransport`]: the data-transfer [`Transport`] over a [`graphsync::Node`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use datatransfer_message::{ChannelId, Message, PeerId};
use datatransfer_transport::{
    BlockInfo, Capabilities, DataError, EventsHandler, Flow, OpenChannel, RequestAnswer, StoreName,
    Transport, TransportError,
};
use graphsync::network::{
    DynBlockstore, HookHandle, NetworkFailure, Node, NodeError, RequestEvent, RequestHandle,
};
use graphsync::requester::{CommandError as RequesterCommandError, Failure, Outcome};
use graphsync::responder::CommandError as ResponderCommandError;
use graphsync::{RequestId, ResponseStatus};
use ipld_selector::Selector;

use crate::extension::{self, INCOMING_REQUEST_NAMES, OUTGOING_BLOCK_NAMES, SUPPORTED};

/// The prefix of the graphsync store name a channel's store is registered under (Go:
/// `"data-transfer-" + chid.String()`).
pub const STORE_PREFIX: &str = "data-transfer-";

/// Settings of a [`GraphsyncTransport`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// How long reopening a channel waits for the cancel of its previous graphsync request
    /// (Go's `maxGSCancelWait`). Default: 1 s.
    pub cancel_wait: Duration,
    /// How many channels the transport tracks at once (both roles); an `open_channel` beyond
    /// it fails with [`TransportError::TooManyChannels`] and an incoming graphsync request for
    /// a new channel beyond it is terminated. Default: 4 096.
    pub max_channels: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cancel_wait: Duration::from_secs(1),
            max_channels: 4096,
        }
    }
}

impl Config {
    /// This config with another cancel wait.
    pub fn with_cancel_wait(mut self, cancel_wait: Duration) -> Self {
        self.cancel_wait = cancel_wait;
        self
    }

    /// This config with another channel limit.
    pub fn with_max_channels(mut self, max_channels: usize) -> Self {
        self.max_channels = max_channels;
        self
    }
}

/// Why a store could not be registered with a [`GraphsyncTransport`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A store is already registered under this name.
    #[error("a store named {name} is already registered")]
    AlreadyRegistered {
        /// The name.
        name: StoreName,
    },
    /// The graphsync node refused the channel's store.
    #[error("graphsync refused the store of channel {channel}")]
    Graphsync {
        /// The channel.
        channel: ChannelId,
        /// The cause.
        #[source]
        source: graphsync::network::StoreNameError,
    },
}

/// Which end of the graphsync exchange this node is for a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    /// The data receiver: the graphsync requester.
    Receiver,
    /// The data sender: the graphsync responder.
    Sender,
}

/// The channel's current graphsync request.
#[derive(Clone, Copy, Debug)]
struct Exchange {
    role: Role,
    peer: libp2p::PeerId,
    request: RequestId,
}

/// What the transport knows about one channel. Every field is bounded: at most one pending
/// message (Go keeps one per extension name, and all of ours share one name).
#[derive(Debug, Default)]
struct Channel {
    /// Bumped on every open; a request's watcher reports only for its own generation.
    generation: u64,
    exchange: Option<Exchange>,
    /// The exchange ended (completed, failed, rejected): resume and attach refuse.
    finished: bool,
    /// The local side is paused (a handler's pause or `pause_channel`).
    paused: bool,
    /// The sender holds the opening request (a handler's `Hold`), waiting for its answer.
    held: bool,
    /// The sender's graphsync requester cancelled (Go: `requesterCancelled`).
    requester_cancelled: bool,
    /// Data started flowing on the sender (Go: `xferStarted`).
    xfer_started: bool,
    /// A message for the next incoming request, queued while the requester had cancelled.
    pending: Option<Message>,
    /// A pausing handler of this channel is running.
    in_handler: bool,
    /// A resume that came while `in_handler`: it voids the pause the handler answers.
    resume_in_handler: Option<Message>,
    /// The receiver saw a response that does not accept.
    rejected: bool,
    /// The graphsync store name registered for this channel.
    store: Option<String>,
    /// The handler refused `on_channel_opened` for the request being opened.
    refused: bool,
    /// The sender's highest queued and sent indexes reported in this exchange. A requester
    /// that paused re-issues its request (graphsync's cancel-and-request-again), and the
    /// responder then sends again the blocks the requester dropped while pausing; they were
    /// reported already (Go's manager drops them by index, spec §5.6).
    queued_max: u64,
    sent_max: u64,
    /// The highest index reported sent in any exchange of this channel on this transport (a
    /// restart does not reset it). A block a restart withholds (the receiver holds it) is
    /// reported sent only above it: it crossed the wire in an earlier exchange, but its write
    /// was never confirmed (the connection went first), so it was never reported.
    delivered_max: u64,
}

impl Channel {
    /// Starts a handler call that may pause.
    fn enter(&mut self) {
        self.in_handler = true;
        self.resume_in_handler = None;
    }

    /// Ends it: the resume that came meanwhile, if any.
    fn leave(&mut self) -> Option<Message> {
        self.in_handler = false;
        self.resume_in_handler.take()
    }
}

#[derive(Default)]
struct State {
    channels: HashMap<ChannelId, Channel>,
    requests: HashMap<(Role, libp2p::PeerId, RequestId), ChannelId>,
    /// The open in progress (opens are serialised): its data sender and channel. Hooks of a
    /// request whose id is not mapped yet belong to it.
    opening: Option<(libp2p::PeerId, ChannelId)>,
    /// Stores registered with the transport, by name.
    stores: HashMap<StoreName, Arc<dyn DynBlockstore>>,
    shut_down: bool,
}

struct Inner {
    node: Node,
    local: libp2p::PeerId,
    config: Config,
    handler: OnceLock<Arc<dyn EventsHandler>>,
    state: Mutex<State>,
    /// Serialises `open_channel`, so that at most one request is between its outgoing hook
    /// and the moment its id is known.
    open_lock: tokio::sync::Mutex<()>,
    hooks: Mutex<Vec<HookHandle>>,
}

/// The data-transfer transport over a [`graphsync::Node`], wire compatible with
/// go-data-transfer v1.15.1's `transport/graphsync` (see the crate documentation for the
/// hook-by-hook mapping).
///
/// Cloning gives another handle to the same transport.
#[derive(Clone)]
pub struct GraphsyncTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphsyncTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphsyncTransport")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

/// The data-transfer peer id of a libp2p peer (the same multihash bytes).
pub fn dt_peer(peer: &libp2p::PeerId) -> PeerId {
    PeerId::from_bytes(peer.to_bytes())
}

/// The libp2p peer id of a data-transfer peer id, if its bytes are one.
pub fn libp2p_peer(peer: &PeerId) -> Option<libp2p::PeerId> {
    libp2p::PeerId::from_bytes(peer.as_bytes()).ok()
}

fn backend(
    channel: Option<ChannelId>,
    error: impl std::error::Error + Send + Sync + 'static,
) -> TransportError {
    TransportError::Backend {
        channel,
        source: Arc::new(error),
    }
}

fn data_backend(error: impl std::error::Error + Send + Sync + 'static) -> DataError {
    DataError::Backend {
        source: Arc::new(error),
    }
}

/// A response's graphsync completion other than success, as a data error.
#[derive(Debug, thiserror::Error)]
#[error("graphsync response ended with status {status:?}")]
struct StatusError {
    status: ResponseStatus,
}

/// A graphsync request that ended without an error nor a verdict.
#[derive(Debug, thiserror::Error)]
#[error("no terminal status from the data sender")]
struct NoTerminalStatus;

impl GraphsyncTransport {
    /// A transport on `node`, whose local peer is `local`, with its hooks registered on the
    /// node (they stay registered until [`Transport::shutdown`]).
    pub fn new(node: Node, local: libp2p::PeerId, config: Config) -> Self {
        let inner = Arc::new(Inner {
            node,
            local,
            config,
            handler: OnceLock::new(),
            state: Mutex::new(State::default()),
            open_lock: tokio::sync::Mutex::new(()),
            hooks: Mutex::new(Vec::new()),
        });
        register_hooks(&inner);
        GraphsyncTransport { inner }
    }

    /// The local peer.
    pub fn local_peer(&self) -> PeerId {
        dt_peer(&self.inner.local)
    }

    /// The graphsync node under the transport.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Registers a block store under `name`, for [`OpenChannel::store`] to choose.
    ///
    /// # Errors
    /// [`StoreError::AlreadyRegistered`] when the name is taken.
    pub fn register_store(
        &self,
        name: StoreName,
        store: Arc<dyn DynBlockstore>,
    ) -> Result<(), StoreError> {
        let mut state = self.inner.lock();
        if state.stores.contains_key(&name) {
            return Err(StoreError::AlreadyRegistered { name });
        }
        state.stores.insert(name, store);
        Ok(())
    }

    /// Uses `store` for this channel's graphsync requests and responses, on either side (Go:
    /// `UseStore`): it is registered with graphsync as `"data-transfer-" + channel`, replacing
    /// the channel's previous one, until [`Transport::cleanup_channel`].
    ///
    /// # Errors
    /// [`StoreError::Graphsync`] when graphsync refuses the name.
    pub fn use_store(
        &self,
        channel: &ChannelId,
        store: Arc<dyn DynBlockstore>,
    ) -> Result<(), StoreError> {
        let name = store_name(channel);
        let _ = self.inner.node.unregister_store(&name);
        self.inner
            .node
            .register_store(name.clone(), store)
            .map_err(|source| StoreError::Graphsync {
                channel: channel.clone(),
                source,
            })?;
        let mut state = self.inner.lock();
        state.channels.entry(channel.clone()).or_default().store = Some(name);
        Ok(())
    }

    fn ready(&self) -> Result<(), TransportError> {
        if self.inner.lock().shut_down {
            return Err(TransportError::ShutDown);
        }
        if self.inner.handler.get().is_none() {
            return Err(TransportError::HandlerNotSet);
        }
        Ok(())
    }

    fn exchange(&self, channel: &ChannelId) -> Result<Option<Exchange>, TransportError> {
        let state = self.inner.lock();
        if state.shut_down {
            return Err(TransportError::ShutDown);
        }
        match state.channels.get(channel) {
            None => Err(TransportError::UnknownChannel {
                channel: channel.clone(),
            }),
            Some(chan) => Ok(chan.exchange),
        }
    }
}

/// The graphsync store name of a channel's store.
pub fn store_name(channel: &ChannelId) -> String {
    format!("{STORE_PREFIX}{channel}")
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn handler(&self) -> Option<Arc<dyn EventsHandler>> {
        self.handler.get().cloned()
    }

    fn local_dt(&self) -> PeerId {
        dt_peer(&self.local)
    }

    /// The channel of a graphsync request, adopting the open in progress for an unmapped
    /// request of the receiver.
    fn channel_of(
        &self,
        role: Role,
        peer: &libp2p::PeerId,
        request: RequestId,
    ) -> Option<ChannelId> {
        let mut state = self.lock();
        if let Some(channel) = state.requests.get(&(role, *peer, request)) {
            return Some(channel.clone());
        }
        if role == Role::Receiver
            && let Some((to, channel)) = state.opening.clone()
            && to == *peer
            && !state
                .channels
                .get(&channel)
                .is_some_and(|chan| chan.refused)
        {
            state
                .requests
                .insert((Role::Receiver, *peer, request), channel.clone());
            let chan = state.channels.entry(channel.clone()).or_default();
            chan.exchange = Some(Exchange {
                role,
                peer: *peer,
                request,
            });
            return Some(channel);
        }
        None
    }

    /// Runs `f` on the channel's state, if the channel is known.
    fn with<T>(&self, channel: &ChannelId, f: impl FnOnce(&mut Channel) -> T) -> Option<T> {
        self.lock().channels.get_mut(channel).map(f)
    }

    /// Whether a request's watcher of `generation` may still report.
    fn current(&self, channel: &ChannelId, generation: u64) -> bool {
        let state = self.lock();
        !state.shut_down
            && state
                .channels
                .get(channel)
                .is_some_and(|chan| chan.generation == generation)
    }
}

impl Transport for GraphsyncTransport {
    fn set_events_handler(&self, handler: Arc<dyn EventsHandler>) -> Result<(), TransportError> {
        self.inner
            .handler
            .set(handler)
            .map_err(|_| TransportError::HandlerAlreadySet)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::none().with_pause(true)
    }

    async fn open_channel(&self, open: OpenChannel) -> Result<(), TransportError> {
        self.ready()?;
        let channel = open.channel.clone();
        if open.data_sender == self.local_peer() {
            return Err(TransportError::OpenToSelf { channel });
        }
        let Some(peer) = libp2p_peer(&open.data_sender) else {
            return Err(backend(
                Some(channel),
                InvalidPeer {
                    peer: open.data_sender,
                },
            ));
        };
        let selector =
            Selector::from_node(&open.selector).map_err(|e| backend(Some(channel.clone()), e))?;
        let mut extensions = extension::extensions(&open.message, SUPPORTED)
            .map_err(|e| backend(Some(channel.clone()), e))?;
        if let Some(skip) = open.skip_blocks {
            let skip = i64::try_from(skip).unwrap_or(i64::MAX);
            extensions.insert(
                graphsync::extension::DO_NOT_SEND_FIRST_BLOCKS,
                Some(graphsync::extension::encode_do_not_send_first_blocks(skip)),
            );
        }
        let store = match &open.store {
            None => None,
            Some(name) => {
                let found = self.inner.lock().stores.get(name).cloned();
                let Some(store) = found else {
                    return Err(TransportError::UnknownStore {
                        channel,
                        store: name.clone(),
                    });
                };
                Some(store)
            }
        };
        let _serial = self.inner.open_lock.lock().await;
        // Replace a previous request of the channel: cancel it without reports.
        let (previous, generation) = {
            let mut state = self.inner.lock();
            let known = state.channels.len();
            let limit = self.inner.config.max_channels;
            if !state.channels.contains_key(&channel) && known >= limit {
                return Err(TransportError::TooManyChannels { channel, limit });
            }
            let chan = state.channels.entry(channel.clone()).or_default();
            chan.generation += 1;
            let generation = chan.generation;
            let previous = chan.exchange.take();
            if let Some(old) = previous {
                state.requests.remove(&(old.role, old.peer, old.request));
            }
            (previous, generation)
        };
        if let Some(old) = previous {
            match old.role {
                Role::Receiver => {
                    let cancel = self.inner.node.cancel(old.request);
                    let _ = tokio::time::timeout(self.inner.config.cancel_wait, cancel).await;
                }
                Role::Sender => {
                    let cancel = self.inner.node.cancel_response(old.peer, old.request);
                    let _ = tokio::time::timeout(self.inner.config.cancel_wait, cancel).await;
                }
            }
        }
        if let Some(store) = store {
            self.use_store(&channel, store)
                .map_err(|e| backend(Some(channel.clone()), e))?;
        }
        {
            let mut state = self.inner.lock();
            state.opening = Some((peer, channel.clone()));
            if let Some(chan) = state.channels.get_mut(&channel) {
                chan.finished = false;
                chan.paused = false;
                chan.held = false;
                chan.rejected = false;
                chan.requester_cancelled = false;
                chan.refused = false;
            }
        }
        let result = self
            .inner
            .node
            .request(peer, open.root, selector, extensions)
            .await;
        let (handle, refused) = {
            let mut state = self.inner.lock();
            state.opening = None;
            let handle = match result {
                Ok(handle) => handle,
                Err(NodeError::UnknownStore { .. }) => {
                    let store = open
                        .store
                        .clone()
                        .unwrap_or_else(|| StoreName::new(store_name(&channel)));
                    return Err(TransportError::UnknownStore { channel, store });
                }
                Err(NodeError::Stopped) => return Err(TransportError::ShutDown),
                Err(error) => return Err(backend(Some(channel), error)),
            };
            let id = handle.id();
            let refused = state
                .channels
                .get(&channel)
                .is_some_and(|chan| chan.refused);
            if refused {
                // Nothing more is reported for this request.
                state.requests.remove(&(Role::Receiver, peer, id));
                if let Some(chan) = state.channels.get_mut(&channel) {
                    chan.exchange = None;
                    chan.finished = true;
                    chan.generation += 1;
                }
            } else {
                state
                    .requests
                    .insert((Role::Receiver, peer, id), channel.clone());
                if let Some(chan) = state.channels.get_mut(&channel) {
                    chan.exchange = Some(Exchange {
                        role: Role::Receiver,
                        peer,
                        request: id,
                    });
                }
            }
            (handle, refused)
        };
        if refused {
            // The handler refused the channel: Go cleans up and stops.
            let _ = self.inner.node.cancel(handle.id()).await;
            return Ok(());
        }
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(watch(inner, channel, generation, peer, handle));
        Ok(())
    }

    async fn attach(&self, channel: ChannelId, message: Message) -> Result<(), TransportError> {
        let Some(exchange) = self.exchange(&channel)? else {
            return Err(TransportError::Finished { channel });
        };
        let node = &self.inner.node;
        match exchange.role {
            Role::Receiver => {
                let ext = extension::extensions(&message, SUPPORTED)
                    .map_err(|e| backend(Some(channel.clone()), e))?;
                node.send_update(exchange.request, ext)
                    .await
                    .map_err(|e| backend(Some(channel), e))
            }
            Role::Sender => {
                enum Plan {
                    Queue,
                    Update,
                    Release,
                    KeepHeld,
                    Reject,
                }
                let plan = self
                    .inner
                    .with(&channel, |chan| {
                        if chan.requester_cancelled {
                            chan.pending = Some(message.clone());
                            return Plan::Queue;
                        }
                        if !chan.held {
                            return Plan::Update;
                        }
                        match message.as_response() {
                            Some(r) if !r.accepted() => {
                                chan.held = false;
                                chan.finished = true;
                                Plan::Reject
                            }
                            Some(r) if r.is_paused() => Plan::KeepHeld,
                            _ => {
                                chan.held = false;
                                chan.paused = false;
                                chan.xfer_started = true;
                                Plan::Release
                            }
                        }
                    })
                    .ok_or_else(|| TransportError::UnknownChannel {
                        channel: channel.clone(),
                    })?;
                let names = match plan {
                    Plan::Queue => return Ok(()),
                    Plan::Update => SUPPORTED,
                    _ => INCOMING_REQUEST_NAMES,
                };
                let ext = extension::extensions(&message, names)
                    .map_err(|e| backend(Some(channel.clone()), e))?;
                let (peer, id) = (exchange.peer, exchange.request);
                let result = match plan {
                    Plan::Release => node.unpause_response(peer, id, ext).await,
                    Plan::Reject => {
                        // Go terminates the response with status 32; the node has no
                        // terminate command, so the rejection goes out first and the
                        // response is cancelled (35) after it.
                        match node.send_response_update(peer, id, ext).await {
                            Ok(()) => node.cancel_response(peer, id).await,
                            Err(e) => Err(e),
                        }
                    }
                    _ => node.send_response_update(peer, id, ext).await,
                };
                result.map_err(|e| backend(Some(channel), e))
            }
        }
    }

    async fn close_channel(&self, channel: ChannelId) -> Result<(), TransportError> {
        let Some(exchange) = self.exchange(&channel)? else {
            return Ok(());
        };
        let node = &self.inner.node;
        match exchange.role {
            Role::Receiver => {
                // "Request not found" (it already ended) is ignored, as Go does.
                let _ = node.cancel(exchange.request).await;
            }
            Role::Sender => {
                let cancelled = self
                    .inner
                    .with(&channel, |chan| chan.requester_cancelled)
                    .unwrap_or(true);
                if !cancelled {
                    let _ = node.cancel_response(exchange.peer, exchange.request).await;
                }
                self.inner.with(&channel, |chan| chan.finished = true);
            }
        }
        Ok(())
    }

    async fn cleanup_channel(&self, channel: ChannelId) {
        let removed = {
            let mut state = self.inner.lock();
            let removed = state.channels.remove(&channel);
            state.requests.retain(|_, c| *c != channel);
            removed
        };
        let Some(chan) = removed else {
            return;
        };
        if let Some(name) = &chan.store {
            let _ = self.inner.node.unregister_store(name);
        }
        if chan.finished {
            return;
        }
        match chan.exchange {
            Some(Exchange {
                role: Role::Receiver,
                request,
                ..
            }) => {
                let _ = self.inner.node.cancel(request).await;
            }
            Some(Exchange {
                role: Role::Sender,
                peer,
                request,
            }) if !chan.requester_cancelled => {
                let _ = self.inner.node.cancel_response(peer, request).await;
            }
            _ => {}
        }
    }

    async fn shutdown(&self) -> Result<(), TransportError> {
        let channels = {
            let mut state = self.inner.lock();
            state.shut_down = true;
            state.requests.clear();
            std::mem::take(&mut state.channels)
        };
        let hooks = std::mem::take(
            &mut *self
                .inner
                .hooks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for hook in hooks {
            hook.unregister();
        }
        for chan in channels.into_values() {
            if let Some(name) = &chan.store {
                let _ = self.inner.node.unregister_store(name);
            }
            match chan.exchange {
                Some(e) if e.role == Role::Receiver && !chan.finished => {
                    let _ = self.inner.node.cancel(e.request).await;
                }
                Some(e) if !chan.finished && !chan.requester_cancelled => {
                    let _ = self.inner.node.cancel_response(e.peer, e.request).await;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn pause_channel(&self, channel: ChannelId) -> Result<(), TransportError> {
        let Some(exchange) = self.exchange(&channel)? else {
            return Err(TransportError::Finished { channel });
        };
        let skip = self
            .inner
            .with(&channel, |chan| {
                let skip = chan.paused
                    || chan.finished
                    || (exchange.role == Role::Sender && chan.requester_cancelled);
                chan.paused = true;
                skip
            })
            .unwrap_or(true);
        if skip {
            return Ok(());
        }
        let result = match exchange.role {
            Role::Receiver => self.inner.node.pause(exchange.request).await,
            Role::Sender => {
                self.inner
                    .node
                    .pause_response(exchange.peer, exchange.request)
                    .await
            }
        };
        match result {
            // The pause a handler is answering right now got there first.
            Err(NodeError::Command { source, .. })
                if matches!(*source, RequesterCommandError::AlreadyPaused { .. }) =>
            {
                Ok(())
            }
            Err(NodeError::Response { source, .. })
                if matches!(*source, ResponderCommandError::CannotPause { .. }) =>
            {
                Ok(())
            }
            other => other.map_err(|e| backend(Some(channel), e)),
        }
    }

    async fn resume_channel(
        &self,
        channel: ChannelId,
        message: Message,
    ) -> Result<(), TransportError> {
        let Some(exchange) = self.exchange(&channel)? else {
            return Err(TransportError::NotPaused { channel });
        };
        enum Plan {
            Done,
            NotPaused,
            Finished,
            Unpause,
        }
        let plan = self
            .inner
            .with(&channel, |chan| {
                if chan.in_handler {
                    chan.resume_in_handler = Some(message.clone());
                    return Plan::Done;
                }
                if chan.finished {
                    return Plan::Finished;
                }
                if exchange.role == Role::Sender && chan.requester_cancelled {
                    // Go: the message waits for the requester's next request.
                    chan.pending = Some(message.clone());
                    chan.paused = false;
                    chan.held = false;
                    chan.xfer_started = true;
                    return Plan::Done;
                }
                if !chan.paused && !chan.held {
                    return Plan::NotPaused;
                }
                chan.paused = false;
                chan.held = false;
                chan.xfer_started = true;
                Plan::Unpause
            })
            .unwrap_or(Plan::NotPaused);
        match plan {
            Plan::Done => return Ok(()),
            Plan::NotPaused => return Err(TransportError::NotPaused { channel }),
            Plan::Finished => return Err(TransportError::Finished { channel }),
            Plan::Unpause => {}
        }
        let ext = extension::extensions(&message, SUPPORTED)
            .map_err(|e| backend(Some(channel.clone()), e))?;
        let result = match exchange.role {
            Role::Receiver => self.inner.node.unpause(exchange.request, ext).await,
            Role::Sender => {
                self.inner
                    .node
                    .unpause_response(exchange.peer, exchange.request, ext)
                    .await
            }
        };
        result.map_err(|e| backend(Some(channel), e))
    }
}

/// A data-transfer peer id whose bytes are no libp2p peer id.
#[derive(Debug, thiserror::Error)]
#[error("peer id {peer} is not a libp2p peer id")]
struct InvalidPeer {
    peer: PeerId,
}

/// Follows one request of the data receiver to its end and reports it (Go's
/// `executeGsRequest`): success or failure as a completion, a local cancel as
/// `on_request_cancelled`, an unreachable sender as `on_request_disconnected`; a remote cancel
/// reports nothing, unless the sender had rejected the request.
async fn watch(
    inner: Weak<Inner>,
    channel: ChannelId,
    generation: u64,
    peer: libp2p::PeerId,
    mut handle: RequestHandle,
) {
    while let Some(event) = handle.next_event().await {
        if let RequestEvent::PeerDisconnected = event {
            tracing::debug!(%channel, "data sender disconnected");
        }
    }
    let outcome = handle.outcome().await;
    let Some(inner) = inner.upgrade() else {
        return;
    };
    if !inner.current(&channel, generation) {
        return;
    }
    let Some(handler) = inner.handler() else {
        return;
    };
    let rejected = inner
        .with(&channel, |chan| {
            chan.finished = true;
            chan.rejected
        })
        .unwrap_or(false);
    let sender = dt_peer(&peer);
    match outcome {
        Ok(Outcome::Completed(completion)) => {
            let result = match completion.missing.first() {
                None if rejected => Err(DataError::Rejected),
                None => Ok(()),
                Some((_, cid)) => Err(DataError::MissingBlock { cid: *cid }),
            };
            handler.on_channel_completed(&channel, result);
        }
        Ok(Outcome::NoTerminalStatus(_)) => {
            handler.on_channel_completed(&channel, Err(data_backend(NoTerminalStatus)));
        }
        Ok(Outcome::Cancelled) => {
            handler.on_request_cancelled(&channel, DataError::Cancelled);
        }
        Ok(Outcome::Failed(Failure::ResponderCancelled)) => {
            if rejected {
                handler.on_channel_completed(&channel, Err(DataError::Rejected));
            }
        }
        Ok(Outcome::Failed(failure)) => {
            let error = if rejected {
                DataError::Rejected
            } else {
                match failure {
                    Failure::Traversal { source } => DataError::Traversal {
                        reason: source.to_string(),
                    },
                    other => data_backend(other),
                }
            };
            handler.on_channel_completed(&channel, Err(error));
        }
        Ok(other) => {
            handler.on_channel_completed(
                &channel,
                Err(DataError::Traversal {
                    reason: format!("{other:?}"),
                }),
            );
        }
        Err(NodeError::Unreachable { .. }) => {
            handler.on_request_disconnected(&channel, DataError::Disconnected { peer: sender });
        }
        Err(NodeError::Stopped) => {
            handler.on_channel_completed(&channel, Err(DataError::ShutDown));
        }
        Err(error) => {
            handler.on_channel_completed(&channel, Err(data_backend(error)));
        }
    }
}

/// The channel a data-transfer message names, seen from `local` with `remote` as the other
/// peer: a request comes from the initiator, a response from the responder (Go's rule in every
/// hook).
fn channel_of_message(message: &Message, local: &PeerId, remote: &PeerId) -> ChannelId {
    let id = message.transfer_id();
    if message.is_request() {
        ChannelId::new(remote.clone(), local.clone(), id)
    } else {
        ChannelId::new(local.clone(), remote.clone(), id)
    }
}

fn push_hook(inner: &Arc<Inner>, handle: HookHandle) {
    inner
        .hooks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(handle);
}

/// Registers Go's hooks (spec §4.2) on the node; each holds the transport weakly.
fn register_hooks(inner: &Arc<Inner>) {
    let node = &inner.node;
    let weak = Arc::downgrade(inner);

    // 1. Outgoing request (receiver): Opened, and the channel's store.
    let w = weak.clone();
    push_hook(
        inner,
        node.register_outgoing_request_hook(move |peer, request, actions| {
            let Some(inner) = w.upgrade() else { return };
            match extension::read(request.extensions, SUPPORTED) {
                Ok(Some(_)) => {}
                _ => return,
            }
            let (channel, store) = {
                let state = inner.lock();
                let Some((to, channel)) = state.opening.clone() else {
                    return;
                };
                if to != *peer {
                    return;
                }
                let store = state.channels.get(&channel).and_then(|c| c.store.clone());
                (channel, store)
            };
            if let Some(store) = store {
                actions.use_store(store);
            }
            if let Some(handler) = inner.handler()
                && let Err(error) = handler.on_channel_opened(&channel)
            {
                // Go cleans up and stops: `open_channel` cancels the request once its id
                // is known (this hook cannot).
                tracing::debug!(%channel, %error, "handler refused the opened channel");
                inner.with(&channel, |chan| chan.refused = true);
            }
        }),
    );

    // 2. Incoming request queued (sender): TransferQueued for New messages only.
    let w = weak.clone();
    push_hook(
        inner,
        node.register_incoming_request_queued_listener(move |peer, request| {
            let Some(inner) = w.upgrade() else { return };
            let Ok(Some(message)) = extension::read(&request.extensions, SUPPORTED) else {
                return;
            };
            if !message.is_new() {
                return;
            }
            let channel = channel_of_message(&message, &inner.local_dt(), &dt_peer(peer));
            if let Some(handler) = inner.handler() {
                handler.on_transfer_queued(&channel);
            }
        }),
    );

    // 3. Incoming request (sender).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_incoming_request_hook(move |peer, request, actions| {
            let Some(inner) = w.upgrade() else { return };
            incoming_request(&inner, peer, request, actions);
        }),
    );

    // 4. Completed response (sender).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_completed_response_listener(move |peer, request, status| {
            let Some(inner) = w.upgrade() else { return };
            if status == ResponseStatus::RequestCancelled {
                return;
            }
            let Some(channel) = inner.channel_of(Role::Sender, peer, request) else {
                return;
            };
            let report = inner
                .with(&channel, |chan| {
                    let current = chan
                        .exchange
                        .is_some_and(|e| e.role == Role::Sender && e.request == request);
                    if current {
                        chan.finished = true;
                    }
                    current
                })
                .unwrap_or(false);
            if !report {
                return;
            }
            let result = if status == ResponseStatus::RequestCompletedFull {
                Ok(())
            } else {
                Err(data_backend(StatusError { status }))
            };
            if let Some(handler) = inner.handler() {
                handler.on_channel_completed(&channel, result);
            }
        }),
    );

    // 5. Incoming block (receiver).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_incoming_block_hook(move |peer, block, actions| {
            let Some(inner) = w.upgrade() else { return };
            let Some(channel) = inner.channel_of(Role::Receiver, peer, block.request) else {
                return;
            };
            let Some(handler) = inner.handler() else {
                return;
            };
            let info = BlockInfo::new(block.cid, block.size, block.index + 1, block.wire_size != 0);
            inner.with(&channel, Channel::enter);
            let answer = handler.on_data_received(&channel, info);
            let resumed = inner.with(&channel, Channel::leave).flatten();
            match answer {
                Ok(Flow::Continue) => send_resume(&mut |n, v| actions.add_extension(n, v), resumed),
                Ok(Flow::Pause) => match resumed {
                    Some(message) => {
                        send_resume(&mut |n, v| actions.add_extension(n, v), Some(message))
                    }
                    None => {
                        inner.with(&channel, |chan| chan.paused = true);
                        actions.pause();
                    }
                },
                Err(error) => actions.terminate(error.to_string()),
            }
        }),
    );

    // 6. Outgoing block (sender).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_outgoing_block_hook(move |peer, request, record, actions| {
            let Some(inner) = w.upgrade() else { return };
            if record.sent == 0 {
                return;
            }
            let Some(channel) = inner.channel_of(Role::Sender, peer, request.id) else {
                return;
            };
            let Some(handler) = inner.handler() else {
                return;
            };
            let info = BlockInfo::new(record.cid, record.size, record.index, true);
            let fresh = inner
                .with(&channel, |chan| {
                    let fresh = record.index > chan.queued_max;
                    if fresh {
                        chan.queued_max = record.index;
                        chan.enter();
                    }
                    fresh
                })
                .unwrap_or(false);
            if !fresh {
                return;
            }
            let answer = handler.on_data_queued(&channel, info);
            let resumed = inner.with(&channel, Channel::leave).flatten();
            match answer {
                Ok(answer) => {
                    if let Some(message) = &answer.message {
                        add(
                            &mut |n, v| actions.add_extension(n, v),
                            message,
                            OUTGOING_BLOCK_NAMES,
                        );
                    }
                    match (answer.flow, resumed) {
                        (Flow::Pause, None) => {
                            inner.with(&channel, |chan| chan.paused = true);
                            actions.pause();
                        }
                        (_, resumed) => {
                            send_resume(&mut |n, v| actions.add_extension(n, v), resumed)
                        }
                    }
                }
                Err(error) => actions.terminate(error.to_string()),
            }
        }),
    );

    // 7. Block sent (sender); the rule is the crate docs' "Sent totals". A block is reported
    // when the message holding its bytes is confirmed written and its index passes the
    // highest one reported in this exchange, or, when a restart withholds it because the
    // receiver's `do-not-send-first-blocks` says it already holds it, when the restarted
    // response passes it and no exchange of the channel reported its index yet (its write
    // was not confirmed before the connection went). The manager counts an index once, when
    // it exceeds the channel's SentBlocksTotal, so a block reported twice (sent again after
    // a restart, or withheld after a process restart) is not counted twice.
    let w = weak.clone();
    push_hook(
        inner,
        node.register_block_sent_listener(move |peer, request, record| {
            let Some(inner) = w.upgrade() else { return };
            if record.sent == 0 && !record.withheld {
                return;
            }
            let Some(channel) = inner.channel_of(Role::Sender, peer, request) else {
                return;
            };
            let fresh = inner
                .with(&channel, |chan| {
                    let fresh = record.index > chan.sent_max
                        && (record.sent > 0 || record.index > chan.delivered_max);
                    if fresh {
                        chan.sent_max = record.index;
                        chan.delivered_max = chan.delivered_max.max(record.index);
                    }
                    fresh
                })
                .unwrap_or(false);
            if fresh && let Some(handler) = inner.handler() {
                let mut info = BlockInfo::new(record.cid, record.size, record.index, true);
                if record.sent == 0 {
                    info = info.withheld();
                }
                handler.on_data_sent(&channel, info);
            }
        }),
    );

    // 8. Incoming response (receiver).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_incoming_response_hook(move |peer, response, actions| {
            let Some(inner) = w.upgrade() else { return };
            let Some(channel) = inner.channel_of(Role::Receiver, peer, response.request) else {
                return;
            };
            for names in [INCOMING_REQUEST_NAMES, &[extension::OUTGOING_BLOCK][..]] {
                let message = match extension::read(response.extensions, names) {
                    Ok(Some(message)) => message,
                    Ok(None) => continue,
                    Err(error) => {
                        actions.terminate(error.to_string());
                        return;
                    }
                };
                let rejecting = message
                    .as_response()
                    .is_some_and(|r| (r.is_new() || r.is_restart()) && !r.accepted());
                let verdict = in_exchange(&inner, peer, &channel, Role::Receiver, message);
                if rejecting {
                    // The data sender refused: no data follows, whatever status closes its
                    // response (32 from a hook, 35 after a rejecting `attach`).
                    actions.terminate("request rejected by the data sender");
                    return;
                }
                match verdict {
                    Verdict::Reply(reply) => {
                        add(&mut |n, v| actions.add_extension(n, v), &reply, SUPPORTED);
                    }
                    Verdict::Continue => {}
                    Verdict::Pause => {
                        spawn_pause(&inner, Role::Receiver, *peer, response.request, &channel)
                    }
                    Verdict::Terminate(reason) => {
                        actions.terminate(reason);
                        return;
                    }
                }
            }
        }),
    );

    // 9. Request updated (sender).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_request_updated_hook(move |peer, request, update, actions| {
            let Some(inner) = w.upgrade() else { return };
            let Some(channel) = inner.channel_of(Role::Sender, peer, request.id) else {
                return;
            };
            let message = match extension::read(update, SUPPORTED) {
                Ok(Some(message)) => message,
                Ok(None) => return,
                Err(error) => {
                    actions.terminate(error.to_string());
                    return;
                }
            };
            match in_exchange(&inner, peer, &channel, Role::Sender, message) {
                Verdict::Reply(reply) => {
                    add(&mut |n, v| actions.add_extension(n, v), &reply, SUPPORTED);
                }
                // Go ignores ErrPause here.
                Verdict::Continue | Verdict::Pause => {}
                Verdict::Terminate(reason) => actions.terminate(reason),
            }
        }),
    );

    // 10. Requestor cancelled (sender).
    let w = weak.clone();
    push_hook(
        inner,
        node.register_requestor_cancelled_listener(move |peer, request| {
            let Some(inner) = w.upgrade() else { return };
            let Some(channel) = inner.channel_of(Role::Sender, peer, request) else {
                return;
            };
            inner.with(&channel, |chan| {
                if chan.exchange.is_some_and(|e| e.request == request) {
                    chan.requester_cancelled = true;
                }
            });
        }),
    );

    // 11, 12. Network errors (both sides).
    let w = weak;
    push_hook(
        inner,
        node.register_network_error_listener(move |peer, failure| {
            let Some(inner) = w.upgrade() else { return };
            let Some(handler) = inner.handler() else {
                return;
            };
            let remote = dt_peer(peer);
            match failure {
                NetworkFailure::ResponseNotSent { request } => {
                    if let Some(channel) = inner.channel_of(Role::Sender, peer, *request) {
                        handler.on_send_data_error(
                            &channel,
                            DataError::Disconnected {
                                peer: remote.clone(),
                            },
                        );
                    }
                }
                NetworkFailure::ResponderDisconnected { request } => {
                    if let Some(channel) = inner.channel_of(Role::Receiver, peer, *request) {
                        handler.on_receive_data_error(
                            &channel,
                            DataError::Disconnected {
                                peer: remote.clone(),
                            },
                        );
                    }
                }
                NetworkFailure::Receive { error } => {
                    let channels: Vec<ChannelId> = {
                        let state = inner.lock();
                        state
                            .requests
                            .iter()
                            .filter(|((_, p, _), _)| p == peer)
                            .map(|(_, c)| c.clone())
                            .collect()
                    };
                    for channel in channels {
                        handler.on_receive_data_error(
                            &channel,
                            DataError::Backend {
                                source: error.clone(),
                            },
                        );
                    }
                }
                // The request's outcome reports it (on_request_disconnected).
                _ => {}
            }
        }),
    );
}

type AddExtension<'a> = dyn FnMut(&str, Option<ipld_dagcbor::Node>) + 'a;

/// Adds `message` under `names` through a hook's `add_extension`.
fn add(add: &mut AddExtension<'_>, message: &Message, names: &[&str]) {
    match message.to_node() {
        Ok(node) => {
            for name in names {
                add(name, Some(node.clone()));
            }
        }
        Err(error) => tracing::warn!(%error, "cannot encode a data-transfer message"),
    }
}

/// Sends the message of a resume that came during a handler.
fn send_resume(add_ext: &mut AddExtension<'_>, resumed: Option<Message>) {
    if let Some(message) = resumed {
        add(add_ext, &message, SUPPORTED);
    }
}

/// What a hook does after a message that arrived inside a running exchange.
enum Verdict {
    Continue,
    Reply(Box<Message>),
    Pause,
    Terminate(String),
}

/// Routes a message that arrived inside a running exchange (hooks 8 and 9): a request must
/// come from the channel's initiator, a response from its responder.
fn in_exchange(
    inner: &Inner,
    peer: &libp2p::PeerId,
    channel: &ChannelId,
    role: Role,
    message: Message,
) -> Verdict {
    let Some(handler) = inner.handler() else {
        return Verdict::Continue;
    };
    let named = channel_of_message(&message, &inner.local_dt(), &dt_peer(peer));
    if named != *channel {
        return Verdict::Terminate(if message.is_request() {
            "received request on response channel".to_owned()
        } else {
            "received response on request channel".to_owned()
        });
    }
    match message {
        Message::Request(request) => match handler.on_request_received(channel, request) {
            RequestAnswer::Proceed(Some(reply)) => Verdict::Reply(Box::new(Message::from(reply))),
            RequestAnswer::Proceed(None) => Verdict::Continue,
            RequestAnswer::Hold(_) => Verdict::Pause,
            RequestAnswer::Reject(_) => Verdict::Terminate("request rejected".to_owned()),
        },
        Message::Response(response) => {
            if role == Role::Receiver
                && (response.is_new() || response.is_restart())
                && !response.accepted()
            {
                inner.with(channel, |chan| chan.rejected = true);
            }
            match handler.on_response_received(channel, response) {
                Ok(Flow::Continue) => Verdict::Continue,
                Ok(Flow::Pause) => Verdict::Pause,
                Err(error) => Verdict::Terminate(error.to_string()),
            }
        }
    }
}

/// Pauses a request or response from outside the driver (hooks that have no pause action).
fn spawn_pause(
    inner: &Arc<Inner>,
    role: Role,
    peer: libp2p::PeerId,
    request: RequestId,
    channel: &ChannelId,
) {
    let already = inner
        .with(channel, |chan| std::mem::replace(&mut chan.paused, true))
        .unwrap_or(true);
    if already {
        return;
    }
    let node = inner.node.clone();
    tokio::spawn(async move {
        let result = match role {
            Role::Receiver => node.pause(request).await,
            Role::Sender => node.pause_response(peer, request).await,
        };
        if let Err(error) = result {
            tracing::debug!(%error, "pause from a hook failed");
        }
    });
}

/// Hook 3: a graphsync request arrived at the data sender.
fn incoming_request(
    inner: &Arc<Inner>,
    peer: &libp2p::PeerId,
    request: &graphsync::Request,
    actions: &mut graphsync::network::IncomingRequestActions,
) {
    let message = match extension::read(&request.extensions, SUPPORTED) {
        Ok(Some(message)) => message,
        Ok(None) => return,
        Err(error) => {
            actions.terminate(error.to_string());
            return;
        }
    };
    let Some(handler) = inner.handler() else {
        return;
    };
    let channel = channel_of_message(&message, &inner.local_dt(), &dt_peer(peer));
    let exchange = Exchange {
        role: Role::Sender,
        peer: *peer,
        request: request.id,
    };
    // Track the channel and this request.
    let (created, had_request, pending, store) = {
        let mut state = inner.lock();
        let limit = inner.config.max_channels;
        let created = !state.channels.contains_key(&channel);
        if created && state.channels.len() >= limit {
            drop(state);
            actions.terminate(format!("too many channels (limit {limit})"));
            return;
        }
        let chan = state.channels.entry(channel.clone()).or_default();
        let had_request = chan.exchange.is_some();
        if message.is_new() || message.is_restart() {
            // A new exchange: indexes start again from the traversal's start.
            chan.queued_max = 0;
            chan.sent_max = 0;
        }
        if message.is_new() {
            chan.delivered_max = 0;
        }
        let old = chan.exchange.replace(exchange);
        chan.finished = false;
        chan.paused = false;
        chan.held = false;
        let pending = if chan.requester_cancelled {
            chan.requester_cancelled = false;
            chan.pending.take()
        } else {
            None
        };
        let store = chan.store.clone();
        chan.enter();
        if let Some(old) = old {
            state.requests.remove(&(old.role, old.peer, old.request));
        }
        state
            .requests
            .insert((Role::Sender, *peer, request.id), channel.clone());
        (created, had_request, pending, store)
    };
    if let Some(store) = store {
        actions.use_store(store);
    }
    let mut reply: Option<Message> = None;
    let mut pause = false;
    let mut terminate: Option<String> = None;
    match message {
        Message::Request(dt_request) => match handler.on_request_received(&channel, dt_request) {
            RequestAnswer::Proceed(r) => reply = r.map(Message::from),
            RequestAnswer::Hold(r) => {
                reply = r.map(Message::from);
                pause = true;
            }
            RequestAnswer::Reject(r) => {
                reply = r.map(Message::from);
                terminate = Some("request rejected".to_owned());
            }
        },
        Message::Response(response) => match handler.on_response_received(&channel, response) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Pause) => pause = true,
            Err(error) => terminate = Some(error.to_string()),
        },
    }
    let resumed = inner.with(&channel, Channel::leave).flatten();
    if let Some(reply) = &reply {
        add(
            &mut |n, v| actions.add_extension(n, v),
            reply,
            INCOMING_REQUEST_NAMES,
        );
    }
    if let Some(reason) = terminate {
        let mut state = inner.lock();
        if created
            && state
                .channels
                .get(&channel)
                .is_none_or(|c| c.store.is_none())
        {
            // A refused new channel leaves nothing behind: refusals cannot fill the table.
            state.channels.remove(&channel);
            state.requests.remove(&(Role::Sender, *peer, request.id));
        } else if let Some(chan) = state.channels.get_mut(&channel) {
            chan.finished = true;
        }
        drop(state);
        actions.terminate(reason);
        return;
    }
    if let Some(pending) = pending {
        add(&mut |n, v| actions.add_extension(n, v), &pending, SUPPORTED);
    }
    if let Some(resumed) = resumed {
        // A resume that came while the handler ran voids its pause.
        add(&mut |n, v| actions.add_extension(n, v), &resumed, SUPPORTED);
        pause = false;
    }
    let xfer_started = inner.with(&channel, |c| c.xfer_started).unwrap_or(false);
    // Go's quirk: a channel that had a request on which data never started starts paused.
    if had_request && !xfer_started && !pause {
        pause = true;
    }
    inner.with(&channel, |chan| {
        if pause {
            chan.paused = true;
            chan.held = true;
        } else {
            chan.xfer_started = true;
        }
    });
    if pause {
        actions.pause();
    }
    actions.validate();
}
