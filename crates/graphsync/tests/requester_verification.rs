//! The requester's verification (spec §8.3): responses are checked, load by load, against a
//! local traversal of the same selector; only verified blocks are stored.

mod requester_support;

use graphsync::requester::{Config, Event, Failure, Outcome};
use graphsync::{Block, CidPrefix, LinkAction, Message, ResponseStatus};
use ipld_dagcbor::Node;
use requester_support::{Fixture, Harness, PEER, block, cbor, links, meta, raw, response};

use LinkAction::{Missing, Present};
use ResponseStatus::{PartialResponse, RequestCompletedFull, RequestCompletedPartial};

fn completed_status(harness: &Harness, id: graphsync::RequestId) -> Option<ResponseStatus> {
    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => completion.status,
        other => panic!("expected a completion, got {other:?}"),
    }
}

#[test]
fn fixture_order_completes_and_stores_exactly_the_blocks() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    assert_eq!(harness.sent_kinds(id), ["n"]);

    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );

    assert_eq!(completed_status(&harness, id), Some(RequestCompletedFull));
    // Each distinct block is stored once, in load order; leaf1 and leaf2's second loads come
    // from the local store, which the first loads filled.
    assert_eq!(
        harness.stored_cids(),
        [
            fixture.root.0,
            fixture.leaf1.0,
            fixture.leaf2.0,
            fixture.mid.0
        ]
    );
    let received = harness.received();
    let order: Vec<(ipld_dagcbor::Cid, String)> = received
        .iter()
        .map(|(cid, path, _, _)| (*cid, path.clone()))
        .collect();
    assert_eq!(order, fixture.loads);
    let indexes: Vec<u64> = received.iter().map(|(_, _, _, index)| *index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
    // Wire sizes: blocks from the message count, the repeated loads came from the store.
    let wire: Vec<u64> = received.iter().map(|(_, _, wire, _)| *wire).collect();
    assert_eq!(
        wire,
        [
            fixture.root.1.len() as u64,
            8,
            0,
            8,
            fixture.mid.1.len() as u64,
            0
        ]
    );
    assert!(harness.missing().is_empty());
    assert_eq!(harness.sent_kinds(id), ["n"], "no cancel after success");
}

#[test]
fn sent_request_is_new_with_priority_zero_and_canonical_selector() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    // Fields listed "zz" before "b": the canonical form puts "b" first.
    let selector = ipld_selector::Selector::from_dag_json(
        br#"{"f": {"f>": {"zz": {".": {}}, "b": {".": {}}}}}"#,
    )
    .expect("a selector");
    let id = harness
        .requester
        .request(PEER, fixture.root.0, &selector, Default::default())
        .expect("accepted");
    harness.drain();
    let sent = harness.sent(id);
    let graphsync::RequestKind::New {
        root,
        selector: node,
        priority,
    } = &sent[0].kind
    else {
        panic!("a new request");
    };
    assert_eq!(*root, fixture.root.0);
    assert_eq!(*priority, graphsync::Priority(0));
    assert_eq!(
        ipld_dagcbor::to_vec(node).expect("encodes"),
        selector.canonical().to_dag_cbor()
    );
    let Node::Map(outer) = node else {
        panic!("a map")
    };
    let Some(Node::Map(body)) = outer.get("f") else {
        panic!("f body")
    };
    let Some(Node::Map(fields)) = body.get("f>") else {
        panic!("f> map")
    };
    let names: Vec<String> = fields.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(names, ["b", "zz"]);
}

#[test]
fn sorted_map_order_fails_with_incorrect_response_and_sends_cancel() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    // The order a responder that sorts map keys produces: root, aa (mid), aa/x, b, c/0, c/1.
    let wrong = meta(&[
        (fixture.root.0, Present),
        (fixture.mid.0, Present),
        (fixture.leaf2.0, Present),
        (fixture.leaf1.0, Present),
        (fixture.leaf1.0, Present),
        (fixture.leaf2.0, Present),
    ]);
    harness.receive(
        PEER,
        response(id, RequestCompletedFull, wrong, fixture.full_blocks()),
    );

    match harness.outcome(id) {
        Some(Outcome::Failed(Failure::IncorrectResponse {
            path,
            expected,
            received,
        })) => {
            assert_eq!(path.to_string(), "b");
            assert_eq!(*expected, fixture.leaf1.0);
            assert_eq!(*received, fixture.mid.0);
        }
        other => panic!("expected incorrect response, got {other:?}"),
    }
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    // Only the root, verified before the divergence, was stored.
    assert_eq!(harness.stored_cids(), [fixture.root.0]);
}

