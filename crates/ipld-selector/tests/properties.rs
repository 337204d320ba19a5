//! Property tests: explore-all loads every block once per link path that reaches it, and no
//! input makes the parsers panic.

mod common;

use std::collections::HashMap;

use ipld_dagcbor::testing::arb_node;
use ipld_dagcbor::{Map, Node, to_vec};
use ipld_selector::{Cid, Selector, codec, dagjson, dagpb, traverse};
use proptest::prelude::*;

/// The value under one key of a generated block.
#[derive(Clone, Debug)]
enum Shape {
    Int(i64),
    /// A link to an earlier block, chosen by this seed.
    Link(usize),
    /// A list of links to earlier blocks and integers.
    List(Vec<Option<usize>>),
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        any::<i64>().prop_map(Shape::Int),
        any::<usize>().prop_map(Shape::Link),
        prop::collection::vec(prop::option::of(any::<usize>()), 0..3).prop_map(Shape::List),
    ]
}

/// Blocks as maps of up to three keys; block `i` may link only to blocks before it.
fn arb_dag() -> impl Strategy<Value = Vec<Vec<(String, Shape)>>> {
    prop::collection::vec(
        prop::collection::vec(("[a-c]{1,2}", arb_shape()), 0..4),
        1..10,
    )
}

/// Builds the blocks; returns them with the root (the last block).
fn build(spec: &[Vec<(String, Shape)>]) -> (Cid, HashMap<Cid, Vec<u8>>, Vec<Node>) {
    let mut cids: Vec<Cid> = Vec::new();
    let mut blocks = HashMap::new();
    let mut nodes = Vec::new();
    for (index, entries) in spec.iter().enumerate() {
        let link = |seed: usize| -> Node {
            if index == 0 {
                Node::Integer(seed as i128 % 7)
            } else {
                Node::Link(cids[seed % index])
            }
        };
        let mut map = Map::new();
        for (key, shape) in entries {
            let value = match shape {
                Shape::Int(value) => Node::Integer((*value).into()),
                Shape::Link(seed) => link(*seed),
                Shape::List(items) => Node::List(
                    items
                        .iter()
                        .map(|item| item.map_or(Node::Null, link))
                        .collect(),
                ),
            };
            map.insert(key.as_str(), value);
        }
        let node = Node::Map(map);
        let cid = common::fake_cid(codec::DAG_CBOR, index as u64);
        blocks.insert(cid, to_vec(&node).expect("encodes"));
        cids.push(cid);
        nodes.push(node);
    }
    (*cids.last().expect("at least one block"), blocks, nodes)
}

fn links_in(node: &Node, out: &mut Vec<Cid>) {
    match node {
        Node::Link(cid) => out.push(*cid),
        Node::List(items) => items.iter().for_each(|item| links_in(item, out)),
        Node::Map(map) => map.iter().for_each(|(_, value)| links_in(value, out)),
        _ => {}
    }
}

proptest! {
    #[test]
    fn explore_all_loads_each_block_once_per_reaching_link(spec in arb_dag()) {
        let (root, blocks, nodes) = build(&spec);
        // Paths into each block: the root has one; every link occurrence in a block adds the
        // block's own count to its target (blocks only link backwards, so go from the root down).
        let cids: Vec<Cid> = (0..nodes.len()).map(|i| common::fake_cid(codec::DAG_CBOR, i as u64)).collect();
        let mut reach: HashMap<Cid, u64> = HashMap::from([(root, 1)]);
        for (index, node) in nodes.iter().enumerate().rev() {
            let count = reach.get(&cids[index]).copied().unwrap_or(0);
            let mut links = Vec::new();
            links_in(node, &mut links);
            for target in links {
                *reach.entry(target).or_default() += count;
            }
        }
        reach.retain(|_, count| *count > 0);
        prop_assume!(reach.values().sum::<u64>() <= 20_000);

        let outcome = traverse(root, &Selector::explore_all_recursively(), common::permissive(), |cid| {
            blocks.get(cid)
        })
        .expect("traversal completes");
        let mut loaded: HashMap<Cid, u64> = HashMap::new();
        for load in &outcome.loads {
            prop_assert!(load.found);
            *loaded.entry(load.cid).or_default() += 1;
        }
        prop_assert_eq!(loaded, reach);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = dagpb::decode(&bytes);
        let _ = dagjson::decode(&bytes);
        let _ = Selector::from_dag_cbor(&bytes);
    }

    #[test]
    fn arbitrary_nodes_parse_or_fail_cleanly_and_round_trip(node in arb_node()) {
        if let Ok(selector) = Selector::from_node(&node) {
            prop_assert_eq!(Selector::from_node(&selector.to_node()).expect("re-parses"), selector.clone());
            prop_assert_eq!(
                Selector::from_dag_cbor(&selector.to_dag_cbor()).expect("decodes"),
                selector.canonical()
            );
        }
    }
}
