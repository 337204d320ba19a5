//! [`MemHub`], [`MemTransport`] and [`MemNetwork`]: an in-memory
//! [`Transport`](crate::Transport) and [`Network`](crate::Network) for tests, with fault
//! injection (feature `mem`).
//!
//! Peers join a shared [`MemHub`] with their block store (any [`Blockstore`], usually
//! `blockstore::InMemoryBlockstore`). A data channel's exchange is one task, spawned with the
//! spawner given to [`MemHub::new`] (the crate does not pick a runtime): it walks the DAG on
//! the data sender with the `ipld-selector` traversal (go-ipld-prime's order, so indexes match
//! what graphsync reports), reads each block from the sender's store, writes it into the
//! receiver's store, and calls both sides' [`EventsHandler`]s in order. Because one task makes
//! every call for an exchange, the calls for one channel never overlap, and a message attached
//! to the exchange is delivered between two blocks, in order.
//!
//! Faults and knobs, all on the hub: [`MemHub::disconnect`] / [`MemHub::reconnect`] (a
//! partition: messages are refused, running exchanges fail with `Disconnected` on both sides),
//! [`MemHub::drop_messages`] (network messages on one direction vanish), [`MemHub::set_latency`]
//! (network messages and exchange openings are delayed), [`MemHub::set_block_delay`] (a pause
//! after every block: throttling), and [`MemHub::limit_blocks`] / [`MemHub::add_block_credits`]
//! (stepping: senders stop after the given number of blocks until more credits come).
//!
//! Differences from Go's graphsync transport, on purpose and documented here:
//! - the data receiver does not re-traverse; it trusts the sender's index and reports the
//!   skipped first blocks of a restart (and repeats of a block) with `unique == false`
//!   without reading them from its own store;
//! - a requester-side pause does not cancel and re-issue the request (graphsync v0.13.1's
//!   choreography, §4.6): the exchange just stops until resumed;
//! - [`OpenChannel::store`](crate::OpenChannel::store) selects the receiver's store; the
//!   sender always reads its default store;
//! - network messages are encoded and decoded with the real codec on the way, so what cannot
//!   go on the wire fails as it would; messages inside an exchange are passed as values.
//! - shutting a transport down ends its exchanges without reports on either side; use
//!   [`MemHub::disconnect`] to make the other side see a network failure;
//! - [`Config::max_channels`] bounds the channels a transport opens; exchanges it serves as
//!   data sender are kept until [`cleanup_channel`](crate::Transport::cleanup_channel).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use blockstore::{Blockstore, InMemoryBlockstore};
//! use futures::channel::oneshot;
//! use datatransfer_message::{
//!     ChannelId, Message, PeerId, Request, Response, TransferId, new_request, new_response,
//! };
//! use datatransfer_transport::mem::{Config, MemHub};
//! use datatransfer_transport::{
//!     BlockInfo, DataError, EventsHandler, Flow, HandlerError, OpenChannel, QueuedAnswer,
//!     RequestAnswer, Transport,
//! };
//! use ipld_dagcbor::Node;
//!
//! /// Accepts every request, remembers the blocks received and reports the completion.
//! #[derive(Default)]
//! struct Log {
//!     blocks: Mutex<Vec<u64>>,
//!     done: Mutex<Option<oneshot::Sender<Result<(), DataError>>>>,
//! }
//!
//! impl EventsHandler for Log {
//!     fn on_channel_opened(&self, _: &ChannelId) -> Result<(), HandlerError> { Ok(()) }
//!     fn on_response_received(&self, _: &ChannelId, _: Response) -> Result<Flow, HandlerError> {
//!         Ok(Flow::Continue)
//!     }
//!     fn on_request_received(&self, _: &ChannelId, request: Request) -> RequestAnswer {
//!         let id = request.transfer_id();
//!         RequestAnswer::Proceed(Some(new_response(id, true, false, "".into(), None)))
//!     }
//!     fn on_data_received(&self, _: &ChannelId, block: BlockInfo) -> Result<Flow, HandlerError> {
//!         self.blocks.lock().unwrap().push(block.index);
//!         Ok(Flow::Continue)
//!     }
//!     fn on_data_queued(&self, _: &ChannelId, _: BlockInfo)
//!         -> Result<QueuedAnswer, HandlerError> { Ok(QueuedAnswer::proceed()) }
//!     fn on_data_sent(&self, _: &ChannelId, _: BlockInfo) {}
//!     fn on_transfer_queued(&self, _: &ChannelId) {}
//!     fn on_channel_completed(&self, _: &ChannelId, result: Result<(), DataError>) {
//!         if let Some(done) = self.done.lock().unwrap().take() {
//!             let _ = done.send(result);
//!         }
//!     }
//!     fn on_request_cancelled(&self, _: &ChannelId, _: DataError) {}
//!     fn on_request_disconnected(&self, _: &ChannelId, _: DataError) {}
//!     fn on_send_data_error(&self, _: &ChannelId, _: DataError) {}
//!     fn on_receive_data_error(&self, _: &ChannelId, _: DataError) {}
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! futures::executor::block_on(async {
//!     // No runtime here: every hub task runs on a thread of its own.
//!     let hub = MemHub::new(Config::default(), |task| {
//!         std::thread::spawn(move || futures::executor::block_on(task));
//!     });
//!     let (alice, bob) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
//!     // Bob holds a one-block DAG: a raw block.
//!     let data = b"hello".to_vec();
//!     let root: cid::Cid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq".parse()?;
//!     let bob_store = Arc::new(InMemoryBlockstore::<64>::new());
//!     bob_store.put_keyed(&root, &data).await?;
//!     let alice_store = Arc::new(InMemoryBlockstore::<64>::new());
//!     let (alice_transport, _) = hub.add_peer(alice.clone(), Arc::clone(&alice_store))?;
//!     let (bob_transport, _) = hub.add_peer(bob.clone(), bob_store)?;
//!     let (alice_log, bob_log) = (Arc::new(Log::default()), Arc::new(Log::default()));
//!     let (done, completed) = oneshot::channel();
//!     *alice_log.done.lock().unwrap() = Some(done);
//!     alice_transport.set_events_handler(alice_log.clone())?;
//!     bob_transport.set_events_handler(bob_log)?;
//!
//!     // Alice pulls: she is the data receiver, so she opens the exchange.
//!     let channel = ChannelId::new(alice, bob.clone(), TransferId(1));
//!     let selector = ipld_selector::Selector::match_point().to_node();
//!     let request = new_request(TransferId(1), true, "".into(), Node::Null, root,
//!         selector.clone());
//!     let open = OpenChannel::new(bob, channel, root, selector, Message::from(request));
//!     alice_transport.open_channel(open).await?;
//!     completed.await??;
//!     assert_eq!(*alice_log.blocks.lock().unwrap(), [1]);
//!     assert_eq!(alice_store.get(&root).await?, Some(data));
//!     Ok(())
//! })
//! # }
//!
mod exchange;
mod network;
mod transport;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use blockstore::Blockstore;
use datatransfer_message::{ChannelId, PeerId};

pub use network::MemNetwork;
pub use transport::MemTransport;

use crate::{EventsHandler, Receiver, StoreName};
use exchange::Exchange;
use network::Envelope;

/// A task the hub needs run (an exchange or a peer's message delivery).
type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Settings of a [`MemHub`]. Every field has a documented default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Capacity of each peer's inbound network message queue; a send into a full queue fails
    /// with [`NetworkError::QueueFull`](crate::NetworkError::QueueFull). Default 64.
    pub message_queue: usize,
    /// Capacity of each exchange's command queue (attached messages and resumes); more fail
    /// with [`TransportError::QueueFull`](crate::TransportError::QueueFull). Default 64.
    pub control_queue: usize,
    /// The most channels one transport tracks (finished ones count until cleaned up); more
    /// fail with [`TransportError::TooManyChannels`](crate::TransportError::TooManyChannels).
    /// Default 1024.
    pub max_channels: usize,
    /// Delay of every network message and of every exchange's opening. Default zero.
    pub latency: Duration,
    /// Pause after every block sent. Default zero.
    pub block_delay: Duration,
    /// Traversal limits (recursion depth, link budget, block size). Default
    /// `ipld_selector::Config::default()` without the recursion depth cap, as go-data-transfer
    /// runs graphsync (it validates requests itself).
    pub traversal: ipld_selector::Config,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            message_queue: 64,
            control_queue: 64,
            max_channels: 1024,
            latency: Duration::ZERO,
            block_delay: Duration::ZERO,
            traversal: ipld_selector::Config::default().with_max_recursion_depth(None),
        }
    }
}

