//! Helpers of the two-node tests: swarms on the memory transport (and loopback TCP), DAG
//! builders, gated and slow stores, node set-up and bounded waits.

#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use futures::StreamExt;
use graphsync::network::{Behaviour, Config, Node, NodeError, RequestEvent, RequestHandle};
use graphsync::requester::Outcome;
use graphsync::{CidPrefix, Extensions};
use ipld_dagcbor::Node as Ipld;
use ipld_selector::Selector;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identity, noise, tcp, yamux};
use tokio::sync::{Notify, Semaphore};

/// Upper bound for any wait; only reached when a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The in-memory store of the tests.
pub(crate) type Store = InMemoryBlockstore<64>;

/// Runs `future`, failing the test if it takes longer than [`PATIENCE`].
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A DAG of dag-cbor lists over raw leaves, blocks kept in creation order.
#[derive(Clone, Debug)]
pub(crate) struct Dag {
    pub(crate) root: Cid,
    pub(crate) blocks: Vec<(Cid, Vec<u8>)>,
}

impl Dag {
    fn empty() -> Dag {
        Dag {
            root: Cid::default(),
            blocks: Vec::new(),
        }
    }

    fn add(&mut self, codec: u64, data: Vec<u8>) -> Cid {
        let cid = CidPrefix::v1(codec, 0x12, 32)
            .to_cid(&data)
            .expect("sha2-256 is supported");
        self.blocks.push((cid, data));
        cid
    }

    fn list(&mut self, links: &[Cid]) -> Cid {
        let node = Ipld::from(links.iter().map(|c| Ipld::from(*c)).collect::<Vec<_>>());
        let data = ipld_dagcbor::to_vec(&node).expect("a list of links encodes");
        self.add(0x71, data)
    }

    /// root → [a → [leaf0, leaf1], b → [leaf2]], leaves salted with `salt`. The explore-all
    /// load order is root, a, leaf0, leaf1, b, leaf2.
    pub(crate) fn tree(salt: u8) -> Dag {
        let mut dag = Dag::empty();
        let leaves: Vec<Cid> = (0..3u8)
            .map(|n| {
                dag.add(
                    0x55,
                    vec![n ^ salt; 100 + usize::from(n) + usize::from(salt)],
                )
            })
            .collect();
        let a = dag.list(&leaves[..2]);
        let b = dag.list(&leaves[2..]);
        dag.root = dag.list(&[a, b]);
        dag
    }

    /// root → [leaf0 … leaf(n-1)], each leaf `size` bytes; load order root, leaf0, leaf1, …
    pub(crate) fn flat(n: usize, size: usize, salt: u8) -> Dag {
        let mut dag = Dag::empty();
        let leaves: Vec<Cid> = (0..n)
            .map(|i| {
                let mut data = vec![salt; size];
                data[..8].copy_from_slice(&(i as u64).to_be_bytes());
                dag.add(0x55, data)
            })
            .collect();
        dag.root = dag.list(&leaves);
        dag
    }

    /// The explore-all load order of [`Dag::tree`].
    pub(crate) fn tree_order(&self) -> Vec<Cid> {
        // Creation order: leaf0, leaf1, leaf2, a, b, root.
        let c: Vec<Cid> = self.blocks.iter().map(|(cid, _)| *cid).collect();
        vec![c[5], c[3], c[0], c[1], c[4], c[2]]
    }

    /// The explore-all load order of [`Dag::flat`].
    pub(crate) fn flat_order(&self) -> Vec<Cid> {
        let mut order = vec![self.root];
        order.extend(
            self.blocks
                .iter()
                .map(|(cid, _)| *cid)
                .filter(|cid| *cid != self.root),
        );
        order
    }

    pub(crate) fn data(&self, cid: &Cid) -> &[u8] {
        &self
            .blocks
            .iter()
            .find(|(c, _)| c == cid)
            .expect("a block of this dag")
            .1
    }
}

/// A store filled with `blocks`.
pub(crate) async fn store_with(blocks: &[(Cid, Vec<u8>)]) -> Arc<Store> {
    let store = Arc::new(Store::new());
    for (cid, data) in blocks {
        store.put_keyed(cid, data).await.expect("in-memory put");
    }
    store
}

