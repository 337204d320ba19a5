//! Two managers over the in-memory transport, each scenario once with `MemStore` and once with
//! `SledStore`: push, pull, rejections, pause and resume, cancel, parallel channels, and the
//! order subscribers see.

#[macro_use]
mod common;

use std::sync::Arc;

use anyhow::{Context, ensure};
use common::{
    Backend, Blocks, Dag, Peer, TestVoucher, UnknownVoucher, everything, hub, open_store, peer,
    until_event, until_status,
};
use datatransfer::Event;
use datatransfer_fsm::{ChannelStatus, EventCode};

/// Two started peers, 1 and 2; peer 2 holds `dag` when `provider_has_dag`, else peer 1.
async fn pair(
    backend: Backend,
    dir: &tempfile::TempDir,
    dag: &Dag,
) -> anyhow::Result<(Peer, Peer)> {
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    Ok((a, b))
}

over_both_stores!(pull_moves_the_whole_dag);
async fn pull_moves_the_whole_dag(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(12, 700, 1)?;
    let (a, b) = pair(backend, &dir, &dag).await?;
    let voucher = TestVoucher("pull please".into());
    let channel = a
        .manager
        .open_pull(b.id.clone(), &voucher, dag.root, everything())?;
    let mut b_events = b.manager.subscribe_channel(channel.clone());
    let at_a = until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    ensure!(dag.is_in(&a.blocks).await?, "every block arrived");
    ensure!(
        at_a.received == dag.total_bytes(),
        "received {} bytes",
        at_a.received
    );
    ensure!(at_a.received_blocks_total == dag.block_count());
    common::until_status_on(
        &b.manager,
        &mut b_events,
        &channel,
        ChannelStatus::Completed,
    )
    .await?;
    let at_b = b.manager.channel_state(&channel)?;
    ensure!(at_b.sent == dag.total_bytes(), "sent {} bytes", at_b.sent);
    ensure!(at_b.queued == dag.total_bytes());
    ensure!(
        at_b.vouchers.len() == 1
            && at_b.vouchers[0].node == ipld_dagcbor::Node::text("pull please")
    );
    // Go's stage trace, stamped with the wall clock.
    let names: Vec<_> = at_b.stages.names().collect();
    ensure!(names.first() == Some(&"Requested"), "stages {names:?}");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos()
        - 60_000_000_000;
    ensure!(
        at_b.stages
            .stage("Requested")
            .is_some_and(|stage| u128::try_from(stage.created_time.0).unwrap_or(0) > started),
        "the trace carries the wall clock: {:?}",
        at_b.stages
    );
    // The store holds the final state of both ends.
    use datatransfer_store::ChannelStore;
    ensure!(a.store.get(&channel)?.map(|s| s.status) == Some(ChannelStatus::Completed));
    ensure!(b.store.get(&channel)?.map(|s| s.status) == Some(ChannelStatus::Completed));
    Ok(())
}

over_both_stores!(push_moves_the_whole_dag);
async fn push_moves_the_whole_dag(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(9, 1000, 2)?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    dag.load_into(&a.blocks).await?;
    let channel = a.manager.open_push(
        b.id.clone(),
        &TestVoucher("take it".into()),
        dag.root,
        everything(),
    )?;
    let at_a = until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    let at_b = until_status(&b.manager, &channel, ChannelStatus::Completed).await?;
    ensure!(dag.is_in(&b.blocks).await?, "every block arrived");
    ensure!(at_a.sent == dag.total_bytes(), "sent {}", at_a.sent);
    ensure!(
        at_b.received == dag.total_bytes(),
        "received {}",
        at_b.received
    );
    ensure!(at_b.received_blocks_total == dag.block_count());
    Ok(())
}

over_both_stores!(unregistered_voucher_is_rejected_with_a_reason);
async fn unregistered_voucher_is_rejected_with_a_reason(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(3, 100, 3)?;
    let (a, b) = pair(backend, &dir, &dag).await?;
    let mut b_events = b.manager.subscribe();
    for pull in [true, false] {
        let channel = if pull {
            a.manager
                .open_pull(b.id.clone(), &UnknownVoucher, dag.root, everything())?
        } else {
            a.manager
                .open_push(b.id.clone(), &UnknownVoucher, dag.root, everything())?
        };
        let failed = until_status(&a.manager, &channel, ChannelStatus::Failed).await?;
        ensure!(failed.message == "response rejected", "{}", failed.message);
        let reason = until_event(&mut b_events, |event| match event {
            Event::Rejected { channel: c, reason } if c == &channel => Some(reason.clone()),
            _ => None,
        })
        .await?;
        ensure!(reason == "unknown voucher type: test/unknown", "{reason}");
        ensure!(
            b.manager.status(&channel) == ChannelStatus::ChannelNotFoundError,
            "the responder made no channel"
        );
    }
    ensure!(!dag.is_in(&a.blocks).await?, "nothing was transferred");
    Ok(())
}

