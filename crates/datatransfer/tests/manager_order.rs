//! The order of the manager's I/O: a channel event reaches subscribers only once the snapshot
//! it carries is in the channel store, as Go stores a channel's state before it notifies; and
//! the manager sends to several peers at once, so a send that hangs (a dial to a peer that is
//! down) holds back only that peer's transmits, not another peer's channel.

#[allow(unused_macros)]
mod common;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::ensure;
use common::{AcceptAll, Blocks, Dag, PATIENCE, TestStore, TestVoucher, everything, hub, peer};
use datatransfer::{
    ChannelState, ChannelStatus, ChannelStore, Config, Event, Manager, MemStore, Network,
    NetworkError, StoreError,
};
use datatransfer_message::{ChannelId, Message, PeerId};
use datatransfer_transport::Receiver;
use datatransfer_transport::mem::MemNetwork;
use tokio::sync::Notify;

/// How long each put of [`Recorded`] takes: long enough for a subscriber on the other worker
/// thread to see an event published before its put ends.
const SLOW_PUT: Duration = Duration::from_millis(20);

/// A slow channel store that keeps a copy of every state put into it, once the put is over
/// (clones share it).
#[derive(Clone, Default)]
struct Recorded {
    inner: MemStore,
    puts: Arc<Mutex<Vec<ChannelState>>>,
}

impl Recorded {
    fn holds(&self, state: &ChannelState) -> bool {
        let puts = self.puts.lock().unwrap_or_else(PoisonError::into_inner);
        puts.iter().any(|put| put == state)
    }
}

impl ChannelStore for Recorded {
    fn put(&self, state: &ChannelState) -> Result<(), StoreError> {
        std::thread::sleep(SLOW_PUT);
        self.inner.put(state)?;
        let mut puts = self.puts.lock().unwrap_or_else(PoisonError::into_inner);
        puts.push(state.clone());
        Ok(())
    }
    fn get(&self, channel: &ChannelId) -> Result<Option<ChannelState>, StoreError> {
        self.inner.get(channel)
    }
    fn delete(&self, channel: &ChannelId) -> Result<bool, StoreError> {
        self.inner.delete(channel)
    }
    fn list(&self) -> Result<Vec<ChannelState>, StoreError> {
        self.inner.list()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_event_comes_after_the_snapshot_it_carries_is_stored() -> anyhow::Result<()> {
    let hub = hub();
    let responder = peer(&hub, 2, TestStore::Mem(MemStore::new())).await?;
    let dag = Dag::new(2, 64, 7)?;
    dag.load_into(&responder.blocks).await?;

    let store = Recorded::default();
    let (transport, network) = hub.add_peer(common::peer_id(1), Arc::new(Blocks::new()))?;
    let manager = Manager::new(transport, network, store.clone(), Config::default());
    manager.register_voucher_type(AcceptAll)?;
    manager.start().await?;
    let mut events = manager.subscribe();
    let pull = manager.open_pull(
        responder.id.clone(),
        &TestVoucher("order".into()),
        dag.root,
        everything(),
    )?;
    let mut checked = 0;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let Event::Channel { event, state } = events.recv().await? else {
                continue;
            };
            ensure!(
                store.holds(&state),
                "{} was published before its state was stored: {state:?}",
                event.code.name()
            );
            checked += 1;
            if event.status.is_terminal() {
                ensure!(event.status == ChannelStatus::Completed, "{event:?}");
                return anyhow::Ok(());
            }
        }
    })
    .await??;
    ensure!(checked >= 4, "only {checked} events of {pull} seen");
    manager.stop().await?;
    responder.manager.stop().await?;
    Ok(())
}

/// A network whose sends to one peer wait until the test releases them (a dial that does not
/// come back); every other send goes to the in-memory network at once.
struct Stuck {
    inner: MemNetwork<Blocks>,
    stuck: PeerId,
    release: Arc<Notify>,
}

impl Stuck {
    async fn wait_if_stuck(&self, peer: &PeerId) {
        if *peer == self.stuck {
            self.release.notified().await;
        }
    }
}

impl Network for Stuck {
    fn self_peer(&self) -> PeerId {
        self.inner.self_peer()
    }
    fn set_receiver(&self, receiver: Arc<dyn Receiver>) -> Result<(), NetworkError> {
        self.inner.set_receiver(receiver)
    }
    async fn send_message(&self, peer: PeerId, message: Message) -> Result<(), NetworkError> {
        self.wait_if_stuck(&peer).await;
        self.inner.send_message(peer, message).await
    }
    async fn send_message_connected(
        &self,
        peer: PeerId,
        message: Message,
    ) -> Result<(), NetworkError> {
        self.wait_if_stuck(&peer).await;
        self.inner.send_message_connected(peer, message).await
    }
    async fn connect(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.wait_if_stuck(&peer).await;
        self.inner.connect(peer).await
    }
    fn protect(&self, peer: &PeerId, tag: &str) {
        self.inner.protect(peer, tag);
    }
    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        self.inner.unprotect(peer, tag)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_hangs_holds_back_only_its_own_peer() -> anyhow::Result<()> {
    let hub = hub();
    let responder = peer(&hub, 3, TestStore::Mem(MemStore::new())).await?;
    let dag = Dag::new(2, 64, 9)?;
    dag.load_into(&responder.blocks).await?;

    let down = common::peer_id(2);
    let release = Arc::new(Notify::new());
    let (transport, network) = hub.add_peer(common::peer_id(1), Arc::new(Blocks::new()))?;
    let network = Stuck {
        inner: network,
        stuck: down.clone(),
        release: Arc::clone(&release),
    };
    let manager = Manager::new(transport, network, MemStore::new(), Config::default());
    manager.register_voucher_type(AcceptAll)?;
    manager.start().await?;

    // The push's request to the peer that is down goes out first, and its send never ends.
    let voucher = TestVoucher("lanes".into());
    let push = manager.open_push(down, &voucher, dag.root, everything())?;
    // The pull from the other peer is queued behind it, and completes all the same.
    let pull = manager.open_pull(responder.id.clone(), &voucher, dag.root, everything())?;
    let mut events = manager.subscribe_channel(pull.clone());
    let completed = tokio::time::timeout(PATIENCE, async {
        while manager.status(&pull) != ChannelStatus::Completed {
            events.recv().await?;
        }
        anyhow::Ok(())
    })
    .await;
    ensure!(
        matches!(completed, Ok(Ok(()))),
        "the pull waited behind the hanging push: {completed:?}"
    );
    ensure!(
        manager.status(&push) == ChannelStatus::Requested,
        "the push's request is still being sent, yet the push is {}",
        manager.status(&push)
    );

    release.notify_one();
    manager.stop().await?;
    responder.manager.stop().await?;
    Ok(())
}
