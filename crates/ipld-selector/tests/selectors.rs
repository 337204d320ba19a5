//! `vectors/graphsync/selectors.json` round trips, and parse errors that name the bad field.

mod common;

use ipld_dagcbor::Kind;
use ipld_selector::{ParseError, Selector};

#[test]
fn every_vector_selector_parses_and_encodes_canonically() {
    let vectors = common::vector("selectors.json");
    let vectors = vectors.as_object().expect("an object of selectors");
    assert_eq!(vectors.len(), 6);
    for (name, vector) in vectors {
        let json = vector["dag_json"].as_str().expect("dag_json");
        let hex = vector["hex"].as_str().expect("hex");
        let from_json =
            Selector::from_dag_json(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(from_json.to_dag_cbor()),
            hex,
            "{name}: canonical encoding"
        );
        let bytes = hex::decode(hex).expect("hex");
        assert_eq!(
            bytes.len() as u64,
            vector["length"].as_u64().expect("length"),
            "{name}"
        );
        let from_cbor = Selector::from_dag_cbor(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            from_cbor,
            from_json.canonical(),
            "{name}: dag-cbor and dag-json agree"
        );
    }
}

#[test]
fn common_selector_constructors_match_the_vectors() {
    let vectors = common::vector("selectors.json");
    let hex_of = |name: &str| vectors[name]["hex"].as_str().expect("hex").to_string();
    assert_eq!(
        hex::encode(Selector::explore_all_recursively().to_dag_cbor()),
        hex_of("explore_all_recursively")
    );
    assert_eq!(
        hex::encode(Selector::match_all_recursively().to_dag_cbor()),
        hex_of("match_all_recursively")
    );
    assert_eq!(
        hex::encode(Selector::match_point().to_dag_cbor()),
        hex_of("match_point")
    );
    assert_eq!(
        hex::encode(Selector::match_children().to_dag_cbor()),
        hex_of("match_children")
    );
}

