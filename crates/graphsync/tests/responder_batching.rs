//! Responder message building (spec §1.5): 512 KiB of block bytes per message, transactions
//! never split, one response entry per request per message, 14 for non-final messages, the
//! metadata cap, and the terminal status as its own transaction.

mod responder_common;

use std::collections::HashSet;

use bytes::Bytes;
use graphsync::codec::v2;
use graphsync::extension;
use graphsync::responder::{Config, Hooks};
use graphsync::{LinkAction, Message, Response, ResponseStatus};
use ipld_dagcbor::{Cid, Node};
use responder_common::*;

const ALICE: Peer = "alice";
const KIB: usize = 1024;

/// A dag-cbor root listing raw leaves of the given sizes (distinct contents).
fn leaves_dag(sizes: &[usize]) -> (Cid, Vec<(Cid, Bytes)>, Vec<Cid>) {
    let leaves: Vec<(Cid, Bytes)> = sizes
        .iter()
        .enumerate()
        .map(|(index, size)| {
            let mut data = vec![(index % 251) as u8; *size];
            data.extend_from_slice(&(index as u64).to_be_bytes());
            raw_block(&data)
        })
        .collect();
    let cids: Vec<Cid> = leaves.iter().map(|(cid, _)| *cid).collect();
    let root = cbor_block(&Node::List(cids.iter().copied().map(Node::Link).collect()));
    let mut blocks = leaves;
    blocks.push(root.clone());
    (root.0, blocks, cids)
}

fn block_bytes(message: &Message) -> usize {
    message.blocks.iter().map(|block| block.data.len()).sum()
}

/// Every block travels with a metadata entry naming it, in the same message.
fn assert_blocks_named_by_own_metadata(h: &Harness) {
    for transmit in &h.sent {
        let named: HashSet<Cid> = transmit
            .message
            .responses
            .iter()
            .flat_map(|response| response.metadata.iter().map(|entry| entry.link))
            .collect();
        for block in &transmit.message.blocks {
            let cid = block.cid().expect("hashes");
            assert!(named.contains(&cid), "block {cid} without its metadata");
        }
    }
}

fn open_with(config: Config) -> Harness {
    Harness::new(Config {
        default_validator: None,
        hooks: Hooks {
            request: true,
            ..Hooks::default()
        },
        ..config
    })
}

#[test]
fn blocks_of_300_kib_travel_one_per_message_with_their_metadata() {
    let (root, blocks, leaves) = leaves_dag(&[300 * KIB; 4]);
    let mut h = Harness::open().with_blocks(blocks);
    h.serve(ALICE, new_request(rid(1), root));

    assert_eq!(h.sent.len(), 4);
    let per_message: Vec<Vec<Cid>> = h
        .responses(ALICE, rid(1))
        .into_iter()
        .map(|(response, _)| response.metadata.iter().map(|entry| entry.link).collect())
        .collect();
    assert_eq!(
        per_message,
        [
            vec![root, leaves[0]],
            vec![leaves[1]],
            vec![leaves[2]],
            vec![leaves[3]]
        ]
    );
    for transmit in &h.sent {
        assert!(block_bytes(&transmit.message) <= 512 * KIB);
    }
    assert_blocks_named_by_own_metadata(&h);
    assert_eq!(
        h.statuses(ALICE, rid(1)),
        [
            ResponseStatus::PartialResponse,
            ResponseStatus::PartialResponse,
            ResponseStatus::PartialResponse,
            ResponseStatus::RequestCompletedFull
        ]
    );
}

#[test]
fn a_block_over_512_kib_gets_a_message_of_its_own() {
    let (root, blocks, leaves) = leaves_dag(&[10, 600 * KIB, 10]);
    let mut h = Harness::open().with_blocks(blocks);
    h.serve(ALICE, new_request(rid(1), root));

    let per_message: Vec<Vec<Cid>> = h
        .sent
        .iter()
        .map(|transmit| {
            transmit
                .message
                .blocks
                .iter()
                .map(|block| block.cid().expect("hashes"))
                .collect()
        })
        .collect();
    assert_eq!(
        per_message,
        [vec![root, leaves[0]], vec![leaves[1]], vec![leaves[2]]]
    );
    assert_blocks_named_by_own_metadata(&h);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}

