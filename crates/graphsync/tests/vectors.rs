//! Every file of `shared/spec/vectors/graphsync`: decoded, compared with the content the JSON
//! states, and re-encoded to the same bytes where the README says the bytes are certain.

mod common;

use bytes::BytesMut;
use common::{hex_field, parse_diag, parse_pb_text, read_json, str_field, u64_field, vectors_dir};
use graphsync::codec::frame::{self, FrameConfig, FrameDecoder};
use graphsync::codec::{v1, v2};
use graphsync::testing::FixedIds;
use graphsync::{
    Block, CidPrefix, Extensions, LinkAction, Message, Metadatum, Priority, Request, RequestId,
    RequestKind, Response, ResponseStatus, extension,
};
use ipld_dagcbor::{Cid, Map, Node};

/// The files this test checks, each by the test named beside it.
const CHECKED: [&str; 8] = [
    "README.md",             // documentation, not a vector
    "messages_v2.json",      // messages_v2_decode_and_reencode_exactly
    "messages_v1.json",      // messages_v1_decode_and_reencode_exactly
    "extension_values.json", // extension_values_match_the_typed_helpers
    "cid_prefixes.json",     // cid_prefixes_parse_and_reencode
    "selectors.json",        // selectors_decode_and_reencode_canonically
    "fixture_dag.json",      // fixture_dag_blocks_hash_to_their_cids
    "fixture_dagpb.json",    // fixture_dagpb_blocks_hash_to_their_cids
];

#[test]
fn every_vector_file_is_checked() {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("the shared vectors folder must exist beside the repository")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    for name in &names {
        assert!(
            CHECKED.contains(&name.as_str()),
            "vector file {name} is not checked: add a test"
        );
    }
    for name in CHECKED {
        assert!(
            names.iter().any(|n| n == name),
            "vector file {name} is gone"
        );
    }
}

#[test]
fn messages_v2_decode_and_reencode_exactly() {
    check_messages_v2();
}

#[test]
fn messages_v1_decode_and_reencode_exactly() {
    check_messages_v1();
}

#[test]
fn extension_values_match_the_typed_helpers() {
    check_extension_values();
}

#[test]
fn cid_prefixes_parse_and_reencode() {
    check_cid_prefixes();
}

#[test]
fn selectors_decode_and_reencode_canonically() {
    check_selectors();
}

#[test]
fn fixture_dag_blocks_hash_to_their_cids() {
    check_fixture_blocks("fixture_dag.json");
}

#[test]
fn fixture_dagpb_blocks_hash_to_their_cids() {
    check_fixture_blocks("fixture_dagpb.json");
}

/// Checks the framed form of a body: the prefix we write and what the frame decoder returns.
fn check_framing(name: &str, vector: &serde_json::Value, body: &[u8]) {
    assert_eq!(
        body.len() as u64,
        u64_field(vector, "length"),
        "{name}: length"
    );
    let framed = hex_field(vector, "framed_hex");
    let mut written = BytesMut::new();
    frame::write_frame(body, &FrameConfig::default(), &mut written).expect("frameable");
    assert_eq!(&written[..], &framed[..], "{name}: framed bytes");
    let mut buf = BytesMut::from(&framed[..]);
    let read = FrameDecoder::default()
        .decode(&mut buf)
        .expect("valid frame")
        .expect("whole frame");
    assert_eq!(&read[..], body, "{name}: frame body");
    assert!(buf.is_empty(), "{name}: frame consumed");
}

fn check_messages_v2() {
    let vectors = read_json("messages_v2.json");
    let entries = vectors.as_object().expect("object of vectors");
    assert_eq!(entries.len(), 16, "the README lists 16 messages");
    for (name, vector) in entries {
        let body = hex_field(vector, "hex");
        check_framing(name, vector, &body);
        let diag = parse_diag(str_field(vector, "diag"));
        // The diag is exactly the DAG-CBOR in the body.
        assert_eq!(
            ipld_dagcbor::decode(&body).expect("dag-cbor"),
            diag,
            "{name}: diag vs hex"
        );
        let expected = message_from_diag(&diag);
        let decoded = v2::decode(&body).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(decoded, expected, "{name}: decoded content");
        // Single-request messages are byte-exact with Go; the others are exact for an encoder
        // that keeps list order, which ours does.
        assert_eq!(
            v2::to_vec(&decoded).expect("encodable"),
            body,
            "{name}: re-encoded bytes"
        );
    }
}