impl Config {
    /// This configuration with another network latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// This configuration with another pause after every block.
    pub fn with_block_delay(mut self, delay: Duration) -> Self {
        self.block_delay = delay;
        self
    }

    /// This configuration with other queue capacities.
    pub fn with_queues(mut self, message_queue: usize, control_queue: usize) -> Self {
        self.message_queue = message_queue;
        self.control_queue = control_queue;
        self
    }

    /// This configuration with another channel limit.
    pub fn with_max_channels(mut self, max_channels: usize) -> Self {
        self.max_channels = max_channels;
        self
    }
}

/// Why a peer could not join a [`MemHub`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A peer with this id already joined.
    #[error("peer {peer} already joined the hub")]
    DuplicatePeer {
        /// The peer.
        peer: PeerId,
    },
}

/// The shared medium of in-memory peers, with the fault-injection controls.
///
/// Cloning gives another handle to the same hub.
pub struct MemHub<B> {
    hub: Arc<Hub<B>>,
}

impl<B> Clone for MemHub<B> {
    fn clone(&self) -> Self {
        MemHub {
            hub: Arc::clone(&self.hub),
        }
    }
}

impl<B: Blockstore + Send + Sync + 'static> MemHub<B> {
    /// An empty hub. `spawn` runs the hub's tasks to completion on the caller's runtime, for
    /// example `|task| { tokio::spawn(task); }`.
    pub fn new(
        config: Config,
        spawn: impl Fn(Pin<Box<dyn Future<Output = ()> + Send + 'static>>) + Send + Sync + 'static,
    ) -> Self {
        let knobs = Knobs {
            latency: config.latency,
            block_delay: config.block_delay,
            credits: None,
            partitions: HashSet::new(),
            dropping: HashSet::new(),
        };
        MemHub {
            hub: Arc::new(Hub {
                config,
                spawn: Box::new(spawn),
                peers: Mutex::new(HashMap::new()),
                knobs: Mutex::new(knobs),
            }),
        }
    }

    /// Adds a peer whose blocks live in `store`; returns its transport and its network.
    ///
    /// # Errors
    /// [`HubError::DuplicatePeer`] when the id is taken.
    pub fn add_peer(
        &self,
        peer: PeerId,
        store: Arc<B>,
    ) -> Result<(MemTransport<B>, MemNetwork<B>), HubError> {
        let mut peers = lock(&self.hub.peers);
        if peers.contains_key(&peer) {
            return Err(HubError::DuplicatePeer { peer });
        }
        let (inbox, deliveries) = futures::channel::mpsc::channel(self.hub.config.message_queue);
        let node = Arc::new(Peer::new(peer.clone(), store, inbox));
        peers.insert(peer, Arc::clone(&node));
        drop(peers);
        (self.hub.spawn)(Box::pin(network::deliver(
            Arc::downgrade(&self.hub),
            Arc::downgrade(&node),
            deliveries,
        )));
        Ok((
            MemTransport::new(Arc::clone(&self.hub), Arc::clone(&node)),
            MemNetwork::new(Arc::clone(&self.hub), node),
        ))
    }

    /// Takes a shut-down peer off the hub so that its id can join again with
    /// [`add_peer`](Self::add_peer), as a restarted process does (with the same or another
    /// block store). Returns false, and changes nothing, when the peer is unknown or its
    /// transport is not shut down.
    pub fn remove_peer(&self, peer: &PeerId) -> bool {
        let mut peers = lock(&self.hub.peers);
        match peers.get(peer) {
            Some(node) if node.is_shut_down() => {
                peers.remove(peer);
                true
            }
            _ => false,
        }
    }

    /// Partitions `a` and `b` (both directions): messages between them are refused, opening
    /// an exchange reports `on_request_disconnected`, and running exchanges between them fail
    /// on both sides with [`DataError::Disconnected`](crate::DataError::Disconnected).
    pub fn disconnect(&self, a: &PeerId, b: &PeerId) {
        lock(&self.hub.knobs).partitions.insert(pair(a, b));
        self.hub.wake_exchanges();
    }

    /// Heals the partition between `a` and `b`.
    pub fn reconnect(&self, a: &PeerId, b: &PeerId) {
        lock(&self.hub.knobs).partitions.remove(&pair(a, b));
    }

    /// Whether `a` and `b` can reach each other.
    pub fn is_connected(&self, a: &PeerId, b: &PeerId) -> bool {
        self.hub.connected(a, b)
    }

    /// While `on`, network messages from `from` to `to` are accepted by `send_message` and
    /// silently lost.
    pub fn drop_messages(&self, from: &PeerId, to: &PeerId, on: bool) {
        let mut knobs = lock(&self.hub.knobs);
        let link = (from.clone(), to.clone());
        if on {
            knobs.dropping.insert(link);
        } else {
            knobs.dropping.remove(&link);
        }
    }

    /// Sets the delay of network messages and exchange openings sent from now on.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.hub.knobs).latency = latency;
    }

    /// Sets the pause after every block sent from now on.
    pub fn set_block_delay(&self, delay: Duration) {
        lock(&self.hub.knobs).block_delay = delay;
    }

    /// Steps the data flow: with `Some(n)`, senders together send `n` more blocks and then
    /// wait for [`add_block_credits`](Self::add_block_credits); `None` lifts the limit.
    pub fn limit_blocks(&self, credits: Option<u64>) {
        lock(&self.hub.knobs).credits = credits;
        self.hub.wake_exchanges();
    }

    /// Lets senders send `n` more blocks (no effect without a limit).
    pub fn add_block_credits(&self, n: u64) {
        if let Some(credits) = lock(&self.hub.knobs).credits.as_mut() {
            *credits = credits.saturating_add(n);
        }
        self.hub.wake_exchanges();
    }

    /// The tags under which `owner` protects its connection to `peer`
    /// ([`Network::protect`](crate::Network::protect)), sorted.
    pub fn protections(&self, owner: &PeerId, peer: &PeerId) -> Vec<String> {
        let Some(node) = self.hub.peer(owner) else {
            return Vec::new();
        };
        let protected = lock(&node.protected);
        let mut tags: Vec<String> = protected
            .get(peer)
            .map(|tags| tags.iter().cloned().collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }
}

