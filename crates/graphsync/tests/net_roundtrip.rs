//! Two swarms on libp2p's memory transport, each with a Graphsync [`Node`]: the requester
//! pulls a DAG from the responder's blockstore over `/ipfs/graphsync/2.0.0`.

use std::sync::Arc;
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use futures::StreamExt;
use graphsync::network::{
    Behaviour, Config, Node, NodeError, RequestEvent, RequestHandle, RequestHook,
};
use graphsync::requester::Outcome;
use graphsync::responder::RequestDecision;
use graphsync::{CidPrefix, Extensions, ResponseStatus};
use ipld_dagcbor::Node as Ipld;
use ipld_selector::Selector;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identity, noise, yamux};

type Store = InMemoryBlockstore<64>;

/// A DAG of dag-cbor lists over raw leaves, kept in insertion order.
struct Dag {
    root: Cid,
    blocks: Vec<(Cid, Vec<u8>)>,
}

impl Dag {
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

    /// root → [a → [leaf0, leaf1], b → [leaf2]]; returns it and the CID of leaf2.
    fn build() -> (Dag, Cid) {
        let mut dag = Dag {
            root: Cid::default(),
            blocks: Vec::new(),
        };
        let leaves: Vec<Cid> = (0..3u8)
            .map(|n| dag.add(0x55, vec![n; 100 + usize::from(n)]))
            .collect();
        let a = dag.list(&leaves[..2]);
        let b = dag.list(&leaves[2..]);
        dag.root = dag.list(&[a, b]);
        (dag, leaves[2])
    }
}

fn new_swarm() -> Swarm<Behaviour> {
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

/// Connects two fresh swarms, then drives each in its own task.
async fn connected_pair() -> (Swarm<Behaviour>, Swarm<Behaviour>, PeerId) {
    let mut listener = new_swarm();
    let mut dialer = new_swarm();
    listener
        .listen_on("/memory/0".parse::<Multiaddr>().expect("a memory address"))
        .expect("listening on memory");
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
    let listener_id = *listener.local_peer_id();
    (listener, dialer, listener_id)
}

fn drive(mut swarm: Swarm<Behaviour>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    })
}

/// The responder validates every request (explore-all has no depth limit, which go-graphsync's
/// default validator refuses).
fn validate_all() -> Config {
    Config::default().with_request_hook(RequestHook::new(|_, _, _| RequestDecision::validate()))
}

/// Both nodes of a test; the responder's driver runs as long as its handle lives.
struct Pair {
    requester: Node,
    _responder: Node,
    responder_id: PeerId,
    requester_store: Arc<Store>,
    /// The task that owns the responder's swarm; aborting it drops the swarm and its
    /// connections.
    responder_swarm: tokio::task::JoinHandle<()>,
}

impl Pair {
    /// Starts a request for everything under `root` (the explore-all selector).
    async fn pull_all(&self, root: Cid) -> RequestHandle {
        self.requester
            .request(
                self.responder_id,
                root,
                Selector::explore_all_recursively(),
                Extensions::new(),
            )
            .await
            .expect("the request starts")
    }
}

/// Asserts that a request completed with status 20 (RequestCompletedFull) and no block missing.
fn assert_completed_full(outcome: Outcome) {
    let Outcome::Completed(completion) = outcome else {
        panic!("expected completion, got {outcome:?}");
    };
    assert_eq!(
        completion.status,
        Some(ResponseStatus::RequestCompletedFull)
    );
    assert!(completion.missing.is_empty());
}

/// Starts both nodes; the responder's store holds `blocks`.
async fn start(blocks: &[(Cid, Vec<u8>)]) -> Pair {
    start_with(blocks, validate_all()).await
}

/// Starts both nodes, the responder with `responder_config`.
async fn start_with(blocks: &[(Cid, Vec<u8>)], responder_config: Config) -> Pair {
    let (responder_swarm, requester_swarm, responder_id) = connected_pair().await;
    let responder_store = Arc::new(Store::new());
    for (cid, data) in blocks {
        responder_store
            .put_keyed(cid, data)
            .await
            .expect("in-memory put");
    }
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
        Config::default(),
    )
    .expect("the requester node starts");
    let responder_swarm = drive(responder_swarm);
    drive(requester_swarm);
    Pair {
        requester,
        _responder: responder,
        responder_id,
        requester_store,
        responder_swarm,
    }
}

