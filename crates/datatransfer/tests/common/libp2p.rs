//! Helpers of the end-to-end tests over graphsync and real libp2p: a node is a `Manager` with a
//! `GraphsyncTransport` and a `Libp2pNetwork` on its own `build_swarm` swarm (memory transport
//! or loopback TCP), whose graphsync node serves a block store behind a [`Gate`] (reads can be
//! held after a number of them, so that "mid-transfer" is a block count, not a moment), and
//! whose swarm runs in a task that counts connections and can drop one on command.
//!
//! Tests that need their own nodes build them from the parts: [`swarm_pair`] (two listening
//! swarms that know each other), [`manager_on`] (a manager over a swarm, its layers set by
//! [`Layers`]), [`listen`], [`dial`] and [`run`].
//!
//! Include it next to `common` with `#[path = "common/libp2p.rs"] mod net;`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use blockstore::Blockstore;
use cid::CidGeneric;
use datatransfer::libp2p::{Libp2pNetwork, NetworkConfig, NodeBehaviour, SwarmConfig, build_swarm};
use datatransfer::{ChannelId, ChannelState, ChannelStatus, Config, Manager, MonitorConfig};
use datatransfer_graphsync::GraphsyncTransport;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot, watch};

use crate::common::{
    AcceptAll, Blocks, Dag, PATIENCE, TestStore, TestVoucher, everything, until_status,
};

/// A manager over graphsync and libp2p.
pub type Mgr = Manager<GraphsyncTransport, Libp2pNetwork>;

/// Which libp2p transport a node listens and dials on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// libp2p's in-process memory transport.
    Memory,
    /// TCP on 127.0.0.1.
    Tcp,
}

/// Holds the reads of a block store after a number of them, until released.
///
/// Every clone shares the same count and limit.
#[derive(Clone)]
pub struct Gate {
    limit: Arc<watch::Sender<Option<u64>>>,
    reads: Arc<AtomicU64>,
}

impl Gate {
    /// A gate that lets every read through.
    pub fn open() -> Self {
        Gate {
            limit: Arc::new(watch::Sender::new(None)),
            reads: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Lets only the first `reads` reads (counted since the gate was made) through; later ones
    /// wait for [`Gate::release`].
    pub fn hold_after(&self, reads: u64) {
        self.limit.send_replace(Some(reads));
    }

    /// Lets every read through, the waiting ones included.
    pub fn release(&self) {
        self.limit.send_replace(None);
    }

    /// Reads started so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    async fn pass(&self) {
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        let mut limit = self.limit.subscribe();
        // An error means the gate is gone with its node: the read goes through.
        let _ = limit
            .wait_for(|limit| limit.is_none_or(|limit| n < limit))
            .await;
    }
}

/// The block store a node's graphsync node serves: `inner` behind a [`Gate`], each read taking
/// `delay` (as a disk's would).
pub struct GatedStore {
    inner: Arc<Blocks>,
    gate: Gate,
    delay: Duration,
}

impl GatedStore {
    /// `inner` behind an open gate, each read taking `delay` (a transfer that lasts long enough
    /// to be cut or attacked while it runs).
    pub fn slow(inner: Arc<Blocks>, delay: Duration) -> Self {
        GatedStore {
            inner,
            gate: Gate::open(),
            delay,
        }
    }
}

impl Blockstore for GatedStore {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        self.gate.pass().await;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

/// What a node's swarm task has seen of connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// Connections open now.
    pub open: u64,
    /// Connections this node dialed, ever.
    pub dialed: u64,
    /// Connections closed, ever.
    pub closed: u64,
}

/// How a node is made: everything but its registrations.
pub struct Spec {
    /// The swarm identity (kept across a restart).
    pub keypair: Keypair,
    /// The transport it listens on.
    pub net: Net,
    /// Where to listen; `None` for a fresh address of `net`.
    pub listen: Option<Multiaddr>,
    /// The blocks its graphsync node serves and writes.
    pub blocks: Arc<Blocks>,
    /// The gate in front of `blocks`.
    pub gate: Gate,
    /// How long each block read takes.
    pub read_delay: Duration,
    /// The channel store.
    pub store: TestStore,
    /// The manager's configuration.
    pub config: Config,
    /// The data-transfer network's configuration.
    pub network: NetworkConfig,
    /// The swarm's settings.
    pub swarm: SwarmConfig,
}

impl Spec {
    /// A fresh identity on `net`, empty blocks behind an open gate, a `MemStore`, default
    /// configurations.
    pub fn new(net: Net) -> Self {
        Spec {
            keypair: Keypair::generate_ed25519(),
            net,
            listen: None,
            blocks: Arc::new(Blocks::new()),
            gate: Gate::open(),
            read_delay: Duration::ZERO,
            store: TestStore::Mem(datatransfer::MemStore::new()),
            config: Config::default(),
            network: NetworkConfig::default(),
            swarm: SwarmConfig::default(),
        }
    }
}

/// One started node.
pub struct Node {
    pub manager: Mgr,
    pub blocks: Arc<Blocks>,
    pub gate: Gate,
    pub keypair: Keypair,
    pub net: Net,
    pub peer_id: libp2p::PeerId,
    pub address: Multiaddr,
    pub store: TestStore,
    connections: watch::Receiver<Connections>,
    commands: mpsc::Sender<Command>,
    swarm: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(swarm) = &self.swarm {
            swarm.abort();
        }
    }
}

