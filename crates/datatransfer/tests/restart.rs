//! Each of the four roles (initiator or responder, of a push or a pull) stopped mid-transfer
//! and started again from its channel store, then `restart_channel`: the transfer completes
//! with totals equal to the DAG's size, nothing counted twice. Over `MemStore` and a
//! `SledStore` reopened from its directory. Also a pull cut by a partition, restarted once the
//! peers reach each other again.

#[macro_use]
mod common;

use std::sync::Arc;

use anyhow::{Context, ensure};
use common::{
    Backend, Dag, Peer, TestStore, TestVoucher, everything, hub, open_store, peer, peer_with,
    until_state, until_status,
};
use datatransfer_fsm::ChannelStatus;

/// Blocks that flow before the transfer stalls and the node stops.
const BEFORE_STOP: u64 = 8;

async fn stop_and_restart_mid_transfer(
    backend: Backend,
    pull: bool,
    restart_initiator: bool,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let seed = 50 + u8::from(pull) * 2 + u8::from(restart_initiator);
    let dag = Dag::new(24, 300, seed)?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let data_sender = if pull { &b } else { &a };
    dag.load_into(&data_sender.blocks).await?;

    hub.limit_blocks(Some(BEFORE_STOP));
    let voucher = TestVoucher("restartable".into());
    let channel = if pull {
        a.manager
            .open_pull(b.id.clone(), &voucher, dag.root, everything())?
    } else {
        a.manager
            .open_push(b.id.clone(), &voucher, dag.root, everything())?
    };
    let receiver = if pull { &a } else { &b };
    until_state(&receiver.manager, &channel, |s| {
        s.received_blocks_total >= BEFORE_STOP
    })
    .await?;
    let sender = if pull { &b } else { &a };
    until_state(&sender.manager, &channel, |s| {
        s.sent_blocks_total >= BEFORE_STOP
    })
    .await?;

    // Stop one node; its manager, transport and store handle go away.
    let (stopping, survivor) = if restart_initiator { (a, b) } else { (b, a) };
    stopping.manager.stop().await?;
    let Peer {
        id,
        blocks,
        store,
        manager,
    } = stopping;
    drop(manager);
    let n = id.as_bytes().last().copied().context("peer id")?;
    let store = match store {
        TestStore::Mem(mem) => TestStore::Mem(mem),
        TestStore::Sled(sled) => {
            drop(sled);
            open_store(backend, &dir, if n == 1 { "a" } else { "b" })?
        }
    };
    ensure!(hub.remove_peer(&id), "the stopped peer leaves the hub");
    hub.limit_blocks(None);

    // Start it again from its store, with the blocks it had.
    let restarted = peer_with(&hub, n, store, Arc::clone(&blocks), |m| {
        m.register_voucher_type(common::AcceptAll)?;
        Ok(())
    })
    .await?;
    let restored = restarted.manager.channel_state(&channel)?;
    ensure!(
        !restored.status.is_terminal(),
        "restored as {}",
        restored.status
    );
    ensure!(restored.vouchers.len() == 1, "the original voucher is kept");
    // The progress made before the stop was persisted.
    let restarted_receives = pull == restart_initiator;
    let progress = if restarted_receives {
        restored.received_blocks_total
    } else {
        restored.sent_blocks_total
    };
    ensure!(
        progress >= BEFORE_STOP,
        "restored with {progress} blocks done"
    );
    ensure!(
        progress < dag.block_count(),
        "the transfer was not finished"
    );
    restarted.manager.restart_channel(&channel)?;

    let (initiator, responder) = if restart_initiator {
        (&restarted, &survivor)
    } else {
        (&survivor, &restarted)
    };
    let at_initiator = until_status(&initiator.manager, &channel, ChannelStatus::Completed).await?;
    let at_responder = until_status(&responder.manager, &channel, ChannelStatus::Completed).await?;
    let (at_receiver, at_sender, receiver_blocks) = if pull {
        (at_initiator, at_responder, &initiator.blocks)
    } else {
        (at_responder, at_initiator, &responder.blocks)
    };
    let total = dag.total_bytes();
    ensure!(
        at_receiver.received == total,
        "received {} of {total}",
        at_receiver.received
    );
    ensure!(at_receiver.received_blocks_total == dag.block_count());
    ensure!(
        at_sender.sent == total,
        "sent {} of {total}",
        at_sender.sent
    );
    ensure!(
        at_sender.queued == total,
        "queued {} of {total}",
        at_sender.queued
    );
    ensure!(dag.is_in(receiver_blocks).await?, "every block arrived");
    Ok(())
}

async fn pull_initiator_restarts(backend: Backend) -> anyhow::Result<()> {
    stop_and_restart_mid_transfer(backend, true, true).await
}

async fn pull_responder_restarts(backend: Backend) -> anyhow::Result<()> {
    stop_and_restart_mid_transfer(backend, true, false).await
}

