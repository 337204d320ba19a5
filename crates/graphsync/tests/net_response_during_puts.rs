//! A response that arrives while the request's earlier puts are still running is approved at
//! once when no incoming-response hook is registered; only its report waits for those puts.
//! Before the fix the driver held the response's decision behind the puts too, so the
//! requester's traversal stopped until the store caught up, and a responder faster than the
//! store overflowed the requester's response buffer: the request failed with
//! `BufferExceeded` (`cargo xtask bench` saw it on the 256 MiB UnixFS pull once the Rust peers
//! ran two runtime threads).

mod net_support;

use std::sync::Arc;
use std::time::Duration;

use graphsync::network::{Config, Node};
use graphsync::{requester, responder};
use libp2p::PeerId;
use net_support::{Dag, SlowPuts, assert_complete, bounded, finish, nodes_with, request_all};

/// Leaves of the DAG; each travels in a message of its own.
const LEAVES: usize = 24;

/// Bytes per leaf.
const LEAF_SIZE: usize = 2_000;

/// A responder serving `dag` one block per message (so the leaves arrive as many responses)
/// and a requester on `store` with `requester_config`: the requester, the responder's id and
/// the responder.
async fn start(dag: &Dag, store: Arc<SlowPuts>, requester_config: Config) -> (Node, PeerId, Node) {
    let responder_config = Config {
        responder: responder::Config {
            max_block_bytes_per_message: LEAF_SIZE as u64,
            ..responder::Config::default()
        },
        ..Config::default()
    };
    nodes_with(&dag.blocks, responder_config, store, requester_config).await
}

#[tokio::test]
async fn responses_are_verified_while_earlier_puts_wait() {
    let dag = Dag::flat(LEAVES, LEAF_SIZE, 31);
    // Puts wait until the test allows them.
    let store = SlowPuts::metered();
    // Room for a few blocks waiting for the traversal, far fewer than the DAG holds.
    let requester_config = Config {
        requester: requester::Config {
            max_buffered_bytes: 4 * LEAF_SIZE,
            ..requester::Config::default()
        },
        ..Config::default()
    };
    let (requester, responder_id, _responder) = start(&dag, store.clone(), requester_config).await;

    let handle = request_all(&requester, responder_id, dag.root, "the request").await;
    // Every block is verified (the statistics count it then) while no put has finished.
    let total = dag.flat_order().len() as u64;
    bounded("every block verified while the puts wait", async {
        loop {
            let stats = requester.stats().await.expect("the node runs");
            if stats.blocks_received == total {
                break;
            }
            assert_eq!(
                stats.outgoing_requests.active, 1,
                "the request ended after {} of {total} blocks",
                stats.blocks_received
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(store.finished(), 0);

    store.allow(dag.flat_order().len());
    let (_, outcome) = finish(handle).await;
    assert_complete(&outcome);
    assert_eq!(store.finished(), dag.flat_order().len());
}

#[tokio::test]
async fn a_store_slower_than_the_network_stops_the_reading() {
    let dag = Dag::flat(LEAVES, LEAF_SIZE, 32);
    // Puts wait until the test allows them.
    let store = SlowPuts::metered();
    let requester_config = Config {
        max_store_tasks: 1,
        max_waiting_store_calls: 2,
        ..Config::default()
    };
    let (requester, responder_id, _responder) = start(&dag, store.clone(), requester_config).await;

    let handle = request_all(&requester, responder_id, dag.root, "the request").await;
    // One put runs (held), two wait: then no message is taken, so at most one more message's
    // block is verified.
    bounded("the store's queue to fill", async {
        while requester
            .stats()
            .await
            .expect("the node runs")
            .blocks_received
            < 3
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let verified = requester
        .stats()
        .await
        .expect("the node runs")
        .blocks_received;
    assert!(
        verified <= 4,
        "{verified} of {} blocks verified while the store holds its first put",
        dag.flat_order().len()
    );

    store.allow(dag.flat_order().len());
    let (_, outcome) = finish(handle).await;
    assert_complete(&outcome);
    assert_eq!(store.finished(), dag.flat_order().len());
}
