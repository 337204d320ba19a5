//! The channel monitor over the in-memory transport, on tokio's paused clock (the runtime
//! jumps to the next deadline whenever every task waits): accept timeout, automatic restart
//! after a partition, the cap on consecutive restarts, pause awareness, the no-progress
//! window, a responder that never restarts, and cancelling while the peer is gone.

// The scenarios here run on the paused clock, with a store in memory only.
#[allow(unused_macros)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Blocks, Dag, Mgr, Peer, TestStore, TestVoucher, everything, hub, peer_configured};
use datatransfer::{
    ChannelId, ChannelState, ChannelStatus, Config, Decision, Event, MemStore, MonitorConfig,
    MonitorEvent, MonitorFailure, Node, Revalidator, Subscription, Voucher, VoucherError,
};
use datatransfer_transport::mem::MemHub;

/// How long (on the paused clock) a test waits for something before failing.
const PATIENCE: Duration = Duration::from_secs(3600);
const WINDOW: Duration = Duration::from_secs(30);
const DEBOUNCE: Duration = Duration::from_secs(1);
const BACKOFF: Duration = Duration::from_secs(5);
const ACCEPT: Duration = Duration::from_secs(20);
const MAX_RESTARTS: u32 = 3;
/// Blocks that flow before the test cuts or stalls the transfer.
const FIRST_BLOCKS: u64 = 8;

fn monitored() -> Config {
    Config::default().with_monitor(Some(
        MonitorConfig::default()
            .with_accept_timeout(Some(ACCEPT))
            .with_complete_timeout(Some(Duration::from_secs(60)))
            .with_restart_timing(DEBOUNCE, BACKOFF)
            .with_max_consecutive_restarts(MAX_RESTARTS)
            .with_no_progress_window(Some(WINDOW)),
    ))
}

async fn node(hub: &MemHub<Blocks>, n: u8, config: Config) -> anyhow::Result<Peer> {
    peer_configured(
        hub,
        n,
        TestStore::Mem(MemStore::new()),
        Arc::new(Blocks::new()),
        config,
        |m| {
            m.register_voucher_type(common::AcceptAll)?;
            Ok(())
        },
    )
    .await
}

/// Waits (paused clock) until `channel` at `peer` satisfies `test`.
async fn until(
    peer: &Mgr,
    channel: &ChannelId,
    test: impl FnMut(&ChannelState) -> bool,
) -> anyhow::Result<ChannelState> {
    common::until_state_within(peer, channel, PATIENCE, test).await
}

/// Waits for `channel` to reach `status`, failing if it ends otherwise.
async fn until_status(
    peer: &Mgr,
    channel: &ChannelId,
    status: ChannelStatus,
) -> anyhow::Result<ChannelState> {
    common::until_status_within(peer, channel, PATIENCE, status).await
}

