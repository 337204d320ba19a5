//! Bad input: a message that is illegal for a channel fails that channel with a typed
//! `ProtocolError` event and leaves the other channels alone; local misuse is a typed
//! `CommandError`. Over `MemStore` and `SledStore`.

#[macro_use]
mod common;

use anyhow::{Context, bail, ensure};
use common::{
    Backend, Dag, TestVoucher, everything, hub, open_store, peer, until_event, until_status,
};
use datatransfer::{Error, Event};
use datatransfer_fsm::{ChannelStatus, CommandError, ProtocolError};
use datatransfer_message::{
    ChannelId, Message, MessageType, TransferId, cancel_response, update_response,
};
use datatransfer_transport::Network;
use ipld_dagcbor::Node;

/// `message` with another wire `Type`, as a misbehaving peer could send it.
fn retyped(message: &Message, message_type: MessageType) -> anyhow::Result<Message> {
    let Node::Map(mut outer) = message.to_node()? else {
        bail!("a message is a map");
    };
    let side = if message.is_request() {
        "Request"
    } else {
        "Response"
    };
    let Some(Node::Map(mut inner)) = outer.get(side).cloned() else {
        bail!("the {side} is a map");
    };
    inner.insert("Type", Node::Integer(i128::from(message_type.wire_value())));
    outer.insert(side, Node::Map(inner));
    Ok(Message::from_node(&Node::Map(outer))?)
}