/// The message a 2.0.0 diag describes, read field by field from the diag's own structure.
fn message_from_diag(diag: &Node) -> Message {
    let gs2 = map(diag).get("gs2").expect("gs2");
    let gs2 = map(gs2);
    let mut message = Message::new();
    for request in gs2.get("req").map(list).unwrap_or_default() {
        let request = map(request);
        let id = request_id(request.get("id").expect("id"));
        let extensions = request
            .get("ext")
            .map(extensions_from_diag)
            .unwrap_or_default();
        let kind = match request
            .get("type")
            .and_then(Node::as_text)
            .expect("type")
            .as_str()
        {
            Some("n") => RequestKind::New {
                root: *request.get("root").and_then(Node::as_link).expect("root"),
                selector: request.get("sel").expect("sel").clone(),
                priority: Priority(
                    request.get("pri").and_then(Node::as_integer).unwrap_or(0) as i32
                ),
            },
            Some("c") => RequestKind::Cancel,
            Some("u") => RequestKind::Update,
            other => panic!("request type {other:?}"),
        };
        message.requests.push(Request {
            id,
            kind,
            extensions,
        });
    }
    for response in gs2.get("rsp").map(list).unwrap_or_default() {
        let response = map(response);
        let code = response
            .get("stat")
            .and_then(Node::as_integer)
            .expect("stat");
        let metadata = response
            .get("meta")
            .map(list)
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                let [link, action] = list(entry) else {
                    panic!("metadatum pair")
                };
                let action = match action.as_text().and_then(|t| t.as_str()) {
                    Some("p") => LinkAction::Present,
                    Some("m") => LinkAction::Missing,
                    Some("d") => LinkAction::DuplicateNotSent,
                    Some("s") => LinkAction::DuplicateDagSkipped,
                    other => panic!("action {other:?}"),
                };
                Metadatum::new(*link.as_link().expect("link"), action)
            })
            .collect();
        message.responses.push(Response {
            id: request_id(response.get("reqid").expect("reqid")),
            status: ResponseStatus::from_code(code as i64).expect("known status"),
            metadata,
            extensions: response
                .get("ext")
                .map(extensions_from_diag)
                .unwrap_or_default(),
        });
    }
    for block in gs2.get("blk").map(list).unwrap_or_default() {
        let [prefix, data] = list(block) else {
            panic!("block pair")
        };
        let prefix = CidPrefix::from_bytes(prefix.as_bytes().expect("prefix")).expect("prefix");
        message
            .blocks
            .push(Block::new(prefix, data.as_bytes().expect("data").to_vec()));
    }
    message
}

fn extensions_from_diag(node: &Node) -> Extensions {
    map(node)
        .iter()
        .map(|(name, value)| (name.clone(), (!value.is_null()).then(|| value.clone())))
        .collect()
}

fn map(node: &Node) -> &Map {
    node.as_map().expect("a map")
}

fn list(node: &Node) -> &[Node] {
    node.as_list().expect("a list")
}

fn request_id(node: &Node) -> RequestId {
    RequestId::from_slice(node.as_bytes().expect("id bytes")).expect("16 bytes")
}

fn fixture_cid(name: &str) -> Cid {
    let fixture = read_json("fixture_dag.json");
    str_field(&fixture["blocks"][name], "cid")
        .parse()
        .expect("fixture cid")
}

