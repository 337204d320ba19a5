//! Responder admission and limits: fairness across peers, in-progress limits per peer and
//! overall, the tracking bound (30 beyond it), memory back-pressure, and a flood of 10 000
//! requests from one peer.

mod responder_common;

use graphsync::responder::{Config, Event, Hooks, RequestDecision, RequestError};
use graphsync::{Message, RequestId, ResponseStatus};
use ipld_dagcbor::{Cid, Node};
use responder_common::*;

const ALICE: Peer = "alice";
const BOB: Peer = "bob";
const KIB: usize = 1024;

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

/// One raw block: a request for it is one load.
fn leaf() -> (Cid, bytes::Bytes) {
    raw_block(b"a single leaf")
}

fn many(first: u32, count: u32, root: Cid) -> Message {
    (first..first + count).fold(Message::new(), |message, n| {
        message.with_request(new_request(rid_n(n), root))
    })
}

fn started(h: &Harness) -> Vec<(Peer, RequestId)> {
    h.events
        .iter()
        .filter_map(|event| match event {
            Event::Started { peer, request } => Some((*peer, *request)),
            _ => None,
        })
        .collect()
}

#[test]
fn single_request_of_a_quiet_peer_starts_before_the_50th_of_a_busy_peer() {
    let (root, data) = leaf();
    let mut h = open_with(Config {
        max_in_progress: 2,
        max_in_progress_per_peer: 2,
        ..Config::default()
    })
    .with_blocks([(root, data)]);
    h.receive(ALICE, many(0, 50, root));
    h.receive(BOB, msg(new_request(rid_n(1000), root)));
    h.settle();
    h.decide_all(&RequestDecision::validate());
    h.run();

    let order = started(&h);
    assert_eq!(order.len(), 51);
    let bob = order
        .iter()
        .position(|(peer, _)| *peer == BOB)
        .expect("bob started");
    let alice_50th = order
        .iter()
        .position(|(_, id)| *id == rid_n(49))
        .expect("alice's 50th started");
    assert!(bob < alice_50th);
    assert_eq!(bob, 2, "bob takes the first slot that frees");
    // Within a peer, arrival order (equal priorities).
    let alice: Vec<RequestId> = order
        .iter()
        .filter(|(peer, _)| *peer == ALICE)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(alice, (0..50).map(rid_n).collect::<Vec<_>>());
    for n in 0..50 {
        assert_eq!(
            h.last_status(ALICE, rid_n(n)),
            Some(ResponseStatus::RequestCompletedFull)
        );
    }
}

#[test]
fn higher_priority_requests_of_a_peer_start_first() {
    let (root, data) = leaf();
    let mut h = open_with(Config {
        max_in_progress: 1,
        ..Config::default()
    })
    .with_blocks([(root, data)]);
    h.answer_loads = false;
    // Occupy the only slot, then queue three requests of different priorities behind it.
    h.serve(ALICE, new_request(rid(0), root));
    let message = Message::new()
        .with_request(new_request(rid(1), root))
        .with_request(new_request(rid(2), root).with_priority(graphsync::Priority(1)))
        .with_request(new_request(rid(3), root).with_priority(graphsync::Priority(5)));
    h.receive(ALICE, message);
    h.settle();
    h.decide_all(&RequestDecision::validate());
    h.settle();
    assert_eq!(h.pending_loads.len(), 1, "one slot");
    h.answer_loads = true;
    let (peer, id, cid) = h.pending_loads.remove(0);
    let bytes = h.store.get(&cid).cloned();
    h.responder
        .provide_block(&peer, id, cid, bytes)
        .expect("pending");
    h.run();
    let order: Vec<RequestId> = started(&h).into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, [rid(0), rid(3), rid(2), rid(1)]);
}

#[test]
fn per_peer_in_progress_limit_queues_the_rest() {
    let (root, data) = leaf();
    let mut h = open_with(Config {
        max_in_progress_per_peer: 3,
        ..Config::default()
    })
    .with_blocks([(root, data)]);
    h.answer_loads = false;
    h.receive(ALICE, many(0, 5, root));
    h.settle();
    h.decide_all(&RequestDecision::validate());
    h.settle();
    assert_eq!(h.responder.running(), 3);
    assert_eq!(h.responder.tracked(), 5);
    assert_eq!(h.pending_loads.len(), 3);
}

