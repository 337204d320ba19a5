//! `MemHub`, `MemTransport` and `MemNetwork` beyond the conformance suite: the network, the
//! fault injection knobs, and the typed command errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_message::{
    ChannelId, Message, MessageType, PeerId, Request, Response, TransferId, new_request,
    update_request, voucher_result_response,
};
use datatransfer_transport::conformance::{Kind, Recorded, Recorder, Script};
use datatransfer_transport::mem::{Config, HubError, MemHub, MemNetwork, MemTransport};
use datatransfer_transport::{
    BlockInfo, DataError, EventsHandler, Flow, HandlerError, Network, NetworkError, OpenChannel,
    QueuedAnswer, Receiver, RequestAnswer, StoreName, Transport, TransportError,
};
use ipld_dagcbor::Node;
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};
use tokio::sync::mpsc;

type Blocks = InMemoryBlockstore<64>;
type TestResult = Result<(), Box<dyn std::error::Error>>;
type Block = (Cid, Vec<u8>);

const CHECK: &str = "mem";

fn hub(config: Config) -> MemHub<Blocks> {
    MemHub::new(config, |task| {
        tokio::spawn(task);
    })
}

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes(vec![n])
}

/// A root listing `leaves` raw leaves; returns the root and every block.
fn dag(leaves: u8) -> Result<(Cid, Vec<Block>), Box<dyn std::error::Error>> {
    let mut blocks = Vec::new();
    let mut links = Vec::new();
    for leaf in 0..leaves {
        let bytes = vec![leaf; 8];
        let cid = Cid::new_v1(0x55, Code::Sha2_256.digest(&bytes));
        links.push(Node::Link(cid));
        blocks.push((cid, bytes));
    }
    let root_bytes = ipld_dagcbor::to_vec(&Node::List(links))?;
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_bytes));
    blocks.insert(0, (root, root_bytes));
    Ok((root, blocks))
}

/// A sender (peer 1) holding `blocks` and a receiver (peer 2), both with recorders.
struct World {
    hub: MemHub<Blocks>,
    sender: MemTransport<Blocks>,
    receiver: MemTransport<Blocks>,
    sender_log: Arc<Recorder>,
    receiver_log: Arc<Recorder>,
    receiver_store: Arc<Blocks>,
}

async fn world(config: Config, blocks: &[Block]) -> Result<World, Box<dyn std::error::Error>> {
    let hub = hub(config);
    let sender_store = Arc::new(Blocks::new());
    for (cid, bytes) in blocks {
        sender_store.put_keyed(cid, bytes).await?;
    }
    let receiver_store = Arc::new(Blocks::new());
    let (sender, _) = hub.add_peer(peer(1), sender_store)?;
    let (receiver, _) = hub.add_peer(peer(2), Arc::clone(&receiver_store))?;
    let sender_log = Arc::new(Recorder::new(Script::default()));
    let receiver_log = Arc::new(Recorder::new(Script::default()));
    sender.set_events_handler(Arc::clone(&sender_log) as Arc<dyn EventsHandler>)?;
    receiver.set_events_handler(Arc::clone(&receiver_log) as Arc<dyn EventsHandler>)?;
    Ok(World {
        hub,
        sender,
        receiver,
        sender_log,
        receiver_log,
        receiver_store,
    })
}

fn channel(id: u64) -> ChannelId {
    ChannelId::new(peer(2), peer(1), TransferId(id))
}

fn pull(id: u64, root: Cid) -> OpenChannel {
    let selector = Selector::explore_all_recursively().to_node();
    let request = new_request(
        TransferId(id),
        true,
        "FakeDTType".into(),
        Node::Null,
        root,
        selector.clone(),
    );
    OpenChannel::new(peer(1), channel(id), root, selector, Message::from(request))
}

async fn completed(log: &Recorder) -> Result<(), Box<dyn std::error::Error>> {
    log.wait(CHECK, "a completion", |events| {
        events.iter().any(|e| matches!(e, Recorded::Completed(..)))
    })
    .await?;
    Ok(())
}

/// Collects what a network receives.
struct Inbox(mpsc::Sender<(PeerId, Message)>);