#[tokio::test]
async fn explore_all_pulls_every_block_and_completes_full() {
    let (dag, _) = Dag::build();
    let pair = start(&dag.blocks).await;
    let store = &pair.requester_store;

    let mut handle = pair.pull_all(dag.root).await;
    let mut received = Vec::new();
    let mut statuses = Vec::new();
    while let Some(event) = handle.next_event().await {
        match event {
            RequestEvent::BlockReceived { cid, .. } => received.push(cid),
            RequestEvent::ResponseReceived { status } => statuses.push(status),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let outcome = handle.outcome().await.expect("an outcome");
    assert_completed_full(outcome);
    assert_eq!(statuses.last(), Some(&ResponseStatus::RequestCompletedFull));

    let expected: Vec<Cid> = dag.blocks.iter().map(|(cid, _)| *cid).collect();
    let mut sorted_received = received.clone();
    sorted_received.sort();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(sorted_received, sorted_expected);
    assert_eq!(received[0], dag.root, "the root is loaded first");
    for (cid, data) in &dag.blocks {
        let stored = store.get(cid).await.expect("in-memory get");
        assert_eq!(stored.as_deref(), Some(&data[..]), "block {cid} stored");
    }
}

#[tokio::test]
async fn missing_leaf_completes_partial_with_the_link_reported() {
    let (dag, missing_leaf) = Dag::build();
    let served: Vec<(Cid, Vec<u8>)> = dag
        .blocks
        .iter()
        .filter(|(cid, _)| *cid != missing_leaf)
        .cloned()
        .collect();
    let pair = start(&served).await;
    let store = &pair.requester_store;

    let mut handle = pair.pull_all(dag.root).await;
    let mut missing_events = Vec::new();
    while let Some(event) = handle.next_event().await {
        if let RequestEvent::BlockMissing { cid } = event {
            missing_events.push(cid);
        }
    }
    let outcome = handle.outcome().await.expect("an outcome");
    let Outcome::Completed(completion) = outcome else {
        panic!("expected completion, got {outcome:?}");
    };
    assert_eq!(
        completion.status,
        Some(ResponseStatus::RequestCompletedPartial)
    );
    let missing: Vec<Cid> = completion.missing.iter().map(|(_, cid)| *cid).collect();
    assert_eq!(missing, [missing_leaf]);
    assert_eq!(missing_events, [missing_leaf]);
    for (cid, data) in &served {
        let stored = store.get(cid).await.expect("in-memory get");
        assert_eq!(stored.as_deref(), Some(&data[..]), "block {cid} stored");
    }
    assert_eq!(store.get(&missing_leaf).await.expect("in-memory get"), None);
}

#[tokio::test]
async fn cancel_ends_a_paused_request_as_cancelled_and_stores_nothing() {
    let (dag, _) = Dag::build();
    // The responder validates and pauses before the traversal: nothing is sent until the
    // requester cancels, so the cancel cannot race the completion.
    let paused = Config::default().with_request_hook(RequestHook::new(|_, _, _| {
        RequestDecision::validate().with_pause()
    }));
    let pair = start_with(&dag.blocks, paused).await;

    let mut handle = pair.pull_all(dag.root).await;
    let id = handle.id();
    pair.requester
        .cancel(id)
        .await
        .expect("the request is known");
    while let Some(event) = handle.next_event().await {
        assert!(
            !matches!(event, RequestEvent::BlockReceived { .. }),
            "no block before the cancel: {event:?}"
        );
    }
    let outcome = handle.outcome().await.expect("an outcome");
    assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
    let again = pair.requester.cancel(id).await;
    assert!(
        matches!(again, Err(NodeError::Command { request, .. }) if request == id),
        "a finished request is unknown: {again:?}"
    );
    for (cid, _) in &dag.blocks {
        assert_eq!(
            pair.requester_store.get(cid).await.expect("in-memory get"),
            None
        );
    }
}

#[tokio::test]
async fn losing_the_responder_is_reported_and_the_request_stays_cancellable() {
    let (dag, _) = Dag::build();
    let paused = Config::default().with_request_hook(RequestHook::new(|_, _, _| {
        RequestDecision::validate().with_pause()
    }));
    let pair = start_with(&dag.blocks, paused).await;
    let mut handle = pair.pull_all(dag.root).await;

    pair.responder_swarm.abort();
    loop {
        match handle.next_event().await {
            Some(RequestEvent::PeerDisconnected) => break,
            Some(RequestEvent::BlockReceived { cid, .. }) => panic!("block {cid} while paused"),
            Some(_) => {}
            None => panic!("the request ended before the disconnect was reported"),
        }
    }
    let id = handle.id();
    pair.requester
        .cancel(id)
        .await
        .expect("the request is still alive after the disconnect");
    let outcome = handle.outcome().await.expect("an outcome");
    assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
}

/// A caller that wants only the outcome drops the progress events with the handle: the
/// request still completes with every block stored, past the default event capacity.
#[tokio::test]
async fn awaiting_only_the_outcome_completes_with_every_block() {
    let mut dag = Dag {
        root: Cid::default(),
        blocks: Vec::new(),
    };
    let capacity = Config::default().event_capacity;
    let leaves: Vec<Cid> = (0..capacity + 500)
        .map(|n| dag.add(0x55, format!("leaf {n}").into_bytes()))
        .collect();
    dag.root = dag.list(&leaves);
    let pair = start(&dag.blocks).await;

    let handle = pair.pull_all(dag.root).await;
    let outcome = tokio::time::timeout(Duration::from_secs(30), handle.outcome())
        .await
        .expect("the outcome comes without anyone reading the events")
        .expect("an outcome");
    assert_completed_full(outcome);
    for (cid, data) in &dag.blocks {
        let stored = pair.requester_store.get(cid).await.expect("in-memory get");
        assert_eq!(stored.as_deref(), Some(&data[..]), "block {cid} stored");
    }
}