over_both_stores!(failing_validator_rejects_the_request);
async fn failing_validator_rejects_the_request(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(3, 100, 4)?;
    let (a, b) = pair(backend, &dir, &dag).await?;
    let mut b_events = b.manager.subscribe();
    let no = TestVoucher("no".into());
    let channel = a
        .manager
        .open_pull(b.id.clone(), &no, dag.root, everything())?;
    let failed = until_status(&a.manager, &channel, ChannelStatus::Failed).await?;
    ensure!(failed.message == "response rejected");
    let reason = until_event(&mut b_events, |event| match event {
        Event::Rejected { channel: c, reason } if c == &channel => Some(reason.clone()),
        _ => None,
    })
    .await?;
    ensure!(reason == "the voucher says no", "{reason}");
    let pushed = a
        .manager
        .open_push(b.id.clone(), &no, dag.root, everything())?;
    until_status(&a.manager, &pushed, ChannelStatus::Failed).await?;
    Ok(())
}

over_both_stores!(parallel_channels_between_two_peers_all_complete);
async fn parallel_channels_between_two_peers_all_complete(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let mut channels = Vec::new();
    for seed in 0..6u8 {
        let dag = Dag::new(5 + usize::from(seed), 300, 10 + seed)?;
        let voucher = TestVoucher(format!("channel {seed}"));
        // Even seeds: a pulls from b; odd seeds: a pushes to b.
        let channel = if seed % 2 == 0 {
            dag.load_into(&b.blocks).await?;
            a.manager
                .open_pull(b.id.clone(), &voucher, dag.root, everything())?
        } else {
            dag.load_into(&a.blocks).await?;
            a.manager
                .open_push(b.id.clone(), &voucher, dag.root, everything())?
        };
        channels.push((channel, dag, seed % 2 == 0));
    }
    for (channel, dag, pull) in &channels {
        let at_a = until_status(&a.manager, channel, ChannelStatus::Completed).await?;
        let at_b = until_status(&b.manager, channel, ChannelStatus::Completed).await?;
        let (received, sent) = if *pull {
            (at_a.received, at_b.sent)
        } else {
            (at_b.received, at_a.sent)
        };
        ensure!(
            received == dag.total_bytes() && sent == dag.total_bytes(),
            "{channel}: {received} / {sent}"
        );
        let receiver: &Arc<Blocks> = if *pull { &a.blocks } else { &b.blocks };
        ensure!(dag.is_in(receiver).await?, "{channel}: blocks arrived");
    }
    let ids: std::collections::BTreeSet<_> = channels.iter().map(|(c, ..)| c.clone()).collect();
    ensure!(ids.len() == channels.len(), "every channel has its own id");
    ensure!(a.manager.in_progress_channels()?.len() == channels.len());
    Ok(())
}

over_both_stores!(subscribers_see_channel_events_in_order);
async fn subscribers_see_channel_events_in_order(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(6, 200, 5)?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    let mut all = a.manager.subscribe();
    // No block moves until the second subscriber is in place, so it sees the data events.
    hub.limit_blocks(Some(0));
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("watch".into()),
        dag.root,
        everything(),
    )?;
    let mut one = a.manager.subscribe_channel(channel.clone());
    hub.limit_blocks(None);
    let mut seen = Vec::new();
    until_event(&mut all, |event| {
        if let Event::Channel { event, .. } = event
            && event.channel == channel
        {
            seen.push(event.clone());
            return (event.status == ChannelStatus::Completed).then_some(());
        }
        None
    })
    .await?;
    let codes: Vec<EventCode> = seen.iter().map(|e| e.code).collect();
    ensure!(codes.first() == Some(&EventCode::Open), "{codes:?}");
    ensure!(
        codes.last() == Some(&EventCode::CleanupComplete),
        "{codes:?}"
    );
    let position = |code| codes.iter().position(|c| *c == code);
    let (accept, first_data, finish) = (
        position(EventCode::Accept).context("accept")?,
        position(EventCode::DataReceived).context("data")?,
        position(EventCode::FinishTransfer).context("finish")?,
    );
    ensure!(accept < first_data && first_data < finish, "{codes:?}");
    ensure!(
        codes
            .iter()
            .filter(|c| **c == EventCode::DataReceivedProgress)
            .count() as u64
            == dag.block_count(),
        "one progress event per block: {codes:?}"
    );
    ensure!(
        seen.windows(2).all(|w| w[0].at <= w[1].at),
        "times never go back"
    );
    // The per-channel subscription saw the same sequence, subscribed a little later: its
    // events are a suffix of it.
    let mut tail = Vec::new();
    while let Some(event) = one.try_recv()? {
        if let Event::Channel { event, .. } = event {
            tail.push(event);
        }
    }
    ensure!(
        !tail.is_empty() && seen.ends_with(&tail),
        "the channel subscription is in order"
    );
    Ok(())
}