#[test]
fn terminal_status_is_its_own_transaction_and_can_travel_alone() {
    // With one unsent message allowed per peer, the traversal waits for each message to be
    // reported sent, so the final status is added after the last block's message has left.
    let (root, blocks, leaves) = leaves_dag(&[100, 100]);
    let mut h = open_with(Config {
        max_unsent_messages_per_peer: 1,
        ..Config::default()
    })
    .with_blocks(blocks);
    h.serve(ALICE, new_request(rid(1), root));

    let responses = h.responses(ALICE, rid(1));
    let last = &responses.last().expect("responses").0;
    assert_eq!(last.status, ResponseStatus::RequestCompletedFull);
    assert!(
        last.metadata.is_empty(),
        "the terminal status travels alone"
    );
    assert!(h.sent.last().expect("sent").message.blocks.is_empty());
    let links: Vec<Cid> = h
        .metadata(ALICE, rid(1))
        .iter()
        .map(|entry| entry.link)
        .collect();
    assert_eq!(links, [root, leaves[0], leaves[1]]);
    for (response, _) in &responses[..responses.len() - 1] {
        assert_eq!(response.status, ResponseStatus::PartialResponse);
    }
    // The whole last message is the status-only response.
    assert_eq!(
        h.sent.last().expect("sent").message,
        Message::new().with_response(Response::new(rid(1), ResponseStatus::RequestCompletedFull))
    );
}

#[test]
fn one_response_entry_per_request_per_message_and_each_block_once_per_message() {
    let fixture = fixture("fixture_dag.json");
    let mut h = Harness::open().with_blocks(fixture.blocks.clone());
    h.receive(
        ALICE,
        Message::new()
            .with_request(new_request(rid(1), fixture.root))
            .with_request(new_request(rid(2), fixture.root)),
    );
    h.settle();
    h.decide_all(&graphsync::responder::RequestDecision::validate());
    h.run();

    for transmit in &h.sent {
        let ids: Vec<_> = transmit.message.responses.iter().map(|r| r.id).collect();
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "one entry per id");
        let cids: Vec<Cid> = transmit
            .message
            .blocks
            .iter()
            .map(|block| block.cid().expect("hashes"))
            .collect();
        let unique: HashSet<_> = cids.iter().collect();
        assert_eq!(unique.len(), cids.len(), "each block once per message");
    }
    for id in [rid(1), rid(2)] {
        let links: Vec<Cid> = h.metadata(ALICE, id).iter().map(|e| e.link).collect();
        assert_eq!(links, fixture.loads, "metadata merged in order");
        assert_eq!(
            h.last_status(ALICE, id),
            Some(ResponseStatus::RequestCompletedFull)
        );
    }
    assert_blocks_named_by_own_metadata(&h);
}

#[test]
fn metadata_only_growth_starts_new_messages_at_the_cap() {
    // 200 leaves, none sent (do-not-send-first-blocks covers them all): only metadata.
    let (root, blocks, leaves) = leaves_dag(&[8; 200]);
    let cap = 2 * KIB;
    let mut h = open_with(Config {
        max_metadata_bytes_per_message: cap,
        ..Config::default()
    })
    .with_blocks(blocks);
    let request =
        new_request(rid(1), root).with_extensions(ext(extension::DO_NOT_SEND_FIRST_BLOCKS, 1000));
    h.serve(ALICE, request);

    assert!(h.sent.len() > 3, "{} messages", h.sent.len());
    for transmit in &h.sent {
        assert!(transmit.message.blocks.is_empty());
        let len = v2::to_vec(&transmit.message).expect("encodes").len();
        assert!(len <= cap, "message of {len} bytes over the {cap} byte cap");
    }
    let metadata = h.metadata(ALICE, rid(1));
    assert_eq!(metadata.len(), 201);
    assert!(metadata.iter().all(|e| e.action == LinkAction::Present));
    let links: Vec<Cid> = metadata.iter().skip(1).map(|e| e.link).collect();
    assert_eq!(links, leaves);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
}
