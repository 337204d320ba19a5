//! Public behaviour of the [`Engine`]: the pull and push flows of `spec/data-transfer.md` §4.4
//! and §4.5 step by step, pause/resume, cancel, finalization, restart, validation timeouts and
//! the error cases. Each test drives two engines by hand and checks transmits, events and
//! statuses at both ends.

use std::time::{Duration, Instant};

use datatransfer_fsm::{
    ChannelStatus, CommandError, Config, DataKind, Engine, Event, EventCode, ProtocolError,
    REJECTED_MESSAGE, Transmit, TransportInput, Validation, ValidationKind, Verdict, Voucher,
    VoucherResult,
};
use datatransfer_message::{
    ChannelId, Message, MessageType, PeerId, TransferId, update_request, voucher_request,
};
use ipld_dagcbor::{Map, Node};

fn alice() -> PeerId {
    PeerId::from_bytes(vec![0x00, 0x01, 0xaa])
}

fn bob() -> PeerId {
    PeerId::from_bytes(vec![0x00, 0x01, 0xbb])
}

fn root() -> cid::Cid {
    "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
        .parse()
        .expect("valid cid")
}

fn everything() -> Node {
    Node::Map(Map::new().with(".", Node::empty_map()))
}

fn voucher() -> Voucher {
    Voucher::new("FakeDTType", Node::List(vec![Node::text("deal-1")]))
}

fn engines(config: Config) -> (Engine, Engine) {
    (
        Engine::new(alice(), config.clone().with_transfer_id_seed(100)),
        Engine::new(bob(), config),
    )
}

/// Drains both queues: (transmits, channel event codes, validation requests, snapshots).
struct Drained {
    transmits: Vec<Transmit>,
    codes: Vec<EventCode>,
    asks: Vec<ValidationKind>,
    snapshots: usize,
}

fn drain(engine: &mut Engine) -> Drained {
    let mut drained = Drained {
        transmits: Vec::new(),
        codes: Vec::new(),
        asks: Vec::new(),
        snapshots: 0,
    };
    while let Some(event) = engine.poll_event() {
        match event {
            Event::Channel(event) => drained.codes.push(event.code),
            Event::ValidationRequested(request) => drained.asks.push(request.kind),
            Event::Snapshot(_) => drained.snapshots += 1,
        }
    }
    while let Some(transmit) = engine.poll_transmit() {
        drained.transmits.push(transmit);
    }
    drained
}