over_both_stores!(cancel_from_either_side_ends_both);
async fn cancel_from_either_side_ends_both(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let cases = [(true, true), (true, false), (false, true), (false, false)];
    for (n, (pull, initiator_cancels)) in (0u8..).zip(cases) {
        let dag = Dag::new(40, 500, 20 + n)?;
        let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
        dag.load_into(&sender.blocks).await?;
        // Two blocks flow, then the transfer stands still until the cancel.
        hub.limit_blocks(Some(2));
        let voucher = TestVoucher(format!("cancel {n}"));
        let channel = if pull {
            a.manager
                .open_pull(b.id.clone(), &voucher, dag.root, everything())?
        } else {
            a.manager
                .open_push(b.id.clone(), &voucher, dag.root, everything())?
        };
        until_status(&a.manager, &channel, ChannelStatus::Ongoing).await?;
        until_status(&b.manager, &channel, ChannelStatus::Ongoing).await?;
        // While the channel lives, both ends protect the connection under its id.
        let tag = channel.to_string();
        ensure!(hub.protections(&a.id, &b.id).contains(&tag), "a protects");
        ensure!(hub.protections(&b.id, &a.id).contains(&tag), "b protects");
        let canceller = if initiator_cancels {
            &a.manager
        } else {
            &b.manager
        };
        canceller.close(&channel)?;
        until_status(&a.manager, &channel, ChannelStatus::Cancelled).await?;
        until_status(&b.manager, &channel, ChannelStatus::Cancelled).await?;
        hub.limit_blocks(None);
        ensure!(
            !dag.is_in(&receiver.blocks).await?,
            "the transfer stopped early"
        );
        ensure!(
            !hub.protections(&a.id, &b.id).contains(&tag),
            "a unprotects"
        );
        ensure!(
            !hub.protections(&b.id, &a.id).contains(&tag),
            "b unprotects"
        );
        // Cancelling again is a no-op, and other commands are refused with a typed error.
        canceller.close(&channel)?;
        ensure!(matches!(
            canceller.pause(&channel),
            Err(datatransfer::Error::Command(
                datatransfer_fsm::CommandError::Terminated { .. }
            ))
        ));
    }
    Ok(())
}

over_both_stores!(pause_and_resume_from_either_side);
async fn pause_and_resume_from_either_side(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let cases = [(true, true), (true, false), (false, true), (false, false)];
    for (n, (pull, initiator_pauses)) in (0u8..).zip(cases) {
        let dag = Dag::new(20, 400, 30 + n)?;
        let (sender, receiver) = if pull { (&b, &a) } else { (&a, &b) };
        dag.load_into(&sender.blocks).await?;
        hub.limit_blocks(Some(3));
        let voucher = TestVoucher(format!("pause {n}"));
        let channel = if pull {
            a.manager
                .open_pull(b.id.clone(), &voucher, dag.root, everything())?
        } else {
            a.manager
                .open_push(b.id.clone(), &voucher, dag.root, everything())?
        };
        until_status(&a.manager, &channel, ChannelStatus::Ongoing).await?;
        until_status(&b.manager, &channel, ChannelStatus::Ongoing).await?;
        let (pauser, other) = if initiator_pauses {
            (&a.manager, &b.manager)
        } else {
            (&b.manager, &a.manager)
        };
        let paused = if initiator_pauses {
            ChannelStatus::InitiatorPaused
        } else {
            ChannelStatus::ResponderPaused
        };
        pauser.pause(&channel)?;
        until_status(pauser, &channel, paused).await?;
        until_status(other, &channel, paused).await?;
        // Let blocks flow again at the transport: the pause alone holds the transfer.
        // A block already on its way when the pause was asked for may still land; after
        // that, nothing moves.
        hub.limit_blocks(None);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let before = receiver.manager.channel_state(&channel)?.received;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let after = receiver.manager.channel_state(&channel)?.received;
        ensure!(
            before == after,
            "case {n}: no data while paused: {before} then {after}"
        );
        ensure!(before < dag.total_bytes());
        // Only the side that paused can lift its pause.
        other.resume(&channel)?;
        ensure!(
            pauser.status(&channel) == paused,
            "case {n}: the other side's resume does not lift it"
        );
        pauser.resume(&channel)?;
        until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
        until_status(&b.manager, &channel, ChannelStatus::Completed).await?;
        let done = receiver.manager.channel_state(&channel)?;
        ensure!(
            done.received == dag.total_bytes(),
            "case {n}: {} of {}",
            done.received,
            dag.total_bytes()
        );
        ensure!(dag.is_in(&receiver.blocks).await?);
    }
    Ok(())
}

