//! Traversal behaviour: missing blocks, budgets, the depth cap, stop-at, ADLs, codecs,
//! driving rules and the drivers.

mod common;

use std::collections::HashMap;

use ipld_dagcbor::{Map, Node, to_vec};
use ipld_selector::{
    Cid, Config, GRAPHSYNC_MAX_RECURSION_DEPTH, RecursionLimitError, Selector, Step, Traversal,
    TraversalError, codec, traverse, traverse_async, traverse_with,
};

struct Dag {
    root: Cid,
    leaf1: Cid,
    leaf2: Cid,
    mid: Cid,
    blocks: HashMap<Cid, Vec<u8>>,
}

fn fixture_dag() -> Dag {
    let fixture = common::vector("fixture_dag.json");
    let named = common::fixture_blocks(&fixture);
    Dag {
        root: named["root"].0,
        leaf1: named["leaf1"].0,
        leaf2: named["leaf2"].0,
        mid: named["mid"].0,
        blocks: named
            .values()
            .map(|(cid, bytes)| (*cid, bytes.clone()))
            .collect(),
    }
}

fn json_selector(json: &str) -> Selector {
    Selector::from_dag_json(json.as_bytes()).expect("valid selector")
}

#[test]
fn missing_leaf_is_reported_and_traversal_goes_on() {
    let mut dag = fixture_dag();
    dag.blocks.remove(&dag.leaf1);
    let (record, result) = common::run(
        dag.root,
        &Selector::explore_all_recursively(),
        common::permissive(),
        &dag.blocks,
    );
    result.expect("a missing leaf does not fail the traversal");
    let loads: Vec<(&str, Cid, bool)> = record
        .loads
        .iter()
        .map(|(path, cid, found)| (path.as_str(), *cid, *found))
        .collect();
    assert_eq!(
        loads,
        [
            ("", dag.root, true),
            ("b", dag.leaf1, false),
            ("c/0", dag.leaf1, false),
            ("c/1", dag.leaf2, true),
            ("aa", dag.mid, true),
            ("aa/x", dag.leaf2, true),
        ]
    );
}

#[test]
fn missing_inner_block_skips_its_subtree_and_records_path_and_cid() {
    let mut dag = fixture_dag();
    dag.blocks.remove(&dag.mid);
    let mut traversal = Traversal::new(
        dag.root,
        &Selector::explore_all_recursively(),
        common::permissive(),
    )
    .expect("accepted");
    let mut loads = Vec::new();
    loop {
        let cid = match traversal.next().expect("no error") {
            Step::Done => break,
            Step::Visit(_) => continue,
            Step::Load(load) => {
                loads.push(load.path.to_string());
                load.cid
            }
        };
        match dag.blocks.get(&cid) {
            Some(bytes) => traversal.provide(bytes).expect("decodes"),
            None => traversal.missing().expect("a load is pending"),
        }
    }
    assert_eq!(
        loads,
        ["", "b", "c/0", "c/1", "aa"],
        "nothing under aa is loaded"
    );
    let missing: Vec<(String, Cid)> = traversal
        .missing_links()
        .iter()
        .map(|(path, cid)| (path.to_string(), *cid))
        .collect();
    assert_eq!(missing, [("aa".to_string(), dag.mid)]);
    assert!(traversal.is_done());
    assert!(!traversal.root_missing());
}

#[test]
fn missing_root_ends_the_traversal() {
    let dag = fixture_dag();
    let outcome = traverse(
        dag.root,
        &Selector::explore_all_recursively(),
        common::permissive(),
        |_| None::<Vec<u8>>,
    )
    .expect("a missing root is not an error");
    assert!(outcome.root_missing());
    assert_eq!(outcome.loads.len(), 1);
    assert_eq!(outcome.visits, 0);
}

