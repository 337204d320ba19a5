//! Bad input from a hostile peer over real swarms (issue 7, "Bad input"): a node `N` (a
//! Manager on a `build_swarm` swarm with `GraphsyncTransport` and `Libp2pNetwork`) serves an
//! honest peer `A` (a Manager too) while a hostile peer `H`, a bare libp2p swarm that speaks
//! `/fil/datatransfer/1.2.0` by hand, sends it messages for channels between `N` and `A`
//! (updates, cancels, vouchers, completions, restarts of either kind, with `N` or `A` as the
//! initiator), and then thousands of push requests. Every message gets a typed answer (an
//! `Acpt = false` response where the protocol has one, an `Event::ProtocolViolated` or
//! `Event::Rejected` on `N` always), the honest transfers in both directions complete with
//! exact totals, `N` never holds more of `H`'s channels than
//! `Config::max_channels_per_peer`, and its memory stays bounded.

#![cfg(feature = "libp2p")]
// The managers here are over graphsync and libp2p, so the hub-backed scenarios do not apply.
#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use common::{
    Blocks, Dag, PATIENCE, TestVoucher, everything, resident_bytes, until_event, until_state,
};
use datatransfer::libp2p::{NodeBehaviour, PROTOCOL, SwarmConfig, build_swarm, from_libp2p};
use datatransfer::{
    ChannelId, ChannelState, ChannelStatus, Config, Event, ProtocolError, Subscription, TransferId,
    Voucher,
};
use datatransfer_message::{
    Message, Response, cancel_request, cancel_response, complete_response, new_request,
    restart_existing_channel_request, restart_request, update_request, update_response,
    voucher_request, voucher_result_response,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, Transport, noise, yamux};
use net::{GatedStore, Layers, Mgr, accept_all, dial, listen, manager_on, run};
use tokio::sync::mpsc;

/// The hostile peer's channel limit at `N` in this test.
const PER_PEER: usize = 8;

/// Push requests in the flood.
const FLOOD: usize = 2000;

/// Requests the hostile peer keeps unanswered during the flood: below the per-peer stream
/// queue of `N`'s network (32), so that every request reaches the Manager and the count of
/// answers is exact.
const WINDOW: usize = 16;

/// How much `N`'s process may grow in resident memory during the flood: the flood's own
/// bookkeeping (2 000 finished channel records in the store, at most a few hundred bytes
/// each) plus allocator slack; an unbounded queue of its streams or messages would not fit.
const RSS_SLACK: u64 = 48 * 1024 * 1024;

/// The per-block read delay of the honest transfers, so that they run during the attack.
const READ_DELAY: Duration = Duration::from_millis(15);

/// An honest node.
struct Honest {
    manager: Mgr,
    blocks: Arc<Blocks>,
    id: PeerId,
    address: Multiaddr,
}

/// The hostile peer: a swarm with only libp2p-stream on it. It reads every data-transfer
/// message sent to it into `inbox`, and holds graphsync streams open without answering.
struct Hostile {
    id: PeerId,
    control: libp2p_stream::Control,
    inbox: mpsc::Receiver<Message>,
}

impl Hostile {
    /// Sends `message` to `to` on a fresh stream, as Go does.
    async fn send(&mut self, to: PeerId, message: impl Into<Message>) -> anyhow::Result<()> {
        let bytes = datatransfer_message::to_vec(&message.into())?;
        let mut stream = tokio::time::timeout(PATIENCE, self.control.open_stream(to, PROTOCOL))
            .await
            .context("opening a stream timed out")??;
        stream.write_all(&bytes).await?;
        stream.close().await?;
        Ok(())
    }

    /// The next message sent to the hostile peer, within [`PATIENCE`].
    async fn receive(&mut self) -> anyhow::Result<Message> {
        tokio::time::timeout(PATIENCE, self.inbox.recv())
            .await
            .context("waiting for a message to the hostile peer")?
            .context("the hostile inbox closed")
    }
}

