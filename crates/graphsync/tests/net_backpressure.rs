//! Backpressure per peer (issues 7 and 9: large pulls must not fail). A requester whose
//! traversal is slower than the network (a block hook makes it wait for each block's put, and
//! each put is slow, as a data-transfer node's) stops reading the responder's stream while
//! too many bytes wait for its traversal, instead of buffering them until the request fails.
//! Before the fix the request failed with `BufferExceeded` once
//! `requester::Config::max_buffered_bytes` were buffered ahead (the 256 MiB pulls of
//! `cargo xtask bench` with a Rust requester).

mod net_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blockstore::Blockstore;
use cid::Cid;
use graphsync::Extensions;
use graphsync::network::{Config, HookHandle, Node, RequestEvent};
use graphsync::requester::{self, Outcome};
use ipld_selector::Selector;
use libp2p::PeerId;
use net_support::{
    Dag, Store, assert_stored, bounded, connect, drive, finish, memory_swarm, store_with,
};
use tokio::sync::Notify;

/// Leaves of the DAG.
const LEAVES: usize = 128;

/// Bytes per leaf: the DAG holds 8 MiB.
const LEAF_SIZE: usize = 64 << 10;

/// The requester's per-request buffer bound, an eighth of the DAG.
const BOUND: usize = 1 << 20;

/// A requester store whose every put takes a while (a store that syncs each block), and
/// whose puts of the held CIDs wait until [`SlowPuts::release`].
struct SlowPuts {
    inner: Store,
    delay: Duration,
    /// Puts finished.
    stored: AtomicUsize,
    held: Mutex<HashSet<Cid>>,
    released: Notify,
}

impl SlowPuts {
    fn new() -> Arc<SlowPuts> {
        Arc::new(SlowPuts {
            inner: Store::new(),
            delay: Duration::from_millis(2),
            stored: AtomicUsize::new(0),
            held: Mutex::new(HashSet::new()),
            released: Notify::new(),
        })
    }

    fn hold(&self, cids: impl IntoIterator<Item = Cid>) {
        self.held.lock().expect("not poisoned").extend(cids);
    }

    fn release(&self) {
        self.held.lock().expect("not poisoned").clear();
        self.released.notify_waiters();
    }
}

impl Blockstore for SlowPuts {
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
        let key = Cid::try_from(cid.to_bytes()).expect("a valid cid");
        loop {
            let released = self.released.notified();
            if !self.held.lock().expect("not poisoned").contains(&key) {
                break;
            }
            released.await;
        }
        tokio::time::sleep(self.delay).await;
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

/// A responder serving `blocks` and a requester storing into a [`SlowPuts`] store, with
/// [`BOUND`] bytes of buffer per request, connected over the memory transport.
struct Nodes {
    requester: Node,
    /// Kept so that the responder runs and validates.
    _responder: (Node, HookHandle),
    responder_id: PeerId,
    store: Arc<SlowPuts>,
}

async fn nodes(blocks: &[(Cid, Vec<u8>)]) -> Nodes {
    let store = SlowPuts::new();
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    let responder = serve(&responder_swarm, blocks).await;
    let requester = Node::spawn(
        requester_swarm.behaviour(),
        store.clone(),
        requester_config(),
    )
    .expect("the requester starts");
    let responder_id = *responder_swarm.local_peer_id();
    drop(drive(responder_swarm));
    drop(drive(requester_swarm));
    Nodes {
        requester,
        _responder: responder,
        responder_id,
        store,
    }
}

/// A responder node on `swarm` serving `blocks`, validating every request.
async fn serve(
    swarm: &libp2p::Swarm<graphsync::network::Behaviour>,
    blocks: &[(Cid, Vec<u8>)],
) -> (Node, HookHandle) {
    let responder = Node::spawn(
        swarm.behaviour(),
        store_with(blocks).await,
        Config::default(),
    )
    .expect("the responder starts");
    let validate = responder.register_incoming_request_hook(|_, _, actions| actions.validate());
    (responder, validate)
}

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
    let Nodes {
        requester,
        responder_id,
        store,
        _responder: _running,
    } = nodes(&dag.blocks).await;
    // With a block hook the traversal waits for each block's put (as Go stores a block
    // before it runs the hooks): the traversal goes at the store's pace.
    let hooked = Arc::new(AtomicUsize::new(0));
    let counted = hooked.clone();
    let _hook = requester.register_incoming_block_hook(move |_, _, _| {
        counted.fetch_add(1, Ordering::SeqCst);
    });