#[test]
fn metadata_split_over_messages_completes() {
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
    assert!(harness.outcome(id).is_none());
    assert_eq!(harness.stored_cids(), [fixture.root.0, fixture.leaf1.0]);
    // In the second message leaf1 ("c/0") carries no bytes: the local store has it.
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            metadata[2..].to_vec(),
            vec![block(&fixture.leaf2), block(&fixture.mid)],
        ),
    );
    assert_eq!(completed_status(&harness, id), Some(RequestCompletedFull));
    assert_eq!(harness.stored.len(), 4);
}

#[test]
fn block_not_matching_metadata_cid_is_never_stored() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    // The block claims the root's prefix but holds other bytes: it hashes to another CID, so
    // no metadata entry names it, and the root load finds no bytes anywhere.
    let forged = Block::new(CidPrefix::of(&fixture.root.0), fixture.mid.1.clone());
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            meta(&[(fixture.root.0, Present)]),
            vec![forged],
        ),
    );
    assert!(harness.stored.is_empty());
    assert_eq!(harness.missing(), [(fixture.root.0, String::new())]);
    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => {
            assert_eq!(completion.missing.len(), 1);
            assert_eq!(completion.missing[0].1, fixture.root.0);
        }
        other => panic!("expected a completion with the root missing, got {other:?}"),
    }
}

#[test]
fn block_named_by_no_metadata_is_discarded() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let stray = raw(b"nobody asked for this");
    // The first message names only the root but also carries leaf1 and a stray block.
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            meta(&[(fixture.root.0, Present)]),
            vec![block(&fixture.root), block(&fixture.leaf1), block(&stray)],
        ),
    );
    assert_eq!(harness.stored_cids(), [fixture.root.0]);
    // The next message names leaf1 without bytes: the block from the earlier message was not
    // kept, so the load goes to the (empty) local store and misses.
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            meta(&[(fixture.leaf1.0, Present)]),
            vec![],
        ),
    );
    assert_eq!(harness.missing(), [(fixture.leaf1.0, "b".to_owned())]);
    assert!(!harness.stored_cids().contains(&stray.0));
    assert!(!harness.stored_cids().contains(&fixture.leaf1.0));
}

#[test]
fn missing_leaf_gives_m_and_status_21_completes_with_missing_reported() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    // The responder lacks leaf2: both of its loads are "m".
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
    harness.receive(
        PEER,
        response(id, RequestCompletedPartial, metadata, blocks),
    );

    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => {
            assert_eq!(completion.status, Some(RequestCompletedPartial));
            let missing: Vec<(String, ipld_dagcbor::Cid)> = completion
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
        harness.missing(),
        [
            (fixture.leaf2.0, "c/1".to_owned()),
            (fixture.leaf2.0, "aa/x".to_owned())
        ]
    );
    assert_eq!(
        harness.stored_cids(),
        [fixture.root.0, fixture.leaf1.0, fixture.mid.0]
    );
    assert_eq!(harness.sent_kinds(id), ["n"]);
}

#[test]
fn missing_leaf_that_is_local_is_loaded_from_the_store() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness
        .local
        .insert(fixture.leaf2.0, fixture.leaf2.1.clone());
    let id = harness.request_all(fixture.root.0);
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
    harness.receive(
        PEER,
        response(id, RequestCompletedPartial, metadata, blocks),
    );
    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => assert!(completion.missing.is_empty()),
        other => panic!("expected a completion, got {other:?}"),
    }
    assert!(harness.missing().is_empty());
}

#[test]
fn present_without_bytes_is_resolved_from_the_local_store() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    // The requester already holds mid and leaf2 (e.g. do-not-send-cids).
    harness.local.insert(fixture.mid.0, fixture.mid.1.clone());
    harness
        .local
        .insert(fixture.leaf2.0, fixture.leaf2.1.clone());
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            vec![block(&fixture.root), block(&fixture.leaf1)],
        ),
    );
    assert_eq!(completed_status(&harness, id), Some(RequestCompletedFull));
    assert_eq!(harness.stored_cids(), [fixture.root.0, fixture.leaf1.0]);
    let loads: Vec<ipld_dagcbor::Cid> = harness
        .events
        .iter()
        .filter_map(|event| match event {
            Event::LoadBlock { cid, .. } => Some(*cid),
            _ => None,
        })
        .collect();
    assert_eq!(
        loads,
        [
            fixture.leaf1.0,
            fixture.leaf2.0,
            fixture.mid.0,
            fixture.leaf2.0
        ]
    );
}