/// Asserts that `store` holds exactly the bytes of `blocks`.
pub(crate) async fn assert_stored(store: &Store, blocks: &[(Cid, Vec<u8>)]) {
    for (cid, data) in blocks {
        let stored = store.get(cid).await.expect("in-memory get");
        assert_eq!(stored.as_deref(), Some(&data[..]), "block {cid} stored");
    }
}

/// A store that holds back loads of the gated CIDs until [`Gated::open`] (a slow or stalled
/// disk); other loads and puts go straight to the inner store.
pub(crate) struct Gated {
    pub(crate) inner: Store,
    gated: Mutex<HashSet<Cid>>,
    /// Puts wait too while this is set.
    puts_gated: Mutex<bool>,
    gate: Notify,
    pub(crate) waiting: Notify,
}

impl Gated {
    pub(crate) async fn new(blocks: &[(Cid, Vec<u8>)], gated: &[Cid]) -> Arc<Gated> {
        let inner = Store::new();
        for (cid, data) in blocks {
            inner.put_keyed(cid, data).await.expect("in-memory put");
        }
        Arc::new(Gated {
            inner,
            gated: Mutex::new(gated.iter().copied().collect()),
            puts_gated: Mutex::new(false),
            gate: Notify::new(),
            waiting: Notify::new(),
        })
    }

    /// An empty store whose puts wait until [`Gated::open`] (a slow disk on the requester side).
    pub(crate) fn puts_held() -> Arc<Gated> {
        Arc::new(Gated {
            inner: Store::new(),
            gated: Mutex::new(HashSet::new()),
            puts_gated: Mutex::new(true),
            gate: Notify::new(),
            waiting: Notify::new(),
        })
    }

    /// Lets every held and later load and put through.
    pub(crate) fn open(&self) {
        self.gated.lock().expect("not poisoned").clear();
        *self.puts_gated.lock().expect("not poisoned") = false;
        self.gate.notify_waiters();
    }

    fn is_gated(&self, cid: &Cid) -> bool {
        self.gated.lock().expect("not poisoned").contains(cid)
    }
}

impl Blockstore for Gated {
    async fn get<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        let cid = Cid::try_from(cid.to_bytes()).expect("a valid cid");
        loop {
            let opened = self.gate.notified();
            if !self.is_gated(&cid) {
                break;
            }
            self.waiting.notify_one();
            opened.await;
        }
        self.inner.get(&cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        loop {
            let opened = self.gate.notified();
            if !*self.puts_gated.lock().expect("not poisoned") {
                break;
            }
            self.waiting.notify_one();
            opened.await;
        }
        self.inner.put_keyed(cid, data).await
    }