impl Node {
    /// Starts a node made as `spec` says, with registrations done by `register`.
    pub async fn start(
        spec: Spec,
        register: impl FnOnce(&Mgr) -> anyhow::Result<()>,
    ) -> anyhow::Result<Node> {
        let Spec {
            keypair,
            net,
            listen,
            blocks,
            gate,
            read_delay,
            store,
            config,
            network,
            swarm,
        } = spec;
        let mut swarm = build_swarm(keypair.clone(), swarm)?;
        let listen = match listen {
            Some(address) => address,
            None => match net {
                Net::Memory => "/memory/0".parse()?,
                Net::Tcp => "/ip4/127.0.0.1/tcp/0".parse()?,
            },
        };
        let (listener, address) = listen_on(&mut swarm, listen.clone())
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let peer_id = *swarm.local_peer_id();
        let served = GatedStore {
            inner: Arc::clone(&blocks),
            gate: gate.clone(),
            delay: read_delay,
        };
        let layers = Layers {
            network,
            store: store.clone(),
            config,
            ..Layers::default()
        };
        let manager = manager_on(&swarm, served, layers, register).await?;
        let (connections_tx, connections) = watch::channel(Connections::default());
        let (commands, commands_rx) = mpsc::channel(8);
        let swarm = tokio::spawn(drive(swarm, listener, commands_rx, connections_tx));
        Ok(Node {
            manager,
            blocks,
            gate,
            keypair,
            net,
            peer_id,
            address,
            store,
            connections,
            commands,
            swarm: Some(swarm),
        })
    }

    /// The node's data-transfer peer id.
    pub fn id(&self) -> datatransfer::PeerId {
        self.manager.self_peer().clone()
    }

    /// Tells this node where `other` listens.
    pub fn learn(&self, other: &Node) {
        self.manager
            .network()
            .add_address(other.peer_id, other.address.clone());
    }

    /// What the swarm has seen of connections so far.
    pub fn connections(&self) -> Connections {
        *self.connections.borrow()
    }

    /// Closes every connection to `other` (the swarm's `disconnect_peer_id`) and waits until
    /// none is open.
    pub async fn disconnect(&self, other: &Node) -> anyhow::Result<()> {
        self.commands
            .send(Command::Disconnect(other.peer_id))
            .await
            .context("the swarm task is gone")?;
        self.until_connections(|c| c.open == 0).await?;
        Ok(())
    }

    /// Waits, at most [`PATIENCE`], until the connection counts satisfy `test`.
    pub async fn until_connections(
        &self,
        test: impl FnMut(&Connections) -> bool,
    ) -> anyhow::Result<Connections> {
        let mut connections = self.connections.clone();
        let seen = tokio::time::timeout(PATIENCE, connections.wait_for(test))
            .await
            .context("waiting on connections")??;
        Ok(*seen)
    }