/// An honest node (whose blocks are read in [`READ_DELAY`]) with `config`, and its swarm to
/// drive.
async fn honest(config: Config) -> anyhow::Result<(Honest, Swarm<NodeBehaviour>)> {
    let mut swarm = build_swarm(Keypair::generate_ed25519(), SwarmConfig::default())?;
    let address = listen(&mut swarm, "/memory/0").await?;
    let blocks = Arc::new(Blocks::new());
    let served = GatedStore::slow(Arc::clone(&blocks), READ_DELAY);
    let layers = Layers {
        config,
        ..Layers::default()
    };
    let manager = manager_on(&swarm, served, layers, accept_all).await?;
    let id = *swarm.local_peer_id();
    Ok((
        Honest {
            manager,
            blocks,
            id,
            address,
        },
        swarm,
    ))
}

/// The hostile peer, connected to `target` at `address`.
async fn hostile(
    target: PeerId,
    address: Multiaddr,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Hostile> {
    let mut swarm = SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|error| -> Box<dyn StdError + Send + Sync> { Box::new(error) })?;
            Ok(MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default()))
        })
        .map_err(|error| anyhow::anyhow!("the memory transport: {error}"))?
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .map_err(|never| match never {})?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let id = *swarm.local_peer_id();
    let mut control = swarm.behaviour().new_control();

    // Data-transfer messages to the hostile peer: read by hand, one per stream.
    let mut incoming = control.accept(PROTOCOL)?;
    let (inbox_tx, inbox) = mpsc::channel(FLOOD * 2);
    tasks.push(tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let inbox_tx = inbox_tx.clone();
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                if stream.read_to_end(&mut bytes).await.is_ok()
                    && let Ok(message) = datatransfer_message::decode(&bytes)
                {
                    let _ = inbox_tx.try_send(message);
                }
            });
        }
    }));
    // Graphsync requests to it (a push it asked for makes `N` request the data): accepted
    // and never answered, so those channels stay open at `N`.
    for protocol in ["/ipfs/graphsync/2.0.0", "/ipfs/graphsync/1.0.0"] {
        let mut incoming = control.accept(StreamProtocol::new(protocol))?;
        tasks.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((_, stream)) = incoming.next().await {
                held.push(stream);
            }
        }));
    }

    dial(&mut swarm, target, address)
        .await
        .context("the hostile peer could not connect")?;
    tasks.push(run(swarm));
    Ok(Hostile { id, control, inbox })
}

/// Waits for the next `ProtocolViolated` on `events`, which must name `peer` and be an
/// unknown channel `expected`.
async fn until_unknown_channel(
    events: &mut Subscription,
    peer: &datatransfer::PeerId,
    expected: &ChannelId,
) -> anyhow::Result<()> {
    let (from, error) = until_event(events, |event| match event {
        Event::ProtocolViolated { peer, error } => Some((peer.clone(), error.clone())),
        _ => None,
    })
    .await?;
    ensure!(&from == peer, "a violation by {from}, not the hostile peer");
    match error {
        ProtocolError::UnknownChannel { channel, .. } if &channel == expected => Ok(()),
        other => bail!("expected unknown channel {expected}, got {other:?}"),
    }
}

/// The response the hostile peer gets next, which must be a rejection of `kind`.
async fn until_rejection(hostile: &mut Hostile, id: TransferId) -> anyhow::Result<Response> {
    let message = hostile.receive().await?;
    let Message::Response(response) = message else {
        bail!("the hostile peer got a request: {message:?}");
    };
    ensure!(
        !response.accepted() && response.transfer_id() == id,
        "expected a rejection of {id:?}, got {response:?}"
    );
    Ok(response)
}

fn live_channels_with(manager: &Mgr, peer: &datatransfer::PeerId) -> anyhow::Result<usize> {
    Ok(manager
        .in_progress_channels()?
        .values()
        .filter(|state| !state.status.is_terminal() && state.other_peer() == peer)
        .count())
}

