//! Per-channel stores (Go's `UseStore` through transport configurers, as graphsync named
//! stores) and bad data-transfer extensions.

mod support;

use std::sync::{Arc, Mutex};

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_graphsync::extension::DATA_TRANSFER;
use datatransfer_graphsync::{dt_peer, store_name};
use datatransfer_message::{ChannelId, Message, TransferId, new_request};
use datatransfer_transport::conformance::{Recorded, Recorder, Script};
use datatransfer_transport::{EventsHandler, OpenChannel, StoreName, Transport, TransportError};
use graphsync::Extensions;
use graphsync::requester::{Failure, Outcome};
use ipld_dagcbor::{Map, Node};
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};
use support::{bounded, sides};

/// A root linking two raw leaves.
fn dag() -> (Cid, Vec<(Cid, Vec<u8>)>) {
    let mut blocks = Vec::new();
    let mut links = Vec::new();
    for i in 0..2u8 {
        let bytes = vec![i; 8];
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&bytes));
        links.push(Node::Link(cid));
        blocks.push((cid, bytes));
    }
    let root_bytes =
        ipld_dagcbor::to_vec(&Node::Map(Map::new().with("l", Node::List(links)))).expect("encodes");
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_bytes));
    blocks.insert(0, (root, root_bytes));
    (root, blocks)
}

async fn store_with(blocks: &[(Cid, Vec<u8>)]) -> Arc<InMemoryBlockstore<64>> {
    let store = Arc::new(InMemoryBlockstore::new());
    for (cid, bytes) in blocks {
        store.put_keyed(cid, bytes).await.expect("in-memory put");
    }
    store
}

async fn holds_all(store: &InMemoryBlockstore<64>, blocks: &[(Cid, Vec<u8>)]) -> bool {
    for (cid, bytes) in blocks {
        if store.get(cid).await.ok().flatten().as_deref() != Some(bytes.as_slice()) {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_uses_the_channels_own_store() {
    let (root, blocks) = dag();
    // Neither default store is used: the sender serves from, and the receiver writes to, the
    // channel's stores.
    let sender_default = Arc::new(InMemoryBlockstore::new());
    let receiver_default = Arc::new(InMemoryBlockstore::new());
    let (sender, receiver) = sides(sender_default, receiver_default.clone()).await;
    let sender_log = Arc::new(Recorder::new(Script::default()));
    let receiver_log = Arc::new(Recorder::new(Script::default()));
    sender
        .transport
        .set_events_handler(sender_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    receiver
        .transport
        .set_events_handler(receiver_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    let channel = ChannelId::new(
        dt_peer(&receiver.peer),
        dt_peer(&sender.peer),
        TransferId(21),
    );
    sender
        .transport
        .use_store(&channel, store_with(&blocks).await)
        .expect("the sender's channel store registers");
    let deal = Arc::new(InMemoryBlockstore::<64>::new());
    receiver
        .transport
        .register_store(StoreName::new("deal-21"), deal.clone())
        .expect("a fresh name");
    let dedup: Arc<Mutex<Vec<Extensions>>> = Arc::default();
    let sink = dedup.clone();
    let _keep = sender
        .node
        .register_incoming_request_hook(move |_, request, _| {
            sink.lock()
                .expect("not poisoned")
                .push(request.extensions.clone());
        });

    let request = Message::from(new_request(
        TransferId(21),
        true,
        "FakeDTType".into(),
        Node::Null,
        root,
        Selector::explore_all_recursively().to_node(),
    ));
    let open = OpenChannel::new(
        dt_peer(&sender.peer),
        channel.clone(),
        root,
        Selector::explore_all_recursively().to_node(),
        request,
    );
    let unknown = receiver
        .transport
        .open_channel(open.clone().with_store(StoreName::new("nope")))
        .await;
    assert!(
        matches!(&unknown, Err(TransportError::UnknownStore { store, .. }) if store.as_str() == "nope"),
        "{unknown:?}"
    );
    receiver
        .transport
        .open_channel(open.with_store(StoreName::new("deal-21")))
        .await
        .expect("the request goes out");
    for log in [&receiver_log, &sender_log] {
        bounded(
            "a completion",
            log.wait("stores", "a completion", |events| {
                events
                    .iter()
                    .any(|e| matches!(e, Recorded::Completed(_, Ok(()))))
            }),
        )
        .await
        .expect("both sides complete");
    }
    assert!(
        holds_all(&deal, &blocks).await,
        "the channel's store holds the DAG"
    );
    assert!(
        !holds_all(&receiver_default, &blocks).await,
        "the default store was not written"
    );
    // On the wire: Go's persistence option name, as graphsync's dedup key.
    let seen = dedup.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 1);
    let key = seen[0].dedup_by_key().expect("present").expect("a string");
    assert_eq!(key.as_bytes(), store_name(&channel).as_bytes());
    assert_eq!(
        store_name(&channel),
        format!(
            "data-transfer-{}-{}-21",
            dt_peer(&receiver.peer),
            dt_peer(&sender.peer)
        )
    );

    // Cleanup forgets the channel's graphsync stores on both sides.
    receiver.transport.cleanup_channel(channel.clone()).await;
    sender.transport.cleanup_channel(channel.clone()).await;
    for node in [&receiver.node, &sender.node] {
        node.register_store(
            store_name(&channel),
            Arc::new(InMemoryBlockstore::<64>::new()),
        )
        .expect("the name is free again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_transfer_extension_terminates_the_request() {
    let (root, blocks) = dag();
    let (sender, receiver) = sides(
        store_with(&blocks).await,
        Arc::new(InMemoryBlockstore::new()),
    )
    .await;
    let sender_log = Arc::new(Recorder::new(Script::default()));
    sender
        .transport
        .set_events_handler(sender_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    // A raw graphsync request whose data-transfer extension is not a message.
    let bad = Extensions::new().with(DATA_TRANSFER, Some(Node::text("not a message")));
    let handle = receiver
        .node
        .request(sender.peer, root, Selector::explore_all_recursively(), bad)
        .await
        .expect("the request goes out");
    let outcome = bounded("the outcome", async {
        let mut handle = handle;
        while handle.next_event().await.is_some() {}
        handle.outcome().await
    })
    .await;
    assert!(
        matches!(outcome, Ok(Outcome::Failed(Failure::FailedUnknown))),
        "{outcome:?}"
    );
    assert!(
        sender_log.events().is_empty(),
        "the handler hears nothing: {:?}",
        sender_log.events()
    );
}
