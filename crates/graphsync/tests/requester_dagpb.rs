//! The requester over the dag-pb fixture (`fixture_dagpb.json`): a CIDv0 root, the load order
//! of each listed selector verified and completed, exactly the loaded blocks stored.

mod requester_support;

use std::path::PathBuf;

use bytes::Bytes;
use graphsync::requester::{Config, Failure, Outcome};
use graphsync::{Block, CidPrefix, Extensions, LinkAction, Metadatum, ResponseStatus};
use ipld_dagcbor::Cid;
use ipld_selector::Selector;
use requester_support::{Harness, PEER, response};

struct Vector {
    blocks: Vec<(Cid, Bytes)>,
    traversals: serde_json::Map<String, serde_json::Value>,
}

fn vector() -> Vector {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/vectors/graphsync/fixture_dagpb.json"
    ));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let blocks = ["root", "leafA", "leafB"]
        .into_iter()
        .map(|name| {
            let entry = &json["blocks"][name];
            let cid: Cid = entry["cid"].as_str().expect("cid").parse().expect("a cid");
            let data = hex::decode(entry["data_hex"].as_str().expect("hex")).expect("hex");
            assert_eq!(CidPrefix::of(&cid).to_cid(&data).expect("hash"), cid);
            (cid, Bytes::from(data))
        })
        .collect();
    let traversals = json["traversals"].as_object().expect("traversals").clone();
    Vector { blocks, traversals }
}

fn selector_of(name: &str, traversal: &serde_json::Value) -> Selector {
    match traversal
        .get("selector_dag_json")
        .and_then(serde_json::Value::as_str)
    {
        Some(text) => Selector::from_dag_json(text.as_bytes()).expect("selector parses"),
        None => {
            assert_eq!(name, "explore_all_recursively");
            Selector::explore_all_recursively()
        }
    }
}

fn loads_of(traversal: &serde_json::Value) -> Vec<(Cid, String)> {
    traversal["loads"]
        .as_array()
        .expect("loads")
        .iter()
        .map(|load| {
            (
                load["cid"].as_str().expect("cid").parse().expect("a cid"),
                load["path"].as_str().expect("path").to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_dagpb_load_order_verifies_and_stores_exactly_its_blocks() {
    let vector = vector();
    assert_eq!(vector.traversals.len(), 4);
    for (name, traversal) in &vector.traversals {
        let loads = loads_of(traversal);
        let mut harness = Harness::new(Config::default());
        let id = harness
            .requester
            .request(
                PEER,
                vector.blocks[0].0,
                &selector_of(name, traversal),
                Extensions::new(),
            )
            .expect("accepted");
        harness.drain();
        let metadata: Vec<Metadatum> = loads
            .iter()
            .map(|(cid, _)| Metadatum::new(*cid, LinkAction::Present))
            .collect();
        let blocks: Vec<Block> = vector
            .blocks
            .iter()
            .filter(|(cid, _)| loads.iter().any(|(load, _)| load == cid))
            .map(|(cid, data)| Block::from_cid(cid, data.clone()))
            .collect();
        harness.receive(
            PEER,
            response(id, ResponseStatus::RequestCompletedFull, metadata, blocks),
        );
        assert!(
            matches!(harness.outcome(id), Some(Outcome::Completed(c)) if c.missing.is_empty()),
            "{name}: {:?}",
            harness.outcome(id)
        );
        let order: Vec<(Cid, String)> = harness
            .received()
            .into_iter()
            .map(|(cid, path, _, _)| (cid, path))
            .collect();
        assert_eq!(order, loads, "{name}");
        let stored = harness.stored_cids();
        let expected: Vec<Cid> = loads.iter().map(|(cid, _)| *cid).collect();
        assert_eq!(stored, expected, "{name}");
    }
}

#[test]
fn dagpb_leaves_in_swapped_order_fail_the_request() {
    let vector = vector();
    let traversal = &vector.traversals["explore_all_recursively"];
    let mut loads = loads_of(traversal);
    loads.swap(1, 2);
    let mut harness = Harness::new(Config::default());
    let id = harness
        .requester
        .request(
            PEER,
            vector.blocks[0].0,
            &Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .expect("accepted");
    harness.drain();
    let metadata = loads
        .iter()
        .map(|(cid, _)| Metadatum::new(*cid, LinkAction::Present))
        .collect();
    let blocks = vector
        .blocks
        .iter()
        .map(|(cid, data)| Block::from_cid(cid, data.clone()))
        .collect();
    harness.receive(
        PEER,
        response(id, ResponseStatus::RequestCompletedFull, metadata, blocks),
    );
    match harness.outcome(id) {
        Some(Outcome::Failed(Failure::IncorrectResponse { path, .. })) => {
            assert_eq!(path.to_string(), "Links/0/Hash");
        }
        other => panic!("expected an incorrect response, got {other:?}"),
    }
    assert_eq!(harness.sent_kinds(id), ["n", "c"]);
    assert_eq!(harness.stored_cids(), [vector.blocks[0].0]);
}
