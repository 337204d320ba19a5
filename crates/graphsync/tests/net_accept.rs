//! A Graphsync [`Node`] accepting a burst of inbound streams while its driver is busy: a raw
//! libp2p-stream peer opens many streams at once, each carrying one request, and every
//! request must be answered (no stream may be dropped because the driver was not polling for
//! it at that instant).
//!
//! The swarms (and the raw peer) run on their own runtime in another thread, the node's
//! driver on the test's runtime, so the connection tasks negotiate streams while the driver is
//! busy in a (deliberately slow) request hook.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use futures::StreamExt;
use graphsync::codec::frame::FrameConfig;
use graphsync::network::{Behaviour, Config, Node, RequestHook};
use graphsync::protocol::{MessageReader, PROTOCOL_V2, write_message};
use graphsync::responder::RequestDecision;
use graphsync::{CidPrefix, Message, Request, RequestId, ResponseStatus};
use ipld_selector::Selector;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, Transport, identity, noise, yamux};
use tokio::sync::{mpsc, oneshot};

/// Upper bound for waiting on the network; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(10);
/// Streams opened at once while the driver is busy.
const BURST: u8 = 40;
/// How long the request hook keeps the driver busy on the first request.
const BUSY: Duration = Duration::from_millis(600);

fn new_swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                .multiplex(yamux::Config::default())
        })
        .expect("the memory transport builds")
        .with_behaviour(|_| behaviour)
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

fn drive<B: NetworkBehaviour + Send + 'static>(mut swarm: Swarm<B>)
where
    B::ToSwarm: Send,
{
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
}

fn explore_all(n: u8, root: Cid) -> Message {
    let selector = ipld_dagcbor::decode(&Selector::explore_all_recursively().to_dag_cbor())
        .expect("the selector's own encoding decodes");
    Message::new().with_request(Request::new(RequestId::new([n; 16]), root, selector))
}

/// What a burst got: the requests answered in full within `patience`, and whether one more
/// request sent on a new stream afterwards was answered.
struct Outcome {
    answered: BTreeSet<u8>,
    late_answered: bool,
}

