//! Back-pressure between two nodes: callers that never read their progress events, and two
//! nodes pulling big DAGs from each other at once through tiny queues.

mod net_support;

use blockstore::Blockstore;
use graphsync::Extensions;
use graphsync::network::Config;
use graphsync::requester::Outcome;
use net_support::{Dag, assert_stored, bounded, finish, pair_with, received, store_with};

fn all() -> ipld_selector::Selector {
    ipld_selector::Selector::explore_all_recursively()
}

/// Queues far below what a busy transfer produces.
fn tiny() -> Config {
    Config {
        outbound_capacity: 1,
        inbound_capacity: 1,
        command_capacity: 1,
        event_capacity: 1,
        ..Config::default()
    }
}

#[tokio::test]
async fn a_caller_that_never_reads_progress_does_not_stall_the_node() {
    let big = Dag::flat(300, 64, 50);
    let small = Dag::tree(51);
    let mut blocks = big.blocks.clone();
    blocks.extend(small.blocks.iter().cloned());
    let pair = pair_with(store_with(&blocks).await, Config::default(), tiny()).await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    // 301 progress events for a buffer of 1, and nobody reads them.
    let unread = pair
        .requester
        .request(pair.responder_id, big.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let handle = pair
        .requester
        .request(pair.responder_id, small.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert!(matches!(outcome, Ok(Outcome::Completed(_))), "{outcome:?}");
    assert!(
        received(&events).len() <= 1,
        "later events were dropped for a full buffer, not waited for"
    );
    let outcome = bounded("the unread request's outcome", unread.outcome()).await;
    assert!(matches!(outcome, Ok(Outcome::Completed(_))), "{outcome:?}");
    assert_stored(&pair.requester_store, &blocks).await;
}

#[tokio::test]
async fn two_nodes_pulling_big_dags_from_each_other_through_tiny_queues_both_finish() {
    let left = Dag::flat(400, 2048, 52);
    let right = Dag::flat(400, 2048, 53);
    let mut a_config = tiny();
    a_config.responder.max_unsent_messages_per_peer = 8;
    a_config.responder.max_block_bytes_per_message = 4096;
    // Progress is read here, so it may be buffered in full.
    a_config.event_capacity = 1024;
    let b_config = a_config.clone();
    // Node "responder" holds `left` and asks for `right`; node "requester" the reverse.
    let pair = pair_with(store_with(&left.blocks).await, a_config, b_config).await;
    for (cid, data) in &right.blocks {
        pair.requester_store
            .put_keyed(cid, data)
            .await
            .expect("in-memory put");
    }
    let _a = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let _b = pair
        .requester
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    let to_b = pair
        .responder
        .request(pair.requester_id, right.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let to_a = pair
        .requester
        .request(pair.responder_id, left.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let ((from_b, b_outcome), (from_a, a_outcome)) =
        futures::future::join(finish(to_b), finish(to_a)).await;
    assert!(
        matches!(b_outcome, Ok(Outcome::Completed(_))),
        "{b_outcome:?}"
    );
    assert!(
        matches!(a_outcome, Ok(Outcome::Completed(_))),
        "{a_outcome:?}"
    );
    assert_eq!(received(&from_b), right.flat_order());
    assert_eq!(received(&from_a), left.flat_order());
    assert_stored(&pair.requester_store, &left.blocks).await;
}
