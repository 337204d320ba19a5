//! Responder traversal: metadata order on the shared fixtures, missing blocks, the request
//! extensions, validation and the failures that end a response with 30 or 32.

mod responder_common;

use bytes::Bytes;
use graphsync::extension::{self, encode_do_not_send_cids};
use graphsync::responder::{Config, Event, RequestDecision, RequestError};
use graphsync::{Extensions, LinkAction, Request, ResponseStatus};
use ipld_dagcbor::Node;
use multihash_codetable::{Code, MultihashDigest};
use responder_common::*;

const ALICE: Peer = "alice";

fn all_present(fixture: &Fixture) -> Vec<(ipld_dagcbor::Cid, LinkAction)> {
    fixture
        .loads
        .iter()
        .map(|cid| (*cid, LinkAction::Present))
        .collect()
}

fn actions(h: &Harness, id: graphsync::RequestId) -> Vec<(ipld_dagcbor::Cid, LinkAction)> {
    h.metadata(ALICE, id)
        .into_iter()
        .map(|entry| (entry.link, entry.action))
        .collect()
}

#[test]
fn fixture_dag_explore_all_gives_go_metadata_order_each_block_once_and_20() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.serve(ALICE, new_request(rid(1), fixture.root));

    assert_eq!(fixture.loads.len(), 6, "six loads for four blocks");
    assert_eq!(actions(&h, rid(1)), all_present(&fixture));
    let mut sent = h.blocks_sent(ALICE);
    assert_eq!(sent.len(), 4, "each block's bytes once: {sent:?}");
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 4);
    // The first entry of each CID carries its block, repeats do not.
    let carried: Vec<bool> = h
        .loads_with_bytes(ALICE, rid(1))
        .iter()
        .map(|(_, _, carried)| *carried)
        .collect();
    assert_eq!(carried, [true, true, false, true, true, false]);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::Completed {
            status: ResponseStatus::RequestCompletedFull,
            ..
        }
    )));
    let block_sent = h
        .events
        .iter()
        .filter(|event| matches!(event, Event::BlockSent { .. }))
        .count();
    assert_eq!(block_sent, 6, "one block-sent notification per load record");
    assert_eq!(h.responder.tracked(), 0, "state cleared");
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
}

#[test]
fn fixture_dagpb_explore_all_follows_link_order() {
    let fixture = fixture("fixture_dagpb.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.serve(ALICE, new_request(rid(1), fixture.root));
    assert_eq!(actions(&h, rid(1)), all_present(&fixture));
    assert_eq!(h.blocks_sent(ALICE).len(), 3);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}

#[test]
fn missing_leaf_gives_m_and_status_21() {
    let fixture = fixture("fixture_dag.json");
    let leaf2 = fixture.names["leaf2"];
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.store.remove(&leaf2);
    h.serve(ALICE, new_request(rid(1), fixture.root));

    let expected: Vec<_> = fixture
        .loads
        .iter()
        .map(|cid| {
            let action = if *cid == leaf2 {
                LinkAction::Missing
            } else {
                LinkAction::Present
            };
            (*cid, action)
        })
        .collect();
    assert_eq!(actions(&h, rid(1)), expected);
    assert!(!h.blocks_sent(ALICE).contains(&leaf2));
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedPartial)
    );
}

#[test]
fn missing_inner_block_skips_its_subtree_and_goes_on() {
    let fixture = fixture("fixture_dag.json");
    let mid = fixture.names["mid"];
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.store.remove(&mid);
    h.serve(ALICE, new_request(rid(1), fixture.root));

    // root, b, c/0, c/1, then aa is missing and aa/x is never loaded.
    let mut expected = all_present(&fixture);
    expected.truncate(5);
    expected[4].1 = LinkAction::Missing;
    assert_eq!(actions(&h, rid(1)), expected);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedPartial)
    );
}

#[test]
fn missing_root_gives_root_m_and_status_34() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open();
    h.serve(ALICE, new_request(rid(1), fixture.root));
    assert_eq!(actions(&h, rid(1)), [(fixture.root, LinkAction::Missing)]);
    assert!(h.blocks_sent(ALICE).is_empty());
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestFailedContentNotFound)
    );
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::Completed {
            status: ResponseStatus::RequestFailedContentNotFound,
            ..
        }
    )));
}