/// The hub's shared state.
struct Hub<B> {
    config: Config,
    spawn: Box<dyn Fn(Task) + Send + Sync>,
    peers: Mutex<HashMap<PeerId, Arc<Peer<B>>>>,
    knobs: Mutex<Knobs>,
}

/// The fault-injection settings.
struct Knobs {
    latency: Duration,
    block_delay: Duration,
    credits: Option<u64>,
    partitions: HashSet<(PeerId, PeerId)>,
    dropping: HashSet<(PeerId, PeerId)>,
}

impl<B> Hub<B> {
    fn peer(&self, peer: &PeerId) -> Option<Arc<Peer<B>>> {
        lock(&self.peers).get(peer).cloned()
    }

    fn connected(&self, a: &PeerId, b: &PeerId) -> bool {
        !lock(&self.knobs).partitions.contains(&pair(a, b))
    }

    fn latency(&self) -> Duration {
        lock(&self.knobs).latency
    }

    fn block_delay(&self) -> Duration {
        lock(&self.knobs).block_delay
    }

    /// Takes one block credit; false when the limit is reached.
    fn take_credit(&self) -> bool {
        let mut knobs = lock(&self.knobs);
        match knobs.credits.as_mut() {
            None => true,
            Some(0) => false,
            Some(credits) => {
                *credits -= 1;
                true
            }
        }
    }