    /// Stops the manager and the swarm (its connections close), keeping what a restart needs:
    /// the identity, the address, the blocks and the channel store.
    pub async fn stop(mut self) -> anyhow::Result<Stopped> {
        self.manager.stop().await?;
        // The memory transport frees a port only when its listener is removed, not when the
        // swarm is dropped: the swarm task removes it before it is aborted.
        let (done, removed) = oneshot::channel();
        self.commands
            .send(Command::Stop(done))
            .await
            .context("the swarm task is gone")?;
        removed.await.context("the swarm task is gone")?;
        if let Some(swarm) = self.swarm.take() {
            swarm.abort();
            // The swarm (and its listener) is gone once the aborted task ends.
            let _ = swarm.await;
        }
        let stopped = Stopped {
            keypair: self.keypair.clone(),
            net: self.net,
            address: self.address.clone(),
            blocks: Arc::clone(&self.blocks),
            store: self.store.clone(),
        };
        drop(self);
        Ok(stopped)
    }
}

/// What is left of a stopped node.
pub struct Stopped {
    pub keypair: Keypair,
    pub net: Net,
    pub address: Multiaddr,
    pub blocks: Arc<Blocks>,
    pub store: TestStore,
}

impl Stopped {
    /// A spec for the same node again: same identity, address, blocks and store, an open gate.
    pub fn spec(self) -> Spec {
        Spec {
            keypair: self.keypair,
            listen: Some(self.address),
            blocks: self.blocks,
            store: self.store,
            ..Spec::new(self.net)
        }
    }
}

/// Two started nodes on `net` that know each other's addresses, `AcceptAll` registered on both.
pub async fn pair(net: Net) -> anyhow::Result<(Node, Node)> {
    let a = Node::start(Spec::new(net), accept_all).await?;
    let b = Node::start(Spec::new(net), accept_all).await?;
    a.learn(&b);
    b.learn(&a);
    Ok((a, b))
}

/// A node on `net` with `monitor` on and short network retries (an unreachable peer is given
/// up on within a second or so).
pub async fn monitored(net: Net, monitor: MonitorConfig) -> anyhow::Result<Node> {
    let spec = Spec {
        config: Config::default().with_monitor(Some(monitor)),
        network: NetworkConfig::default()
            .with_retries(Duration::from_millis(50), Duration::from_millis(200), 3, 2)
            .with_timeouts(Duration::from_secs(1), Duration::from_secs(1)),
        ..Spec::new(net)
    };
    Node::start(spec, accept_all).await
}

/// A monitor that restarts `debounce` after the last error, at most three in a row, 500 ms
/// apart; with a no-progress window of 3 s (long enough that a loaded machine does not stall a
/// transfer before a cut) and accept and complete timeouts beyond a test's run time.
pub fn restarting_monitor(debounce: Duration) -> MonitorConfig {
    MonitorConfig::default()
        .with_restart_timing(debounce, Duration::from_millis(500))
        .with_max_consecutive_restarts(3)
        .with_accept_timeout(Some(Duration::from_secs(10)))
        .with_complete_timeout(Some(Duration::from_secs(10)))
        .with_no_progress_window(Some(Duration::from_secs(3)))
}

/// Opens a pull (from `b` by `a`) or a push (from `a` to `b`) of `dag`, with a `TestVoucher`
/// of `voucher`.
pub fn open(a: &Node, b: &Node, pull: bool, voucher: &str, dag: &Dag) -> anyhow::Result<ChannelId> {
    let voucher = TestVoucher(voucher.into());
    Ok(if pull {
        a.manager
            .open_pull(b.id(), &voucher, dag.root, everything())?
    } else {
        a.manager
            .open_push(b.id(), &voucher, dag.root, everything())?
    })
}