#[test]
fn do_not_send_first_blocks_keeps_p_metadata_and_withholds_bytes() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    let request = new_request(rid(1), fixture.root)
        .with_extensions(ext(extension::DO_NOT_SEND_FIRST_BLOCKS, 3));
    h.serve(ALICE, request);

    assert_eq!(actions(&h, rid(1)), all_present(&fixture));
    let carried: Vec<bool> = h
        .loads_with_bytes(ALICE, rid(1))
        .iter()
        .map(|(_, _, carried)| *carried)
        .collect();
    // Loads 1-3 (root, leaf1, leaf1) withheld; leaf2 and mid sent; the repeated leaf2 not.
    assert_eq!(carried, [false, false, false, true, true, false]);
    let mut sent = h.blocks_sent(ALICE);
    sent.sort();
    let mut expected = vec![fixture.names["leaf2"], fixture.names["mid"]];
    expected.sort();
    assert_eq!(sent, expected);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}

/// The `withheld` flag of each block-sent record, in load order.
fn withheld_flags(h: &Harness) -> Vec<(u64, bool, u64)> {
    h.events
        .iter()
        .filter_map(|event| match event {
            Event::BlockSent { record, .. } => Some((record.index, record.withheld, record.sent)),
            _ => None,
        })
        .collect()
}

#[test]
fn withheld_marks_first_occurrences_skipped_for_the_requester_only() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    let request = new_request(rid(1), fixture.root)
        .with_extensions(ext(extension::DO_NOT_SEND_FIRST_BLOCKS, 3));
    h.serve(ALICE, request);

    // Loads: root, leaf1, leaf1 (repeat), leaf2, mid, leaf2 (repeat). The first three are
    // skipped, but the repeated leaf1 would not have been sent anyway: only root and leaf1
    // are withheld. Sent blocks and repeats are not.
    let flags: Vec<(u64, bool, bool)> = withheld_flags(&h)
        .into_iter()
        .map(|(index, withheld, sent)| (index, withheld, sent > 0))
        .collect();
    assert_eq!(
        flags,
        [
            (1, true, false),
            (2, true, false),
            (3, false, false),
            (4, false, true),
            (5, false, true),
            (6, false, false),
        ]
    );

    // Without the extension nothing is withheld.
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.serve(ALICE, new_request(rid(2), fixture.root));
    let flags = withheld_flags(&h);
    assert_eq!(flags.len(), 6);
    assert!(flags.iter().all(|(_, withheld, _)| !withheld), "{flags:?}");
}

#[test]
fn do_not_send_cids_keeps_p_metadata_and_withholds_listed_blocks() {
    let fixture = fixture("fixture_dag.json");
    let (leaf1, mid) = (fixture.names["leaf1"], fixture.names["mid"]);
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    let request = new_request(rid(1), fixture.root).with_extensions(Extensions::new().with(
        extension::DO_NOT_SEND_CIDS,
        Some(encode_do_not_send_cids(&[leaf1, mid])),
    ));
    h.serve(ALICE, request);

    assert_eq!(actions(&h, rid(1)), all_present(&fixture));
    let mut sent = h.blocks_sent(ALICE);
    sent.sort();
    let mut expected = vec![fixture.root, fixture.names["leaf2"]];
    expected.sort();
    assert_eq!(sent, expected);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}

#[test]
fn bad_request_extension_values_fail_with_32() {
    let fixture = fixture("fixture_dag.json");
    let bad = [
        (extension::DO_NOT_SEND_FIRST_BLOCKS, Node::from("three")),
        (extension::DO_NOT_SEND_CIDS, Node::from(7u64)),
        (extension::DEDUP_BY_KEY, Node::from(7u64)),
    ];
    for (n, (name, value)) in bad.into_iter().enumerate() {
        let id = rid(n as u8 + 1);
        let mut h = Harness::open().with_blocks(fixture.blocks.clone());
        let request = new_request(id, fixture.root)
            .with_extensions(Extensions::new().with(name, Some(value)));
        h.serve(ALICE, request);
        assert_eq!(
            h.statuses(ALICE, id),
            [ResponseStatus::RequestFailedUnknown],
            "{name}"
        );
        assert!(h.metadata(ALICE, id).is_empty(), "{name}: not executed");
        assert!(h.events.iter().any(|event| matches!(
            event,
            Event::Failed {
                error: RequestError::InvalidExtension { .. },
                ..
            }
        )));
    }
}

#[test]
fn explore_all_without_validation_is_rejected_with_30() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::new(Config::default()).with_blocks(fixture.blocks.clone());
    h.receive(ALICE, msg(new_request(rid(1), fixture.root)));
    h.run();
    assert_eq!(h.statuses(ALICE, rid(1)), [ResponseStatus::RequestRejected]);
    assert!(h.metadata(ALICE, rid(1)).is_empty());
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::Failed {
            status: ResponseStatus::RequestRejected,
            error: RequestError::NotValidated,
            ..
        }
    )));
    assert_eq!(h.responder.tracked(), 0);
}

