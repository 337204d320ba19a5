//! The reader task of an inbound Graphsync stream ends with the stream's connection: a raw
//! libp2p-stream peer opens a stream to a [`Node`] and leaves it open, then the connection is
//! closed (by the peer, or by the node's side), and the node's task count returns to what it
//! was before the connection. Before the fix, when the node's side closed the connection
//! (`Swarm::disconnect_peer_id`), the streams it had accepted never reported an end and their
//! readers waited forever: one task leaked per cut connection (seen in datatransfer's
//! `libp2p_churn` test as a task per forced disconnect).

use std::sync::Arc;
use std::time::Duration;

use blockstore::InMemoryBlockstore;
use futures::StreamExt;
use graphsync::network::{Behaviour, Config, Node};
use graphsync::protocol::PROTOCOL_V2;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identity, noise, yamux};
use tokio::sync::{mpsc, oneshot};

/// Upper bound for waiting on the network; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn new_swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
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

/// Drives `swarm`; a message on `cut` closes its connections to that peer.
fn drive<B: NetworkBehaviour + Send + 'static>(
    mut swarm: Swarm<B>,
    mut cut: mpsc::Receiver<(PeerId, oneshot::Sender<()>)>,
) where
    B::ToSwarm: Send,
{
    tokio::spawn(async move {
        let mut waiting = Vec::new();
        loop {
            tokio::select! {
                event = swarm.select_next_some() => {
                    if let SwarmEvent::ConnectionClosed { num_established: 0, .. } = event {
                        for reply in waiting.drain(..) {
                            let _: Result<(), ()> = oneshot::Sender::send(reply, ());
                        }
                    }
                }
                Some((peer, reply)) = cut.recv() => {
                    if swarm.disconnect_peer_id(peer).is_ok() {
                        waiting.push(reply);
                    } else {
                        let _ = reply.send(());
                    }
                }
            }
        }
    });
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn until_tasks(at_most: usize, what: &str) {
    let outcome = tokio::time::timeout(PATIENCE, async {
        while alive_tasks() > at_most {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "{what}: {} tasks alive, expected at most {at_most}",
        alive_tasks()
    );
}

/// A node, and a raw peer connected to it holding an open Graphsync stream; then the
/// connection is cut from the raw peer's side (`from_node = false`) or the node's.
async fn reader_ends_with_its_connection(from_node: bool) {
    let baseline = alive_tasks();
    let behaviour = Behaviour::new();
    let node = Node::spawn(
        &behaviour,
        Arc::new(InMemoryBlockstore::<64>::new()),
        Config::default(),
    )
    .expect("the node starts");
    let mut node_swarm = new_swarm(behaviour);
    node_swarm
        .listen_on("/memory/0".parse().expect("a memory address"))
        .expect("listens");
    let address: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = node_swarm.select_next_some().await {
            break address;
        }
    };
    let node_id = *node_swarm.local_peer_id();
    let raw = libp2p_stream::Behaviour::new();
    let mut control = raw.new_control();
    let mut raw_swarm = new_swarm(raw);
    let raw_id = *raw_swarm.local_peer_id();
    let (cut_node, cut_node_rx) = mpsc::channel(1);
    let (cut_raw, cut_raw_rx) = mpsc::channel(1);
    drive(node_swarm, cut_node_rx);
    raw_swarm.dial(address).expect("dials");
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = raw_swarm.select_next_some().await {
                return;
            }
        }
    })
    .await
    .expect("the raw peer connects");
    drive(raw_swarm, cut_raw_rx);
    // The driver, the two swarms.
    let idle = baseline + 3;

    let stream = tokio::time::timeout(PATIENCE, control.open_stream(node_id, PROTOCOL_V2))
        .await
        .expect("the stream opens in time")
        .expect("the stream opens");
    // Connected with a stream open: the reader task runs, with the connection tasks.
    tokio::time::timeout(PATIENCE, async {
        while alive_tasks() < idle + 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the connection and the reader start");

    let (reply, cut) = oneshot::channel();
    let (sender, peer) = if from_node {
        (&cut_node, raw_id)
    } else {
        (&cut_raw, node_id)
    };
    sender.send((peer, reply)).await.expect("the swarm runs");
    tokio::time::timeout(PATIENCE, cut)
        .await
        .expect("the connection closes in time")
        .expect("the swarm answers");
    until_tasks(idle, "after the cut").await;
    // The raw peer's end of the stream is still held here, unread and unclosed.
    drop(stream);
    drop(node);
}

#[tokio::test]
async fn a_stream_reader_ends_when_the_peer_cuts_the_connection() {
    reader_ends_with_its_connection(false).await;
}

#[tokio::test]
async fn a_stream_reader_ends_when_the_node_cuts_the_connection() {
    reader_ends_with_its_connection(true).await;
}