/// The one message a drained batch carries (in a Message, OpenChannel, Attach or
/// ResumeChannel transmit).
fn only_message(transmits: &[Transmit]) -> Message {
    let messages: Vec<&Message> = transmits
        .iter()
        .filter_map(|t| match t {
            Transmit::Message { message, .. }
            | Transmit::OpenChannel { message, .. }
            | Transmit::Attach { message, .. }
            | Transmit::ResumeChannel { message, .. } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 1, "one message in {transmits:?}");
    messages[0].clone()
}

fn status(engine: &Engine, channel: &ChannelId) -> ChannelStatus {
    engine.channel(channel).expect("channel exists").status
}

/// Opens a pull from alice to bob and lets bob accept it with `verdict`; returns the channel.
fn accepted_pull(a: &mut Engine, b: &mut Engine, verdict: Verdict, now: Instant) -> ChannelId {
    let channel = a
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    let request = only_message(&drain(a).transmits);
    b.handle_message(alice(), request, now)
        .expect("new request");
    drain(b);
    let result = VoucherResult::new("FakeDTType", Node::text("ok"));
    b.handle_validation(&channel, Validation::new(verdict).with_result(result), now)
        .expect("pending");
    let response = only_message(&drain(b).transmits);
    a.handle_message(bob(), response, now).expect("response");
    drain(a);
    channel
}

fn blocks(sender: &mut Engine, receiver: &mut Engine, channel: &ChannelId, n: u64, now: Instant) {
    for index in 1..=n {
        for kind in [DataKind::Queued, DataKind::Sent] {
            let input = TransportInput::Data {
                kind,
                index,
                size: 100,
                unique: true,
            };
            sender
                .handle_transport_event(channel, input, now)
                .expect("known channel");
        }
        let input = TransportInput::Data {
            kind: DataKind::Received,
            index,
            size: 100,
            unique: true,
        };
        receiver
            .handle_transport_event(channel, input, now)
            .expect("known channel");
    }
}

#[test]
fn pull_runs_to_completed_at_both_ends_with_go_event_sequences() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = a
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    assert_eq!(channel, ChannelId::new(alice(), bob(), TransferId(101)));
    let opened = drain(&mut a);
    assert_eq!(opened.codes, [EventCode::Open]);
    assert_eq!(opened.snapshots, 1);
    let Transmit::OpenChannel {
        data_sender,
        message,
        skip_blocks,
        ..
    } = &opened.transmits[0]
    else {
        panic!("a pull opens the transport: {:?}", opened.transmits);
    };
    assert_eq!((data_sender, skip_blocks), (&bob(), &None));
    let request = message.as_request().expect("a request");
    assert!(request.is_new() && request.is_pull());
    a.handle_transport_event(&channel, TransportInput::Opened, now)
        .expect("known");

    // Bob is asked, accepts, and answers inside the transport.
    b.handle_message(alice(), message.clone(), now)
        .expect("new");
    let asked = drain(&mut b);
    assert!(matches!(
        &asked.asks[..],
        [ValidationKind::Open { pull: true, .. }]
    ));
    assert!(
        b.channel(&channel).is_none(),
        "no channel before the answer"
    );
    let result = VoucherResult::new("FakeDTType", Node::text("ok"));
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Accept).with_result(result.clone()),
        now,
    )
    .expect("pending");
    let accepted = drain(&mut b);
    assert_eq!(
        accepted.codes,
        [
            EventCode::Open,
            EventCode::NewVoucherResult,
            EventCode::Accept
        ]
    );
    assert!(matches!(&accepted.transmits[..], [Transmit::Attach { .. }]));
    let response = only_message(&accepted.transmits);
    let state = b.channel(&channel).expect("created");
    assert_eq!((&state.sender, &state.recipient), (&bob(), &alice()));
    assert_eq!(state.status, ChannelStatus::Ongoing);

    a.handle_message(bob(), response, now).expect("response");
    assert_eq!(
        drain(&mut a).codes,
        [
            EventCode::Opened,
            EventCode::NewVoucherResult,
            EventCode::Accept,
            EventCode::ResumeResponder
        ]
    );
    assert_eq!(
        a.channel(&channel).expect("exists").last_voucher_result(),
        Some(&result)
    );

    blocks(&mut b, &mut a, &channel, 3, now);
    let b_data = drain(&mut b).codes;
    assert_eq!(
        b_data.len(),
        12,
        "queued, queued progress, sent, sent progress per block"
    );
    assert_eq!(
        drain(&mut a).codes,
        [EventCode::DataReceivedProgress, EventCode::DataReceived].repeat(3)
    );

    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    let done = drain(&mut b);
    assert_eq!(
        done.codes,
        [EventCode::Complete, EventCode::CleanupComplete]
    );
    let complete = only_message(&done.transmits);
    assert!(matches!(&done.transmits[0], Transmit::Message { .. }));
    assert!(done.transmits.contains(&Transmit::CleanupChannel {
        channel: channel.clone()
    }));
    assert_eq!(status(&b, &channel), ChannelStatus::Completed);

    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    assert_eq!(status(&a, &channel), ChannelStatus::TransferFinished);
    a.handle_message(bob(), complete, now).expect("complete");
    assert_eq!(
        drain(&mut a).codes,
        [
            EventCode::FinishTransfer,
            EventCode::ResponderCompletes,
            EventCode::CleanupComplete
        ]
    );
    let (sa, sb) = (
        a.channel(&channel).expect("a"),
        b.channel(&channel).expect("b"),
    );
    assert_eq!(sa.status, ChannelStatus::Completed);
    assert_eq!((sa.received, sa.received_blocks_total), (300, 3));
    assert_eq!((sb.sent, sb.queued, sb.sent_blocks_total), (300, 300, 3));
}

