//! The Manager's scenarios over graphsync and real libp2p (two `build_swarm` swarms, memory
//! transport unless named TCP): the initiator pauses and resumes a pull and a push, the
//! responder cancels each, rejections (an unregistered voucher type, a refusing validator),
//! a paid retrieval settled by vouchers, four channels at once in both directions, and each of
//! the four roles stopped mid-transfer and started again on its sled store and identity. Pull
//! and push also over loopback TCP.
//!
//! "Mid-transfer" is a block count: the data sender's block reads are held after a number of
//! them ([`Gate`]), so a command lands after exactly that many blocks.

#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{
    AcceptAll, Amount, Backend, Bill, Dag, PATIENCE, Payment, Pricing, TestStore, TestVoucher,
    UnknownVoucher, ensure_settled, everything, open_store, until_state, until_status,
};
use datatransfer::libp2p::{DEFAULT_TCP_READ_BUFFER, SwarmConfig};
use datatransfer::{ChannelId, ChannelStatus, Event, EventCode, Voucher, decode_result};
use net::{
    Mgr, Net, Node, Spec, accept_all, ensure_completed, ensure_whole, open, pair, prefix_bytes,
};

/// Blocks that flow before a test acts mid-transfer.
const FIRST: u64 = 4;

/// How long a test watches for data that must not come (a negative can only be watched for).
const QUIET: Duration = Duration::from_millis(300);

/// Waits until both ends of `channel` count exactly `blocks` blocks moved.
async fn until_blocks_moved(
    sender: &Mgr,
    receiver: &Mgr,
    channel: &ChannelId,
    blocks: u64,
) -> anyhow::Result<()> {
    until_state(receiver, channel, |s| s.received_blocks_total >= blocks).await?;
    until_state(sender, channel, |s| s.sent_blocks_total >= blocks).await?;
    Ok(())
}