/// Waits until `channel`, a pull (from `b` by `a`) or a push (from `a` to `b`) of `dag`,
/// completes at `a`, then at `b`; checks with [`ensure_whole`] that both ends count it exactly
/// and the data receiver holds it.
pub async fn ensure_completed(
    a: &Node,
    b: &Node,
    channel: &ChannelId,
    pull: bool,
    dag: &Dag,
) -> anyhow::Result<()> {
    let at_a = until_status(&a.manager, channel, ChannelStatus::Completed).await?;
    let at_b = until_status(&b.manager, channel, ChannelStatus::Completed).await?;
    let (sent, received, receiver) = if pull {
        (at_b, at_a, a)
    } else {
        (at_a, at_b, b)
    };
    ensure_whole(dag, &sent, &received, &receiver.blocks).await
}

/// Closes every connection between `a` and `b` (from `a`'s side if `a_closes`, else from
/// `b`'s) and waits until neither has one open.
pub async fn cut(a: &Node, b: &Node, a_closes: bool) -> anyhow::Result<()> {
    if a_closes {
        a.disconnect(b).await?;
    } else {
        b.disconnect(a).await?;
    }
    b.until_connections(|c| c.open == 0).await?;
    a.until_connections(|c| c.open == 0).await?;
    Ok(())
}

/// Registers `AcceptAll` for `TestVoucher`.
pub fn accept_all(manager: &Mgr) -> anyhow::Result<()> {
    manager.register_voucher_type(AcceptAll)?;
    Ok(())
}

/// Makes `swarm` listen on `address`; returns the listener and the address it got, within
/// [`PATIENCE`].
pub async fn listen_on<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    address: Multiaddr,
) -> anyhow::Result<(ListenerId, Multiaddr)> {
    let listener = swarm.listen_on(address)?;
    let address = tokio::time::timeout(PATIENCE, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .context("no listen address")?;
    Ok((listener, address))
}

/// Makes `swarm` listen on `address` (a multiaddr's text) and returns the address it got.
pub async fn listen<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    address: &str,
) -> anyhow::Result<Multiaddr> {
    let (_, address) = listen_on(swarm, address.parse()?).await?;
    Ok(address)
}

/// Dials `address` and polls `swarm` until its connection to `target` is up, within
/// [`PATIENCE`].
pub async fn dial<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    target: libp2p::PeerId,
    address: Multiaddr,
) -> anyhow::Result<()> {
    swarm.dial(address)?;
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                swarm.select_next_some().await
                && peer_id == target
            {
                return;
            }
        }
    })
    .await
    .with_context(|| format!("connecting to {target}"))
}

/// Polls `swarm` in a task of its own until the task is aborted.
pub fn run<B>(mut swarm: Swarm<B>) -> tokio::task::JoinHandle<()>
where
    B: NetworkBehaviour + Send + 'static,
    Swarm<B>: Send,
{
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    })
}

/// Two `build_swarm` swarms with fresh identities, listening on the memory transport, each
/// knowing the other's address.
pub async fn swarm_pair() -> anyhow::Result<[Swarm<NodeBehaviour>; 2]> {
    let mut a = build_swarm(Keypair::generate_ed25519(), SwarmConfig::default())?;
    let mut b = build_swarm(Keypair::generate_ed25519(), SwarmConfig::default())?;
    let a_address = listen(&mut a, "/memory/0").await?;
    let b_address = listen(&mut b, "/memory/0").await?;
    let (a_id, b_id) = (*a.local_peer_id(), *b.local_peer_id());
    a.add_peer_address(b_id, b_address);
    b.add_peer_address(a_id, a_address);
    Ok([a, b])
}

/// The layers of a manager on a swarm, but its block store: each one's configuration, and the
/// channel store.
pub struct Layers {
    /// The graphsync node's configuration.
    pub graphsync: graphsync::network::Config,
    /// The data-transfer network's configuration.
    pub network: NetworkConfig,
    /// The channel store.
    pub store: TestStore,
    /// The manager's configuration.
    pub config: Config,
}

impl Default for Layers {
    /// Default configurations and a `MemStore`.
    fn default() -> Self {
        Layers {
            graphsync: graphsync::network::Config::default(),
            network: NetworkConfig::default(),
            store: TestStore::Mem(datatransfer::MemStore::new()),
            config: Config::default(),
        }
    }
}

