//! The requester's commands and hooks: pause and resume with restart verification (spec §8.4,
//! §8.5, §9.2), updates around a responder pause (§9.1), cancel quiescence, in-progress limits,
//! hook decisions and disconnects.

mod requester_support;

use graphsync::requester::{
    BlockDecision, CommandError, Config, Event, Failure, Outcome, RequestError, ResponseDecision,
};
use graphsync::{Extensions, LinkAction, RequestKind, ResponseStatus, extension};
use ipld_dagcbor::Node;
use ipld_selector::Selector;
use requester_support::{Fixture, Harness, PEER, block, meta, response};

use LinkAction::Present;
use ResponseStatus::{PartialResponse, RequestCompletedFull, RequestPaused};

fn ext(name: &str, value: u64) -> Extensions {
    Extensions::new().with(name, Some(Node::from(value)))
}

#[test]
fn pause_takes_effect_after_the_current_block_and_transmits_cancel() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness.auto_load = false;
    let id = harness.request_all(fixture.root.0);
    let metadata = fixture.full_metadata();
    // Root and leaf1 arrive; the second leaf1 load ("c/0") waits on the local store.
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            metadata[..3].to_vec(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    harness.requester.pause(id).expect("pausable");
    harness.drain();
    assert_eq!(
        harness.sent_kinds(id),
        ["n"],
        "not before the current block"
    );
    assert!(matches!(
        harness.requester.pause(id),
        Err(CommandError::AlreadyPaused { .. })
    ));
    harness
        .requester
        .provide_block(id, fixture.leaf1.0, Some(fixture.leaf1.1.clone()))
        .expect("asked for");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    assert!(
        harness
            .events
            .iter()
            .any(|event| matches!(event, Event::Paused { request } if *request == id))
    );
    // Remote data is ignored while paused.
    let stored = harness.stored.len();
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            metadata[3..].to_vec(),
            vec![block(&fixture.leaf2), block(&fixture.mid)],
        ),
    );
    assert_eq!(harness.stored.len(), stored);
    assert!(harness.outcome(id).is_none());
    assert!(matches!(
        harness.requester.update(id, ext("x", 1)),
        Err(CommandError::RemoteNotListening { .. })
    ));
}

#[test]
fn resume_restarts_with_same_id_and_do_not_send_first_blocks() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let metadata = fixture.full_metadata();
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            metadata[..2].to_vec(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    harness.requester.pause(id).expect("pausable");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);

    // Resume: "c/0" (leaf1) is local, "c/1" (leaf2) is not: the request goes out again.
    harness
        .requester
        .resume(id, ext("app/resume", 7))
        .expect("paused");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c", "n"]);
    let restarted = harness.sent(id)[2];
    let RequestKind::New { root, .. } = &restarted.kind else {
        panic!("a new request")
    };
    assert_eq!(*root, fixture.root.0);
    assert_eq!(restarted.extensions.do_not_send_first_blocks(), Some(Ok(3)));
    assert!(restarted.extensions.contains("app/resume"));

    // The responder restarts from the root: three entries without blocks replay the record,
    // then the rest with blocks.
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            metadata.clone(),
            vec![block(&fixture.leaf2), block(&fixture.mid)],
        ),
    );
    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => {
            assert_eq!(completion.status, Some(RequestCompletedFull));
            assert!(completion.missing.is_empty());
        }
        other => panic!("expected a completion, got {other:?}"),
    }
    assert_eq!(
        harness.stored_cids(),
        [
            fixture.root.0,
            fixture.leaf1.0,
            fixture.leaf2.0,
            fixture.mid.0
        ]
    );
}

#[test]
fn restarted_metadata_that_does_not_replay_the_record_fails() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let metadata = fixture.full_metadata();
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            metadata[..2].to_vec(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    harness.requester.pause(id).expect("pausable");
    harness
        .requester
        .resume(id, Extensions::new())
        .expect("paused");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c", "n"]);
    // The restarted responder reports mid where the record holds leaf1 (load 1).
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            meta(&[(fixture.root.0, Present), (fixture.mid.0, Present)]),
            vec![],
        ),
    );
    match harness.outcome(id) {
        Some(Outcome::Failed(Failure::IncorrectReplay {
            index,
            expected,
            received,
        })) => {
            assert_eq!(*index, 1);
            assert_eq!(*expected, fixture.leaf1.0);
            assert_eq!(*received, fixture.mid.0);
        }
        other => panic!("expected an incorrect replay, got {other:?}"),
    }
    assert_eq!(harness.sent_kinds(id), ["n", "c", "n", "c"]);
}

