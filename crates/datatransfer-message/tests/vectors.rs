//! Every shared wire vector: decoded fields against the JSON sidecar, re-encoding, the
//! cbor-gen twins, our constructors against the `v12_*` bytes, and the negative cases.

mod common;

use std::collections::BTreeMap;
use std::fs;

use bytes::BytesMut;
use cid::Cid;
use datatransfer_message::{
    ChannelId, DecodeError, Limits, Message, PeerId, Request, Response, TransferId, TypeIdentifier,
    cancel_request, cancel_response, complete_response, decode, decode_prefix, decode_with, encode,
    new_request, new_response, restart_existing_channel_request, restart_request, to_vec,
    update_request, update_response, voucher_request, voucher_result_response,
};
use ipld_dagcbor::{Kind, Map, Node, Text};
use serde_json::Value;

use common::{from_hex, read_hex_file, to_hex, vectors_dir};

/// The names (without `.hex`) of every hex vector in the shared folder.
fn vector_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(vectors_dir())
        .expect("vector folder is readable")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|file| file.strip_suffix(".hex").map(str::to_owned))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no .hex vectors in {}",
        vectors_dir().display()
    );
    names
}

fn sidecar(name: &str) -> Value {
    let path = vectors_dir().join(format!("{name}.json"));
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The sidecar's `decoded` value as a node, keeping wire order.
fn json_to_node(value: &Value) -> Node {
    match value {
        Value::Null => Node::Null,
        Value::Bool(flag) => Node::Bool(*flag),
        Value::Number(number) => {
            let integer = number
                .as_u64()
                .map(i128::from)
                .or_else(|| number.as_i64().map(i128::from))
                .unwrap_or_else(|| panic!("non-integer number {number} in a sidecar"));
            Node::Integer(integer)
        }
        Value::String(text) => Node::text(text.as_str()),
        Value::Array(items) => Node::List(items.iter().map(json_to_node).collect()),
        Value::Object(object) => match object.get("cbor").and_then(Value::as_str) {
            Some("text") => {
                let hex = object["hex"].as_str().expect("text has hex");
                Node::String(Text::from_bytes(from_hex(hex)))
            }
            Some("tag42-link") => {
                let hex = object["cid_bytes_hex"]
                    .as_str()
                    .expect("link has cid bytes");
                let cid = Cid::try_from(from_hex(hex)).expect("sidecar cid is valid");
                assert_eq!(
                    cid.to_string(),
                    object["cid"].as_str().expect("link has cid text")
                );
                Node::Link(cid)
            }
            Some("map") => {
                let entries = object["entries_in_wire_order"]
                    .as_array()
                    .expect("map entries");
                let mut map = Map::new();
                for entry in entries {
                    let key = entry[0].as_str().expect("map key is a string");
                    assert!(
                        map.insert(key, json_to_node(&entry[1])).is_none(),
                        "repeated {key}"
                    );
                }
                Node::Map(map)
            }
            other => panic!("unknown sidecar value kind {other:?}"),
        },
    }
}

/// The fields of a schema struct as the sidecar lists them, by key.
fn json_fields(node: &Node) -> BTreeMap<String, Node> {
    let map = node.as_map().expect("sidecar struct is a map");
    map.iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect()
}

fn text(bytes: &[u8]) -> Node {
    Node::String(Text::from_bytes(bytes))
}

fn optional(node: Option<&Node>) -> Node {
    node.cloned().unwrap_or(Node::Null)
}

/// A request's fields read through the public accessors, keyed by wire name.
fn request_fields(request: &Request) -> BTreeMap<String, Node> {
    let channel = request.restart_channel();
    let fields = [
        (
            "BCid",
            request
                .base_cid()
                .map_or(Node::Null, |cid| Node::Link(*cid)),
        ),
        ("Part", Node::Bool(request.is_partial())),
        ("Paus", Node::Bool(request.is_paused())),
        ("Pull", Node::Bool(request.is_pull())),
        ("Stor", optional(request.selector())),
        ("Type", Node::from(request.message_type().wire_value())),
        ("VTyp", text(request.voucher_type().as_bytes())),
        ("Vouch", optional(request.voucher())),
        ("XferID", Node::from(request.transfer_id().value())),
        (
            "RestartChannel",
            Node::List(vec![
                text(channel.initiator.as_bytes()),
                text(channel.responder.as_bytes()),
                Node::from(channel.id.value()),
            ]),
        ),
    ];
    fields
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// A response's fields read through the public accessors, keyed by wire name.
fn response_fields(response: &Response) -> BTreeMap<String, Node> {
    let fields = [
        ("Acpt", Node::Bool(response.accepted())),
        ("Paus", Node::Bool(response.is_paused())),
        ("Type", Node::from(response.message_type().wire_value())),
        ("VRes", optional(response.voucher_result())),
        ("VTyp", text(response.voucher_result_type().as_bytes())),
        ("XferID", Node::from(response.transfer_id().value())),
    ];
    fields
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// Compares every decoded field with the sidecar's `decoded` value.
fn assert_matches_sidecar(name: &str, message: &Message, decoded: &Value) {
    let expected = json_fields(&json_to_node(decoded));
    assert_eq!(
        expected["IsRq"],
        Node::Bool(message.is_request()),
        "{name}: IsRq"
    );
    match message {
        Message::Request(request) => {
            assert_eq!(expected["Response"], Node::Null, "{name}: Response");
            assert_eq!(
                request_fields(request),
                json_fields(&expected["Request"]),
                "{name}"
            );
        }
        Message::Response(response) => {
            assert_eq!(expected["Request"], Node::Null, "{name}: Request");
            assert_eq!(
                response_fields(response),
                json_fields(&expected["Response"]),
                "{name}"
            );
        }
    }
}

#[test]
fn every_vector_decodes_to_the_fields_its_sidecar_lists() {
    for name in vector_names() {
        let bytes = read_hex_file(&name);
        let json = sidecar(&name);
        assert_eq!(
            json["length"].as_u64(),
            Some(bytes.len() as u64),
            "{name}: length"
        );
        let message = decode(&bytes).unwrap_or_else(|error| panic!("{name}: {error:?}"));
        assert_matches_sidecar(&name, &message, &json["decoded"]);
    }
}

#[test]
fn canonical_vectors_re_encode_byte_for_byte() {
    let names: Vec<String> = vector_names()
        .into_iter()
        .filter(|name| name.starts_with("v12_") || name.starts_with("go_iplprime_"))
        .collect();
    assert!(
        names.len() >= 21,
        "expected the 16 v12 and 5 ipld-prime vectors, got {names:?}"
    );
    for name in names {
        let bytes = read_hex_file(&name);
        let message = decode(&bytes).unwrap_or_else(|error| panic!("{name}: {error:?}"));
        let mut out = BytesMut::new();
        encode(&message, &mut out).unwrap_or_else(|error| panic!("{name}: {error:?}"));
        assert_eq!(to_hex(&out), to_hex(&bytes), "{name}");
    }
}

#[test]
fn cborgen_vectors_re_encode_to_their_canonical_form_and_twin() {
    let names: Vec<String> = vector_names()
        .into_iter()
        .filter(|name| name.starts_with("go_cborgen_"))
        .collect();
    assert!(
        names.len() >= 6,
        "expected the 6 cbor-gen vectors, got {names:?}"
    );
    for name in names {
        let bytes = read_hex_file(&name);
        let json = sidecar(&name);
        let message = decode(&bytes).unwrap_or_else(|error| panic!("{name}: {error:?}"));
        let canonical = json["canonical_form_hex"]
            .as_str()
            .expect("canonical form listed");
        assert_eq!(
            to_hex(&to_vec(&message).expect("encodable")),
            canonical,
            "{name}"
        );
        assert_ne!(
            to_hex(&bytes),
            canonical,
            "{name}: a cbor-gen vector is not canonical"
        );
        if let Some(twin) = json["canonical_twin"].as_str() {
            let twin_bytes = read_hex_file(twin);
            assert_eq!(to_hex(&twin_bytes), canonical, "{name}: twin bytes");
            assert_eq!(
                decode(&twin_bytes).expect("twin decodes"),
                message,
                "{name}: twin"
            );
        }
    }
}

#[test]
fn graphsync_extension_node_round_trips_every_vector() {
    for name in vector_names() {
        let bytes = read_hex_file(&name);
        let node = ipld_dagcbor::decode(&bytes).expect("vector is dag-cbor");
        let message = Message::from_node(&node).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(Some(&message), decode(&bytes).ok().as_ref(), "{name}");
        let again = message.to_node().expect("encodable");
        assert_eq!(
            Message::from_node(&again).expect("decodable"),
            message,
            "{name}"
        );
    }
}

// Common inputs of the hand-derived vectors (README "Common inputs").

const XFER_ID: TransferId = TransferId(1_648_771_200_000_000_001);
const BASE_CID: &str = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb";
const INITIATOR: &str =
    "00240801122099fb7749b4e3a4a29f965fa45303edf880f255286eb379e72ee58feef5f6c229";
const RESPONDER: &str = "1220cbbed28c9b4acbe27e0556bd875e3578b314915e3f337bf46414ac660542ef1a";

fn fake_type() -> TypeIdentifier {
    TypeIdentifier::new("FakeDTType")
}

/// `FakeDTType{Data}` is a cbor-gen tuple: a one-element list.
fn fake_voucher(data: &str) -> Node {
    Node::List(vec![Node::text(data)])
}

fn base_cid() -> Cid {
    BASE_CID.parse().expect("the README's cid parses")
}

/// Explore-all-recursive, `{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}`.
fn explore_all() -> Node {
    let leaf = |key: &str, value: Node| Node::Map(Map::new().with(key, value));
    let next = leaf("a", leaf(">", leaf("@", Node::empty_map())));
    let recursive = Map::new()
        .with("l", leaf("none", Node::empty_map()))
        .with(":>", next);
    leaf("R", Node::Map(recursive))
}

/// Our constructors, called with the README's inputs, for each `v12_*` vector.
fn constructed(name: &str) -> Option<Message> {
    let result = || Some(fake_voucher("spec-voucher-result"));
    let message: Message = match name {
        "v12_new_pull_request" => new_request(
            XFER_ID,
            true,
            fake_type(),
            fake_voucher("spec-voucher-1"),
            base_cid(),
            explore_all(),
        )
        .into(),
        "v12_new_push_request" => new_request(
            XFER_ID,
            false,
            fake_type(),
            fake_voucher("spec-voucher-1"),
            base_cid(),
            explore_all(),
        )
        .into(),
        "v12_restart_pull_request" => restart_request(
            XFER_ID,
            true,
            fake_type(),
            fake_voucher("spec-voucher-1"),
            base_cid(),
            explore_all(),
        )
        .into(),
        "v12_new_response_accepted" => {
            new_response(XFER_ID, true, false, fake_type(), result()).into()
        }
        "v12_new_response_accepted_paused" => {
            new_response(XFER_ID, true, true, fake_type(), result()).into()
        }
        "v12_new_response_rejected_no_result" => {
            new_response(XFER_ID, false, false, TypeIdentifier::EMPTY, None).into()
        }
        "v12_cancel_request" => cancel_request(XFER_ID).into(),
        "v12_cancel_response" => cancel_response(XFER_ID).into(),
        "v12_restart_existing_channel_request" => {
            let channel = ChannelId::new(
                PeerId::from_bytes(from_hex(INITIATOR)),
                PeerId::from_bytes(from_hex(RESPONDER)),
                XFER_ID,
            );
            restart_existing_channel_request(channel).into()
        }
        "v12_update_request_pause" => update_request(XFER_ID, true).into(),
        "v12_update_request_resume" => update_request(XFER_ID, false).into(),
        "v12_update_response_resume" => update_response(XFER_ID, false).into(),
        "v12_voucher_request" => {
            voucher_request(XFER_ID, fake_type(), fake_voucher("spec-voucher-2")).into()
        }
        "v12_voucher_result_response_pause" => {
            voucher_result_response(XFER_ID, true, true, fake_type(), result()).into()
        }
        "v12_complete_response" => {
            complete_response(XFER_ID, true, false, TypeIdentifier::EMPTY, None).into()
        }
        "v12_complete_response_finalizing" => {
            complete_response(XFER_ID, true, true, fake_type(), result()).into()
        }
        _ => return None,
    };
    Some(message)
}

#[test]
fn our_constructors_produce_every_v12_vector_exactly() {
    let names: Vec<String> = vector_names()
        .into_iter()
        .filter(|name| name.starts_with("v12_"))
        .collect();
    assert_eq!(
        names.len(),
        16,
        "the README lists 16 hand-derived vectors: {names:?}"
    );
    for name in names {
        let message = constructed(&name)
            .unwrap_or_else(|| panic!("{name}: new v12 vector without a constructor case"));
        let bytes = read_hex_file(&name);
        assert_eq!(
            to_hex(&to_vec(&message).expect("encodable")),
            to_hex(&bytes),
            "{name}"
        );
        assert_eq!(decode(&bytes).expect("decodable"), message, "{name}");
    }
}

#[test]
fn restart_existing_channel_vector_names_the_readme_peers() {
    let message = decode(&read_hex_file("v12_restart_existing_channel_request")).expect("decodes");
    let request = message.as_request().expect("a request");
    assert!(request.is_restart_existing_channel_request());
    assert_eq!(request.transfer_id(), TransferId(0));
    assert_eq!(
        request.restart_channel().to_string(),
        "12D3KooWLBSwj2iHG5CZCKkY1WSh4AXnzFhKs7xXhBhDxPLdxvqW-\
         Qmc3zEfwzFNtU8d58gSy4PyXwQ5Q7b4kPz2UMHQy3du2NM-1648771200000000001"
    );
}

// Negative cases. Each starts from a valid vector's node and breaks one thing.

fn vector_node(name: &str) -> Map {
    match ipld_dagcbor::decode(&read_hex_file(name)).expect("vector is dag-cbor") {
        Node::Map(map) => map,
        other => panic!("{name} is a {:?}", other.kind()),
    }
}

fn without(map: &Map, key: &str) -> Map {
    map.iter()
        .filter(|(k, _)| *k != key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn with_inner(outer: &Map, field: &str, change: impl FnOnce(Map) -> Map) -> Map {
    let inner = outer
        .get(field)
        .and_then(Node::as_map)
        .expect("inner map")
        .clone();
    outer.clone().with(field, Node::Map(change(inner)))
}

fn decode_map(map: Map) -> Result<Message, DecodeError> {
    let bytes = ipld_dagcbor::to_vec(&Node::Map(map)).expect("encodable");
    let from_bytes = decode(&bytes);
    let from_node = Message::from_node(&ipld_dagcbor::decode(&bytes).expect("dag-cbor"));
    assert_eq!(
        from_bytes.as_ref().map_err(ToString::to_string),
        from_node.as_ref().map_err(ToString::to_string),
        "bytes and node paths agree"
    );
    from_bytes
}

#[test]
fn an_outer_map_missing_response_is_rejected() {
    let error = decode_map(without(&vector_node("v12_cancel_request"), "Response"))
        .expect_err("missing Response");
    assert!(
        matches!(
            error,
            DecodeError::MissingField {
                structure: "TransferMessage",
                field: "Response"
            }
        ),
        "{error:?}"
    );
}

#[test]
fn every_missing_field_is_named() {
    let request = vector_node("v12_new_pull_request");
    for field in [
        "BCid", "Part", "Paus", "Pull", "Stor", "Type", "VTyp", "Vouch", "XferID",
    ] {
        let error = decode_map(with_inner(&request, "Request", |inner| {
            without(&inner, field)
        }))
        .expect_err("missing field");
        assert!(
            matches!(error, DecodeError::MissingField { structure: "TransferRequest", field: f } if f == field),
            "{field}: {error:?}"
        );
    }
    let response = vector_node("v12_new_response_accepted");
    for field in ["Acpt", "Paus", "Type", "VRes", "VTyp", "XferID"] {
        let error = decode_map(with_inner(&response, "Response", |inner| {
            without(&inner, field)
        }))
        .expect_err("missing field");
        assert!(
            matches!(error, DecodeError::MissingField { structure: "TransferResponse", field: f } if f == field),
            "{field}: {error:?}"
        );
    }
}

#[test]
fn a_request_map_with_an_extra_key_is_rejected() {
    let map = with_inner(&vector_node("v12_new_pull_request"), "Request", |inner| {
        inner.with("Extra", Node::Null)
    });
    let error = decode_map(map).expect_err("extra key");
    assert!(
        matches!(&error, DecodeError::UnknownField { structure: "TransferRequest", key } if key == "Extra"),
        "{error:?}"
    );
}

#[test]
fn is_request_with_a_null_request_is_rejected() {
    let bytes = from_hex("a36449735271f56752657175657374f668526573706f6e7365f6");
    let error = decode(&bytes).expect_err("IsRq=true, Request=null");
    assert!(
        matches!(
            error,
            DecodeError::NullBody {
                is_request: true,
                field: "Request"
            }
        ),
        "{error:?}"
    );
}

#[test]
fn is_response_with_a_null_response_is_rejected() {
    let map = vector_node("v12_cancel_request").with("IsRq", false);
    let error = decode_map(map).expect_err("IsRq=false, Response=null");
    assert!(
        matches!(
            error,
            DecodeError::NullBody {
                is_request: false,
                field: "Response"
            }
        ),
        "{error:?}"
    );
}

#[test]
fn the_side_is_rq_does_not_name_is_checked_then_ignored_as_go_does() {
    let response = vector_node("v12_cancel_response")
        .get("Response")
        .cloned()
        .expect("response");
    let request = vector_node("v12_cancel_request");
    let message = decode_map(request.clone().with("Response", response)).expect("valid");
    assert_eq!(message, Message::from(cancel_request(XFER_ID)));
    let broken = request.with("Response", Node::Map(Map::new().with("Acpt", true)));
    let error = decode_map(broken).expect_err("the ignored side is still checked");
    assert!(matches!(
        error,
        DecodeError::MissingField {
            structure: "TransferResponse",
            ..
        }
    ));
}

#[test]
fn a_transfer_id_above_i64_max_is_rejected() {
    let too_big = i128::from(TransferId::MAX_WIRE) + 1;
    let map = with_inner(&vector_node("v12_cancel_request"), "Request", |inner| {
        inner.with("XferID", Node::Integer(too_big))
    });
    let error = decode_map(map).expect_err("XferID too large");
    assert!(
        matches!(error, DecodeError::IntegerOutOfRange { structure: "TransferRequest", field: "XferID", value } if value == too_big),
        "{error:?}"
    );
    let at_max = with_inner(&vector_node("v12_cancel_request"), "Request", |inner| {
        inner.with("XferID", Node::from(TransferId::MAX_WIRE))
    });
    assert_eq!(
        decode_map(at_max).expect("max fits").transfer_id().value(),
        TransferId::MAX_WIRE
    );
}

#[test]
fn a_restart_channel_id_above_i64_max_is_rejected() {
    let map = with_inner(
        &vector_node("v12_restart_existing_channel_request"),
        "Request",
        |inner| {
            let channel = vec![Node::text("a"), Node::text("b"), Node::from(u64::MAX)];
            inner.with("RestartChannel", Node::List(channel))
        },
    );
    let error = decode_map(map).expect_err("ChannelID.ID too large");
    assert!(
        matches!(
            error,
            DecodeError::IntegerOutOfRange {
                structure: "ChannelID",
                field: "ID",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn encoding_a_transfer_id_above_i64_max_is_refused() {
    let too_big = TransferId(TransferId::MAX_WIRE + 1);
    let error = to_vec(&cancel_response(too_big).into()).expect_err("XferID too large");
    assert!(
        matches!(error, datatransfer_message::EncodeError::TransferIdOutOfRange { structure: "TransferResponse", field: "XferID", value } if value == too_big.value()),
        "{error:?}"
    );
    let channel = ChannelId::new(PeerId::default(), PeerId::default(), too_big);
    let error = to_vec(&restart_existing_channel_request(channel).into()).expect_err("too large");
    assert!(
        matches!(
            error,
            datatransfer_message::EncodeError::TransferIdOutOfRange {
                structure: "ChannelID",
                field: "ID",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_negative_type_is_rejected() {
    let map = with_inner(&vector_node("v12_cancel_response"), "Response", |inner| {
        inner.with("Type", Node::Integer(-1))
    });
    let error = decode_map(map).expect_err("negative Type");
    assert!(
        matches!(
            error,
            DecodeError::IntegerOutOfRange {
                structure: "TransferResponse",
                field: "Type",
                value: -1
            }
        ),
        "{error:?}"
    );
}

#[test]
fn an_unknown_type_is_rejected_naming_the_value() {
    let map = with_inner(&vector_node("v12_cancel_request"), "Request", |inner| {
        inner.with("Type", Node::from(8u64))
    });
    let error = decode_map(map).expect_err("Type 8");
    assert!(
        matches!(
            error,
            DecodeError::UnknownMessageType {
                structure: "TransferRequest",
                value: 8
            }
        ),
        "{error:?}"
    );
}

#[test]
fn wrong_kinds_name_the_field_and_both_kinds() {
    let cases: [(&str, &str, Node, &str, &str, Kind); 6] = [
        (
            "v12_cancel_request",
            "Paus",
            Node::from(1u64),
            "TransferRequest",
            "bool",
            Kind::Integer,
        ),
        (
            "v12_cancel_request",
            "VTyp",
            Node::Null,
            "TransferRequest",
            "string",
            Kind::Null,
        ),
        (
            "v12_cancel_request",
            "BCid",
            Node::text("x"),
            "TransferRequest",
            "link or null",
            Kind::String,
        ),
        (
            "v12_cancel_request",
            "RestartChannel",
            Node::empty_map(),
            "TransferRequest",
            "list",
            Kind::Map,
        ),
        (
            "v12_cancel_response",
            "XferID",
            Node::text("1"),
            "TransferResponse",
            "int",
            Kind::String,
        ),
        (
            "v12_cancel_response",
            "Acpt",
            Node::Null,
            "TransferResponse",
            "bool",
            Kind::Null,
        ),
    ];
    for (vector, field, value, structure, expected, found) in cases {
        let side = if structure == "TransferRequest" {
            "Request"
        } else {
            "Response"
        };
        let map = with_inner(&vector_node(vector), side, |inner| inner.with(field, value));
        let error = decode_map(map).expect_err("wrong kind");
        assert!(
            matches!(&error, DecodeError::WrongKind { structure: s, field: f, expected: e, found: k }
                if *s == structure && *f == field && *e == expected && *k == found),
            "{field}: {error:?}"
        );
    }
    let error = decode_map(vector_node("v12_cancel_request").with("IsRq", 1u64)).expect_err("IsRq");
    assert!(matches!(
        error,
        DecodeError::WrongKind {
            field: "IsRq",
            expected: "bool",
            ..
        }
    ));
    let error = decode_map(vector_node("v12_cancel_request").with("Request", Node::text("r")))
        .expect_err("Request");
    assert!(matches!(
        error,
        DecodeError::WrongKind {
            field: "Request",
            found: Kind::String,
            ..
        }
    ));
    let error = decode(&[0x81, 0x00]).expect_err("a list");
    assert!(
        matches!(error, DecodeError::NotAMap { found: Kind::List }),
        "{error:?}"
    );
}

#[test]
fn restart_channel_members_are_checked() {
    let restart = |members: Vec<Node>| {
        with_inner(
            &vector_node("v12_restart_existing_channel_request"),
            "Request",
            |inner| inner.with("RestartChannel", Node::List(members)),
        )
    };
    let error = decode_map(restart(vec![Node::text("a"), Node::text("b")])).expect_err("2");
    assert!(
        matches!(
            error,
            DecodeError::WrongTupleLength {
                field: "RestartChannel",
                found: 2,
                ..
            }
        ),
        "{error:?}"
    );
    let bytes_peer = vec![
        Node::Bytes(vec![1].into()),
        Node::text("b"),
        Node::from(1u64),
    ];
    let error = decode_map(restart(bytes_peer)).expect_err("bytes peer");
    assert!(
        matches!(
            error,
            DecodeError::WrongKind {
                structure: "ChannelID",
                field: "Initiator",
                found: Kind::Bytes,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_non_string_key_is_rejected() {
    // {"IsRq": true, 1: null, ...}: the second key is an integer.
    let bytes = from_hex("a36449735271f501f668526573706f6e7365f6");
    let error = decode(&bytes).expect_err("integer key");
    assert!(
        matches!(
            error,
            DecodeError::Cbor {
                source: ipld_dagcbor::DecodeError::NonStringKey { offset: 7 }
            }
        ),
        "{error:?}"
    );
}

#[test]
fn truncated_input_is_reported_as_truncated_at_every_cut() {
    let bytes = read_hex_file("v12_new_pull_request");
    for cut in 1..bytes.len() {
        let error = decode(&bytes[..cut]).expect_err("truncated");
        assert!(
            matches!(error, DecodeError::Truncated { .. }),
            "cut {cut}: {error:?}"
        );
    }
    assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
}

#[test]
fn oversize_input_is_refused_before_decoding() {
    let bytes = read_hex_file("v12_new_pull_request");
    let limits = Limits::default().with_max_bytes(bytes.len() - 1);
    let error = decode_with(&bytes, &limits).expect_err("over the limit");
    assert!(
        matches!(error, DecodeError::TooLarge { len, limit } if len == bytes.len() && limit == bytes.len() - 1),
        "{error:?}"
    );
    assert!(decode_with(&bytes, &limits.with_max_bytes(bytes.len())).is_ok());
    // A byte string header claiming more than the default 10 MiB, followed by nothing.
    let huge = [0x5a, 0x00, 0xa0, 0x00, 0x01];
    assert!(matches!(decode(&huge), Err(DecodeError::Truncated { .. })));
    let padded = vec![0u8; Limits::DEFAULT_MAX_BYTES + 1];
    let error = decode(&padded).expect_err("over 10 MiB");
    assert!(matches!(
        error,
        DecodeError::TooLarge {
            limit: Limits::DEFAULT_MAX_BYTES,
            ..
        }
    ));
}

#[test]
fn deep_vouchers_are_bounded() {
    let mut voucher = Node::Null;
    for _ in 0..200 {
        voucher = Node::List(vec![voucher]);
    }
    let bytes = to_vec(&voucher_request(XFER_ID, fake_type(), voucher).into()).expect("encodable");
    let error = decode(&bytes).expect_err("too deep");
    assert!(
        matches!(error, DecodeError::TooDeep { limit: 128, .. }),
        "{error:?}"
    );
    assert!(decode_with(&bytes, &Limits::default().with_max_depth(256)).is_ok());
}

#[test]
fn trailing_bytes_are_rejected_by_decode_but_left_by_decode_prefix() {
    let first = read_hex_file("v12_cancel_request");
    let second = read_hex_file("v12_update_response_resume");
    let mut stream = first.clone();
    stream.extend_from_slice(&second);
    let error = decode(&stream).expect_err("two messages");
    assert!(matches!(
        error,
        DecodeError::Cbor {
            source: ipld_dagcbor::DecodeError::TrailingBytes { .. }
        }
    ));
    let limits = Limits::default();
    let (one, used) = decode_prefix(&stream, &limits).expect("first");
    assert_eq!(used, first.len());
    let (two, used_two) = decode_prefix(&stream[used..], &limits).expect("second");
    assert_eq!(used_two, second.len());
    assert_eq!(
        (one, two),
        (
            cancel_request(XFER_ID).into(),
            update_response(XFER_ID, false).into()
        )
    );
    assert!(matches!(
        decode_prefix(&stream[used + used_two..], &limits),
        Err(DecodeError::Empty)
    ));
    assert!(matches!(
        decode_prefix(&stream[..used + 3], &limits).map(|(m, n)| (m.transfer_id(), n)),
        Ok((XFER_ID, n)) if n == used
    ));
    assert!(matches!(
        decode_prefix(&stream[used..used + 3], &limits),
        Err(DecodeError::Truncated { .. })
    ));
}
