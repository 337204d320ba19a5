//! The restart state on the wire does not grow with the transfer (issue 7 §4, spec §7.3): a
//! restart carries the data-transfer Restart message in `fil/data-transfer/1.1` and the count of
//! blocks already received in `graphsync/do-not-send-first-blocks`, never a list of what was
//! received. The graphsync request of a restart after 10 blocks of a 21-block DAG and that of a
//! restart after 1000 blocks of a 2001-block DAG differ in size only by the width of the count's
//! CBOR integer, and their data-transfer messages are the same size.

mod support;

use std::sync::{Arc, Mutex};

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_graphsync::extension::DATA_TRANSFER;
use datatransfer_graphsync::{GraphsyncTransport, dt_peer};
use datatransfer_message::{ChannelId, Message, TransferId, new_request, restart_request};
use datatransfer_transport::conformance::{Kind, Recorded, Recorder, Script};
use datatransfer_transport::{EventsHandler, OpenChannel, Transport};
use graphsync::network::Node as GraphsyncNode;
use graphsync::{Request, extension};
use ipld_dagcbor::Node;
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};
use support::{bounded, connect, drive, memory_swarm, node_config};

/// What a restart put on the wire.
struct Restart {
    /// The received block count the restart asked the sender to skip.
    skip: u64,
    /// The DAG-CBOR bytes of the data-transfer message in `fil/data-transfer/1.1`.
    dt_message: Vec<u8>,
    /// The DAG-CBOR bytes of the `graphsync/do-not-send-first-blocks` value.
    skip_value: Vec<u8>,
    /// The graphsync 2.0.0 message holding the restart's request, as the codec writes it.
    graphsync_message: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_state_on_the_wire_is_the_same_size_for_a_small_and_a_large_transfer() {
    let small = restart_after(20, 10).await;
    let large = restart_after(2000, 1000).await;

    assert!((10..=20).contains(&small.skip), "small skip {}", small.skip);
    assert!(
        (1000..=2000).contains(&large.skip),
        "large skip {}",
        large.skip
    );
    assert_eq!(
        small.dt_message.len(),
        large.dt_message.len(),
        "the Restart message does not depend on the transfer's size"
    );
    let width = |n: u64| cbor_integer(n).len();
    assert_eq!(small.skip_value, cbor_integer(small.skip));
    assert_eq!(large.skip_value, cbor_integer(large.skip));
    assert_eq!(
        large.graphsync_message.len() - small.graphsync_message.len(),
        width(large.skip) - width(small.skip),
        "the restart's graphsync request grows only by the width of the count"
    );
    // A few hundred bytes whatever the transfer: a root CID, a selector, a request id, a
    // Restart message and one integer.
    assert!(
        large.graphsync_message.len() < 512,
        "{} bytes",
        large.graphsync_message.len()
    );
}

/// The DAG-CBOR encoding of the integer `n`.
fn cbor_integer(n: u64) -> Vec<u8> {
    ipld_dagcbor::to_vec(&Node::Integer(i128::from(n))).expect("an integer encodes")
}

/// A pull of a DAG of `leaves` small raw leaves under a DAG-CBOR root, paused by its receiver
/// at block `pause_at` and restarted with the received count: what the restart's graphsync
/// request carried.
async fn restart_after(leaves: usize, pause_at: u64) -> Restart {
    let (root, blocks) = dag(leaves);
    let sender_store = Arc::new(InMemoryBlockstore::<64>::new());
    for (cid, bytes) in &blocks {
        sender_store
            .put_keyed(cid, bytes)
            .await
            .expect("in-memory put");
    }
    let mut sender_swarm = memory_swarm();
    let mut receiver_swarm = memory_swarm();
    connect(&mut sender_swarm, &mut receiver_swarm).await;
    let sender_peer = *sender_swarm.local_peer_id();
    let receiver_peer = *receiver_swarm.local_peer_id();
    let sender_node = GraphsyncNode::spawn(sender_swarm.behaviour(), sender_store, node_config())
        .expect("the node starts");
    let receiver_node = GraphsyncNode::spawn(
        receiver_swarm.behaviour(),
        Arc::new(InMemoryBlockstore::<64>::new()),
        node_config(),
    )
    .expect("the node starts");
    let _swarms = [drive(sender_swarm), drive(receiver_swarm)];
    let sender = GraphsyncTransport::new(sender_node.clone(), sender_peer, Default::default());
    let receiver = GraphsyncTransport::new(receiver_node, receiver_peer, Default::default());
    let script = Script {
        pause_received_at: Some(pause_at),
        ..Script::default()
    };
    let sender_log = Arc::new(Recorder::new(script.clone()));
    let receiver_log = Arc::new(Recorder::new(script));
    sender
        .set_events_handler(Arc::clone(&sender_log) as Arc<dyn EventsHandler>)
        .expect("first handler");
    receiver
        .set_events_handler(Arc::clone(&receiver_log) as Arc<dyn EventsHandler>)
        .expect("first handler");
    let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
    let sink = Arc::clone(&requests);
    let _hook = sender_node.register_incoming_request_hook(move |_, request, _| {
        sink.lock().expect("not poisoned").push(request.clone());
    });

    // A pull: the receiver initiates.
    let id = TransferId(7);
    let channel = ChannelId::new(dt_peer(&receiver_peer), dt_peer(&sender_peer), id);
    let selector = Selector::explore_all_recursively().to_node();
    let open = |message: Message| {
        OpenChannel::new(
            dt_peer(&sender_peer),
            channel.clone(),
            root,
            selector.clone(),
            message,
        )
    };
    let first = new_request(
        id,
        true,
        "FakeDTType".into(),
        Node::Null,
        root,
        selector.clone(),
    );
    bounded("the open", receiver.open_channel(open(first.into())))
        .await
        .expect("the request goes out");
    receiver_log
        .wait("restart_size", "the paused block", |events| {
            events
                .iter()
                .any(|e| e.block(Kind::Received).is_some_and(|b| b.index == pause_at))
        })
        .await
        .expect("blocks arrive");
    // What a manager would count (Go's ReceivedCidsTotal): the highest index received.
    let received = receiver_log
        .data(Kind::Received)
        .iter()
        .map(|block| block.index)
        .max()
        .unwrap_or(0);

    let restart = restart_request(
        id,
        true,
        "FakeDTType".into(),
        Node::Null,
        root,
        selector.clone(),
    );
    bounded(
        "the restart",
        receiver.open_channel(open(restart.into()).with_skip_blocks(received)),
    )
    .await
    .expect("the restart goes out");
    for log in [&receiver_log, &sender_log] {
        log.wait("restart_size", "a completion", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(_, Ok(()))))
        })
        .await
        .expect("both sides complete");
    }
    // Blocks the restart skipped are loaded from the receiver's own store (not unique).
    let over_the_wire = receiver_log
        .data(Kind::Received)
        .iter()
        .filter(|block| block.unique)
        .count();
    assert_eq!(
        over_the_wire,
        blocks.len(),
        "every block came over the wire once"
    );

    let restarts: Vec<Request> = requests
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|request| {
            request
                .extensions
                .contains(extension::DO_NOT_SEND_FIRST_BLOCKS)
        })
        .cloned()
        .collect();
    assert_eq!(restarts.len(), 1, "one graphsync request restarts");
    let request = &restarts[0];
    let value = |name: &str| {
        let node = request
            .extensions
            .get(name)
            .flatten()
            .unwrap_or_else(|| panic!("extension {name} has a value"));
        ipld_dagcbor::to_vec(node).expect("the value encodes")
    };
    let dt_message = value(DATA_TRANSFER);
    let decoded = datatransfer_message::decode(&dt_message).expect("the message decodes");
    assert!(
        decoded.as_request().is_some_and(|r| r.is_restart()),
        "the restart request rides in the graphsync request"
    );
    let message = graphsync::Message {
        requests: vec![request.clone()],
        ..graphsync::Message::new()
    };
    Restart {
        skip: received,
        dt_message,
        skip_value: value(extension::DO_NOT_SEND_FIRST_BLOCKS),
        graphsync_message: graphsync::codec::v2::to_vec(&message).expect("the request encodes"),
    }
}

/// A DAG-CBOR root listing `leaves` raw leaves of a few bytes, root first.
fn dag(leaves: usize) -> (Cid, Vec<(Cid, Vec<u8>)>) {
    let mut blocks = Vec::with_capacity(leaves + 1);
    let mut links = Vec::with_capacity(leaves);
    for leaf in 0..leaves {
        let bytes = format!("leaf {leaf}").into_bytes();
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&bytes));
        links.push(Node::Link(cid));
        blocks.push((cid, bytes));
    }
    let root_bytes = ipld_dagcbor::to_vec(&Node::List(links)).expect("the root encodes");
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_bytes));
    blocks.insert(0, (root, root_bytes));
    (root, blocks)
}