/// Checks that `state` completed with the whole of `dag` counted.
fn ensure_whole(state: &ChannelState, dag: &Dag, receiving: bool) -> anyhow::Result<()> {
    let (bytes, blocks) = if receiving {
        (state.received, state.received_blocks_total)
    } else {
        (state.sent, state.sent_blocks_total)
    };
    ensure!(
        state.status == ChannelStatus::Completed
            && bytes == dag.total_bytes()
            && blocks == dag.block_count(),
        "{}: {} with {bytes} bytes in {blocks} blocks",
        state.channel_id,
        state.status
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_is_rejected_while_the_honest_transfers_complete() -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    let config = Config::default()
        .with_subscriber_capacity(1 << 16)
        .with_max_channels_per_peer(PER_PEER);
    let (node, mut node_swarm) = honest(config).await?;
    let (peer, mut peer_swarm) = honest(Config::default()).await?;
    peer_swarm.add_peer_address(node.id, node.address.clone());
    node_swarm.add_peer_address(peer.id, peer.address.clone());
    tasks.push(run(node_swarm));
    tasks.push(run(peer_swarm));
    let mut hostile = hostile(node.id, node.address.clone(), &mut tasks).await?;
    let (n, a, h) = (
        node.manager.self_peer().clone(),
        peer.manager.self_peer().clone(),
        from_libp2p(&hostile.id),
    );

    // The honest transfers: A pulls from N (channel p, A initiated), and N pulls from A
    // (channel q, N initiated).
    let (dag_p, dag_q) = (Dag::new(24, 1024, 51)?, Dag::new(24, 1024, 52)?);
    dag_p.load_into(&node.blocks).await?;
    dag_q.load_into(&peer.blocks).await?;
    let voucher_p = TestVoucher("p".into());
    let p = peer
        .manager
        .open_pull(n.clone(), &voucher_p, dag_p.root, everything())?;
    let q = node.manager.open_pull(
        a.clone(),
        &TestVoucher("q".into()),
        dag_q.root,
        everything(),
    )?;
    for (manager, channel) in [(&peer.manager, &p), (&node.manager, &q)] {
        until_state(manager, channel, |state| state.received > 0)
            .await
            .with_context(|| format!("{channel} never started"))?;
    }
    let mut events = node.manager.subscribe();

    // Requests naming p's transfer id: from H they are about channel (H, N, p), which N does
    // not know. Nothing is sent back, as Go sends nothing.
    let on_p = ChannelId::new(h.clone(), n.clone(), p.id);
    let pause: Message = update_request(p.id, true).into();
    let cancel: Message = cancel_request(p.id).into();
    let voucher: Message = voucher_request(
        p.id,
        TestVoucher::TYPE.into(),
        TestVoucher("pay".into()).to_node(),
    )
    .into();
    for message in [pause, cancel, voucher] {
        hostile.send(node.id, message).await?;
        until_unknown_channel(&mut events, &h, &on_p).await?;
    }
    // Responses naming q's transfer id: channel (N, H, q), unknown too.
    let on_q = ChannelId::new(n.clone(), h.clone(), q.id);
    let empty = datatransfer::TypeIdentifier::EMPTY;
    let responses: [Message; 4] = [
        update_response(q.id, true).into(),
        cancel_response(q.id).into(),
        complete_response(q.id, true, false, empty.clone(), None).into(),
        voucher_result_response(q.id, true, false, empty.clone(), None).into(),
    ];
    for message in responses {
        hostile.send(node.id, message).await?;
        until_unknown_channel(&mut events, &h, &on_q).await?;
    }
    // Type 7 for q, whose initiator N is (the right initiator, the wrong peer), and for p,
    // whose initiator is A (the wrong one): both ignored, no restart, no reply.
    for channel in [&q, &p] {
        hostile
            .send(node.id, restart_existing_channel_request(channel.clone()))
            .await?;
        until_unknown_channel(&mut events, &h, channel).await?;
    }
    // A restart (Type 6) of p, with p's voucher and root: channel (H, N, p) does not exist, so
    // the restart is rejected on the wire (Go's restartResponse with Acpt = false).
    let restart = restart_request(
        p.id,
        true,
        TestVoucher::TYPE.into(),
        voucher_p.to_node(),
        dag_p.root,
        everything(),
    );
    hostile.send(node.id, restart).await?;
    until_unknown_channel(&mut events, &h, &on_p).await?;
    let answer = until_rejection(&mut hostile, p.id).await?;
    ensure!(answer.is_restart(), "{answer:?}");

    for (manager, channel) in [
        (&peer.manager, &p),
        (&node.manager, &p),
        (&node.manager, &q),
    ] {
        let status = manager.status(channel);
        ensure!(
            matches!(status, ChannelStatus::Ongoing | ChannelStatus::Completed),
            "{channel} is {status} after the hostile messages"
        );
    }

    // The flood: push requests H never means to serve. N accepts PER_PEER of them (their
    // accepts ride in graphsync requests to H, which H holds unanswered) and must reject the
    // rest, each with an event here and `Acpt = false` on the wire. H keeps at most WINDOW
    // requests beyond those that N has decided on in flight.
    let rss_before = resident_bytes()?;
    let (mut sent, mut rejected, mut most_live) = (0, 0, 0);
    let flood_voucher = TestVoucher("flood".into()).to_node();
    while rejected < FLOOD - PER_PEER {
        while sent < FLOOD && sent < rejected + PER_PEER + WINDOW {
            let id = TransferId(1_000_000 + sent as u64);
            let request = new_request(
                id,
                false,
                TestVoucher::TYPE.into(),
                flood_voucher.clone(),
                dag_p.root,
                everything(),
            );
            hostile.send(node.id, request).await?;
            sent += 1;
        }
        let reason = until_event(&mut events, |event| match event {
            Event::Rejected { channel, reason } if channel.initiator == h => Some(reason.clone()),
            _ => None,
        })
        .await
        .with_context(|| format!("{sent} sent, {rejected} rejected"))?;
        ensure!(reason.contains("too many channels"), "{reason}");
        rejected += 1;
        if rejected % 250 == 0 {
            most_live = most_live.max(live_channels_with(&node.manager, &h)?);
        }
    }
    ensure!(sent == FLOOD, "{sent} sent");
    let live = live_channels_with(&node.manager, &h)?;
    ensure!(
        live == PER_PEER && most_live <= PER_PEER,
        "{live} live channels of H at the end, {most_live} at most during the flood"
    );
    // What reached H: rejections of its New requests only. H's own acceptor (libp2p-stream's,
    // which keeps one stream waiting per connection and drops the next when its reader lags)
    // may lose a few of N's answer streams, so at least nine in ten must have arrived.
    let mut answers = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), hostile.inbox.recv()).await
    {
        let Message::Response(response) = &message else {
            bail!("the hostile peer got a request: {message:?}");
        };
        ensure!(
            response.is_new() && !response.accepted(),
            "the hostile peer got {response:?}"
        );
        answers += 1;
    }
    ensure!(
        answers <= rejected && answers * 10 >= rejected * 9,
        "{answers} rejections reached the hostile peer of {rejected}"
    );
    let rss_after = resident_bytes()?;
    ensure!(
        rss_after <= rss_before + RSS_SLACK,
        "resident memory grew from {rss_before} to {rss_after} bytes in the flood"
    );

    // The honest transfers were not disturbed.
    let received_p = until_state(&peer.manager, &p, |s| s.status.is_terminal()).await?;
    let sent_p = until_state(&node.manager, &p, |s| s.status.is_terminal()).await?;
    let received_q = until_state(&node.manager, &q, |s| s.status.is_terminal()).await?;
    let sent_q = until_state(&peer.manager, &q, |s| s.status.is_terminal()).await?;
    ensure_whole(&received_p, &dag_p, true)?;
    ensure_whole(&sent_p, &dag_p, false)?;
    ensure_whole(&received_q, &dag_q, true)?;
    ensure_whole(&sent_q, &dag_q, false)?;
    ensure!(dag_p.is_in(&peer.blocks).await? && dag_q.is_in(&node.blocks).await?);

    for task in tasks {
        task.abort();
    }
    Ok(())
}