#[test]
fn a_snapshot_shares_the_state_until_the_next_change_and_does_not_see_it() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    blocks(&mut b, &mut a, &channel, 1, now);
    let mut snapshots = Vec::new();
    while let Some(event) = b.poll_event() {
        if let Event::Snapshot(state) = event {
            snapshots.push(state);
        }
    }
    let taken = snapshots
        .pop()
        .expect("the sender snapshots after its data events");
    let current = b.channel_snapshot(&channel).expect("channel exists");
    assert!(
        std::sync::Arc::ptr_eq(&taken, &current),
        "a snapshot is the engine's own state, not a copy"
    );
    assert_eq!(taken.sent, 100);

    blocks(&mut b, &mut a, &channel, 2, now);
    assert_eq!(
        taken.sent, 100,
        "the snapshot keeps the state it was taken at"
    );
    assert!(b.channel(&channel).expect("channel exists").sent > 100);
    assert!(!std::sync::Arc::ptr_eq(
        &taken,
        &b.channel_snapshot(&channel).expect("channel exists")
    ));
}

#[test]
fn complete_before_local_finish_goes_through_responder_completed() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    let complete = only_message(&drain(&mut b).transmits);
    a.handle_message(bob(), complete, now).expect("complete");
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderCompleted);
    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    assert_eq!(status(&a, &channel), ChannelStatus::Completed);
}

#[test]
fn push_is_accepted_by_opening_the_transport_from_the_responder() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = a
        .open_push(bob(), voucher(), root(), everything(), now)
        .expect("open");
    let opened = drain(&mut a);
    assert!(matches!(&opened.transmits[..], [Transmit::Message { peer, .. }] if *peer == bob()));
    b.handle_message(alice(), only_message(&opened.transmits), now)
        .expect("new");
    assert!(matches!(
        &drain(&mut b).asks[..],
        [ValidationKind::Open { pull: false, .. }]
    ));
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    let accepted = drain(&mut b);
    let Transmit::OpenChannel {
        data_sender,
        message,
        ..
    } = &accepted.transmits[0]
    else {
        panic!("push accept opens the transport: {:?}", accepted.transmits);
    };
    assert_eq!(data_sender, &alice());
    let state = b.channel(&channel).expect("created");
    assert_eq!((&state.sender, &state.recipient), (&alice(), &bob()));
    b.handle_transport_event(&channel, TransportInput::Opened, now)
        .expect("known");

    a.handle_transport_event(&channel, TransportInput::RequestQueued, now)
        .expect("known");
    a.handle_message(bob(), message.clone(), now)
        .expect("accept");
    assert_eq!(
        drain(&mut a).codes,
        [
            EventCode::TransferRequestQueued,
            EventCode::Accept,
            EventCode::ResumeResponder
        ]
    );
    blocks(&mut a, &mut b, &channel, 2, now);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    let complete = only_message(&drain(&mut b).transmits);
    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    a.handle_message(bob(), complete, now).expect("complete");
    assert_eq!(status(&a, &channel), ChannelStatus::Completed);
    assert_eq!(status(&b, &channel), ChannelStatus::Completed);
    assert_eq!(b.channel(&channel).expect("b").received, 200);
}

#[test]
fn a_rejected_push_fails_the_initiator_and_creates_nothing_on_the_responder() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = a
        .open_push(bob(), voucher(), root(), everything(), now)
        .expect("open");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("new");
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Reject("no deal".into())),
        now,
    )
    .expect("pending");
    let rejected = drain(&mut b);
    assert!(
        matches!(&rejected.transmits[..], [Transmit::Message { .. }]),
        "push reject goes on the network"
    );
    assert!(b.channel(&channel).is_none());
    let response = only_message(&rejected.transmits);
    assert!(!response.as_response().expect("response").accepted());
    a.handle_message(bob(), response, now).expect("reject");
    let state = a.channel(&channel).expect("a");
    assert_eq!(state.status, ChannelStatus::Failed);
    assert_eq!(state.message, REJECTED_MESSAGE);
}

