//! Messages queued for a connection that closes (issue 7 §3): they fail, and are never
//! delivered later on a new connection, not even when the node knows the peer's address and
//! could dial it again.
//!
//! The node sends two New requests to a raw libp2p-stream peer that accepts the node's first
//! Graphsync stream and never reads it: the first request (with a 1 MiB extension) fills the
//! stream's window and blocks the node's writer, the second waits behind it. Then the peer
//! closes the connection. Both requests must end with [`NodeError::Unreachable`], the node
//! must not dial the peer again, and the peer must receive no further stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use blockstore::InMemoryBlockstore;
use cid::Cid;
use futures::{AsyncReadExt, StreamExt};
use graphsync::Extensions;
use graphsync::network::{Behaviour, Config, Node, NodeError};
use graphsync::protocol::PROTOCOL_V2;
use ipld_dagcbor::Node as Ipld;
use ipld_selector::Selector;
use libp2p::core::transport::{MemoryTransport, PortUse};
use libp2p::core::upgrade::Version;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, SwarmEvent, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, Swarm, Transport, identity, noise, yamux};
use multihash_codetable::{Code, MultihashDigest};
use tokio::sync::{mpsc, watch};

/// Upper bound for waiting on the network; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The node's Graphsync behaviour plus an address book: the swarm can dial a peer by id, as a
/// full node's swarm can (identify, a peer store), so a writer that dials is not saved by a
/// missing address.
struct Dialer {
    graphsync: Behaviour,
    addresses: HashMap<PeerId, Multiaddr>,
}

impl NetworkBehaviour for Dialer {
    type ConnectionHandler = THandler<Behaviour>;
    type ToSwarm = ();

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.graphsync
            .handle_established_inbound_connection(connection, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(peer
            .and_then(|peer| self.addresses.get(&peer).cloned())
            .into_iter()
            .collect())
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        address: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.graphsync
            .handle_established_outbound_connection(connection, peer, address, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.graphsync.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.graphsync
            .on_connection_handler_event(peer, connection, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<(), THandlerInEvent<Self>>> {
        self.graphsync.poll(cx)
    }
}

/// A swarm on the memory transport carrying `behaviour`.
fn swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                .multiplex(yamux::Config::default())
        })
        .expect("the memory transport builds")
        .with_behaviour(|_| behaviour)
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Connections a swarm task has seen established: in all, and dialed by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    established: u64,
    dialed: u64,
}

/// Drives `swarm`, counting connections; a peer id sent on `cut` is disconnected.
fn drive<B: NetworkBehaviour + Send + 'static>(
    mut swarm: Swarm<B>,
    mut cut: mpsc::Receiver<PeerId>,
) -> (watch::Receiver<Seen>, tokio::task::JoinHandle<()>) {
    let (seen_tx, seen) = watch::channel(Seen::default());
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(peer) = cut.recv() => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                event = swarm.select_next_some() => {
                    if let SwarmEvent::ConnectionEstablished { endpoint, .. } = event {
                        seen_tx.send_modify(|seen| {
                            seen.established += 1;
                            if endpoint.is_dialer() {
                                seen.dialed += 1;
                            }
                        });
                    }
                }
            }
        }
    });
    (seen, task)
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A CID nobody has: the requests are never answered anyway.
fn some_cid() -> Cid {
    Cid::new_v1(0x55, Code::Sha2_256.digest(b"never served"))
}

#[tokio::test]
async fn requests_queued_before_a_disconnect_fail_and_are_never_sent_on_a_new_connection() {
    // The raw peer: accepts Graphsync 2.0.0 streams; holds the first one unread, reads any
    // later one to its end and counts it.
    let mut raw = swarm(libp2p_stream::Behaviour::new());
    let mut incoming = raw
        .behaviour()
        .new_control()
        .accept(PROTOCOL_V2)
        .expect("the raw peer accepts graphsync streams");
    raw.listen_on("/memory/0".parse().expect("a memory address"))
        .expect("listening on memory");
    let raw_address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = raw.select_next_some().await {
            break address;
        }
    };
    let raw_id = *raw.local_peer_id();

    let node_swarm = swarm(Dialer {
        graphsync: Behaviour::new(),
        addresses: HashMap::from([(raw_id, raw_address)]),
    });
    let node = Node::spawn(
        &node_swarm.behaviour().graphsync,
        Arc::new(InMemoryBlockstore::<64>::new()),
        Config::default(),
    )
    .expect("the node starts");
    let (_node_cut, node_cut_rx) = mpsc::channel(1);
    let (node_seen, _node_task) = drive(node_swarm, node_cut_rx);
    let (raw_cut, raw_cut_rx) = mpsc::channel(1);
    let (raw_seen, _raw_task) = drive(raw, raw_cut_rx);

    // The first request (a 1 MiB extension, beyond the stream's 256 KiB window) blocks the
    // node's writer on the stream the raw peer never reads. It dials the peer: the node has no
    // connection yet.
    let big = Extensions::new().with("test/padding", Some(Ipld::Bytes(vec![7; 1 << 20].into())));
    let first = node
        .request(raw_id, some_cid(), Selector::explore_all_recursively(), big)
        .await
        .expect("the first request starts");
    let (node_id, held) = bounded("the node's first stream", incoming.next())
        .await
        .expect("the raw peer's acceptor runs");
    // The second request waits behind the first in the writer.
    let second = node
        .request(
            raw_id,
            some_cid(),
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the second request starts");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        *node_seen.borrow(),
        Seen {
            established: 1,
            dialed: 1
        }
    );

    // The raw peer closes the connection, and reads every later stream it gets.
    raw_cut.send(node_id).await.expect("the raw swarm runs");
    let later = Arc::new(AtomicU64::new(0));
    let later_bytes = Arc::new(AtomicU64::new(0));
    let reader = {
        let (later, later_bytes) = (Arc::clone(&later), Arc::clone(&later_bytes));
        tokio::spawn(async move {
            drop(held);
            while let Some((_, mut stream)) = incoming.next().await {
                later.fetch_add(1, Ordering::SeqCst);
                let mut bytes = Vec::new();
                let _ = stream.read_to_end(&mut bytes).await;
                later_bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
        })
    };

    for (name, handle) in [("first", first), ("second", second)] {
        let outcome = bounded("a queued request to end", handle.outcome()).await;
        assert!(
            matches!(outcome, Err(NodeError::Unreachable { peer, .. }) if peer == raw_id),
            "the {name} request ends unreachable: {outcome:?}"
        );
    }
    // Time for a dial or a stream that should not happen to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *node_seen.borrow(),
        Seen {
            established: 1,
            dialed: 1
        },
        "the node dialed the peer again"
    );
    assert_eq!(raw_seen.borrow().established, 1, "a new connection came up");
    assert_eq!(
        (
            later.load(Ordering::SeqCst),
            later_bytes.load(Ordering::SeqCst)
        ),
        (0, 0),
        "a stream reached the peer after the disconnect"
    );
    reader.abort();
}
