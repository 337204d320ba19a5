//! The channels' experimental trace (`ChannelState::stages`, spec §5.3): one stage per status
//! the channel applied events in, named after the status before each event, with Go's log
//! lines, stamped from the driver's wall-clock anchor; kept across a restore; bounded by
//! `Config::max_stages` and `Config::max_stage_logs`.

use std::time::{Duration, Instant};

use datatransfer_fsm::testing::{
    SIM_UNIX_START, SimConfig, SimNet, sim_root, sim_selector, sim_voucher,
};
use datatransfer_fsm::{
    ChannelEvent, ChannelStages, ChannelStatus, Config, Engine, UnixNanos, Validation, Verdict,
};
use datatransfer_message::{ChannelId, PeerId};

/// The stage names Go's rule gives for a channel's events: the status before each event
/// (`Requested` before `Open`), each name once, in the order first seen.
fn expected_names(events: &[ChannelEvent], channel: &ChannelId) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    let mut before = ChannelStatus::Requested;
    for event in events.iter().filter(|e| &e.channel == channel) {
        if !names.contains(&before.name()) {
            names.push(before.name());
        }
        before = event.status;
    }
    names
}

fn names(stages: &ChannelStages) -> Vec<&str> {
    stages.names().collect()
}

/// Every stage is created no later than it is updated, its lines are within that span, and
/// stages are created in time order, all after the net's start.
fn assert_times_consistent(stages: &ChannelStages) {
    let mut previous = SIM_UNIX_START;
    for stage in &stages.stages {
        assert!(stage.created_time >= previous, "{stages:?}");
        assert!(stage.created_time <= stage.updated_time, "{stages:?}");
        for line in &stage.logs {
            assert!(
                stage.created_time <= line.updated_time && line.updated_time <= stage.updated_time,
                "{stages:?}"
            );
        }
        assert!(stage.description.is_empty());
        previous = stage.created_time;
    }
}

#[test]
fn a_pulls_stages_list_the_statuses_it_went_through_in_order() {
    for seed in 0..10 {
        let config = SimConfig {
            jitter: Duration::from_millis(5),
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, seed, config, Instant::now());
        let channel = net.open_pull(0, 1).expect("open");
        net.run_until_idle();
        let client = net.engine(0).channel(&channel).expect("client");
        let provider = net.engine(1).channel(&channel).expect("provider");
        assert_eq!(client.status, ChannelStatus::Completed, "seed {seed}");

        // The responder: opened and accepted while Requested, data while Ongoing, cleanup
        // while Completing. `Completed` is never a stage: no event is applied in it.
        assert_eq!(
            names(&provider.stages),
            ["Requested", "Ongoing", "Completing"],
            "seed {seed}"
        );
        // The initiator: the same rule over its own events; its side and the responder's
        // Complete arrive in either order.
        let client_names = names(&client.stages);
        assert_eq!(
            client_names,
            expected_names(net.events(0), &channel),
            "seed {seed}"
        );
        assert_eq!(client_names[..2], ["Requested", "Ongoing"], "seed {seed}");
        assert_eq!(client_names.last(), Some(&"Completing"), "seed {seed}");
        assert!(
            client_names.contains(&"TransferFinished")
                || client_names.contains(&"ResponderCompleted"),
            "seed {seed}: {client_names:?}"
        );
        assert!(!client_names.contains(&"Completed"));

        // Go's lines: "received data" / "sending data" on the progress events, written once
        // while repeated; events without a line (Open, Accept, block indices) write none.
        let lines = |stages: &ChannelStages, name: &str| -> Vec<String> {
            stages
                .stage(name)
                .expect("stage")
                .logs
                .iter()
                .map(|l| l.log.clone())
                .collect()
        };
        assert_eq!(lines(&client.stages, "Ongoing"), ["received data"]);
        assert_eq!(lines(&provider.stages, "Ongoing"), ["sending data"]);
        // With jitter, blocks can arrive before the accept: they are traced under Requested.
        assert!(
            lines(&client.stages, "Requested")
                .iter()
                .all(|line| line == "received data"),
            "seed {seed}"
        );
        assert!(lines(&provider.stages, "Requested").is_empty());
        assert_times_consistent(&client.stages);
        assert_times_consistent(&provider.stages);
        // The provider's Ongoing stage spans the whole transfer.
        let ongoing = provider.stages.stage("Ongoing").expect("stage");
        assert!(ongoing.updated_time > ongoing.created_time);
    }
}