#[test]
fn a_rejected_pull_is_answered_inside_the_transport_then_closed() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = a
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("new");
    b.handle_validation(&channel, Validation::new(Verdict::Reject("no".into())), now)
        .expect("pending");
    let rejected = drain(&mut b).transmits;
    assert!(matches!(
        &rejected[..],
        [Transmit::Attach { .. }, Transmit::CloseChannel { .. }]
    ));
}

#[test]
fn pauses_on_both_sides_combine_and_resume_one_at_a_time() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);

    a.pause(&channel, now).expect("pause");
    let paused = drain(&mut a);
    assert!(matches!(
        &paused.transmits[0],
        Transmit::PauseChannel { .. }
    ));
    assert_eq!(status(&a, &channel), ChannelStatus::InitiatorPaused);
    b.handle_message(alice(), only_message(&paused.transmits), now)
        .expect("update");
    assert_eq!(status(&b, &channel), ChannelStatus::InitiatorPaused);

    b.pause(&channel, now).expect("pause");
    a.handle_message(bob(), only_message(&drain(&mut b).transmits), now)
        .expect("update");
    assert_eq!(status(&a, &channel), ChannelStatus::BothPaused);
    assert_eq!(status(&b, &channel), ChannelStatus::BothPaused);

    a.resume(&channel, now).expect("resume");
    let resumed = drain(&mut a).transmits;
    assert!(
        matches!(&resumed[..], [Transmit::ResumeChannel { .. }]),
        "resume rides the transport"
    );
    b.handle_message(alice(), only_message(&resumed), now)
        .expect("update");
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderPaused);
    assert_eq!(status(&b, &channel), ChannelStatus::ResponderPaused);

    b.resume(&channel, now).expect("resume");
    a.handle_message(bob(), only_message(&drain(&mut b).transmits), now)
        .expect("update");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
}

#[test]
fn accepting_paused_starts_the_responder_paused_at_both_ends() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Pause, now);
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderPaused);
    assert_eq!(status(&b, &channel), ChannelStatus::ResponderPaused);
}

#[test]
fn cancel_closes_the_transport_tells_the_peer_and_ends_cancelled_at_both_ends() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    a.cancel(&channel, now).expect("cancel");
    let cancelled = drain(&mut a);
    assert_eq!(
        cancelled.codes,
        [EventCode::Cancel, EventCode::CleanupComplete]
    );
    assert!(matches!(
        &cancelled.transmits[0],
        Transmit::CloseChannel { .. }
    ));
    b.handle_message(alice(), only_message(&cancelled.transmits), now)
        .expect("cancel");
    assert_eq!(status(&a, &channel), ChannelStatus::Cancelled);
    assert_eq!(status(&b, &channel), ChannelStatus::Cancelled);
    // Cancelling again is silently ignored, as in Go.
    a.cancel(&channel, now).expect("ignored");
    assert!(drain(&mut a).transmits.is_empty());
}

#[test]
fn terminal_channels_absorb_later_messages_and_commands() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    a.cancel(&channel, now).expect("cancel");
    drain(&mut a);
    let before = a.channel(&channel).expect("a").clone();
    let late = datatransfer_message::update_response(channel.id, true);
    let error = a
        .handle_message(bob(), late.into(), now)
        .expect_err("absorbed");
    assert!(matches!(error, ProtocolError::Illegal { .. }), "{error}");
    assert_eq!(a.channel(&channel), Some(&before));
    assert!(matches!(
        a.pause(&channel, now),
        Err(CommandError::Terminated { .. })
    ));
    assert!(matches!(
        a.send_voucher(&channel, voucher(), now),
        Err(CommandError::Terminated { .. })
    ));
}