#[test]
fn resume_without_local_miss_completes_without_resending() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness.local = fixture.store();
    harness.local.remove(&fixture.root.0);
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            meta(&[(fixture.root.0, Present)]),
            vec![block(&fixture.root)],
        ),
    );
    harness.requester.pause(id).expect("pausable");
    harness
        .requester
        .resume(id, Extensions::new())
        .expect("paused");
    harness.drain();
    assert!(matches!(harness.outcome(id), Some(Outcome::Completed(_))));
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
}

#[test]
fn responder_pause_15_then_update_then_more_data_completes() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let metadata = fixture.full_metadata();
    harness.receive(
        PEER,
        response(
            id,
            RequestPaused,
            metadata[..2].to_vec(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    assert!(harness.outcome(id).is_none());
    harness
        .requester
        .update(id, ext("app/payment", 100))
        .expect("listening");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "u"]);
    let update = harness.sent(id)[1];
    assert!(update.extensions.contains("app/payment"));
    harness.receive(PEER, response(id, PartialResponse, vec![], vec![]));
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            metadata[2..].to_vec(),
            vec![block(&fixture.leaf2), block(&fixture.mid)],
        ),
    );
    assert!(matches!(harness.outcome(id), Some(Outcome::Completed(_))));
    assert_eq!(harness.stored.len(), 4);
}

#[test]
fn cancel_transmits_cancel_and_no_store_follows() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    // Feed a message without draining, so StoreBlock events sit in the queue.
    harness.requester.handle_message(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata()[..2].to_vec(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    harness.requester.cancel(id).expect("known");
    harness.drain();
    assert!(harness.stored.is_empty(), "queued stores were withdrawn");
    assert!(matches!(harness.outcome(id), Some(Outcome::Cancelled)));
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    // Later traffic for the id changes nothing and commands are refused.
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(harness.stored.is_empty());
    assert_eq!(harness.outcomes.len(), 1);
    assert!(matches!(
        harness.requester.cancel(id),
        Err(CommandError::UnknownRequest { .. })
    ));
    assert!(matches!(
        harness
            .requester
            .provide_block(id, fixture.leaf1.0, Some(fixture.leaf1.1.clone())),
        Err(CommandError::UnknownRequest { .. })
    ));
    assert_eq!(harness.requester.in_progress(), 0);
}

#[test]
fn cancel_while_a_local_load_is_pending_stores_nothing_later() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness.auto_load = false;
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    let stored = harness.stored.len();
    harness.requester.cancel(id).expect("known");
    harness.drain();
    harness.receive(
        PEER,
        response(id, RequestCompletedFull, vec![], fixture.full_blocks()),
    );
    assert_eq!(harness.stored.len(), stored);
    assert!(matches!(harness.outcome(id), Some(Outcome::Cancelled)));
}