#[test]
fn overall_in_progress_limit_spans_peers() {
    let (root, data) = leaf();
    let mut h = open_with(Config {
        max_in_progress: 4,
        max_in_progress_per_peer: 3,
        ..Config::default()
    })
    .with_blocks([(root, data)]);
    h.answer_loads = false;
    h.receive(ALICE, many(0, 3, root));
    h.receive(BOB, many(100, 3, root));
    h.settle();
    h.decide_all(&RequestDecision::validate());
    h.settle();
    assert_eq!(h.responder.running(), 4);
    let per_peer = |peer: Peer| h.pending_loads.iter().filter(|(p, ..)| *p == peer).count();
    // Alice's requests were accepted first and took her per-peer limit; bob got the rest.
    assert_eq!((per_peer(ALICE), per_peer(BOB)), (3, 1));
}

#[test]
fn requests_beyond_the_tracking_bounds_are_refused_with_30() {
    let (root, data) = leaf();
    let mut h = open_with(Config {
        max_requests: 6,
        max_requests_per_peer: 5,
        ..Config::default()
    })
    .with_blocks([(root, data)]);
    h.receive(ALICE, many(0, 7, root));
    h.receive(BOB, many(100, 3, root));
    h.settle();
    assert_eq!(h.responder.tracked(), 6);
    let refusals: Vec<(Peer, bool)> = h
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Failed {
                peer,
                status: ResponseStatus::RequestRejected,
                error,
                ..
            } => Some((
                *peer,
                matches!(error, RequestError::TooManyRequestsFromPeer { limit: 5 }),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        [(ALICE, true), (ALICE, true), (BOB, false), (BOB, false)]
    );
    h.decide_all(&RequestDecision::validate());
    h.run();
    for n in [5, 6, 101, 102] {
        let peer = if n < 100 { ALICE } else { BOB };
        assert_eq!(
            h.statuses(peer, rid_n(n)),
            [ResponseStatus::RequestRejected]
        );
    }
    for n in [0, 4, 100] {
        let peer = if n < 100 { ALICE } else { BOB };
        assert_eq!(
            h.last_status(peer, rid_n(n)),
            Some(ResponseStatus::RequestCompletedFull)
        );
    }
}

/// A root listing `count` distinct raw leaves of `size` bytes.
fn wide_dag(count: usize, size: usize) -> (Cid, Vec<(Cid, bytes::Bytes)>) {
    let mut blocks: Vec<(Cid, bytes::Bytes)> = (0..count)
        .map(|index| {
            let mut data = vec![index as u8; size];
            data.extend_from_slice(&(index as u64).to_be_bytes());
            raw_block(&data)
        })
        .collect();
    let root = cbor_block(&Node::List(
        blocks.iter().map(|(cid, _)| Node::Link(*cid)).collect(),
    ));
    blocks.push(root.clone());
    (root.0, blocks)
}

/// Reports every message sent to `peer` so far as written, then runs the responder with
/// every later message acknowledged until nothing more goes out; returns `peer`'s largest
/// memory figure meanwhile.
fn ack_and_finish(h: &mut Harness, peer: Peer) -> u64 {
    let unacked: Vec<_> = h
        .sent
        .iter()
        .filter(|t| t.peer == peer)
        .map(|t| t.id)
        .collect();
    for id in unacked {
        h.responder.handle_sent(&peer, id).expect("in flight");
    }
    h.ack = true;
    let mut peak = 0;
    loop {
        h.settle();
        peak = peak.max(h.responder.memory(&peer).1);
        if h.flush().is_empty() {
            return peak;
        }
    }
}

#[test]
fn memory_back_pressure_stops_a_peer_until_its_messages_are_sent() {
    let (root, blocks) = wide_dag(10, 300 * KIB);
    let budget = 1024 * KIB as u64;
    let mut h = open_with(Config {
        max_memory_per_peer: budget,
        ..Config::default()
    })
    .with_blocks(blocks.clone());
    h.ack = false;
    h.serve(ALICE, new_request(rid(1), root));
    let (_, alice_memory) = h.responder.memory(&ALICE);
    assert!(alice_memory <= budget, "{alice_memory}");
    let loaded = h.metadata(ALICE, rid(1)).len();
    assert!(loaded < 11, "the traversal stopped early ({loaded} loads)");
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::PartialResponse)
    );

    // Another peer is not held back by alice's budget.
    h.receive(BOB, msg(new_request(rid(2), root)));
    h.settle();
    h.decide_all(&RequestDecision::validate());
    h.ack = true;
    h.run();
    assert_eq!(
        h.last_status(BOB, rid(2)),
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_eq!(h.metadata(ALICE, rid(1)).len(), loaded, "alice still waits");

    // Reporting alice's messages sent frees memory and the traversal goes on.
    let peak = ack_and_finish(&mut h, ALICE);
    assert!(peak <= budget);
    assert_eq!(h.metadata(ALICE, rid(1)).len(), 11);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
}