#[test]
fn finalization_settles_with_a_final_voucher() {
    let now = Instant::now();
    let config = Config::default().with_validate_completion(true);
    let (mut a, mut b) = engines(config);
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    assert!(matches!(
        &drain(&mut b).asks[..],
        [ValidationKind::Complete]
    ));
    let invoice = VoucherResult::new("FakeDTType", Node::text("pay"));
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Pause).with_result(invoice),
        now,
    )
    .expect("pending");
    assert_eq!(status(&b, &channel), ChannelStatus::Finalizing);
    let complete = only_message(&drain(&mut b).transmits);
    let response = complete.as_response().expect("response");
    assert!(response.is_complete() && response.is_paused() && response.accepted());

    a.handle_message(bob(), complete, now).expect("complete");
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderFinalizing);
    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    assert_eq!(
        status(&a, &channel),
        ChannelStatus::ResponderFinalizingTransferFinished
    );

    let payment = Voucher::new("FakeDTType", Node::text("payment"));
    a.send_voucher(&channel, payment.clone(), now)
        .expect("voucher");
    let sent = drain(&mut a);
    assert!(sent.codes.contains(&EventCode::NewVoucher));
    b.handle_message(alice(), only_message(&sent.transmits), now)
        .expect("voucher");
    assert!(
        matches!(&drain(&mut b).asks[..], [ValidationKind::Voucher { voucher }] if *voucher == payment)
    );
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    let settled = drain(&mut b);
    assert_eq!(status(&b, &channel), ChannelStatus::Completed);
    let answer = only_message(&settled.transmits);
    let response = answer.as_response().expect("response");
    assert!(response.is_complete() && !response.is_paused() && response.accepted());
    a.handle_message(bob(), answer, now)
        .expect("final complete");
    assert_eq!(status(&a, &channel), ChannelStatus::Completed);
}

#[test]
fn a_final_voucher_answered_with_accept_still_completes_the_responder() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default().with_validate_completion(true));
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    b.handle_validation(&channel, Validation::new(Verdict::Pause), now)
        .expect("pending");
    drain(&mut b);
    let payment = voucher_request(channel.id, "FakeDTType".into(), Node::text("p"));
    b.handle_message(alice(), payment.into(), now)
        .expect("voucher");
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    assert_eq!(
        status(&b, &channel),
        ChannelStatus::Completed,
        "Go would stay Finalizing"
    );
}

#[test]
fn a_rejected_completion_fails_the_responder_instead_of_crashing() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default().with_validate_completion(true));
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Reject("unpaid".into())),
        now,
    )
    .expect("pending");
    let state = b.channel(&channel).expect("b");
    assert_eq!(
        (state.status, state.message.as_str()),
        (ChannelStatus::Failed, "unpaid")
    );
    let complete = only_message(&drain(&mut b).transmits);
    a.handle_message(bob(), complete, now).expect("reject");
    assert_eq!(status(&a, &channel), ChannelStatus::Failed);
}

#[test]
fn mid_transfer_payment_pauses_and_resumes_through_the_transport() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    b.pause(&channel, now).expect("pause");
    a.handle_message(bob(), only_message(&drain(&mut b).transmits), now)
        .expect("update");
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderPaused);
    a.send_voucher(&channel, voucher(), now).expect("voucher");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("voucher");
    drain(&mut b);
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    let resumed = drain(&mut b).transmits;
    assert!(
        matches!(&resumed[..], [Transmit::ResumeChannel { .. }]),
        "{resumed:?}"
    );
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
    a.handle_message(bob(), only_message(&resumed), now)
        .expect("result");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);
}