#[test]
fn requests_beyond_the_limits_are_queued_and_start_when_a_slot_frees() {
    let fixture = Fixture::load();
    let config = Config::default()
        .with_max_in_progress(2)
        .with_max_in_progress_per_peer(1)
        .with_max_queued(2);
    let mut harness = Harness::new(config);
    let all = Selector::explore_all_recursively();
    let first = harness
        .requester
        .request(PEER, fixture.root.0, &all, Extensions::new())
        .expect("ok");
    let second = harness
        .requester
        .request(PEER, fixture.root.0, &all, Extensions::new())
        .expect("ok");
    let other = harness
        .requester
        .request("other", fixture.root.0, &all, Extensions::new())
        .expect("ok");
    harness.drain();
    assert_ne!(first, second);
    assert_eq!(harness.sent_kinds(first), ["n"]);
    assert!(harness.sent_kinds(second).is_empty(), "per-peer limit");
    assert_eq!(harness.sent_kinds(other), ["n"]);
    assert_eq!(
        (harness.requester.in_progress(), harness.requester.queued()),
        (2, 1)
    );
    let third = harness
        .requester
        .request(PEER, fixture.root.0, &all, Extensions::new())
        .expect("ok");
    assert!(matches!(
        harness
            .requester
            .request(PEER, fixture.root.0, &all, Extensions::new()),
        Err(RequestError::QueueFull { limit: 2 })
    ));
    // A queued request refuses pause and update, and ignores responses.
    assert!(matches!(
        harness.requester.pause(second),
        Err(CommandError::Queued { .. })
    ));
    assert!(matches!(
        harness.requester.update(second, ext("x", 1)),
        Err(CommandError::Queued { .. })
    ));
    harness.receive(
        PEER,
        response(
            second,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(harness.stored.is_empty());

    // The first finishes: the second (oldest queued, same peer) starts.
    harness.receive(
        PEER,
        response(
            first,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(matches!(
        harness.outcome(first),
        Some(Outcome::Completed(_))
    ));
    assert_eq!(harness.sent_kinds(second), ["n"]);
    assert!(harness.sent_kinds(third).is_empty());
    // Cancelling a queued request sends nothing.
    harness.requester.cancel(third).expect("known");
    harness.drain();
    assert!(harness.sent_kinds(third).is_empty());
    assert!(matches!(harness.outcome(third), Some(Outcome::Cancelled)));
    assert_eq!(harness.requester.queued(), 0);
}

#[test]
fn default_limits_are_go_production_values() {
    let config = Config::default();
    assert_eq!(config.max_in_progress, 200);
    assert_eq!(config.max_in_progress_per_peer, 20);
    assert_eq!(config.traversal.max_recursion_depth, None);
}

#[test]
fn adl_selectors_are_refused_and_depth_cap_is_configurable() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let adl =
        Selector::from_dag_json(br#"{"~": {"as": "unixfs", ">": {".": {}}}}"#).expect("parses");
    assert!(matches!(
        harness
            .requester
            .request(PEER, fixture.root.0, &adl, Extensions::new()),
        Err(RequestError::AdlSelector { .. })
    ));
    // Unbounded recursion is accepted by default (Go's requester only parses) ...
    let unbounded =
        Selector::from_dag_json(br#"{"R": {"l": {"none": {}}, ":>": {"a": {">": {"@": {}}}}}}"#)
            .expect("parses");
    harness
        .requester
        .request(PEER, fixture.root.0, &unbounded, Extensions::new())
        .expect("accepted");
    // ... and refused when the traversal config caps the depth.
    let mut capped = Harness::new(
        Config::default().with_traversal(
            ipld_selector::Config::default()
                .with_max_recursion_depth(Some(ipld_selector::GRAPHSYNC_MAX_RECURSION_DEPTH)),
        ),
    );
    assert!(matches!(
        capped
            .requester
            .request(PEER, fixture.root.0, &unbounded, Extensions::new()),
        Err(RequestError::SelectorRejected { .. })
    ));
    capped.drain();
    assert!(capped.transmits.is_empty());
}

#[test]
fn response_hook_extensions_are_sent_as_update_and_hold_the_response() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default().with_response_hooks(true));
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(harness.stored.is_empty(), "held until the decision");
    assert!(harness.events.iter().any(|event| matches!(
        event,
        Event::ResponseReceived {
            awaits_decision: true,
            status: RequestCompletedFull,
            ..
        }
    )));
    harness
        .requester
        .handle_response_decision(
            id,
            ResponseDecision::proceed().with_extensions(ext("app/ack", 1)),
        )
        .expect("pending");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "u"]);
    assert!(matches!(harness.outcome(id), Some(Outcome::Completed(_))));
    assert_eq!(harness.stored.len(), 4);
}

#[test]
fn response_hook_terminate_cancels_and_fails() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default().with_response_hooks(true));
    let id = harness.request_all(fixture.root.0);
    assert!(matches!(
        harness
            .requester
            .handle_response_decision(id, ResponseDecision::proceed()),
        Err(CommandError::NoDecisionPending { .. })
    ));
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    harness
        .requester
        .handle_response_decision(id, ResponseDecision::terminate("not interested"))
        .expect("pending");
    harness.drain();
    assert!(matches!(
        harness.outcome(id),
        Some(Outcome::Failed(Failure::HookTerminated { .. }))
    ));
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    assert!(harness.stored.is_empty());
}