impl Receiver for Inbox {
    fn receive_message(&self, from: PeerId, message: Message) {
        let _ = self.0.try_send((from, message));
    }

    fn receive_error(&self, _: NetworkError) {}
}

/// Two peers' networks; the second one's receiver feeds `received`.
struct Nets {
    a: MemNetwork<Blocks>,
    b: MemNetwork<Blocks>,
    received: mpsc::Receiver<(PeerId, Message)>,
}

fn networks(hub: &MemHub<Blocks>) -> Result<Nets, Box<dyn std::error::Error>> {
    let (_, a) = hub.add_peer(peer(1), Arc::new(Blocks::new()))?;
    let (_, b) = hub.add_peer(peer(2), Arc::new(Blocks::new()))?;
    let (inbox, received) = mpsc::channel(64);
    b.set_receiver(Arc::new(Inbox(inbox)))?;
    Ok(Nets { a, b, received })
}

fn update(id: u64) -> Message {
    Message::from(update_request(TransferId(id), false))
}

#[tokio::test]
async fn network_delivers_messages_in_order_with_the_sender() -> TestResult {
    let hub = hub(Config::default());
    let Nets { a, b, mut received } = networks(&hub)?;
    assert_eq!(a.self_peer(), peer(1));
    assert_eq!(b.self_peer(), peer(2));
    for id in 1..=5 {
        a.send_message(peer(2), update(id)).await?;
    }
    for id in 1..=5 {
        let (from, message) = received.recv().await.ok_or("inbox closed")?;
        assert_eq!(from, peer(1));
        assert_eq!(message, update(id));
    }
    a.connect(peer(2)).await?;
    let unknown = a.send_message(peer(9), update(1)).await;
    assert!(matches!(unknown, Err(NetworkError::Disconnected { peer }) if peer == self::peer(9)));
    let again = b.set_receiver(Arc::new(Inbox(mpsc::channel(1).0)));
    assert!(matches!(again, Err(NetworkError::ReceiverAlreadySet)));
    Ok(())
}

#[tokio::test]
async fn dropped_messages_vanish_and_a_partition_refuses_sends() -> TestResult {
    let hub = hub(Config::default());
    let Nets {
        a, mut received, ..
    } = networks(&hub)?;
    hub.drop_messages(&peer(1), &peer(2), true);
    a.send_message(peer(2), update(1)).await?;
    hub.drop_messages(&peer(1), &peer(2), false);
    a.send_message(peer(2), update(2)).await?;
    // The inbox is in order: the first message to arrive is the one sent after the drop.
    let (_, first) = received.recv().await.ok_or("inbox closed")?;
    assert_eq!(first, update(2));

    hub.disconnect(&peer(2), &peer(1));
    assert!(!hub.is_connected(&peer(1), &peer(2)));
    let refused = a.send_message(peer(2), update(3)).await;
    assert!(
        matches!(refused, Err(NetworkError::Disconnected { .. })),
        "{refused:?}"
    );
    assert!(a.connect(peer(2)).await.is_err());
    hub.reconnect(&peer(1), &peer(2));
    a.connect(peer(2)).await?;
    a.send_message(peer(2), update(4)).await?;
    let (_, next) = received.recv().await.ok_or("inbox closed")?;
    assert_eq!(next, update(4));
    Ok(())
}

#[tokio::test]
async fn latency_delays_delivery() -> TestResult {
    let latency = Duration::from_millis(60);
    let hub = hub(Config::default());
    let Nets {
        a, mut received, ..
    } = networks(&hub)?;
    hub.set_latency(latency);
    let start = Instant::now();
    a.send_message(peer(2), update(1)).await?;
    received.recv().await.ok_or("inbox closed")?;
    assert!(start.elapsed() >= latency, "{:?}", start.elapsed());
    Ok(())
}

