//! Every fixture of `shared/fixtures/selectors/selector-fixtures-1.md` (testmark format):
//! the visit list must be reproduced exactly, in order.

mod common;

use std::collections::{BTreeMap, HashMap};

use ipld_dagcbor::Node;
use ipld_selector::{Selector, codec, dagjson};
use serde_json::{Value, json};

/// The fixtures in the file; every one must run.
const FIXTURE_COUNT: usize = 9;

#[derive(Default)]
struct Fixture {
    data: Option<String>,
    selector: Option<String>,
    expect_visit: Option<String>,
}

/// Reads testmark hunks: a `[testmark]:# (name/part)` line followed by a fenced code block.
fn testmark_hunks(text: &str) -> Vec<(String, String)> {
    let mut hunks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("[testmark]:# (")
            .and_then(|rest| rest.strip_suffix(')'))
        else {
            continue;
        };
        let fence = lines.next().expect("a code fence follows a testmark label");
        assert!(
            fence.starts_with("```"),
            "hunk {name} is not followed by a code fence"
        );
        let mut body = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            body.push_str(line);
            body.push('\n');
        }
        hunks.push((name.to_string(), body));
    }
    hunks
}

fn fixtures() -> BTreeMap<String, Fixture> {
    let path = common::shared("fixtures/selectors/selector-fixtures-1.md");
    let text = std::fs::read_to_string(path).expect("fixture file readable");
    let mut fixtures: BTreeMap<String, Fixture> = BTreeMap::new();
    for (name, body) in testmark_hunks(&text) {
        let (fixture, part) = name.rsplit_once('/').expect("hunk names are fixture/part");
        let entry = fixtures.entry(fixture.to_string()).or_default();
        match part {
            "data" => entry.data = Some(body),
            "selector" => entry.selector = Some(body),
            "expect-visit" => entry.expect_visit = Some(body),
            other => panic!("unknown hunk part {other} in {fixture}"),
        }
    }
    fixtures
}

/// A visited node as the fixtures write it: `{"kind": value}`, with `null` for maps and lists.
fn describe(node: &Node) -> Value {
    match node {
        Node::Null => json!({"null": null}),
        Node::Bool(value) => json!({"bool": value}),
        Node::Integer(value) => json!({"int": i64::try_from(*value).expect("fixture ints fit")}),
        Node::Float(value) => json!({"float": value}),
        Node::String(text) => json!({"string": text.to_string()}),
        Node::Bytes(bytes) => json!({"bytes": bytes.to_vec()}),
        Node::List(_) => json!({"list": null}),
        Node::Map(_) => json!({"map": null}),
        Node::Link(cid) => json!({"link": cid.to_string()}),
    }
}

fn run_fixture(name: &str, fixture: &Fixture) {
    let data = fixture
        .data
        .as_deref()
        .unwrap_or_else(|| panic!("{name}: no data"));
    let selector = fixture
        .selector
        .as_deref()
        .unwrap_or_else(|| panic!("{name}: no selector"));
    let expected = fixture
        .expect_visit
        .as_deref()
        .unwrap_or_else(|| panic!("{name}: no expect-visit"));

    // The data is one dag-json block; check it decodes, then traverse it as a block.
    dagjson::decode(data.as_bytes()).unwrap_or_else(|e| panic!("{name}: data: {e}"));
    let selector = Selector::from_dag_json(selector.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: selector: {e}"));
    let root = common::fake_cid(codec::DAG_JSON, 1);
    let blocks = HashMap::from([(root, data.as_bytes().to_vec())]);
    let (record, result) = common::run(root, &selector, common::permissive(), &blocks);
    result.unwrap_or_else(|e| panic!("{name}: traversal: {e}"));
    assert_eq!(
        record.loads.len(),
        1,
        "{name}: single-block fixtures load only the root"
    );

    let actual: Vec<Value> = record
        .visits
        .iter()
        .map(|(path, node, matched)| json!({"path": path, "node": describe(node), "matched": matched}))
        .collect();
    let expected: Vec<Value> = expected
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {line}: {e}")))
        .collect();
    assert_eq!(actual, expected, "{name}: visit list differs");
}

#[test]
fn every_fixture_reproduces_its_visit_list() {
    let fixtures = fixtures();
    assert_eq!(
        fixtures.len(),
        FIXTURE_COUNT,
        "fixture count: {:?}",
        fixtures.keys()
    );
    for (name, fixture) in &fixtures {
        run_fixture(name, fixture);
    }
}

#[test]
fn the_fixture_names_are_the_expected_ones() {
    let names: Vec<String> = fixtures().into_keys().collect();
    assert_eq!(
        names,
        [
            "explore-fields",
            "explore-fields-nested",
            "explore-index",
            "explore-range",
            "hello-recursion",
            "match-subset",
            "match-subset-extremities",
            "simple-map",
            "single-node",
        ]
    );
}
