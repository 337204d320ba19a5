//! The transport's bounds and refusals: the channel limit on both sides, and a handler that
//! refuses `on_channel_opened`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_graphsync::{Config, dt_peer};
use datatransfer_message::{
    ChannelId, Message, MessageType, Request, Response, TransferId, new_request, new_response,
    voucher_result_response,
};
use datatransfer_transport::conformance::{Kind, Opening, Recorded, Recorder, Script};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_answered_with_a_rejection_fails_as_rejected() {
    let (root, store) = one_block().await;
    let (sender, receiver) = sides_with(
        store,
        Arc::new(InMemoryBlockstore::new()),
        Config::default(),
    )
    .await;
    let hold = Script {
        opening: Opening::Hold,
        ..Script::default()
    };
    let sender_log = Arc::new(Recorder::new(hold));
    let receiver_log = Arc::new(Recorder::new(Script::default()));
    sender
        .transport
        .set_events_handler(sender_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    receiver
        .transport
        .set_events_handler(receiver_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    let open = pull(&receiver.peer, &sender.peer, 6, root);
    receiver
        .transport
        .open_channel(open.clone())
        .await
        .expect("the request goes out");
    bounded(
        "the held request",
        sender_log.wait("bounds", "the request", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestReceived(..)))
        }),
    )
    .await
    .expect("the sender hears the request");
    let reject = new_response(TransferId(6), false, false, "".into(), None);
    sender
        .transport
        .attach(open.channel.clone(), Message::from(reject))
        .await
        .expect("the rejection goes out");
    bounded(
        "the failure",
        receiver_log.wait("bounds", "a failed completion", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(_, Err(_))))
        }),
    )
    .await
    .expect("the receiver fails");
    let events = receiver_log.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Recorded::ResponseReceived(_, r) if !r.accepted())),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e,
            Recorded::Completed(_, Err(reason)) if *reason == DataError::Rejected.to_string())),
        "{events:?}"
    );
    assert!(
        receiver_log.data(Kind::Received).is_empty(),
        "no data moved"
    );
    assert!(
        !sender_log.has_completion(),
        "the sender reports nothing more"
    );
}

