//! A received block reaches the incoming-block hooks and the request's `BlockReceived` event
//! only once its put has finished (issue 7 §4, as Go stores a block before it runs the hook).
//! Before the fix the driver ran the hook and sent the event as soon as the put was started,
//! so a data-transfer node counted (and persisted the count of) a block that a SIGKILL could
//! still take from its disk; its restart then skipped that block for good.

mod net_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cid::Cid;
use graphsync::network::{RequestEvent, RequestHandle};
use graphsync::requester::Outcome;
use net_support::{Dag, SlowPuts, Store, bounded, finish, nodes, received, request_all};

/// How long a driver that reports blocks before their puts is given to do so.
const EARLY_WINDOW: Duration = Duration::from_millis(300);

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
    // Each put finishes when the test allows it.
    let store = SlowPuts::metered();
    let (requester, responder_id, _responder) = nodes(&dag.blocks, store.clone()).await;
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
    let mut handle = request_all(&requester, responder_id, dag.root, "the request").await;

    store.first_put_waiting().await;
    let early = events_within(&mut handle, EARLY_WINDOW).await;
    assert!(
        received(&early).is_empty(),
        "events before any put: {early:?}"
    );
    assert!(seen.lock().expect("not poisoned").is_empty());

    // The root's put finishes: its hook and event come, and nothing for the next block.
    store.allow(1);
    bounded("the root's hook", async {
        while seen.lock().expect("not poisoned").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let after_root = events_within(&mut handle, EARLY_WINDOW).await;
    assert_eq!(received(&after_root), [dag.root]);
    assert_eq!(*seen.lock().expect("not poisoned"), [(dag.root, true)]);

    store.allow(order.len());
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
    // Each put finishes when the test allows it.
    let store = SlowPuts::metered();
    let (requester, responder_id, _responder) = nodes(&dag.blocks, store.clone()).await;
    let mut handle = request_all(&requester, responder_id, dag.root, "the request").await;

    store.first_put_waiting().await;
    let early = events_within(&mut handle, EARLY_WINDOW).await;
    assert!(
        received(&early).is_empty(),
        "events before any put: {early:?}"
    );

    // Puts finish one by one; each event names a block that is stored when it arrives.
    let mut events = Vec::new();
    for (released, cid) in order.iter().enumerate() {
        store.allow(1);
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
    // Each put finishes when the test allows it.
    let store = SlowPuts::metered();
    let (requester, responder_id, _responder) = nodes(&blocks, store.clone()).await;
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
    let held_handle = request_all(&requester, responder_id, held.root, "the held request").await;
    store.first_put_waiting().await;
    let free_handle = request_all(&requester, responder_id, free.root, "the free request").await;
    let (events, outcome) = finish(free_handle).await;
    assert!(completed(&outcome), "{outcome:?}");
    assert_eq!(received(&events), free.flat_order());
    assert_eq!(blocks_seen.load(Ordering::SeqCst), free.flat_order().len());

    store.allow(held.flat_order().len());
    let (events, outcome) = finish(held_handle).await;
    assert!(completed(&outcome), "{outcome:?}");
    assert_eq!(received(&events), held.flat_order());
}
