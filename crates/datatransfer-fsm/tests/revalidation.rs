//! The revalidator hooks of `spec/data-transfer.md` §6.3–§6.5 on the [`Engine`]: the per-block
//! data questions of the pull and push responders (`OnPullDataSent`, `OnPushDataReceived`),
//! answered synchronously inside the transport's block handler as a Manager does, each verdict,
//! the bytes they report, and the initiator's side of a payment request (pause, then
//! `send_voucher` resumes).

use std::time::{Duration, Instant};

use datatransfer_fsm::{
    ChannelStatus, Config, DataKind, Engine, Event, EventCode, Transmit, TransportInput,
    Validation, ValidationKind, ValidationRequest, Verdict, Voucher, VoucherResult,
};
use datatransfer_message::{ChannelId, Message, PeerId, Response};
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
    Voucher::new("FakeDTType", Node::text("deal-1"))
}

fn invoice(amount: u64) -> VoucherResult {
    VoucherResult::new("Invoice", Node::Integer(i128::from(amount)))
}

fn revalidating() -> Config {
    Config::default().with_revalidate_data(true)
}

/// Alice (initiator) and Bob (responder, asking the data questions per `config`).
fn engines(config: Config) -> (Engine, Engine) {
    (
        Engine::new(alice(), Config::default().with_transfer_id_seed(100)),
        Engine::new(bob(), config),
    )
}

#[derive(Debug, Default)]
struct Drained {
    transmits: Vec<Transmit>,
    codes: Vec<EventCode>,
    asks: Vec<ValidationRequest>,
}

fn drain(engine: &mut Engine) -> Drained {
    let mut drained = Drained::default();
    while let Some(event) = engine.poll_event() {
        match event {
            Event::Channel(event) => drained.codes.push(event.code),
            Event::ValidationRequested(request) => drained.asks.push(request),
            Event::Snapshot(_) => {}
        }
    }
    while let Some(transmit) = engine.poll_transmit() {
        drained.transmits.push(transmit);
    }
    drained
}

