//! The transport conformance suite over two graphsync nodes on libp2p's memory transport, each
//! with its own block store.

mod support;

use std::sync::Arc;

use blockstore::InMemoryBlockstore;
use datatransfer_graphsync::{GraphsyncTransport, dt_peer, libp2p_peer};
use datatransfer_transport::conformance::{self, Factory, Failure, Pair};
use support::{Swarms, sides};

/// Fresh connected pairs; a disconnect drops the data sender's swarm.
#[derive(Default)]
struct GraphsyncFactory {
    swarms: Swarms,
}

impl Factory for GraphsyncFactory {
    type Transport = GraphsyncTransport;

    async fn pair(
        &self,
        sender_store: Arc<InMemoryBlockstore<64>>,
        receiver_store: Arc<InMemoryBlockstore<64>>,
    ) -> Pair<GraphsyncTransport> {
        let (sender, receiver) = sides(sender_store, receiver_store).await;
        self.swarms.keep(sender.peer, sender.swarm);
        self.swarms.keep(receiver.peer, receiver.swarm);
        Pair {
            sender: sender.transport,
            sender_peer: dt_peer(&sender.peer),
            receiver: receiver.transport,
            receiver_peer: dt_peer(&receiver.peer),
        }
    }

    async fn disconnect(&self, pair: &Pair<GraphsyncTransport>) {
        let peer = libp2p_peer(&pair.sender_peer).expect("a libp2p peer id");
        self.swarms.stop(&peer);
    }
}

macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() -> Result<(), Failure> {
                conformance::$check(&GraphsyncFactory::default()).await
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
async fn run_all_passes() -> Result<(), Failure> {
    conformance::run_all(&GraphsyncFactory::default()).await
}
