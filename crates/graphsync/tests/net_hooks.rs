//! The hook actions and listeners the scenarios do not reach: extensions and termination from
//! block hooks on both sides, termination from the request-updated hook, the completed-response
//! listener, and network-error listeners for an inbound stream that fails and for responses
//! that cannot be sent.

mod net_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use graphsync::codec::frame::FrameConfig;
use graphsync::network::{Config, NetworkFailure, Node};
use graphsync::protocol::{PROTOCOL_V2, write_message};
use graphsync::requester::{Failure, Outcome};
use graphsync::{Extensions, Message, Request, RequestId, ResponseStatus};
use ipld_dagcbor::Node as Ipld;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identity, noise, yamux};
use net_support::{
    Dag, PATIENCE, bounded, finish, memory_swarm, pair, pair_with, received, store_with,
};

fn all() -> ipld_selector::Selector {
    ipld_selector::Selector::explore_all_recursively()
}

/// Shared storage for what a hook or listener saw.
type Seen<T> = Arc<Mutex<Vec<T>>>;

fn seen<T>() -> Seen<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn take<T: Clone>(seen: &Seen<T>) -> Vec<T> {
    seen.lock().expect("not poisoned").clone()
}

/// Waits until `seen` holds at least `n` entries.
async fn at_least<T: Clone>(seen: &Seen<T>, n: usize) -> Vec<T> {
    bounded("the listener", async {
        loop {
            let all = take(seen);
            if all.len() >= n {
                return all;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test]
async fn outgoing_block_hook_extensions_travel_with_the_block_and_terminate_answers_32() {
    let dag = Dag::tree(60);
    let order = dag.tree_order();
    let pair = pair(&dag.blocks).await;
    let _hook = pair
        .responder
        .register_outgoing_block_hook(|_, _, record, actions| match record.index {
            1 => actions.add_extension("with-root", Some(Ipld::from(record.size))),
            3 => actions.terminate("enough"),
            _ => {}
        });
    let responses = seen();
    let sink = responses.clone();
    let _responses = pair
        .requester
        .register_incoming_response_hook(move |_, response, _| {
            sink.lock()
                .expect("not poisoned")
                .push((response.status, response.extensions.clone()));
        });
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (_, outcome) = finish(handle).await;
    assert!(
        matches!(outcome, Ok(Outcome::Failed(Failure::FailedUnknown))),
        "{outcome:?}"
    );
    let responses = take(&responses);
    let root_size = dag.data(&order[0]).len() as u64;
    assert_eq!(
        responses[0].1.get("with-root"),
        Some(Some(&Ipld::from(root_size))),
        "{responses:?}"
    );
    assert_eq!(
        responses.last().map(|(status, _)| *status),
        Some(ResponseStatus::RequestFailedUnknown)
    );
}

#[tokio::test]
async fn incoming_block_hook_extensions_reach_the_responder_as_an_update() {
    let dag = Dag::flat(40, 64, 61);
    let order = dag.flat_order();
    let pair = pair(&dag.blocks).await;
    let updates = seen();
    let sink = updates.clone();
    let _updated = pair
        .responder
        .register_request_updated_hook(move |_, _, update, _| {
            sink.lock().expect("not poisoned").push(update.clone());
        });
    // Paused after the first block so the update finds the response still running.
    let once = Arc::new(AtomicBool::new(false));
    let flag = once.clone();
    let _pause = pair
        .responder
        .register_outgoing_block_hook(move |_, _, _, actions| {
            if !flag.swap(true, Ordering::SeqCst) {
                actions.pause();
            }
        });
    let _update = pair
        .requester
        .register_incoming_block_hook(|_, block, actions| {
            if block.index == 0 {
                actions.add_extension("got-root", Some(Ipld::from(true)));
            }
        });
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let updates = at_least(&updates, 1).await;
    assert_eq!(
        updates[0].get("got-root"),
        Some(Some(&Ipld::from(true))),
        "{updates:?}"
    );
    pair.responder
        .unpause_response(pair.requester_id, handle.id(), Extensions::new())
        .await
        .expect("paused");
    let mut events = Vec::new();
    while let Some(event) = bounded("progress", handle.next_event()).await {
        events.push(event);
    }
    assert_eq!(received(&events), order);
    let outcome = handle.outcome().await;
    assert!(matches!(outcome, Ok(Outcome::Completed(_))), "{outcome:?}");
}

#[tokio::test]
async fn incoming_block_hook_terminate_cancels_the_remote_and_fails_the_request() {
    let dag = Dag::tree(62);
    let order = dag.tree_order();
    let pair = pair(&dag.blocks).await;
    let cancelled = seen();
    let sink = cancelled.clone();
    let _cancelled = pair
        .responder
        .register_requestor_cancelled_listener(move |_, request| {
            sink.lock().expect("not poisoned").push(request);
        });
    // The responder pauses after the second block so the cancel finds it alive.
    let _pause = pair
        .responder
        .register_outgoing_block_hook(|_, _, record, actions| {
            if record.index == 2 {
                actions.pause();
            }
        });
    let _stop = pair
        .requester
        .register_incoming_block_hook(|_, block, actions| {
            if block.index == 1 {
                actions.terminate("not this one");
            }
        });
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let id = handle.id();
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), order[..2]);
    match outcome {
        Ok(Outcome::Failed(Failure::HookTerminated { reason })) => {
            assert_eq!(reason, "not this one");
        }
        other => panic!("expected a hook termination, got {other:?}"),
    }
    assert_eq!(at_least(&cancelled, 1).await, [id]);
}

#[tokio::test]
async fn request_updated_hook_terminate_answers_32() {
    let dag = Dag::tree(63);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default(),
    )
    .await;
    let _pause = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| {
            actions.validate();
            actions.pause();
        });
    let _refuse = pair
        .responder
        .register_request_updated_hook(|_, _, _, actions| actions.terminate("bad voucher"));
    let mut handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    bounded("the pause", async {
        while let Some(event) = handle.next_event().await {
            if event
                == (graphsync::network::RequestEvent::ResponseReceived {
                    status: ResponseStatus::RequestPaused,
                })
            {
                return;
            }
        }
        panic!("the request ended before pausing");
    })
    .await;
    pair.requester
        .send_update(
            handle.id(),
            Extensions::new().with("voucher", Some(Ipld::from(1u64))),
        )
        .await
        .expect("the responder serves it");
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(
        matches!(outcome, Ok(Outcome::Failed(Failure::FailedUnknown))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn completed_response_listener_reports_each_terminal_status() {
    let dag = Dag::tree(64);
    let pair = pair(&dag.blocks).await;
    let completed = seen();
    let sink = completed.clone();
    let _completed =
        pair.responder
            .register_completed_response_listener(move |peer, request, status| {
                sink.lock()
                    .expect("not poisoned")
                    .push((*peer, request, status));
            });
    let mut ids = Vec::new();
    let mut outcomes = Vec::new();
    for root in [dag.root, Dag::tree(65).root] {
        let handle = pair
            .requester
            .request(pair.responder_id, root, all(), Extensions::new())
            .await
            .expect("the request starts");
        ids.push(handle.id());
        outcomes.push(finish(handle).await.1);
    }
    assert!(
        matches!(outcomes[0], Ok(Outcome::Completed(_))),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Ok(Outcome::Failed(Failure::ContentNotFound))),
        "{outcomes:?}"
    );
    let mut seen = at_least(&completed, 2).await;
    seen.sort_by_key(|(_, request, _)| ids.iter().position(|id| id == request));
    assert_eq!(
        seen,
        [
            (
                pair.requester_id,
                ids[0],
                ResponseStatus::RequestCompletedFull
            ),
            (
                pair.requester_id,
                ids[1],
                ResponseStatus::RequestFailedContentNotFound
            ),
        ]
    );
}

/// A raw libp2p-stream swarm connected to a fresh graphsync node; the raw side registers no
/// graphsync protocol, so the node cannot open streams back.
async fn raw_peer() -> (
    Swarm<libp2p_stream::Behaviour>,
    Node,
    PeerId,
    Seen<NetworkFailure>,
) {
    let dag = Dag::tree(66);
    let mut node_swarm = memory_swarm();
    let mut raw =
        libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_other_transport(|key| {
                MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                    .multiplex(yamux::Config::default())
            })
            .expect("the memory transport builds")
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .expect("the behaviour builds")
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build();
    node_swarm
        .listen_on("/memory/0".parse::<Multiaddr>().expect("an address"))
        .expect("listening");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = node_swarm.select_next_some().await {
            break address;
        }
    };
    raw.dial(address).expect("dialing");
    let (mut raw_up, mut node_up) = (false, false);
    while !(raw_up && node_up) {
        tokio::select! {
            event = raw.select_next_some() => {
                raw_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
            event = node_swarm.select_next_some() => {
                node_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
        }
    }
    let config = Config {
        open_timeout: PATIENCE / 4,
        ..Config::default()
    };
    let node = Node::spawn(
        node_swarm.behaviour(),
        store_with(&dag.blocks).await,
        config,
    )
    .expect("the node starts");
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = failures.clone();
    let _errors = node.register_network_error_listener(move |_, failure| {
        sink.lock().expect("not poisoned").push(failure.clone());
    });
    let _validate = node.register_incoming_request_hook(|_, _, actions| actions.validate());
    let node_id = *node_swarm.local_peer_id();
    net_support::drive(node_swarm);
    (raw, node, node_id, failures)
}

#[tokio::test]
async fn an_inbound_stream_that_fails_to_decode_is_reported_to_network_error_listeners() {
    let (raw, _node, node_id, failures) = raw_peer().await;
    let mut control = raw.behaviour().new_control();
    tokio::spawn(async move {
        let mut raw = raw;
        loop {
            raw.select_next_some().await;
        }
    });
    let mut stream = control
        .open_stream(node_id, PROTOCOL_V2)
        .await
        .expect("the node speaks 2.0.0");
    // One frame whose body is a CBOR integer, not a message.
    futures::AsyncWriteExt::write_all(&mut stream, &[0x01, 0x01])
        .await
        .expect("written");
    let failures = at_least(&failures, 1).await;
    assert!(
        matches!(&failures[0], NetworkFailure::Receive { .. }),
        "{failures:?}"
    );
}

#[tokio::test]
async fn responses_that_cannot_be_sent_are_reported_to_network_error_listeners() {
    let (raw, _node, node_id, failures) = raw_peer().await;
    let mut control = raw.behaviour().new_control();
    tokio::spawn(async move {
        let mut raw = raw;
        loop {
            raw.select_next_some().await;
        }
    });
    let mut stream = control
        .open_stream(node_id, PROTOCOL_V2)
        .await
        .expect("the node speaks 2.0.0");
    let dag = Dag::tree(66);
    let selector = ipld_dagcbor::decode(&all().to_dag_cbor()).expect("a selector node");
    let id = RequestId::new([6; 16]);
    let request = Message::new().with_request(Request::new(id, dag.root, selector));
    write_message(&mut stream, &request, &FrameConfig::default())
        .await
        .expect("the request is written");
    // The node cannot open a stream back (the raw peer speaks no graphsync): its response
    // fails, and the listener hears of it.
    let failures = at_least(&failures, 1).await;
    assert!(
        failures
            .iter()
            .any(|f| matches!(f, NetworkFailure::ResponseNotSent { request } if *request == id)),
        "{failures:?}"
    );
}

#[tokio::test]
async fn a_hook_that_panics_terminates_its_request_and_the_node_goes_on() {
    let dag = Dag::tree(67);
    let pair = pair(&dag.blocks).await;
    let panicky = pair
        .responder
        .register_incoming_request_hook(|_, _, _| panic!("a broken request hook"));
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(
        matches!(outcome, Ok(Outcome::Failed(Failure::FailedUnknown))),
        "the responder answered 32: {outcome:?}"
    );

    panicky.unregister();
    let _broken = pair
        .requester
        .register_incoming_response_hook(|_, _, _| panic!("a broken response hook"));
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("both nodes still run");
    let (_, outcome) = finish(handle).await;
    match outcome {
        Ok(Outcome::Failed(Failure::HookTerminated { reason })) => {
            assert_eq!(reason, "a hook panicked");
        }
        other => panic!("expected the requester's hook to terminate, got {other:?}"),
    }
}
