//! The Manager's outbound queue is bounded for what peers cause (issue 7, "Bad input"): two
//! hostile peers flood a node with push requests while the node, sending to one peer at a
//! time here, is stuck on a send to a third peer that never answers (a frozen swarm), so
//! nothing the flood causes can go out. The transmits the flood queues stay within `Config::max_queued_per_peer` per peer
//! and `Config::max_queued_for_peers` in all; every further request is dropped unprocessed
//! with an `Event::MessageDropped` naming the bound, counted in `OutboundStats`; nothing
//! blocks or panics; once the stuck send gives up the queue drains and the node serves an
//! honest pull.

#![cfg(feature = "libp2p")]

#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::error::Error as StdError;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Dag, PATIENCE, TestVoucher, everything, until_status};
use datatransfer::libp2p::{NetworkConfig, PROTOCOL};
use datatransfer::{ChannelStatus, Config, Event, QueueScope, TransferId, Voucher};
use datatransfer_message::new_request;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{PeerId, Swarm, Transport, noise, yamux};
use net::{Net, Node, Spec, accept_all, dial, ensure_whole, run};

/// The bound per peer in this test.
const PER_PEER: usize = 8;
/// The bound for all peers together.
const IN_ALL: usize = 12;
/// Push requests each hostile peer sends.
const FLOOD: usize = 60;
/// How long the node's stuck send waits for the frozen peer.
const STUCK: Duration = Duration::from_secs(3);

/// A swarm with only libp2p-stream, on the memory transport, WITHOUT an executor: its
/// connections make progress only while the swarm itself is polled, so a swarm that is no
/// longer polled answers nothing (a peer that never reads).
fn raw_swarm() -> anyhow::Result<Swarm<libp2p_stream::Behaviour>> {
    let keypair = Keypair::generate_ed25519();
    let noise = noise::Config::new(&keypair)
        .map_err(|error| -> Box<dyn StdError + Send + Sync> { Box::new(error) })
        .map_err(|error| anyhow::anyhow!("noise: {error}"))?;
    let transport = MemoryTransport::default()
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .boxed();
    Ok(Swarm::new(
        transport,
        libp2p_stream::Behaviour::new(),
        keypair.public().to_peer_id(),
        libp2p::swarm::Config::without_executor()
            .with_idle_connection_timeout(Duration::from_secs(60)),
    ))
}

