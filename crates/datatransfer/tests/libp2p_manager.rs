//! The Manager over `Libp2pNetwork` (its messages on `/fil/datatransfer/1.2.0` between real
//! swarms on the memory transport) with the in-memory transport carrying the data: the peer ids
//! line up because the hub's peers are given the swarms' libp2p ids.

// The managers here are over the in-memory transport with libp2p messages: only the swarm
// helpers of `net` apply.
#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer::libp2p::{Libp2pNetwork, NetworkConfig};
use datatransfer::{
    ChannelStatus, Config, Decision, Manager, Network, NetworkError, PeerId, Request,
    RequestValidator, Voucher, VoucherError,
};
use datatransfer_message::Message;
use datatransfer_store::MemStore;
use datatransfer_transport::Receiver;
use datatransfer_transport::mem::{MemHub, MemTransport};
use ipld_dagcbor::Node;
use multihash_codetable::{Code, MultihashDigest};
use net::{run, swarm_pair};

const PATIENCE: Duration = Duration::from_secs(20);

type Blocks = InMemoryBlockstore<64>;
type Mgr = Manager<MemTransport<Blocks>, Counted>;

/// A `Libp2pNetwork` that counts the messages given to it, to show they went over libp2p.
#[derive(Clone)]
struct Counted {
    inner: Libp2pNetwork,
    sent: Arc<AtomicUsize>,
}

impl Network for Counted {
    fn self_peer(&self) -> PeerId {
        self.inner.self_peer()
    }

    fn set_receiver(&self, receiver: Arc<dyn Receiver>) -> Result<(), NetworkError> {
        self.inner.set_receiver(receiver)
    }

    async fn send_message(&self, peer: PeerId, message: Message) -> Result<(), NetworkError> {
        // Counted before it goes: the peer may act on it before `send_message` returns.
        self.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.send_message(peer, message).await
    }

    async fn connect(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.inner.connect(peer).await
    }

    fn protect(&self, peer: &PeerId, tag: &str) {
        self.inner.protect(peer, tag);
    }

    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        self.inner.unprotect(peer, tag)
    }
}

struct Ticket;

impl Voucher for Ticket {
    const TYPE: &'static str = "test/ticket";

    fn to_node(&self) -> Node {
        Node::text("ticket")
    }

    fn from_node(_: &Node) -> Result<Self, VoucherError> {
        Ok(Ticket)
    }
}

struct AcceptAll;

impl RequestValidator<Ticket> for AcceptAll {
    fn validate_push(&self, _: &Request<'_, Ticket>) -> Decision {
        Decision::accept()
    }

    fn validate_pull(&self, _: &Request<'_, Ticket>) -> Decision {
        Decision::accept()
    }
}

/// One block of `size` bytes and its CID.
fn block(size: usize, salt: u8) -> anyhow::Result<(Cid, Vec<u8>)> {
    let data = ipld_dagcbor::to_vec(&Node::Bytes(vec![salt; size].into()))?;
    Ok((Cid::new_v1(0x71, Code::Sha2_256.digest(&data)), data))
}

struct Nodes {
    managers: Vec<Mgr>,
    /// Messages each node sent over libp2p.
    sent: Vec<Arc<AtomicUsize>>,
    stores: Vec<Arc<Blocks>>,
    swarms: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for swarm in &self.swarms {
            swarm.abort();
        }
    }
}

/// Two managers whose networks are libp2p swarms that know each other's addresses.
async fn nodes() -> anyhow::Result<Nodes> {
    let hub = MemHub::new(Default::default(), |task| {
        tokio::spawn(task);
    });
    let mut nodes = Nodes {
        managers: Vec::new(),
        sent: Vec::new(),
        stores: Vec::new(),
        swarms: Vec::new(),
    };
    for swarm in swarm_pair().await? {
        let network = Counted {
            inner: Libp2pNetwork::for_swarm(&swarm, NetworkConfig::default())?,
            sent: Arc::new(AtomicUsize::new(0)),
        };
        nodes.sent.push(Arc::clone(&network.sent));
        let store = Arc::new(Blocks::new());
        let (transport, _) = hub.add_peer(network.self_peer(), Arc::clone(&store))?;
        let manager = Manager::new(transport, network, MemStore::new(), Config::default());
        manager.register_voucher_type(AcceptAll)?;
        manager.start().await?;
        nodes.managers.push(manager);
        nodes.stores.push(store);
        nodes.swarms.push(run(swarm));
    }
    Ok(nodes)
}

async fn wait_completed(manager: &Mgr, channel: &datatransfer::ChannelId) -> anyhow::Result<()> {
    let mut events = manager.subscribe();
    tokio::time::timeout(PATIENCE, async {
        while manager.status(channel) != ChannelStatus::Completed {
            events.recv().await?;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .context("the channel did not complete")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_pull_over_libp2p_network_completes() -> anyhow::Result<()> {
    let nodes = nodes().await?;
    let (client, provider) = (&nodes.managers[0], &nodes.managers[1]);
    let (root, data) = block(3_000, 1)?;
    nodes.stores[1].put_keyed(&root, &data).await?;

    let everything = ipld_selector::Selector::match_point().to_node();
    let channel = client.open_pull(provider.self_peer().clone(), &Ticket, root, everything)?;
    wait_completed(client, &channel).await?;
    wait_completed(provider, &channel).await?;
    assert_eq!(client.channel_state(&channel)?.received, data.len() as u64);
    assert_eq!(nodes.stores[0].get(&root).await?, Some(data));
    // In a pull, the request and the accept ride with the data (the in-memory transport, as
    // graphsync in Go); the responder's Complete goes over libp2p (spec §4.3).
    assert!(
        nodes.sent[1].load(Ordering::SeqCst) >= 1,
        "no message from the responder"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_push_over_libp2p_network_completes() -> anyhow::Result<()> {
    let nodes = nodes().await?;
    let (client, provider) = (&nodes.managers[0], &nodes.managers[1]);
    let (root, data) = block(2_000, 2)?;
    nodes.stores[0].put_keyed(&root, &data).await?;

    let everything = ipld_selector::Selector::match_point().to_node();
    let channel = client.open_push(provider.self_peer().clone(), &Ticket, root, everything)?;
    wait_completed(client, &channel).await?;
    wait_completed(provider, &channel).await?;
    assert_eq!(
        provider.channel_state(&channel)?.received,
        data.len() as u64
    );
    assert_eq!(nodes.stores[1].get(&root).await?, Some(data));
    // The push request went over libp2p (Go sends it on `/fil/datatransfer/1.2.0`), and the
    // responder's answer too.
    assert!(
        nodes.sent[0].load(Ordering::SeqCst) >= 1,
        "no message from the initiator"
    );
    assert!(
        nodes.sent[1].load(Ordering::SeqCst) >= 1,
        "no message from the responder"
    );
    Ok(())
}
