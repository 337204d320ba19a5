//! A received block reaches the incoming-block hooks and the request's `BlockReceived` event
//! only once its put has finished (issue 7 §4, as Go stores a block before it runs the hook).
//! Before the fix the driver ran the hook and sent the event as soon as the put was started,
//! so a data-transfer node counted (and persisted the count of) a block that a SIGKILL could
//! still take from its disk; its restart then skipped that block for good.

mod net_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blockstore::Blockstore;
use cid::Cid;
use graphsync::Extensions;
use graphsync::network::{Config, Node, RequestEvent, RequestHandle};
use graphsync::requester::Outcome;
use ipld_selector::Selector;
use libp2p::PeerId;
use net_support::{
    Dag, Store, bounded, connect, drive, finish, memory_swarm, received, store_with,
};
use tokio::sync::Semaphore;

/// How long a driver that reports blocks before their puts is given to do so.
const EARLY_WINDOW: Duration = Duration::from_millis(300);

/// A requester store whose puts finish one at a time, each when the test releases one.
struct Released {
    inner: Store,
    permits: Semaphore,
    /// Blocks whose put has finished.
    stored: Mutex<HashSet<Cid>>,
    /// Puts started (waiting or done).
    started: AtomicUsize,
}

impl Released {
    fn new() -> Arc<Released> {
        Arc::new(Released {
            inner: Store::new(),
            permits: Semaphore::new(0),
            stored: Mutex::new(HashSet::new()),
            started: AtomicUsize::new(0),
        })
    }

    fn release(&self, puts: usize) {
        self.permits.add_permits(puts);
    }

    fn is_stored(&self, cid: &Cid) -> bool {
        self.stored.lock().expect("not poisoned").contains(cid)
    }

