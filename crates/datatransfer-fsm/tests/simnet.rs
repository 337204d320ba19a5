//! Scenarios on [`SimNet`]: push and pull end to end with latency, jitter and duplicates,
//! pause/resume, cancel, a node restart from its snapshots, and paid retrieval (the responder
//! pauses every N bytes until a voucher pays, then settles on completion) with loss,
//! duplication and reordering; plus the property that random command sequences keep the
//! invariants (terminal statuses absorb, counters only grow, a restored engine has the
//! persisted statuses, no queue passes its bound), with and without revalidation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::cell::RefCell;
use std::rc::Rc;

use datatransfer_fsm::testing::{
    FaultScope, SimConfig, SimNet, SimOp, Validator, arb_sim_op, invoice_amount, paid_provider,
    paying_client, payment_amount, sim_payment,
};
use datatransfer_fsm::{ChannelStatus, Config, Engine, EventCode, ValidationKind};
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

/// A two-node net where node 1 is a paid provider (pausing every `interval` bytes) and node 0
/// its paying client, both running the revalidator hooks.
fn paid_net(seed: u64, config: SimConfig, interval: u64) -> SimNet {
    let config = SimConfig {
        engine: Config::default().with_revalidation(true),
        ..config
    };
    let mut net = SimNet::new(2, seed, config, Instant::now());
    net.set_validator(1, paid_provider(interval));
    net.set_client(0, paying_client());
    net
}

/// The provider's view after a paid transfer: (bytes it counted, highest payment received,
/// payment requests sent as voucher results).
fn provider_books(net: &SimNet, channel: &ChannelId, pull: bool) -> (u64, u64, usize) {
    let provider = net.engine(1).channel(channel).expect("provider");
    let delivered = if pull {
        provider.queued
    } else {
        provider.received
    };
    let paid = provider
        .vouchers
        .iter()
        .filter_map(payment_amount)
        .max()
        .unwrap_or(0);
    let requests = provider
        .voucher_results
        .iter()
        .filter(|r| invoice_amount(r).is_some())
        .count();
    (delivered, paid, requests)
}

#[test]
fn paid_pull_pauses_every_interval_and_settles_despite_duplicates_and_reordering() {
    for seed in 0..20 {
        let config = SimConfig {
            blocks: 20,
            jitter: Duration::from_millis(15),
            duplicate: 0.3,
            ..SimConfig::default()
        };
        let mut net = paid_net(seed, config, 3000);
        let channel = net.open_pull(0, 1).expect("open");
        net.run_until_idle();
        assert_completed_both(&net, &channel);
        let (delivered, paid, requests) = provider_books(&net, &channel, true);
        assert_eq!(delivered, 20_000, "seed {seed}");
        assert!(paid >= delivered, "everything paid; seed {seed}");
        // Six mid-transfer pauses (every 3000 bytes) and the final settlement.
        assert!(requests >= 7, "{requests} payment requests; seed {seed}");
        let client = net.engine(0).channel(&channel).expect("client");
        assert_eq!(client.received, 20_000, "seed {seed}");
        let pauses = net
            .events(1)
            .iter()
            .filter(|e| e.code == EventCode::PauseResponder)
            .count();
        assert!(
            pauses >= 6,
            "the provider paused {pauses} times; seed {seed}"
        );
        assert!(
            net.events(1)
                .iter()
                .any(|e| e.status == ChannelStatus::Finalizing),
            "settled through Finalizing; seed {seed}"
        );
    }
}

#[test]
fn paid_push_pauses_the_receiving_provider_and_settles() {
    for seed in 0..20 {
        let config = SimConfig {
            blocks: 20,
            jitter: Duration::from_millis(15),
            duplicate: 0.3,
            ..SimConfig::default()
        };
        // Node 0 pushes to the provider, which charges for what it receives.
        let mut net = paid_net(seed, config, 4000);
        let channel = net.open_push(0, 1).expect("open");
        net.run_until_idle();
        assert_completed_both(&net, &channel);
        let (delivered, paid, requests) = provider_books(&net, &channel, false);
        assert_eq!(delivered, 20_000, "seed {seed}");
        assert!(paid >= delivered, "everything paid; seed {seed}");
        assert!(requests >= 5, "{requests} payment requests; seed {seed}");
    }
}