    async fn remove<const S: usize>(&self, cid: &cid::CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

/// A requester store whose puts can be slowed, held or metered (a slow or stalled disk),
/// counting the puts started and finished. A put, in order: counts as started; waits while
/// its CID is held ([`SlowPuts::hold`], until [`SlowPuts::release_held`]); when metered,
/// waits for a permit ([`SlowPuts::allow`]); sleeps the delay, if any; stores; counts as
/// finished.
pub(crate) struct SlowPuts {
    pub(crate) inner: Store,
    delay: Duration,
    held: Mutex<HashSet<Cid>>,
    released: Notify,
    /// Set when each put takes a permit.
    permits: Option<Semaphore>,
    /// Puts started (waiting or done).
    started: AtomicUsize,
    /// Puts finished.
    finished: AtomicUsize,
    /// Blocks whose put has finished.
    stored: Mutex<HashSet<Cid>>,
}

impl SlowPuts {
    fn with(delay: Duration, permits: Option<Semaphore>) -> Arc<SlowPuts> {
        Arc::new(SlowPuts {
            inner: Store::new(),
            delay,
            held: Mutex::new(HashSet::new()),
            released: Notify::new(),
            permits,
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            stored: Mutex::new(HashSet::new()),
        })
    }

    /// An empty store whose every put takes `delay` (a store that syncs each block).
    pub(crate) fn delayed(delay: Duration) -> Arc<SlowPuts> {
        SlowPuts::with(delay, None)
    }

    /// An empty store whose puts finish only as the test allows them ([`SlowPuts::allow`]).
    pub(crate) fn metered() -> Arc<SlowPuts> {
        SlowPuts::with(Duration::ZERO, Some(Semaphore::new(0)))
    }

    /// Makes the puts of `cids` wait until [`SlowPuts::release_held`].
    pub(crate) fn hold(&self, cids: impl IntoIterator<Item = Cid>) {
        self.held.lock().expect("not poisoned").extend(cids);
    }

    /// Lets the held puts, and later puts of the same CIDs, go on.
    pub(crate) fn release_held(&self) {
        self.held.lock().expect("not poisoned").clear();
        self.released.notify_waiters();
    }

    /// Lets `puts` more puts of a metered store finish.
    pub(crate) fn allow(&self, puts: usize) {
        self.permits
            .as_ref()
            .expect("allow is only called on a metered store")
            .add_permits(puts);
    }

    /// Puts finished.
    pub(crate) fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    /// Whether the put of `cid` has finished.
    pub(crate) fn is_stored(&self, cid: &Cid) -> bool {
        self.stored.lock().expect("not poisoned").contains(cid)
    }

    /// Waits (bounded) until a put has started.
    pub(crate) async fn first_put_waiting(&self) {
        bounded("a put to start", async {
            while self.started.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

impl Blockstore for SlowPuts {
    async fn get<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        self.inner.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &cid::CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let key = Cid::try_from(cid.to_bytes()).expect("a valid cid");
        loop {
            let released = self.released.notified();
            if !self.held.lock().expect("not poisoned").contains(&key) {
                break;
            }
            released.await;
        }
        if let Some(permits) = &self.permits {
            permits
                .acquire()
                .await
                .expect("the semaphore is never closed")
                .forget();
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.put_keyed(cid, data).await?;
        self.stored.lock().expect("not poisoned").insert(key);
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn remove<const S: usize>(&self, cid: &cid::CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

/// A swarm with a Graphsync behaviour on the memory transport.
pub(crate) fn memory_swarm() -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                .multiplex(yamux::Config::default())
        })
        .expect("the memory transport builds")
        .with_behaviour(|_| Behaviour::new())
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A swarm with a Graphsync behaviour on loopback TCP (noise, yamux).
pub(crate) fn tcp_swarm() -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp builds")
        .with_behaviour(|_| Behaviour::new())
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Makes `listener` listen on `address` and `dialer` connect to it.
pub(crate) async fn connect(
    listener: &mut Swarm<Behaviour>,
    dialer: &mut Swarm<Behaviour>,
    address: &str,
) {
    listener
        .listen_on(address.parse::<Multiaddr>().expect("an address"))
        .expect("listening");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = listener.select_next_some().await {
            break address;
        }
    };
    dialer.dial(address).expect("dialing the listener");
    let (mut dialer_up, mut listener_up) = (false, false);
    while !(dialer_up && listener_up) {
        tokio::select! {
            event = dialer.select_next_some() => {
                dialer_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
            event = listener.select_next_some() => {
                listener_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
        }
    }
}

/// Drives a swarm in its own task; aborting the task drops the swarm and its connections.
pub(crate) fn drive(mut swarm: Swarm<Behaviour>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    })
}

/// Two connected nodes: a responder serving `responder_store` and a requester.
pub(crate) struct Pair {
    pub(crate) requester: Node,
    pub(crate) responder: Node,
    pub(crate) requester_id: PeerId,
    pub(crate) responder_id: PeerId,
    pub(crate) requester_store: Arc<Store>,
    pub(crate) responder_swarm: tokio::task::JoinHandle<()>,
    pub(crate) requester_swarm: tokio::task::JoinHandle<()>,
}

/// Starts two nodes on the memory transport with the given configs and stores.
pub(crate) async fn pair_with<B: Blockstore + 'static>(
    responder_store: Arc<B>,
    responder_config: Config,
    requester_config: Config,
) -> Pair {
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    start(
        responder_swarm,
        requester_swarm,
        responder_store,
        responder_config,
        requester_config,
    )
}

/// Starts two nodes on already connected swarms.
pub(crate) fn start<B: Blockstore + 'static>(
    responder_swarm: Swarm<Behaviour>,
    requester_swarm: Swarm<Behaviour>,
    responder_store: Arc<B>,
    responder_config: Config,
    requester_config: Config,
) -> Pair {
    let requester_store = Arc::new(Store::new());
    let responder = Node::spawn(
        responder_swarm.behaviour(),
        responder_store,
        responder_config,
    )
    .expect("the responder node starts");
    let requester = Node::spawn(
        requester_swarm.behaviour(),
        requester_store.clone(),
        requester_config,
    )
    .expect("the requester node starts");
    Pair {
        requester,
        responder,
        requester_id: *requester_swarm.local_peer_id(),
        responder_id: *responder_swarm.local_peer_id(),
        requester_store,
        responder_swarm: drive(responder_swarm),
        requester_swarm: drive(requester_swarm),
    }
}

/// Two nodes on the memory transport, the responder serving `blocks` and validating every
/// request.
pub(crate) async fn pair(blocks: &[(Cid, Vec<u8>)]) -> Pair {
    let pair = pair_with(
        store_with(blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    pair
}

/// A responder node on `swarm` serving `blocks` with `config`, validating every request.
pub(crate) async fn validating_responder(
    swarm: &Swarm<Behaviour>,
    blocks: &[(Cid, Vec<u8>)],
    config: Config,
) -> Node {
    let responder = Node::spawn(swarm.behaviour(), store_with(blocks).await, config)
        .expect("the responder starts");
    // Dropping the handle keeps the hook.
    let _validate = responder.register_incoming_request_hook(|_, _, actions| actions.validate());
    responder
}

/// Two nodes connected over the memory transport, their swarms running until the test's
/// runtime ends: a [`validating_responder`] serving `blocks` and a requester storing into
/// `requester_store`, both with the default config. Returns the requester, the responder's
/// peer id and the responder (to keep while it should run).
pub(crate) async fn nodes<B: Blockstore + 'static>(
    blocks: &[(Cid, Vec<u8>)],
    requester_store: Arc<B>,
) -> (Node, PeerId, Node) {
    nodes_with(
        blocks,
        Config::default(),
        requester_store,
        Config::default(),
    )
    .await
}

/// [`nodes`] with the given configs.
pub(crate) async fn nodes_with<B: Blockstore + 'static>(
    blocks: &[(Cid, Vec<u8>)],
    responder_config: Config,
    requester_store: Arc<B>,
    requester_config: Config,
) -> (Node, PeerId, Node) {
    let mut responder_swarm = memory_swarm();
    let mut requester_swarm = memory_swarm();
    connect(&mut responder_swarm, &mut requester_swarm, "/memory/0").await;
    let responder = validating_responder(&responder_swarm, blocks, responder_config).await;
    let requester = Node::spawn(
        requester_swarm.behaviour(),
        requester_store,
        requester_config,
    )
    .expect("the requester starts");
    let responder_id = *responder_swarm.local_peer_id();
    drop(drive(responder_swarm));
    drop(drive(requester_swarm));
    (requester, responder_id, responder)
}

/// Starts an explore-all request of `root` at `responder`; `what` names the request in the
/// failure message.
pub(crate) async fn request_all(
    requester: &Node,
    responder: PeerId,
    root: Cid,
    what: &str,
) -> RequestHandle {
    requester
        .request(
            responder,
            root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .unwrap_or_else(|error| panic!("{what} does not start: {error}"))
}

/// Asserts that `outcome` is a completion with no block missing.
#[track_caller]
pub(crate) fn assert_complete(outcome: &Result<Outcome, NodeError>) {
    assert!(
        matches!(outcome, Ok(Outcome::Completed(completion)) if completion.missing.is_empty()),
        "{outcome:?}"
    );
}

/// Reads every progress event of a request, then its outcome.
pub(crate) async fn finish(
    mut handle: RequestHandle,
) -> (Vec<RequestEvent>, Result<Outcome, NodeError>) {
    bounded("the request to end", async move {
        let mut events = Vec::new();
        while let Some(event) = handle.next_event().await {
            events.push(event);
        }
        (events, handle.outcome().await)
    })
    .await
}

/// The CIDs of the `BlockReceived` events, in order.
pub(crate) fn received(events: &[RequestEvent]) -> Vec<Cid> {
    events
        .iter()
        .filter_map(|event| match event {
            RequestEvent::BlockReceived { cid, .. } => Some(*cid),
            _ => None,
        })
        .collect()
}

/// The `(cid, wire_size)` of the `BlockReceived` events, in order.
pub(crate) fn wire_sizes(events: &[RequestEvent]) -> Vec<(Cid, u64)> {
    events
        .iter()
        .filter_map(|event| match event {
            RequestEvent::BlockReceived { cid, wire_size, .. } => Some((*cid, *wire_size)),
            _ => None,
        })
        .collect()
}