    async fn first_put_waiting(&self) {
        bounded("a put to start", async {
            while self.started.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

impl Blockstore for Released {
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
        self.started.fetch_add(1, Ordering::SeqCst);
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
            .forget();
        self.inner.put_keyed(cid, data).await?;
        let cid = Cid::try_from(cid.to_bytes()).expect("a valid cid");
        self.stored.lock().expect("not poisoned").insert(cid);
        Ok(())
    }

    async fn remove<const S: usize>(&self, cid: &cid::CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

/// A responder serving `dag` and a requester on `store`, connected over the memory transport.
async fn nodes(dag: &Dag, store: Arc<Released>) -> (Node, Node, PeerId) {
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    let responder = Node::spawn(
        responder_swarm.behaviour(),
        store_with(&dag.blocks).await,
        Config::default(),
    )
    .expect("the responder starts");
    // Dropping the handle keeps the hook.
    let _validate = responder.register_incoming_request_hook(|_, _, actions| actions.validate());
    let requester = Node::spawn(requester_swarm.behaviour(), store, Config::default())
        .expect("the requester starts");
    let responder_id = *responder_swarm.local_peer_id();
    // The swarms run until the test's runtime ends.
    drop(drive(responder_swarm));
    drop(drive(requester_swarm));
    (responder, requester, responder_id)
}

/// The events of `handle` that arrive within `window`.
async fn events_within(handle: &mut RequestHandle, window: Duration) -> Vec<RequestEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, handle.next_event()).await {
        events.push(event);
    }
    events
}

fn completed(outcome: &Result<Outcome, graphsync::network::NodeError>) -> bool {
    matches!(outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty())
}

#[tokio::test]
async fn the_incoming_block_hook_and_event_wait_for_the_put_in_order() {
    let dag = Dag::flat(4, 300, 21);
    let order = dag.flat_order();
    let store = Released::new();
    let (_responder, requester, responder_id) = nodes(&dag, store.clone()).await;
    // Each hook call records the block and whether it was stored at that moment.
    let seen: Arc<Mutex<Vec<(Cid, bool)>>> = Arc::default();
    let _hook = {
        let seen = seen.clone();
        let store = store.clone();
        requester.register_incoming_block_hook(move |_, block, _| {
            let stored = store.is_stored(&block.cid);
            seen.lock().expect("not poisoned").push((block.cid, stored));
        })
    };
    let mut handle = requester
        .request(
            responder_id,
            dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the request starts");

    store.first_put_waiting().await;
    let early = events_within(&mut handle, EARLY_WINDOW).await;
    assert!(
        received(&early).is_empty(),
        "events before any put: {early:?}"
    );
    assert!(seen.lock().expect("not poisoned").is_empty());

    // The root's put finishes: its hook and event come, and nothing for the next block.
    store.release(1);
    bounded("the root's hook", async {
        while seen.lock().expect("not poisoned").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let after_root = events_within(&mut handle, EARLY_WINDOW).await;
    assert_eq!(received(&after_root), [dag.root]);
    assert_eq!(*seen.lock().expect("not poisoned"), [(dag.root, true)]);

    store.release(order.len());
    let (rest, outcome) = finish(handle).await;
    assert!(completed(&outcome), "{outcome:?}");
    assert_eq!(received(&rest), order[1..]);
    let seen = seen.lock().expect("not poisoned").clone();
    let expected: Vec<(Cid, bool)> = order.iter().map(|cid| (*cid, true)).collect();
    assert_eq!(seen, expected, "every hook call came after its block's put");
}

#[tokio::test]
async fn without_block_hooks_the_events_still_wait_for_the_puts_in_order() {
    let dag = Dag::flat(6, 300, 22);
    let order = dag.flat_order();
    let store = Released::new();
    let (_responder, requester, responder_id) = nodes(&dag, store.clone()).await;
    let mut handle = requester
        .request(
            responder_id,
            dag.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the request starts");

    store.first_put_waiting().await;
    let early = events_within(&mut handle, EARLY_WINDOW).await;
    assert!(
        received(&early).is_empty(),
        "events before any put: {early:?}"
    );

    // Puts finish one by one; each event names a block that is stored when it arrives.
    let mut events = Vec::new();
    for (released, cid) in order.iter().enumerate() {
        store.release(1);
        let event = bounded("the next block event", async {
            loop {
                match handle.next_event().await {
                    Some(RequestEvent::BlockReceived { cid, .. }) => break cid,
                    Some(_) => {}
                    None => panic!("the events ended after {released} blocks"),
                }
            }
        })
        .await;
        assert_eq!(event, *cid, "block {released}");
        assert!(
            store.is_stored(&event),
            "block {released} reported before its put"
        );
        events.push(event);
    }
    assert_eq!(events, order);
    let (rest, outcome) = finish(handle).await;
    assert!(completed(&outcome), "{outcome:?}");
    assert!(received(&rest).is_empty());
}

#[tokio::test]
async fn a_request_whose_puts_wait_does_not_hold_back_another() {
    let held = Dag::flat(3, 300, 23);
    let free = Dag::flat(3, 300, 24);
    let mut blocks = held.blocks.clone();
    blocks.extend(free.blocks.iter().cloned());
    let store = Released::new();
    let (_responder, requester, responder_id) = nodes(
        &Dag {
            root: held.root,
            blocks,
        },
        store.clone(),
    )
    .await;
    requester
        .register_store("free", Arc::new(Store::new()))
        .expect("a new name");
    let free_root = free.root;
    let _use_free = requester.register_outgoing_request_hook(move |_, request, actions| {
        if *request.root == free_root {
            actions.use_store("free");
        }
    });
    let blocks_seen: Arc<AtomicUsize> = Arc::default();
    let _hook = {
        let blocks_seen = blocks_seen.clone();
        requester.register_incoming_block_hook(move |_, _, _| {
            blocks_seen.fetch_add(1, Ordering::SeqCst);
        })
    };
    let held_handle = requester
        .request(
            responder_id,
            held.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the held request starts");
    store.first_put_waiting().await;
    let free_handle = requester
        .request(
            responder_id,
            free.root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .expect("the free request starts");
    let (events, outcome) = finish(free_handle).await;
    assert!(completed(&outcome), "{outcome:?}");
    assert_eq!(received(&events), free.flat_order());
    assert_eq!(blocks_seen.load(Ordering::SeqCst), free.flat_order().len());

    store.release(held.flat_order().len());
    let (events, outcome) = finish(held_handle).await;
    assert!(completed(&outcome), "{outcome:?}");
    assert_eq!(received(&events), held.flat_order());
}
