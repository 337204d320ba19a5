//! Two graphsync nodes on libp2p's memory transport, each with its own block store, and a
//! `GraphsyncTransport` on each.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::CidGeneric;
use datatransfer_graphsync::{Config as TransportConfig, GraphsyncTransport};
use graphsync::network::{Behaviour, Config, Node};
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, Transport as _, identity, noise, yamux};
use tokio::task::JoinHandle;

/// How long any wait of these tests may take.
pub const BOUND: Duration = Duration::from_secs(20);

/// Fails the test when `future` takes longer than [`BOUND`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A swarm with a graphsync behaviour on the memory transport.
pub fn memory_swarm() -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                .multiplex(yamux::Config::default())
        })
        .expect("the memory transport builds")
        .with_behaviour(|_| Behaviour::new())
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Makes `listener` listen on a fresh memory address and `dialer` connect to it.
pub async fn connect(listener: &mut Swarm<Behaviour>, dialer: &mut Swarm<Behaviour>) {
    listener
        .listen_on("/memory/0".parse::<Multiaddr>().expect("an address"))
        .expect("listening");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = listener.select_next_some().await {
            break address;
        }
    };
    dialer.dial(address).expect("dialing the listener");
    let (mut dialer_up, mut listener_up) = (false, false);
    while !(dialer_up && listener_up) {
        tokio::select! {
            event = dialer.select_next_some() => {
                dialer_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
            event = listener.select_next_some() => {
                listener_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
        }
    }
}

/// Drives a swarm in its own task; aborting the task drops the swarm and its connections.
pub fn drive(mut swarm: Swarm<Behaviour>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    })
}

/// The graphsync node settings of these tests: unreachable peers are given up quickly.
pub fn node_config() -> Config {
    Config {
        open_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A block store whose reads take `delay`, as a disk would: a graphsync responder reading it
/// sends one block per `delay`, so a requester's pause or cancel reaches it before it has
/// sent the whole (small) test DAG. Without it, the responder sends every block of the
/// conformance DAG in well under a millisecond, before any pause can land (spec §4.2: Go's
/// responder completes in that race too).
pub struct Slow<B> {
    inner: Arc<B>,
    delay: Duration,
}

impl<B> Slow<B> {
    pub fn new(inner: Arc<B>, delay: Duration) -> Self {
        Slow { inner, delay }
    }
}

impl<B: Blockstore> Blockstore for Slow<B> {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        tokio::time::sleep(self.delay).await;
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

/// The per-block read delay of the data sender's store in these tests.
pub const READ_DELAY: Duration = Duration::from_millis(10);

/// One side: its transport, node, libp2p id and swarm task.
pub struct Side {
    pub transport: GraphsyncTransport,
    pub node: Node,
    pub peer: libp2p::PeerId,
    pub swarm: JoinHandle<()>,
}

/// Two connected sides: the data sender serves `sender_store`, the data receiver writes
/// `receiver_store`.
pub async fn sides(
    sender_store: Arc<InMemoryBlockstore<64>>,
    receiver_store: Arc<InMemoryBlockstore<64>>,
) -> (Side, Side) {
    let mut sender_swarm = memory_swarm();
    let mut receiver_swarm = memory_swarm();
    connect(&mut sender_swarm, &mut receiver_swarm).await;
    fn side<B: Blockstore + 'static>(swarm: Swarm<Behaviour>, store: Arc<B>) -> Side {
        let node = Node::spawn(swarm.behaviour(), store, node_config()).expect("the node starts");
        let peer = *swarm.local_peer_id();
        let transport = GraphsyncTransport::new(node.clone(), peer, TransportConfig::default());
        Side {
            transport,
            node,
            peer,
            swarm: drive(swarm),
        }
    }
    (
        side(sender_swarm, Arc::new(Slow::new(sender_store, READ_DELAY))),
        side(receiver_swarm, receiver_store),
    )
}

/// Swarm tasks by peer, for partitions.
#[derive(Default)]
pub struct Swarms(Mutex<HashMap<libp2p::PeerId, JoinHandle<()>>>);

impl Swarms {
    pub fn keep(&self, peer: libp2p::PeerId, task: JoinHandle<()>) {
        self.0.lock().expect("not poisoned").insert(peer, task);
    }

    /// Drops the swarm of `peer`: its connections close and no one can reach it again.
    pub fn stop(&self, peer: &libp2p::PeerId) {
        if let Some(task) = self.0.lock().expect("not poisoned").remove(peer) {
            task.abort();
        }
    }
}