#[test]
fn duplicate_not_sent_is_resolved_from_the_local_store() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness.local.insert(fixture.root.0, fixture.root.1.clone());
    let id = harness
        .requester
        .request(
            PEER,
            fixture.root.0,
            &ipld_selector::Selector::match_point(),
            Default::default(),
        )
        .expect("accepted");
    harness.drain();
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            meta(&[(fixture.root.0, LinkAction::DuplicateNotSent)]),
            vec![],
        ),
    );
    assert_eq!(completed_status(&harness, id), Some(RequestCompletedFull));
    assert!(harness.stored.is_empty());
}

#[test]
fn local_block_with_wrong_bytes_is_refused_and_the_load_keeps_waiting() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    harness.auto_load = false;
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            meta(&[(fixture.root.0, Present)]),
            vec![],
        ),
    );
    let error = harness
        .requester
        .provide_block(id, fixture.root.0, Some(fixture.mid.1.clone()))
        .expect_err("wrong bytes");
    assert!(matches!(
        error,
        graphsync::requester::CommandError::BlockMismatch { .. }
    ));
    let error = harness
        .requester
        .provide_block(id, fixture.mid.0, Some(fixture.mid.1.clone()))
        .expect_err("not asked for");
    assert!(matches!(
        error,
        graphsync::requester::CommandError::NoPendingLoad { .. }
    ));
    harness
        .requester
        .provide_block(id, fixture.root.0, Some(fixture.root.1.clone()))
        .expect("the right block");
    harness.drain();
    // The root's children are loaded locally now that the remote finished.
    assert!(harness.outcome(id).is_none());
    assert!(
        harness
            .events
            .iter()
            .any(|event| matches!(event, Event::LoadBlock { cid, .. } if *cid == fixture.leaf1.0))
    );
}

#[test]
fn root_not_found_34_is_a_typed_failure_without_cancel() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        response(
            id,
            ResponseStatus::RequestFailedContentNotFound,
            meta(&[(fixture.root.0, Missing)]),
            vec![],
        ),
    );
    assert!(matches!(
        harness.outcome(id),
        Some(Outcome::Failed(Failure::ContentNotFound))
    ));
    assert_eq!(harness.sent_kinds(id), ["n"]);
    assert!(harness.stored.is_empty());
}

#[test]
fn each_failure_code_maps_to_its_typed_outcome() {
    let fixture = Fixture::load();
    type IsExpected = fn(&Failure) -> bool;
    let cases: [(ResponseStatus, IsExpected); 6] = [
        (ResponseStatus::RequestRejected, |f| {
            matches!(f, Failure::Rejected)
        }),
        (ResponseStatus::RequestFailedBusy, |f| {
            matches!(f, Failure::Busy)
        }),
        (ResponseStatus::RequestFailedUnknown, |f| {
            matches!(f, Failure::FailedUnknown)
        }),
        (ResponseStatus::RequestFailedLegal, |f| {
            matches!(f, Failure::Legal)
        }),
        (ResponseStatus::RequestFailedContentNotFound, |f| {
            matches!(f, Failure::ContentNotFound)
        }),
        (ResponseStatus::RequestCancelled, |f| {
            matches!(f, Failure::ResponderCancelled)
        }),
    ];
    for (status, is_expected) in cases {
        let mut harness = Harness::new(Config::default());
        let id = harness.request_all(fixture.root.0);
        harness.receive(PEER, response(id, status, vec![], vec![]));
        match harness.outcome(id) {
            Some(Outcome::Failed(failure)) => {
                assert!(is_expected(failure), "{status}: {failure:?}")
            }
            other => panic!("{status}: expected a failure, got {other:?}"),
        }
        assert_eq!(
            harness.sent_kinds(id),
            ["n"],
            "{status}: no cancel for a remote failure"
        );
        assert_eq!(harness.requester.in_progress(), 0);
    }
}

#[test]
fn in_progress_statuses_keep_the_request_waiting() {
    let fixture = Fixture::load();
    for status in [PartialResponse, ResponseStatus::RequestPaused] {
        let mut harness = Harness::new(Config::default());
        let id = harness.request_all(fixture.root.0);
        harness.receive(PEER, response(id, status, vec![], vec![]));
        assert!(harness.outcome(id).is_none(), "{status}");
        assert_eq!(harness.requester.in_progress(), 1);
    }
}