    /// Wakes every exchange so it re-reads the knobs.
    fn wake_exchanges(&self) {
        let peers: Vec<Arc<Peer<B>>> = lock(&self.peers).values().cloned().collect();
        for peer in peers {
            let exchanges: Vec<Arc<Exchange>> = lock(&peer.exchanges).values().cloned().collect();
            for exchange in exchanges {
                exchange.wake();
            }
        }
    }
}

/// One peer of the hub.
struct Peer<B> {
    id: PeerId,
    store: Arc<B>,
    stores: Mutex<HashMap<StoreName, Arc<B>>>,
    handler: OnceLock<Arc<dyn EventsHandler>>,
    receiver: OnceLock<Arc<dyn Receiver>>,
    exchanges: Mutex<HashMap<ChannelId, Arc<Exchange>>>,
    shut_down: AtomicBool,
    inbox: Mutex<futures::channel::mpsc::Sender<Envelope>>,
    protected: Mutex<HashMap<PeerId, HashSet<String>>>,
}

impl<B> Peer<B> {
    fn new(id: PeerId, store: Arc<B>, inbox: futures::channel::mpsc::Sender<Envelope>) -> Self {
        Peer {
            id,
            store,
            stores: Mutex::new(HashMap::new()),
            handler: OnceLock::new(),
            receiver: OnceLock::new(),
            exchanges: Mutex::new(HashMap::new()),
            shut_down: AtomicBool::new(false),
            inbox: Mutex::new(inbox),
            protected: Mutex::new(HashMap::new()),
        }
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    fn handler(&self) -> Option<Arc<dyn EventsHandler>> {
        self.handler.get().cloned()
    }
}

/// The unordered pair `{a, b}`.
fn pair(a: &PeerId, b: &PeerId) -> (PeerId, PeerId) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

/// Locks a mutex, going on with the data if a panicking thread poisoned it (every critical
/// section leaves the data consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