fn check_messages_v1() {
    let vectors = read_json("messages_v1.json");
    let entries = vectors.as_object().expect("object of vectors");
    assert_eq!(entries.len(), 5, "the README lists 5 messages");
    let explore_all = hex_field(
        &read_json("selectors.json")["explore_all_recursively"],
        "hex",
    );
    for (name, vector) in entries {
        let body = hex_field(vector, "hex");
        check_framing(name, vector, &body);
        // The wire message is what the protobuf text says, and prost writes it back exactly
        // (map entries sorted, as in the vectors).
        let wire = v1::decode_wire(&body).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            wire,
            parse_pb_text(str_field(vector, "protobuf_text")),
            "{name}: wire content"
        );
        let mut written = BytesMut::new();
        v1::encode_wire(&wire, &mut written);
        assert_eq!(&written[..], &body[..], "{name}: wire bytes");

        // The model, with integer ids mapped by `FixedIds`, and back to the same bytes.
        let message =
            v1::decode(&body, &mut FixedIds).unwrap_or_else(|error| panic!("{name}: {error}"));
        let mut reencoded = BytesMut::new();
        v1::encode(&message, &mut FixedIds, &mut reencoded).expect("encodable");
        assert_eq!(&reencoded[..], &body[..], "{name}: model re-encoded");

        let selector = ipld_dagcbor::decode(&explore_all).expect("selector");
        let root = fixture_cid("root");
        let expected = match name.as_str() {
            "v1_request_new_id0" => {
                Message::new().with_request(Request::new(FixedIds::id(0), root, selector))
            }
            "v1_request_new_with_extension" => Message::new().with_request(
                Request::new(FixedIds::id(7), root, selector)
                    .with_priority(Priority(101))
                    .with_extensions(Extensions::new().with(
                        extension::DO_NOT_SEND_FIRST_BLOCKS,
                        Some(extension::encode_do_not_send_first_blocks(3)),
                    )),
            ),
            "v1_request_cancel" => Message::new().with_request(Request::cancel(FixedIds::id(7))),
            "v1_response_with_metadata_and_blocks" => {
                let fixture = read_json("fixture_dag.json");
                let block = |name: &str| {
                    let entry = &fixture["blocks"][name];
                    Block::new(
                        CidPrefix::from_bytes(&hex_field(entry, "prefix_hex")).expect("prefix"),
                        hex_field(entry, "data_hex"),
                    )
                };
                Message::new()
                    .with_response(
                        Response::new(FixedIds::id(0), ResponseStatus::RequestCompletedFull)
                            .with_metadata(vec![
                                Metadatum::new(root, LinkAction::Present),
                                Metadatum::new(fixture_cid("leaf1"), LinkAction::Present),
                            ]),
                    )
                    .with_block(block("root"))
                    .with_block(block("leaf1"))
            }
            "v1_response_rejected" => Message::new().with_response(Response::new(
                FixedIds::id(7),
                ResponseStatus::RequestRejected,
            )),
            other => panic!("v1 vector {other} has no expected content here"),
        };
        assert_eq!(message, expected, "{name}: model content");
    }
}