/// Tiny blocks are bounded too: each queued entry costs more memory than its few bytes (its
/// CID and bookkeeping), so a budget far above the DAG's bytes still stops the traversal.
#[test]
fn memory_back_pressure_counts_each_small_block_entry() {
    let (root, blocks) = wide_dag(1000, 1);
    let dag_bytes: usize = blocks.iter().map(|(_, data)| data.len()).sum();
    let budget = 128 * KIB as u64;
    assert!(
        (dag_bytes as u64) < budget / 2,
        "the DAG's bytes ({dag_bytes}) fit the budget"
    );
    let mut h = open_with(Config {
        max_memory_per_peer: budget,
        ..Config::default()
    })
    .with_blocks(blocks);
    h.ack = false;
    h.serve(ALICE, new_request(rid(1), root));
    let loaded = h.metadata(ALICE, rid(1)).len();
    assert!(
        loaded < 500,
        "the traversal stopped at the entry budget ({loaded} entries queued)"
    );
    assert!(h.responder.memory(&ALICE).1 <= budget);

    let peak = ack_and_finish(&mut h, ALICE);
    assert!(peak <= budget);
    assert_eq!(h.metadata(ALICE, rid(1)).len(), 1001);
    assert_eq!(
        h.last_status(ALICE, rid(1)),
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
}

#[test]
fn overall_memory_budget_throttles_every_peer() {
    let (root, blocks) = wide_dag(6, 300 * KIB);
    let mut h = open_with(Config {
        max_memory: 700 * KIB as u64,
        ..Config::default()
    })
    .with_blocks(blocks);
    h.ack = false;
    h.receive(ALICE, msg(new_request(rid(1), root)));
    h.receive(BOB, msg(new_request(rid(2), root)));
    h.settle();
    h.decide_all(&RequestDecision::validate());
    h.run();
    let (total, _) = h.responder.memory(&ALICE);
    assert!(total <= 700 * KIB as u64, "{total}");
    assert!(h.last_status(ALICE, rid(1)) != Some(ResponseStatus::RequestCompletedFull));
    // Acknowledge what was sent; from then on every message is acknowledged once taken.
    let sent: Vec<_> = h.sent.iter().map(|t| (t.peer, t.id)).collect();
    for (peer, id) in sent {
        h.responder.handle_sent(&peer, id).expect("in flight");
    }
    h.ack = true;
    let mut peak = 0;
    loop {
        h.settle();
        peak = peak.max(h.responder.memory(&ALICE).0);
        if h.flush().is_empty() {
            break;
        }
    }
    assert!(peak <= 700 * KIB as u64, "{peak}");
    assert_eq!(
        h.last_status(BOB, rid(2)),
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_eq!(h.responder.tracked(), 0, "both responses finished");
    assert_eq!(h.responder.memory(&ALICE), (0, 0));
}

#[test]
fn ten_thousand_requests_from_one_peer_keep_state_bounded_and_others_are_served() {
    let (root, data) = leaf();
    let config = Config::default();
    let per_peer = config.max_requests_per_peer;
    let mut h = open_with(config).with_blocks([(root, data)]);
    h.receive(ALICE, many(0, 10_000, root));
    assert!(h.responder.tracked() <= per_peer);
    h.receive(BOB, msg(new_request(rid_n(50_000), root)));
    h.settle();
    let refused = h
        .events
        .iter()
        .filter(|event| {
            matches!(
                event,
                Event::Failed {
                    error: RequestError::TooManyRequestsFromPeer { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 10_000 - per_peer);
    h.decide_all(&RequestDecision::validate());
    h.run();

    // Every request got exactly one terminal status; bob's was served.
    let mut terminal = std::collections::HashMap::new();
    for transmit in &h.sent {
        for response in &transmit.message.responses {
            if response.status.is_terminal() {
                *terminal
                    .entry((transmit.peer, response.id, response.status))
                    .or_insert(0) += 1;
            }
        }
    }
    let full = terminal
        .iter()
        .filter(|((peer, _, status), _)| {
            *peer == ALICE && *status == ResponseStatus::RequestCompletedFull
        })
        .count();
    let rejected = terminal
        .iter()
        .filter(|((peer, _, status), _)| {
            *peer == ALICE && *status == ResponseStatus::RequestRejected
        })
        .count();
    assert_eq!((full, rejected), (per_peer, 10_000 - per_peer));
    assert!(terminal.values().all(|count| *count == 1));
    assert_eq!(
        terminal.get(&(BOB, rid_n(50_000), ResponseStatus::RequestCompletedFull)),
        Some(&1)
    );
    assert_eq!(h.responder.tracked(), 0);
    for transmit in &h.sent {
        let len = graphsync::codec::v2::to_vec(&transmit.message)
            .expect("encodes")
            .len();
        assert!(len <= 4 << 20, "every message fits Go's 4 MiB limit");
    }
}
