//! Block-load orders of `vectors/graphsync/fixture_dag.json` and `fixture_dagpb.json`.

mod common;

use std::collections::HashMap;

use ipld_selector::{Cid, Selector};
use serde_json::Value;

/// Blocks by name (CID and bytes).
type Named = HashMap<String, (Cid, Vec<u8>)>;

fn block_map(fixture: &Value) -> (Named, HashMap<Cid, Vec<u8>>) {
    let named = common::fixture_blocks(fixture);
    let by_cid = named
        .values()
        .map(|(cid, bytes)| (*cid, bytes.clone()))
        .collect();
    (named, by_cid)
}

fn expected_loads(loads: &Value) -> Vec<(String, Cid)> {
    loads
        .as_array()
        .expect("loads")
        .iter()
        .map(|load| {
            let cid = load["cid"]
                .as_str()
                .expect("cid")
                .parse()
                .expect("valid cid");
            (load["path"].as_str().expect("path").to_string(), cid)
        })
        .collect()
}

fn actual_loads(record: &common::Record) -> Vec<(String, Cid)> {
    record
        .loads
        .iter()
        .map(|(path, cid, found)| {
            assert!(found, "every fixture block is present");
            (path.clone(), *cid)
        })
        .collect()
}

#[test]
fn explore_all_follows_block_byte_order_and_reloads_duplicates() {
    let fixture = common::vector("fixture_dag.json");
    let (named, blocks) = block_map(&fixture);
    let root = named["root"].0;
    let (record, result) = common::run(
        root,
        &Selector::explore_all_recursively(),
        common::permissive(),
        &blocks,
    );
    result.expect("traversal completes");
    let expected = expected_loads(&fixture["traversal_explore_all_recursively"]["loads"]);
    assert_eq!(expected.len(), 6);
    assert_eq!(actual_loads(&record), expected);
}

#[test]
fn explore_all_differs_from_the_sorted_map_order() {
    let fixture = common::vector("fixture_dag.json");
    let (named, blocks) = block_map(&fixture);
    let (record, result) = common::run(
        named["root"].0,
        &Selector::explore_all_recursively(),
        common::permissive(),
        &blocks,
    );
    result.expect("traversal completes");
    // "aa (mid)" -> "aa": the paths a sorting implementation would load after the root.
    let wrong: Vec<String> = fixture["traversal_explore_all_recursively"]
        ["wrong_order_if_keys_sorted_lexicographically"]
        .as_array()
        .expect("wrong order")
        .iter()
        .map(|entry| entry.as_str().expect("text").split(' ').next().expect("path").to_string())
        .collect();
    assert_eq!(wrong, ["aa", "aa/x", "b", "c/0", "c/1"]);
    let ours: Vec<String> = common::load_paths(&record).into_iter().skip(1).collect();
    assert_eq!(ours, ["b", "c/0", "c/1", "aa", "aa/x"]);
    assert_ne!(ours, wrong);
}

#[test]
fn dagpb_load_orders_match_every_listed_traversal() {
    let fixture = common::vector("fixture_dagpb.json");
    let (named, blocks) = block_map(&fixture);
    let root = named["root"].0;
    let traversals = fixture["traversals"].as_object().expect("traversals");
    assert_eq!(traversals.len(), 4);
    for (name, traversal) in traversals {
        let selector = match traversal.get("selector_dag_json") {
            Some(json) => Selector::from_dag_json(json.as_str().expect("text").as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            None => Selector::explore_all_recursively(),
        };
        let (record, result) = common::run(root, &selector, common::permissive(), &blocks);
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            actual_loads(&record),
            expected_loads(&traversal["loads"]),
            "{name}"
        );
    }
}

#[test]
fn dagpb_explore_all_visits_go_field_order_with_absent_fields() {
    let fixture = common::vector("fixture_dagpb.json");
    let (named, blocks) = block_map(&fixture);
    let (record, result) = common::run(
        named["root"].0,
        &Selector::explore_all_recursively(),
        common::permissive(),
        &blocks,
    );
    result.expect("traversal completes");
    let paths: Vec<&str> = record
        .visits
        .iter()
        .map(|(path, _, _)| path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "",
            "Links",
            "Links/0",
            "Links/0/Hash",
            "Links/0/Name",
            "Links/0/Tsize",
            "Links/1",
            "Links/1/Hash",
            "Links/1/Name",
            "Links/1/Tsize",
            "Data",
        ]
    );
    // The leaf visited at Links/0/Hash is the loaded raw block, not the link.
    assert_eq!(
        record.visits[3].1,
        ipld_dagcbor::Node::Bytes(b"file a".to_vec().into())
    );
}

#[test]
fn dagpb_depth_counts_three_steps_per_level() {
    let fixture = common::vector("fixture_dagpb.json");
    let (named, blocks) = block_map(&fixture);
    let root = named["root"].0;
    let loads_at = |depth: i64| {
        let json =
            format!(r#"{{"R":{{"l":{{"depth":{depth}}},":>":{{"a":{{">":{{"@":{{}}}}}}}}}}}}"#);
        let selector = Selector::from_dag_json(json.as_bytes()).expect("valid");
        let (record, result) = common::run(root, &selector, common::permissive(), &blocks);
        result.expect("completes");
        record.loads.len()
    };
    assert_eq!(
        [loads_at(0), loads_at(1), loads_at(2), loads_at(3)],
        [1, 1, 1, 1]
    );
    assert_eq!([loads_at(4), loads_at(5)], [3, 3]);
}
