//! Lost connections over graphsync and real libp2p, with the channel monitor on (short test
//! values): a connection closed (by either end) after the first blocks of a pull or a push is
//! dialed again by the initiator, whose monitor restarts the channel, and the transfer
//! completes with exact totals (the pull also over loopback TCP); the responder never dials. A
//! responder that cannot be reached before it accepts fails the initiator's channel, and the
//! events say the peer is unreachable.
//!
//! "After the first blocks" is a block count: the connection is closed as soon as the receiver
//! has counted [`FIRST`] blocks, while the sender may still have up to [`IN_FLIGHT`] more on
//! the wire or unconfirmed (its block reads are held after `FIRST + IN_FLIGHT` of them, until
//! the initiator has restarted the channel). Whatever was in flight, both ends end with exact
//! totals: a block the receiver got whose write the sender never saw confirmed is counted
//! sent when the restart withholds it (`datatransfer-graphsync`'s "Sent totals" rule).

#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Dag, TestVoucher, everything, until_state};
use datatransfer::{ChannelStatus, Event, MonitorConfig, MonitorEvent};
use net::{Net, cut, ensure_completed, monitored, open, restarting_monitor};

/// Blocks the receiver has counted when the connection is closed.
const FIRST: u64 = 4;

/// Blocks the sender may read beyond [`FIRST`] before the cut: in flight when it comes.
const IN_FLIGHT: u64 = 2;

/// The monitor of these tests: restarts 100 ms after the last error (see
/// [`restarting_monitor`]).
fn monitor() -> MonitorConfig {
    restarting_monitor(Duration::from_millis(100))
}