/// Waits for the next monitor event of `events` that `pick` accepts; returns the monitor
/// events seen until then, that one included.
async fn until_monitor(
    events: &mut Subscription,
    mut pick: impl FnMut(&MonitorEvent) -> bool,
) -> anyhow::Result<Vec<MonitorEvent>> {
    let mut seen = Vec::new();
    let wait = async {
        loop {
            if let Event::Monitor { event, .. } = events.recv().await? {
                let done = pick(&event);
                seen.push(event);
                if done {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .context("waiting for a monitor event")??;
    Ok(seen)
}

/// The monitor events queued in `events` now.
fn queued_monitor_events(events: &mut Subscription) -> anyhow::Result<Vec<MonitorEvent>> {
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv()? {
        if let Event::Monitor { event, .. } = event {
            seen.push(event);
        }
    }
    Ok(seen)
}

/// A pull of `dag` from `b` by `a`, stopped by the hub after [`FIRST_BLOCKS`] blocks.
async fn pull_first_blocks(
    hub: &MemHub<Blocks>,
    a: &Peer,
    b: &Peer,
    dag: &Dag,
) -> anyhow::Result<ChannelId> {
    dag.load_into(&b.blocks).await?;
    hub.limit_blocks(Some(FIRST_BLOCKS));
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("monitored".into()),
        dag.root,
        everything(),
    )?;
    until(&a.manager, &channel, |s| {
        s.received_blocks_total >= FIRST_BLOCKS
    })
    .await?;
    Ok(channel)
}

/// Both ends completed with the DAG's exact totals, every block at the receiver.
async fn completed_exactly(
    receiver: &Peer,
    sender: &Peer,
    channel: &ChannelId,
    dag: &Dag,
) -> anyhow::Result<()> {
    let received = until_status(&receiver.manager, channel, ChannelStatus::Completed).await?;
    let sent = until_status(&sender.manager, channel, ChannelStatus::Completed).await?;
    let total = dag.total_bytes();
    ensure!(
        received.received == total,
        "received {} of {total}",
        received.received
    );
    ensure!(received.received_blocks_total == dag.block_count());
    ensure!(sent.sent == total, "sent {} of {total}", sent.sent);
    ensure!(sent.queued == total, "queued {} of {total}", sent.queued);
    ensure!(dag.is_in(&receiver.blocks).await?, "every block arrived");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn accept_timeout_fails_the_channel_with_a_clear_reason() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, Config::default()).await?;
    let dag = Dag::new(4, 100, 70)?;
    dag.load_into(&a.blocks).await?;
    // The push request is lost: the responder never hears of the channel.
    hub.drop_messages(&a.id, &b.id, true);
    let mut events = a.manager.subscribe();
    let opened = tokio::time::Instant::now();
    let channel = a.manager.open_push(
        b.id.clone(),
        &TestVoucher("unanswered".into()),
        dag.root,
        everything(),
    )?;
    let seen = until_monitor(&mut events, |e| matches!(e, MonitorEvent::Failed { .. })).await?;
    ensure!(
        seen == vec![MonitorEvent::Failed {
            failure: MonitorFailure::AcceptTimeout { timeout: ACCEPT }
        }],
        "{seen:?}"
    );
    let failed = until_status(&a.manager, &channel, ChannelStatus::Failed).await?;
    ensure!(
        opened.elapsed() >= ACCEPT,
        "failed after {:?}",
        opened.elapsed()
    );
    ensure!(
        opened.elapsed() < ACCEPT + WINDOW,
        "failed after {:?}",
        opened.elapsed()
    );
    ensure!(
        failed.message == "channel was not accepted within 20s",
        "{:?}",
        failed.message
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn partition_after_first_blocks_restarts_automatically_with_exact_totals()
-> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, monitored()).await?;
    let dag = Dag::new(24, 300, 71)?;
    let mut at_a = a.manager.subscribe();
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;

    hub.disconnect(&a.id, &b.id);
    // The first restart, a debounce after the errors, cannot reach the peer.
    let seen = until_monitor(&mut at_a, |e| {
        matches!(e, MonitorEvent::RestartFailed { .. })
    })
    .await?;
    ensure!(
        matches!(
            seen.as_slice(),
            [
                MonitorEvent::Restarting { attempt: 1, .. },
                MonitorEvent::RestartFailed { attempt: 1, .. }
            ]
        ),
        "{seen:?}"
    );
    hub.reconnect(&a.id, &b.id);
    hub.limit_blocks(None);
    // The next one, a backoff later, does.
    let seen = until_monitor(&mut at_a, |e| matches!(e, MonitorEvent::Restarted { .. })).await?;
    ensure!(
        matches!(
            seen.as_slice(),
            [
                MonitorEvent::Restarting { attempt: 2, .. },
                MonitorEvent::Restarted { attempt: 2 }
            ]
        ),
        "{seen:?}"
    );
    completed_exactly(&a, &b, &channel, &dag).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn repeated_failures_stop_at_the_cap_with_a_failure_event() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, Config::default()).await?;
    let dag = Dag::new(24, 300, 72)?;
    let mut at_a = a.manager.subscribe();
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;

    hub.disconnect(&a.id, &b.id);
    let seen = until_monitor(&mut at_a, |e| matches!(e, MonitorEvent::Failed { .. })).await?;
    let attempts: Vec<u32> = seen
        .iter()
        .filter_map(|e| match e {
            MonitorEvent::Restarting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    ensure!(attempts == vec![1, 2, 3], "{seen:?}");
    ensure!(
        seen.last()
            == Some(&MonitorEvent::Failed {
                failure: MonitorFailure::TooManyRestarts {
                    restarts: MAX_RESTARTS
                }
            }),
        "{seen:?}"
    );
    let failed = until_status(&a.manager, &channel, ChannelStatus::Failed).await?;
    ensure!(
        failed.message == "after 3 consecutive restarts failed to transfer any data",
        "{:?}",
        failed.message
    );
    // Nothing more from the monitor for that channel.
    tokio::time::sleep(WINDOW * 10).await;
    ensure!(queued_monitor_events(&mut at_a)?.is_empty());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_paused_channel_is_not_restarted() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, monitored()).await?;
    let dag = Dag::new(24, 300, 73)?;
    let mut at_a = a.manager.subscribe();
    let mut at_b = b.manager.subscribe();
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;

    a.manager.pause(&channel)?;
    until_status(&b.manager, &channel, ChannelStatus::InitiatorPaused).await?;
    // Ten windows without a block: not a stall.
    tokio::time::sleep(WINDOW * 10).await;
    ensure!(a.manager.status(&channel) == ChannelStatus::InitiatorPaused);
    ensure!(b.manager.status(&channel) == ChannelStatus::InitiatorPaused);
    let from_a = queued_monitor_events(&mut at_a)?;
    let from_b = queued_monitor_events(&mut at_b)?;
    ensure!(
        from_a.is_empty() && from_b.is_empty(),
        "{from_a:?} {from_b:?}"
    );

    // Resumed but still without blocks: now it is a stall, a window after the resume.
    let resumed = tokio::time::Instant::now();
    a.manager.resume(&channel)?;
    let seen = until_monitor(&mut at_a, |e| matches!(e, MonitorEvent::Restarted { .. })).await?;
    ensure!(resumed.elapsed() >= WINDOW, "{:?}", resumed.elapsed());
    ensure!(
        matches!(
            seen.as_slice(),
            [
                MonitorEvent::Stalled { .. },
                MonitorEvent::Restarting { attempt: 1, .. },
                MonitorEvent::Restarted { attempt: 1 }
            ]
        ),
        "{seen:?}"
    );
    hub.limit_blocks(None);
    completed_exactly(&a, &b, &channel, &dag).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn no_progress_gives_an_event_then_a_restart() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, monitored()).await?;
    let dag = Dag::new(24, 300, 74)?;
    let mut at_a = a.manager.subscribe();
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;
    let stalled_from = tokio::time::Instant::now();

    // The exchange is alive but no block comes.
    let seen = until_monitor(&mut at_a, |e| matches!(e, MonitorEvent::Restarted { .. })).await?;
    ensure!(
        stalled_from.elapsed() >= WINDOW,
        "{:?}",
        stalled_from.elapsed()
    );
    ensure!(
        matches!(
            seen.as_slice(),
            [
                MonitorEvent::Stalled { idle: WINDOW },
                MonitorEvent::Restarting { attempt: 1, .. },
                MonitorEvent::Restarted { attempt: 1 }
            ]
        ),
        "{seen:?}"
    );
    hub.limit_blocks(None);
    completed_exactly(&a, &b, &channel, &dag).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_responder_does_not_restart() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, Config::default()).await?;
    let b = node(&hub, 2, monitored()).await?;
    let dag = Dag::new(24, 300, 75)?;
    let mut at_b = b.manager.subscribe();
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;
    let cut = tokio::time::Instant::now();

    hub.disconnect(&a.id, &b.id);
    let seen = until_monitor(&mut at_b, |e| matches!(e, MonitorEvent::Failed { .. })).await?;
    ensure!(
        seen == vec![
            MonitorEvent::Stalled { idle: WINDOW },
            MonitorEvent::Failed {
                failure: MonitorFailure::NoProgress { idle: WINDOW * 2 }
            }
        ],
        "{seen:?}"
    );
    ensure!(cut.elapsed() >= WINDOW * 2, "{:?}", cut.elapsed());
    let failed = until_status(&b.manager, &channel, ChannelStatus::Failed).await?;
    ensure!(
        failed.message == "no progress for 60s",
        "{:?}",
        failed.message
    );
    // The unmonitored initiator keeps its channel, for a restart of its own.
    ensure!(!a.manager.status(&channel).is_terminal());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cancel_while_the_peer_is_gone() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, monitored()).await?;
    let dag = Dag::new(24, 300, 76)?;
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;

    let mut at_a = a.manager.subscribe();
    let mut at_b = b.manager.subscribe();
    hub.disconnect(&a.id, &b.id);
    // The initiator's monitor tries to restart; the peer cannot be reached.
    until_monitor(&mut at_a, |e| {
        matches!(e, MonitorEvent::RestartFailed { .. })
    })
    .await?;
    until(&b.manager, &channel, |s| !s.message.is_empty()).await?;
    queued_monitor_events(&mut at_a)?;
    queued_monitor_events(&mut at_b)?;
    a.manager.close(&channel)?;
    b.manager.close(&channel)?;
    ensure!(a.manager.status(&channel) == ChannelStatus::Cancelled);
    ensure!(b.manager.status(&channel) == ChannelStatus::Cancelled);
    // The monitor lets a cancelled channel be: no restart, no failure, however long.
    tokio::time::sleep(WINDOW * 10).await;
    let from_a = queued_monitor_events(&mut at_a)?;
    let from_b = queued_monitor_events(&mut at_b)?;
    ensure!(
        from_a.is_empty() && from_b.is_empty(),
        "{from_a:?} {from_b:?}"
    );
    ensure!(a.manager.status(&channel) == ChannelStatus::Cancelled);
    ensure!(b.manager.status(&channel) == ChannelStatus::Cancelled);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn complete_timeout_fails_a_channel_whose_completion_never_comes() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = node(&hub, 2, Config::default()).await?;
    let dag = Dag::new(6, 100, 77)?;
    dag.load_into(&a.blocks).await?;
    // The responder's network messages (its Complete among them) are lost.
    hub.drop_messages(&b.id, &a.id, true);
    let mut events = a.manager.subscribe();
    let channel = a.manager.open_push(
        b.id.clone(),
        &TestVoucher("unfinished".into()),
        dag.root,
        everything(),
    )?;
    until(&a.manager, &channel, |s| {
        s.status == ChannelStatus::TransferFinished
    })
    .await?;
    let finished = tokio::time::Instant::now();
    let seen = until_monitor(&mut events, |e| matches!(e, MonitorEvent::Failed { .. })).await?;
    let timeout = Duration::from_secs(60);
    ensure!(
        seen == vec![MonitorEvent::Failed {
            failure: MonitorFailure::CompleteTimeout { timeout }
        }],
        "{seen:?}"
    );
    ensure!(finished.elapsed() >= timeout, "{:?}", finished.elapsed());
    let failed = until_status(&a.manager, &channel, ChannelStatus::Failed).await?;
    ensure!(
        failed.message == "channel did not complete within 60s of its transfer finishing",
        "{:?}",
        failed.message
    );
    Ok(())
}

