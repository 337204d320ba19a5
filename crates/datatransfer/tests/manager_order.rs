//! The order of the manager's I/O: its outbound task sends to several peers at once (a send
//! that hangs, a dial to a peer that is down, holds back only that peer's transmits, not
//! another peer's channel), and a channel event reaches subscribers only once the snapshot it
//! carries is in the channel store (as Go stores a channel's state before it notifies).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer::{
    ChannelState, ChannelStatus, ChannelStore, Config, Decision, Event, Manager, Network,
    NetworkError, Request, RequestValidator, StoreError, Voucher, VoucherError,
};
use datatransfer_message::{ChannelId, Message, PeerId};
use datatransfer_store::MemStore;
use datatransfer_transport::Receiver;
use datatransfer_transport::mem::{MemHub, MemNetwork, MemTransport};
use ipld_dagcbor::Node;
use multihash_codetable::{Code, MultihashDigest};
use tokio::sync::Notify;

type Blocks = InMemoryBlockstore<64>;

/// How long a test waits for the pull before failing.
const PATIENCE: Duration = Duration::from_secs(20);

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

/// A voucher every validator here accepts.
struct Ticket;

impl Voucher for Ticket {
    const TYPE: &'static str = "test/ticket";
    fn to_node(&self) -> Node {
        Node::Null
    }
    fn from_node(_: &Node) -> Result<Self, VoucherError> {
        Ok(Ticket)
    }
}

struct AcceptAll;

impl RequestValidator<Ticket> for AcceptAll {
    fn validate_push(&self, _: &Request<'_, Ticket>) -> Decision {
        Decision::accept()
    }
    fn validate_pull(&self, _: &Request<'_, Ticket>) -> Decision {
        Decision::accept()
    }
}

fn peer_id(n: u8) -> PeerId {
    PeerId::from_bytes(vec![n; 8])
}

/// The selector of the root block alone.
fn just_the_root() -> anyhow::Result<Node> {
    Ok(ipld_selector::Selector::from_dag_json(br#"{".":{}}"#)?.to_node())
}

/// A one-block DAG-CBOR DAG in `blocks`; its root.
async fn one_block(blocks: &Blocks) -> anyhow::Result<Cid> {
    let block = ipld_dagcbor::to_vec(&Node::Bytes(b"the only block".to_vec()))?;
    let cid = Cid::new_v1(0x71, Code::Sha2_256.digest(&block));
    blocks.put_keyed(&cid, &block).await?;
    Ok(cid)
}

fn hub() -> MemHub<Blocks> {
    MemHub::new(datatransfer_transport::mem::Config::default(), |task| {
        tokio::spawn(task);
    })
}

/// A started peer `id` on `hub` that accepts every `Ticket`, serving `blocks`.
async fn responder(
    hub: &MemHub<Blocks>,
    id: PeerId,
    blocks: Blocks,
) -> anyhow::Result<Manager<MemTransport<Blocks>, MemNetwork<Blocks>>> {
    let (transport, network) = hub.add_peer(id, Arc::new(blocks))?;
    let manager = Manager::new(transport, network, MemStore::new(), Config::default());
    manager.register_voucher_type(AcceptAll)?;
    manager.start().await?;
    Ok(manager)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_hangs_holds_back_only_its_own_peer() -> anyhow::Result<()> {
    let hub = hub();
    let (me, down, up) = (peer_id(1), peer_id(2), peer_id(3));
    let release = Arc::new(Notify::new());

    let (transport, network) = hub.add_peer(me.clone(), Arc::new(Blocks::new()))?;
    let network = Stuck {
        inner: network,
        stuck: down.clone(),
        release: Arc::clone(&release),
    };
    let manager = Manager::new(transport, network, MemStore::new(), Config::default());
    manager.register_voucher_type(AcceptAll)?;
    manager.start().await?;

    let up_blocks = Blocks::new();
    let root = one_block(&up_blocks).await?;
    let responder = responder(&hub, up.clone(), up_blocks).await?;

    // The push's request to the peer that is down goes out first, and its send never ends.
    let push = manager.open_push(down, &Ticket, root, just_the_root()?)?;
    // The pull from the other peer is queued behind it, and completes all the same.
    let pull = manager.open_pull(up, &Ticket, root, just_the_root()?)?;
    let mut events = manager.subscribe_channel(pull.clone());
    let completed = tokio::time::timeout(PATIENCE, async {
        loop {
            if manager.status(&pull) == ChannelStatus::Completed {
                return anyhow::Ok(());
            }
            events.recv().await?;
        }
    })
    .await;
    assert!(
        matches!(completed, Ok(Ok(()))),
        "the pull waited behind the hanging push: {completed:?}"
    );
    assert_eq!(
        manager.status(&push),
        ChannelStatus::Requested,
        "the push's request is still being sent"
    );

    release.notify_one();
    manager.stop().await?;
    responder.stop().await?;
    Ok(())
}

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
    let (me, them) = (peer_id(1), peer_id(2));
    let blocks = Blocks::new();
    let root = one_block(&blocks).await?;
    let _responder = responder(&hub, them.clone(), blocks).await?;

    let store = Recorded::default();
    let (transport, network) = hub.add_peer(me, Arc::new(Blocks::new()))?;
    let manager = Manager::new(transport, network, store.clone(), Config::default());
    manager.start().await?;
    let mut events = manager.subscribe();
    let pull = manager.open_pull(them, &Ticket, root, just_the_root()?)?;
    let mut checked = 0;
    tokio::time::timeout(PATIENCE, async {
        loop {
            let Event::Channel { event, state } = events.recv().await? else {
                continue;
            };
            anyhow::ensure!(
                store.holds(&state),
                "{} was published before its state was stored: {state:?}",
                event.code.name()
            );
            checked += 1;
            if event.status.is_terminal() {
                anyhow::ensure!(event.status == ChannelStatus::Completed, "{event:?}");
                return anyhow::Ok(());
            }
        }
    })
    .await??;
    assert!(checked >= 4, "only {checked} events of {pull} seen");
    manager.stop().await?;
    Ok(())
}
