//! go-graphsync's integration scenarios between two Rust [`Node`]s on libp2p's memory transport
//! (and the round trip once over loopback TCP): every test asserts the blocks received (CIDs,
//! order and bytes) and the outcome exactly, and every wait is bounded.

mod net_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use blockstore::Blockstore;
use cid::Cid;
use graphsync::network::{Config, NetworkFailure, Node, NodeError, RequestEvent, StoreNameError};
use graphsync::requester::{Failure, Outcome};
use graphsync::responder::BlockRecord;
use graphsync::{Extensions, LinkAction, Request, RequestId, ResponseStatus, extension};
use ipld_dagcbor::Node as Ipld;
use ipld_selector::Selector;
use libp2p::PeerId;
use net_support::{
    Dag, Gated, Pair, Store, assert_stored, bounded, connect, finish, memory_swarm, nodes_with,
    pair, pair_with, received, start, store_with, tcp_swarm, wire_sizes,
};

fn all() -> Selector {
    Selector::explore_all_recursively()
}

fn completed(outcome: Result<Outcome, NodeError>) -> graphsync::requester::Completion {
    match outcome {
        Ok(Outcome::Completed(completion)) => completion,
        other => panic!("expected a completion, got {other:?}"),
    }
}

fn failed(outcome: Result<Outcome, NodeError>) -> Failure {
    match outcome {
        Ok(Outcome::Failed(failure)) => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Collects what a listener or hook sees.
#[derive(Clone)]
struct Seen<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Seen(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Seen<T> {
    fn push(&self, value: T) {
        self.0.lock().expect("not poisoned").push(value);
    }

    fn all(&self) -> Vec<T> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// Records the responder's block-sent listener: (cid, sent bytes, action).
fn record_blocks_sent(node: &Node) -> Seen<BlockRecord> {
    let seen = Seen::default();
    let sink = seen.clone();
    let _handle = node.register_block_sent_listener(move |_, _, record| sink.push(*record));
    seen
}

/// Waits until the responder reported at least `n` block-sent records, and returns them.
async fn records_at_least(seen: &Seen<BlockRecord>, n: usize) -> Vec<BlockRecord> {
    bounded("the block-sent records", async {
        loop {
            let records = seen.all();
            if records.len() >= n {
                return records;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// The CIDs of block records.
fn cids(records: &[BlockRecord]) -> Vec<Cid> {
    records.iter().map(|record| record.cid).collect()
}

/// Records the extensions of every response entry the requester node receives.
fn record_responses(node: &Node) -> Seen<(ResponseStatus, Extensions)> {
    let seen = Seen::default();
    let sink = seen.clone();
    let _handle = node.register_incoming_response_hook(move |_, response, _| {
        sink.push((response.status, response.extensions.clone()));
    });
    seen
}

/// Waits for a progress event matching `wanted`, returning the events read on the way.
async fn wait_for(
    handle: &mut graphsync::network::RequestHandle,
    mut wanted: impl FnMut(&RequestEvent) -> bool,
) -> Vec<RequestEvent> {
    bounded("a progress event", async {
        let mut seen = Vec::new();
        loop {
            let event = handle
                .next_event()
                .await
                .expect("the request is still running");
            let found = wanted(&event);
            seen.push(event);
            if found {
                return seen;
            }
        }
    })
    .await
}

fn is_status(status: ResponseStatus) -> impl Fn(&RequestEvent) -> bool {
    move |event| matches!(event, RequestEvent::ResponseReceived { status: s } if *s == status)
}

#[tokio::test]
async fn round_trip_receives_every_block_in_traversal_order_and_completes_full() {
    let dag = Dag::tree(1);
    let pair = pair(&dag.blocks).await;
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), dag.tree_order());
    let completion = completed(outcome);
    assert_eq!(
        completion.status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert!(completion.missing.is_empty());
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn round_trip_over_loopback_tcp() {
    let dag = Dag::tree(2);
    let mut responder_swarm = tcp_swarm();
    let mut requester_swarm = tcp_swarm();
    connect(
        &mut responder_swarm,
        &mut requester_swarm,
        "/ip4/127.0.0.1/tcp/0",
    )
    .await;
    let pair = start(
        responder_swarm,
        requester_swarm,
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    );
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), dag.tree_order());
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn missing_leaf_is_reported_m_and_completes_partial() {
    let dag = Dag::tree(3);
    let order = dag.tree_order();
    let leaf1 = order[3];
    let served: Vec<(Cid, Vec<u8>)> = dag
        .blocks
        .iter()
        .filter(|(cid, _)| *cid != leaf1)
        .cloned()
        .collect();
    let pair = pair(&served).await;
    let sent = record_blocks_sent(&pair.responder);
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    let expected: Vec<Cid> = order.iter().copied().filter(|c| *c != leaf1).collect();
    assert_eq!(received(&events), expected);
    assert!(events.contains(&RequestEvent::BlockMissing { cid: leaf1 }));
    let completion = completed(outcome);
    assert_eq!(
        completion.status,
        Some(ResponseStatus::RequestCompletedPartial)
    );
    let missing: Vec<Cid> = completion.missing.iter().map(|(_, cid)| *cid).collect();
    assert_eq!(missing, [leaf1]);
    assert_stored(&pair.requester_store, &served).await;
    assert_eq!(pair.requester_store.get(&leaf1).await.expect("get"), None);
    let records = bounded("the block-sent records", async {
        loop {
            let records = sent.all();
            if records.len() == order.len() {
                return records;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let actions: Vec<(Cid, LinkAction)> = records.iter().map(|r| (r.cid, r.action)).collect();
    let expected: Vec<(Cid, LinkAction)> = order
        .iter()
        .map(|cid| {
            let action = if *cid == leaf1 {
                LinkAction::Missing
            } else {
                LinkAction::Present
            };
            (*cid, action)
        })
        .collect();
    assert_eq!(actions, expected, "metadata m for the missing leaf");
}

#[tokio::test]
async fn missing_root_fails_with_content_not_found() {
    let dag = Dag::tree(4);
    let pair = pair(&[]).await;
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(events.contains(&RequestEvent::ResponseReceived {
        status: ResponseStatus::RequestFailedContentNotFound
    }));
    assert!(matches!(failed(outcome), Failure::ContentNotFound));
}

#[tokio::test]
async fn do_not_send_cids_withholds_those_blocks_and_the_requester_loads_them_locally() {
    let dag = Dag::tree(5);
    let order = dag.tree_order();
    let withheld = [order[2], order[5]];
    let pair = pair(&dag.blocks).await;
    for cid in withheld {
        pair.requester_store
            .put_keyed(&cid, dag.data(&cid))
            .await
            .expect("in-memory put");
    }
    let sent = record_blocks_sent(&pair.responder);
    let extensions = Extensions::new().with(
        extension::DO_NOT_SEND_CIDS,
        Some(extension::encode_do_not_send_cids(&withheld)),
    );
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), extensions)
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    let expected: Vec<(Cid, bool)> = order
        .iter()
        .map(|cid| (*cid, !withheld.contains(cid)))
        .collect();
    let got: Vec<(Cid, bool)> = wire_sizes(&events)
        .into_iter()
        .map(|(cid, wire)| (cid, wire > 0))
        .collect();
    assert_eq!(got, expected, "withheld blocks come from the local store");
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_stored(&pair.requester_store, &dag.blocks).await;
    let records = sent.all();
    for record in records {
        assert_eq!(
            record.sent == 0,
            withheld.contains(&record.cid),
            "{record:?}"
        );
    }
}

#[tokio::test]
async fn do_not_send_first_blocks_withholds_the_first_loads() {
    let dag = Dag::tree(6);
    let order = dag.tree_order();
    let pair = pair(&dag.blocks).await;
    for cid in &order[..3] {
        pair.requester_store
            .put_keyed(cid, dag.data(cid))
            .await
            .expect("in-memory put");
    }
    let extensions = Extensions::new().with(
        extension::DO_NOT_SEND_FIRST_BLOCKS,
        Some(extension::encode_do_not_send_first_blocks(3)),
    );
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), extensions)
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    let got: Vec<(Cid, bool)> = wire_sizes(&events)
        .into_iter()
        .map(|(cid, wire)| (cid, wire > 0))
        .collect();
    let expected: Vec<(Cid, bool)> = order
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i >= 3))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn responder_pauses_from_a_block_hook_and_resumes_by_command_with_extensions() {
    let dag = Dag::tree(7);
    let order = dag.tree_order();
    let pair = pair(&dag.blocks).await;
    let paused_once = Arc::new(AtomicBool::new(false));
    let flag = paused_once.clone();
    let _pause = pair
        .responder
        .register_outgoing_block_hook(move |_, _, record, actions| {
            if record.index == 2 && !flag.swap(true, Ordering::SeqCst) {
                actions.pause();
            }
        });
    let responses = record_responses(&pair.requester);
    let sent = record_blocks_sent(&pair.responder);
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let before = wait_for(&mut handle, is_status(ResponseStatus::RequestPaused)).await;
    // Paused after the second block: nothing more goes out until the unpause.
    assert_eq!(cids(&records_at_least(&sent, 2).await), order[..2]);
    pair.responder
        .unpause_response(
            pair.requester_id,
            handle.id(),
            Extensions::new().with("resumed", Some(Ipld::from(true))),
        )
        .await
        .expect("the response is paused");
    let (after, outcome) = finish(handle).await;
    assert_eq!([received(&before), received(&after)].concat(), order);
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert!(
        responses
            .all()
            .iter()
            .any(|(_, extensions)| extensions.contains("resumed")),
        "the unpause extensions reached the requester"
    );
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn responder_pauses_by_command_mid_transfer_and_resumes() {
    let dag = Dag::tree(8);
    let order = dag.tree_order();
    let store = Gated::new(&dag.blocks, &[order[3]]).await;
    let pair = pair_with(store.clone(), Config::default(), Config::default()).await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let sent = record_blocks_sent(&pair.responder);
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    bounded("the held load", store.waiting.notified()).await;
    pair.responder
        .pause_response(pair.requester_id, handle.id())
        .await
        .expect("a running response pauses");
    store.open();
    let before = wait_for(&mut handle, is_status(ResponseStatus::RequestPaused)).await;
    // The block being loaded when the pause was asked for is still sent, then 15.
    assert_eq!(cids(&records_at_least(&sent, 4).await), order[..4]);
    let again = pair
        .responder
        .pause_response(pair.requester_id, handle.id())
        .await;
    assert!(
        matches!(again, Err(NodeError::Response { .. })),
        "already paused: {again:?}"
    );
    pair.responder
        .unpause_response(pair.requester_id, handle.id(), Extensions::new())
        .await
        .expect("the response is paused");
    let (after, outcome) = finish(handle).await;
    assert_eq!([received(&before), received(&after)].concat(), order);
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn requester_pauses_from_a_block_hook_and_resumes_with_the_same_id() {
    let dag = Dag::tree(9);
    let order = dag.tree_order();
    // The responder's third load is held until the requester has paused, so the pause
    // happens while the responder still has blocks to send.
    let store = Gated::new(&dag.blocks, &[order[2]]).await;
    let pair = pair_with(store.clone(), Config::default(), Config::default()).await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let cancelled: Seen<RequestId> = Seen::default();
    let cancel_sink = cancelled.clone();
    let _cancelled = pair
        .responder
        .register_requestor_cancelled_listener(move |_, request| cancel_sink.push(request));
    let news: Seen<Request> = Seen::default();
    let sink = news.clone();
    let _queued = pair
        .responder
        .register_incoming_request_queued_listener(move |_, request| sink.push(request.clone()));
    let paused_once = Arc::new(AtomicBool::new(false));
    let flag = paused_once.clone();
    let _pause = pair
        .requester
        .register_incoming_block_hook(move |_, block, actions| {
            if block.index == 1 && !flag.swap(true, Ordering::SeqCst) {
                actions.pause();
            }
        });
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let id = handle.id();
    let before = wait_for(&mut handle, |event| *event == RequestEvent::Paused).await;
    assert_eq!(received(&before), order[..2]);
    // The pause cancelled the remote request (spec §9.2).
    bounded("the responder to see the cancel", async {
        while cancelled.all().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(cancelled.all(), [id]);
    store.open();
    let again = pair.requester.pause(id).await;
    assert!(matches!(again, Err(NodeError::Command { .. })), "{again:?}");
    pair.requester
        .unpause(id, Extensions::new())
        .await
        .expect("the request is paused");
    let (after, outcome) = finish(handle).await;
    assert_eq!(received(&after), order[2..]);
    let completion = completed(outcome);
    assert!(completion.missing.is_empty());
    assert_stored(&pair.requester_store, &dag.blocks).await;
    let news = news.all();
    assert_eq!(news.len(), 2, "the request was sent again after the resume");
    assert!(news.iter().all(|request| request.id == id), "same id");
    assert_eq!(news[0].extensions.do_not_send_first_blocks(), None);
    assert_eq!(
        news[1].extensions.do_not_send_first_blocks(),
        Some(Ok(2)),
        "the restart skips the two blocks already traversed"
    );
}

#[tokio::test]
async fn an_update_resumes_a_paused_response_through_the_request_updated_hook() {
    let dag = Dag::tree(10);
    let order = dag.tree_order();
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.validate();
            actions.pause();
            actions.add_extension("why", Some(Ipld::from("pay first")));
        });
    let _updated = pair
        .responder
        .register_request_updated_hook(|_, _, update, actions| {
            if update.contains("payment") {
                actions.unpause();
                actions.add_extension("receipt", Some(Ipld::from(1u64)));
            }
        });
    let responses = record_responses(&pair.requester);
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let before = wait_for(&mut handle, is_status(ResponseStatus::RequestPaused)).await;
    assert!(received(&before).is_empty());
    pair.requester
        .send_update(
            handle.id(),
            Extensions::new().with("payment", Some(Ipld::from(10u64))),
        )
        .await
        .expect("the responder still serves the request");
    let (after, outcome) = finish(handle).await;
    assert_eq!(received(&after), order);
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    let responses = responses.all();
    assert!(
        responses[0].0 == ResponseStatus::RequestPaused && responses[0].1.contains("why"),
        "{responses:?}"
    );
    assert!(
        responses.iter().any(|(_, ext)| ext.contains("receipt")),
        "{responses:?}"
    );
}

#[tokio::test]
async fn responder_link_budget_from_a_hook_fails_the_request_with_32() {
    let dag = Dag::tree(11);
    let order = dag.tree_order();
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _budget = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.validate();
            actions.set_link_budget(3);
        });
    let sent = record_blocks_sent(&pair.responder);
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    // A budget of 3 lets three loads through, the fourth fails the traversal; 32 travels with
    // the three blocks and fails the request before the requester's traversal takes them.
    assert_eq!(cids(&records_at_least(&sent, 3).await), order[..3]);
    assert!(received(&events).is_empty());
    assert!(matches!(failed(outcome), Failure::FailedUnknown));
}

#[tokio::test]
async fn requester_link_budget_fails_the_local_traversal() {
    let dag = Dag::tree(12);
    let order = dag.tree_order();
    let mut requester_config = Config::default();
    requester_config.requester = requester_config.requester.clone().with_traversal(
        ipld_selector::Config::default()
            .with_max_recursion_depth(None)
            .with_link_budget(Some(3)),
    );
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        requester_config,
    )
    .await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    // The local traversal's budget counts loads: three pass, the fourth fails.
    assert_eq!(received(&events), order[..3]);
    assert!(
        matches!(failed(outcome), Failure::Traversal { .. }),
        "the local budget ends it"
    );
}

#[tokio::test]
async fn without_hooks_explore_all_is_rejected_with_30_and_a_depth_limit_is_served() {
    let dag = Dag::tree(13);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(matches!(failed(outcome), Failure::Rejected));

    let limited = Selector::from_dag_json(br#"{"R":{"l":{"depth":10},":>":{"a":{">":{"@":{}}}}}}"#)
        .expect("a valid selector");
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, limited, Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), dag.tree_order());
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
}

#[tokio::test]
async fn responder_cancel_by_command_ends_the_request_with_35() {
    let dag = Dag::tree(14);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _pause = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.validate();
            actions.pause();
        });
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    wait_for(&mut handle, is_status(ResponseStatus::RequestPaused)).await;
    pair.responder
        .cancel_response(pair.requester_id, handle.id())
        .await
        .expect("the response exists");
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(matches!(failed(outcome), Failure::ResponderCancelled));
    let unknown = pair
        .responder
        .cancel_response(pair.requester_id, RequestId::new([9; 16]))
        .await;
    assert!(
        matches!(unknown, Err(NodeError::Response { .. })),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn disconnect_mid_transfer_is_reported_and_only_verified_blocks_are_stored() {
    let dag = Dag::tree(15);
    let order = dag.tree_order();
    let store = Gated::new(&dag.blocks, &[order[3]]).await;
    let pair = pair_with(store.clone(), Config::default(), Config::default()).await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let failures: Seen<NetworkFailure> = Seen::default();
    let sink = failures.clone();
    let _errors = pair
        .requester
        .register_network_error_listener(move |_, failure| sink.push(failure.clone()));
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let id = handle.id();
    let mut count = 0;
    let before = wait_for(&mut handle, |event| {
        if matches!(event, RequestEvent::BlockReceived { .. }) {
            count += 1;
        }
        count == 3
    })
    .await;
    assert_eq!(received(&before), order[..3]);
    pair.responder_swarm.abort();
    let rest = wait_for(&mut handle, |event| {
        *event == RequestEvent::PeerDisconnected
    })
    .await;
    assert!(received(&rest).is_empty());
    assert!(
        failures.all().iter().any(
            |f| matches!(f, NetworkFailure::ResponderDisconnected { request } if *request == id)
        )
    );
    pair.requester.cancel(id).await.expect("still alive");
    let (_, outcome) = finish(handle).await;
    assert!(matches!(outcome, Ok(Outcome::Cancelled)), "{outcome:?}");
    for (index, cid) in order.iter().enumerate() {
        let stored = pair.requester_store.get(cid).await.expect("get");
        if index < 3 {
            assert_eq!(stored.as_deref(), Some(dag.data(cid)));
        } else {
            assert_eq!(stored, None, "block {index} was never received");
        }
    }
    drop(store);
}

#[tokio::test]
async fn dialing_a_peer_that_is_not_there_ends_the_request_unreachable() {
    let dag = Dag::tree(16);
    let pair = pair(&dag.blocks).await;
    let failures: Seen<NetworkFailure> = Seen::default();
    let sink = failures.clone();
    let _errors = pair
        .requester
        .register_network_error_listener(move |_, failure| sink.push(failure.clone()));
    let nobody = PeerId::random();
    let handle = pair
        .requester
        .request(nobody, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let id = handle.id();
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(
        matches!(outcome, Err(NodeError::Unreachable { peer, request }) if peer == nobody && request == id),
        "{outcome:?}"
    );
    assert!(
        failures
            .all()
            .iter()
            .any(|f| matches!(f, NetworkFailure::RequestNotSent { request } if *request == id))
    );
    let stats = pair.requester.stats().await.expect("running");
    assert_eq!(stats.outgoing_requests.active, 0);
}

#[tokio::test]
async fn large_blocks_over_a_throttled_link_arrive_whole_within_the_memory_budget() {
    const MIB: u64 = 1 << 20;
    let dag = Dag::flat(20, MIB as usize, 17);
    let order = dag.flat_order();
    let mut responder_config = Config::default();
    responder_config.responder.max_memory_per_peer = 2 * MIB;
    responder_config.responder.max_unsent_messages_per_peer = 2;
    responder_config.outbound_capacity = 3;
    let pair = pair_with(
        store_with(&dag.blocks).await,
        responder_config,
        Config::default(),
    )
    .await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let node = pair.responder.clone();
        let peak = peak.clone();
        tokio::spawn(async move {
            while let Ok(stats) = node.stats().await {
                peak.fetch_max(stats.responder_memory, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    watcher.abort();
    assert_eq!(received(&events), order);
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_stored(&pair.requester_store, &dag.blocks).await;
    assert!(
        peak.load(Ordering::SeqCst) <= 2 * MIB,
        "responder memory peaked at {}",
        peak.load(Ordering::SeqCst)
    );
    let total: u64 = dag.blocks.iter().map(|(_, data)| data.len() as u64).sum();
    let requester = pair.requester.stats().await.expect("running");
    assert_eq!(requester.blocks_received, 21);
    assert_eq!(requester.bytes_received, total);
    let responder = bounded("the responder's last send reports", async {
        loop {
            let stats = pair.responder.stats().await.expect("running");
            if stats.blocks_sent == 21 && stats.responder_memory == 0 {
                return stats;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(responder.bytes_sent, total);
}

#[tokio::test]
async fn eight_parallel_requests_all_complete() {
    let dags: Vec<Dag> = (0..8).map(|i| Dag::tree(20 + i)).collect();
    let blocks: Vec<(Cid, Vec<u8>)> = dags.iter().flat_map(|d| d.blocks.clone()).collect();
    let pair = pair(&blocks).await;
    let mut handles = Vec::new();
    for dag in &dags {
        handles.push(
            pair.requester
                .request(pair.responder_id, dag.root, all(), Extensions::new())
                .await
                .expect("the request starts"),
        );
    }
    let results = futures::future::join_all(handles.into_iter().map(finish)).await;
    for (dag, (events, outcome)) in dags.iter().zip(results) {
        assert_eq!(received(&events), dag.tree_order());
        assert_eq!(
            completed(outcome).status,
            Some(ResponseStatus::RequestCompletedFull)
        );
    }
    assert_stored(&pair.requester_store, &blocks).await;
    let stats = pair.requester.stats().await.expect("running");
    assert_eq!(stats.outgoing_requests.active, 0);
    assert_eq!(stats.blocks_received, 48);
}

#[tokio::test]
async fn block_listeners_see_every_block_in_order_on_both_sides() {
    let dag = Dag::tree(30);
    let order = dag.tree_order();
    let pair = pair(&dag.blocks).await;
    let sent = record_blocks_sent(&pair.responder);
    let incoming: Seen<(Cid, u64)> = Seen::default();
    let sink = incoming.clone();
    let _blocks = pair
        .requester
        .register_incoming_block_hook(move |_, block, _| sink.push((block.cid, block.index)));
    let outgoing: Seen<(Cid, u64)> = Seen::default();
    let out_sink = outgoing.clone();
    let _outgoing = pair
        .responder
        .register_outgoing_block_hook(move |_, _, record, _| {
            out_sink.push((record.cid, record.index))
        });
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), order);
    completed(outcome);
    let expected_incoming: Vec<(Cid, u64)> = order
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as u64))
        .collect();
    assert_eq!(incoming.all(), expected_incoming);
    let expected_outgoing: Vec<(Cid, u64)> = order
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as u64 + 1))
        .collect();
    assert_eq!(outgoing.all(), expected_outgoing);
    let records = bounded("every block-sent record", async {
        loop {
            let records = sent.all();
            if records.len() >= order.len() {
                return records;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let sent_order: Vec<(Cid, u64, u64)> =
        records.iter().map(|r| (r.cid, r.index, r.sent)).collect();
    let expected_sent: Vec<(Cid, u64, u64)> = order
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as u64 + 1, dag.data(c).len() as u64))
        .collect();
    assert_eq!(sent_order, expected_sent);
}

#[tokio::test]
async fn hooks_registered_at_runtime_run_in_order_and_unregister() {
    let dag = Dag::tree(31);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _first = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.add_extension("first", Some(Ipld::from(1u64)));
            actions.add_extension("order", Some(Ipld::from("first")));
        });
    let second = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.add_extension("order", Some(Ipld::from("second")));
            actions.validate();
        });
    let responses = record_responses(&pair.requester);
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), dag.tree_order());
    completed(outcome);
    let seen = responses.all();
    let (_, first_response) = seen.first().expect("a response");
    assert_eq!(first_response.get("first"), Some(Some(&Ipld::from(1u64))));
    assert_eq!(
        first_response.get("order"),
        Some(Some(&Ipld::from("second"))),
        "the later hook ran later"
    );

    second.unregister();
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (_, outcome) = finish(handle).await;
    assert!(matches!(failed(outcome), Failure::Rejected));
    let (status, last) = responses.all().last().cloned().expect("a response");
    assert_eq!(status, ResponseStatus::RequestRejected);
    assert!(last.contains("first"), "the remaining hook still ran");
}

#[tokio::test]
async fn named_stores_chosen_by_hooks_serve_and_receive_the_blocks() {
    let dag = Dag::tree(32);
    let pair = pair_with(Arc::new(Store::new()), Config::default(), Config::default()).await;
    pair.responder
        .register_store("archive", store_with(&dag.blocks).await)
        .expect("a new name");
    let again = pair
        .responder
        .register_store("archive", Arc::new(Store::new()));
    assert!(matches!(
        again,
        Err(StoreNameError::AlreadyRegistered { .. })
    ));
    let _serve = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.validate();
            actions.use_store("archive");
        });
    let news: Seen<Request> = Seen::default();
    let sink = news.clone();
    let _queued = pair
        .responder
        .register_incoming_request_queued_listener(move |_, request| sink.push(request.clone()));
    let mine = Arc::new(Store::new());
    pair.requester
        .register_store("mine", mine.clone())
        .expect("a new name");
    let choose = pair
        .requester
        .register_outgoing_request_hook(|_, _, actions| actions.use_store("mine"));
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), dag.tree_order());
    completed(outcome);
    assert_stored(&mine, &dag.blocks).await;
    assert_eq!(
        pair.requester_store.get(&dag.root).await.expect("get"),
        None,
        "nothing in the default store"
    );
    let key = news.all()[0]
        .extensions
        .dedup_by_key()
        .expect("dedup-by-key sent")
        .expect("a string");
    assert_eq!(key.as_bytes(), b"mine");

    choose.unregister();
    let _unknown = pair
        .requester
        .register_outgoing_request_hook(|_, _, actions| actions.use_store("nowhere"));
    let refused = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await;
    assert!(
        matches!(&refused, Err(NodeError::UnknownStore { name }) if name == "nowhere"),
        "{refused:?}"
    );
    pair.responder
        .unregister_store("archive")
        .expect("registered");
    assert!(matches!(
        pair.responder.unregister_store("archive"),
        Err(StoreNameError::Unknown { .. })
    ));
}