#[test]
fn unfollowed_branch_is_loaded_locally_without_consuming_remote_items() {
    // root {"a": mid, "b": leaf}; mid {"x": inner}. The responder lacks mid ("m"), so it
    // reports nothing below it; the requester has mid and inner locally and walks them
    // without taking remote items, then matches "b" against the next item.
    let inner = raw(b"inner");
    let leaf = raw(b"leaf");
    let mid = cbor(&links(&[("x", inner.0)]));
    let root = cbor(&links(&[("a", mid.0), ("b", leaf.0)]));
    let mut harness = Harness::new(Config::default());
    harness.local.insert(mid.0, mid.1.clone());
    harness.local.insert(inner.0, inner.1.clone());
    let id = harness.request_all(root.0);
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedPartial,
            meta(&[(root.0, Present), (mid.0, Missing), (leaf.0, Present)]),
            vec![block(&root), block(&leaf)],
        ),
    );
    match harness.outcome(id) {
        Some(Outcome::Completed(completion)) => assert!(completion.missing.is_empty()),
        other => panic!("expected a completion, got {other:?}"),
    }
    assert_eq!(harness.stored_cids(), [root.0, leaf.0]);
    let paths: Vec<String> = harness
        .received()
        .into_iter()
        .map(|(_, path, _, _)| path)
        .collect();
    assert_eq!(paths, ["", "a", "a/x", "b"]);
}

#[test]
fn present_block_missing_locally_makes_the_next_item_mismatch() {
    // The responder followed mid ("p" without bytes) but the requester lacks it: mid is
    // reported missing, its subtree skipped, and the item for mid's child then mismatches
    // the next load.
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let metadata = fixture.full_metadata();
    let blocks = vec![
        block(&fixture.root),
        block(&fixture.leaf1),
        block(&fixture.leaf2),
    ];
    let mut message = response(id, RequestCompletedFull, metadata, blocks);
    // Drop mid's bytes from the message.
    message
        .blocks
        .retain(|b| b.cid().ok() != Some(fixture.mid.0));
    harness.receive(PEER, message);
    assert_eq!(harness.missing(), [(fixture.mid.0, "aa".to_owned())]);
    // The traversal ended after "aa" (nothing else to load), leaving aa/x unread: Go ignores
    // leftover items once the local traversal completes.
    assert!(matches!(harness.outcome(id), Some(Outcome::Completed(_))));
}

#[test]
fn stray_responses_for_unknown_ids_or_other_peers_are_ignored() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    let unknown = graphsync::RequestId::new([0xee; 16]);
    harness.receive(
        PEER,
        response(
            unknown,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    harness.receive(
        "somebody-else",
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert!(harness.stored.is_empty());
    assert!(
        harness
            .events
            .iter()
            .all(|event| matches!(event, Event::Started { .. }))
    );
    assert!(harness.outcome(id).is_none());
    // The right peer still completes it.
    harness.receive(
        PEER,
        response(
            id,
            RequestCompletedFull,
            fixture.full_metadata(),
            fixture.full_blocks(),
        ),
    );
    assert_eq!(completed_status(&harness, id), Some(RequestCompletedFull));
}

#[test]
fn undecodable_verified_block_fails_the_traversal_and_cancels() {
    // A block whose bytes hash correctly under a dag-cbor CID but are not dag-cbor.
    let bytes = b"\xff\xff not cbor".to_vec();
    let cid = CidPrefix::v1(0x71, 0x12, 32).to_cid(&bytes).expect("hash");
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(cid);
    harness.receive(
        PEER,
        response(
            id,
            PartialResponse,
            meta(&[(cid, Present)]),
            vec![Block::from_cid(&cid, bytes)],
        ),
    );
    assert!(matches!(
        harness.outcome(id),
        Some(Outcome::Failed(Failure::Traversal { .. }))
    ));
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
}

#[test]
fn buffer_bound_fails_the_request_with_cancel() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default().with_max_buffered(3, 1 << 20));
    harness.auto_load = false;
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
    match harness.outcome(id) {
        Some(Outcome::Failed(Failure::BufferExceeded { items, .. })) => assert_eq!(*items, 6),
        other => panic!("expected buffer exceeded, got {other:?}"),
    }
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
}

#[test]
fn messages_with_requests_only_change_nothing() {
    let fixture = Fixture::load();
    let mut harness = Harness::new(Config::default());
    let id = harness.request_all(fixture.root.0);
    harness.receive(
        PEER,
        Message::new().with_request(graphsync::Request::cancel(id)),
    );
    assert!(harness.outcome(id).is_none());
    assert_eq!(harness.requester.in_progress(), 1);
}
