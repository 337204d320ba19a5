//! The transport conformance suite, run against `MemTransport`, and against a `MemTransport`
//! with a planted bug to show the suite catches it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use blockstore::InMemoryBlockstore;
use datatransfer_message::{ChannelId, Message, PeerId, Request, Response};
use datatransfer_transport::conformance::{self, Factory, Failure, Pair};
use datatransfer_transport::mem::{Config, MemHub, MemTransport};
use datatransfer_transport::{
    BlockInfo, Capabilities, DataError, EventsHandler, Flow, HandlerError, OpenChannel,
    QueuedAnswer, RequestAnswer, Transport, TransportError,
};

/// Pairs of fresh peers on one hub.
struct MemFactory {
    hub: MemHub<InMemoryBlockstore<64>>,
    next: AtomicU8,
}

impl MemFactory {
    fn new() -> Self {
        MemFactory {
            hub: MemHub::new(Config::default(), |task| {
                tokio::spawn(task);
            }),
            next: AtomicU8::new(1),
        }
    }
}

impl Factory for MemFactory {
    type Transport = MemTransport<InMemoryBlockstore<64>>;

    async fn pair(
        &self,
        sender_store: Arc<InMemoryBlockstore<64>>,
        receiver_store: Arc<InMemoryBlockstore<64>>,
    ) -> Pair<Self::Transport> {
        let n = self.next.fetch_add(2, Ordering::Relaxed);
        let sender_peer = PeerId::from_bytes(vec![n]);
        let receiver_peer = PeerId::from_bytes(vec![n + 1]);
        let (sender, _) = self
            .hub
            .add_peer(sender_peer.clone(), sender_store)
            .expect("fresh peer id");
        let (receiver, _) = self
            .hub
            .add_peer(receiver_peer.clone(), receiver_store)
            .expect("fresh peer id");
        Pair {
            sender,
            sender_peer,
            receiver,
            receiver_peer,
        }
    }

    async fn disconnect(&self, pair: &Pair<Self::Transport>) {
        self.hub.disconnect(&pair.sender_peer, &pair.receiver_peer);
    }
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> Result<(), Failure> {
                conformance::$check(&MemFactory::new()).await
            }
        )*
    };
}

conformance_tests!(
    pull_completes_on_both_sides,
    push_accept_opens_the_exchange,
    hold_then_attach_accept_starts_data,
    hold_then_resume_starts_data,
    reject_fails_without_data,
    receiver_refusal_fails_the_exchange,
    receiver_pause_and_resume,
    sender_pause_with_message_and_resume,
    attach_from_receiver_reaches_sender,
    close_from_receiver_reports_cancelled,
    close_from_sender_stops_data,
    cleanup_forgets_the_channel,
    disconnect_is_reported,
    reopen_skips_first_blocks,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_on_one_hub() -> Result<(), Failure> {
    conformance::run_all(&MemFactory::new()).await
}

/// A transport with a bug: its events handler is told every received block crossed the wire.
struct AllUnique(MemTransport<InMemoryBlockstore<64>>);

/// The handler wrapper that plants the bug.
struct AllUniqueHandler(Arc<dyn EventsHandler>);

impl EventsHandler for AllUniqueHandler {
    fn on_channel_opened(&self, channel: &ChannelId) -> Result<(), HandlerError> {
        self.0.on_channel_opened(channel)
    }

    fn on_response_received(
        &self,
        channel: &ChannelId,
        response: Response,
    ) -> Result<Flow, HandlerError> {
        self.0.on_response_received(channel, response)
    }

    fn on_request_received(&self, channel: &ChannelId, request: Request) -> RequestAnswer {
        self.0.on_request_received(channel, request)
    }

    fn on_data_received(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<Flow, HandlerError> {
        let wrong = BlockInfo::new(block.link, block.size, block.index, true);
        self.0.on_data_received(channel, wrong)
    }

    fn on_data_queued(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<QueuedAnswer, HandlerError> {
        self.0.on_data_queued(channel, block)
    }

    fn on_data_sent(&self, channel: &ChannelId, block: BlockInfo) {
        self.0.on_data_sent(channel, block);
    }

    fn on_transfer_queued(&self, channel: &ChannelId) {
        self.0.on_transfer_queued(channel);
    }

    fn on_channel_completed(&self, channel: &ChannelId, result: Result<(), DataError>) {
        self.0.on_channel_completed(channel, result);
    }

    fn on_request_cancelled(&self, channel: &ChannelId, error: DataError) {
        self.0.on_request_cancelled(channel, error);
    }

    fn on_request_disconnected(&self, channel: &ChannelId, error: DataError) {
        self.0.on_request_disconnected(channel, error);
    }

    fn on_send_data_error(&self, channel: &ChannelId, error: DataError) {
        self.0.on_send_data_error(channel, error);
    }

    fn on_receive_data_error(&self, channel: &ChannelId, error: DataError) {
        self.0.on_receive_data_error(channel, error);
    }
}

impl Transport for AllUnique {
    fn set_events_handler(&self, handler: Arc<dyn EventsHandler>) -> Result<(), TransportError> {
        self.0
            .set_events_handler(Arc::new(AllUniqueHandler(handler)))
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    async fn open_channel(&self, open: OpenChannel) -> Result<(), TransportError> {
        self.0.open_channel(open).await
    }

    async fn attach(&self, channel: ChannelId, message: Message) -> Result<(), TransportError> {
        self.0.attach(channel, message).await
    }

    async fn close_channel(&self, channel: ChannelId) -> Result<(), TransportError> {
        self.0.close_channel(channel).await
    }

    async fn cleanup_channel(&self, channel: ChannelId) {
        self.0.cleanup_channel(channel).await;
    }

    async fn shutdown(&self) -> Result<(), TransportError> {
        self.0.shutdown().await
    }
}

/// [`MemFactory`] with the planted bug.
struct AllUniqueFactory(MemFactory);

impl Factory for AllUniqueFactory {
    type Transport = AllUnique;

    async fn pair(
        &self,
        sender_store: Arc<InMemoryBlockstore<64>>,
        receiver_store: Arc<InMemoryBlockstore<64>>,
    ) -> Pair<AllUnique> {
        let pair = self.0.pair(sender_store, receiver_store).await;
        Pair {
            sender: AllUnique(pair.sender),
            sender_peer: pair.sender_peer,
            receiver: AllUnique(pair.receiver),
            receiver_peer: pair.receiver_peer,
        }
    }

    async fn disconnect(&self, pair: &Pair<AllUnique>) {
        self.0
            .hub
            .disconnect(&pair.sender_peer, &pair.receiver_peer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_wrong_unique_flags() {
    let factory = AllUniqueFactory(MemFactory::new());
    let pull = conformance::pull_completes_on_both_sides(&factory).await;
    assert!(
        matches!(&pull, Err(Failure { detail, .. })
            if detail.starts_with("expected: receiver marks repeated blocks not unique")),
        "{pull:?}"
    );
    let reopen = conformance::reopen_skips_first_blocks(&factory).await;
    assert!(
        matches!(&reopen, Err(Failure { detail, .. })
            if detail.starts_with("expected: the skipped blocks are not unique")),
        "{reopen:?}"
    );
}