#[test]
fn link_budget_counts_the_root_go_style() {
    let dag = fixture_dag();
    let run = |budget: u64| {
        common::run(
            dag.root,
            &Selector::explore_all_recursively(),
            common::permissive().with_link_budget(Some(budget)),
            &dag.blocks,
        )
    };
    // A budget of 1 fails at the root, before any load.
    let (record, result) = run(1);
    assert!(record.loads.is_empty());
    match result {
        Err(TraversalError::LinkBudgetExceeded {
            cid,
            path,
            budget: 1,
        }) => {
            assert_eq!(cid, dag.root);
            assert!(path.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    // A budget of 2 allows two loads; the third link fails, with its path.
    let (record, result) = run(2);
    assert_eq!(common::load_paths(&record), ["", "b"]);
    match result {
        Err(TraversalError::LinkBudgetExceeded {
            cid,
            path,
            budget: 2,
        }) => {
            assert_eq!(cid, dag.leaf1);
            assert_eq!(path.to_string(), "c/0");
        }
        other => panic!("unexpected {other:?}"),
    }
    let (record, result) = run(5);
    assert_eq!(record.loads.len(), 5);
    assert!(matches!(
        result,
        Err(TraversalError::LinkBudgetExceeded { .. })
    ));
    let (record, result) = run(6);
    result.expect("six loads fit a budget of six");
    assert_eq!(record.loads.len(), 6);
}

#[test]
fn recursion_depth_cap_rejects_like_the_go_validator() {
    let dag = fixture_dag();
    let all = Selector::explore_all_recursively();
    let go_validator =
        Config::default().with_max_recursion_depth(Some(GRAPHSYNC_MAX_RECURSION_DEPTH));
    match Traversal::new(dag.root, &all, go_validator.clone()) {
        Err(TraversalError::SelectorRejected {
            source: RecursionLimitError::Unbounded { .. },
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let depth = |d: i64| {
        json_selector(&format!(
            r#"{{"R":{{"l":{{"depth":{d}}},":>":{{"a":{{">":{{"@":{{}}}}}}}}}}}}"#
        ))
    };
    assert!(Traversal::new(dag.root, &depth(100), go_validator.clone()).is_ok());
    match Traversal::new(dag.root, &depth(101), go_validator) {
        Err(TraversalError::SelectorRejected {
            source:
                RecursionLimitError::TooDeep {
                    depth: 101,
                    max: 100,
                    ..
                },
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let capped = Config::default().with_max_recursion_depth(Some(3));
    assert!(Traversal::new(dag.root, &depth(4), capped.clone()).is_err());
    assert!(Traversal::new(dag.root, &depth(3), capped).is_ok());
    assert!(Traversal::new(dag.root, &all, common::permissive()).is_ok());
}

#[test]
fn the_default_config_walks_unbounded_recursion_as_go_ipld_prime() {
    let dag = fixture_dag();
    let all = Selector::explore_all_recursively();
    assert_eq!(Config::default().max_recursion_depth, None);
    assert!(Traversal::new(dag.root, &all, Config::default()).is_ok());
}

/// A chain of dag-cbor blocks `{"x": next}`, the last one `{"x": 0}`; returns the root.
fn chain(length: u64, blocks: &mut HashMap<Cid, Vec<u8>>) -> Cid {
    let mut next = Node::Integer(0);
    let mut cid = common::fake_cid(codec::DAG_CBOR, 0);
    for i in 0..length {
        cid = common::fake_cid(codec::DAG_CBOR, 1_000_000 + i);
        let bytes = to_vec(&Node::Map(Map::new().with("x", next))).expect("encodes");
        blocks.insert(cid, bytes);
        next = Node::Link(cid);
    }
    cid
}

#[test]
fn depth_limit_counts_one_step_per_dagcbor_level() {
    let mut blocks = HashMap::new();
    let root = chain(10, &mut blocks);
    for depth in 1..=6 {
        let selector = json_selector(&format!(
            r#"{{"R":{{"l":{{"depth":{depth}}},":>":{{"a":{{">":{{"@":{{}}}}}}}}}}}}"#
        ));
        let (record, result) = common::run(root, &selector, Config::default(), &blocks);
        result.expect("completes");
        assert_eq!(record.loads.len(), depth.max(1) as usize, "depth {depth}");
    }
}

#[test]
fn deep_chains_use_no_call_stack() {
    // A recursive walker would overflow the test thread's stack long before this depth.
    let length = 50_000;
    let mut blocks = HashMap::new();
    let root = chain(length, &mut blocks);
    let mut traversal = Traversal::new(
        root,
        &Selector::explore_all_recursively(),
        common::permissive(),
    )
    .expect("accepted");
    let (mut loads, mut deepest) = (0u64, 0usize);
    loop {
        let cid = match traversal.next().expect("no error") {
            Step::Done => break,
            Step::Visit(visit) => {
                deepest = deepest.max(visit.path.len());
                continue;
            }
            Step::Load(load) => load.cid,
        };
        loads += 1;
        traversal.provide(&blocks[&cid]).expect("decodes");
    }
    assert_eq!(loads, length);
    // The last block's "x" holds the integer 0, one step below the last link.
    assert_eq!(deepest, length as usize);
}

#[test]
fn stop_at_condition_does_not_load_the_link() {
    let dag = fixture_dag();
    let selector = json_selector(&format!(
        r#"{{"R":{{"l":{{"none":{{}}}},":>":{{"a":{{">":{{"@":{{}}}}}}}},"!":{{"/":{{"/":"{}"}}}}}}}}"#,
        dag.leaf2
    ));
    let (record, result) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    result.expect("completes");
    assert_eq!(common::load_paths(&record), ["", "b", "c/0", "aa"]);
    let visited: Vec<&str> = record
        .visits
        .iter()
        .map(|(path, _, _)| path.as_str())
        .collect();
    assert!(
        !visited.contains(&"c/1") && !visited.contains(&"aa/x"),
        "stopped links are not visited"
    );
}

#[test]
fn interpret_as_on_a_node_fails_without_an_adl_after_loading_it() {
    let dag = fixture_dag();
    let selector = json_selector(r#"{"~":{"as":"unixfs",">":{".":{}}}}"#);
    let (record, result) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    assert_eq!(
        record.loads.len(),
        1,
        "the root is loaded before the reify fails"
    );
    match result {
        Err(TraversalError::AdlUnsupported { adl, path }) => {
            assert_eq!(adl, "unixfs");
            assert!(path.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn interpret_as_inside_a_recursion_is_passed_through_as_go_does() {
    // The recursion, not the `~`, is the node's selector, so Go never reifies.
    let dag = fixture_dag();
    let selector = json_selector(
        r#"{"R":{"l":{"none":{}},":>":{"~":{"as":"unixfs",">":{"a":{">":{"@":{}}}}}}}}"#,
    );
    let (record, result) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    result.expect("completes");
    assert_eq!(
        common::load_paths(&record),
        ["", "b", "c/0", "c/1", "aa", "aa/x"]
    );
}

#[test]
fn explicit_interests_follow_selector_order_and_keep_duplicates() {
    let dag = fixture_dag();
    let selector = json_selector(
        r#"{"|":[{"f":{"f>":{"aa":{".":{}},"b":{".":{}}}}},{"f":{"f>":{"b":{".":{}}}}}]}"#,
    );
    let (record, result) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    result.expect("completes");
    assert_eq!(common::load_paths(&record), ["", "aa", "b", "b"]);
    // A field name that is a decimal index addresses a list element.
    let selector = json_selector(r#"{"f":{"f>":{"c":{"f":{"f>":{"1":{".":{}},"7":{".":{}}}}}}}}"#);
    let (record, result) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    result.expect("completes");
    let loads: Vec<(String, Cid)> = record
        .loads
        .iter()
        .map(|(p, c, _)| (p.clone(), *c))
        .collect();
    assert_eq!(
        loads,
        [(String::new(), dag.root), ("c/1".to_string(), dag.leaf2)]
    );
    // Index and range clauses explore only lists.
    let selector = json_selector(r#"{"f":{"f>":{"c":{"r":{"^":-5,"$":1,">":{".":{}}}}}}}"#);
    let (record, _) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    assert_eq!(common::load_paths(&record), ["", "c/0"]);
    let selector = json_selector(r#"{"i":{"i":0,">":{".":{}}}}"#);
    let (record, _) = common::run(dag.root, &selector, common::permissive(), &dag.blocks);
    assert_eq!(
        common::load_paths(&record),
        [""],
        "the root is a map, not a list"
    );
}

#[test]
fn unknown_codec_fails_before_any_load() {
    let root = common::fake_cid(0x90, 1);
    let (record, result) = common::run(
        root,
        &Selector::match_point(),
        Config::default(),
        &HashMap::new(),
    );
    assert!(record.loads.is_empty());
    assert!(matches!(
        result,
        Err(TraversalError::UnknownCodec { codec: 0x90, .. })
    ));

    // A link to an unknown codec inside a block: the earlier loads happen, that one does not.
    let odd = common::fake_cid(0x90, 2);
    let root = common::fake_cid(codec::DAG_CBOR, 3);
    let bytes = to_vec(&Node::Map(Map::new().with("a", odd))).expect("encodes");
    let blocks = HashMap::from([(root, bytes)]);
    let (record, result) = common::run(
        root,
        &Selector::explore_all_recursively(),
        common::permissive(),
        &blocks,
    );
    assert_eq!(common::load_paths(&record), [""]);
    match result {
        Err(TraversalError::UnknownCodec { cid, path, .. }) => {
            assert_eq!(cid, odd);
            assert_eq!(path.to_string(), "a");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn undecodable_block_fails_the_traversal() {
    let root = common::fake_cid(codec::DAG_CBOR, 4);
    let blocks = HashMap::from([(root, vec![0xa1])]);
    let (_, result) = common::run(root, &Selector::match_point(), Config::default(), &blocks);
    assert!(matches!(result, Err(TraversalError::Decode { .. })));
}

#[test]
fn driving_rules_are_enforced() {
    let dag = fixture_dag();
    let mut traversal =
        Traversal::new(dag.root, &Selector::match_point(), Config::default()).expect("accepted");
    assert!(matches!(
        traversal.provide(b"x"),
        Err(TraversalError::NotAwaitingBlock)
    ));
    // An unanswered load is asked again.
    for _ in 0..2 {
        match traversal.next().expect("no error") {
            Step::Load(load) => assert_eq!(load.cid, dag.root),
            other => panic!("unexpected {other:?}"),
        }
    }
    traversal.provide(&dag.blocks[&dag.root]).expect("decodes");
    assert!(matches!(
        traversal.missing(),
        Err(TraversalError::NotAwaitingBlock)
    ));
    match traversal.next().expect("no error") {
        Step::Visit(visit) => {
            assert!(visit.matched);
            assert!(visit.path.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(traversal.next(), Ok(Step::Done)));
    assert!(matches!(traversal.next(), Ok(Step::Done)));

    // After an error, the traversal stays failed.
    let root = common::fake_cid(codec::DAG_CBOR, 5);
    let mut traversal =
        Traversal::new(root, &Selector::match_point(), Config::default()).expect("ok");
    assert!(matches!(traversal.next(), Ok(Step::Load(_))));
    assert!(traversal.provide(&[0xff]).is_err());
    assert!(matches!(
        traversal.next(),
        Err(TraversalError::AlreadyFailed)
    ));
}

#[test]
fn sync_and_async_drivers_agree() {
    let dag = fixture_dag();
    let selector = Selector::match_all_recursively();
    let mut visited = Vec::new();
    let sync = traverse_with(
        dag.root,
        &selector,
        common::permissive(),
        |cid| dag.blocks.get(cid),
        |visit| visited.push(visit.path.to_string()),
    )
    .expect("completes");
    let asynchronous = common::block_on(traverse_async(
        dag.root,
        &selector,
        common::permissive(),
        |cid| {
            let block = dag.blocks.get(&cid).cloned();
            async move { block }
        },
    ))
    .expect("completes");
    assert_eq!(sync, asynchronous);
    assert_eq!(sync.loads.len(), 6);
    assert_eq!(sync.visits, visited.len() as u64);
    assert_eq!(sync.matches, sync.visits, "match-all matches every node");
}

#[test]
fn provide_shared_visits_what_provide_visits_and_keeps_raw_leaves_in_place() {
    use bytes::Bytes;

    // The traversal does not check hashes: stand-in CIDs of the right codecs do.
    let leaves: Vec<Bytes> = (0..3u8).map(|i| Bytes::from(vec![i; 2048])).collect();
    let leaf_cids: Vec<Cid> = (0..3)
        .map(|seed| common::fake_cid(codec::RAW, seed))
        .collect();
    let root_node = Node::Map(Map::new().with(
        "leaves",
        Node::List(leaf_cids.iter().copied().map(Node::Link).collect()),
    ));
    let root_bytes = Bytes::from(to_vec(&root_node).expect("encodes"));
    let root = common::fake_cid(codec::DAG_CBOR, 99);
    let mut blocks: HashMap<Cid, Bytes> = leaf_cids.iter().copied().zip(leaves).collect();
    blocks.insert(root, root_bytes);

    let walk = |shared: bool| {
        let selector = Selector::explore_all_recursively();
        let mut traversal = Traversal::new(root, &selector, common::permissive()).expect("ok");
        let mut visits = Vec::new();
        loop {
            let cid = match traversal.next().expect("no error") {
                Step::Done => return visits,
                Step::Visit(visit) => {
                    visits.push((visit.path.to_string(), visit.node.into_owned()));
                    continue;
                }
                Step::Load(load) => load.cid,
            };
            let block = &blocks[&cid];
            if shared {
                traversal.provide_shared(block).expect("decodes");
            } else {
                traversal.provide(block).expect("decodes");
            }
        }
    };
    let (copied, shared) = (walk(false), walk(true));
    assert_eq!(shared, copied);
    let in_place = |visits: &[(String, Node)]| -> usize {
        visits
            .iter()
            .filter_map(|(_, node)| node.as_bytes())
            .filter(|bytes| {
                leaf_cids
                    .iter()
                    .any(|cid| blocks[cid].as_ptr() == bytes.as_ptr())
            })
            .count()
    };
    assert_eq!(in_place(&shared), 3, "the raw leaves were copied");
    assert_eq!(in_place(&copied), 0);
}
