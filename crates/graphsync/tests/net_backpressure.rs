//! Backpressure per peer (issues 7 and 9: large pulls must not fail). A requester whose
//! traversal is slower than the network (a block hook makes it wait for each block's put, and
//! each put is slow, as a data-transfer node's) stops reading the responder's stream while
//! too many bytes wait for its traversal, instead of buffering them until the request fails.
//! Before the fix the request failed with `BufferExceeded` once
//! `requester::Config::max_buffered_bytes` were buffered ahead (the 256 MiB pulls of
//! `cargo xtask bench` with a Rust requester).

mod net_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use graphsync::Extensions;
use graphsync::network::{Config, Node, RequestEvent};
use graphsync::requester;
use net_support::{
    Dag, SlowPuts, assert_complete, assert_stored, bounded, connect, drive, finish, memory_swarm,
    nodes_with, request_all, validating_responder,
};

/// Leaves of the DAG.
const LEAVES: usize = 128;

/// Bytes per leaf: the DAG holds 8 MiB.
const LEAF_SIZE: usize = 64 << 10;

/// The requester's per-request buffer bound, an eighth of the DAG.
const BOUND: usize = 1 << 20;

/// How long each put of the requester's store takes (a store that syncs each block).
const PUT_DELAY: Duration = Duration::from_millis(2);