#[test]
fn trace_times_are_the_wall_clock_anchor_plus_the_virtual_time() {
    let start = Instant::now();
    let mut net = SimNet::new(2, 1, SimConfig::default(), start);
    net.run_for(Duration::from_millis(250));
    let channel = net.open_pull(0, 1).expect("open");
    let opened = net
        .engine(0)
        .channel(&channel)
        .expect("client")
        .stages
        .clone();
    let requested = opened.stage("Requested").expect("Open is traced");
    let expected = UnixNanos(SIM_UNIX_START.0 + 250_000_000);
    assert_eq!(requested.created_time, expected);
    assert_eq!(requested.updated_time, expected);
    assert!(requested.logs.is_empty(), "Open writes no line");
    assert_eq!(net.engine(0).unix_time(start), SIM_UNIX_START);
}

#[test]
fn without_a_wall_clock_anchor_trace_times_are_zero_and_before_it_they_count_back() {
    let (me, other) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
    let mut engine = Engine::new(me, Config::default());
    let now = Instant::now();
    let channel = engine
        .open_pull(other, sim_voucher(), sim_root(), sim_selector(), now)
        .expect("open");
    let state = engine.channel(&channel).expect("channel");
    assert_eq!(names(&state.stages), ["Requested"]);
    assert_eq!(
        state.stages.stage("Requested").expect("stage").created_time,
        UnixNanos(0)
    );
    let later = now + Duration::from_secs(2);
    engine.handle_wall_clock(later, UnixNanos(5_000_000_000));
    assert_eq!(engine.unix_time(now), UnixNanos(3_000_000_000));
    assert_eq!(engine.unix_time(later), UnixNanos(5_000_000_000));
}

#[test]
fn errors_write_gos_line_under_the_status_they_happened_in() {
    let mut net = SimNet::new(2, 2, SimConfig::default(), Instant::now());
    net.set_validator(
        1,
        Box::new(|_| Validation::new(Verdict::Reject("not today".into()))),
    );
    let channel = net.open_pull(0, 1).expect("open");
    net.run_until_idle();
    let client = net.engine(0).channel(&channel).expect("client");
    assert_eq!(client.status, ChannelStatus::Failed);
    assert_eq!(names(&client.stages), ["Requested", "Failing"]);
    let requested = client.stages.stage("Requested").expect("stage");
    let lines: Vec<&str> = requested.logs.iter().map(|l| l.log.as_str()).collect();
    assert_eq!(lines, ["data transfer erred: response rejected"]);
    // The cleanup after it is traced under Failing, without a line.
    assert!(
        client
            .stages
            .stage("Failing")
            .expect("stage")
            .logs
            .is_empty()
    );
}

