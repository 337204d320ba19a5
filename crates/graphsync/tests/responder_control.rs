//! Responder control flow (spec §7.6–§7.9, §9): pause by hook, by block hook and locally;
//! unpause by update hook and locally; updates while running; cancels; reused ids; send
//! failures and disconnects.

mod responder_common;

use graphsync::extension;
use graphsync::responder::{
    BlockDecision, CommandError, Config, Event, Hooks, RequestDecision, UpdateDecision,
};
use graphsync::{Extensions, Message, Request, ResponseStatus};
use ipld_dagcbor::Cid;
use responder_common::*;

const ALICE: Peer = "alice";

fn hooked(hooks: Hooks) -> Harness {
    let fixture = fixture("fixture_dag.json");
    Harness::new(Config {
        default_validator: None,
        hooks: Hooks {
            request: true,
            ..hooks
        },
        ..Config::default()
    })
    .with_blocks(fixture.blocks)
}

fn links(h: &Harness, id: graphsync::RequestId) -> Vec<Cid> {
    h.metadata(ALICE, id).iter().map(|e| e.link).collect()
}

fn count(h: &Harness, f: impl Fn(&Event<Peer>) -> bool) -> usize {
    h.events.iter().filter(|event| f(event)).count()
}

#[test]
fn request_hook_pause_sends_15_and_the_update_hook_unpauses() {
    let fixture = fixture("fixture_dag.json");
    let mut h = hooked(Hooks {
        update: true,
        ..Hooks::default()
    });
    h.receive(ALICE, msg(new_request(rid(1), fixture.root)));
    h.settle();
    let why = ext("pay", 1);
    h.decide_all(
        &RequestDecision::validate()
            .with_pause()
            .with_extensions(why.clone()),
    );
    h.run();
    let responses = h.responses(ALICE, rid(1));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0.status, ResponseStatus::RequestPaused);
    assert_eq!(responses[0].0.extensions, why);
    assert!(
        responses[0].0.metadata.is_empty(),
        "the traversal did not start"
    );
    assert_eq!(count(&h, |e| matches!(e, Event::Paused { .. })), 1);

    // The requester pays with an Update; the hook runs at once and unpauses.
    let payment = ext("voucher", 7);
    h.receive(ALICE, msg(Request::update(rid(1), payment.clone())));
    h.settle();
    let updates: Vec<Vec<Extensions>> = h
        .events
        .iter()
        .filter_map(|event| match event {
            Event::UpdateReceived { updates, .. } => Some(updates.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updates, [vec![payment]]);
    let thanks = ext("thanks", 1);
    h.responder
        .handle_update_decision(
            &ALICE,
            rid(1),
            UpdateDecision {
                unpause: true,
                extensions: thanks.clone(),
                ..UpdateDecision::default()
            },
        )
        .expect("an update question is open");
    h.run();
    // The reply joins the next message; here the whole rest of the response fits in it.
    let responses = h.responses(ALICE, rid(1));
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[1].0.extensions, thanks);
    assert_eq!(links(&h, rid(1)), fixture.loads);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}