/// `a` pulls from (or pushes to) `b` on `net`; after [`FIRST`] blocks `closer` (the initiator
/// `a` or the responder `b`) closes the connection. The initiator dials again, its monitor
/// restarts the channel, and both ends complete with exact totals. The responder never dials.
async fn disconnect_and_restart(
    net: Net,
    pull: bool,
    initiator_closes: bool,
) -> anyhow::Result<()> {
    let a = monitored(net, monitor()).await?;
    let b = monitored(net, monitor()).await?;
    a.learn(&b);
    b.learn(&a);
    let dag = Dag::new(12, 1024, 90 + u8::from(pull))?;
    let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
    dag.load_into(&sender.blocks).await?;
    sender.gate.hold_after(FIRST + IN_FLIGHT);
    let channel = open(&a, &b, pull, "cut", &dag)?;
    // The cut comes as soon as the receiver has the first blocks, whatever the sender has
    // counted or still has on the wire.
    until_state(&receiver.manager, &channel, |s| {
        s.received_blocks_total >= FIRST
    })
    .await?;
    let (a_dialed, b_dialed) = (a.connections().dialed, b.connections().dialed);
    // Only what the monitor does after the cut counts.
    let mut a_events = a.manager.subscribe();

    cut(&a, &b, initiator_closes).await?;
    // The sender reads on only once the initiator has restarted the channel. In a pull the
    // initiator hears of the lost connection from graphsync (its request ends disconnected,
    // or a transport error comes first) and restarts after the debounce. In a push the
    // initiator is the graphsync responder, whose response waits on the held read and sends
    // nothing: a transport error or else the no-progress window restarts it.
    let mut reasons = Vec::new();
    let wait = async {
        loop {
            if let Event::Monitor { channel: c, event } = a_events.recv().await?
                && c == channel
            {
                match event {
                    MonitorEvent::Restarting { reason, .. } => reasons.push(reason),
                    MonitorEvent::Restarted { .. } => return Ok::<(), anyhow::Error>(()),
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(common::PATIENCE, wait)
        .await
        .context("waiting for the restart")??;
    ensure!(
        !reasons.is_empty() && reasons.iter().all(|r| !r.is_empty()),
        "restart reasons {reasons:?}"
    );
    sender.gate.release();

    ensure_completed(&a, &b, &channel, pull, &dag).await?;

    // The initiator's monitor restarted the channel, over a connection the initiator dialed.
    ensure!(
        a.connections().dialed > a_dialed,
        "the initiator dialed again: {:?}",
        a.connections()
    );
    ensure!(
        b.connections().dialed == b_dialed,
        "the responder dialed: {:?}",
        b.connections()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_restarts_after_the_initiator_closes_the_connection() -> anyhow::Result<()> {
    disconnect_and_restart(Net::Memory, true, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_restarts_after_the_responder_closes_the_connection() -> anyhow::Result<()> {
    disconnect_and_restart(Net::Memory, true, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_restarts_after_the_initiator_closes_the_connection() -> anyhow::Result<()> {
    disconnect_and_restart(Net::Memory, false, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_restarts_after_the_responder_closes_the_connection() -> anyhow::Result<()> {
    disconnect_and_restart(Net::Memory, false, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_over_loopback_tcp_restarts_after_a_disconnect() -> anyhow::Result<()> {
    disconnect_and_restart(Net::Tcp, true, true).await
}

/// `a` opens a pull to `b`, which is gone before it can accept: graphsync cannot reach it,
/// the monitor tries restarting, each restart fails because the peer is unreachable, and after
/// the cap the channel fails with Go's text; the monitor's events say why each restart failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_an_unreachable_peer_fails_with_a_reason() -> anyhow::Result<()> {
    let a = monitored(Net::Memory, monitor()).await?;
    let b = monitored(Net::Memory, monitor()).await?;
    a.learn(&b);
    let b_id = b.id();
    drop(b.stop().await?);
    let dag = Dag::new(3, 100, 95)?;
    let mut a_events = a.manager.subscribe();
    let channel = a.manager.open_pull(
        b_id.clone(),
        &TestVoucher("nobody".into()),
        dag.root,
        everything(),
    )?;
    let failed = until_state(&a.manager, &channel, |s| s.status.is_terminal()).await?;
    ensure!(
        failed.status == ChannelStatus::Failed
            && failed.message == "after 3 consecutive restarts failed to transfer any data",
        "{} ({})",
        failed.status,
        failed.message
    );
    let unreachable = format!("peer {} is unreachable", net::to_libp2p(&b_id)?);
    let mut failures = Vec::new();
    while let Some(event) = a_events.try_recv()? {
        if let Event::Monitor {
            channel: c,
            event: MonitorEvent::RestartFailed { reason, .. },
        } = event
            && c == channel
        {
            failures.push(reason);
        }
    }
    ensure!(
        failures.len() == 3 && failures.iter().all(|r| r.contains(&unreachable)),
        "restart failures {failures:?}"
    );
    Ok(())
}

/// `a` opens a push to `b`, which is gone before it can accept: the push request cannot be
/// sent, and the channel fails at once (spec §4.5 step 1, Go's `Error`), long before the
/// monitor's accept timeout, with the send error naming the unreachable peer as its message;
/// a `TransmitFailed` event says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_an_unreachable_peer_fails_with_a_reason() -> anyhow::Result<()> {
    // Beyond the test's patience: only the failed send can fail the channel.
    let accept = Duration::from_secs(600);
    let a = monitored(Net::Memory, monitor().with_accept_timeout(Some(accept))).await?;
    let b = monitored(Net::Memory, monitor()).await?;
    a.learn(&b);
    let b_id = b.id();
    drop(b.stop().await?);
    let dag = Dag::new(3, 100, 96)?;
    dag.load_into(&a.blocks).await?;
    let mut a_events = a.manager.subscribe();
    let channel = a.manager.open_push(
        b_id.clone(),
        &TestVoucher("nobody".into()),
        dag.root,
        everything(),
    )?;
    let failed = until_state(&a.manager, &channel, |s| s.status.is_terminal()).await?;
    let unreachable = format!("peer {} is unreachable", net::to_libp2p(&b_id)?);
    ensure!(
        failed.status == ChannelStatus::Failed && failed.message.contains(&unreachable),
        "{} ({})",
        failed.status,
        failed.message
    );
    let mut reasons = Vec::new();
    while let Some(event) = a_events.try_recv()? {
        if let Event::TransmitFailed { channel: c, reason } = event
            && c == channel
        {
            reasons.push(reason);
        }
    }
    ensure!(
        reasons.iter().any(|r| r.contains(&unreachable)),
        "send failures {reasons:?}"
    );
    Ok(())
}
