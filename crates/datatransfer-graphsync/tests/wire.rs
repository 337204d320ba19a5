//! What goes on the wire inside graphsync (spec `data-transfer.md` §4.1, §4.3): the
//! data-transfer message bytes in each graphsync extension are checked against the
//! `datatransfer-message` codec, for a pull (what the request carries, what the response
//! carries), a push (the accept rides in the data receiver's request, the sender's responses
//! carry no data-transfer message), a payment request on an outgoing block, and a restart
//! (`graphsync/do-not-send-first-blocks` = the received block count).

mod support;

use std::sync::{Arc, Mutex};

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_graphsync::extension::{DATA_TRANSFER, INCOMING_REQUEST, OUTGOING_BLOCK};
use datatransfer_graphsync::{GraphsyncTransport, dt_peer};
use datatransfer_message::{
    ChannelId, Message, MessageType, TransferId, new_request, new_response, restart_request,
    voucher_result_response,
};
use datatransfer_transport::conformance::{Kind, Recorded, Recorder, Script};
use datatransfer_transport::{EventsHandler, OpenChannel, Transport};
use graphsync::{Extensions, ResponseStatus, extension};
use ipld_dagcbor::{Map, Node};
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};
use support::{Side, bounded, sides};

/// Every extension name a data-transfer peer may write.
const DT_NAMES: [&str; 3] = [DATA_TRANSFER, INCOMING_REQUEST, OUTGOING_BLOCK];

/// A root linking four raw leaves, in traversal order.
struct Dag {
    root: Cid,
    blocks: Vec<(Cid, Vec<u8>)>,
}

impl Dag {
    fn new() -> Self {
        let mut blocks = Vec::new();
        let mut links = Vec::new();
        for i in 0..4u8 {
            let bytes = vec![i; 16 + usize::from(i)];
            let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&bytes));
            links.push(Node::Link(cid));
            blocks.push((cid, bytes));
        }
        let root_node = Node::Map(Map::new().with("links", Node::List(links)));
        let root_bytes = ipld_dagcbor::to_vec(&root_node).expect("the root encodes");
        let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_bytes));
        blocks.insert(0, (root, root_bytes));
        Dag { root, blocks }
    }

    fn selector() -> Node {
        Selector::explore_all_recursively().to_node()
    }

    async fn store(&self) -> Arc<InMemoryBlockstore<64>> {
        let store = Arc::new(InMemoryBlockstore::new());
        for (cid, bytes) in &self.blocks {
            store.put_keyed(cid, bytes).await.expect("in-memory put");
        }
        store
    }
}

/// One graphsync message as a hook saw it: a response's status (none for a request) and the
/// extensions.
type Entry = (Option<ResponseStatus>, Extensions);

/// What one graphsync hook saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Entry>>>);

impl Seen {
    fn push(&self, status: Option<ResponseStatus>, extensions: Extensions) {
        self.0
            .lock()
            .expect("not poisoned")
            .push((status, extensions));
    }

    fn all(&self) -> Vec<Entry> {
        self.0.lock().expect("not poisoned").clone()
    }

