//! A request whose local traversal is complete stays open until the responder's terminal
//! status arrives (bounded by `Config::terminal_status_timeout`), so the outcome reports what
//! the responder said. A Go responder sends that status in a message of its own after the last
//! block (spec §7.3), which is what the late-status cases model.

mod requester_support;

use std::time::Duration;

use graphsync::requester::{CommandError, Config, Event, Failure, Outcome};
use graphsync::{Extensions, LinkAction, RequestId, ResponseStatus};
use ipld_dagcbor::{Cid, Node};
use requester_support::{Fixture, Harness, PEER, block, meta, response};

use LinkAction::{Missing, Present};
use ResponseStatus::{
    PartialResponse, RequestCompletedFull, RequestCompletedPartial, RequestFailedUnknown,
    RequestPaused,
};

/// The `AwaitingStatus` events: request and timeout.
fn awaiting(harness: &Harness) -> Vec<(RequestId, Duration)> {
    harness
        .events
        .iter()
        .filter_map(|event| match event {
            Event::AwaitingStatus { request, timeout } => Some((*request, *timeout)),
            _ => None,
        })
        .collect()
}

/// A request for the fixture DAG whose every block arrived with status 14 only: the traversal
/// is complete and the request waits for the terminal status.
fn complete_without_status(config: Config) -> (Fixture, Harness, RequestId) {
    let fixture = Fixture::load();
    let mut harness = Harness::new(config);
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
    assert_eq!(
        harness.stored_cids(),
        [
            fixture.root.0,
            fixture.leaf1.0,
            fixture.leaf2.0,
            fixture.mid.0
        ]
    );
    assert!(harness.outcome(id).is_none(), "{:?}", harness.outcomes);
    (fixture, harness, id)
}

#[test]
fn late_status_20_in_its_own_message_completes_the_request_full() {
    let (_fixture, mut harness, id) = complete_without_status(Config::default());
    assert_eq!(awaiting(&harness), [(id, Duration::from_secs(10))]);
    assert_eq!(harness.requester.in_progress(), 1);

    harness.receive(PEER, response(id, RequestCompletedFull, vec![], vec![]));

    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => {
            assert_eq!(completion.status, Some(RequestCompletedFull));
            assert!(completion.missing.is_empty());
        }
        other => panic!("expected a completion, got {other:?}"),
    }
    assert_eq!(harness.outcomes.len(), 1);
    assert_eq!(harness.requester.in_progress(), 0);
    assert_eq!(
        harness.sent_kinds(id),
        ["n"],
        "no cancel after a terminal status"
    );
    assert!(
        harness.events.iter().any(|event| matches!(
            event,
            Event::ResponseReceived { request, status: RequestCompletedFull, .. } if *request == id
        )),
        "the late response is reported"
    );
}

#[test]
fn late_status_21_completes_partial_with_the_missing_links() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    // The responder lacks leaf2: both of its loads are "m"; the 21 comes later, alone.
    let metadata = meta(&[
        (fixture.root.0, Present),
        (fixture.leaf1.0, Present),
        (fixture.leaf1.0, Present),
        (fixture.leaf2.0, Missing),
        (fixture.mid.0, Present),
        (fixture.leaf2.0, Missing),
    ]);
    let blocks = vec![
        block(&fixture.root),
        block(&fixture.leaf1),
        block(&fixture.mid),
    ];
    harness.receive(PEER, response(id, PartialResponse, metadata, blocks));
    assert!(harness.outcome(id).is_none());
    assert_eq!(awaiting(&harness).len(), 1);

    harness.receive(PEER, response(id, RequestCompletedPartial, vec![], vec![]));

    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => {
            assert_eq!(completion.status, Some(RequestCompletedPartial));
            let missing: Vec<(String, Cid)> = completion
                .missing
                .iter()
                .map(|(path, cid)| (path.to_string(), *cid))
                .collect();
            assert_eq!(
                missing,
                [
                    ("c/1".to_owned(), fixture.leaf2.0),
                    ("aa/x".to_owned(), fixture.leaf2.0)
                ]
            );
        }
        other => panic!("expected a partial completion, got {other:?}"),
    }
    assert_eq!(
        harness.stored_cids(),
        [fixture.root.0, fixture.leaf1.0, fixture.mid.0]
    );
}

#[test]
fn status_in_the_same_message_as_the_last_block_completes_at_once() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let metadata = fixture.full_metadata();
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            metadata[..3].to_vec(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    assert!(harness.outcome(id).is_none());
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            metadata[3..].to_vec(),
            vec![block(&fixture.leaf2), block(&fixture.mid)],
        ),
    );
    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => {
            assert_eq!(completion.status, Some(RequestCompletedFull));
        }
        other => panic!("expected a completion, got {other:?}"),
    }
    assert!(awaiting(&harness).is_empty(), "nothing to wait for");
}