/// A sender's handler that, at queued block 2, tells the test and waits for it before
/// answering a pause (as a manager whose owner resumes right after seeing the call).
struct ResumedWhileRunning {
    log: Recorder,
    reached: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    go_on: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl EventsHandler for ResumedWhileRunning {
    fn on_channel_opened(&self, c: &ChannelId) -> Result<(), HandlerError> {
        self.log.on_channel_opened(c)
    }

    fn on_response_received(&self, c: &ChannelId, r: Response) -> Result<Flow, HandlerError> {
        self.log.on_response_received(c, r)
    }

    fn on_request_received(&self, c: &ChannelId, r: Request) -> RequestAnswer {
        self.log.on_request_received(c, r)
    }

    fn on_data_received(&self, c: &ChannelId, b: BlockInfo) -> Result<Flow, HandlerError> {
        self.log.on_data_received(c, b)
    }

    fn on_data_queued(&self, c: &ChannelId, b: BlockInfo) -> Result<QueuedAnswer, HandlerError> {
        let answer = self.log.on_data_queued(c, b)?;
        if b.index == 2 {
            let _ = self.reached.lock().expect("not poisoned").send(());
            // Test only: hold the driver until the test has resumed (bounded).
            let _ = self
                .go_on
                .lock()
                .expect("not poisoned")
                .recv_timeout(Duration::from_secs(5));
            return Ok(QueuedAnswer::pause());
        }
        Ok(answer)
    }

    fn on_data_sent(&self, c: &ChannelId, b: BlockInfo) {
        self.log.on_data_sent(c, b);
    }

    fn on_transfer_queued(&self, c: &ChannelId) {
        self.log.on_transfer_queued(c);
    }

    fn on_channel_completed(&self, c: &ChannelId, r: Result<(), DataError>) {
        self.log.on_channel_completed(c, r);
    }

    fn on_request_cancelled(&self, c: &ChannelId, e: DataError) {
        self.log.on_request_cancelled(c, e);
    }

    fn on_request_disconnected(&self, c: &ChannelId, e: DataError) {
        self.log.on_request_disconnected(c, e);
    }

    fn on_send_data_error(&self, c: &ChannelId, e: DataError) {
        self.log.on_send_data_error(c, e);
    }

    fn on_receive_data_error(&self, c: &ChannelId, e: DataError) {
        self.log.on_receive_data_error(c, e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_while_the_pausing_handler_runs_voids_its_pause() {
    let bytes: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 8]).collect();
    let leaves: Vec<Cid> = bytes
        .iter()
        .map(|b| Cid::new_v1(0x55, Code::Sha2_256.digest(b)))
        .collect();
    let root_bytes = ipld_dagcbor::to_vec(&Node::List(
        leaves.iter().copied().map(Node::Link).collect(),
    ))
    .expect("encodes");
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_bytes));
    let store = Arc::new(InMemoryBlockstore::new());
    store.put_keyed(&root, &root_bytes).await.expect("put");
    for (cid, b) in leaves.iter().zip(&bytes) {
        store.put_keyed(cid, b).await.expect("put");
    }
    let (sender, receiver) = sides_with(
        store,
        Arc::new(InMemoryBlockstore::new()),
        Config::default(),
    )
    .await;
    let (reached_tx, reached) = std::sync::mpsc::channel();
    let (go_on, go_on_rx) = std::sync::mpsc::channel();
    let sender_handler = Arc::new(ResumedWhileRunning {
        log: Recorder::new(Script::default()),
        reached: std::sync::Mutex::new(reached_tx),
        go_on: std::sync::Mutex::new(go_on_rx),
    });
    let receiver_log = Arc::new(Recorder::new(Script::default()));
    sender
        .transport
        .set_events_handler(sender_handler.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    receiver
        .transport
        .set_events_handler(receiver_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    let open = pull(&receiver.peer, &sender.peer, 7, root);
    receiver
        .transport
        .open_channel(open.clone())
        .await
        .expect("the request goes out");
    bounded(
        "the handler at block 2",
        tokio::task::spawn_blocking(move || reached.recv_timeout(Duration::from_secs(10))),
    )
    .await
    .expect("joined")
    .expect("the handler ran");
    let resume = voucher_result_response(TransferId(7), true, false, "".into(), None);
    sender
        .transport
        .resume_channel(open.channel.clone(), Message::from(resume))
        .await
        .expect("a resume during the handler is accepted at once");
    go_on.send(()).expect("the handler waits");
    for log in [&receiver_log, &sender_handler.log] {
        bounded(
            "a completion",
            log.wait("bounds", "a completion", |events| {
                events
                    .iter()
                    .any(|e| matches!(e, Recorded::Completed(_, Ok(()))))
            }),
        )
        .await
        .expect("the pause was voided: both sides complete");
    }
    assert!(
        receiver_log.events().iter().any(|e| matches!(e,
            Recorded::ResponseReceived(_, r)
                if r.message_type() == MessageType::VoucherResult && !r.is_paused())),
        "the resume's message reached the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_channels_do_not_fill_the_senders_table() {
    let (root, store) = one_block().await;
    let config = Config::default().with_max_channels(1);
    let (sender, receiver) = sides_with(store, Arc::new(InMemoryBlockstore::new()), config).await;
    let reject = Script {
        opening: Opening::Reject,
        ..Script::default()
    };
    let sender_log = Arc::new(Recorder::new(reject));
    let receiver_log = Arc::new(Recorder::new(Script::default()));
    sender
        .transport
        .set_events_handler(sender_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    receiver
        .transport
        .set_events_handler(receiver_log.clone() as Arc<dyn EventsHandler>)
        .expect("first");
    for id in 1..=3u64 {
        let open = pull(&receiver.peer, &sender.peer, id, root);
        receiver
            .transport
            .open_channel(open.clone())
            .await
            .expect("the request goes out");
        let channel = open.channel.clone();
        bounded(
            "the rejection",
            receiver_log.wait("bounds", "a rejected completion", move |events| {
                events.iter().any(|e| {
                    matches!(e, Recorded::Completed(c, Err(reason))
                        if *c == channel && *reason == DataError::Rejected.to_string())
                })
            }),
        )
        .await
        .expect("each channel is rejected by the handler, not by the limit");
        receiver
            .transport
            .cleanup_channel(open.channel.clone())
            .await;
        assert!(
            sender_log
                .events()
                .iter()
                .any(|e| matches!(e, Recorded::RequestReceived(c, _) if *c == open.channel)),
            "the sender's handler decided channel {id}"
        );
    }
}