/// A payment voucher with no content.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Payment;

impl Voucher for Payment {
    const TYPE: &'static str = "test/payment";
    fn to_node(&self) -> Node {
        Node::Null
    }
    fn from_node(_: &Node) -> Result<Self, VoucherError> {
        Ok(Payment)
    }
}

/// A provider that pauses its pull once, after the first block it sends, until it is paid.
#[derive(Default)]
struct PayOnce {
    asked: AtomicBool,
}

impl Revalidator<Payment> for PayOnce {
    fn revalidate(&self, _: &ChannelId, _: &Payment) -> Decision {
        Decision::resume()
    }

    fn on_pull_data_sent(&self, _: &ChannelId, _: u64) -> Option<Decision> {
        (!self.asked.swap(true, Ordering::SeqCst)).then(Decision::pause)
    }
}

#[tokio::test(start_paused = true)]
async fn waiting_for_payment_is_not_a_stall() -> anyhow::Result<()> {
    let hub = hub();
    let a = node(&hub, 1, monitored()).await?;
    let b = peer_configured(
        &hub,
        2,
        TestStore::Mem(MemStore::new()),
        Arc::new(Blocks::new()),
        monitored(),
        |m| {
            m.register_voucher_type(common::AcceptAll)?;
            m.register_revalidator(PayOnce::default())?;
            Ok(())
        },
    )
    .await?;
    let dag = Dag::new(24, 300, 78)?;
    dag.load_into(&b.blocks).await?;
    let mut at_a = a.manager.subscribe();
    let mut at_b = b.manager.subscribe();
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("pay later".into()),
        dag.root,
        everything(),
    )?;
    until_status(&a.manager, &channel, ChannelStatus::ResponderPaused).await?;
    until_status(&b.manager, &channel, ChannelStatus::ResponderPaused).await?;
    // Ten windows without payment: the provider waits, nobody restarts or fails.
    tokio::time::sleep(WINDOW * 10).await;
    ensure!(a.manager.status(&channel) == ChannelStatus::ResponderPaused);
    ensure!(b.manager.status(&channel) == ChannelStatus::ResponderPaused);
    let from_a = queued_monitor_events(&mut at_a)?;
    let from_b = queued_monitor_events(&mut at_b)?;
    ensure!(
        from_a.is_empty() && from_b.is_empty(),
        "{from_a:?} {from_b:?}"
    );

    a.manager.send_voucher(&channel, &Payment)?;
    completed_exactly(&a, &b, &channel, &dag).await?;
    ensure!(queued_monitor_events(&mut at_a)?.is_empty());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_restored_initiator_is_restarted_by_its_monitor() -> anyhow::Result<()> {
    let hub = hub();
    let store = MemStore::new();
    let a = peer_configured(
        &hub,
        1,
        TestStore::Mem(store.clone()),
        Arc::new(Blocks::new()),
        monitored(),
        |m| {
            m.register_voucher_type(common::AcceptAll)?;
            Ok(())
        },
    )
    .await?;
    let b = node(&hub, 2, Config::default()).await?;
    let dag = Dag::new(24, 300, 79)?;
    let channel = pull_first_blocks(&hub, &a, &b, &dag).await?;
    until(&b.manager, &channel, |s| {
        s.sent_blocks_total >= FIRST_BLOCKS
    })
    .await?;

    // The initiator's process stops and starts again from its store, blocks kept.
    a.manager.stop().await?;
    let Peer { id, blocks, .. } = a;
    ensure!(hub.remove_peer(&id), "the stopped peer leaves the hub");
    hub.limit_blocks(None);
    let a = peer_configured(&hub, 1, TestStore::Mem(store), blocks, monitored(), |m| {
        m.register_voucher_type(common::AcceptAll)?;
        Ok(())
    })
    .await?;
    let mut at_a = a.manager.subscribe();
    let restored = tokio::time::Instant::now();
    // Nobody calls restart_channel: the monitor does, a window after the start.
    let seen = until_monitor(&mut at_a, |e| matches!(e, MonitorEvent::Restarted { .. })).await?;
    ensure!(restored.elapsed() >= WINDOW, "{:?}", restored.elapsed());
    ensure!(
        matches!(
            seen.as_slice(),
            [
                MonitorEvent::Stalled { .. },
                MonitorEvent::Restarting { attempt: 1, .. },
                MonitorEvent::Restarted { attempt: 1 }
            ]
        ),
        "{seen:?}"
    );
    completed_exactly(&a, &b, &channel, &dag).await?;
    Ok(())
}
