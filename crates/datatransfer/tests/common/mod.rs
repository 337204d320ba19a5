//! Shared helpers of the manager's end-to-end tests: a DAG builder, two or more managers on
//! one in-memory hub, a channel store that is either a `MemStore` or a `SledStore`, test
//! voucher types, and waiting on subscriptions.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer::{
    Config, Decision, Event, Manager, Network, Request, RequestValidator, Revalidator,
    Subscription, SubscriptionError, Transport, Voucher, VoucherError, VoucherResult,
};
use datatransfer_fsm::{ChannelState, ChannelStatus};
use datatransfer_message::{ChannelId, PeerId};
use datatransfer_store::{ChannelStore, MemStore, SledStore, StoreError};
use datatransfer_transport::mem::{MemHub, MemNetwork, MemTransport};
use ipld_dagcbor::Node;
use multihash_codetable::{Code, MultihashDigest};

/// Runs `scenario` over both store backends, as two tests.
macro_rules! over_both_stores {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mem_store() -> anyhow::Result<()> {
                super::$scenario(super::Backend::Mem).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled_store() -> anyhow::Result<()> {
                super::$scenario(super::Backend::Sled).await
            }
        }
    };
}

/// The block store every test peer uses.
pub type Blocks = InMemoryBlockstore<64>;
/// A manager over the in-memory transport.
pub type Mgr = Manager<MemTransport<Blocks>, MemNetwork<Blocks>>;

/// How long a test waits for an event before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// DAG-CBOR's multicodec.
const DAG_CBOR: u64 = 0x71;

/// A DAG: a root listing links to `leaves` leaf blocks of byte strings.
#[derive(Clone, Debug)]
pub struct Dag {
    pub root: Cid,
    pub blocks: Vec<(Cid, Vec<u8>)>,
}

impl Dag {
    /// A DAG whose leaves hold `size` bytes each, distinct per `seed`.
    pub fn new(leaves: usize, size: usize, seed: u8) -> anyhow::Result<Self> {
        let mut blocks = Vec::new();
        let mut links = Vec::new();
        for i in 0..leaves {
            let bytes: Vec<u8> = (0..size)
                .map(|j| seed.wrapping_mul(31) ^ (i as u8).wrapping_add(j as u8))
                .collect();
            let mut content = vec![seed, i as u8];
            content.extend(bytes);
            let block = ipld_dagcbor::to_vec(&Node::Bytes(content.into()))?;
            let cid = Cid::new_v1(DAG_CBOR, Code::Sha2_256.digest(&block));
            links.push(Node::Link(cid));
            blocks.push((cid, block));
        }
        let root_block = ipld_dagcbor::to_vec(&Node::List(links))?;
        let root = Cid::new_v1(DAG_CBOR, Code::Sha2_256.digest(&root_block));
        blocks.insert(0, (root, root_block));
        Ok(Dag { root, blocks })
    }