over_both_stores!(slow_subscriber_loses_its_oldest_events_and_never_blocks);
async fn slow_subscriber_loses_its_oldest_events_and_never_blocks(
    backend: Backend,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(10, 100, 70)?;
    let hub = hub();
    let config = datatransfer::Config::default().with_subscriber_capacity(4);
    let a = common::peer_configured(
        &hub,
        1,
        open_store(backend, &dir, "a")?,
        Arc::new(Blocks::new()),
        config,
        |m| {
            m.register_voucher_type(common::AcceptAll)?;
            Ok(())
        },
    )
    .await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    // This subscriber reads nothing until the transfer is over.
    let mut slow = a.manager.subscribe();
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("slow".into()),
        dag.root,
        everything(),
    )?;
    until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    let missed = match slow.recv().await {
        Err(datatransfer::SubscriptionError::Lagged { missed }) => missed,
        other => anyhow::bail!("expected a lag report, got {other:?}"),
    };
    ensure!(missed > 0);
    // Then the newest events follow, in order, ending with the completion.
    let mut last = None;
    while let Some(event) = slow.try_recv()? {
        if let Event::Channel { event, .. } = event {
            last = Some(event.status);
        }
    }
    ensure!(last == Some(ChannelStatus::Completed), "{last:?}");
    Ok(())
}

over_both_stores!(transport_configurer_gives_a_channel_its_own_block_store);
async fn transport_configurer_gives_a_channel_its_own_block_store(
    backend: Backend,
) -> anyhow::Result<()> {
    use datatransfer_transport::StoreName;
    use datatransfer_transport::mem::MemTransport;

    let dir = tempfile::tempdir()?;
    let dag = Dag::new(6, 300, 80)?;
    let hub = hub();
    let deal_blocks = Arc::new(Blocks::new());
    let configured = Arc::clone(&deal_blocks);
    let a = common::peer_with(
        &hub,
        1,
        open_store(backend, &dir, "a")?,
        Arc::new(Blocks::new()),
        move |m| {
            m.register_voucher_type(common::AcceptAll)?;
            m.register_transport_configurer(
                move |channel: &datatransfer::ChannelId,
                      _: &TestVoucher,
                      transport: &dyn std::any::Any| {
                    let transport = transport.downcast_ref::<MemTransport<Blocks>>()?;
                    let name = StoreName::new(format!("deal-{channel}"));
                    transport.register_store(name.clone(), Arc::clone(&configured));
                    Some(name)
                },
            )?;
            Ok(())
        },
    )
    .await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("own store".into()),
        dag.root,
        everything(),
    )?;
    let done = until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    ensure!(done.received == dag.total_bytes());
    ensure!(
        dag.is_in(&deal_blocks).await?,
        "the blocks went to the channel's store"
    );
    ensure!(!dag.is_in(&a.blocks).await?, "not to the default store");
    Ok(())
}

over_both_stores!(finished_channels_leave_the_engine_but_stay_readable);
async fn finished_channels_leave_the_engine_but_stay_readable(
    backend: Backend,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub();
    // An engine of 8 channels serves 12 transfers one after the other.
    let mut config = datatransfer::Config::default();
    config.engine.max_channels = 8;
    let register = |m: &common::Mgr| {
        m.register_voucher_type(common::AcceptAll)?;
        Ok(())
    };
    let store_a = open_store(backend, &dir, "a")?;
    let store_b = open_store(backend, &dir, "b")?;
    let blocks = Arc::new(Blocks::new());
    let a = common::peer_configured(&hub, 1, store_a, blocks, config.clone(), register).await?;
    let b = common::peer_configured(&hub, 2, store_b, Arc::new(Blocks::new()), config, register)
        .await?;
    let mut channels = Vec::new();
    for seed in 0..12u8 {
        let dag = Dag::new(2, 50, 90 + seed)?;
        dag.load_into(&b.blocks).await?;
        let voucher = TestVoucher(format!("many {seed}"));
        let channel = a
            .manager
            .open_pull(b.id.clone(), &voucher, dag.root, everything())?;
        until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
        until_status(&b.manager, &channel, ChannelStatus::Completed).await?;
        channels.push(channel);
    }
    let all = a.manager.in_progress_channels()?;
    ensure!(all.len() == 12, "{} channels listed", all.len());
    let first = &channels[0];
    ensure!(a.manager.status(first) == ChannelStatus::Completed);
    ensure!(a.manager.channel_state(first)?.received > 0);
    // Commands on a released channel behave as on a finished one.
    a.manager.close(first)?;
    a.manager.restart_channel(first)?;
    let refused = a.manager.pause(first);
    ensure!(
        matches!(
            refused,
            Err(datatransfer::Error::Command(
                datatransfer_fsm::CommandError::Terminated { .. }
            ))
        ),
        "{refused:?}"
    );
    Ok(())
}

