//! A ready-made data-transfer node: [`NodeBuilder`] assembles the swarm of [`build_swarm`], a
//! Graphsync node on it, the [`GraphsyncTransport`], the [`Libp2pNetwork`], a channel store and
//! the [`Manager`], and [`Node`] runs them.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use blockstore::Blockstore;
use datatransfer_graphsync::GraphsyncTransport;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    BuildError, Libp2pNetwork, NetError, NetworkConfig, NodeBehaviour, SwarmConfig, build_swarm,
    from_libp2p,
};
use crate::{ChannelStore, Config, Error, Manager, MemStore, MonitorConfig, PeerId, SledStore};

/// The manager of a [`Node`]: over graphsync and the libp2p network.
pub type NodeManager = Manager<GraphsyncTransport, Libp2pNetwork>;

/// How long [`NodeBuilder::build`] waits for a listener to report its address, and
/// [`Node::dial`] for a connection, by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// How many commands the swarm task queues.
const COMMAND_CAPACITY: usize = 16;

/// A running data-transfer node over libp2p: its swarm is driven by a task of its own, and its
/// [`Manager`] is started.
///
/// Make one with [`Node::builder`]. The swarm task ends when the node is dropped or
/// [`shut down`](Node::shutdown); clones of the [`manager`](Node::manager) handle outlive it
/// but can no longer reach peers.
///
/// # Examples
/// Two nodes on loopback TCP; the first dials the second:
/// ```
/// use std::sync::Arc;
///
/// use blockstore::InMemoryBlockstore;
/// use datatransfer::libp2p::Node;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = Node::builder(Arc::new(InMemoryBlockstore::<64>::new())).build().await?;
/// let b = Node::builder(Arc::new(InMemoryBlockstore::<64>::new())).build().await?;
/// let peer = a.dial(b.listen_addrs()[0].clone()).await?;
/// assert_eq!(&peer, b.manager().self_peer());
/// a.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Node {
    manager: NodeManager,
    peer_id: libp2p::PeerId,
    listen_addrs: Vec<Multiaddr>,
    dial_timeout: Duration,
    commands: mpsc::Sender<Command>,
    task: Option<JoinHandle<()>>,
}

impl Node {
    /// A builder of a node whose graphsync node serves from and stores into `blocks`.
    pub fn builder<B: Blockstore + 'static>(blocks: Arc<B>) -> NodeBuilder<B> {
        NodeBuilder::new(blocks)
    }

    /// The node's libp2p peer id.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.peer_id
    }

    /// The addresses the node listens on, as bound (a port 0 is replaced by the real port),
    /// each ending with `/p2p/<peer id>` so that another node can [`dial`](Node::dial) it.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The node's started manager: register voucher types and validators, open pulls and
    /// pushes, subscribe to events.
    pub fn manager(&self) -> &NodeManager {
        &self.manager
    }

    /// Connects to the node at `address`, which must end with `/p2p/<peer id>`, and remembers
    /// the address for later streams to it. Returns the peer's data-transfer id, the one
    /// [`Manager::open_pull`] and [`Manager::open_push`] take.
    ///
    /// # Errors
    /// [`DialError::MissingPeerId`] when the address names no peer; [`DialError::Failed`] when
    /// no connection could be made; [`DialError::TimedOut`] after the builder's
    /// [`dial_timeout`](NodeBuilder::dial_timeout); [`DialError::Stopped`] when the swarm task
    /// is gone.
    pub async fn dial(&self, address: Multiaddr) -> Result<PeerId, DialError> {
        let Some(Protocol::P2p(peer)) = address.iter().last() else {
            return Err(DialError::MissingPeerId { address });
        };
        self.manager
            .network()
            .add_address(peer, without_p2p(&address));
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::Dial {
                address: address.clone(),
                peer,
                reply,
            })
            .await
            .map_err(|_| DialError::Stopped)?;
        match tokio::time::timeout(self.dial_timeout, outcome).await {
            Err(_) => Err(DialError::TimedOut {
                address,
                after: self.dial_timeout,
            }),
            Ok(Err(_)) => Err(DialError::Stopped),
            Ok(Ok(Err(source))) => Err(DialError::Failed { address, source }),
            Ok(Ok(Ok(()))) => Ok(from_libp2p(&peer)),
        }
    }

    /// Stops the manager, then the swarm task, and waits until the task has ended (its
    /// listeners and connections are closed then).
    ///
    /// # Errors
    /// [`NodeError::Manager`] when the manager fails to stop; the swarm task is stopped anyway.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let stopped = self.manager.stop().await;
        // A send error means the task has ended already.
        let _ = self.commands.send(Command::Shutdown).await;
        if let Some(task) = self.task.take() {
            // The task ends by itself after the command; a join error means it panicked or was
            // cancelled, and it has ended either way.
            let _ = task.await;
        }
        stopped.map_err(|source| NodeError::Manager { source })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where a [`Node`] keeps its channels.
