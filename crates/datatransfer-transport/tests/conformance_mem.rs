//! The transport conformance suite, run against `MemTransport`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use blockstore::InMemoryBlockstore;
use datatransfer_message::PeerId;
use datatransfer_transport::conformance::{self, Factory, Failure, Pair};
use datatransfer_transport::mem::{Config, MemHub, MemTransport};

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