fn check_extension_values() {
    let vectors = read_json("extension_values.json");
    let entries = vectors.as_object().expect("object of values");
    for (name, vector) in entries {
        let bytes = hex_field(vector, "hex");
        assert_eq!(
            bytes.len() as u64,
            u64_field(vector, "length"),
            "{name}: length"
        );
        let node = ipld_dagcbor::decode(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(node, parse_diag(str_field(vector, "diag")), "{name}: diag");
        assert_eq!(
            ipld_dagcbor::to_vec(&node).expect("encodable"),
            bytes,
            "{name}: canonical"
        );
        // The typed helpers read the value and write the same bytes.
        let rewritten = match name.as_str() {
            "do_not_send_cids" | "do_not_send_cids_empty" => {
                let cids = extension::decode_do_not_send_cids(&node).expect("list of links");
                if name == "do_not_send_cids" {
                    assert_eq!(cids, [fixture_cid("leaf1"), fixture_cid("mid")]);
                } else {
                    assert!(cids.is_empty());
                }
                extension::encode_do_not_send_cids(&cids)
            }
            "do_not_send_first_blocks_3" | "do_not_send_first_blocks_1000" => {
                let count = extension::decode_do_not_send_first_blocks(&node).expect("an int");
                assert_eq!(count, if name.ends_with("_3") { 3 } else { 1000 });
                extension::encode_do_not_send_first_blocks(count)
            }
            "dedup_by_key" => {
                let key = extension::decode_dedup_by_key(&node).expect("a string");
                assert_eq!(key, "data-transfer-example");
                extension::encode_dedup_by_key(key)
            }
            "v1_response_metadata" | "v1_response_metadata_empty" => {
                let metadata = extension::decode_response_metadata(&node).expect("metadata");
                if name == "v1_response_metadata" {
                    assert_eq!(
                        metadata,
                        [
                            Metadatum::new(fixture_cid("root"), LinkAction::Present),
                            Metadatum::new(fixture_cid("leaf2"), LinkAction::Missing),
                        ]
                    );
                } else {
                    assert!(metadata.is_empty());
                }
                extension::encode_response_metadata(&metadata)
            }
            other => panic!("extension value {other} is not checked here"),
        };
        assert_eq!(
            ipld_dagcbor::to_vec(&rewritten).expect("encodable"),
            bytes,
            "{name}: helper"
        );
    }
}

fn check_cid_prefixes() {
    let vectors = read_json("cid_prefixes.json");
    let entries = vectors.as_object().expect("object of prefixes");
    for (name, vector) in entries {
        let bytes = hex_field(vector, "prefix_hex");
        let prefix =
            CidPrefix::from_bytes(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(prefix.to_bytes(), bytes, "{name}: re-encoded");
        let expected = match name.as_str() {
            "cidv0_dag_pb_sha256" => CidPrefix::V0,
            "cidv1_dag_cbor_sha256" => CidPrefix::v1(0x71, 0x12, 32),
            "cidv1_raw_sha256" => CidPrefix::v1(0x55, 0x12, 32),
            "cidv1_dag_pb_sha256" => CidPrefix::v1(0x70, 0x12, 32),
            other => panic!("prefix {other} is not checked here"),
        };
        assert_eq!(prefix, expected, "{name}");
        if let Some(example) = vector
            .get("example_cid")
            .and_then(serde_json::Value::as_str)
        {
            let cid: Cid = example.parse().expect("example cid");
            assert_eq!(CidPrefix::of(&cid), prefix, "{name}: prefix of the example");
        }
    }
}

fn check_selectors() {
    let vectors = read_json("selectors.json");
    let entries = vectors.as_object().expect("object of selectors");
    assert_eq!(entries.len(), 6, "the spec lists 6 selectors");
    for (name, vector) in entries {
        let bytes = hex_field(vector, "hex");
        assert_eq!(
            bytes.len() as u64,
            u64_field(vector, "length"),
            "{name}: length"
        );
        let node = ipld_dagcbor::decode(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(node, parse_diag(str_field(vector, "diag")), "{name}: diag");
        assert_eq!(
            ipld_dagcbor::to_vec(&node).expect("encodable"),
            bytes,
            "{name}: canonical"
        );
        let json: serde_json::Value =
            serde_json::from_str(str_field(vector, "dag_json")).expect("dag-json");
        let from_json = ipld_dagcbor::to_vec(&node_from_json(&json)).expect("encodable");
        assert_eq!(from_json, bytes, "{name}: dag-json form");
    }
}

/// The node of a DAG-JSON selector (maps, lists, strings and integers only).
fn node_from_json(value: &serde_json::Value) -> Node {
    match value {
        serde_json::Value::Object(entries) => Node::Map(
            entries
                .iter()
                .map(|(key, value)| (key.as_str(), node_from_json(value)))
                .collect(),
        ),
        serde_json::Value::Array(items) => Node::List(items.iter().map(node_from_json).collect()),
        serde_json::Value::String(text) => Node::from(text.as_str()),
        serde_json::Value::Number(number) => Node::from(number.as_i64().expect("integer")),
        other => panic!("unexpected dag-json value {other}"),
    }
}

fn check_fixture_blocks(file: &str) {
    let fixture = read_json(file);
    let blocks = fixture["blocks"].as_object().expect("blocks");
    assert!(!blocks.is_empty());
    for (name, entry) in blocks {
        let prefix = CidPrefix::from_bytes(&hex_field(entry, "prefix_hex")).expect("prefix");
        let data = hex_field(entry, "data_hex");
        let block = Block::new(prefix, data.clone());
        let cid = block
            .cid()
            .unwrap_or_else(|error| panic!("{file} {name}: {error}"));
        assert_eq!(
            cid.to_string(),
            str_field(entry, "cid"),
            "{file} {name}: cid"
        );
        assert_eq!(
            cid.to_bytes(),
            hex_field(entry, "cid_hex"),
            "{file} {name}: cid bytes"
        );
        assert_eq!(
            Block::from_cid(&cid, data.clone()),
            block,
            "{file} {name}: prefix of cid"
        );
        if let Some(utf8) = entry.get("utf8").and_then(serde_json::Value::as_str) {
            assert_eq!(data, utf8.as_bytes(), "{file} {name}: text");
        }
        if let Some(diag) = entry.get("diag").and_then(serde_json::Value::as_str) {
            let node = ipld_dagcbor::decode(&data).expect("dag-cbor block");
            assert_eq!(node, parse_diag(diag), "{file} {name}: diag");
        }
    }
}
