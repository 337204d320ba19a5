//! The whole stack end to end: two Managers, each on its own swarm from `build_swarm` (libp2p's
//! memory transport), with their messages on `/fil/datatransfer/1.2.0` (`Libp2pNetwork`) and
//! their data over graphsync (`GraphsyncTransport` on the swarm's graphsync node).

// The managers here are over graphsync and libp2p, so the hub-backed scenarios do not apply.
#[allow(unused_macros)]
mod common;

use std::sync::Arc;

use anyhow::Context;
use common::{AcceptAll, Blocks, Dag, PATIENCE, TestVoucher, everything};
use datatransfer::libp2p::{Libp2pNetwork, NetworkConfig, NodeBehaviour, SwarmConfig, build_swarm};
use datatransfer::{ChannelId, ChannelState, ChannelStatus, Config, Manager, SubscriptionError};
use datatransfer_graphsync::GraphsyncTransport;
use datatransfer_store::MemStore;
use futures::StreamExt;
use libp2p::Swarm;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;

type Mgr = Manager<GraphsyncTransport, Libp2pNetwork>;

/// One node: its manager and the block store its graphsync node serves and writes.
struct Side {
    manager: Mgr,
    blocks: Arc<Blocks>,
}

/// Two nodes that know each other's addresses; dropping it stops their swarms.
struct Pair {
    sides: Vec<Side>,
    swarms: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for swarm in &self.swarms {
            swarm.abort();
        }
    }
}

async fn listen(swarm: &mut Swarm<NodeBehaviour>) -> anyhow::Result<libp2p::Multiaddr> {
    swarm.listen_on("/memory/0".parse()?)?;
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .context("no listen address")
}

/// Two started managers over graphsync and libp2p, `AcceptAll` registered on both.
async fn pair() -> anyhow::Result<Pair> {
    let mut swarms = Vec::new();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let mut swarm = build_swarm(Keypair::generate_ed25519(), SwarmConfig::default())?;
        addresses.push((*swarm.local_peer_id(), listen(&mut swarm).await?));
        swarms.push(swarm);
    }
    let mut pair = Pair {
        sides: Vec::new(),
        swarms: Vec::new(),
    };
    for (n, mut swarm) in swarms.into_iter().enumerate() {
        let (peer, address) = addresses[1 - n].clone();
        swarm.add_peer_address(peer, address);
        let blocks = Arc::new(Blocks::new());
        let node = graphsync::network::Node::spawn(
            &swarm.behaviour().graphsync,
            Arc::clone(&blocks),
            graphsync::network::Config::default(),
        )?;
        let transport = GraphsyncTransport::new(
            node,
            *swarm.local_peer_id(),
            datatransfer_graphsync::Config::default(),
        );
        let network = Libp2pNetwork::for_swarm(&swarm, NetworkConfig::default())?;
        let manager = Manager::new(transport, network, MemStore::new(), Config::default());
        manager.register_voucher_type(AcceptAll)?;
        manager.start().await?;
        pair.sides.push(Side { manager, blocks });
        pair.swarms.push(tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        }));
    }
    Ok(pair)
}

/// Waits, at most [`PATIENCE`], until `channel` has `status` at `manager`; fails early when it
/// ends otherwise.
async fn until_status(
    manager: &Mgr,
    channel: &ChannelId,
    status: ChannelStatus,
) -> anyhow::Result<ChannelState> {
    let mut events = manager.subscribe_channel(channel.clone());
    let wait = async {
        loop {
            if let Ok(state) = manager.channel_state(channel) {
                if state.status == status {
                    return Ok(state);
                }
                anyhow::ensure!(
                    !state.status.is_terminal(),
                    "{channel} ended {} ({:?}), not {status}",
                    state.status,
                    state.message
                );
            }
            match events.recv().await {
                Ok(_) | Err(SubscriptionError::Lagged { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .with_context(|| {
            format!(
                "waiting for {channel} to be {status}; it is {}",
                manager.status(channel)
            )
        })?
}

/// The multi-block DAG of these tests: a root and eight leaves of 4 KiB.
fn dag() -> anyhow::Result<Dag> {
    Dag::new(8, 4096, 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_dag_over_graphsync_and_libp2p_completes_on_both_ends() -> anyhow::Result<()> {
    let pair = pair().await?;
    let (client, provider) = (&pair.sides[0], &pair.sides[1]);
    let dag = dag()?;
    dag.load_into(&provider.blocks).await?;

    let channel = client.manager.open_pull(
        provider.manager.self_peer().clone(),
        &TestVoucher("pull".into()),
        dag.root,
        everything(),
    )?;
    let received = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let sent = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;

    assert!(dag.is_in(&client.blocks).await?, "a block is missing");
    assert_eq!(received.received, dag.total_bytes());
    assert_eq!(received.received_blocks_total, dag.block_count());
    assert_eq!(sent.sent, dag.total_bytes());
    assert_eq!(sent.sent_blocks_total, dag.block_count());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_a_dag_over_graphsync_and_libp2p_completes_on_both_ends() -> anyhow::Result<()> {
    let pair = pair().await?;
    let (client, provider) = (&pair.sides[0], &pair.sides[1]);
    let dag = dag()?;
    dag.load_into(&client.blocks).await?;

    let channel = client.manager.open_push(
        provider.manager.self_peer().clone(),
        &TestVoucher("push".into()),
        dag.root,
        everything(),
    )?;
    let sent = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let received = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;

    assert!(dag.is_in(&provider.blocks).await?, "a block is missing");
    assert_eq!(received.received, dag.total_bytes());
    assert_eq!(received.received_blocks_total, dag.block_count());
    assert_eq!(sent.sent, dag.total_bytes());
    assert_eq!(sent.sent_blocks_total, dag.block_count());
    Ok(())
}