#[test]
fn a_restored_pull_restarts_without_resending_received_blocks() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    blocks(&mut b, &mut a, &channel, 4, now);
    let snapshot = drain(&mut a).snapshots;
    assert!(
        snapshot >= 4,
        "every block changes state and is snapshotted"
    );
    let saved: Vec<_> = a.channels().cloned().collect();

    let mut a = Engine::new(alice(), Config::default());
    a.restore(saved).expect("own snapshots");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);
    a.restart(&channel, now).expect("restart");
    let transmits = drain(&mut a).transmits;
    let Transmit::OpenChannel {
        skip_blocks,
        message,
        ..
    } = &transmits[0]
    else {
        panic!("pull restart reopens the transport: {transmits:?}");
    };
    assert_eq!(*skip_blocks, Some(4));
    let request = message.as_request().expect("request");
    assert!(request.is_restart());
    assert_eq!(
        request.voucher(),
        Some(&voucher().node),
        "the original voucher"
    );

    b.handle_message(alice(), message.clone(), now)
        .expect("restart");
    assert!(matches!(
        &drain(&mut b).asks[..],
        [ValidationKind::Restart { pull: true, .. }]
    ));
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    let answer = drain(&mut b);
    assert!(answer.codes.contains(&EventCode::Restart));
    a.handle_message(bob(), only_message(&answer.transmits), now)
        .expect("restart response");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);
    // Re-traversed blocks loaded locally do not count again; a new one does.
    for index in 1..=5 {
        let input = TransportInput::Data {
            kind: DataKind::Received,
            index,
            size: 100,
            unique: index == 5,
        };
        a.handle_transport_event(&channel, input, now)
            .expect("known");
    }
    let state = a.channel(&channel).expect("a");
    assert_eq!((state.received, state.received_blocks_total), (500, 5));
}

#[test]
fn a_restart_with_another_voucher_is_rejected_and_leaves_the_channel_alone() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    let forged = datatransfer_message::restart_request(
        channel.id,
        true,
        "FakeDTType".into(),
        Node::text("another deal"),
        root(),
        everything(),
    );
    let error = b
        .handle_message(alice(), forged.into(), now)
        .expect_err("mismatch");
    assert!(
        matches!(error, ProtocolError::RestartMismatch { .. }),
        "{error}"
    );
    let answer = drain(&mut b);
    assert!(answer.asks.is_empty());
    let response = only_message(&answer.transmits);
    assert!(!response.as_response().expect("response").accepted());
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
}

#[test]
fn a_restart_reaching_a_completed_responder_is_answered_with_complete() {
    // The restart raced the completion: the responder completed and its Complete is still on
    // its way when the initiator, its transfer finished, restarts. The answer is the Complete
    // again (Go rejects, and the initiator fails with every block in hand).
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    drain(&mut a);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    drain(&mut b);
    assert_eq!(status(&b, &channel), ChannelStatus::Completed);
    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    drain(&mut a);
    assert_eq!(status(&a, &channel), ChannelStatus::TransferFinished);

    a.restart(&channel, now).expect("restart");
    let restart = only_message(&drain(&mut a).transmits);
    assert_eq!(restart.message_type(), MessageType::Restart);
    b.handle_message(alice(), restart, now)
        .expect("answered, not a protocol error");
    let answer = drain(&mut b);
    assert!(
        answer.asks.is_empty(),
        "no validation of a finished channel"
    );
    assert!(
        answer.codes.is_empty(),
        "the responder's channel is untouched"
    );
    let complete = only_message(&answer.transmits);
    let response = complete.as_response().expect("a response");
    assert!(
        response.message_type() == MessageType::Complete
            && response.accepted()
            && !response.is_paused(),
        "{response:?}"
    );
    assert!(
        matches!(&answer.transmits[..], [Transmit::Attach { channel: c, .. }] if c == &channel),
        "a pull's answer rides in the exchange: {:?}",
        answer.transmits
    );
    a.handle_message(bob(), complete, now).expect("complete");
    assert_eq!(status(&a, &channel), ChannelStatus::Completed);

    // A responder whose channel failed still rejects the restart.
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    drain(&mut a);
    b.handle_transport_event(&channel, TransportInput::Completed(Err("lost".into())), now)
        .expect("known");
    drain(&mut b);
    assert_eq!(status(&b, &channel), ChannelStatus::Failed);
    a.restart(&channel, now).expect("restart");
    let restart = only_message(&drain(&mut a).transmits);
    assert!(b.handle_message(alice(), restart, now).is_err());
    let rejection = only_message(&drain(&mut b).transmits);
    let response = rejection.as_response().expect("a response");
    assert!(response.is_restart() && !response.accepted());
}