#[test]
fn block_hook_pauses_after_its_block_and_local_unpause_resumes_with_extensions() {
    let fixture = fixture("fixture_dag.json");
    let mut h = hooked(Hooks {
        block: true,
        ..Hooks::default()
    });
    h.receive(ALICE, msg(new_request(rid(1), fixture.root)));
    h.settle();
    h.decide_all(&RequestDecision::validate());
    let mut records = Vec::new();
    loop {
        h.settle();
        let asks: Vec<_> = h
            .events
            .iter()
            .filter_map(|event| match event {
                Event::BlockLoaded { record, .. } => Some(*record),
                _ => None,
            })
            .collect();
        h.events
            .retain(|event| !matches!(event, Event::BlockLoaded { .. }));
        if asks.is_empty() {
            break;
        }
        for record in asks {
            records.push(record);
            let decision = BlockDecision {
                pause: record.index == 2,
                extensions: ext("index", record.index as i64),
                ..BlockDecision::default()
            };
            h.responder
                .handle_block_decision(&ALICE, rid(1), decision)
                .expect("a block question is open");
        }
    }
    h.flush();
    let responses = h.responses(ALICE, rid(1));
    assert_eq!(responses.len(), 1);
    let paused = &responses[0].0;
    assert_eq!(paused.status, ResponseStatus::RequestPaused);
    assert_eq!(links(&h, rid(1)), fixture.loads[..2].to_vec());
    assert_eq!(paused.extensions, ext("index", 2), "later values win");
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].index, records[1].index), (1, 2));
    assert_eq!(records[0].sent, records[0].size, "root sent");

    let resumed = ext("resumed", 1);
    h.responder
        .unpause(&ALICE, rid(1), resumed.clone())
        .expect("paused");
    assert_eq!(
        h.responder.unpause(&ALICE, rid(1), Extensions::new()),
        Err(CommandError::NotPaused { request: rid(1) })
    );
    // Answer the remaining block questions without pausing.
    loop {
        h.settle();
        let asks = h
            .events
            .iter()
            .filter(|event| matches!(event, Event::BlockLoaded { .. }))
            .count();
        h.events
            .retain(|event| !matches!(event, Event::BlockLoaded { .. }));
        if asks == 0 {
            break;
        }
        for _ in 0..asks {
            h.responder
                .handle_block_decision(&ALICE, rid(1), BlockDecision::default())
                .expect("open");
        }
    }
    h.run();
    let responses = h.responses(ALICE, rid(1));
    assert_eq!(responses[1].0.status, ResponseStatus::RequestCompletedFull);
    assert!(responses[1].0.extensions.contains("resumed"));
    assert_eq!(links(&h, rid(1)), fixture.loads);
    let mut blocks = h.blocks_sent(ALICE);
    blocks.sort();
    blocks.dedup();
    assert_eq!(blocks.len(), 4);
}

#[test]
fn local_pause_is_noticed_at_the_next_block_which_is_still_sent() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    assert_eq!(h.pending_loads, [(ALICE, rid(1), fixture.root)]);
    h.responder.pause(&ALICE, rid(1)).expect("running");
    let root_bytes = h.store[&fixture.root].clone();
    h.responder
        .provide_block(&ALICE, rid(1), fixture.root, Some(root_bytes))
        .expect("pending");
    h.pending_loads.clear();
    h.run();
    assert_eq!(h.statuses(ALICE, rid(1)), [ResponseStatus::RequestPaused]);
    assert_eq!(links(&h, rid(1)), [fixture.root]);
    assert_eq!(h.blocks_sent(ALICE), [fixture.root]);
    assert!(h.pending_loads.is_empty(), "no load while paused");
    assert_eq!(
        h.responder.pause(&ALICE, rid(1)),
        Err(CommandError::CannotPause { request: rid(1) })
    );

    h.answer_loads = true;
    h.responder
        .unpause(&ALICE, rid(1), Extensions::new())
        .expect("paused");
    h.run();
    assert_eq!(links(&h, rid(1)), fixture.loads);
    assert_eq!(
        h.statuses(ALICE, rid(1)),
        [
            ResponseStatus::RequestPaused,
            ResponseStatus::RequestCompletedFull
        ]
    );
}