/// A hostile peer: connected to the node, its swarm polled in a task of its own.
struct Hostile {
    id: PeerId,
    control: libp2p_stream::Control,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hostile(node: &Node) -> anyhow::Result<Hostile> {
    let mut swarm = raw_swarm()?;
    let id = *swarm.local_peer_id();
    let control = swarm.behaviour().new_control();
    dial(&mut swarm, node.peer_id, node.address.clone())
        .await
        .context("connecting to the node")?;
    let task = run(swarm);
    Ok(Hostile { id, control, task })
}

impl Hostile {
    /// Sends `FLOOD` push requests, one stream each, each stream read to its end (the node
    /// closes it once it has read the request), so that every request reaches the node.
    async fn flood(&mut self, to: PeerId, first_id: u64) -> anyhow::Result<()> {
        let voucher = TestVoucher("flood".into()).to_node();
        for n in 0..FLOOD as u64 {
            let request = new_request(
                TransferId(first_id + n),
                false,
                TestVoucher::TYPE.into(),
                voucher.clone(),
                Dag::new(1, 10, 1)?.root,
                everything(),
            );
            let bytes = datatransfer_message::to_vec(&request.into())?;
            let mut stream = tokio::time::timeout(PATIENCE, self.control.open_stream(to, PROTOCOL))
                .await
                .context("opening a stream timed out")??;
            stream.write_all(&bytes).await?;
            stream.close().await?;
            let mut rest = Vec::new();
            tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
                .await
                .context("the node did not read a request")??;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_while_sends_are_stuck_is_bounded_per_peer_and_in_all() -> anyhow::Result<()> {
    let spec = Spec {
        // One peer sent to at a time, so that the stuck send holds every peer's transmits:
        // with more, only the frozen peer's would wait (tests/manager_order.rs).
        config: Config::default()
            .with_subscriber_capacity(4 * FLOOD)
            .with_max_channels_per_peer(2)
            .with_peer_queue_limits(PER_PEER, IN_ALL)
            .with_max_parallel_sends(1),
        network: NetworkConfig::default()
            .with_timeouts(STUCK, Duration::from_secs(2))
            .with_retries(Duration::from_millis(50), Duration::from_millis(50), 1, 1)
            .with_inbound_limits(16, 4 * FLOOD),
        ..Spec::new(Net::Memory)
    };
    let node = Node::start(spec, accept_all).await?;
    let mut events = node.manager.subscribe();

    // The frozen peer: connected, then never polled again. The node's push request to it
    // holds the node's outbound task for `STUCK`.
    let mut frozen = raw_swarm()?;
    let frozen_id = *frozen.local_peer_id();
    dial(&mut frozen, node.peer_id, node.address.clone())
        .await
        .context("connecting to the node")?;
    // Polled until the node has the connection too, so that its push goes on it (a node
    // without it would dial, fail at once and not be held).
    let node_has_it = node.until_connections(|c| c.open >= 1);
    tokio::pin!(node_has_it);
    loop {
        tokio::select! {
            seen = &mut node_has_it => {
                seen?;
                break;
            }
            _ = frozen.select_next_some() => {}
        }
    }
    let dag = Dag::new(2, 100, 41)?;
    dag.load_into(&node.blocks).await?;
    let _stuck = node.manager.open_push(
        datatransfer::libp2p::from_libp2p(&frozen_id),
        &TestVoucher("stuck".into()),
        dag.root,
        everything(),
    )?;

    // The first hostile peer fills its own bound; the second the bound of all peers.
    let mut first = hostile(&node).await?;
    let mut second = hostile(&node).await?;
    let flood_started = tokio::time::Instant::now();
    first.flood(node.peer_id, 1_000).await?;
    second.flood(node.peer_id, 2_000).await?;
    let stats = node.manager.outbound_stats();
    ensure!(
        flood_started.elapsed() < STUCK,
        "the flood took longer than the stuck send: {:?}",
        flood_started.elapsed()
    );

    // Every request was either processed (accepted or rejected) or dropped with an event.
    let (mut processed, mut dropped_first, mut dropped_second) = (0, 0, 0);
    let first_id = datatransfer::libp2p::from_libp2p(&first.id);
    let second_id = datatransfer::libp2p::from_libp2p(&second.id);
    let counting = async {
        while processed + dropped_first + dropped_second < 2 * FLOOD {
            match events.recv().await? {
                Event::MessageDropped {
                    peer,
                    scope,
                    queued,
                    limit,
                } => {
                    let expected = if peer == first_id {
                        dropped_first += 1;
                        (QueueScope::Peer, PER_PEER)
                    } else if peer == second_id {
                        dropped_second += 1;
                        (QueueScope::AllPeers, IN_ALL)
                    } else {
                        anyhow::bail!("a message of {peer} dropped");
                    };
                    ensure!(
                        (scope, limit) == expected && queued >= limit,
                        "{peer}: {scope:?} {queued}/{limit}, not {expected:?}"
                    );
                }
                Event::Rejected { channel, .. }
                    if channel.initiator == first_id || channel.initiator == second_id =>
                {
                    processed += 1;
                }
                Event::Channel { event, .. }
                    if event.code == datatransfer::EventCode::Accept
                        && (event.channel.initiator == first_id
                            || event.channel.initiator == second_id) =>
                {
                    processed += 1;
                }
                _ => {}
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    tokio::time::timeout(PATIENCE, counting)
        .await
        .with_context(|| {
            format!("{processed} processed, {dropped_first} + {dropped_second} dropped")
        })??;
    ensure!(
        dropped_first > 0 && dropped_second > 0,
        "{dropped_first} + {dropped_second} dropped"
    );
    ensure!(
        stats.dropped_messages == (dropped_first + dropped_second) as u64,
        "{stats:?}, {dropped_first} + {dropped_second} dropped events"
    );
    // Checked before each message: one message's transmits (a handful) can pass a bound.
    ensure!(
        stats.caused_by_peers <= IN_ALL + 4 && stats.most_by_one_peer <= PER_PEER + 4,
        "{stats:?}"
    );

    // The stuck send gives up (or, rarely, gets through), and the queue drains.
    tokio::time::timeout(PATIENCE, async {
        while node.manager.outbound_stats().caused_by_peers > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("the queue did not drain")?;

    // The node still serves an honest peer.
    let honest = Node::start(Spec::new(Net::Memory), accept_all).await?;
    honest.learn(&node);
    let pulled = Dag::new(4, 300, 42)?;
    pulled.load_into(&node.blocks).await?;
    let channel = honest.manager.open_pull(
        node.id(),
        &TestVoucher("honest".into()),
        pulled.root,
        everything(),
    )?;
    let received = until_status(&honest.manager, &channel, ChannelStatus::Completed).await?;
    let sent = until_status(&node.manager, &channel, ChannelStatus::Completed).await?;
    ensure_whole(&pulled, &sent, &received, &honest.blocks).await?;
    drop(frozen);
    Ok(())
}