#[test]
fn a_responder_restart_asks_the_initiator_to_restart() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    b.restart(&channel, now).expect("restart");
    let ask = only_message(&drain(&mut b).transmits);
    let request = ask.as_request().expect("request");
    assert!(request.is_restart_existing_channel_request());
    assert_eq!(request.restart_channel(), &channel);
    a.handle_message(bob(), ask.clone(), now).expect("type 7");
    let restart = only_message(&drain(&mut a).transmits);
    assert_eq!(restart.message_type(), MessageType::Restart);
    // From any other peer the request is ignored.
    let error = a
        .handle_message(PeerId::from_bytes(vec![9]), ask, now)
        .expect_err("wrong peer");
    assert!(matches!(error, ProtocolError::UnknownChannel { .. }));
    assert!(drain(&mut a).transmits.is_empty());
}

#[test]
fn unanswered_validations_time_out_as_rejections() {
    let now = Instant::now();
    let timeout = Duration::from_secs(5);
    let (mut a, mut b) = engines(Config::default().with_validation_timeout(timeout));
    let channel = a
        .open_push(bob(), voucher(), root(), everything(), now)
        .expect("open");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("new");
    drain(&mut b);
    assert_eq!(b.poll_timeout(), Some(now + timeout));
    b.handle_timeout(now + timeout - Duration::from_millis(1));
    assert!(drain(&mut b).transmits.is_empty(), "not yet");
    b.handle_timeout(now + timeout);
    let response = only_message(&drain(&mut b).transmits);
    assert!(!response.as_response().expect("response").accepted());
    assert_eq!(b.poll_timeout(), None);
    assert!(matches!(
        b.handle_validation(&channel, Validation::new(Verdict::Accept), now + timeout),
        Err(CommandError::NoPendingValidation { .. })
    ));
}

#[test]
fn a_restart_of_an_unknown_channel_is_rejected_on_the_wire() {
    // Go's `receiveRestartRequest` answers a restart of a channel it does not have with a
    // Restart response whose `Acpt` is false, for a push (over the network) and a pull alike.
    let now = Instant::now();
    let mut b = Engine::new(bob(), Config::default());
    for (id, pull) in [(TransferId(7), false), (TransferId(8), true)] {
        let restart = datatransfer_message::restart_request(
            id,
            pull,
            "FakeDTType".into(),
            voucher().node,
            root(),
            everything(),
        );
        let error = b
            .handle_message(alice(), restart.into(), now)
            .expect_err("unknown channel");
        assert!(
            matches!(&error, ProtocolError::UnknownChannel { channel, .. } if channel.id == id),
            "{error:?}"
        );
        let transmits = drain(&mut b).transmits;
        let answer = only_message(&transmits);
        let response = answer.as_response().expect("a response");
        assert!(response.is_restart() && !response.accepted() && response.transfer_id() == id);
        let routed = match &transmits[..] {
            [Transmit::Message { peer, .. }] => !pull && peer == &alice(),
            [Transmit::Attach { channel, .. }] => pull && channel.initiator == alice(),
            _ => false,
        };
        assert!(routed, "{transmits:?}");
        assert!(b.channels().next().is_none(), "no channel was made");
    }
}

#[test]
fn messages_for_unknown_channels_or_roles_are_protocol_errors() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let stray = update_request(TransferId(7), true);
    assert!(matches!(
        b.handle_message(alice(), stray.into(), now),
        Err(ProtocolError::UnknownChannel { .. })
    ));
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    // A second New request for the same channel does not touch it.
    let again = datatransfer_message::new_request(
        channel.id,
        true,
        "FakeDTType".into(),
        voucher().node,
        root(),
        everything(),
    );
    assert!(matches!(
        b.handle_message(alice(), again.into(), now),
        Err(ProtocolError::ChannelExists { .. })
    ));
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
    // A Voucher sent as a response is never valid: that channel fails, and only that one.
    let other = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    let voucher_response = with_type(
        datatransfer_message::update_response(channel.id, false).into(),
        MessageType::Voucher,
    );
    let error = a
        .handle_message(bob(), voucher_response, now)
        .expect_err("unexpected");
    assert!(
        matches!(error, ProtocolError::UnexpectedMessage { .. }),
        "{error}"
    );
    assert_eq!(status(&a, &channel), ChannelStatus::Failed);
    assert_eq!(status(&a, &other), ChannelStatus::Ongoing);
    // So is a Complete sent as a request.
    let complete_request = with_type(
        update_request(other.id, false).into(),
        MessageType::Complete,
    );
    let error = b
        .handle_message(alice(), complete_request, now)
        .expect_err("unexpected");
    assert!(
        matches!(error, ProtocolError::UnexpectedMessage { .. }),
        "{error}"
    );
    assert_eq!(status(&b, &other), ChannelStatus::Failed);
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
}