#[test]
fn depth_limited_selector_passes_the_default_validator() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::new(Config::default()).with_blocks(fixture.blocks.clone());
    h.receive(
        ALICE,
        msg(Request::new(rid(1), fixture.root, explore_depth(100))),
    );
    h.receive(
        ALICE,
        msg(Request::new(rid(2), fixture.root, explore_depth(101))),
    );
    h.run();
    assert_eq!(actions(&h, rid(1)), all_present(&fixture));
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_eq!(h.statuses(ALICE, rid(2)), [ResponseStatus::RequestRejected]);
}

#[test]
fn request_hook_sees_the_default_verdict_and_can_reject_or_terminate_with_extensions() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::new(Config {
        hooks: graphsync::responder::Hooks {
            request: true,
            ..Default::default()
        },
        ..Config::default()
    })
    .with_blocks(fixture.blocks.clone());
    h.receive(ALICE, msg(new_request(rid(1), fixture.root)));
    h.receive(
        ALICE,
        msg(Request::new(rid(2), fixture.root, explore_depth(5))),
    );
    h.settle();
    let verdicts: Vec<bool> = h
        .events
        .iter()
        .filter_map(|event| match event {
            Event::RequestReceived {
                default_validated, ..
            } => Some(*default_validated),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts, [false, true]);
    let why = ext("why", 1);
    h.responder
        .handle_request_decision(
            &ALICE,
            rid(1),
            RequestDecision::reject().with_extensions(why.clone()),
        )
        .expect("awaiting");
    h.responder
        .handle_request_decision(
            &ALICE,
            rid(2),
            RequestDecision::terminate().with_extensions(why.clone()),
        )
        .expect("awaiting");
    h.run();
    let rejected = h.responses(ALICE, rid(1));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0.status, ResponseStatus::RequestRejected);
    assert_eq!(rejected[0].0.extensions, why);
    let terminated = h.responses(ALICE, rid(2));
    assert_eq!(terminated[0].0.status, ResponseStatus::RequestFailedUnknown);
    assert_eq!(terminated[0].0.extensions, why);
    assert!(
        h.responder
            .handle_request_decision(&ALICE, rid(2), RequestDecision::validate())
            .is_err(),
        "a decided request takes no second decision"
    );
}

#[test]
fn link_budget_exceeded_fails_with_32_after_the_allowed_loads() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::new(Config {
        default_validator: None,
        hooks: graphsync::responder::Hooks {
            request: true,
            ..Default::default()
        },
        link_budget: Some(3),
        ..Config::default()
    })
    .with_blocks(fixture.blocks.clone());
    h.serve(ALICE, new_request(rid(1), fixture.root));
    assert_eq!(actions(&h, rid(1)), all_present(&fixture)[..3].to_vec());
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestFailedUnknown)
    );
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::Failed {
            error: RequestError::Traversal { .. },
            ..
        }
    )));

    // A hook's budget replaces the configured one; Go charges the root first, so 1 fails at
    // once.
    h.receive(ALICE, msg(new_request(rid(2), fixture.root)));
    h.settle();
    h.decide_all(&RequestDecision::validate().with_link_budget(1));
    h.run();
    assert!(h.metadata(ALICE, rid(2)).is_empty());
    assert_eq!(
        h.statuses(ALICE, rid(2)),
        [ResponseStatus::RequestFailedUnknown]
    );
}

#[test]
fn undecodable_block_is_sent_then_the_response_fails_with_32() {
    // A well-hashed dag-cbor CID whose bytes are not DAG-CBOR.
    let data = Bytes::from_static(&[0xff, 0x00]);
    let root = ipld_dagcbor::Cid::new_v1(0x71, Code::Sha2_256.digest(&data));
    let mut h = Harness::open().with_blocks([(root, data)]);
    h.serve(ALICE, new_request(rid(1), root));
    assert_eq!(actions(&h, rid(1)), [(root, LinkAction::Present)]);
    assert_eq!(h.blocks_sent(ALICE), [root]);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestFailedUnknown)
    );
}

#[test]
fn unparsable_selector_fails_with_32() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.receive(
        ALICE,
        msg(Request::new(rid(1), fixture.root, Node::from(5u64))),
    );
    h.run();
    assert_eq!(
        h.statuses(ALICE, rid(1)),
        [ResponseStatus::RequestFailedUnknown]
    );
    assert!(h.events.iter().any(|event| matches!(
        event,
        Event::Failed {
            error: RequestError::InvalidSelector { .. },
            ..
        }
    )));
    assert_eq!(h.responder.tracked(), 0);
}