#[test]
fn a_restore_keeps_the_trace_and_the_restored_channel_goes_on_adding_to_it() {
    let config = SimConfig {
        blocks: 30,
        ..SimConfig::default()
    };
    let mut net = SimNet::new(2, 5, config, Instant::now());
    let channel = net.open_pull(0, 1).expect("open");
    net.run_for(Duration::from_millis(35));
    let before = net.snapshot(0, &channel).expect("persisted").clone();
    assert_eq!(names(&before.stages), ["Requested", "Ongoing"]);
    assert_eq!(
        &before.stages,
        &net.engine(0).channel(&channel).expect("live").stages,
        "every trace entry is in the snapshot"
    );

    net.restart_node(0);
    assert_eq!(
        net.engine(0).channel(&channel).expect("restored").stages,
        before.stages,
        "restore keeps the trace as persisted"
    );
    net.command(0, |engine, now| engine.restart(&channel, now))
        .expect("restart");
    net.run_until_idle();
    let after = net.engine(0).channel(&channel).expect("client");
    assert_eq!(after.status, ChannelStatus::Completed);
    let after_names = names(&after.stages);
    assert_eq!(after_names[..2], ["Requested", "Ongoing"]);
    assert_eq!(after_names.last(), Some(&"Completing"));
    // The stages entered before the restart keep their creation times; Ongoing was updated
    // after it.
    for stage in &before.stages.stages {
        let now = after.stages.stage(&stage.name).expect("kept");
        assert_eq!(now.created_time, stage.created_time);
        assert!(now.updated_time >= stage.updated_time);
        assert_eq!(now.logs[..stage.logs.len()], stage.logs[..]);
    }
    assert!(
        after.stages.stage("Ongoing").expect("stage").updated_time
            > before.stages.stage("Ongoing").expect("stage").updated_time
    );
    assert_times_consistent(&after.stages);
}

#[test]
fn the_trace_bounds_hold_and_drop_the_oldest() {
    // The same scenario without and with tight bounds.
    let run = |engine: Config| {
        let config = SimConfig {
            engine,
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, 9, config, Instant::now());
        net.set_validator(
            1,
            Box::new(|_| Validation::new(Verdict::Reject("no".into()))),
        );
        let channel = net.open_pull(0, 1).expect("open");
        net.run_until_idle();
        net.engine(0)
            .channel(&channel)
            .expect("client")
            .stages
            .clone()
    };
    let free = run(Config::default());
    let tight = run(Config::default().with_stage_limits(1, 0));
    assert_eq!(names(&free), ["Requested", "Failing"]);
    assert_eq!(
        names(&tight),
        ["Failing"],
        "the oldest stage went, the latest stays"
    );
    assert!(tight.stages.iter().all(|stage| stage.logs.is_empty()));
    assert_eq!(tight.stages[0].created_time, free.stages[1].created_time);

    let none = run(Config::default().with_stage_limits(0, 0));
    assert!(none.stages.is_empty());
}

#[test]
fn a_long_paid_exchange_keeps_the_latest_max_stage_logs_lines_of_each_stage() {
    use datatransfer_fsm::testing::{paid_provider, paying_client};

    let run = |max_logs: usize| {
        let config = SimConfig {
            blocks: 40,
            engine: Config::default()
                .with_revalidation(true)
                .with_stage_limits(32, max_logs),
            ..SimConfig::default()
        };
        let mut net = SimNet::new(2, 4, config, Instant::now());
        net.set_validator(1, paid_provider(2_000));
        net.set_client(0, paying_client());
        let channel = net.open_pull(0, 1).expect("open");
        net.run_until_idle();
        [0, 1].map(|node| {
            let state = net.engine(node).channel(&channel).expect("channel");
            assert_eq!(state.status, ChannelStatus::Completed, "node {node}");
            state.stages.clone()
        })
    };
    let free = run(usize::MAX);
    let capped = run(3);
    let mut reached = false;
    for node in 0..2 {
        assert_eq!(names(&free[node]), names(&capped[node]));
        for (full, kept) in free[node].stages.iter().zip(&capped[node].stages) {
            let skip = full.logs.len().saturating_sub(3);
            assert_eq!(
                kept.logs[..],
                full.logs[skip..],
                "node {node}: the latest lines"
            );
            assert_eq!(
                (kept.created_time, kept.updated_time),
                (full.created_time, full.updated_time)
            );
            reached |= skip > 0;
        }
    }
    assert!(
        reached,
        "the payments wrote more than 3 lines in some stage"
    );
    // Without a bound, the client's stages hold Go's voucher lines, alternating with the data.
    let all_lines: Vec<&str> = free[0]
        .stages
        .iter()
        .flat_map(|stage| stage.logs.iter().map(|line| line.log.as_str()))
        .collect();
    assert!(all_lines.contains(&"got new voucher result"));
    assert!(all_lines.contains(&"got new voucher"));
    assert!(all_lines.contains(&"received data"));
}
