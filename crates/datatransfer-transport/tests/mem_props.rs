//! Property: over random DAG shapes (with repeated leaves and repeated children) and random
//! restart skips, `MemTransport` reports exactly the traversal's loads, in order, with the
//! unique flags graphsync would give, and the sender sends exactly the unique ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_message::{ChannelId, Message, PeerId, TransferId, restart_request};
use datatransfer_transport::conformance::{Kind, Recorded, Recorder, Script};
use datatransfer_transport::mem::{Config, MemHub};
use datatransfer_transport::{EventsHandler, OpenChannel, Transport};
use ipld_dagcbor::{Map, Node};
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};
use proptest::collection::vec;
use proptest::prelude::*;

type Blocks = InMemoryBlockstore<64>;

fn cid_of(codec: u64, bytes: &[u8]) -> Cid {
    Cid::new_v1(codec, Code::Sha2_256.digest(bytes))
}

/// The blocks of a root listing children, each child listing raw leaves by number.
fn build(shape: &[Vec<u8>]) -> Result<(Cid, HashMap<Cid, Vec<u8>>), String> {
    let mut blocks = HashMap::new();
    let mut children = Vec::new();
    for leaves in shape {
        let links = leaves
            .iter()
            .map(|leaf| {
                let bytes = vec![*leaf; 4];
                let cid = cid_of(0x55, &bytes);
                blocks.insert(cid, bytes);
                Node::Link(cid)
            })
            .collect();
        let child = Node::Map(Map::new().with("l", Node::List(links)));
        let bytes = ipld_dagcbor::to_vec(&child).map_err(|e| e.to_string())?;
        let cid = cid_of(0x71, &bytes);
        blocks.insert(cid, bytes);
        children.push(Node::Link(cid));
    }
    let bytes = ipld_dagcbor::to_vec(&Node::List(children)).map_err(|e| e.to_string())?;
    let root = cid_of(0x71, &bytes);
    blocks.insert(root, bytes);
    Ok((root, blocks))
}

async fn transfer(shape: Vec<Vec<u8>>, skip: u64) -> Result<(), TestCaseError> {
    let fail = |e: String| TestCaseError::fail(e);
    let (root, blocks) = build(&shape).map_err(fail)?;
    let selector = Selector::explore_all_recursively();
    let config = ipld_selector::Config::default().with_max_recursion_depth(None);
    let loads: Vec<Cid> =
        ipld_selector::traverse(root, &selector, config, |cid| blocks.get(cid).cloned())
            .map_err(|e| fail(e.to_string()))?
            .loads
            .iter()
            .map(|load| load.cid)
            .collect();
    let mut seen = HashSet::new();
    let expected: Vec<(u64, Cid, bool)> = (1..)
        .zip(&loads)
        .map(|(index, cid)| (index, *cid, seen.insert(*cid) && index > skip))
        .collect();

    let hub = MemHub::new(Config::default(), |task| {
        tokio::spawn(task);
    });
    let sender_store = Arc::new(Blocks::new());
    for (cid, bytes) in &blocks {
        sender_store
            .put_keyed(cid, bytes)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let (sender_peer, receiver_peer) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
    let hub_error = |e: datatransfer_transport::mem::HubError| fail(e.to_string());
    let (sender, _) = hub
        .add_peer(sender_peer.clone(), sender_store)
        .map_err(hub_error)?;
    let (receiver, _) = hub
        .add_peer(receiver_peer.clone(), Arc::new(Blocks::new()))
        .map_err(hub_error)?;
    let (sender_log, receiver_log) = (
        Arc::new(Recorder::new(Script::default())),
        Arc::new(Recorder::new(Script::default())),
    );
    let transport_error = |e: datatransfer_transport::TransportError| fail(e.to_string());
    sender
        .set_events_handler(Arc::clone(&sender_log) as Arc<dyn EventsHandler>)
        .map_err(transport_error)?;
    receiver
        .set_events_handler(Arc::clone(&receiver_log) as Arc<dyn EventsHandler>)
        .map_err(transport_error)?;
    let channel = ChannelId::new(receiver_peer, sender_peer.clone(), TransferId(1));
    let request = restart_request(
        TransferId(1),
        true,
        "".into(),
        Node::Null,
        root,
        selector.to_node(),
    );
    let open = OpenChannel::new(
        sender_peer,
        channel,
        root,
        selector.to_node(),
        Message::from(request),
    )
    .with_skip_blocks(skip);
    receiver.open_channel(open).await.map_err(transport_error)?;
    for log in [&receiver_log, &sender_log] {
        log.wait("mem_props", "a completion", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(_, Ok(()))))
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
    }
    let received: Vec<(u64, Cid, bool)> = receiver_log
        .data(Kind::Received)
        .iter()
        .map(|b| (b.index, b.link, b.unique))
        .collect();
    prop_assert_eq!(&received, &expected);
    let sent: Vec<(u64, Cid, bool)> = sender_log
        .data(Kind::Sent)
        .iter()
        .map(|b| (b.index, b.link, b.unique))
        .collect();
    let unique: Vec<(u64, Cid, bool)> = expected.into_iter().filter(|(_, _, u)| *u).collect();
    prop_assert_eq!(sent, unique);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn blocks_follow_the_traversal_with_graphsync_unique_flags(
        shape in vec(vec(0u8..6, 0..4), 1..5),
        skip in 0u64..16,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(transfer(shape, skip))?;
    }
}