/// A manager over `swarm`: a graphsync node serving `blocks` under a `GraphsyncTransport`, and
/// a `Libp2pNetwork`, made as `layers` says, with registrations done by `register`, started.
/// The swarm is still to be driven.
pub async fn manager_on(
    swarm: &Swarm<NodeBehaviour>,
    blocks: impl Blockstore + 'static,
    layers: Layers,
    register: impl FnOnce(&Mgr) -> anyhow::Result<()>,
) -> anyhow::Result<Mgr> {
    let Layers {
        graphsync,
        network,
        store,
        config,
    } = layers;
    let peer_id = *swarm.local_peer_id();
    let node =
        graphsync::network::Node::spawn(&swarm.behaviour().graphsync, Arc::new(blocks), graphsync)?;
    let transport =
        GraphsyncTransport::new(node, peer_id, datatransfer_graphsync::Config::default());
    let network = Libp2pNetwork::for_swarm(swarm, network)?;
    let manager = Manager::new(transport, network, store, config);
    register(&manager)?;
    manager.start().await.context("starting the manager")?;
    Ok(manager)
}

/// What a test asks of a node's swarm task.
enum Command {
    /// Close every connection to the peer.
    Disconnect(libp2p::PeerId),
    /// Remove the listener, then answer.
    Stop(oneshot::Sender<()>),
}

/// Drives `swarm` until aborted: counts connections, and carries out `commands`.
async fn drive(
    mut swarm: Swarm<NodeBehaviour>,
    listener: ListenerId,
    mut commands: mpsc::Receiver<Command>,
    connections: watch::Sender<Connections>,
) {
    loop {
        tokio::select! {
            // Once the node is gone (no more commands) the branch is off; the task is aborted.
            Some(command) = commands.recv() => match command {
                Command::Disconnect(peer) => {
                    // Not connected is fine: there is nothing to close.
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Command::Stop(done) => {
                    swarm.remove_listener(listener);
                    let _ = done.send(());
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { endpoint, .. } => {
                    connections.send_modify(|c| {
                        c.open += 1;
                        if endpoint.is_dialer() {
                            c.dialed += 1;
                        }
                    });
                }
                SwarmEvent::ConnectionClosed { .. } => {
                    connections.send_modify(|c| {
                        c.open = c.open.saturating_sub(1);
                        c.closed += 1;
                    });
                }
                _ => {}
            },
        }
    }
}

/// The bytes of the first `blocks` blocks of `dag` in traversal order (the root, then the
/// leaves in link order).
pub fn prefix_bytes(dag: &Dag, blocks: u64) -> u64 {
    dag.blocks
        .iter()
        .take(usize::try_from(blocks).unwrap_or(usize::MAX))
        .map(|(_, b)| b.len() as u64)
        .sum()
}

/// Checks that the data sender `sent` and the data receiver `received` of a finished transfer
/// of `dag` both count it exactly, and that `receiver_blocks` holds all of it.
pub async fn ensure_whole(
    dag: &Dag,
    sent: &ChannelState,
    received: &ChannelState,
    receiver_blocks: &Blocks,
) -> anyhow::Result<()> {
    let (bytes, blocks) = (dag.total_bytes(), dag.block_count());
    ensure!(
        sent.sent == bytes && sent.sent_blocks_total == blocks,
        "sent {} bytes in {} blocks, not {bytes} in {blocks}",
        sent.sent,
        sent.sent_blocks_total
    );
    ensure!(
        received.received == bytes && received.received_blocks_total == blocks,
        "received {} bytes in {} blocks, not {bytes} in {blocks}",
        received.received,
        received.received_blocks_total
    );
    ensure!(dag.is_in(receiver_blocks).await?, "a block is missing");
    Ok(())
}

/// The libp2p peer id of a data-transfer peer id.
pub fn to_libp2p(peer: &datatransfer::PeerId) -> anyhow::Result<libp2p::PeerId> {
    Ok(datatransfer::libp2p::to_libp2p(peer)?)
}