fn messages(transmits: &[Transmit]) -> Vec<Message> {
    transmits
        .iter()
        .filter_map(|t| match t {
            Transmit::Message { message, .. }
            | Transmit::OpenChannel { message, .. }
            | Transmit::Attach { message, .. }
            | Transmit::ResumeChannel { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn only_message(transmits: &[Transmit]) -> Message {
    let all = messages(transmits);
    assert_eq!(all.len(), 1, "one message in {transmits:?}");
    all[0].clone()
}

fn response(message: &Message) -> &Response {
    message.as_response().expect("a response")
}

fn status(engine: &Engine, channel: &ChannelId) -> ChannelStatus {
    engine.channel(channel).expect("channel exists").status
}

fn data(kind: DataKind, index: u64, size: u64) -> TransportInput {
    TransportInput::Data {
        kind,
        index,
        size,
        unique: true,
    }
}

/// An accepted pull from Alice (client) to Bob (provider).
fn accepted_pull(a: &mut Engine, b: &mut Engine, now: Instant) -> ChannelId {
    let channel = a
        .open_pull(bob(), voucher(), root(), everything(), now)
        .expect("open");
    b.handle_message(alice(), only_message(&drain(a).transmits), now)
        .expect("new request");
    drain(b);
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    a.handle_message(bob(), only_message(&drain(b).transmits), now)
        .expect("accept");
    drain(a);
    channel
}

/// An accepted push from Alice (client, data sender) to Bob (provider, data receiver).
fn accepted_push(a: &mut Engine, b: &mut Engine, now: Instant) -> ChannelId {
    let channel = a
        .open_push(bob(), voucher(), root(), everything(), now)
        .expect("open");
    b.handle_message(alice(), only_message(&drain(a).transmits), now)
        .expect("new request");
    drain(b);
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    a.handle_message(bob(), only_message(&drain(b).transmits), now)
        .expect("accept");
    drain(a);
    assert_eq!(status(b, &channel), ChannelStatus::Ongoing);
    channel
}

fn data_question(request: &ValidationRequest) -> (u64, u64) {
    match request.kind {
        ValidationKind::PullDataSent {
            additional_bytes,
            total,
        }
        | ValidationKind::PushDataReceived {
            additional_bytes,
            total,
        } => (additional_bytes, total),
        ref other => panic!("not a data question: {other:?}"),
    }
}

/// What the graphsync outgoing-block hook of a pull provider gets back for one block: the
/// messages to attach to it and whether to pause after it.
#[derive(Debug, Default)]
struct HookOutcome {
    attach: Vec<Message>,
    pause: bool,
    asked: Vec<(u64, u64)>,
}

/// The Manager's synchronous handling of one queued block: report it, answer every data
/// question at once with `revalidator`, and collect what the hook must do, all before
/// returning to the transport.
fn queued_block_hook(
    b: &mut Engine,
    channel: &ChannelId,
    index: u64,
    size: u64,
    now: Instant,
    revalidator: &mut dyn FnMut(u64, u64) -> Validation,
) -> HookOutcome {
    let mut outcome = HookOutcome::default();
    b.handle_transport_event(channel, data(DataKind::Queued, index, size), now)
        .expect("known channel");
    loop {
        let drained = drain(b);
        if drained.asks.is_empty() && drained.transmits.is_empty() {
            break;
        }
        for transmit in drained.transmits {
            match transmit {
                Transmit::Attach { message, .. } => outcome.attach.push(message),
                Transmit::PauseChannel { .. } => outcome.pause = true,
                other => panic!("unexpected transmit in the block hook: {other:?}"),
            }
        }
        for ask in drained.asks {
            let (additional, total) = data_question(&ask);
            outcome.asked.push((additional, total));
            b.handle_validation(channel, revalidator(additional, total), now)
                .expect("the question is open");
        }
    }
    outcome
}

#[test]
fn a_pull_provider_pauses_synchronously_and_no_further_block_is_counted() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_pull(&mut a, &mut b, now);

    // The provider's revalidator: pause for payment once 300 unpaid bytes have gone out.
    let mut unpaid = 0;
    let mut revalidator = |additional: u64, total: u64| {
        unpaid += additional;
        if unpaid >= 300 {
            Validation::new(Verdict::Pause).with_result(invoice(total))
        } else {
            Validation::new(Verdict::Accept)
        }
    };

    // The simulated graphsync responder: one block per iteration, stopping as soon as a hook
    // says pause (the block that triggered it still goes out, as graphsync does).
    let mut hooks = Vec::new();
    for index in 1..=10 {
        let outcome = queued_block_hook(&mut b, &channel, index, 100, now, &mut revalidator);
        b.handle_transport_event(&channel, data(DataKind::Sent, index, 100), now)
            .expect("known");
        drain(&mut b);
        let pause = outcome.pause;
        hooks.push(outcome);
        if pause {
            break;
        }
    }

    assert_eq!(hooks.len(), 3, "the third block's hook paused the stream");
    let asked: Vec<(u64, u64)> = hooks.iter().flat_map(|h| h.asked.clone()).collect();
    assert_eq!(
        asked,
        [(100, 100), (100, 200), (100, 300)],
        "one block each"
    );
    assert!(hooks[..2].iter().all(|h| h.attach.is_empty() && !h.pause));
    let state = b.channel(&channel).expect("b");
    assert_eq!(
        (state.queued, state.sent),
        (300, 300),
        "nothing after the pause"
    );
    assert_eq!(state.status, ChannelStatus::ResponderPaused);
    assert_eq!(state.last_voucher_result(), Some(&invoice(300)));

    // The attached message is a payment request: an accepted, paused voucher result.
    let [request] = &hooks[2].attach[..] else {
        panic!("one message attached to the block: {:?}", hooks[2].attach);
    };
    let payment_request = response(request);
    assert!(payment_request.is_voucher_result());
    assert!(payment_request.accepted() && payment_request.is_paused());
    assert_eq!(payment_request.voucher_result(), Some(&Node::Integer(300)));

    // The client sees the responder pause and records the request.
    a.handle_message(bob(), request.clone(), now)
        .expect("payment request");
    assert_eq!(
        drain(&mut a).codes,
        [EventCode::NewVoucherResult, EventCode::PauseResponder]
    );
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderPaused);
    assert_eq!(
        a.channel(&channel).expect("a").last_voucher_result(),
        Some(&invoice(300))
    );

    // It pays; the provider's Revalidate resumes it, the answer riding on the transport resume.
    let payment = Voucher::new("Payment", Node::Integer(300));
    a.send_voucher(&channel, payment.clone(), now)
        .expect("voucher");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("voucher");
    let asks = drain(&mut b).asks;
    assert!(
        matches!(&asks[..], [ValidationRequest { kind: ValidationKind::Voucher { voucher }, .. }] if *voucher == payment)
    );
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    let resumed = drain(&mut b).transmits;
    assert!(
        matches!(&resumed[..], [Transmit::ResumeChannel { .. }]),
        "{resumed:?}"
    );
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
    let resume = only_message(&resumed);
    assert!(response(&resume).accepted() && !response(&resume).is_paused());
    a.handle_message(bob(), resume, now).expect("resume");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);

    // The next block is asked about on its own: nothing was counted while paused.
    let mut revalidator = |_: u64, _: u64| Validation::new(Verdict::Accept);
    let next = queued_block_hook(&mut b, &channel, 4, 100, now, &mut revalidator);
    assert_eq!(next.asked, [(100, 400)]);
}

#[test]
fn only_new_blocks_that_crossed_the_wire_are_asked_about() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_pull(&mut a, &mut b, now);
    let mut asked = Vec::new();
    let inputs = [
        data(DataKind::Queued, 1, 100),
        // The same index again (a re-traversal) is not new.
        data(DataKind::Queued, 1, 100),
        // Skipped by do-not-send-first-blocks: not on the wire.
        TransportInput::Data {
            kind: DataKind::Queued,
            index: 2,
            size: 70,
            unique: false,
        },
        // Sent reports never ask (Go's hook is on the queued block).
        data(DataKind::Sent, 1, 100),
        data(DataKind::Queued, 3, 50),
    ];
    for input in inputs {
        b.handle_transport_event(&channel, input, now)
            .expect("known");
        for ask in drain(&mut b).asks {
            asked.push(data_question(&ask));
            b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
                .expect("pending");
            assert!(drain(&mut b).transmits.is_empty(), "accept sends nothing");
        }
    }
    assert_eq!(asked, [(100, 100), (50, 150)]);
}

