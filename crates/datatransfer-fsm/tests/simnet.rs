//! Scenarios on [`SimNet`]: push and pull end to end with latency, jitter and duplicates,
//! pause/resume, cancel, and a node restart from its snapshots; plus the property that random
//! command sequences keep the invariants (terminal statuses absorb, counters only grow, a
//! restored engine has the persisted statuses, no queue passes its bound).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datatransfer_fsm::testing::{SimConfig, SimNet, SimOp, arb_sim_op};
use datatransfer_fsm::{ChannelStatus, Engine, EventCode};
use datatransfer_message::ChannelId;
use proptest::prelude::*;

fn assert_completed_both(net: &SimNet, channel: &ChannelId) {
    for node in 0..2 {
        assert_eq!(
            net.status(node, channel),
            Some(ChannelStatus::Completed),
            "node {node}, seed {}",
            net.seed()
        );
    }
}

#[test]
fn pull_completes_at_both_ends_and_counts_every_byte_once() {
    for seed in 0..20 {
        let config = SimConfig {
            jitter: Duration::from_millis(15),
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, seed, config.clone(), Instant::now());
        let channel = net.open_pull(0, 1).expect("open");
        net.run_until_idle();
        assert_completed_both(&net, &channel);
        let total = config.blocks * config.block_size;
        let client = net.engine(0).channel(&channel).expect("client");
        let provider = net.engine(1).channel(&channel).expect("provider");
        assert_eq!(client.received, total, "seed {seed}");
        assert_eq!(
            (provider.sent, provider.queued),
            (total, total),
            "seed {seed}"
        );
        assert_eq!(client.received_blocks_total, config.blocks);
    }
}

#[test]
fn push_completes_at_both_ends() {
    for seed in 0..20 {
        let config = SimConfig {
            jitter: Duration::from_millis(15),
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, seed, config.clone(), Instant::now());
        let channel = net.open_push(0, 1).expect("open");
        net.run_until_idle();
        assert_completed_both(&net, &channel);
        let receiver = net.engine(1).channel(&channel).expect("receiver");
        assert_eq!(receiver.received, config.blocks * config.block_size);
        let codes: Vec<EventCode> = net.events(1).iter().map(|e| e.code).collect();
        assert_eq!(
            codes[..3],
            [EventCode::Open, EventCode::Accept, EventCode::Opened]
        );
    }
}

#[test]
fn duplicated_messages_do_not_break_completion() {
    for seed in 0..20 {
        let config = SimConfig {
            duplicate: 0.5,
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, seed, config, Instant::now());
        let pull = net.open_pull(0, 1).expect("open");
        let push = net.open_push(1, 0).expect("open");
        net.run_until_idle();
        assert_completed_both(&net, &pull);
        assert_completed_both(&net, &push);
    }
}

#[test]
fn pull_pauses_and_resumes_midway() {
    let config = SimConfig {
        blocks: 200,
        ..SimConfig::default()
    };
    let mut net = SimNet::new(2, 3, config, Instant::now());
    let channel = net.open_pull(0, 1).expect("open");
    net.run_for(Duration::from_millis(30));
    net.command(0, |engine, now| engine.pause(&channel, now))
        .expect("pause");
    net.run_until_idle();
    assert_eq!(
        net.status(0, &channel),
        Some(ChannelStatus::InitiatorPaused)
    );
    assert_eq!(
        net.status(1, &channel),
        Some(ChannelStatus::InitiatorPaused)
    );
    let received = net.engine(0).channel(&channel).expect("client").received;
    assert!(
        received > 0 && received < 200_000,
        "paused midway: {received}"
    );
    net.command(0, |engine, now| engine.resume(&channel, now))
        .expect("resume");
    net.run_until_idle();
    assert_completed_both(&net, &channel);
    assert_eq!(
        net.engine(0).channel(&channel).expect("client").received,
        200_000
    );
}

#[test]
fn cancel_midway_ends_cancelled_at_both_ends() {
    let config = SimConfig {
        blocks: 50,
        ..SimConfig::default()
    };
    let mut net = SimNet::new(2, 4, config, Instant::now());
    let channel = net.open_push(0, 1).expect("open");
    net.run_for(Duration::from_millis(40));
    net.command(1, |engine, now| engine.cancel(&channel, now))
        .expect("cancel");
    net.run_until_idle();
    for node in 0..2 {
        assert_eq!(net.status(node, &channel), Some(ChannelStatus::Cancelled));
    }
}

