//! Graphsync 1.0.0 on the network: a node configured for one version only, against a node that
//! speaks both (it opens with 2.0.0, falls back to 1.0.0, and answers on the version used).

mod net_support;

use std::sync::{Arc, Mutex};

use graphsync::network::{Config, NodeError, Version};
use graphsync::requester::Outcome;
use graphsync::{Extensions, RequestId, ResponseStatus};
use ipld_dagcbor::Node as Ipld;
use net_support::{Dag, assert_stored, finish, pair_with, received, store_with};

fn all() -> ipld_selector::Selector {
    ipld_selector::Selector::explore_all_recursively()
}

#[tokio::test]
async fn a_v1_only_responder_serves_a_requester_that_falls_back_from_v2() {
    let dag = Dag::tree(40);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default().with_protocols(vec![Version::V1]),
        Config::default(),
    )
    .await;
    let seen: Arc<Mutex<Vec<RequestId>>> = Arc::default();
    let sink = seen.clone();
    let _validate = pair
        .responder
        .register_incoming_request_hook(move |_, request, actions| {
            sink.lock().expect("not poisoned").push(request.id);
            actions.validate();
            actions.add_extension("served-on", Some(Ipld::from("1.0.0")));
        });
    let extensions: Arc<Mutex<Vec<Extensions>>> = Arc::default();
    let ext_sink = extensions.clone();
    let _responses = pair
        .requester
        .register_incoming_response_hook(move |_, response, _| {
            ext_sink
                .lock()
                .expect("not poisoned")
                .push(response.extensions.clone());
        });
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let id = handle.id();
    let (events, outcome) = finish(handle).await;
    assert_eq!(received(&events), dag.tree_order());
    match outcome {
        Ok(Outcome::Completed(completion)) => {
            assert_eq!(
                completion.status,
                Some(ResponseStatus::RequestCompletedFull)
            );
        }
        other => panic!("expected a completion, got {other:?}"),
    }
    assert_stored(&pair.requester_store, &dag.blocks).await;
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 1);
    assert_ne!(
        seen[0], id,
        "on 1.0.0 the responder knows the request by an id of its own making"
    );
    let extensions = extensions.lock().expect("not poisoned").clone();
    assert_eq!(
        extensions[0].get("served-on"),
        Some(Some(&Ipld::from("1.0.0")))
    );
}

#[tokio::test]
async fn a_v1_only_requester_is_answered_on_v1_by_a_node_speaking_both() {
    let dag = Dag::tree(41);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default(),
        Config::default().with_protocols(vec![Version::V1]),
    )
    .await;
    let _validate = pair
        .responder
        .register_incoming_request_hook(|_, _, actions| actions.validate());
    for _ in 0..2 {
        let handle = pair
            .requester
            .request(pair.responder_id, dag.root, all(), Extensions::new())
            .await
            .expect("the request starts");
        let (events, outcome) = finish(handle).await;
        assert_eq!(received(&events), dag.tree_order());
        match outcome {
            Ok(Outcome::Completed(completion)) => {
                assert_eq!(
                    completion.status,
                    Some(ResponseStatus::RequestCompletedFull)
                );
            }
            other => panic!("expected a completion, got {other:?}"),
        }
    }
    assert_stored(&pair.requester_store, &dag.blocks).await;
}

#[tokio::test]
async fn a_v2_only_requester_cannot_reach_a_v1_only_responder() {
    let dag = Dag::tree(42);
    let pair = pair_with(
        store_with(&dag.blocks).await,
        Config::default().with_protocols(vec![Version::V1]),
        Config::default().with_protocols(vec![Version::V2]),
    )
    .await;
    let handle = pair
        .requester
        .request(pair.responder_id, dag.root, all(), Extensions::new())
        .await
        .expect("the request starts");
    let id = handle.id();
    let (events, outcome) = finish(handle).await;
    assert!(received(&events).is_empty());
    assert!(
        matches!(outcome, Err(NodeError::Unreachable { peer, request }) if peer == pair.responder_id && request == id),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn repeated_or_empty_version_lists_start_a_node() {
    for protocols in [vec![Version::V2, Version::V1, Version::V2], vec![]] {
        let swarm = net_support::memory_swarm();
        let store = Arc::new(net_support::Store::new());
        let node = graphsync::network::Node::spawn(
            swarm.behaviour(),
            store,
            Config::default().with_protocols(protocols.clone()),
        );
        assert!(node.is_ok(), "{protocols:?}: {node:?}");
    }
}