#[test]
fn initiators_and_engines_without_revalidation_never_ask() {
    let now = Instant::now();
    // Revalidation on at both ends: the initiators (pull receiver, push sender) never ask.
    let mut a = Engine::new(alice(), revalidating().with_transfer_id_seed(100));
    let mut b = Engine::new(bob(), revalidating());
    let pull = accepted_pull(&mut a, &mut b, now);
    let push = accepted_push(&mut a, &mut b, now);
    a.handle_transport_event(&pull, data(DataKind::Received, 1, 100), now)
        .expect("known");
    for kind in [DataKind::Queued, DataKind::Sent] {
        a.handle_transport_event(&push, data(kind, 1, 100), now)
            .expect("known");
    }
    assert!(drain(&mut a).asks.is_empty());
    // The push provider is not asked about blocks it queues (it never sends any).
    b.handle_transport_event(&push, data(DataKind::Sent, 1, 100), now)
        .expect("known");
    assert!(drain(&mut b).asks.is_empty());

    // Revalidation off: the provider is not asked either.
    let (mut a, mut b) = engines(Config::default());
    let pull = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&pull, data(DataKind::Queued, 1, 100), now)
        .expect("known");
    assert!(drain(&mut b).asks.is_empty());
    assert_eq!(b.channel(&pull).expect("b").queued, 100);
}

#[test]
fn blocks_counted_while_a_question_is_open_are_asked_about_together() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_pull(&mut a, &mut b, now);
    // An asynchronous driver: three blocks before the first answer.
    let mut asks = Vec::new();
    for index in 1..=3 {
        b.handle_transport_event(&channel, data(DataKind::Queued, index, 100 * index), now)
            .expect("known");
        asks.extend(drain(&mut b).asks);
    }
    assert_eq!(
        asks.iter().map(data_question).collect::<Vec<_>>(),
        [(100, 100)]
    );
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    let next = drain(&mut b).asks;
    assert_eq!(
        next.iter().map(data_question).collect::<Vec<_>>(),
        [(500, 600)],
        "the bytes of blocks 2 and 3, asked once"
    );
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    assert!(drain(&mut b).asks.is_empty(), "every byte reported once");
}

