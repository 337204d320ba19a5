//! The transport's bounds and refusals: the channel limit on both sides, and a handler that
//! refuses `on_channel_opened`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_graphsync::{Config, dt_peer};
use datatransfer_message::{ChannelId, Message, Request, Response, TransferId, new_request};
use datatransfer_transport::conformance::{Recorded, Recorder, Script};
use datatransfer_transport::{
    BlockInfo, DataError, EventsHandler, Flow, HandlerError, OpenChannel, QueuedAnswer,
    RequestAnswer, Transport, TransportError,
};
use ipld_dagcbor::Node;
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};
use support::{bounded, sides_with};

/// One raw block, the whole DAG.
async fn one_block() -> (Cid, Arc<InMemoryBlockstore<64>>) {
    let bytes = b"the only block".to_vec();
    let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&bytes));
    let store = Arc::new(InMemoryBlockstore::new());
    store.put_keyed(&cid, &bytes).await.expect("in-memory put");
    (cid, store)
}

fn pull(receiver: &libp2p::PeerId, sender: &libp2p::PeerId, id: u64, root: Cid) -> OpenChannel {
    let channel = ChannelId::new(dt_peer(receiver), dt_peer(sender), TransferId(id));
    let selector = Selector::explore_all_recursively().to_node();
    let request = Message::from(new_request(
        TransferId(id),
        true,
        "FakeDTType".into(),
        Node::Null,
        root,
        selector.clone(),
    ));
    OpenChannel::new(dt_peer(sender), channel, root, selector, request)
}

async fn completed(log: &Recorder, channel: &ChannelId) {
    let channel = channel.clone();
    bounded(
        "a completion",
        log.wait("bounds", "a completion", move |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(c, Ok(())) if *c == channel))
        }),
    )
    .await
    .expect("completes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_beyond_the_channel_limit_are_refused_until_cleanup() {
    let (root, store) = one_block().await;
    let config = Config::default().with_max_channels(1);
    let (sender, receiver) = sides_with(store, Arc::new(InMemoryBlockstore::new()), config).await;
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
    let first = pull(&receiver.peer, &sender.peer, 1, root);
    receiver
        .transport
        .open_channel(first.clone())
        .await
        .expect("the first channel opens");
    completed(&receiver_log, &first.channel).await;
    completed(&sender_log, &first.channel).await;

    let second = pull(&receiver.peer, &sender.peer, 2, root);
    let refused = receiver.transport.open_channel(second.clone()).await;
    assert!(
        matches!(&refused, Err(TransportError::TooManyChannels { limit: 1, channel })
            if *channel == second.channel),
        "{refused:?}"
    );
    // The receiver makes room, but the sender still tracks the first channel: it terminates
    // the request for a second one.
    receiver
        .transport
        .cleanup_channel(first.channel.clone())
        .await;
    receiver
        .transport
        .open_channel(second.clone())
        .await
        .expect("room again on the receiver");
    let channel = second.channel.clone();
    bounded(
        "the failure",
        receiver_log.wait("bounds", "a failed completion", move |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(c, Err(_)) if *c == channel))
        }),
    )
    .await
    .expect("the sender refuses the second channel");
    assert!(
        !sender_log
            .events()
            .iter()
            .any(|e| matches!(e, Recorded::RequestReceived(c, _) if *c == second.channel)),
        "the sender's handler never hears of it"
    );
    // Once the sender forgets the first channel, the second goes through.
    sender
        .transport
        .cleanup_channel(first.channel.clone())
        .await;
    let third = pull(&receiver.peer, &sender.peer, 3, root);
    receiver
        .transport
        .cleanup_channel(second.channel.clone())
        .await;
    receiver
        .transport
        .open_channel(third.clone())
        .await
        .expect("room on both sides");
    completed(&receiver_log, &third.channel).await;
}

/// A recorder whose `on_channel_opened` refuses.
struct Refusing(Recorder);

impl EventsHandler for Refusing {
    fn on_channel_opened(&self, channel: &ChannelId) -> Result<(), HandlerError> {
        self.0.on_channel_opened(channel)?;
        Err(HandlerError::UnknownChannel {
            channel: channel.clone(),
        })
    }

    fn on_response_received(&self, c: &ChannelId, r: Response) -> Result<Flow, HandlerError> {
        self.0.on_response_received(c, r)
    }

    fn on_request_received(&self, c: &ChannelId, r: Request) -> RequestAnswer {
        self.0.on_request_received(c, r)
    }

    fn on_data_received(&self, c: &ChannelId, b: BlockInfo) -> Result<Flow, HandlerError> {
        self.0.on_data_received(c, b)
    }

    fn on_data_queued(&self, c: &ChannelId, b: BlockInfo) -> Result<QueuedAnswer, HandlerError> {
        self.0.on_data_queued(c, b)
    }

    fn on_data_sent(&self, c: &ChannelId, b: BlockInfo) {
        self.0.on_data_sent(c, b);
    }

    fn on_transfer_queued(&self, c: &ChannelId) {
        self.0.on_transfer_queued(c);
    }

    fn on_channel_completed(&self, c: &ChannelId, r: Result<(), DataError>) {
        self.0.on_channel_completed(c, r);
    }

    fn on_request_cancelled(&self, c: &ChannelId, e: DataError) {
        self.0.on_request_cancelled(c, e);
    }

    fn on_request_disconnected(&self, c: &ChannelId, e: DataError) {
        self.0.on_request_disconnected(c, e);
    }

    fn on_send_data_error(&self, c: &ChannelId, e: DataError) {
        self.0.on_send_data_error(c, e);
    }

    fn on_receive_data_error(&self, c: &ChannelId, e: DataError) {
        self.0.on_receive_data_error(c, e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_open_is_cancelled_without_reports() {
    let (root, store) = one_block().await;
    let receiver_store = Arc::new(InMemoryBlockstore::new());
    let (sender, receiver) = sides_with(store, receiver_store.clone(), Config::default()).await;
    let sender_log = Arc::new(Recorder::new(Script::default()));
    let receiver_log = Arc::new(Refusing(Recorder::new(Script::default())));
    sender
        .transport
        .set_events_handler(sender_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    receiver
        .transport
        .set_events_handler(receiver_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    let open = pull(&receiver.peer, &sender.peer, 5, root);
    receiver
        .transport
        .open_channel(open.clone())
        .await
        .expect("open_channel itself succeeds, as Go's");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = receiver_log.0.events();
    assert_eq!(
        events,
        [Recorded::Opened(open.channel.clone())],
        "{events:?}"
    );
    assert_eq!(
        receiver_store.get(&root).await.expect("in-memory get"),
        None,
        "no block was stored"
    );
    let stats = receiver.node.stats().await.expect("the node runs");
    assert_eq!(
        stats.outgoing_requests.active, 0,
        "the request was cancelled"
    );
}