#[test]
fn block_hook_can_pause_and_the_request_resumes() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default().with_block_hooks(true));
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    // The traversal waits after the root.
    assert_eq!(harness.stored_cids(), [fixture.root.0]);
    harness
        .requester
        .handle_block_decision(id, BlockDecision::proceed())
        .expect("pending");
    harness.drain();
    assert_eq!(harness.stored_cids(), [fixture.root.0, fixture.leaf1.0]);
    // Pause after leaf1: a Cancel goes out.
    harness
        .requester
        .handle_block_decision(id, BlockDecision::proceed().with_pause())
        .expect("pending");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    assert!(matches!(
        harness
            .requester
            .handle_block_decision(id, BlockDecision::proceed()),
        Err(CommandError::NoDecisionPending { .. })
    ));
    // Resume: leaf1 at "c/0" is local (hook proceeds), leaf2 at "c/1" is not: restart.
    harness
        .requester
        .resume(id, Extensions::new())
        .expect("paused");
    harness.drain();
    harness
        .requester
        .handle_block_decision(id, BlockDecision::proceed())
        .expect("pending");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c", "n"]);
    assert_eq!(
        harness.sent(id)[2].extensions.do_not_send_first_blocks(),
        Some(Ok(3))
    );
}

#[test]
fn block_hook_extensions_go_out_as_update_and_terminate_cancels() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default().with_block_hooks(true));
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    harness
        .requester
        .handle_block_decision(
            id,
            BlockDecision::proceed().with_extensions(ext("app/seen", 1)),
        )
        .expect("pending");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "u"]);
    harness
        .requester
        .handle_block_decision(id, BlockDecision::terminate("enough"))
        .expect("pending");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "u", "c"]);
    assert!(
        matches!(harness.outcome(id), Some(Outcome::Failed(Failure::HookTerminated { reason })) if reason == "enough")
    );
}

#[test]
fn disconnect_reports_a_network_error_and_keeps_the_request() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    harness.requester.handle_peer_disconnected(&PEER);
    harness.drain();
    assert!(harness.events.iter().any(|event| matches!(event,
        Event::NetworkError { peer, request } if *peer == PEER && *request == id)));
    assert!(harness.outcome(id).is_none());
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(matches!(harness.outcome(id), Some(Outcome::Completed(_))));
}

#[test]
fn user_do_not_send_first_blocks_is_sent_and_kept_as_minimum_on_restart() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness.local = fixture.store();
    harness.local.remove(&fixture.leaf2.0);
    harness.local.remove(&fixture.mid.0);
    let id = harness
        .requester
        .request(
            PEER,
            fixture.root.0,
            &Selector::explore_all_recursively(),
            Extensions::new().with(extension::DO_NOT_SEND_FIRST_BLOCKS, Some(Node::from(2u64))),
        )
        .expect("ok");
    harness.drain();
    assert_eq!(
        harness.sent(id)[0].extensions.do_not_send_first_blocks(),
        Some(Ok(2))
    );
    // The first two loads come without blocks and are served locally.
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata()[..2].to_vec(),
            vec![],
        ),
    );
    assert_eq!(harness.received().len(), 2);
    harness.requester.pause(id).expect("pausable");
    harness
        .requester
        .resume(id, Extensions::new())
        .expect("paused");
    harness.drain();
    // leaf1 at c/0 is local; leaf2 at c/1 is not: restart with max(2, 3) = 3.
    assert_eq!(
        harness.sent(id)[2].extensions.do_not_send_first_blocks(),
        Some(Ok(3))
    );
}

#[test]
fn progress_reports_every_visited_node() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    let visits: Vec<String> = harness
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Progress { path, .. } => Some(path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(visits, ["", "b", "c", "c/0", "c/1", "aa", "aa/x"]);
    assert!(harness.events.iter().any(|event| matches!(event,
        Event::Progress { block, .. } if *block == fixture.mid.0)));
}

#[test]
fn pause_during_a_local_load_with_block_hooks_takes_effect_after_that_block() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default().with_block_hooks(true));
    harness.auto_load = false;
    harness.local = fixture.store();
    let id = harness.request_all(fixture.root.0);
    // The root arrives without bytes: the core asks the local store.
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            meta(&[(fixture.root.0, Present)]),
            vec![],
        ),
    );
    harness.requester.pause(id).expect("pausable");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n"]);
    harness
        .requester
        .provide_block(id, fixture.root.0, Some(fixture.root.1.clone()))
        .expect("asked for");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    assert!(
        harness
            .events
            .iter()
            .any(|event| matches!(event, Event::Paused { .. }))
    );
    // The hook still answers for the root; the request stays paused until resumed.
    harness
        .requester
        .handle_block_decision(id, BlockDecision::proceed())
        .expect("pending");
    harness.drain();
    assert_eq!(harness.received().len(), 1);
    harness.auto_load = true;
    harness
        .requester
        .resume(id, Extensions::new())
        .expect("paused");
    harness.drain();
    assert_eq!(
        harness.received().len(),
        2,
        "leaf1 at b, from the local store"
    );
}