#[test]
fn accept_with_a_result_sends_it_without_pausing() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&channel, data(DataKind::Queued, 1, 100), now)
        .expect("known");
    drain(&mut b);
    let receipt = VoucherResult::new("Receipt", Node::text("100 bytes so far"));
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Accept).with_result(receipt.clone()),
        now,
    )
    .expect("pending");
    let answered = drain(&mut b);
    assert_eq!(answered.codes, [EventCode::NewVoucherResult]);
    assert!(matches!(&answered.transmits[..], [Transmit::Attach { .. }]));
    let message = only_message(&answered.transmits);
    assert!(response(&message).accepted() && !response(&message).is_paused());
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
    a.handle_message(bob(), message, now).expect("result");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);
    assert_eq!(
        a.channel(&channel).expect("a").last_voucher_result(),
        Some(&receipt)
    );
}

#[test]
fn resume_from_a_data_question_counts_as_accept() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&channel, data(DataKind::Queued, 1, 100), now)
        .expect("known");
    drain(&mut b);
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    let answered = drain(&mut b);
    assert!(answered.transmits.is_empty() && answered.codes.is_empty());
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
}

#[test]
fn a_rejected_data_question_fails_the_provider_and_then_the_client() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&channel, data(DataKind::Queued, 1, 100), now)
        .expect("known");
    drain(&mut b);
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Reject("payment channel closed".into())).with_result(invoice(100)),
        now,
    )
    .expect("pending");
    let answered = drain(&mut b);
    assert!(
        matches!(
            &answered.transmits[..],
            [
                Transmit::Attach { .. },
                Transmit::CloseChannel { .. },
                Transmit::CleanupChannel { .. }
            ]
        ),
        "{:?}",
        answered.transmits
    );
    let state = b.channel(&channel).expect("b");
    assert_eq!(
        (state.status, state.message.as_str()),
        (ChannelStatus::Failed, "payment channel closed")
    );
    let message = only_message(&answered.transmits);
    assert!(!response(&message).accepted());
    a.handle_message(bob(), message, now).expect("rejection");
    assert_eq!(status(&a, &channel), ChannelStatus::Failed);
    // Later blocks of the dying transport change nothing and ask nothing.
    b.handle_transport_event(&channel, data(DataKind::Queued, 2, 100), now)
        .expect("known");
    assert!(drain(&mut b).asks.is_empty());
    assert_eq!(status(&b, &channel), ChannelStatus::Failed);
}

#[test]
fn a_push_provider_sends_its_payment_request_on_the_network_then_pauses() {
    let now = Instant::now();
    let (mut a, mut b) = engines(revalidating());
    let channel = accepted_push(&mut a, &mut b, now);
    b.handle_transport_event(&channel, data(DataKind::Received, 1, 250), now)
        .expect("known");
    let asks = drain(&mut b).asks;
    assert!(matches!(
        &asks[..],
        [ValidationRequest {
            kind: ValidationKind::PushDataReceived {
                additional_bytes: 250,
                total: 250
            },
            ..
        }]
    ));
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Pause).with_result(invoice(250)),
        now,
    )
    .expect("pending");
    let answered = drain(&mut b);
    assert_eq!(
        answered.codes,
        [EventCode::NewVoucherResult, EventCode::PauseResponder]
    );
    let [
        Transmit::Message { peer, message, .. },
        Transmit::PauseChannel { .. },
    ] = &answered.transmits[..]
    else {
        panic!("message then pause: {:?}", answered.transmits);
    };
    assert_eq!(peer, &alice());
    assert!(response(message).is_paused() && response(message).accepted());
    assert_eq!(status(&b, &channel), ChannelStatus::ResponderPaused);

    a.handle_message(bob(), message.clone(), now)
        .expect("payment request");
    assert_eq!(status(&a, &channel), ChannelStatus::ResponderPaused);
    a.send_voucher(&channel, Voucher::new("Payment", Node::Integer(250)), now)
        .expect("voucher");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("voucher");
    drain(&mut b);
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    let resumed = drain(&mut b).transmits;
    assert!(matches!(&resumed[..], [Transmit::ResumeChannel { .. }]));
    a.handle_message(bob(), only_message(&resumed), now)
        .expect("resume");
    assert_eq!(status(&a, &channel), ChannelStatus::Ongoing);
    assert_eq!(status(&b, &channel), ChannelStatus::Ongoing);
}