async fn push_initiator_restarts(backend: Backend) -> anyhow::Result<()> {
    stop_and_restart_mid_transfer(backend, false, true).await
}

async fn push_responder_restarts(backend: Backend) -> anyhow::Result<()> {
    stop_and_restart_mid_transfer(backend, false, false).await
}

over_both_stores!(pull_initiator_restarts);
over_both_stores!(pull_responder_restarts);
over_both_stores!(push_initiator_restarts);
over_both_stores!(push_responder_restarts);

over_both_stores!(pull_survives_a_partition_and_restarts);
/// A partition cuts a running pull: both ends record the error and keep the channel; once
/// the peers reach each other again, the initiator restarts it and it completes.
async fn pull_survives_a_partition_and_restarts(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(24, 300, 58)?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    hub.limit_blocks(Some(BEFORE_STOP));
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("partitioned".into()),
        dag.root,
        everything(),
    )?;
    until_state(&a.manager, &channel, |s| {
        s.received_blocks_total >= BEFORE_STOP
    })
    .await?;
    hub.disconnect(&a.id, &b.id);
    let cut = until_state(&a.manager, &channel, |s| !s.message.is_empty()).await?;
    ensure!(
        !cut.status.is_terminal(),
        "the channel lives on: {}",
        cut.status
    );
    ensure!(cut.message.contains("disconnected"), "{}", cut.message);
    ensure!(
        cut.received < dag.total_bytes(),
        "the partition came mid-transfer"
    );
    until_state(&b.manager, &channel, |s| !s.message.is_empty()).await?;
    ensure!(!b.manager.status(&channel).is_terminal());

    hub.reconnect(&a.id, &b.id);
    hub.limit_blocks(None);
    a.manager.restart_channel(&channel)?;
    let done = until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    until_status(&b.manager, &channel, ChannelStatus::Completed).await?;
    ensure!(
        done.received == dag.total_bytes(),
        "{} of {}",
        done.received,
        dag.total_bytes()
    );
    ensure!(done.received_blocks_total == dag.block_count());
    ensure!(dag.is_in(&a.blocks).await?);
    Ok(())
}

over_both_stores!(pull_restart_after_the_responder_completed_completes);
over_both_stores!(push_restart_after_the_responder_completed_completes);
/// A pull restart that reaches the responder after it completed (its Complete message is
/// still on its way, here lost): the responder answers with its Complete instead of a
/// rejection, and the initiator, which has all the data, completes rather than fails.
async fn pull_restart_after_the_responder_completed_completes(
    backend: Backend,
) -> anyhow::Result<()> {
    restart_after_the_responder_completed(backend, true).await
}

/// The same for a push: the initiator sent everything and waits for the Complete when its
/// restart reaches the responder.
async fn push_restart_after_the_responder_completed_completes(
    backend: Backend,
) -> anyhow::Result<()> {
    restart_after_the_responder_completed(backend, false).await
}

/// `a` pulls from (or pushes to) `b`; `b`'s network messages to `a` are lost, so `a` waits
/// in `TransferFinished` with every block exchanged while `b` has completed. Then `a`
/// restarts the channel (as its monitor does after a late transport error): the restart
/// reaches a responder that has completed, and both ends complete with exact totals.
async fn restart_after_the_responder_completed(backend: Backend, pull: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(6, 200, 70 + u8::from(pull))?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
    dag.load_into(&sender.blocks).await?;
    // The Complete (always a network message) never reaches `a`.
    hub.drop_messages(&b.id, &a.id, true);
    let voucher = TestVoucher("finished".into());
    let channel = if pull {
        a.manager
            .open_pull(b.id.clone(), &voucher, dag.root, everything())?
    } else {
        a.manager
            .open_push(b.id.clone(), &voucher, dag.root, everything())?
    };
    until_status(&b.manager, &channel, ChannelStatus::Completed).await?;
    until_status(&a.manager, &channel, ChannelStatus::TransferFinished).await?;
    hub.drop_messages(&b.id, &a.id, false);

    a.manager.restart_channel(&channel)?;
    let at_a = until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    let at_b = b.manager.channel_state(&channel)?;
    ensure!(at_b.status == ChannelStatus::Completed, "{}", at_b.status);
    let (sent, received) = if pull { (at_b, at_a) } else { (at_a, at_b) };
    ensure!(
        sent.sent == dag.total_bytes() && sent.sent_blocks_total == dag.block_count(),
        "sent {} bytes in {} blocks",
        sent.sent,
        sent.sent_blocks_total
    );
    ensure!(
        received.received == dag.total_bytes()
            && received.received_blocks_total == dag.block_count(),
        "received {} bytes in {} blocks",
        received.received,
        received.received_blocks_total
    );
    ensure!(dag.is_in(&receiver.blocks).await?, "a block is missing");
    Ok(())
}