    /// Waits until `done` holds for what was seen, and returns it.
    async fn until(&self, done: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
        bounded("a recorded graphsync message", async {
            loop {
                let all = self.all();
                if done(&all) {
                    return all;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
    }
}

/// Records every graphsync request the data sender receives, after the transport's hook.
fn record_requests(side: &Side) -> Seen {
    let seen = Seen::default();
    let sink = seen.clone();
    let _keep = side
        .node
        .register_incoming_request_hook(move |_, request, _| {
            sink.push(None, request.extensions.clone());
        });
    seen
}

/// Records every graphsync response entry the data receiver gets.
fn record_responses(side: &Side) -> Seen {
    let seen = Seen::default();
    let sink = seen.clone();
    let _keep = side
        .node
        .register_incoming_response_hook(move |_, response, _| {
            sink.push(Some(response.status), response.extensions.clone());
        });
    seen
}

/// The data-transfer extension names present.
fn dt_names(extensions: &Extensions) -> Vec<&'static str> {
    DT_NAMES
        .into_iter()
        .filter(|name| extensions.contains(name))
        .collect()
}

/// The DAG-CBOR bytes of the extension `name`, which must be present.
fn bytes_of(extensions: &Extensions, name: &str) -> Vec<u8> {
    let node = extensions
        .get(name)
        .flatten()
        .unwrap_or_else(|| panic!("extension {name} is present with a value"));
    ipld_dagcbor::to_vec(node).expect("the extension value encodes")
}

/// Asserts that the extension `name` holds exactly the codec's bytes of `message`.
fn assert_carries(extensions: &Extensions, name: &str, message: &Message) {
    let bytes = bytes_of(extensions, name);
    assert_eq!(
        bytes,
        datatransfer_message::to_vec(message).expect("the message encodes"),
        "extension {name}"
    );
    assert_eq!(
        &datatransfer_message::decode(&bytes).expect("the bytes decode"),
        message
    );
}

struct World {
    sender: Side,
    receiver: Side,
    sender_log: Arc<Recorder>,
    receiver_log: Arc<Recorder>,
    dag: Dag,
}

impl World {
    async fn new(script: Script) -> Self {
        Self::with_receiver_holding(script, 0).await
    }

    /// A world whose data receiver already holds the first `held` blocks of the DAG.
    async fn with_receiver_holding(script: Script, held: usize) -> Self {
        let dag = Dag::new();
        let receiver_store = Arc::new(InMemoryBlockstore::new());
        for (cid, bytes) in dag.blocks.iter().take(held) {
            receiver_store
                .put_keyed(cid, bytes)
                .await
                .expect("in-memory put");
        }
        let (sender, receiver) = sides(dag.store().await, receiver_store).await;
        let sender_log = Arc::new(Recorder::new(script.clone()));
        let receiver_log = Arc::new(Recorder::new(script));
        sender
            .transport
            .set_events_handler(Arc::clone(&sender_log) as Arc<dyn EventsHandler>)
            .expect("first handler");
        receiver
            .transport
            .set_events_handler(Arc::clone(&receiver_log) as Arc<dyn EventsHandler>)
            .expect("first handler");
        World {
            sender,
            receiver,
            sender_log,
            receiver_log,
            dag,
        }
    }

    fn open(&self, channel: &ChannelId, message: Message) -> OpenChannel {
        OpenChannel::new(
            dt_peer(&self.sender.peer),
            channel.clone(),
            self.dag.root,
            Dag::selector(),
            message,
        )
    }

    fn receiver_transport(&self) -> &GraphsyncTransport {
        &self.receiver.transport
    }

    async fn completed_both(&self) {
        for log in [&self.receiver_log, &self.sender_log] {
            log.wait("wire", "a completion", |events| {
                events
                    .iter()
                    .any(|e| matches!(e, Recorded::Completed(_, Ok(()))))
            })
            .await
            .expect("both sides complete");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_rides_in_the_request_and_the_accept_in_the_response() {
    let world = World::new(Script::default()).await;
    let requests = record_requests(&world.sender);
    let responses = record_responses(&world.receiver);
    // A pull: the receiver is the initiator.
    let channel = ChannelId::new(
        dt_peer(&world.receiver.peer),
        dt_peer(&world.sender.peer),
        TransferId(11),
    );
    let request = Message::from(new_request(
        TransferId(11),
        true,
        "FakeDTType".into(),
        Node::text("voucher"),
        world.dag.root,
        Dag::selector(),
    ));
    bounded(
        "the open",
        world
            .receiver_transport()
            .open_channel(world.open(&channel, request.clone())),
    )
    .await
    .expect("the request goes out");
    bounded("both completions", world.completed_both()).await;

    let requests = requests.all();
    assert_eq!(requests.len(), 1, "one graphsync request");
    let (_, ext) = &requests[0];
    assert_eq!(
        dt_names(ext),
        [DATA_TRANSFER],
        "the request carries only …/1.1"
    );
    assert_carries(ext, DATA_TRANSFER, &request);
    assert!(
        !ext.contains(extension::DO_NOT_SEND_FIRST_BLOCKS),
        "a new request skips nothing"
    );

    // The accept rides in the first response, under both names (Go's incomingReqExtensions).
    let accept = Message::from(new_response(TransferId(11), true, false, "".into(), None));
    let carrying: Vec<_> = responses
        .all()
        .into_iter()
        .filter(|(_, ext)| !dt_names(ext).is_empty())
        .collect();
    assert_eq!(
        carrying.len(),
        1,
        "one response carries a data-transfer message"
    );
    let (_, ext) = &carrying[0];
    assert_eq!(dt_names(ext), [DATA_TRANSFER, INCOMING_REQUEST]);
    assert_carries(ext, INCOMING_REQUEST, &accept);
    assert_carries(ext, DATA_TRANSFER, &accept);
    // The receiver's handler saw it once (the first present name wins).
    let accepts = world
        .receiver_log
        .events()
        .into_iter()
        .filter(|e| matches!(e, Recorded::ResponseReceived(..)))
        .count();
    assert_eq!(accepts, 1);
    assert_eq!(
        world.receiver_log.data(Kind::Received).len(),
        world.dag.blocks.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_accept_rides_in_the_receivers_request_and_responses_carry_nothing() {
    let world = World::new(Script::default()).await;
    let requests = record_requests(&world.sender);
    let responses = record_responses(&world.receiver);
    // A push: the sender initiated; the receiver (responder) opens the exchange with its accept.
    let channel = ChannelId::new(
        dt_peer(&world.sender.peer),
        dt_peer(&world.receiver.peer),
        TransferId(12),
    );
    let accept = Message::from(new_response(TransferId(12), true, false, "".into(), None));
    bounded(
        "the open",
        world
            .receiver_transport()
            .open_channel(world.open(&channel, accept.clone())),
    )
    .await
    .expect("the request goes out");
    bounded("both completions", world.completed_both()).await;

    let requests = requests.all();
    assert_eq!(requests.len(), 1);
    let (_, ext) = &requests[0];
    assert_eq!(dt_names(ext), [DATA_TRANSFER]);
    assert_carries(ext, DATA_TRANSFER, &accept);
    for (status, ext) in responses.all() {
        assert!(
            dt_names(&ext).is_empty(),
            "response {status:?} carries {ext:?}"
        );
    }
    // Both sides name the channel as Go derives it: the sender initiated.
    let sender_events = world.sender_log.events();
    assert!(
        sender_events.iter().any(
            |e| matches!(e, Recorded::ResponseReceived(c, r) if *c == channel && r.accepted())
        )
    );
    assert!(
        sender_events
            .iter()
            .any(|e| matches!(e, Recorded::TransferQueued(c) if *c == channel))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_request_rides_on_the_outgoing_block_under_both_names() {
    // The sender's handler pauses at its second block with a voucher result.
    let script = Script {
        pause_queued_at: Some(2),
        ..Script::default()
    };
    let world = World::new(script).await;
    let responses = record_responses(&world.receiver);
    let channel = ChannelId::new(
        dt_peer(&world.receiver.peer),
        dt_peer(&world.sender.peer),
        TransferId(13),
    );
    let request = Message::from(new_request(
        TransferId(13),
        true,
        "FakeDTType".into(),
        Node::Null,
        world.dag.root,
        Dag::selector(),
    ));
    world
        .receiver_transport()
        .open_channel(world.open(&channel, request))
        .await
        .expect("the request goes out");
    world
        .receiver_log
        .wait("wire", "the payment request", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::ResponseReceived(_, r) if r.message_type() == MessageType::VoucherResult))
        })
        .await
        .expect("the payment request arrives");
    let payment = Message::from(voucher_result_response(
        TransferId(13),
        true,
        true,
        "".into(),
        None,
    ));
    // The recording hook runs after the transport's, in the same driver turn.
    let carrying = responses
        .until(|all| all.iter().any(|(_, ext)| ext.contains(OUTGOING_BLOCK)))
        .await;
    let carrying: Vec<_> = carrying
        .into_iter()
        .filter(|(_, ext)| ext.contains(OUTGOING_BLOCK))
        .collect();
    assert_eq!(carrying.len(), 1);
    let (status, ext) = &carrying[0];
    assert_eq!(dt_names(ext), [DATA_TRANSFER, OUTGOING_BLOCK]);
    assert_carries(ext, OUTGOING_BLOCK, &payment);
    assert_carries(ext, DATA_TRANSFER, &payment);
    assert_eq!(
        *status,
        Some(ResponseStatus::RequestPaused),
        "the pause joins the block"
    );
    // Go's quirk (spec §4.2 item 8): read once through …/1.1 and once through outgoing-block.
    let results = world
        .receiver_log
        .events()
        .into_iter()
        .filter(|e| matches!(e, Recorded::ResponseReceived(_, r) if r.message_type() == MessageType::VoucherResult))
        .count();
    assert_eq!(results, 2);

    // The sender's resume rides in its next response under …/1.1.
    let resume = Message::from(voucher_result_response(
        TransferId(13),
        true,
        false,
        "".into(),
        None,
    ));
    world
        .sender
        .transport
        .resume_channel(channel.clone(), resume.clone())
        .await
        .expect("the sender resumes");
    bounded("both completions", world.completed_both()).await;
    let resumed: Vec<_> = responses
        .all()
        .into_iter()
        .filter(|(_, ext)| {
            ext.get(DATA_TRANSFER)
                .flatten()
                .and_then(|node| Message::from_node(node).ok())
                .is_some_and(|m| m == resume)
        })
        .collect();
    assert_eq!(resumed.len(), 1);
    assert_eq!(dt_names(&resumed[0].1), [DATA_TRANSFER]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_carries_do_not_send_first_blocks_with_the_received_count() {
    const PAUSE_AT: u64 = 3;
    let script = Script {
        pause_received_at: Some(PAUSE_AT),
        ..Script::default()
    };
    let world = World::new(script).await;
    let requests = record_requests(&world.sender);
    let channel = ChannelId::new(
        dt_peer(&world.receiver.peer),
        dt_peer(&world.sender.peer),
        TransferId(14),
    );
    let first = Message::from(new_request(
        TransferId(14),
        true,
        "FakeDTType".into(),
        Node::Null,
        world.dag.root,
        Dag::selector(),
    ));
    world
        .receiver_transport()
        .open_channel(world.open(&channel, first))
        .await
        .expect("the request goes out");
    world
        .receiver_log
        .wait("wire", "the paused block", |events| {
            events
                .iter()
                .any(|e| e.block(Kind::Received).is_some_and(|b| b.index == PAUSE_AT))
        })
        .await
        .expect("blocks arrive");
    // What a manager would count: the blocks received so far.
    let received = world.receiver_log.data(Kind::Received).len() as u64;
    assert_eq!(received, PAUSE_AT);
    let restart = Message::from(restart_request(
        TransferId(14),
        true,
        "FakeDTType".into(),
        Node::Null,
        world.dag.root,
        Dag::selector(),
    ));
    world
        .receiver_transport()
        .open_channel(
            world
                .open(&channel, restart.clone())
                .with_skip_blocks(received),
        )
        .await
        .expect("the restart goes out");
    bounded("both completions", world.completed_both()).await;

    let restarts: Vec<_> = requests
        .all()
        .into_iter()
        .filter(|(_, ext)| ext.contains(extension::DO_NOT_SEND_FIRST_BLOCKS))
        .collect();
    assert_eq!(restarts.len(), 1, "one graphsync request restarts");
    let (_, ext) = &restarts[0];
    assert_eq!(dt_names(ext), [DATA_TRANSFER]);
    assert_carries(ext, DATA_TRANSFER, &restart);
    let skip = ext
        .do_not_send_first_blocks()
        .expect("present")
        .expect("an integer");
    assert_eq!(u64::try_from(skip), Ok(received));
    // The sender sent only what came after the skipped blocks. (Counted from the restart
    // request: the first exchange may have sent a block more before the receiver's pause
    // reached it, reported after the mark.)
    let events = world.sender_log.events();
    let start = events
        .iter()
        .position(|e| matches!(e, Recorded::RequestReceived(_, r) if r.is_restart()))
        .expect("the sender got the restart");
    let sent: Vec<u64> = events[start..]
        .iter()
        .filter_map(|e| e.block(Kind::Sent))
        .map(|b| b.index)
        .collect();
    assert_eq!(
        sent,
        ((received + 1)..=world.dag.blocks.len() as u64).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_zero_blocks_still_sends_the_extension() {
    let world = World::new(Script::default()).await;
    let requests = record_requests(&world.sender);
    let channel = ChannelId::new(
        dt_peer(&world.receiver.peer),
        dt_peer(&world.sender.peer),
        TransferId(15),
    );
    let restart = Message::from(restart_request(
        TransferId(15),
        true,
        "FakeDTType".into(),
        Node::Null,
        world.dag.root,
        Dag::selector(),
    ));
    world
        .receiver_transport()
        .open_channel(world.open(&channel, restart).with_skip_blocks(0))
        .await
        .expect("the restart goes out");
    bounded("both completions", world.completed_both()).await;
    let requests = requests.all();
    assert_eq!(requests.len(), 1);
    let skip = requests[0]
        .1
        .do_not_send_first_blocks()
        .expect("present even when 0")
        .expect("an integer");
    assert_eq!(skip, 0);
}

/// A restart whose `do-not-send-first-blocks` covers blocks this sender never reported sent
/// (their writes were not confirmed before the connection went, or the sender's process
/// started again) reports them sent once the restarted response passes them, with their
/// sizes, so that the sender's byte and block totals end exact; only the later blocks cross
/// the wire. (Before, a withheld block was never reported and the totals ended short.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reports_withheld_blocks_the_sender_never_reported() {
    const SKIP: u64 = 3;
    let world = World::with_receiver_holding(Script::default(), SKIP as usize).await;
    let channel = ChannelId::new(
        dt_peer(&world.receiver.peer),
        dt_peer(&world.sender.peer),
        TransferId(16),
    );
    let restart = Message::from(restart_request(
        TransferId(16),
        true,
        "FakeDTType".into(),
        Node::Null,
        world.dag.root,
        Dag::selector(),
    ));
    world
        .receiver_transport()
        .open_channel(world.open(&channel, restart).with_skip_blocks(SKIP))
        .await
        .expect("the restart goes out");
    bounded("both completions", world.completed_both()).await;

    // Every block is reported sent once, in order, with its size: the withheld ones too,
    // marked as such.
    let sent: Vec<(u64, Cid, u64, bool, bool)> = world
        .sender_log
        .data(Kind::Sent)
        .iter()
        .map(|b| (b.index, b.link, b.size, b.unique, b.withheld))
        .collect();
    let expected: Vec<(u64, Cid, u64, bool, bool)> = world
        .dag
        .blocks
        .iter()
        .enumerate()
        .map(|(i, (cid, bytes))| {
            let index = i as u64 + 1;
            (index, *cid, bytes.len() as u64, true, index <= SKIP)
        })
        .collect();
    assert_eq!(sent, expected);
    // Only the blocks after the skipped ones crossed the wire.
    let wire: u64 = world.dag.blocks[SKIP as usize..]
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    let stats = world.sender.node.stats().await.expect("the node runs");
    assert_eq!(
        (stats.blocks_sent, stats.bytes_sent),
        (world.dag.blocks.len() as u64 - SKIP, wire)
    );
    // The receiver loaded the skipped blocks locally: not unique.
    let received: Vec<(u64, bool)> = world
        .receiver_log
        .data(Kind::Received)
        .iter()
        .map(|b| (b.index, b.unique))
        .collect();
    assert_eq!(
        received,
        (1..=world.dag.blocks.len() as u64)
            .map(|i| (i, i > SKIP))
            .collect::<Vec<_>>()
    );
}