#[tokio::test]
async fn an_unknown_store_chosen_by_the_responder_fails_the_request_with_32() {
    let dag = Dag::tree(33);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _serve = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.validate();
            actions.use_store("missing");
        });
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(matches!(failed(outcome), Failure::FailedUnknown));
}

#[tokio::test]
async fn a_stalled_store_holds_only_its_request_while_another_peer_is_served() {
    let slow = Dag::tree(34);
    let fast = Dag::tree(35);
    let stalled = slow.tree_order()[2];
    let mut blocks = slow.blocks.clone();
    blocks.extend(fast.blocks.iter().cloned());
    let store = Gated::new(&blocks, &[stalled]).await;
    let mut responder_swarm = memory_swarm();
    let mut first_swarm = memory_swarm();
    let mut second_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut first_swarm, "/memory/0").await;
    connect(&mut responder_swarm, &mut second_swarm, "/memory/0").await;
    let second_store = Arc::new(Store::new());
    let second = Node::spawn(
        second_swarm.behaviour(),
        second_store.clone(),
        Config::default(),
    )
    .expect("the second requester starts");
    let _second_swarm = net_support::drive(second_swarm);
    let pair: Pair = start(
        responder_swarm,
        first_swarm,
        store.clone(),
        Config::default(),
        Config::default(),
    );
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());

    let held = pair
        .requester
        .request(pair.responder_id, slow.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    bounded("the stalled load", store.waiting.notified()).await;
    let handle = second
        .request(pair.responder_id, fast.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), fast.tree_order());
    assert_eq!(
        completed(outcome).status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert_stored(&second_store, &fast.blocks).await;
    // The slow request cannot have finished: its third load is still held.
    store.open();
    let (events, outcome) = finish(held).await;
    assert_eq!(received(&events), slow.tree_order());
    completed(outcome);
}

