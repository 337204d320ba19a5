//! The order of the manager's I/O: a channel event reaches subscribers only once the snapshot
//! it carries is in the channel store, as Go stores a channel's state before it notifies.

#[allow(unused_macros)]
mod common;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::ensure;
use common::{AcceptAll, Blocks, Dag, PATIENCE, TestStore, TestVoucher, everything, hub, peer};
use datatransfer::{
    ChannelState, ChannelStatus, ChannelStore, Config, Event, Manager, MemStore, StoreError,
};
use datatransfer_message::ChannelId;

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