enum StoreChoice {
    Mem,
    Sled(PathBuf),
    Custom(Box<dyn FnOnce(GraphsyncTransport, Libp2pNetwork, Config) -> NodeManager + Send>),
}

/// How a [`Node`] is made. Every setting has a default, given with its method.
pub struct NodeBuilder<B> {
    blocks: Arc<B>,
    keypair: Option<Keypair>,
    listen: Vec<Multiaddr>,
    store: StoreChoice,
    config: Config,
    monitor: Option<MonitorConfig>,
    swarm: SwarmConfig,
    network: NetworkConfig,
    graphsync: graphsync::network::Config,
    transport: datatransfer_graphsync::Config,
    listen_timeout: Duration,
    dial_timeout: Duration,
}

impl<B: Blockstore + 'static> NodeBuilder<B> {
    /// A builder with every default, over `blocks` (as [`Node::builder`]).
    pub fn new(blocks: Arc<B>) -> Self {
        NodeBuilder {
            blocks,
            keypair: None,
            listen: Vec::new(),
            store: StoreChoice::Mem,
            config: Config::default(),
            monitor: None,
            swarm: SwarmConfig::default(),
            network: NetworkConfig::default(),
            graphsync: graphsync::network::Config::default(),
            transport: datatransfer_graphsync::Config::default(),
            listen_timeout: DEFAULT_WAIT,
            dial_timeout: DEFAULT_WAIT,
        }
    }

    /// The node's identity. Default: a fresh ed25519 key.
    pub fn keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Adds an address to listen on. Default, when none is added: `/ip4/127.0.0.1/tcp/0`.
    pub fn listen_on(mut self, address: Multiaddr) -> Self {
        self.listen.push(address);
        self
    }

    /// Keeps channels in a [`SledStore`] at `path` (opened with the default store settings), so
    /// that they survive a restart. Default: a [`MemStore`].
    pub fn sled_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Sled(path.into());
        self
    }

    /// Keeps channels in `store`. Default: a [`MemStore`].
    pub fn channel_store(mut self, store: impl ChannelStore + Send + Sync + 'static) -> Self {
        self.store = StoreChoice::Custom(Box::new(move |transport, network, config| {
            Manager::new(transport, network, store, config)
        }));
        self
    }

    /// The manager's configuration. Default: [`Config::default`].
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Turns the channel monitor on with `monitor` (it replaces [`Config::monitor`]). Default:
    /// the monitor of the [`config`](Self::config), off unless set there.
    pub fn monitor(mut self, monitor: MonitorConfig) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// The swarm's settings. Default: [`SwarmConfig::default`].
    pub fn swarm_config(mut self, config: SwarmConfig) -> Self {
        self.swarm = config;
        self
    }

    /// The data-transfer network's settings. Default: [`NetworkConfig::default`].
    pub fn network_config(mut self, config: NetworkConfig) -> Self {
        self.network = config;
        self
    }

    /// The graphsync node's settings. Default: `graphsync::network::Config::default()`.
    pub fn graphsync_config(mut self, config: graphsync::network::Config) -> Self {
        self.graphsync = config;
        self
    }

    /// The graphsync transport's settings. Default: `datatransfer_graphsync::Config::default()`.
    pub fn transport_config(mut self, config: datatransfer_graphsync::Config) -> Self {
        self.transport = config;
        self
    }

    /// How long [`build`](Self::build) waits for each listener's first address. Default: 10 s.
    pub fn listen_timeout(mut self, timeout: Duration) -> Self {
        self.listen_timeout = timeout;
        self
    }

    /// How long [`Node::dial`] waits for the connection. Default: 10 s.
    pub fn dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// Builds the node: the swarm listens on every address (and this waits until each
    /// listener has an address), the graphsync node, transport, network and manager are made,
    /// and the manager is started.
    ///
    /// # Errors
    /// [`NodeError::Swarm`], [`NodeError::Listen`] (an address the swarm cannot or could not
    /// listen on), [`NodeError::ListenTimedOut`], [`NodeError::Graphsync`],
    /// [`NodeError::Network`], [`NodeError::Store`] (the sled store cannot be opened) and
    /// [`NodeError::Manager`] (the manager cannot start: a stored channel is unreadable or
    /// belongs to another peer).
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub async fn build(self) -> Result<Node, NodeError> {
        let NodeBuilder {
            blocks,
            keypair,
            mut listen,
            store,
            mut config,
            monitor,
            swarm: swarm_config,
            network,
            graphsync: graphsync_config,
            transport,
            listen_timeout,
            dial_timeout,
        } = self;
        let keypair = keypair.unwrap_or_else(Keypair::generate_ed25519);
        let mut swarm = build_swarm(keypair, swarm_config)?;
        if listen.is_empty() {
            listen.push(
                Multiaddr::empty()
                    .with(Protocol::Ip4([127, 0, 0, 1].into()))
                    .with(Protocol::Tcp(0)),
            );
        }
        let peer_id = *swarm.local_peer_id();
        let mut listen_addrs = Vec::new();
        for address in listen {
            let bound = listen_on(&mut swarm, address, listen_timeout).await?;
            listen_addrs.push(bound.with_p2p(peer_id).unwrap_or_else(|address| address));
        }
        let graphsync =
            graphsync::network::Node::spawn(&swarm.behaviour().graphsync, blocks, graphsync_config)
                .map_err(|source| NodeError::Graphsync { source })?;
        let transport = GraphsyncTransport::new(graphsync, peer_id, transport);
        let network = Libp2pNetwork::for_swarm(&swarm, network)
            .map_err(|source| NodeError::Network { source })?;
        if monitor.is_some() {
            config.monitor = monitor;
        }
        let manager = match store {
            StoreChoice::Mem => Manager::new(transport, network, MemStore::new(), config),
            StoreChoice::Sled(path) => {
                let store = SledStore::open(&path, datatransfer_store::Config::default())
                    .map_err(|source| NodeError::Store { path, source })?;
                Manager::new(transport, network, store, config)
            }
            StoreChoice::Custom(make) => make(transport, network, config),
        };
        manager
            .start()
            .await
            .map_err(|source| NodeError::Manager { source })?;
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let task = tokio::spawn(drive(swarm, command_rx));
        Ok(Node {
            manager,
            peer_id,
            listen_addrs,
            dial_timeout,
            commands,
            task: Some(task),
        })
    }
}