#[test]
fn updates_while_running_are_applied_at_the_next_block() {
    let fixture = fixture("fixture_dag.json");
    let mut h = hooked(Hooks {
        update: true,
        ..Hooks::default()
    });
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    h.receive(ALICE, msg(Request::update(rid(1), ext("u", 1))));
    h.receive(ALICE, msg(Request::update(rid(1), ext("u", 2))));
    h.settle();
    assert_eq!(
        count(&h, |e| matches!(e, Event::UpdateReceived { .. })),
        0,
        "not before the next block"
    );
    let root_bytes = h.store[&fixture.root].clone();
    h.responder
        .provide_block(&ALICE, rid(1), fixture.root, Some(root_bytes))
        .expect("pending");
    h.settle();
    let updates: Vec<Vec<Extensions>> = h
        .events
        .iter()
        .filter_map(|event| match event {
            Event::UpdateReceived { updates, .. } => Some(updates.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updates, [vec![ext("u", 1), ext("u", 2)]]);
    h.responder
        .handle_update_decision(
            &ALICE,
            rid(1),
            UpdateDecision {
                extensions: ext("ack", 1),
                unpause: true,
                ..UpdateDecision::default()
            },
        )
        .expect("open");
    h.answer_loads = true;
    h.pending_loads.clear();
    h.run();
    let first = &h.responses(ALICE, rid(1))[0].0;
    assert_eq!(first.metadata[0].link, fixture.root);
    assert_eq!(
        first.extensions,
        ext("ack", 1),
        "joins the block's transaction"
    );
    assert_eq!(links(&h, rid(1)), fixture.loads);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}

#[test]
fn update_hook_error_ends_the_response_with_32() {
    let fixture = fixture("fixture_dag.json");
    let mut h = hooked(Hooks {
        update: true,
        ..Hooks::default()
    });
    h.receive(ALICE, msg(new_request(rid(1), fixture.root)));
    h.settle();
    h.decide_all(&RequestDecision::validate().with_pause());
    h.run();
    h.receive(ALICE, msg(Request::update(rid(1), ext("bad", 0))));
    h.settle();
    h.responder
        .handle_update_decision(
            &ALICE,
            rid(1),
            UpdateDecision {
                terminate: true,
                ..UpdateDecision::default()
            },
        )
        .expect("open");
    h.run();
    assert_eq!(
        h.statuses(ALICE, rid(1)),
        [
            ResponseStatus::RequestPaused,
            ResponseStatus::RequestFailedUnknown
        ]
    );
    assert_eq!(h.responder.tracked(), 0);
}

#[test]
fn requester_cancel_stops_silently_and_drops_unsent_data() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    let root_bytes = h.store[&fixture.root].clone();
    h.responder
        .provide_block(&ALICE, rid(1), fixture.root, Some(root_bytes.clone()))
        .expect("pending");
    // The root's transaction is queued but not taken; the cancel removes it.
    h.receive(ALICE, msg(Request::cancel(rid(1))));
    h.settle();
    assert!(h.responder.poll_transmit().is_none(), "nothing is sent");
    assert_eq!(
        count(&h, |e| matches!(e, Event::CancelledByRequester { .. })),
        1
    );
    assert_eq!(h.responder.tracked(), 0);
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
    let late = h.pending_loads.last().expect("a later load was asked");
    assert_eq!(
        h.responder
            .provide_block(&ALICE, rid(1), late.2, Some(root_bytes)),
        Err(CommandError::UnknownRequest { request: rid(1) })
    );
    assert!(h.sent.is_empty());
}

#[test]
fn local_cancel_sends_35_and_clears_state() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    h.responder.cancel(&ALICE, rid(1)).expect("known");
    h.run();
    assert_eq!(
        h.statuses(ALICE, rid(1)),
        [ResponseStatus::RequestCancelled]
    );
    assert_eq!(h.responder.tracked(), 0);
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::Completed {
            status: ResponseStatus::RequestCancelled,
            ..
        }
    )));
    assert_eq!(
        h.responder.cancel(&ALICE, rid(1)),
        Err(CommandError::UnknownRequest { request: rid(1) })
    );
}

#[test]
fn new_request_reusing_an_id_in_progress_replaces_the_old_one_silently() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    let root_bytes = h.store[&fixture.root].clone();
    h.responder
        .provide_block(&ALICE, rid(1), fixture.root, Some(root_bytes))
        .expect("pending");
    // The old request's next load stays unanswered (a late answer would be refused).
    h.settle();
    h.pending_loads.clear();
    // Go's requester resumes with the same id and do-not-send-first-blocks.
    h.answer_loads = true;
    let again = new_request(rid(1), fixture.root)
        .with_extensions(ext(extension::DO_NOT_SEND_FIRST_BLOCKS, 2));
    h.serve(ALICE, again);

    assert_eq!(
        links(&h, rid(1)),
        fixture.loads,
        "one clean metadata sequence"
    );
    let carried: Vec<bool> = h
        .loads_with_bytes(ALICE, rid(1))
        .iter()
        .map(|(_, _, carried)| *carried)
        .collect();
    assert_eq!(carried, [false, false, false, true, true, false]);
    assert_eq!(
        h.statuses(ALICE, rid(1))
            .iter()
            .filter(|status| status.is_terminal())
            .count(),
        1
    );
    assert_eq!(h.responder.tracked(), 0);
}