#[tokio::test]
async fn a_terminal_status_that_never_comes_ends_the_request_after_the_timeout() {
    let dag = Dag::tree(36);
    let order = dag.tree_order();
    let mut requester_config = Config::default();
    requester_config.requester = requester_config
        .requester
        .clone()
        .with_terminal_status_timeout(std::time::Duration::from_millis(200));
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        requester_config,
    )
    .await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    // Paused after the last block: the traversal completes, the terminal status never comes.
    let _pause = pair
        .responder
        .register_outgoing_block_hook(|_, _, record, actions| {
            if record.index == 6 {
                actions.pause();
            }
        });
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), order);
    match outcome {
        Ok(Outcome::NoTerminalStatus(completion)) => {
            assert_eq!(completion.status, None);
            assert!(completion.missing.is_empty());
        }
        other => panic!("expected the status timeout, got {other:?}"),
    }
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn cancel_with_puts_waiting_for_a_slot_returns_once_the_running_put_is_done() {
    let dag = Dag::tree(37);
    // One store task: the first put holds it, the other verified blocks wait in the driver.
    let store = Gated::puts_held();
    let requester_config = Config {
        max_store_tasks: 1,
        ..Config::default()
    };
    let (requester, responder_id, responder) = nodes_with(
        &dag.blocks,
        Config::default(),
        store.clone(),
        requester_config,
    )
    .await;
    // Paused after three blocks, so the request is still running when it is cancelled.
    let _pause = responder.register_outgoing_block_hook(|_, _, record, actions| {
        if record.index == 3 {
            actions.pause();
        }
    });
    let handle = requester
        .request(responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    // Three blocks verified (their events wait for their puts, which the store holds).
    bounded("three verified blocks", async {
        loop {
            let stats = requester.stats().await.expect("the node runs");
            if stats.blocks_received >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    bounded("the held put", store.waiting.notified()).await;
    let cancel = {
        let requester = requester.clone();
        let id = handle.id();
        tokio::spawn(async move { requester.cancel(id).await })
    };
    // The cancel waits for the running put, not for the ones it withdrew.
    tokio::task::yield_now().await;
    store.open();
    bounded("the cancel", cancel)
        .await
        .expect("the cancel task ran")
        .expect("the request was known");
    let (_, outcome) = finish(handle).await;
    assert!(matches!(outcome, Ok(Outcome::Cancelled)), "{outcome:?}");
    let order = dag.tree_order();
    assert_eq!(
        store.inner.get(&order[0]).await.expect("get").as_deref(),
        Some(dag.data(&order[0])),
        "the put that was running when the cancel came finished"
    );
    for cid in &order[1..] {
        assert_eq!(
            store.inner.get(cid).await.expect("get"),
            None,
            "withdrawn puts never run"
        );
    }
}

/// A store that panics when asked for one block: at once, or after yielding (inside a task).
struct Panicky {
    inner: Store,
    bad: Cid,
    yield_first: bool,
}

impl Blockstore for Panicky {
    async fn get<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        if cid.to_bytes() == self.bad.to_bytes() {
            if self.yield_first {
                tokio::task::yield_now().await;
            }
            panic!("a broken store");
        }
        self.inner.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn remove<const S: usize>(&self, cid: &cid::CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_store_that_panics_makes_that_block_missing_and_the_node_goes_on() {
    for yield_first in [false, true] {
        let dag = Dag::tree(38);
        let order = dag.tree_order();
        let bad = order[3];
        let inner = Store::new();
        for (cid, data) in &dag.blocks {
            inner.put_keyed(cid, data).await.expect("in-memory put");
        }
        let store = Arc::new(Panicky {
            inner,
            bad,
            yield_first,
        });
        let pair = pair_with(store, Config::default(), Config::default()).await;
        let _validate = pair
            .responder
            .register_incoming_request_hook(|_, _, actions| actions.validate());
        for _ in 0..2 {
            let handle = pair
                .requester
                .request(pair.responder_id, dag.root, all(), Extensions::new())
                .await
                .expect("the request starts");
            let (events, outcome) = finish(handle).await;
            let expected: Vec<Cid> = order.iter().copied().filter(|c| *c != bad).collect();
            assert_eq!(received(&events), expected);
            let completion = completed(outcome);
            assert_eq!(
                completion.status,
                Some(ResponseStatus::RequestCompletedPartial)
            );
            let missing: Vec<Cid> = completion.missing.iter().map(|(_, c)| *c).collect();
            assert_eq!(missing, [bad]);
        }
    }
}