impl<B> std::fmt::Debug for NodeBuilder<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("listen", &self.listen)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a [`Node`] could not be built or shut down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The swarm could not be built.
    #[error("cannot build the swarm")]
    Swarm(#[from] BuildError),
    /// The swarm cannot listen on the address, or its listener failed before reporting one.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address asked for.
        address: Multiaddr,
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A listener reported no address in time.
    #[error("no address to listen on {address} after {after:?}")]
    ListenTimedOut {
        /// The address asked for.
        address: Multiaddr,
        /// The wait.
        after: Duration,
    },
    /// The graphsync node could not start.
    #[error("cannot start the graphsync node")]
    Graphsync {
        /// The cause.
        #[source]
        source: graphsync::network::SpawnError,
    },
    /// The data-transfer network could not be made.
    #[error("cannot make the data-transfer network")]
    Network {
        /// The cause.
        #[source]
        source: NetError,
    },
    /// The sled channel store could not be opened.
    #[error("cannot open the channel store at {}", path.display())]
    Store {
        /// The store's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: crate::StoreError,
    },
    /// The manager could not start or stop.
    #[error("the manager failed")]
    Manager {
        /// The cause.
        #[source]
        source: Error,
    },
}

/// Why [`Node::dial`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The address does not end with `/p2p/<peer id>`.
    #[error("address {address} names no peer (no /p2p/ at its end)")]
    MissingPeerId {
        /// The address.
        address: Multiaddr,
    },
    /// No connection could be made.
    #[error("cannot connect to {address}")]
    Failed {
        /// The address.
        address: Multiaddr,
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The connection was not made in time.
    #[error("no connection to {address} after {after:?}")]
    TimedOut {
        /// The address.
        address: Multiaddr,
        /// The wait.
        after: Duration,
    },
    /// The node's swarm task has ended.
    #[error("the node is shut down")]
    Stopped,
}

