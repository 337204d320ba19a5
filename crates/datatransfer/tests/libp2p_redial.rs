//! Who dials after a lost connection (issue 7 §3: only the initiator re-dials). A transfer is
//! cut after its first blocks, and the data sender's held block reads are released at once,
//! BEFORE the initiator restarts the channel: the sender then has the rest of a response, and
//! messages, for a peer it is no longer connected to. Whatever it sends goes over an existing
//! connection or fails; it never dials. The initiator dials again, its monitor restarts the
//! channel, and both ends complete with exact totals. (These three also pass without the
//! responder-side rule since the graphsync responder drops a disconnected peer's responses;
//! they guard the rule end to end.) A responder that cancels while disconnected fails its
//! send fast instead of dialing the initiator to deliver it (this one dialed before).

#![cfg(feature = "libp2p")]

#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Dag, TestVoucher, everything, until_state, until_status};
use datatransfer::{ChannelStatus, Event, MonitorEvent};
use net::{Net, Node, Spec, accept_all, cut, ensure_completed, open, restarting_monitor};

/// Blocks that flow before the connection is closed.
const FIRST: u64 = 4;

/// A node on the memory transport with the monitor on, restarting 300 ms after the last error
/// (time for the released sender to try its sends; see [`restarting_monitor`]), and short
/// network retries.
async fn monitored() -> anyhow::Result<Node> {
    net::monitored(Net::Memory, restarting_monitor(Duration::from_millis(300))).await
}

/// `a` pulls from (or pushes to) `b`; after [`FIRST`] blocks `a` or `b` closes the connection
/// and the data sender reads on at once. Only `a` dials again; the transfer completes.
async fn sender_reads_on_before_the_restart(
    pull: bool,
    initiator_closes: bool,
) -> anyhow::Result<()> {
    let a = monitored().await?;
    let b = monitored().await?;
    a.learn(&b);
    b.learn(&a);
    let dag = Dag::new(
        12,
        1024,
        70 + u8::from(pull) + 2 * u8::from(initiator_closes),
    )?;
    let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
    dag.load_into(&sender.blocks).await?;
    sender.gate.hold_after(FIRST);
    let channel = open(&a, &b, pull, "redial", &dag)?;
    until_state(&receiver.manager, &channel, |s| {
        s.received_blocks_total >= FIRST
    })
    .await?;
    until_state(&sender.manager, &channel, |s| s.sent_blocks_total >= FIRST).await?;
    let b_dialed = b.connections().dialed;
    let a_dialed = a.connections().dialed;
    let mut a_events = a.manager.subscribe();

    cut(&a, &b, initiator_closes).await?;
    // The sender reads on now, before the initiator has restarted the channel.
    sender.gate.release();

    let restarted = async {
        loop {
            if let Event::Monitor { channel: c, event } = a_events.recv().await?
                && c == channel
                && matches!(event, MonitorEvent::Restarted { .. })
            {
                return Ok::<(), anyhow::Error>(());
            }
        }
    };
    tokio::time::timeout(common::PATIENCE, restarted)
        .await
        .context("waiting for the restart")??;

    ensure_completed(&a, &b, &channel, pull, &dag).await?;
    ensure!(
        a.connections().dialed > a_dialed,
        "the initiator dialed again: {:?}",
        a.connections()
    );
    ensure!(
        b.connections().dialed == b_dialed,
        "the responder dialed: {:?} (before the cut it had dialed {b_dialed})",
        b.connections()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_responder_reading_on_before_the_restart_never_dials() -> anyhow::Result<()> {
    sender_reads_on_before_the_restart(true, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_responder_that_closed_and_reads_on_never_dials() -> anyhow::Result<()> {
    sender_reads_on_before_the_restart(true, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_responder_never_dials_while_the_initiator_reads_on() -> anyhow::Result<()> {
    sender_reads_on_before_the_restart(false, true).await
}

/// A responder that cancels its side of a pull while the connection is gone (issue 7 §3: any
/// channel can be cancelled locally when the peer is gone, and only the initiator re-dials):
/// the channel ends Cancelled at once, the cancel message fails fast for want of a connection
/// (a `TransmitFailed` event says so), and the responder does not dial the initiator to
/// deliver it. No monitor runs, so nothing else dials either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_cancelling_while_disconnected_does_not_dial() -> anyhow::Result<()> {
    let a = Node::start(Spec::new(Net::Memory), accept_all).await?;
    let b = Node::start(Spec::new(Net::Memory), accept_all).await?;
    a.learn(&b);
    b.learn(&a);
    let dag = Dag::new(8, 512, 77)?;
    dag.load_into(&b.blocks).await?;
    b.gate.hold_after(FIRST);
    let channel = a.manager.open_pull(
        b.id(),
        &TestVoucher("cancel".into()),
        dag.root,
        everything(),
    )?;
    until_state(&a.manager, &channel, |s| s.received_blocks_total >= FIRST).await?;
    a.disconnect(&b).await?;
    b.until_connections(|c| c.open == 0).await?;
    let b_dialed = b.connections().dialed;
    let mut b_events = b.manager.subscribe();

    b.manager.close(&channel)?;
    until_status(&b.manager, &channel, ChannelStatus::Cancelled).await?;
    let failed = async {
        loop {
            if let Event::TransmitFailed { channel: c, reason } = b_events.recv().await?
                && c == channel
            {
                return Ok::<String, anyhow::Error>(reason);
            }
        }
    };
    let reason = tokio::time::timeout(Duration::from_secs(5), failed)
        .await
        .with_context(|| format!("no failed send at the responder: {:?}", b.connections()))??;
    ensure!(
        reason.contains("no open connection"),
        "the cancel failed for another reason: {reason}"
    );
    b.gate.release();
    // Time for a dial that should not happen to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        b.connections().dialed == b_dialed,
        "the responder dialed: {:?}",
        b.connections()
    );
    Ok(())
}