over_both_stores!(wait_for_end_answers_once_the_channel_ends);
async fn wait_for_end_answers_once_the_channel_ends(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(40, 300, 7)?;
    let (a, b) = pair(backend, &dir, &dag).await?;
    let voucher = TestVoucher("wait for the end".into());
    let channel = a
        .manager
        .open_pull(b.id.clone(), &voucher, dag.root, everything())?;
    // The responder knows the channel once the request has reached it (possibly ended).
    common::until_state(&b.manager, &channel, |_| true).await?;
    let (at_a, at_b) = tokio::time::timeout(common::PATIENCE, async {
        tokio::join!(
            a.manager.wait_for_end(&channel),
            b.manager.wait_for_end(&channel)
        )
    })
    .await
    .context("the channel did not end in time")?;
    let (at_a, at_b) = (at_a?, at_b?);
    ensure!(at_a.status == ChannelStatus::Completed, "{:?}", at_a.status);
    ensure!(
        at_a.received == dag.total_bytes(),
        "received {}",
        at_a.received
    );
    ensure!(dag.is_in(&a.blocks).await?, "every block arrived");
    ensure!(at_b.status == ChannelStatus::Completed, "{:?}", at_b.status);
    ensure!(at_b.sent == dag.total_bytes(), "sent {}", at_b.sent);
    // After the end, at once, with the same final state.
    let again = a.manager.wait_for_end(&channel).await?;
    ensure!(again.status == ChannelStatus::Completed && again.received == at_a.received);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_end_waits_for_a_held_channel_and_gives_up_when_the_manager_stops()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(10, 300, 8)?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(Backend::Mem, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(Backend::Mem, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    let unknown = datatransfer_message::ChannelId::new(
        a.id.clone(),
        b.id.clone(),
        datatransfer_message::TransferId(999),
    );
    ensure!(matches!(
        a.manager.wait_for_end(&unknown).await,
        Err(datatransfer::Error::Command(
            datatransfer_fsm::CommandError::UnknownChannel { .. }
        ))
    ));

    // While no block moves, the wait waits; once blocks move, it ends with the channel.
    hub.limit_blocks(Some(0));
    let held = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("held".into()),
        dag.root,
        everything(),
    )?;
    until_status(&a.manager, &held, ChannelStatus::Ongoing).await?;
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ensure!(a.manager.status(&held) == ChannelStatus::Ongoing, "held");
        hub.limit_blocks(None);
        Ok(())
    };
    let (ended, released) = tokio::time::timeout(common::PATIENCE, async {
        tokio::join!(a.manager.wait_for_end(&held), release)
    })
    .await
    .context("the held channel did not end")?;
    released?;
    let ended = ended?;
    ensure!(
        ended.status == ChannelStatus::Completed,
        "{:?}",
        ended.status
    );
    ensure!(ended.received == dag.total_bytes());

    // No block moves, so this channel stays open until the manager stops.
    hub.limit_blocks(Some(0));
    let voucher = TestVoucher("never ends".into());
    let channel = a
        .manager
        .open_pull(b.id.clone(), &voucher, dag.root, everything())?;
    until_status(&a.manager, &channel, ChannelStatus::Ongoing).await?;
    let waiting = a.manager.wait_for_end(&channel);
    let stopping = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        a.manager.stop().await
    };
    let (ended, stopped) =
        tokio::time::timeout(common::PATIENCE, async { tokio::join!(waiting, stopping) })
            .await
            .context("the wait did not give up")?;
    stopped?;
    ensure!(
        matches!(ended, Err(datatransfer::Error::NotRunning)),
        "{ended:?}"
    );
    ensure!(matches!(
        a.manager.wait_for_end(&channel).await,
        Err(datatransfer::Error::NotRunning)
    ));
    Ok(())
}