/// `message` with its wire `Type` replaced, as a peer could send it.
fn with_type(message: Message, message_type: MessageType) -> Message {
    let Node::Map(mut top) = message.to_node().expect("encodable") else {
        panic!("messages are maps");
    };
    let key = if message.is_request() {
        "Request"
    } else {
        "Response"
    };
    let Some(Node::Map(mut inner)) = top.get(key).cloned() else {
        panic!("the body is a map");
    };
    inner.insert("Type", Node::Integer(i128::from(message_type.wire_value())));
    top.insert(key, Node::Map(inner));
    Message::from_node(&Node::Map(top)).expect("decodable")
}

#[test]
fn local_misuse_is_a_command_error() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default());
    let unknown = ChannelId::new(alice(), bob(), TransferId(1));
    assert!(matches!(
        a.pause(&unknown, now),
        Err(CommandError::UnknownChannel { .. })
    ));
    assert!(matches!(
        a.handle_transport_event(&unknown, TransportInput::Opened, now),
        Err(CommandError::UnknownChannel { .. })
    ));
    let channel = accepted_pull(&mut a, &mut b, Verdict::Accept, now);
    assert!(matches!(
        b.send_voucher(&channel, voucher(), now),
        Err(CommandError::NotInitiator { .. })
    ));
    let foreign = a.channel(&channel).expect("a").clone();
    assert!(matches!(
        b.restore([foreign]),
        Err(CommandError::ForeignSnapshot { .. })
    ));
}

#[test]
fn output_queues_are_bounded_and_refuse_input_until_drained() {
    let now = Instant::now();
    let config = Config {
        max_transmits: 40,
        ..Config::default()
    };
    let mut a = Engine::new(alice(), config);
    let mut opened = 0;
    let refused = loop {
        match a.open_push(bob(), voucher(), root(), everything(), now) {
            Ok(_) => opened += 1,
            Err(error) => break error,
        }
        assert!(opened < 100, "the bound must stop this loop");
    };
    assert_eq!(refused, CommandError::QueueFull);
    assert_eq!(opened, 9);
    drain(&mut a);
    a.open_push(bob(), voucher(), root(), everything(), now)
        .expect("room again");
}

#[test]
fn channel_count_is_bounded() {
    let now = Instant::now();
    let mut a = Engine::new(
        alice(),
        Config {
            max_channels: 2,
            ..Config::default()
        },
    );
    for _ in 0..2 {
        a.open_pull(bob(), voucher(), root(), everything(), now)
            .expect("room");
        drain(&mut a);
    }
    assert_eq!(
        a.open_pull(bob(), voucher(), root(), everything(), now),
        Err(CommandError::TooManyChannels { limit: 2 })
    );
}

#[test]
fn transfer_ids_count_up_from_the_seed_and_stay_on_the_wire() {
    let now = Instant::now();
    let mut a = Engine::new(alice(), Config::default().with_transfer_id_seed(41));
    let first = a
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    let second = a
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    assert_eq!((first.id, second.id), (TransferId(42), TransferId(43)));
    let mut top = Engine::new(
        alice(),
        Config::default().with_transfer_id_seed(TransferId::MAX_WIRE),
    );
    let wrapped = top
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    assert_eq!(wrapped.id, TransferId(0));
    assert!(wrapped.id.fits_wire());
}