#[test]
fn paid_pull_recovers_from_lost_payment_messages_by_paying_again() {
    let mut lossy_runs = 0;
    for seed in 0..20 {
        let config = SimConfig {
            blocks: 20,
            jitter: Duration::from_millis(15),
            duplicate: 0.2,
            drop: 0.3,
            drop_scope: FaultScope::PaymentMessages,
            ..SimConfig::default()
        };
        let mut net = paid_net(seed, config, 3000);
        let channel = net.open_pull(0, 1).expect("open");
        let mut retries = 0;
        for _ in 0..100 {
            net.run_until_idle();
            let done =
                (0..2).all(|node| net.status(node, &channel) == Some(ChannelStatus::Completed));
            if done {
                break;
            }
            // The client's timer: nothing moves, so it pays again for everything it has,
            // or what was last asked, whichever is more (payments are cumulative).
            let client = net.engine(0).channel(&channel).expect("client");
            let asked = client
                .voucher_results
                .iter()
                .filter_map(invoice_amount)
                .max()
                .unwrap_or(0);
            let amount = asked.max(client.received);
            retries += 1;
            net.command(0, |engine, now| {
                engine.send_voucher(&channel, sim_payment(amount), now)
            })
            .expect("the client's channel is live");
        }
        assert_completed_both(&net, &channel);
        if retries > 0 {
            lossy_runs += 1;
        }
        let (delivered, paid, _) = provider_books(&net, &channel, true);
        assert_eq!(delivered, 20_000, "seed {seed}");
        assert!(paid >= delivered, "seed {seed}");
        assert_eq!(
            net.engine(0).channel(&channel).expect("client").received,
            20_000,
            "seed {seed}"
        );
    }
    assert!(lossy_runs > 0, "some runs lost a payment message");
}

/// A validator that logs the bytes of every data question per channel before `inner` answers.
fn recording(mut inner: Validator, log: Rc<RefCell<BTreeMap<ChannelId, u64>>>) -> Validator {
    Box::new(move |question| {
        if let ValidationKind::PullDataSent {
            additional_bytes, ..
        }
        | ValidationKind::PushDataReceived {
            additional_bytes, ..
        } = question.kind
        {
            *log.borrow_mut()
                .entry(question.channel.clone())
                .or_default() += additional_bytes;
        }
        inner(question)
    })
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
        paid in any::<bool>(),
    ) {
        let config = SimConfig {
            jitter: Duration::from_millis(10),
            duplicate,
            engine: Config::default().with_revalidation(paid),
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, seed, config, Instant::now());
        // With revalidation, both nodes are paid providers and paying clients, and every
        // data question's bytes are logged per node.
        let logs: Vec<Rc<RefCell<BTreeMap<ChannelId, u64>>>> =
            (0..2).map(|_| Rc::default()).collect();
        if paid {
            for (node, log) in logs.iter().enumerate() {
                net.set_validator(node, recording(paid_provider(2500), Rc::clone(log)));
                net.set_client(node, paying_client());
            }
        }
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
        // Every byte a responder counted was reported to its revalidator exactly once (the
        // net answers each question at once, so none is left open).
        for (node, log) in logs.iter().enumerate() {
            for state in net.engine(node).channels() {
                if !paid || state.is_initiator() {
                    continue;
                }
                let counted = if state.is_pull() { state.queued } else { state.received };
                let reported = log.borrow().get(&state.channel_id).copied().unwrap_or(0);
                prop_assert_eq!(reported, counted, "node {} seed {}", node, seed);
            }
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