/// The requester's config: [`BOUND`] bytes of buffer per request.
fn requester_config() -> Config {
    Config {
        requester: requester::Config::default().with_max_buffered(65_536, BOUND),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_traversal_slower_than_the_network_slows_the_responder_instead_of_failing() {
    let dag = Dag::flat(LEAVES, LEAF_SIZE, 41);
    let store = SlowPuts::delayed(PUT_DELAY);
    let (requester, responder_id, _running) = nodes_with(
        &dag.blocks,
        Config::default(),
        store.clone(),
        requester_config(),
    )
    .await;
    // With a block hook the traversal waits for each block's put (as Go stores a block
    // before it runs the hooks): the traversal goes at the store's pace.
    let hooked = Arc::new(AtomicUsize::new(0));
    let counted = hooked.clone();
    let _hook = requester.register_incoming_block_hook(move |_, _, _| {
        counted.fetch_add(1, Ordering::SeqCst);
    });

    let handle = request_all(&requester, responder_id, dag.root, "the request").await;
    let (_, outcome) = finish(handle).await;
    assert_complete(&outcome);
    let blocks = dag.flat_order().len();
    assert_eq!(store.finished(), blocks);
    assert_eq!(hooked.load(Ordering::SeqCst), blocks);
    assert_stored(&store.inner, &dag.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    assert_eq!(stats.blocks_received, blocks as u64);
    assert!(
        stats.peak_buffered_bytes <= BOUND as u64,
        "{} bytes buffered, bound {BOUND}",
        stats.peak_buffered_bytes
    );
    assert!(stats.peak_buffered_bytes > 0);
    // The responder was faster than the store: the reading paused at least once.
    assert!(stats.reading_pauses > 0, "{stats:?}");
}

/// A request paused while the reading is held does not keep it held: its buffer is dropped,
/// so another request to the same peer runs to the end, and the paused one completes once
/// resumed.
#[tokio::test]
async fn a_request_paused_while_the_reading_is_held_does_not_hold_the_peer() {
    let first = Dag::flat(LEAVES, LEAF_SIZE, 42);
    let second = Dag::flat(LEAVES / 4, LEAF_SIZE, 43);
    let mut blocks = first.blocks.clone();
    blocks.extend(second.blocks.iter().cloned());
    let store = SlowPuts::delayed(PUT_DELAY);
    let (requester, responder_id, _running) = nodes_with(
        &blocks,
        Config::default(),
        store.clone(),
        requester_config(),
    )
    .await;
    // The first request pauses at its 40th load: by then the responder has sent more than
    // the gate lets wait (the traversal goes at the store's pace), so the reading is held.
    let _hook = requester.register_incoming_block_hook(move |_, block, actions| {
        // Only the first request has this many loads.
        if block.index == 40 {
            actions.pause();
        }
    });
    let mut paused = request_all(&requester, responder_id, first.root, "the first request").await;
    let paused_id = paused.id();
    bounded("the first request to pause", async {
        loop {
            match paused.next_event().await {
                Some(RequestEvent::Paused) => break,
                Some(_) => {}
                None => panic!("the first request ended before pausing"),
            }
        }
    })
    .await;
    assert!(
        requester
            .stats()
            .await
            .expect("the node runs")
            .reading_pauses
            > 0,
        "the reading was never held: the pause tests nothing"
    );

    let other = request_all(&requester, responder_id, second.root, "the second request").await;
    let (_, outcome) = finish(other).await;
    assert_complete(&outcome);
    assert_stored(&store.inner, &second.blocks).await;

    requester
        .unpause(paused_id, Extensions::new())
        .await
        .expect("the first request resumes");
    let (_, outcome) = finish(paused).await;
    assert_complete(&outcome);
    assert_stored(&store.inner, &first.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    assert!(stats.peak_buffered_bytes <= BOUND as u64, "{stats:?}");
}

/// A peer whose reading is held does not hold another peer: while the requester's traversal
/// of one responder's DAG waits for a put that does not finish (so that responder's stream is
/// no longer read), a request to a second responder runs to the end; the first completes
/// once its puts go on.
#[tokio::test]
async fn a_held_peer_does_not_hold_the_others() {
    let held_dag = Dag::flat(LEAVES, LEAF_SIZE, 44);
    let free_dag = Dag::flat(LEAVES / 4, LEAF_SIZE, 45);
    let store = SlowPuts::delayed(PUT_DELAY);
    // The first leaf's put waits: the traversal of the held DAG stops there.
    store.hold(held_dag.flat_order().get(1).copied());
    let mut requester_swarm = memory_swarm();
    let mut held_swarm = memory_swarm();
    let mut free_swarm = memory_swarm();
    connect(&mut held_swarm, &mut requester_swarm, "/memory/0").await;
    connect(&mut free_swarm, &mut requester_swarm, "/memory/0").await;
    let _held = validating_responder(&held_swarm, &held_dag.blocks, Config::default()).await;
    let _free = validating_responder(&free_swarm, &free_dag.blocks, Config::default()).await;
    let requester = Node::spawn(
        requester_swarm.behaviour(),
        store.clone(),
        requester_config(),
    )
    .expect("the requester starts");
    // With a block hook each block's put finishes before the traversal goes on.
    let _hook = requester.register_incoming_block_hook(|_, _, _| {});
    let held_id = *held_swarm.local_peer_id();
    let free_id = *free_swarm.local_peer_id();
    drop(drive(held_swarm));
    drop(drive(free_swarm));
    drop(drive(requester_swarm));

    let held = request_all(&requester, held_id, held_dag.root, "the held request").await;
    bounded("the held peer's reading to pause", async {
        while requester
            .stats()
            .await
            .expect("the node runs")
            .reading_pauses
            == 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let free = request_all(&requester, free_id, free_dag.root, "the free request").await;
    let (_, outcome) = finish(free).await;
    assert_complete(&outcome);
    assert_stored(&store.inner, &free_dag.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    // The held request still runs (before the fix it failed with BufferExceeded).
    assert_eq!(stats.outgoing_requests.active, 1, "{stats:?}");

    store.release_held();
    let (_, outcome) = finish(held).await;
    assert_complete(&outcome);
    assert_stored(&store.inner, &held_dag.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    assert!(stats.peak_buffered_bytes <= BOUND as u64, "{stats:?}");
}

/// Small blocks: the buffer's entry bound (`max_buffered_items`) is reached long before its
/// byte bound, so the reading must pause on entries too. Before the fix the gate counted
/// bytes only and the request failed with `BufferExceeded` on entries (a data-transfer pull of
/// 100 000 dag-cbor blocks of ~150 bytes in `cargo xtask bench`, once the responder read its
/// blocks inline: 65 536 entries buffered, under 10 MB).
#[tokio::test]
async fn many_small_blocks_pause_the_reading_on_the_entry_bound() {
    /// Entries the requester may hold buffered ahead of a traversal.
    const ENTRIES: usize = 256;
    let dag = Dag::flat(600, 16, 46);
    let store = SlowPuts::delayed(PUT_DELAY);
    // Messages of at most 1 KiB of blocks (about 60 leaves): the bound holds the entries
    // below the gate's threshold plus one message.
    let responder_config = Config {
        responder: graphsync::responder::Config {
            max_block_bytes_per_message: 1 << 10,
            ..graphsync::responder::Config::default()
        },
        ..Config::default()
    };
    let requester_config = Config {
        requester: requester::Config::default().with_max_buffered(ENTRIES, BOUND),
        ..Config::default()
    };
    let (requester, responder_id, _running) = nodes_with(
        &dag.blocks,
        responder_config,
        store.clone(),
        requester_config,
    )
    .await;
    // The traversal waits for each block's put: it goes at the store's pace.
    let _hook = requester.register_incoming_block_hook(|_, _, _| {});

    let handle = request_all(&requester, responder_id, dag.root, "the request").await;
    let (_, outcome) = finish(handle).await;
    assert_complete(&outcome);
    let blocks = dag.flat_order().len();
    assert_eq!(store.finished(), blocks);
    assert_stored(&store.inner, &dag.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    // 600 blocks of 16 bytes never come near the byte bound: the entries paused the reading.
    assert!(stats.peak_buffered_bytes < (BOUND / 2) as u64, "{stats:?}");
    assert!(stats.reading_pauses > 0, "{stats:?}");
}