#[test]
fn an_unanswered_data_question_times_out_and_fails_the_provider() {
    let now = Instant::now();
    let timeout = Duration::from_secs(2);
    let (mut a, mut b) = engines(revalidating().with_validation_timeout(timeout));
    let channel = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&channel, data(DataKind::Queued, 1, 100), now)
        .expect("known");
    drain(&mut b);
    assert_eq!(b.poll_timeout(), Some(now + timeout));
    b.handle_timeout(now + timeout);
    let state = b.channel(&channel).expect("b");
    assert_eq!(
        (state.status, state.message.as_str()),
        (ChannelStatus::Failed, "validation timed out")
    );
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn with_revalidation_turns_on_both_hooks_and_completion_settles() {
    let now = Instant::now();
    let config = Config::default().with_revalidation(true);
    assert!(config.revalidate_data && config.validate_completion);
    let (mut a, mut b) = engines(config);
    let channel = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&channel, data(DataKind::Queued, 1, 100), now)
        .expect("known");
    drain(&mut b);
    b.handle_validation(&channel, Validation::new(Verdict::Accept), now)
        .expect("pending");
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    let asks = drain(&mut b).asks;
    assert!(matches!(
        &asks[..],
        [ValidationRequest {
            kind: ValidationKind::Complete,
            ..
        }]
    ));
    // OnComplete asks for the final payment: Complete(Paus=true), the provider finalizes.
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Pause).with_result(invoice(100)),
        now,
    )
    .expect("pending");
    let complete = only_message(&drain(&mut b).transmits);
    assert!(response(&complete).is_complete() && response(&complete).is_paused());
    assert_eq!(status(&b, &channel), ChannelStatus::Finalizing);
    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    a.handle_message(bob(), complete, now).expect("complete");
    assert_eq!(
        status(&a, &channel),
        ChannelStatus::ResponderFinalizingTransferFinished
    );
    a.send_voucher(&channel, Voucher::new("Payment", Node::Integer(100)), now)
        .expect("final voucher");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("voucher");
    drain(&mut b);
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    let settled = only_message(&drain(&mut b).transmits);
    assert_eq!(status(&b, &channel), ChannelStatus::Completed);
    a.handle_message(bob(), settled, now)
        .expect("final complete");
    assert_eq!(status(&a, &channel), ChannelStatus::Completed);
}

#[test]
fn a_repeated_final_payment_request_keeps_the_client_finalizing() {
    let now = Instant::now();
    let (mut a, mut b) = engines(Config::default().with_revalidation(true));
    let channel = accepted_pull(&mut a, &mut b, now);
    b.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    drain(&mut b);
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Pause).with_result(invoice(100)),
        now,
    )
    .expect("pending");
    let first = only_message(&drain(&mut b).transmits);
    a.handle_transport_event(&channel, TransportInput::Completed(Ok(())), now)
        .expect("known");
    a.handle_message(bob(), first, now).expect("complete");
    assert_eq!(
        status(&a, &channel),
        ChannelStatus::ResponderFinalizingTransferFinished
    );
    drain(&mut a);

    // A voucher that does not cover the debt: the provider asks again, with a Complete
    // (Paus=true), as Go does while Finalizing.
    a.send_voucher(&channel, Voucher::new("Payment", Node::Integer(50)), now)
        .expect("voucher");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("voucher");
    drain(&mut b);
    b.handle_validation(
        &channel,
        Validation::new(Verdict::Pause).with_result(invoice(100)),
        now,
    )
    .expect("pending");
    assert_eq!(status(&b, &channel), ChannelStatus::Finalizing);
    let again = only_message(&drain(&mut b).transmits);
    assert!(response(&again).is_complete() && response(&again).is_paused());
    a.handle_message(bob(), again, now).expect("second request");
    // Go's table would go back to ResponderFinalizing and hang in ResponderCompleted.
    assert_eq!(
        status(&a, &channel),
        ChannelStatus::ResponderFinalizingTransferFinished
    );
    assert_eq!(a.channel(&channel).expect("a").voucher_results.len(), 2);

    a.send_voucher(&channel, Voucher::new("Payment", Node::Integer(100)), now)
        .expect("voucher");
    b.handle_message(alice(), only_message(&drain(&mut a).transmits), now)
        .expect("voucher");
    drain(&mut b);
    b.handle_validation(&channel, Validation::new(Verdict::Resume), now)
        .expect("pending");
    a.handle_message(bob(), only_message(&drain(&mut b).transmits), now)
        .expect("final complete");
    assert_eq!(status(&a, &channel), ChannelStatus::Completed);
    assert_eq!(status(&b, &channel), ChannelStatus::Completed);
}