#[test]
fn updates_and_cancels_for_unknown_ids_are_ignored() {
    let mut h = hooked(Hooks {
        update: true,
        ..Hooks::default()
    });
    h.receive(
        ALICE,
        Message::new()
            .with_request(Request::update(rid(9), ext("x", 1)))
            .with_request(Request::cancel(rid(8))),
    );
    h.run();
    assert!(h.events.is_empty());
    assert!(h.sent.is_empty());
}

#[test]
fn send_failure_drops_the_response_with_a_network_error() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.ack = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    let transmit = h.sent.last().expect("a message").clone();
    assert!(h.responder.memory(&ALICE).1 > 0);
    h.responder
        .handle_send_failed(&ALICE, transmit.id)
        .expect("in flight");
    h.settle();
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::NetworkError { request, .. } if *request == rid(1)
    )));
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
    assert_eq!(
        h.responder.handle_sent(&ALICE, transmit.id),
        Err(CommandError::UnknownMessage {
            message: transmit.id
        })
    );
}

#[test]
fn peer_disconnect_drops_its_responses_and_frees_memory() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.ack = false;
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    let root_bytes = h.store[&fixture.root].clone();
    h.responder
        .provide_block(&ALICE, rid(1), fixture.root, Some(root_bytes))
        .expect("pending");
    assert!(h.responder.memory(&ALICE).0 > 0);
    h.responder.handle_peer_disconnected(&ALICE);
    h.settle();
    assert_eq!(h.responder.tracked(), 0);
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
    assert!(h.responder.poll_transmit().is_none());
    assert!(
        h.events
            .iter()
            .any(|event| matches!(event, Event::NetworkError { .. }))
    );
}

/// A response with nothing queued or in flight (waiting for its first block load) also ends
/// with a network error when its peer goes, so that its owner hears of it at once.
#[test]
fn peer_disconnect_reports_an_idle_response_too() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
    assert!(h.sent.is_empty());
    h.responder.handle_peer_disconnected(&ALICE);
    h.settle();
    assert_eq!(h.responder.tracked(), 0);
    let errors: Vec<graphsync::RequestId> = h
        .events
        .iter()
        .filter_map(|event| match event {
            Event::NetworkError { request, .. } => Some(*request),
            _ => None,
        })
        .collect();
    assert_eq!(errors, vec![rid(1)]);
}

#[test]
fn send_extensions_goes_out_as_an_extension_only_14() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.answer_loads = false;
    h.serve(ALICE, new_request(rid(1), fixture.root));
    h.responder
        .send_extensions(&ALICE, rid(1), ext("note", 3))
        .expect("known");
    h.run();
    let responses = h.responses(ALICE, rid(1));
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0.status, ResponseStatus::PartialResponse);
    assert_eq!(responses[0].0.extensions, ext("note", 3));
    assert!(responses[0].0.metadata.is_empty());
}

#[test]
fn local_unpause_with_extensions_sends_an_extension_only_14_first() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.receive(ALICE, msg(new_request(rid(1), fixture.root)));
    h.settle();
    h.decide_all(&RequestDecision::validate().with_pause());
    h.run();
    assert_eq!(h.statuses(ALICE, rid(1)), [ResponseStatus::RequestPaused]);

    // Loads stay unanswered, so the next message holds only the unpause extensions.
    h.answer_loads = false;
    h.responder
        .unpause(&ALICE, rid(1), ext("resumed", 1))
        .expect("paused");
    h.settle();
    h.flush();
    let responses = h.responses(ALICE, rid(1));
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[1].0.status, ResponseStatus::PartialResponse);
    assert_eq!(responses[1].0.extensions, ext("resumed", 1));
    assert!(responses[1].0.metadata.is_empty());
    assert_eq!(
        h.pending_loads.len(),
        1,
        "the traversal resumed at the root"
    );
}