/// Request 0 first (its hook keeps the driver busy for [`BUSY`]), then, while the driver is
/// busy, `BURST` more streams opened at once with one request each, then one late request.
/// Runs the network on its own thread; `node_runtime` runs the node.
async fn network_side(
    node_runtime: tokio::runtime::Handle,
    config: Config,
    patience: Duration,
) -> Outcome {
    let data = b"a leaf asked for by a burst of streams".to_vec();
    let root = CidPrefix::v1(0x55, 0x12, 32)
        .to_cid(&data)
        .expect("sha2-256 is supported");
    let store = Arc::new(InMemoryBlockstore::<64>::new());
    store.put_keyed(&root, &data).await.expect("in-memory put");

    let mut responder = new_swarm(Behaviour::new());
    let mut raw = new_swarm(libp2p_stream::Behaviour::new());
    responder
        .listen_on("/memory/0".parse::<Multiaddr>().expect("a memory address"))
        .expect("listening on memory");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = responder.select_next_some().await {
            break address;
        }
    };
    raw.dial(address).expect("dialing the responder");
    let (mut raw_up, mut responder_up) = (false, false);
    while !(raw_up && responder_up) {
        tokio::select! {
            event = raw.select_next_some() => {
                raw_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
            event = responder.select_next_some() => {
                responder_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
        }
    }
    let busy_then_validate = RequestHook::new(|_, request, _| {
        if request.id == RequestId::new([0; 16]) {
            // Deliberately blocks the driver (hooks must not) to model a busy driver.
            std::thread::sleep(BUSY);
        }
        RequestDecision::validate()
    });
    let node = {
        let _on_the_node_runtime = node_runtime.enter();
        Node::spawn(
            responder.behaviour(),
            store,
            config.with_request_hook(busy_then_validate),
        )
        .expect("the responder node starts")
    };
    let control = raw.behaviour().new_control();
    let mut incoming = control
        .clone()
        .accept(PROTOCOL_V2)
        .expect("the raw peer accepts graphsync streams");
    let responder_id = *responder.local_peer_id();
    drive(responder);
    drive(raw);

    // Every response stream the responder opens is read by its own task.
    let (answers_tx, mut answers) = mpsc::channel(4 * usize::from(BURST));
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let answers = answers_tx.clone();
            tokio::spawn(async move {
                let mut reader = MessageReader::default();
                while let Ok(Some(message)) = reader.read(&mut stream).await {
                    for response in &message.responses {
                        if response.status == ResponseStatus::RequestCompletedFull {
                            let _ = answers.send(response.id).await;
                        }
                    }
                }
            });
        }
    });

    let frame = FrameConfig::default();
    let send = |n: u8| {
        let mut control = control.clone();
        async move {
            let mut stream = control.open_stream(responder_id, PROTOCOL_V2).await.ok()?;
            write_message(&mut stream, &explore_all(n, root), &frame)
                .await
                .ok()?;
            Some(stream)
        }
    };
    // Request 0 makes the driver busy; the burst arrives while it is.
    let first = send(0).await;
    assert!(first.is_some(), "the first request could not be sent");
    tokio::time::sleep(BUSY / 6).await;
    let opened = futures::future::join_all((1..=BURST).map(send)).await;

    let mut answered = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + patience;
    while answered.len() <= usize::from(BURST) {
        match tokio::time::timeout_at(deadline, answers.recv()).await {
            Ok(Some(id)) => {
                if let Some(n) = (0..=BURST).find(|n| RequestId::new([*n; 16]) == id) {
                    answered.insert(n);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }

    // The node still accepts and answers once the burst is over.
    let late = BURST + 1;
    let late_stream = send(late).await;
    let late_id = RequestId::new([late; 16]);
    let late_answered = tokio::time::timeout(PATIENCE, async {
        while let Some(id) = answers.recv().await {
            if id == late_id {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    // The streams stay open until every answer is in.
    drop((first, opened, late_stream, node));
    Outcome {
        answered,
        late_answered,
    }
}

/// Runs [`network_side`] on its own thread and runtime; the node runs on the test's runtime.
async fn burst(config: Config, patience: Duration) -> Outcome {
    let node_runtime = tokio::runtime::Handle::current();
    let (done, result) = oneshot::channel();
    let network = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the network runtime builds");
        let outcome = runtime.block_on(network_side(node_runtime, config, patience));
        let _ = done.send(outcome);
    });
    let outcome = result.await.expect("the network thread reports");
    network.join().expect("the network thread ends");
    outcome
}

#[tokio::test]
async fn a_burst_of_streams_while_the_driver_is_busy_is_accepted_and_answered() {
    let outcome = burst(Config::default(), PATIENCE).await;
    let missing: Vec<u8> = (0..=BURST)
        .filter(|n| !outcome.answered.contains(n))
        .collect();
    assert!(missing.is_empty(), "requests never answered: {missing:?}");
    assert!(outcome.late_answered, "the late request was not answered");
}

#[tokio::test]
async fn streams_past_the_accept_capacity_are_dropped_and_later_ones_are_served() {
    let config = Config {
        accept_capacity: 4,
        ..Config::default()
    };
    // Dropped streams are never answered: wait a fixed time, not for all of them.
    let outcome = burst(config, Duration::from_secs(2)).await;
    assert!(
        outcome.answered.contains(&0),
        "the request before the burst is answered: {:?}",
        outcome.answered
    );
    assert!(
        outcome.answered.len() < usize::from(BURST) + 1,
        "a queue of 4 cannot hold a burst of {BURST} while the driver is busy: {:?}",
        outcome.answered
    );
    assert!(outcome.late_answered, "the late request was not answered");
}