#[test]
fn pull_resumes_after_initiator_restart_without_recounting() {
    let config = SimConfig {
        blocks: 30,
        ..SimConfig::default()
    };
    let mut net = SimNet::new(2, 5, config, Instant::now());
    let channel = net.open_pull(0, 1).expect("open");
    net.run_for(Duration::from_millis(35));
    let before = net.snapshot(0, &channel).expect("persisted").clone();
    assert!(before.received_blocks_total > 0 && before.received_blocks_total < 30);

    net.restart_node(0);
    assert_eq!(net.status(0, &channel), Some(before.status));
    net.command(0, |engine, now| engine.restart(&channel, now))
        .expect("restart");
    net.run_until_idle();
    assert_completed_both(&net, &channel);
    let client = net.engine(0).channel(&channel).expect("client");
    assert_eq!(
        client.received, 30_000,
        "each block counted once across the restart"
    );
    assert_eq!(client.received_blocks_total, 30);
    assert!(net.events(1).iter().any(|e| e.code == EventCode::Restart));
}

#[test]
fn push_resumes_after_responder_restart() {
    let config = SimConfig {
        blocks: 30,
        ..SimConfig::default()
    };
    let mut net = SimNet::new(2, 6, config, Instant::now());
    let channel = net.open_push(0, 1).expect("open");
    net.run_for(Duration::from_millis(35));
    net.restart_node(1);
    // The responder asks the initiator to restart (Type 7); the initiator repeats its request.
    net.command(1, |engine, now| engine.restart(&channel, now))
        .expect("restart");
    net.run_until_idle();
    assert_completed_both(&net, &channel);
    assert_eq!(
        net.engine(1).channel(&channel).expect("receiver").received,
        30_000
    );
}

/// Everything the invariants compare between two moments.
fn observe(net: &SimNet) -> BTreeMap<(usize, ChannelId), (ChannelStatus, [u64; 6])> {
    let mut seen = BTreeMap::new();
    for node in 0..2 {
        for state in net.engine(node).channels() {
            let counters = [
                state.sent,
                state.received,
                state.queued,
                state.sent_blocks_total,
                state.received_blocks_total,
                state.queued_blocks_total,
            ];
            seen.insert((node, state.channel_id.clone()), (state.status, counters));
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_operations_keep_the_invariants(
        seed in any::<u64>(),
        ops in prop::collection::vec(arb_sim_op(), 1..40),
        duplicate in prop_oneof![Just(0.0), Just(0.3)],
    ) {
        let config = SimConfig {
            jitter: Duration::from_millis(10),
            duplicate,
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, seed, config, Instant::now());
        let mut before = observe(&net);
        for op in ops.iter().chain(std::iter::once(&SimOp::RunFor(10_000))) {
            op.apply(&mut net);
            let after = observe(&net);
            for (key, (status, counters)) in &before {
                let Some((now_status, now_counters)) = after.get(key) else {
                    continue;
                };
                if status.is_terminal() {
                    prop_assert_eq!(now_status, status, "terminal absorbs; seed {}", seed);
                }
                // A node restart restores from snapshots, which are taken after every change,
                // so even then nothing goes backwards.
                for (old, new) in counters.iter().zip(now_counters) {
                    prop_assert!(new >= old, "counters only grow; seed {}", seed);
                }
            }
            before = after;
        }
        // No queue passed its bound.
        for node in 0..2 {
            let (transmits, events) = net.peak_queues(node);
            let config = net.engine(node).config();
            prop_assert!(transmits <= config.max_transmits && events <= config.max_events);
        }
        // A restart from the persisted snapshots gives the same statuses.
        for node in 0..2 {
            let mut restored = Engine::new(net.peer(node), net.engine(node).config().clone());
            let states: Vec<_> = net
                .engine(node)
                .channels()
                .filter_map(|s| net.snapshot(node, &s.channel_id).cloned())
                .collect();
            restored.restore(states).expect("own snapshots");
            for state in net.engine(node).channels() {
                prop_assert_eq!(
                    restored.channel(&state.channel_id).map(|s| s.status),
                    Some(state.status),
                    "seed {}", seed
                );
            }
        }
    }
}
