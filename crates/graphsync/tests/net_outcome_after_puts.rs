//! A request's outcome reaches its caller only once every block the node verified for it is
//! stored: with a requester store whose puts wait (a slow disk), the traversal ends from the
//! blocks held in memory, and the outcome waits for the puts. Before the fix the driver handed
//! out the outcome as soon as the traversal ended, so a caller reading its store right after
//! `Completed` missed the blocks still being written (seen in `cargo xtask bench` as "the
//! requester's store holds 4998 blocks, the DAG has 5000").

mod net_support;

use std::time::Duration;

use blockstore::Blockstore;
use graphsync::network::Config;
use net_support::{Dag, Gated, assert_complete, bounded, nodes_with, received, request_all};

/// How long the test leaves a driver that ignores held puts to hand out the outcome early.
const EARLY_OUTCOME_WINDOW: Duration = Duration::from_millis(300);

#[tokio::test]
async fn the_outcome_comes_after_the_last_put_of_the_request() {
    // More blocks than store tasks: some puts wait in the driver, not only in the store.
    let dag = Dag::flat(40, 1_000, 9);
    let store = Gated::puts_held();
    let requester_config = Config {
        max_store_tasks: 8,
        ..Config::default()
    };
    let (requester, responder_id, _responder) = nodes_with(
        &dag.blocks,
        Config::default(),
        store.clone(),
        requester_config,
    )
    .await;

    let mut handle = request_all(&requester, responder_id, dag.root, "the request").await;
    let reader = {
        let store = store.clone();
        let blocks = dag.blocks.clone();
        tokio::spawn(async move {
            let mut events = Vec::new();
            while let Some(event) = handle.next_event().await {
                events.push(event);
            }
            let outcome = handle.outcome().await;
            // What the caller finds in its store the moment it has the outcome.
            let mut stored = 0;
            for (cid, _) in &blocks {
                if store.inner.has(cid).await.expect("in-memory has") {
                    stored += 1;
                }
            }
            (events, outcome, stored)
        })
    };

    bounded("a held put", store.waiting.notified()).await;
    // A driver that hands out outcomes before the puts finish does so now: the whole DAG is
    // verified from memory within this window.
    tokio::time::sleep(EARLY_OUTCOME_WINDOW).await;
    store.open();
    let (events, outcome, stored) = bounded("the outcome", reader)
        .await
        .expect("the reader task ran");
    assert_complete(&outcome);
    assert_eq!(received(&events), dag.flat_order());
    assert_eq!(
        stored,
        dag.blocks.len(),
        "blocks in the requester's store when the outcome arrived"
    );
}
