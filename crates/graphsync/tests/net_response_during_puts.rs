//! A response that arrives while the request's earlier puts are still running is approved at
//! once when no incoming-response hook is registered; only its report waits for those puts.
//! Before the fix the driver held the response's decision behind the puts too, so the
//! requester's traversal stopped until the store caught up, and a responder faster than the
//! store overflowed the requester's response buffer: the request failed with
//! `BufferExceeded` (`cargo xtask bench` saw it on the 256 MiB UnixFS pull once the Rust peers
//! ran two runtime threads).

mod net_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use blockstore::Blockstore;
use graphsync::network::{Config, Node};
use graphsync::requester::Outcome;
use graphsync::{Extensions, requester, responder};
use ipld_selector::Selector;
use net_support::{Dag, Store, bounded, connect, drive, finish, memory_swarm, store_with};
use tokio::sync::Semaphore;

/// Leaves of the DAG; each travels in a message of its own.
const LEAVES: usize = 24;

/// Bytes per leaf.
const LEAF_SIZE: usize = 2_000;

/// A requester store whose puts wait until the test releases them.
struct Gated {
    inner: Store,
    permits: Semaphore,
    /// Puts finished.
    stored: AtomicUsize,
}

impl Blockstore for Gated {
    async fn get<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        self.inner.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
            .forget();
        self.inner.put_keyed(cid, data).await?;
        self.stored.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn remove<const S: usize>(&self, cid: &cid::CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn responses_are_verified_while_earlier_puts_wait() {
    let dag = Dag::flat(LEAVES, LEAF_SIZE, 31);
    let store = Arc::new(Gated {
        inner: Store::new(),
        permits: Semaphore::new(0),
        stored: AtomicUsize::new(0),
    });
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    // One block per message, so the leaves arrive as many responses.
    let responder_config = Config {
        responder: responder::Config {
            max_block_bytes_per_message: LEAF_SIZE as u64,
            ..responder::Config::default()
        },
        ..Config::default()
    };
    let responder = Node::spawn(
        responder_swarm.behaviour(),
        store_with(&dag.blocks).await,
        responder_config,
    )
    .expect("the responder starts");
    let _validate = responder.register_incoming_request_hook(|_, _, actions| actions.validate());
    // Room for a few blocks waiting for the traversal, far fewer than the DAG holds.
    let requester_config = Config {
        requester: requester::Config {
            max_buffered_bytes: 4 * LEAF_SIZE,
            ..requester::Config::default()
        },
        ..Config::default()
    };
    let requester = Node::spawn(requester_swarm.behaviour(), store.clone(), requester_config)
        .expect("the requester starts");
    let responder_id = *responder_swarm.local_peer_id();
    drop(drive(responder_swarm));
    drop(drive(requester_swarm));

    let handle = requester
        .request(
            responder_id,
            dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the request starts");
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
    assert_eq!(store.stored.load(Ordering::SeqCst), 0);

    store.permits.add_permits(dag.flat_order().len());
    let (_, outcome) = finish(handle).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
    assert_eq!(store.stored.load(Ordering::SeqCst), dag.flat_order().len());
}

#[tokio::test]
async fn a_store_slower_than_the_network_stops_the_reading() {
    let dag = Dag::flat(LEAVES, LEAF_SIZE, 32);
    let store = Arc::new(Gated {
        inner: Store::new(),
        permits: Semaphore::new(0),
        stored: AtomicUsize::new(0),
    });
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    let responder_config = Config {
        responder: responder::Config {
            max_block_bytes_per_message: LEAF_SIZE as u64,
            ..responder::Config::default()
        },
        ..Config::default()
    };
    let responder = Node::spawn(
        responder_swarm.behaviour(),
        store_with(&dag.blocks).await,
        responder_config,
    )
    .expect("the responder starts");
    let _validate = responder.register_incoming_request_hook(|_, _, actions| actions.validate());
    let requester_config = Config {
        max_store_tasks: 1,
        max_waiting_store_calls: 2,
        ..Config::default()
    };
    let requester = Node::spawn(requester_swarm.behaviour(), store.clone(), requester_config)
        .expect("the requester starts");
    let responder_id = *responder_swarm.local_peer_id();
    drop(drive(responder_swarm));
    drop(drive(requester_swarm));

    let handle = requester
        .request(
            responder_id,
            dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the request starts");
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

    store.permits.add_permits(dag.flat_order().len());
    let (_, outcome) = finish(handle).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
    assert_eq!(store.stored.load(Ordering::SeqCst), dag.flat_order().len());
}