over_both_stores!(illegal_message_fails_only_its_channel);
async fn illegal_message_fails_only_its_channel(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let (dag_x, dag_y) = (Dag::new(20, 200, 60)?, Dag::new(20, 200, 61)?);
    dag_x.load_into(&b.blocks).await?;
    dag_y.load_into(&b.blocks).await?;
    hub.limit_blocks(Some(2));
    let x = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("x".into()),
        dag_x.root,
        everything(),
    )?;
    let y = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("y".into()),
        dag_y.root,
        everything(),
    )?;
    until_status(&a.manager, &x, ChannelStatus::Ongoing).await?;
    until_status(&a.manager, &y, ChannelStatus::Ongoing).await?;
    let mut events = a.manager.subscribe();

    // The responder "sends" a Voucher-typed response: responses never have that type.
    let bogus = retyped(
        &Message::from(update_response(x.id, false)),
        MessageType::Voucher,
    )?;
    b.manager
        .network()
        .send_message(a.id.clone(), bogus)
        .await?;
    let error = until_event(&mut events, |event| match event {
        Event::ProtocolViolated { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await?;
    ensure!(
        matches!(&error, ProtocolError::UnexpectedMessage { channel, message_type: MessageType::Voucher, .. } if channel == &x),
        "{error:?}"
    );
    let failed = until_status(&a.manager, &x, ChannelStatus::Failed).await?;
    ensure!(failed.message.contains("Voucher"), "{}", failed.message);

    // A message for a channel that does not exist changes nothing.
    let stray = Message::from(cancel_response(TransferId(424_242)));
    b.manager
        .network()
        .send_message(a.id.clone(), stray)
        .await?;
    let error = until_event(&mut events, |event| match event {
        Event::ProtocolViolated { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await?;
    ensure!(
        matches!(error, ProtocolError::UnknownChannel { .. }),
        "{error:?}"
    );

    // The other channel goes on and completes.
    ensure!(a.manager.status(&y) == ChannelStatus::Ongoing);
    hub.limit_blocks(None);
    let done = until_status(&a.manager, &y, ChannelStatus::Completed).await?;
    ensure!(done.received == dag_y.total_bytes());
    ensure!(a.manager.status(&x) == ChannelStatus::Failed);
    Ok(())
}

over_both_stores!(local_misuse_is_a_typed_command_error);
async fn local_misuse_is_a_typed_command_error(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let hub = hub();
    let a = peer(&hub, 1, open_store(backend, &dir, "a")?).await?;
    let b = peer(&hub, 2, open_store(backend, &dir, "b")?).await?;
    let dag = Dag::new(4, 100, 62)?;
    dag.load_into(&b.blocks).await?;

    let unknown = ChannelId::new(a.id.clone(), b.id.clone(), TransferId(7));
    let is_unknown = |result: Result<(), Error>| {
        matches!(
            result,
            Err(Error::Command(CommandError::UnknownChannel { .. }))
        )
    };
    ensure!(is_unknown(a.manager.pause(&unknown)));
    ensure!(is_unknown(a.manager.resume(&unknown)));
    ensure!(is_unknown(a.manager.close(&unknown)));
    ensure!(is_unknown(a.manager.restart_channel(&unknown)));
    ensure!(is_unknown(
        a.manager.send_voucher(&unknown, &TestVoucher("v".into()))
    ));
    ensure!(a.manager.status(&unknown) == ChannelStatus::ChannelNotFoundError);
    ensure!(matches!(
        a.manager.channel_state(&unknown),
        Err(Error::Command(CommandError::UnknownChannel { .. }))
    ));

    // While the transfer stands still, the responder may not send vouchers.
    hub.limit_blocks(Some(1));
    let channel = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("ok".into()),
        dag.root,
        everything(),
    )?;
    until_status(&b.manager, &channel, ChannelStatus::Ongoing).await?;
    let not_initiator = b.manager.send_voucher(&channel, &TestVoucher("v".into()));
    ensure!(
        matches!(
            not_initiator,
            Err(Error::Command(CommandError::NotInitiator { .. }))
        ),
        "{not_initiator:?}"
    );
    hub.limit_blocks(None);
    until_status(&a.manager, &channel, ChannelStatus::Completed).await?;
    until_status(&b.manager, &channel, ChannelStatus::Completed).await?;
    let terminated = a.manager.pause(&channel);
    ensure!(
        matches!(
            terminated,
            Err(Error::Command(CommandError::Terminated {
                status: ChannelStatus::Completed,
                ..
            }))
        ),
        "{terminated:?}"
    );

    // A stopped manager refuses commands; it cannot start twice.
    ensure!(matches!(
        a.manager.start().await,
        Err(Error::AlreadyStarted)
    ));
    a.manager.stop().await?;
    let refused = a.manager.open_pull(
        b.id.clone(),
        &TestVoucher("late".into()),
        dag.root,
        everything(),
    );
    ensure!(matches!(refused, Err(Error::NotRunning)), "{refused:?}");
    ensure!(
        a.manager
            .channel_state(&channel)
            .context("state stays readable")?
            .status
            == ChannelStatus::Completed
    );
    Ok(())
}

/// A store whose next `failures_left` writes fail.
#[derive(Clone, Default)]
struct FlakyStore {
    inner: datatransfer_store::MemStore,
    failures_left: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl datatransfer_store::ChannelStore for FlakyStore {
    fn put(
        &self,
        state: &datatransfer_fsm::ChannelState,
    ) -> Result<(), datatransfer_store::StoreError> {
        let failing = self
            .failures_left
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |left| left.checked_sub(1),
            )
            .is_ok();
        if failing {
            return Err(datatransfer_store::StoreError::Backend {
                operation: "put",
                source: "disk full".into(),
            });
        }
        self.inner.put(state)
    }
    fn get(
        &self,
        channel: &ChannelId,
    ) -> Result<Option<datatransfer_fsm::ChannelState>, datatransfer_store::StoreError> {
        self.inner.get(channel)
    }
    fn delete(&self, channel: &ChannelId) -> Result<bool, datatransfer_store::StoreError> {
        self.inner.delete(channel)
    }
    fn list(&self) -> Result<Vec<datatransfer_fsm::ChannelState>, datatransfer_store::StoreError> {
        self.inner.list()
    }
    fn flush(&self) -> Result<(), datatransfer_store::StoreError> {
        self.inner.flush()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_are_reported_and_do_not_panic() -> anyhow::Result<()> {
    use std::sync::Arc;

    use datatransfer::{Config, Manager};

    let hub = hub();
    let dag = Dag::new(3, 100, 63)?;
    let store = FlakyStore::default();
    // The first write (the new channel) fails; the later ones work. (Re-enabling the store
    // from the test instead raced with the channel's completion.)
    store
        .failures_left
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let (transport, network) = hub.add_peer(common::peer_id(1), Arc::new(common::Blocks::new()))?;
    let a = Manager::new(transport, network, store.clone(), Config::default());
    a.register_voucher_type(common::AcceptAll)?;
    a.start().await?;
    let dir = tempfile::tempdir()?;
    let b = peer(&hub, 2, open_store(Backend::Mem, &dir, "b")?).await?;
    dag.load_into(&b.blocks).await?;

    let mut events = a.subscribe();
    let channel = a.open_pull(
        b.id.clone(),
        &TestVoucher("fragile".into()),
        dag.root,
        everything(),
    )?;
    let reason = until_event(&mut events, |event| match event {
        Event::StoreFailed { channel: c, reason } if c == &channel => Some(reason.clone()),
        _ => None,
    })
    .await?;
    ensure!(reason.contains("put"), "{reason}");
    // The channel goes on in memory; once the store works again, its state is written.
    let done = until_status(&a, &channel, ChannelStatus::Completed).await?;
    use datatransfer_store::ChannelStore;
    ensure!(
        store.get(&channel)? == Some(done),
        "the final state is stored"
    );
    Ok(())
}