    /// The sum of the block sizes: what a whole transfer counts.
    pub fn total_bytes(&self) -> u64 {
        self.blocks.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// The number of blocks.
    pub fn block_count(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Puts every block into `store`.
    pub async fn load_into(&self, store: &Blocks) -> anyhow::Result<()> {
        for (cid, block) in &self.blocks {
            store.put_keyed(cid, block).await?;
        }
        Ok(())
    }

    /// Whether `store` holds every block.
    pub async fn is_in(&self, store: &Blocks) -> anyhow::Result<bool> {
        for (cid, _) in &self.blocks {
            if store.get(cid).await?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The selector of whole-DAG transfers (explore all, recursively, to depth 10: the traversal
/// refuses unlimited recursion by default).
///
/// # Panics
/// Never: the selector is a valid constant.
pub fn everything() -> Node {
    ipld_selector::Selector::from_dag_json(br#"{"R":{"l":{"depth":10},":>":{"a":{">":{"@":{}}}}}}"#)
        .expect("a valid constant selector")
        .to_node()
}

/// A channel store that is a `MemStore` or a `SledStore` in a temporary directory, reopened
/// on demand.
#[derive(Clone)]
pub enum TestStore {
    Mem(MemStore),
    Sled(Arc<SledStore>),
}

impl ChannelStore for TestStore {
    fn put(&self, state: &ChannelState) -> Result<(), StoreError> {
        match self {
            TestStore::Mem(s) => s.put(state),
            TestStore::Sled(s) => s.put(state),
        }
    }
    fn get(&self, channel: &ChannelId) -> Result<Option<ChannelState>, StoreError> {
        match self {
            TestStore::Mem(s) => s.get(channel),
            TestStore::Sled(s) => s.get(channel),
        }
    }
    fn delete(&self, channel: &ChannelId) -> Result<bool, StoreError> {
        match self {
            TestStore::Mem(s) => s.delete(channel),
            TestStore::Sled(s) => s.delete(channel),
        }
    }
    fn list(&self) -> Result<Vec<ChannelState>, StoreError> {
        match self {
            TestStore::Mem(s) => s.list(),
            TestStore::Sled(s) => s.list(),
        }
    }
    fn flush(&self) -> Result<(), StoreError> {
        match self {
            TestStore::Mem(s) => s.flush(),
            TestStore::Sled(s) => s.flush(),
        }
    }
}

/// Which store backend a scenario runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Mem,
    Sled,
}

/// A store of the backend; sled stores live in `dir`.
pub fn open_store(
    backend: Backend,
    dir: &tempfile::TempDir,
    name: &str,
) -> anyhow::Result<TestStore> {
    Ok(match backend {
        Backend::Mem => TestStore::Mem(MemStore::new()),
        Backend::Sled => TestStore::Sled(Arc::new(SledStore::open(
            dir.path().join(name),
            datatransfer_store::Config::default(),
        )?)),
    })
}

/// A voucher: a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestVoucher(pub String);

impl Voucher for TestVoucher {
    const TYPE: &'static str = "test/voucher";
    fn to_node(&self) -> Node {
        Node::text(self.0.as_str())
    }
    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        let text =
            node.as_text()
                .and_then(|t| t.as_str())
                .ok_or_else(|| VoucherError::Invalid {
                    reason: format!("expected text, found {}", node.kind()),
                })?;
        Ok(TestVoucher(text.to_owned()))
    }
}

/// A voucher type no test peer registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVoucher;

impl Voucher for UnknownVoucher {
    const TYPE: &'static str = "test/unknown";
    fn to_node(&self) -> Node {
        Node::Null
    }
    fn from_node(_: &Node) -> Result<Self, VoucherError> {
        Ok(UnknownVoucher)
    }
}

/// A voucher result: an amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Amount(pub u64);

impl VoucherResult for Amount {
    const TYPE: &'static str = "test/amount";
    fn to_node(&self) -> Node {
        Node::Integer(i128::from(self.0))
    }
    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        node.as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .map(Amount)
            .ok_or_else(|| VoucherError::Invalid {
                reason: "expected an unsigned integer".into(),
            })
    }
}

/// The process's resident memory in bytes: `/proc/self/statm`'s second field, in pages of the
/// size the kernel reports for the process's first mapping.
pub fn resident_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("statm has no resident field")?
        .parse()?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let page_kib: u64 = smaps
        .lines()
        .find_map(|line| line.strip_prefix("KernelPageSize:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .context("smaps has no page size")?
        .trim()
        .parse()?;
    Ok(pages * page_kib * 1024)
}

/// A payment voucher: an amount of bytes paid for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment(pub u64);

impl Voucher for Payment {
    const TYPE: &'static str = "test/payment";
    fn to_node(&self) -> Node {
        Node::Integer(i128::from(self.0))
    }
    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        node.as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .map(Payment)
            .ok_or_else(|| VoucherError::Invalid {
                reason: "expected an unsigned integer".into(),
            })
    }
}

/// A provider's account of one channel.
#[derive(Debug, Default)]
pub struct Account {
    /// Bytes charged and not paid for yet.
    pub unpaid: u64,
    /// Bytes paid for.
    pub paid: u64,
    /// Payment requests made.
    pub requests: u64,
}

/// What the [`Amount`] of a provider's voucher results states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bill {
    /// What is owed when asking; a payment is answered with 0.
    Owed,
    /// The whole bill so far, paid and unpaid, when asking and when answering a payment, so
    /// that a request the client hears twice (graphsync delivers a message riding with a block
    /// under two extension names, as Go does) is not paid twice.
    Whole,
}

/// A provider's pricing: one byte costs one unit; pause whenever `interval` is owed, and ask
/// for the rest at the end (`on_complete`).
pub struct Pricing {
    /// The debt that pauses the transfer.
    pub interval: u64,
    /// What the voucher results state.
    pub bill: Bill,
    /// The accounts, per channel.
    pub accounts: Arc<Mutex<BTreeMap<ChannelId, Account>>>,
}

impl Pricing {
    fn with<R>(&self, channel: &ChannelId, f: impl FnOnce(&mut Account) -> R) -> R {
        let mut accounts = self.accounts.lock().expect("test lock");
        f(accounts.entry(channel.clone()).or_default())
    }

    /// Asks for payment.
    fn ask(&self, account: &mut Account) -> Decision {
        account.requests += 1;
        let amount = match self.bill {
            Bill::Owed => account.unpaid,
            Bill::Whole => account.paid + account.unpaid,
        };
        Decision::pause().with_result(&Amount(amount))
    }
}

impl Revalidator<Payment> for Pricing {
    fn revalidate(&self, channel: &ChannelId, voucher: &Payment) -> Decision {
        self.with(channel, |account| {
            let paid = voucher.0.min(account.unpaid);
            account.unpaid -= paid;
            account.paid += paid;
            let amount = match self.bill {
                Bill::Owed => 0,
                Bill::Whole => account.paid + account.unpaid,
            };
            Decision::resume().with_result(&Amount(amount))
        })
    }

    fn on_pull_data_sent(&self, channel: &ChannelId, bytes: u64) -> Option<Decision> {
        self.with(channel, |account| {
            account.unpaid += bytes;
            (account.unpaid >= self.interval).then(|| self.ask(account))
        })
    }

    fn on_push_data_received(&self, channel: &ChannelId, bytes: u64) -> Option<Decision> {
        self.on_pull_data_sent(channel, bytes)
    }

    fn on_complete(&self, channel: &ChannelId) -> Option<Decision> {
        self.with(channel, |account| {
            (account.unpaid > 0).then(|| self.ask(account))
        })
    }
}

/// Checks the settlement of a finished paid transfer of `total` bytes on `channel`: the client
/// paid it all in `payments`, over several pauses and a final settlement; the provider's
/// account in `accounts` is settled, with one payment request per payment; and both ends
/// (their states `at_provider` and `at_client`) recorded every voucher.
pub fn ensure_settled(
    accounts: &Mutex<BTreeMap<ChannelId, Account>>,
    channel: &ChannelId,
    total: u64,
    payments: &[u64],
    at_provider: &ChannelState,
    at_client: &ChannelState,
) -> anyhow::Result<()> {
    ensure!(
        payments.iter().sum::<u64>() == total,
        "paid {payments:?} for {total}"
    );
    ensure!(
        payments.len() >= 3,
        "several pauses and a final settlement: {payments:?}"
    );
    let account = accounts
        .lock()
        .expect("test lock")
        .remove(channel)
        .context("the provider kept an account")?;
    ensure!(account.unpaid == 0 && account.paid == total, "{account:?}");
    ensure!(account.requests == payments.len() as u64, "{account:?}");
    ensure!(at_provider.vouchers.len() == 1 + payments.len());
    ensure!(at_client.vouchers.len() == 1 + payments.len());
    Ok(())
}

/// Accepts every push and pull whose voucher is not "no"; rejects "no" with a reason.
pub struct AcceptAll;

impl RequestValidator<TestVoucher> for AcceptAll {
    fn validate_push(&self, request: &Request<'_, TestVoucher>) -> Decision {
        decide(request.voucher)
    }
    fn validate_pull(&self, request: &Request<'_, TestVoucher>) -> Decision {
        decide(request.voucher)
    }
}

fn decide(voucher: &TestVoucher) -> Decision {
    if voucher.0 == "no" {
        Decision::reject("the voucher says no")
    } else {
        Decision::accept()
    }
}

/// A peer: its manager, its blocks, and what it needs to come back after a restart.
pub struct Peer {
    pub id: PeerId,
    pub manager: Mgr,
    pub blocks: Arc<Blocks>,
    pub store: TestStore,
}

/// The hub, on the current tokio runtime.
pub fn hub() -> MemHub<Blocks> {
    MemHub::new(datatransfer_transport::mem::Config::default(), |task| {
        tokio::spawn(task);
    })
}

/// Peer `n` on `hub` with `store`, `AcceptAll` registered for `TestVoucher`, started.
pub async fn peer(hub: &MemHub<Blocks>, n: u8, store: TestStore) -> anyhow::Result<Peer> {
    peer_with(hub, n, store, Arc::new(Blocks::new()), |m| {
        m.register_voucher_type(AcceptAll)?;
        Ok(())
    })
    .await
}

/// Peer `n` with `blocks` and `store`, registrations done by `register`, started.
pub async fn peer_with(
    hub: &MemHub<Blocks>,
    n: u8,
    store: TestStore,
    blocks: Arc<Blocks>,
    register: impl FnOnce(&Mgr) -> anyhow::Result<()>,
) -> anyhow::Result<Peer> {
    peer_configured(hub, n, store, blocks, Config::default(), register).await
}

/// As [`peer_with`], with a manager configuration.
pub async fn peer_configured(
    hub: &MemHub<Blocks>,
    n: u8,
    store: TestStore,
    blocks: Arc<Blocks>,
    config: Config,
    register: impl FnOnce(&Mgr) -> anyhow::Result<()>,
) -> anyhow::Result<Peer> {
    let id = peer_id(n);
    let (transport, network) = hub
        .add_peer(id.clone(), Arc::clone(&blocks))
        .context("add peer")?;
    let manager = Manager::new(transport, network, store.clone(), config);
    register(&manager)?;
    manager.start().await?;
    Ok(Peer {
        id,
        manager,
        blocks,
        store,
    })
}

/// Waits, at most [`PATIENCE`], until the state of `channel` at `manager` satisfies `test`,
/// returning it.
pub async fn until_state<T, N>(
    manager: &Manager<T, N>,
    channel: &ChannelId,
    test: impl FnMut(&ChannelState) -> bool,
) -> anyhow::Result<ChannelState>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    until_state_within(manager, channel, PATIENCE, test).await
}

/// As [`until_state`], waiting at most `patience`.
pub async fn until_state_within<T, N>(
    manager: &Manager<T, N>,
    channel: &ChannelId,
    patience: Duration,
    mut test: impl FnMut(&ChannelState) -> bool,
) -> anyhow::Result<ChannelState>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    let mut events = manager.subscribe_channel(channel.clone());
    let wait = async {
        loop {
            if let Ok(state) = manager.channel_state(channel)
                && test(&state)
            {
                return Ok(state);
            }
            match events.recv().await {
                Ok(_) | Err(SubscriptionError::Lagged { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    };
    tokio::time::timeout(patience, wait)
        .await
        .with_context(|| {
            format!(
                "waiting on the state of {channel}; it is {} ({:?})",
                manager.status(channel),
                manager.channel_state(channel).map(|s| s.message).ok()
            )
        })?
}

/// Waits, at most `patience`, until `channel` has `status` at `manager`, returning its state;
/// fails early when it ends otherwise.
pub async fn until_status_within<T, N>(
    manager: &Manager<T, N>,
    channel: &ChannelId,
    patience: Duration,
    status: ChannelStatus,
) -> anyhow::Result<ChannelState>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    let state = until_state_within(manager, channel, patience, |s| {
        s.status == status || s.status.is_terminal()
    })
    .await?;
    if state.status != status {
        bail!(
            "{channel} ended {} ({:?}), not {status}",
            state.status,
            state.message
        );
    }
    Ok(state)
}

/// The id of test peer `n`.
pub fn peer_id(n: u8) -> PeerId {
    PeerId::from_bytes(vec![0, 0x24, 8, 1, n])
}

/// Waits, at most [`PATIENCE`], until `channel` has `status` at `manager`, returning its
/// state; fails early when it ends otherwise.
pub async fn until_status<T, N>(
    manager: &Manager<T, N>,
    channel: &ChannelId,
    status: ChannelStatus,
) -> anyhow::Result<ChannelState>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    until_status_within(manager, channel, PATIENCE, status).await
}

/// As [`until_status`], over an existing subscription to the channel.
pub async fn until_status_on(
    peer: &Mgr,
    events: &mut Subscription,
    channel: &ChannelId,
    status: ChannelStatus,
) -> anyhow::Result<ChannelState> {
    let wait = async {
        loop {
            if let Ok(state) = peer.channel_state(channel) {
                if state.status == status {
                    return Ok(state);
                }
                if state.status.is_terminal() {
                    bail!(
                        "channel {channel} ended {} ({:?}), not {status}",
                        state.status,
                        state.message
                    );
                }
            }
            match events.recv().await {
                Ok(_) | Err(SubscriptionError::Lagged { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .with_context(|| format!("waiting for {channel} to be {status}"))?
}

/// Waits for the first event of `events` that `pick` maps to `Some`.
pub async fn until_event<R>(
    events: &mut Subscription,
    mut pick: impl FnMut(&Event) -> Option<R>,
) -> anyhow::Result<R> {
    let wait = async {
        loop {
            let event = events.recv().await?;
            if let Some(found) = pick(&event) {
                return Ok::<R, anyhow::Error>(found);
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .context("waiting for an event")?
}