/// A whole pull (from `b` by `a`) or push (from `a` to `b`) of a 9-block DAG on `net`.
async fn whole_transfer(net: Net, pull: bool) -> anyhow::Result<()> {
    let (a, b) = pair(net).await?;
    let dag = Dag::new(8, 4096, 60 + u8::from(pull))?;
    let sender = if pull { &b } else { &a };
    dag.load_into(&sender.blocks).await?;
    let channel = open(&a, &b, pull, "whole", &dag)?;
    ensure_completed(&a, &b, &channel, pull, &dag).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_over_loopback_tcp_completes_on_both_ends() -> anyhow::Result<()> {
    whole_transfer(Net::Tcp, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_over_loopback_tcp_completes_on_both_ends() -> anyhow::Result<()> {
    whole_transfer(Net::Tcp, false).await
}

/// A 1 MiB pull over TCP completes whatever the TCP read buffer below noise: none (noise's own
/// 8 KiB reads), one that noise's reads do not divide (so they straddle its refills), and the
/// default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_over_tcp_completes_with_any_tcp_read_buffer() -> anyhow::Result<()> {
    for read_buffer in [0, 10_007, DEFAULT_TCP_READ_BUFFER] {
        let spec = || Spec {
            swarm: SwarmConfig::default().with_tcp_read_buffer(read_buffer),
            ..Spec::new(Net::Tcp)
        };
        let a = Node::start(spec(), accept_all).await?;
        let b = Node::start(spec(), accept_all).await?;
        a.learn(&b);
        b.learn(&a);
        let dag = Dag::new(16, 64 * 1024, 70)?;
        dag.load_into(&b.blocks).await?;
        let channel = open(&a, &b, true, "read buffer", &dag)?;
        ensure_completed(&a, &b, &channel, true, &dag)
            .await
            .with_context(|| format!("with a {read_buffer}-byte read buffer"))?;
    }
    Ok(())
}

/// The initiator pauses after [`FIRST`] blocks; nothing moves while paused, even once the
/// sender could read again; after the resume the transfer completes with exact totals.
async fn initiator_pauses_and_resumes(pull: bool) -> anyhow::Result<()> {
    let (a, b) = pair(Net::Memory).await?;
    let dag = Dag::new(12, 1024, 62 + u8::from(pull))?;
    let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
    dag.load_into(&sender.blocks).await?;
    sender.gate.hold_after(FIRST);
    let channel = open(&a, &b, pull, "pause", &dag)?;
    until_blocks_moved(&sender.manager, &receiver.manager, &channel, FIRST).await?;

    a.manager.pause(&channel)?;
    until_status(&a.manager, &channel, ChannelStatus::InitiatorPaused).await?;
    until_status(&b.manager, &channel, ChannelStatus::InitiatorPaused).await?;
    // The sender's read of the next block started before the pause: that one block may still
    // go out once the read ends, as a block already on the wire would; nothing after it.
    sender.gate.release();
    tokio::time::sleep(QUIET).await;
    let paused = receiver.manager.channel_state(&channel)?;
    let landed = paused.received_blocks_total;
    ensure!(
        (FIRST..=FIRST + 1).contains(&landed) && paused.received == prefix_bytes(&dag, landed),
        "data while paused: {landed} blocks, {} bytes",
        paused.received
    );
    tokio::time::sleep(QUIET).await;
    let later = receiver.manager.channel_state(&channel)?;
    ensure!(
        later.received == paused.received,
        "data while paused: {} bytes, then {}",
        paused.received,
        later.received
    );

    a.manager.resume(&channel)?;
    ensure_completed(&a, &b, &channel, pull, &dag).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_pauses_and_resumes_a_pull_over_graphsync() -> anyhow::Result<()> {
    initiator_pauses_and_resumes(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_pauses_and_resumes_a_push_over_graphsync() -> anyhow::Result<()> {
    initiator_pauses_and_resumes(false).await
}

/// The responder cancels after [`FIRST`] blocks: both ends end Cancelled, having moved exactly
/// those blocks, and no later block reaches the receiver's store.
async fn responder_cancels(pull: bool) -> anyhow::Result<()> {
    let (a, b) = pair(Net::Memory).await?;
    let dag = Dag::new(12, 1024, 64 + u8::from(pull))?;
    let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
    dag.load_into(&sender.blocks).await?;
    sender.gate.hold_after(FIRST);
    let channel = open(&a, &b, pull, "cancel", &dag)?;
    until_blocks_moved(&sender.manager, &receiver.manager, &channel, FIRST).await?;

    b.manager.close(&channel)?;
    until_status(&b.manager, &channel, ChannelStatus::Cancelled).await?;
    until_status(&a.manager, &channel, ChannelStatus::Cancelled).await?;
    sender.gate.release();
    tokio::time::sleep(QUIET).await;
    let sent = sender.manager.channel_state(&channel)?;
    let received = receiver.manager.channel_state(&channel)?;
    let bytes = prefix_bytes(&dag, FIRST);
    ensure!(
        sent.sent == bytes && sent.sent_blocks_total == FIRST,
        "sent {} bytes in {} blocks",
        sent.sent,
        sent.sent_blocks_total
    );
    ensure!(
        received.received == bytes && received.received_blocks_total == FIRST,
        "received {} bytes in {} blocks",
        received.received,
        received.received_blocks_total
    );
    let mut stored = 0;
    for (cid, _) in &dag.blocks {
        if blockstore::Blockstore::has(receiver.blocks.as_ref(), cid).await? {
            stored += 1;
        }
    }
    ensure!(stored == FIRST, "{stored} blocks stored, not {FIRST}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_cancels_a_pull_over_graphsync() -> anyhow::Result<()> {
    responder_cancels(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_cancels_a_push_over_graphsync() -> anyhow::Result<()> {
    responder_cancels(false).await
}

/// Opens a pull and a push with a voucher of `V`; both fail at the initiator with Go's
/// "response rejected", the responder publishes the rejection with `reason` and keeps no
/// channel, and no block moves.
async fn rejected<V: Voucher>(voucher: &V, reason: &str, seed: u8) -> anyhow::Result<()> {
    let (a, b) = pair(Net::Memory).await?;
    let dag = Dag::new(3, 100, seed)?;
    dag.load_into(&a.blocks).await?;
    dag.load_into(&b.blocks).await?;
    let mut b_events = b.manager.subscribe();
    for pull in [true, false] {
        let channel = if pull {
            a.manager
                .open_pull(b.id(), voucher, dag.root, everything())?
        } else {
            a.manager
                .open_push(b.id(), voucher, dag.root, everything())?
        };
        let failed = until_status(&a.manager, &channel, ChannelStatus::Failed).await?;
        ensure!(failed.message == "response rejected", "{}", failed.message);
        ensure!(failed.received == 0 && failed.sent == 0, "no data moved");
        let wait = async {
            loop {
                if let Event::Rejected { channel: c, reason } = b_events.recv().await?
                    && c == channel
                {
                    return Ok::<_, anyhow::Error>(reason);
                }
            }
        };
        let said = tokio::time::timeout(PATIENCE, wait)
            .await
            .context("waiting for the rejection")??;
        ensure!(said == reason, "{said}");
        ensure!(
            b.manager.status(&channel) == ChannelStatus::ChannelNotFoundError,
            "the responder made no channel"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_voucher_type_is_rejected_over_graphsync() -> anyhow::Result<()> {
    rejected(&UnknownVoucher, "unknown voucher type: test/unknown", 66).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_validator_rejects_over_graphsync() -> anyhow::Result<()> {
    rejected(&TestVoucher("no".into()), "the voucher says no", 67).await
}

/// The client (`a`) pulls from, or pushes to, a provider (`b`) that charges every byte it
/// sends or receives: it pauses whenever 1500 are owed, the client pays with `send_voucher`,
/// and the rest is settled at the end (`on_complete`).
async fn paid_transfer(pull: bool) -> anyhow::Result<()> {
    let accounts = Arc::new(Mutex::new(BTreeMap::new()));
    let pricing = Pricing {
        interval: 1500,
        bill: Bill::Whole,
        accounts: Arc::clone(&accounts),
    };
    let client = Node::start(Spec::new(Net::Memory), accept_all).await?;
    let provider = Node::start(Spec::new(Net::Memory), |m| {
        m.register_voucher_type(AcceptAll)?;
        m.register_revalidator(pricing)?;
        m.register_voucher_result_type::<Amount>()?;
        Ok(())
    })
    .await?;
    client.learn(&provider);
    provider.learn(&client);
    let dag = Dag::new(10, 500, 68 + u8::from(pull))?;
    let (sender, receiver) = if pull {
        (&provider, &client)
    } else {
        (&client, &provider)
    };
    dag.load_into(&sender.blocks).await?;

    let mut events = client.manager.subscribe();
    let channel = open(&client, &provider, pull, "paid", &dag)?;
    // The client pays the part of the provider's bill it has not paid yet, whenever the
    // provider pauses or begins finalizing.
    let mut payments: Vec<u64> = Vec::new();
    let mut answered = 0;
    let pay = async {
        loop {
            let Event::Channel { event, state } = events.recv().await? else {
                continue;
            };
            if event.channel != channel {
                continue;
            }
            if matches!(
                event.code,
                EventCode::PauseResponder | EventCode::ResponderBeginsFinalization
            ) && state.voucher_results.len() > answered
            {
                answered = state.voucher_results.len();
                let asked = state.last_voucher_result().context("a payment request")?;
                let Amount(bill) = decode_result(asked)?;
                let owed = bill.saturating_sub(payments.iter().sum());
                if owed > 0 {
                    client.manager.send_voucher(&channel, &Payment(owed))?;
                    payments.push(owed);
                }
            }
            if event.status == ChannelStatus::Completed {
                return Ok::<(), anyhow::Error>(());
            }
            ensure!(
                !event.status.is_terminal(),
                "channel ended {} ({})",
                event.status,
                state.message
            );
        }
    };
    tokio::time::timeout(PATIENCE, pay)
        .await
        .context("paid transfer")??;
    let at_provider = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;
    let at_client = client.manager.channel_state(&channel)?;
    let (sent, received) = if pull {
        (&at_provider, &at_client)
    } else {
        (&at_client, &at_provider)
    };
    ensure_whole(&dag, sent, received, &receiver.blocks).await?;

    let total = dag.total_bytes();
    ensure_settled(
        &accounts,
        &channel,
        total,
        &payments,
        &at_provider,
        &at_client,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_pull_over_graphsync_pauses_for_payments_and_settles() -> anyhow::Result<()> {
    paid_transfer(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_push_over_graphsync_pauses_for_payments_and_settles() -> anyhow::Result<()> {
    paid_transfer(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_channels_both_ways_between_two_peers_complete() -> anyhow::Result<()> {
    let (a, b) = pair(Net::Memory).await?;
    // Each peer pulls from and pushes to the other, all four at once.
    let mut channels = Vec::new();
    for (n, (initiator, other, pull)) in (0u8..).zip([
        (&a, &b, true),
        (&a, &b, false),
        (&b, &a, true),
        (&b, &a, false),
    ]) {
        let dag = Dag::new(6 + usize::from(n), 2048, 70 + n)?;
        let (sender, receiver) = if pull {
            (other, initiator)
        } else {
            (initiator, other)
        };
        dag.load_into(&sender.blocks).await?;
        let channel = open(initiator, other, pull, &format!("channel {n}"), &dag)?;
        channels.push((channel, dag, sender, receiver));
    }
    for (channel, dag, sender, receiver) in &channels {
        let sent = until_status(&sender.manager, channel, ChannelStatus::Completed).await?;
        let received = until_status(&receiver.manager, channel, ChannelStatus::Completed).await?;
        ensure_whole(dag, &sent, &received, &receiver.blocks)
            .await
            .with_context(|| format!("channel {channel}"))?;
    }
    let ids: std::collections::BTreeSet<_> = channels.iter().map(|(c, ..)| c.clone()).collect();
    ensure!(ids.len() == 4, "every channel has its own id");
    Ok(())
}

/// A node of the restart scenarios: a sled channel store named `name` in `dir`.
async fn sled_node(dir: &tempfile::TempDir, name: &str) -> anyhow::Result<Node> {
    let spec = Spec {
        store: open_store(Backend::Sled, dir, name)?,
        ..Spec::new(Net::Memory)
    };
    Node::start(spec, accept_all).await
}

/// `a` pulls from or pushes to `b`; after [`FIRST`] blocks the initiator (or the responder) is
/// stopped, started again on the same sled store, identity and address, and restarts the
/// channel: it completes with exact totals, nothing counted twice.
async fn stop_and_restart(pull: bool, restart_initiator: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = sled_node(&dir, "a").await?;
    let b = sled_node(&dir, "b").await?;
    a.learn(&b);
    b.learn(&a);
    let dag = Dag::new(
        12,
        1024,
        80 + 2 * u8::from(pull) + u8::from(restart_initiator),
    )?;
    let sender_is_a = !pull;
    let (sender, receiver) = if sender_is_a { (&a, &b) } else { (&b, &a) };
    dag.load_into(&sender.blocks).await?;
    sender.gate.hold_after(FIRST);
    let channel = open(&a, &b, pull, "restartable", &dag)?;
    until_blocks_moved(&sender.manager, &receiver.manager, &channel, FIRST).await?;

    let (stopping, survivor, name) = if restart_initiator {
        (a, b, "a")
    } else {
        (b, a, "b")
    };
    let stopped = stopping.stop().await?;
    // The store is opened again from its directory once the old handle is gone.
    let mut spec = stopped.spec();
    spec.store = TestStore::Mem(datatransfer::MemStore::new());
    spec.store = open_store(Backend::Sled, &dir, name)?;
    // A sender that survives may read again (the restarted one has an open gate).
    survivor.gate.release();
    let restarted = Node::start(spec, accept_all).await?;
    restarted.learn(&survivor);

    let restored = restarted.manager.channel_state(&channel)?;
    ensure!(
        !restored.status.is_terminal(),
        "restored as {}",
        restored.status
    );
    ensure!(restored.vouchers.len() == 1, "the original voucher is kept");
    let restarted_receives = pull == restart_initiator;
    let progress = if restarted_receives {
        restored.received_blocks_total
    } else {
        restored.sent_blocks_total
    };
    ensure!(progress == FIRST, "restored with {progress} blocks done");
    restarted.manager.restart_channel(&channel)?;

    let at_restarted = until_status(&restarted.manager, &channel, ChannelStatus::Completed).await?;
    let at_survivor = until_status(&survivor.manager, &channel, ChannelStatus::Completed).await?;
    let (sent, received, receiver_blocks) = if restarted_receives {
        (at_survivor, at_restarted, &restarted.blocks)
    } else {
        (at_restarted, at_survivor, &survivor.blocks)
    };
    ensure_whole(&dag, &sent, &received, receiver_blocks).await?;
    ensure!(
        sent.queued == dag.total_bytes(),
        "queued {} of {}",
        sent.queued,
        dag.total_bytes()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_initiator_restarts_on_its_sled_store_over_graphsync() -> anyhow::Result<()> {
    stop_and_restart(true, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_responder_restarts_on_its_sled_store_over_graphsync() -> anyhow::Result<()> {
    stop_and_restart(true, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_initiator_restarts_on_its_sled_store_over_graphsync() -> anyhow::Result<()> {
    stop_and_restart(false, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_responder_restarts_on_its_sled_store_over_graphsync() -> anyhow::Result<()> {
    stop_and_restart(false, false).await
}