/// What the swarm task is asked.
enum Command {
    /// Dial `address` and answer once connected to `peer` (or failed).
    Dial {
        address: Multiaddr,
        peer: libp2p::PeerId,
        reply: oneshot::Sender<Result<(), Box<dyn StdError + Send + Sync>>>,
    },
    /// End the task.
    Shutdown,
}

/// A dial waiting for its connection.
type PendingDial = (
    libp2p::PeerId,
    oneshot::Sender<Result<(), Box<dyn StdError + Send + Sync>>>,
);

/// Drives `swarm` until the node is dropped (no more commands) or shut down; answers dials.
async fn drive(mut swarm: Swarm<NodeBehaviour>, mut commands: mpsc::Receiver<Command>) {
    let mut pending: Vec<PendingDial> = Vec::new();
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => break,
                Some(Command::Dial { address, peer, reply }) => match swarm.dial(address) {
                    Ok(()) => pending.push((peer, reply)),
                    Err(error) => {
                        let _ = reply.send(Err(Box::new(error)));
                    }
                },
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    answer(&mut pending, peer_id, || Ok(()));
                }
                SwarmEvent::OutgoingConnectionError { peer_id: Some(peer_id), error, .. } => {
                    let error = error.to_string();
                    answer(&mut pending, peer_id, || Err(error.clone().into()));
                }
                _ => {}
            },
        }
    }
}

/// Answers every pending dial to `peer` with `outcome()`.
fn answer(
    pending: &mut Vec<PendingDial>,
    peer: libp2p::PeerId,
    outcome: impl Fn() -> Result<(), Box<dyn StdError + Send + Sync>>,
) {
    let mut index = 0;
    while index < pending.len() {
        if pending[index].0 == peer {
            let (_, reply) = pending.swap_remove(index);
            // The dialer may have stopped waiting (timed out); nothing to tell then.
            let _ = reply.send(outcome());
        } else {
            index += 1;
        }
    }
}

/// Listens on `address` and waits, at most `wait`, for the listener's first address.
async fn listen_on(
    swarm: &mut Swarm<NodeBehaviour>,
    address: Multiaddr,
    wait: Duration,
) -> Result<Multiaddr, NodeError> {
    let listener: ListenerId =
        swarm
            .listen_on(address.clone())
            .map_err(|source| NodeError::Listen {
                address: address.clone(),
                source: Box::new(source),
            })?;
    let first = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } if listener_id == listener => return Ok(address),
                SwarmEvent::ListenerError { listener_id, error } if listener_id == listener => {
                    return Err(Box::new(error) as Box<dyn StdError + Send + Sync>);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } if listener_id == listener => {
                    return Err(match reason {
                        Ok(()) => "the listener closed".into(),
                        Err(error) => Box::new(error),
                    });
                }
                _ => {}
            }
        }
    };
    match tokio::time::timeout(wait, first).await {
        Err(_) => Err(NodeError::ListenTimedOut {
            address,
            after: wait,
        }),
        Ok(Err(source)) => Err(NodeError::Listen { address, source }),
        Ok(Ok(bound)) => Ok(bound),
    }
}

/// `address` without its trailing `/p2p/<peer id>`.
fn without_p2p(address: &Multiaddr) -> Multiaddr {
    address
        .iter()
        .filter(|protocol| !matches!(protocol, Protocol::P2p(_)))
        .collect()
}