#[tokio::test]
async fn a_full_inbox_refuses_with_queue_full() -> TestResult {
    // The delivery task holds one message back for 10 s, so the one-slot inbox fills.
    let config = Config::default()
        .with_queues(1, 64)
        .with_latency(Duration::from_secs(10));
    let hub = hub(config);
    let Nets {
        a,
        received: _received,
        ..
    } = networks(&hub)?;
    let mut outcomes = Vec::new();
    for id in 1..=6 {
        outcomes.push(a.send_message(peer(2), update(id)).await);
    }
    assert!(
        outcomes
            .iter()
            .any(|outcome| matches!(outcome, Err(NetworkError::QueueFull { .. }))),
        "{outcomes:?}"
    );
    Ok(())
}

#[tokio::test]
async fn protect_and_unprotect_track_tags() -> TestResult {
    let hub = hub(Config::default());
    let Nets {
        a,
        received: _received,
        ..
    } = networks(&hub)?;
    a.protect(&peer(2), "chan-1");
    a.protect(&peer(2), "chan-2");
    assert_eq!(hub.protections(&peer(1), &peer(2)), ["chan-1", "chan-2"]);
    assert!(a.unprotect(&peer(2), "chan-1"));
    assert!(!a.unprotect(&peer(2), "chan-2"));
    assert!(hub.protections(&peer(1), &peer(2)).is_empty());
    assert!(!a.unprotect(&peer(2), "never"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_credits_step_the_transfer() -> TestResult {
    let (root, blocks) = dag(6)?;
    let w = world(Config::default(), &blocks).await?;
    w.hub.limit_blocks(Some(2));
    w.receiver.open_channel(pull(1, root)).await?;
    let blocks_seen = |n: usize| {
        move |events: &[Recorded]| {
            events
                .iter()
                .filter(|e| e.block(Kind::Received).is_some())
                .count()
                >= n
        }
    };
    w.receiver_log
        .wait(CHECK, "2 blocks", blocks_seen(2))
        .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 2);
    w.hub.add_block_credits(3);
    w.receiver_log
        .wait(CHECK, "5 blocks", blocks_seen(5))
        .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 5);
    assert!(!w.receiver_log.has_completion());
    w.hub.limit_blocks(None);
    completed(&w.receiver_log).await?;
    completed(&w.sender_log).await?;
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 7);
    // Both transports track the channel until it is cleaned up.
    assert_eq!(w.sender.channels(), [channel(1)]);
    assert_eq!(w.receiver.channels(), [channel(1)]);
    for (cid, bytes) in &blocks {
        assert_eq!(w.receiver_store.get(cid).await?.as_ref(), Some(bytes));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_delay_throttles_the_transfer() -> TestResult {
    let (root, blocks) = dag(4)?;
    let delay = Duration::from_millis(10);
    let w = world(Config::default().with_block_delay(delay), &blocks).await?;
    let start = Instant::now();
    w.receiver.open_channel(pull(1, root)).await?;
    completed(&w.receiver_log).await?;
    assert!(start.elapsed() >= delay * 4, "{:?}", start.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_block_fails_both_sides() -> TestResult {
    let (root, mut blocks) = dag(3)?;
    let (missing, _) = blocks.remove(2);
    let w = world(Config::default(), &blocks).await?;
    w.receiver.open_channel(pull(1, root)).await?;
    completed(&w.receiver_log).await?;
    completed(&w.sender_log).await?;
    for log in [&w.receiver_log, &w.sender_log] {
        let failure = log.events().into_iter().find_map(|e| match e {
            Recorded::Completed(_, Err(text)) => Some(text),
            _ => None,
        });
        assert_eq!(
            failure,
            Some(format!("data sender is missing block {missing}"))
        );
    }
    // The blocks around the missing one still arrive.
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_store_receives_the_blocks() -> TestResult {
    let (root, blocks) = dag(2)?;
    let w = world(Config::default(), &blocks).await?;
    let deal = Arc::new(Blocks::new());
    w.receiver
        .register_store(StoreName::new("deal-1"), Arc::clone(&deal));
    let open = pull(1, root).with_store(StoreName::new("deal-1"));
    w.receiver.open_channel(open).await?;
    completed(&w.receiver_log).await?;
    assert!(deal.get(&root).await?.is_some());
    assert!(w.receiver_store.get(&root).await?.is_none());
    let unknown = w
        .receiver
        .open_channel(pull(2, root).with_store(StoreName::new("nope")))
        .await;
    assert!(
        matches!(&unknown, Err(TransportError::UnknownStore { store, .. }) if store.as_str() == "nope"),
        "{unknown:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_misuse_is_typed() -> TestResult {
    let (root, blocks) = dag(2)?;
    let hub = hub(Config::default().with_max_channels(1));
    let (bare, _) = hub.add_peer(peer(7), Arc::new(Blocks::new()))?;
    let no_handler = bare.open_channel(pull(1, root)).await;
    assert!(
        matches!(no_handler, Err(TransportError::HandlerNotSet)),
        "{no_handler:?}"
    );
    let duplicate = hub.add_peer(peer(7), Arc::new(Blocks::new()));
    assert!(matches!(duplicate, Err(HubError::DuplicatePeer { .. })));

    let w = world(Config::default().with_max_channels(1), &blocks).await?;
    let again = w
        .receiver
        .set_events_handler(Arc::new(Recorder::new(Script::default())));
    assert!(matches!(again, Err(TransportError::HandlerAlreadySet)));
    let mut to_self = pull(1, root);
    to_self.data_sender = peer(2);
    let refused = w.receiver.open_channel(to_self).await;
    assert!(
        matches!(refused, Err(TransportError::OpenToSelf { .. })),
        "{refused:?}"
    );
    let unknown = w.receiver.close_channel(channel(5)).await;
    assert!(
        matches!(unknown, Err(TransportError::UnknownChannel { .. })),
        "{unknown:?}"
    );

    w.receiver.open_channel(pull(1, root)).await?;
    completed(&w.receiver_log).await?;
    assert_eq!(w.receiver.channels(), [channel(1)]);
    let full = w.receiver.open_channel(pull(2, root)).await;
    assert!(
        matches!(full, Err(TransportError::TooManyChannels { limit: 1, .. })),
        "{full:?}"
    );
    let finished = w.receiver.attach(channel(1), update(1)).await;
    assert!(
        matches!(finished, Err(TransportError::Finished { .. })),
        "{finished:?}"
    );
    let not_paused = w.receiver.pause_channel(channel(1)).await;
    assert!(
        matches!(not_paused, Err(TransportError::Finished { .. })),
        "{not_paused:?}"
    );
    // Closing a finished exchange is harmless; cleanup frees the slot.
    w.receiver.close_channel(channel(1)).await?;
    w.receiver.cleanup_channel(channel(1)).await;
    assert!(w.receiver.channels().is_empty());

    w.receiver.shutdown().await?;
    let shut = w.receiver.open_channel(pull(3, root)).await;
    assert!(matches!(shut, Err(TransportError::ShutDown)), "{shut:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_running_exchange_is_not_paused() -> TestResult {
    let (root, blocks) = dag(40)?;
    let w = world(Config::default(), &blocks).await?;
    w.hub.limit_blocks(Some(1));
    w.receiver.open_channel(pull(1, root)).await?;
    // The receiver's report of block 1 comes after every sender call for it, so no sender
    // handler runs now: the sender waits for a credit.
    w.receiver_log
        .wait(CHECK, "a block", |events| {
            events.iter().any(|e| e.block(Kind::Received).is_some())
        })
        .await?;
    let result = Message::from(voucher_result_response(
        TransferId(1),
        true,
        false,
        "".into(),
        None,
    ));
    let resumed = w.sender.resume_channel(channel(1), result.clone()).await;
    assert!(
        matches!(resumed, Err(TransportError::NotPaused { .. })),
        "{resumed:?}"
    );
    w.sender.pause_channel(channel(1)).await?;
    w.hub.limit_blocks(None);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 1);
    w.sender.resume_channel(channel(1), result).await?;
    completed(&w.sender_log).await?;
    completed(&w.receiver_log).await?;
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 41);
    // The resume's message reached the receiver before the next block.
    let events = w.receiver_log.events();
    let message = events.iter().position(|e| {
        matches!(e, Recorded::ResponseReceived(_, r) if r.message_type() == MessageType::VoucherResult)
    });
    let second = events
        .iter()
        .position(|e| e.block(Kind::Received).is_some_and(|b| b.index == 2));
    assert!(
        matches!((message, second), (Some(m), Some(b)) if m < b),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_mid_transfer_fails_both_sides() -> TestResult {
    let (root, blocks) = dag(10)?;
    let w = world(Config::default(), &blocks).await?;
    w.hub.limit_blocks(Some(3));
    w.receiver.open_channel(pull(1, root)).await?;
    w.receiver_log
        .wait(CHECK, "3 blocks", |events| {
            events
                .iter()
                .filter(|e| e.block(Kind::Received).is_some())
                .count()
                == 3
        })
        .await?;
    w.hub.disconnect(&peer(1), &peer(2));
    completed(&w.receiver_log).await?;
    completed(&w.sender_log).await?;
    let tail = |log: &Recorder| -> Vec<String> {
        log.events()
            .into_iter()
            .rev()
            .take(2)
            .map(|e| match e {
                Recorded::SendDataError(_, text) => format!("send error: {text}"),
                Recorded::ReceiveDataError(_, text) => format!("receive error: {text}"),
                Recorded::Completed(_, Err(text)) => format!("failed: {text}"),
                other => format!("{other:?}"),
            })
            .collect()
    };
    // Each side names the other peer (printed in base58).
    assert_eq!(
        tail(&w.receiver_log),
        [
            format!("failed: peer {} disconnected", peer(1)),
            format!("receive error: peer {} disconnected", peer(1)),
        ]
    );
    assert_eq!(
        tail(&w.sender_log),
        [
            format!("failed: peer {} disconnected", peer(2)),
            format!("send error: peer {} disconnected", peer(2)),
        ]
    );
    assert_eq!(w.receiver_log.data(Kind::Received).len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_channels_between_two_peers_all_complete() -> TestResult {
    let (root, blocks) = dag(20)?;
    let w = world(
        Config::default().with_block_delay(Duration::from_millis(1)),
        &blocks,
    )
    .await?;
    for id in 1..=4 {
        w.receiver.open_channel(pull(id, root)).await?;
    }
    w.receiver_log
        .wait(CHECK, "4 completions", |events| {
            events
                .iter()
                .filter(|e| matches!(e, Recorded::Completed(_, Ok(()))))
                .count()
                == 4
        })
        .await?;
    for id in 1..=4 {
        let indexes: Vec<u64> = w
            .receiver_log
            .events()
            .iter()
            .filter_map(|e| match e {
                Recorded::DataReceived(c, block) if *c == channel(id) => Some(block.index),
                _ => None,
            })
            .collect();
        assert_eq!(indexes, (1..=21).collect::<Vec<u64>>(), "channel {id}");
    }
    assert_eq!(w.receiver.channels().len(), 4);
    Ok(())
}

#[tokio::test]
async fn a_message_the_codec_refuses_is_not_sent() -> TestResult {
    let hub = hub(Config::default());
    let Nets { a, .. } = networks(&hub)?;
    let too_big = Message::from(update_request(TransferId(u64::MAX), false));
    let refused = a.send_message(peer(2), too_big).await;
    assert!(
        matches!(refused, Err(NetworkError::Encode { .. })),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_peer_can_leave_and_join_again() -> TestResult {
    let hub = hub(Config::default());
    let (transport, _network) = hub.add_peer(peer(9), Arc::new(Blocks::new()))?;
    assert!(!hub.remove_peer(&peer(9)), "a running peer stays");
    assert!(
        !hub.remove_peer(&peer(10)),
        "an unknown peer is not removed"
    );
    transport.shutdown().await?;
    assert!(hub.remove_peer(&peer(9)));
    let (again, _network) = hub.add_peer(peer(9), Arc::new(Blocks::new()))?;
    assert_eq!(again.peer(), &peer(9));
    assert!(!hub.remove_peer(&peer(9)), "the new peer is running");
    Ok(())
}

/// A receiver handler that, at block `at`, has the transport resumed while it runs (from
/// another thread, waiting for it: a test-only block) and then answers `Flow::Pause`.
struct ResumeDuringHandler {
    log: Recorder,
    transport: std::sync::OnceLock<MemTransport<Blocks>>,
    at: u64,
    outcome: std::sync::Mutex<Option<Result<(), TransportError>>>,
}

impl EventsHandler for ResumeDuringHandler {
    fn on_channel_opened(&self, channel: &ChannelId) -> Result<(), HandlerError> {
        self.log.on_channel_opened(channel)
    }

    fn on_response_received(
        &self,
        channel: &ChannelId,
        response: Response,
    ) -> Result<Flow, HandlerError> {
        self.log.on_response_received(channel, response)
    }

    fn on_request_received(&self, channel: &ChannelId, request: Request) -> RequestAnswer {
        self.log.on_request_received(channel, request)
    }

    fn on_data_received(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<Flow, HandlerError> {
        self.log.on_data_received(channel, block)?;
        if block.index != self.at {
            return Ok(Flow::Continue);
        }
        let transport = self.transport.get().cloned();
        let channel = channel.clone();
        let outcome = std::thread::spawn(move || {
            let transport = transport.ok_or(TransportError::HandlerNotSet)?;
            futures::executor::block_on(transport.resume_channel(channel, update(1)))
        })
        .join()
        .unwrap_or(Err(TransportError::ShutDown));
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
        Ok(Flow::Pause)
    }

    fn on_data_queued(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<QueuedAnswer, HandlerError> {
        self.log.on_data_queued(channel, block)
    }

    fn on_data_sent(&self, channel: &ChannelId, block: BlockInfo) {
        self.log.on_data_sent(channel, block);
    }

    fn on_transfer_queued(&self, channel: &ChannelId) {
        self.log.on_transfer_queued(channel);
    }

    fn on_channel_completed(&self, channel: &ChannelId, result: Result<(), DataError>) {
        self.log.on_channel_completed(channel, result);
    }

    fn on_request_cancelled(&self, channel: &ChannelId, error: DataError) {
        self.log.on_request_cancelled(channel, error);
    }

    fn on_request_disconnected(&self, channel: &ChannelId, error: DataError) {
        self.log.on_request_disconnected(channel, error);
    }

    fn on_send_data_error(&self, channel: &ChannelId, error: DataError) {
        self.log.on_send_data_error(channel, error);
    }

    fn on_receive_data_error(&self, channel: &ChannelId, error: DataError) {
        self.log.on_receive_data_error(channel, error);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_while_the_handler_runs_voids_its_pause() -> TestResult {
    let (root, blocks) = dag(6)?;
    let hub = hub(Config::default());
    let sender_store = Arc::new(Blocks::new());
    for (cid, bytes) in &blocks {
        sender_store.put_keyed(cid, bytes).await?;
    }
    let (sender, _) = hub.add_peer(peer(1), sender_store)?;
    let (receiver, _) = hub.add_peer(peer(2), Arc::new(Blocks::new()))?;
    let sender_log = Arc::new(Recorder::new(Script::default()));
    sender.set_events_handler(Arc::clone(&sender_log) as Arc<dyn EventsHandler>)?;
    let handler = Arc::new(ResumeDuringHandler {
        log: Recorder::new(Script::default()),
        transport: std::sync::OnceLock::new(),
        at: 3,
        outcome: std::sync::Mutex::new(None),
    });
    let _ = handler.transport.set(receiver.clone());
    receiver.set_events_handler(Arc::clone(&handler) as Arc<dyn EventsHandler>)?;
    receiver.open_channel(pull(1, root)).await?;
    // No further resume: the transfer completes only if the handler's pause was voided.
    completed(&handler.log).await?;
    completed(&sender_log).await?;
    let outcome = handler.outcome.lock().map_err(|e| e.to_string())?.take();
    assert!(matches!(outcome, Some(Ok(()))), "{outcome:?}");
    assert_eq!(handler.log.data(Kind::Received).len(), 7);
    // The resume's message reached the sender.
    assert!(
        sender_log
            .events()
            .iter()
            .any(|e| matches!(e, Recorded::RequestReceived(_, r) if r.is_update()))
    );
    Ok(())
}