    let handle = requester
        .request(
            responder_id,
            dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the request starts");
    let (_, outcome) = finish(handle).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
    let blocks = dag.flat_order().len();
    assert_eq!(store.stored.load(Ordering::SeqCst), blocks);
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
    let Nodes {
        requester,
        responder_id,
        store,
        _responder: _running,
    } = nodes(&blocks).await;
    // The first request pauses at its 40th load: by then the responder has sent more than
    // the gate lets wait (the traversal goes at the store's pace), so the reading is held.
    let _hook = requester.register_incoming_block_hook(move |_, block, actions| {
        // Only the first request has this many loads.
        if block.index == 40 {
            actions.pause();
        }
    });
    let mut paused = requester
        .request(
            responder_id,
            first.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the first request starts");
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

    let other = requester
        .request(
            responder_id,
            second.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the second request starts");
    let (_, outcome) = finish(other).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
    assert_stored(&store.inner, &second.blocks).await;

    requester
        .unpause(paused_id, Extensions::new())
        .await
        .expect("the first request resumes");
    let (_, outcome) = finish(paused).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
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
    let store = SlowPuts::new();
    // The first leaf's put waits: the traversal of the held DAG stops there.
    store.hold(held_dag.flat_order().get(1).copied());
    let mut requester_swarm = memory_swarm();
    let mut held_swarm = memory_swarm();
    let mut free_swarm = memory_swarm();
    connect(&mut held_swarm, &mut requester_swarm, "/memory/0").await;
    connect(&mut free_swarm, &mut requester_swarm, "/memory/0").await;
    let _held = serve(&held_swarm, &held_dag.blocks).await;
    let _free = serve(&free_swarm, &free_dag.blocks).await;
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

    let held = requester
        .request(
            held_id,
            held_dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the held request starts");
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

    let free = requester
        .request(
            free_id,
            free_dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the free request starts");
    let (_, outcome) = finish(free).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
    assert_stored(&store.inner, &free_dag.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    // The held request still runs (before the fix it failed with BufferExceeded).
    assert_eq!(stats.outgoing_requests.active, 1, "{stats:?}");

    store.release();
    let (_, outcome) = finish(held).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
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
    let store = SlowPuts::new();
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    // Messages of at most 1 KiB of blocks (about 60 leaves): the bound holds the entries
    // below the gate's threshold plus one message.
    let responder = Node::spawn(
        responder_swarm.behaviour(),
        store_with(&dag.blocks).await,
        Config {
            responder: graphsync::responder::Config {
                max_block_bytes_per_message: 1 << 10,
                ..graphsync::responder::Config::default()
            },
            ..Config::default()
        },
    )
    .expect("the responder starts");
    let _validate = responder.register_incoming_request_hook(|_, _, actions| actions.validate());
    let requester = Node::spawn(
        requester_swarm.behaviour(),
        store.clone(),
        Config {
            requester: requester::Config::default().with_max_buffered(ENTRIES, BOUND),
            ..Config::default()
        },
    )
    .expect("the requester starts");
    let responder_id = *responder_swarm.local_peer_id();
    drop(drive(responder_swarm));
    drop(drive(requester_swarm));
    // The traversal waits for each block's put: it goes at the store's pace.
    let _hook = requester.register_incoming_block_hook(|_, _, _| {});

    let handle = requester
        .request(
            responder_id,
            dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the request starts");
    let (_, outcome) = finish(handle).await;
    assert!(
        matches!(&outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
    let blocks = dag.flat_order().len();
    assert_eq!(store.stored.load(Ordering::SeqCst), blocks);
    assert_stored(&store.inner, &dag.blocks).await;
    let stats = requester.stats().await.expect("the node runs");
    // 600 blocks of 16 bytes never come near the byte bound: the entries paused the reading.
    assert!(stats.peak_buffered_bytes < (BOUND / 2) as u64, "{stats:?}");
    assert!(stats.reading_pauses > 0, "{stats:?}");
}