#[test]
fn timeout_ends_with_no_terminal_status_and_cancels_the_responder() {
    let config = Config::default().with_terminal_status_timeout(Duration::from_millis(250));
    let (_fixture, mut harness, id) = complete_without_status(config);
    assert_eq!(awaiting(&harness), [(id, Duration::from_millis(250))]);

    harness
        .requester
        .handle_status_timeout(id)
        .expect("the request awaits its status");
    harness.drain();

    match harness.outcome(id) {
        Some(Outcome::NoTerminalStatus(completion)) => {
            assert_eq!(completion.status, None);
            assert!(completion.missing.is_empty());
        }
        other => panic!("expected no terminal status, got {other:?}"),
    }
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    assert_eq!(harness.requester.in_progress(), 0);
    // A timer firing after the end is stale.
    assert!(matches!(
        harness.requester.handle_status_timeout(id),
        Err(CommandError::UnknownRequest { .. })
    ));
    // A status arriving after the timeout changes nothing.
    harness.receive(PEER, response(id, RequestCompletedFull, vec![], vec![]));
    assert_eq!(harness.outcomes.len(), 1);
}

#[test]
fn timeout_is_refused_while_the_traversal_runs() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    assert!(matches!(
        harness.requester.handle_status_timeout(id),
        Err(CommandError::NotAwaitingStatus { .. })
    ));
    harness.drain();
    assert!(harness.outcome(id).is_none());
    assert_eq!(harness.sent_kinds(id), ["n"]);
}

#[test]
fn cancel_while_waiting_for_the_status_ends_cancelled() {
    let (_fixture, mut harness, id) = complete_without_status(Config::default());

    harness.requester.cancel(id).expect("known request");
    harness.drain();

    assert!(matches!(harness.outcome(id), Some(Outcome::Cancelled)));
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    harness.receive(PEER, response(id, RequestCompletedFull, vec![], vec![]));
    assert_eq!(harness.outcomes.len(), 1);
    assert!(matches!(
        harness.requester.handle_status_timeout(id),
        Err(CommandError::UnknownRequest { .. })
    ));
}

#[test]
fn late_failure_status_fails_the_request_with_it() {
    let (_fixture, mut harness, id) = complete_without_status(Config::default());

    harness.receive(PEER, response(id, RequestFailedUnknown, vec![], vec![]));

    assert!(matches!(
        harness.outcome(id),
        Some(Outcome::Failed(Failure::FailedUnknown))
    ));
    assert_eq!(
        harness.sent_kinds(id),
        ["n"],
        "no cancel back for a failure"
    );
}

#[test]
fn informational_statuses_keep_the_request_waiting_and_late_entries_are_ignored() {
    let (fixture, mut harness, id) = complete_without_status(Config::default());
    let stored = harness.stored.len();

    // A responder that paused after its last block, then sends leftover entries with 14.
    harness.receive(PEER, response(id, RequestPaused, vec![], vec![]));
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(harness.outcome(id).is_none());
    assert_eq!(harness.stored.len(), stored, "nothing more is stored");
    assert_eq!(awaiting(&harness).len(), 1, "announced once");

    harness.receive(PEER, response(id, RequestCompletedFull, vec![], vec![]));
    assert!(matches!(
        harness.outcome(id),
        Some(Outcome::Completed(completion)) if completion.status == Some(RequestCompletedFull)
    ));
}

#[test]
fn while_waiting_pause_is_refused_and_updates_still_go_out() {
    let (_fixture, mut harness, id) = complete_without_status(Config::default());

    assert!(matches!(
        harness.requester.pause(id),
        Err(CommandError::TraversalComplete { .. })
    ));
    assert!(matches!(
        harness.requester.resume(id, Extensions::new()),
        Err(CommandError::NotPaused { .. })
    ));
    harness
        .requester
        .update(id, Extensions::new().with("app/x", Some(Node::from(1u64))))
        .expect("the responder still serves it");
    harness.drain();
    assert_eq!(harness.sent_kinds(id), ["n", "u"]);
    assert!(harness.outcome(id).is_none());
}

#[test]
fn status_from_another_peer_does_not_end_the_wait() {
    let (_fixture, mut harness, id) = complete_without_status(Config::default());
    harness.receive(
        "somebody-else",
        response(id, RequestCompletedFull, vec![], vec![]),
    );
    assert!(harness.outcome(id).is_none());
}

#[test]
fn a_disconnect_while_waiting_is_reported_and_the_request_stays() {
    let (_fixture, mut harness, id) = complete_without_status(Config::default());
    harness.requester.handle_peer_disconnected(&PEER);
    harness.drain();
    assert!(
        harness
            .events
            .iter()
            .any(|event| matches!(event, Event::NetworkError { request, .. } if *request == id))
    );
    assert!(harness.outcome(id).is_none());
    harness
        .requester
        .handle_status_timeout(id)
        .expect("still waiting");
    harness.drain();
    assert!(matches!(
        harness.outcome(id),
        Some(Outcome::NoTerminalStatus(_))
    ));
}
