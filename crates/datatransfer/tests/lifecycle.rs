//! The manager's life: on-ready callbacks, and what a node started again from its store knows
//! about the channels it finished before. Over `MemStore` and `SledStore`.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use anyhow::ensure;
use common::{
    Backend, Blocks, Dag, Peer, TestStore, TestVoucher, everything, hub, open_store, peer,
};
use datatransfer::{ChannelStatus, Config, Manager, MemStore};
use datatransfer_message::PeerId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ready_runs_after_start_or_at_once() -> anyhow::Result<()> {
    let hub = hub();
    let (transport, network) =
        hub.add_peer(PeerId::from_bytes(vec![9]), Arc::new(Blocks::new()))?;
    let manager = Manager::new(transport, network, MemStore::new(), Config::default());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let early = Arc::clone(&calls);
    manager.on_ready(move |outcome| {
        early
            .lock()
            .expect("test lock")
            .push(("early", outcome.is_ok()))
    });
    ensure!(
        calls.lock().expect("test lock").is_empty(),
        "not before start"
    );
    manager.start().await?;
    ensure!(*calls.lock().expect("test lock") == vec![("early", true)]);
    let late = Arc::clone(&calls);
    manager.on_ready(move |outcome| {
        late.lock()
            .expect("test lock")
            .push(("late", outcome.is_ok()))
    });
    ensure!(*calls.lock().expect("test lock") == vec![("early", true), ("late", true)]);
    manager.stop().await?;
    Ok(())
}

over_both_stores!(finished_channels_are_known_after_a_restart);
async fn finished_channels_are_known_after_a_restart(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dag = Dag::new(3, 100, 99)?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("done".into()),
        dag.root,
        everything(),
    )?;
    let before = common::until_status(&a.manager, &channel, ChannelStatus::Completed).await?;

    a.manager.stop().await?;
    let Peer {
        id,
        blocks,
        store,
        manager,
    } = a;
    drop(manager);
    let store = match store {
        TestStore::Mem(mem) => TestStore::Mem(mem),
        TestStore::Sled(sled) => {
            drop(sled);
            open_store(backend, &dir, "a")?
        }
    };
    ensure!(hub.remove_peer(&id));
    let again = common::peer_with(&hub, 1, store, blocks, |m| {
        m.register_voucher_type(common::AcceptAll)?;
        Ok(())
    })
    .await?;
    ensure!(
        again.manager.channel_state(&channel)? == before,
        "the stored state comes back"
    );
    ensure!(again.manager.status(&channel) == ChannelStatus::Completed);
    ensure!(again.manager.in_progress_channels()?.contains_key(&channel));
    // Restarting a finished channel does nothing, as in Go.
    again.manager.restart_channel(&channel)?;
    ensure!(again.manager.status(&channel) == ChannelStatus::Completed);
    Ok(())
}