#[test]
fn canonical_encoding_sorts_explore_fields_length_first() {
    let selector =
        Selector::from_dag_json(br#"{"f":{"f>":{"aa":{".":{}},"b":{".":{}}}}}"#).expect("valid");
    let reparsed = Selector::from_dag_cbor(&selector.to_dag_cbor()).expect("valid");
    let Selector::ExploreFields { fields } = reparsed else {
        panic!("fields")
    };
    let names: Vec<String> = fields.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(names, ["b", "aa"]);
}

/// Parses DAG-JSON expecting an error, and returns it with its path.
fn error_of(json: &str) -> ParseError {
    match Selector::from_dag_json(json.as_bytes()) {
        Ok(selector) => panic!("{json} parsed as {selector:?}"),
        Err(error) => error,
    }
}

#[test]
fn unknown_clause_names_its_path() {
    match error_of(r#"{"R":{"l":{"none":{}},":>":{"a":{">":{"x":{}}}}}}"#) {
        ParseError::UnknownClause { path, key } => {
            assert_eq!(path.to_string(), "R/:>/a/>");
            assert_eq!(key, "x");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn wrong_kinds_name_their_path() {
    match error_of(r#"{"R":{"l":{"depth":"5"},":>":{"a":{">":{"@":{}}}}}}"#) {
        ParseError::WrongKind {
            path,
            expected: Kind::Integer,
            found: Kind::String,
        } => {
            assert_eq!(path.to_string(), "R/l/depth");
        }
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"["a"]"#) {
        ParseError::WrongKind {
            path,
            expected: Kind::Map,
            found: Kind::List,
        } => {
            assert!(path.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"|":{}}"#) {
        ParseError::WrongKind {
            path,
            expected: Kind::List,
            ..
        } => assert_eq!(path.to_string(), "|"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}},"!":{"/":5}}}"#) {
        ParseError::WrongKind {
            path,
            expected: Kind::Link,
            ..
        } => {
            assert_eq!(path.to_string(), "R/!//");
        }
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"~":{"as":5,">":{".":{}}}}"#) {
        ParseError::WrongKind {
            path,
            expected: Kind::String,
            ..
        } => {
            assert_eq!(path.to_string(), "~/as");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn missing_fields_name_the_clause_body() {
    match error_of(r#"{"f":{"f>":{"a":{".":{}},"b":{"i":{">":{".":{}}}}}}}"#) {
        ParseError::MissingField { path, field: "i" } => assert_eq!(path.to_string(), "f/f>/b/i"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"|":[{".":{}},{"a":{}}]}"#) {
        ParseError::MissingField { path, field: ">" } => assert_eq!(path.to_string(), "|/1/a"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"R":{":>":{"a":{">":{"@":{}}}}}}"#) {
        ParseError::MissingField { path, field: "l" } => assert_eq!(path.to_string(), "R"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn recursion_edge_rules_are_enforced() {
    match error_of(r#"{"@":{}}"#) {
        ParseError::EdgeOutsideRecursive { path } => assert_eq!(path.to_string(), "@"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"R":{"l":{"none":{}},":>":{"a":{">":{".":{}}}}}}"#) {
        ParseError::NoRecursiveEdge { path } => assert_eq!(path.to_string(), "R"),
        other => panic!("unexpected {other:?}"),
    }
    // An edge belongs to the innermost recursion: the outer one here has none.
    let nested =
        r#"{"R":{"l":{"none":{}},":>":{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}}}"#;
    match error_of(nested) {
        ParseError::NoRecursiveEdge { path } => assert_eq!(path.to_string(), "R"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"R":{"l":{"forever":{}},":>":{"a":{">":{"@":{}}}}}}"#) {
        ParseError::UnknownLimit { path, key } => {
            assert_eq!(path.to_string(), "R/l");
            assert_eq!(key, "forever");
        }
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}},"!":{"&":{}}}}"#) {
        ParseError::UnknownCondition { path, .. } => assert_eq!(path.to_string(), "R/!"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn value_rules_are_enforced() {
    match error_of(r#"{"r":{"^":3,"$":3,">":{".":{}}}}"#) {
        ParseError::EmptyRange {
            path,
            start: 3,
            end: 3,
        } => assert_eq!(path.to_string(), "r"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{".":{"subset":{"[":5,"]":2}}}"#) {
        ParseError::InvalidSubset {
            path,
            from: 5,
            to: 2,
        } => assert_eq!(path.to_string(), "./subset"),
        other => panic!("unexpected {other:?}"),
    }
    // A negative "to" counts from the end, so from > to is allowed then.
    assert!(Selector::from_dag_json(br#"{".":{"subset":{"[":5,"]":-2}}}"#).is_ok());
    match error_of(r#"{"i":{"i":18446744073709551615,">":{".":{}}}}"#) {
        ParseError::IntegerOutOfRange { path, .. } => assert_eq!(path.to_string(), "i/i"),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{".":{},"a":{}}"#) {
        ParseError::NotSingleEntry { path, len: 2 } => assert!(path.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
    match error_of(r#"{"&":{}}"#) {
        ParseError::ConditionalUnsupported { path } => assert!(path.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn undecodable_bytes_are_reported_by_codec() {
    assert!(matches!(
        Selector::from_dag_cbor(&[0xa1]),
        Err(ParseError::DagCbor { .. })
    ));
    assert!(matches!(
        Selector::from_dag_json(b"{"),
        Err(ParseError::DagJson { .. })
    ));
}

#[test]
fn deeply_nested_selectors_are_refused_without_overflowing() {
    let depth = 2000;
    let json = format!(
        "{}{}{}",
        r#"{"a":{">":"#.repeat(depth),
        r#"{".":{}}"#,
        "}}".repeat(depth)
    );
    // 2000 levels of `a` are 4000 JSON levels: over the dag-json limit already.
    assert!(matches!(
        Selector::from_dag_json(json.as_bytes()),
        Err(ParseError::DagJson { .. })
    ));
    let mut node = Selector::match_point().to_node();
    for _ in 0..depth {
        node = wrap_all(node);
    }
    assert!(matches!(
        Selector::from_node(&node),
        Err(ParseError::TooDeep { .. })
    ));
}

/// `{"a": {">": inner}}`.
fn wrap_all(inner: ipld_dagcbor::Node) -> ipld_dagcbor::Node {
    use ipld_dagcbor::{Map, Node};
    Node::Map(Map::new().with("a", Node::Map(Map::new().with(">", inner))))
}
