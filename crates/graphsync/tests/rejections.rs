//! What go-graphsync rejects, this codec rejects, with the matching error (spec §1.3, §2.4, §3).

use std::collections::BTreeMap;

use bytes::BytesMut;
use graphsync::codec::frame::{self, Frame, FrameConfig, FrameDecoder, FrameError};
use graphsync::codec::v1::{self, PeerIds, pb};
use graphsync::codec::{DecodeError, EncodeError, v2};
use graphsync::{
    CidPrefixError, Extensions, LinkAction, Message, Request, RequestId, RequestKind, Response,
    ResponseStatus, extension,
};
use ipld_dagcbor::{Cid, Kind, Map, Node};

const ID: [u8; 16] = [0x8b; 16];

fn root() -> Cid {
    "bafyreiaeth2oqylkuauom7tbqesf4jlc37dk27v4e4zggaaeccx5riac5e"
        .parse()
        .expect("cid")
}

fn selector() -> Node {
    Node::Map(Map::new().with(".", Node::empty_map()))
}

fn new_request() -> Map {
    Map::new()
        .with("id", Node::Bytes(ID.to_vec().into()))
        .with("type", "n")
        .with("root", root())
        .with("sel", selector())
}

fn response() -> Map {
    Map::new()
        .with("reqid", Node::Bytes(ID.to_vec().into()))
        .with("stat", 20u64)
}

fn body_with(key: &str, entries: Vec<Node>) -> Vec<u8> {
    let message = Map::new().with(key, Node::List(entries));
    ipld_dagcbor::to_vec(&Node::Map(Map::new().with("gs2", message))).expect("encodable")
}

fn request_body(request: Map) -> Vec<u8> {
    body_with("req", vec![Node::Map(request)])
}

fn response_body(response: Map) -> Vec<u8> {
    body_with("rsp", vec![Node::Map(response)])
}

fn v2_error(body: &[u8]) -> DecodeError {
    v2::decode(body).expect_err("go rejects this message")
}

#[test]
fn v2_accepts_the_baseline_messages() {
    let decoded = v2::decode(&request_body(new_request())).expect("valid request");
    assert_eq!(
        decoded.requests,
        [Request::new(RequestId::new(ID), root(), selector())]
    );
    let decoded = v2::decode(&response_body(response())).expect("valid response");
    assert_eq!(
        decoded.responses,
        [Response::new(
            RequestId::new(ID),
            ResponseStatus::RequestCompletedFull
        )]
    );
}

#[test]
fn v2_rejects_unknown_keys_at_every_level() {
    let envelope = Map::new()
        .with("gs2", Node::empty_map())
        .with("gs3", Node::empty_map());
    let body = ipld_dagcbor::to_vec(&Node::Map(envelope)).expect("encodable");
    assert!(
        matches!(v2_error(&body), DecodeError::UnknownField { ref field, .. } if field == "gs3")
    );

    let body = body_with("requests", vec![]);
    assert!(
        matches!(v2_error(&body), DecodeError::UnknownField { ref field, ref at } if field == "requests" && at == "gs2")
    );

    let body = request_body(new_request().with("priority", 1u64));
    assert!(
        matches!(v2_error(&body), DecodeError::UnknownField { ref field, ref at } if field == "priority" && at == "gs2.req[0]")
    );

    let body = response_body(response().with("status", 20u64));
    assert!(
        matches!(v2_error(&body), DecodeError::UnknownField { ref field, ref at } if field == "status" && at == "gs2.rsp[0]")
    );
}

#[test]
fn v2_rejects_missing_required_fields() {
    let mut map = Map::new();
    for (key, value) in new_request() {
        if key != "id" {
            map.insert(key, value);
        }
    }
    assert!(matches!(
        v2_error(&request_body(map)),
        DecodeError::MissingField { field: "id", .. }
    ));

    let mut map = Map::new();
    for (key, value) in new_request() {
        if key != "type" {
            map.insert(key, value);
        }
    }
    assert!(matches!(
        v2_error(&request_body(map)),
        DecodeError::MissingField { field: "type", .. }
    ));

    let body = response_body(Map::new().with("stat", 20u64));
    assert!(matches!(
        v2_error(&body),
        DecodeError::MissingField { field: "reqid", .. }
    ));
    let body = response_body(Map::new().with("reqid", Node::Bytes(ID.to_vec().into())));
    assert!(matches!(
        v2_error(&body),
        DecodeError::MissingField { field: "stat", .. }
    ));

    let body = ipld_dagcbor::to_vec(&Node::empty_map()).expect("encodable");
    assert!(matches!(
        v2_error(&body),
        DecodeError::MissingField { field: "gs2", .. }
    ));
}

#[test]
fn v2_rejects_a_new_request_without_root_or_selector() {
    let map = Map::new()
        .with("id", Node::Bytes(ID.to_vec().into()))
        .with("type", "n")
        .with("sel", selector());
    assert!(matches!(
        v2_error(&request_body(map)),
        DecodeError::MissingField { field: "root", .. }
    ));
    let map = Map::new()
        .with("id", Node::Bytes(ID.to_vec().into()))
        .with("type", "n")
        .with("root", root());
    assert!(matches!(
        v2_error(&request_body(map)),
        DecodeError::MissingField { field: "sel", .. }
    ));
}

#[test]
fn v2_requires_16_byte_ids() {
    for len in [0, 15, 17] {
        let body = request_body(new_request().with("id", Node::Bytes(vec![1; len].into())));
        assert!(
            matches!(v2_error(&body), DecodeError::BadRequestId { len: found, .. } if found == len),
            "{len}"
        );
        let body = response_body(response().with("reqid", Node::Bytes(vec![1; len].into())));
        assert!(
            matches!(v2_error(&body), DecodeError::BadRequestId { .. }),
            "{len}"
        );
    }
}

#[test]
fn v2_rejects_status_codes_go_does_not_define() {
    for code in [0u64, 16, 22, 36, 1 << 40] {
        let body = response_body(response().with("stat", code));
        assert!(
            matches!(v2_error(&body), DecodeError::UnknownStatus { code: found, .. } if found == i128::from(code)),
            "{code}"
        );
    }
    let body = response_body(response().with("stat", -1i64));
    assert!(matches!(
        v2_error(&body),
        DecodeError::UnknownStatus { code: -1, .. }
    ));
}

#[test]
fn v2_rejects_the_restart_request_type_and_other_strings() {
    for value in ["r", "Restart", "N", "new", ""] {
        let body = request_body(new_request().with("type", value));
        assert!(
            matches!(v2_error(&body), DecodeError::UnknownRequestType { value: ref found, .. } if found == value),
            "{value}"
        );
    }
}

#[test]
fn v2_accepts_enum_member_names() {
    let body = request_body(new_request().with("type", "New"));
    assert!(matches!(
        v2::decode(&body).expect("New").requests[0].kind,
        RequestKind::New { .. }
    ));
    let body = request_body(
        Map::new()
            .with("id", Node::Bytes(ID.to_vec().into()))
            .with("type", "Cancel"),
    );
    assert_eq!(
        v2::decode(&body).expect("Cancel").requests[0].kind,
        RequestKind::Cancel
    );
    let body = request_body(
        Map::new()
            .with("id", Node::Bytes(ID.to_vec().into()))
            .with("type", "Update"),
    );
    assert_eq!(
        v2::decode(&body).expect("Update").requests[0].kind,
        RequestKind::Update
    );

    for (name, action) in [
        ("Present", LinkAction::Present),
        ("DuplicateNotSent", LinkAction::DuplicateNotSent),
        ("Missing", LinkAction::Missing),
        ("DuplicateDAGSkipped", LinkAction::DuplicateDagSkipped),
    ] {
        let meta = Node::List(vec![Node::List(vec![Node::Link(root()), Node::from(name)])]);
        let decoded = v2::decode(&response_body(response().with("meta", meta))).expect(name);
        assert_eq!(decoded.responses[0].metadata[0].action, action);
    }
}

#[test]
fn v2_rejects_unknown_link_actions() {
    let meta = Node::List(vec![Node::List(vec![Node::Link(root()), Node::from("x")])]);
    let body = response_body(response().with("meta", meta));
    assert!(matches!(
        v2_error(&body),
        DecodeError::UnknownLinkAction { ref value, ref at } if value == "x" && at == "gs2.rsp[0].meta[0][1]"
    ));
}

#[test]
fn v2_rejects_pairs_of_the_wrong_length() {
    let meta = Node::List(vec![Node::List(vec![Node::Link(root())])]);
    let body = response_body(response().with("meta", meta));
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongArity {
            expected: 2,
            found: 1,
            ..
        }
    ));

    let block = Node::List(vec![
        Node::Bytes(vec![1, 0x55, 0x12, 0x20].into()),
        Node::Bytes(b"x".to_vec().into()),
        Node::Bytes(b"y".to_vec().into()),
    ]);
    let body = body_with("blk", vec![block]);
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongArity { expected: 2, found: 3, ref at } if at == "gs2.blk[0]"
    ));
}

#[test]
fn v2_rejects_wrong_kinds() {
    let body = request_body(new_request().with("id", "8b8b8b8b8b8b8b8b"));
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "bytes",
            found: Kind::String,
            ..
        }
    ));
    let body = response_body(response().with("stat", "20"));
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "int",
            ..
        }
    ));
    let body = request_body(new_request().with("root", Node::Bytes(root().to_bytes().into())));
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "link",
            ..
        }
    ));
    let body = request_body(new_request().with("ext", Node::List(vec![])));
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "map",
            ..
        }
    ));
    let body = request_body(new_request().with("pri", "high"));
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "int",
            ..
        }
    ));
    // An optional field is absent or present, never null.
    let message = Map::new().with("req", Node::Null);
    let body =
        ipld_dagcbor::to_vec(&Node::Map(Map::new().with("gs2", message))).expect("encodable");
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "list",
            found: Kind::Null,
            ..
        }
    ));
    let body = ipld_dagcbor::to_vec(&Node::List(vec![])).expect("encodable");
    assert!(matches!(
        v2_error(&body),
        DecodeError::WrongKind {
            expected: "map",
            ..
        }
    ));
}

#[test]
fn v2_rejects_priorities_outside_int32() {
    let body = request_body(new_request().with("pri", 1u64 << 31));
    assert!(matches!(
        v2_error(&body),
        DecodeError::PriorityOutOfRange { .. }
    ));
    let body = request_body(new_request().with("pri", -(1i64 << 31)));
    assert!(v2::decode(&body).is_ok(), "i32::MIN fits");
}

#[test]
fn v2_rejects_tags_other_than_42_and_malformed_links() {
    // {"gs2": {"req": 1("x")}} with tag 1 in place of the list.
    let mut body = hex::decode("a163677332a163726571").expect("hex");
    body.extend_from_slice(&[0xc1, 0x61, b'x']);
    assert!(matches!(
        v2_error(&body),
        DecodeError::Cbor {
            source: ipld_dagcbor::DecodeError::UnsupportedTag { tag: 1, .. }
        }
    ));
    // A tag-42 link whose bytes lack the leading 0x00.
    let mut good = request_body(new_request());
    let link_at = good
        .windows(2)
        .position(|w| w == [0xd8, 0x2a])
        .expect("a link")
        + 4;
    assert_eq!(good[link_at], 0x00);
    good[link_at] = 0x01;
    assert!(matches!(
        v2_error(&good),
        DecodeError::Cbor {
            source: ipld_dagcbor::DecodeError::MalformedLink { .. }
        }
    ));
}

#[test]
fn v2_rejects_bad_block_prefixes() {
    type Check = fn(&CidPrefixError) -> bool;
    let cases: [(&[u8], Check); 4] = [
        (&[0x02, 0x55, 0x12, 0x20], |e| {
            matches!(e, CidPrefixError::UnsupportedVersion { version: 2 })
        }),
        (&[0x01, 0x55, 0x12], |e| {
            matches!(e, CidPrefixError::Varint { .. })
        }),
        (&[0x01, 0xd5, 0x00, 0x12, 0x20], |e| {
            matches!(
                e,
                CidPrefixError::Varint {
                    reason: "not minimal",
                    ..
                }
            )
        }),
        (&[0x01, 0x55, 0xe3, 0x01, 0x20], |e| {
            matches!(e, CidPrefixError::UnknownHash { mh_code: 0xe3 })
        }),
    ];
    for (prefix, expected) in cases {
        let block = Node::List(vec![
            Node::Bytes(prefix.to_vec().into()),
            Node::Bytes(b"x".to_vec().into()),
        ]);
        match v2_error(&body_with("blk", vec![block])) {
            DecodeError::BadPrefix { at, source } => {
                assert_eq!(at, "gs2.blk[0][0]");
                assert!(expected(&source), "{prefix:02x?}: {source:?}");
            }
            other => panic!("{prefix:02x?}: {other:?}"),
        }
    }
}

#[test]
fn v2_rejects_an_empty_body_and_garbage() {
    assert!(matches!(v2_error(&[]), DecodeError::Cbor { .. }));
    assert!(matches!(v2_error(&[0xff]), DecodeError::Cbor { .. }));
    let mut trailing = request_body(new_request());
    trailing.push(0x00);
    assert!(matches!(v2_error(&trailing), DecodeError::Cbor { .. }));
}

#[test]
fn v2_decode_keeps_the_last_entry_for_a_repeated_id() {
    let other = [0x0f; 16];
    let first = new_request();
    let second = new_request().with("pri", 5u64);
    let third = Map::new()
        .with("id", Node::Bytes(other.to_vec().into()))
        .with("type", "c");
    let body = body_with(
        "req",
        vec![Node::Map(first), Node::Map(third), Node::Map(second)],
    );
    let decoded = v2::decode(&body).expect("go accepts repeated ids");
    assert_eq!(decoded.requests.len(), 2);
    assert_eq!(decoded.requests[0].id, RequestId::new(other));
    assert!(matches!(
        decoded.requests[1].kind,
        RequestKind::New {
            priority: graphsync::Priority(5),
            ..
        }
    ));

    let body = body_with(
        "rsp",
        vec![
            Node::Map(response()),
            Node::Map(response().with("stat", 34u64)),
        ],
    );
    let decoded = v2::decode(&body).expect("go accepts repeated ids");
    assert_eq!(decoded.responses.len(), 1);
    assert_eq!(
        decoded.responses[0].status,
        ResponseStatus::RequestFailedContentNotFound
    );
}

#[test]
fn v2_decode_drops_what_go_ignores_on_cancel_and_update() {
    let ext = Node::Map(Map::new().with("a", 1u64));
    let cancel = new_request()
        .with("type", "c")
        .with("ext", ext.clone())
        .with("pri", 3u64);
    let decoded = v2::decode(&request_body(cancel)).expect("go accepts it");
    assert_eq!(decoded.requests, [Request::cancel(RequestId::new(ID))]);
    let update = new_request().with("type", "u").with("ext", ext);
    let decoded = v2::decode(&request_body(update)).expect("go accepts it");
    assert_eq!(
        decoded.requests,
        [Request::update(
            RequestId::new(ID),
            Extensions::new().with("a", Some(Node::from(1u64)))
        )]
    );
}

#[test]
fn encoders_refuse_messages_go_cannot_produce() {
    let id = RequestId::new(ID);
    let twice = Message::new()
        .with_request(Request::cancel(id))
        .with_request(Request::cancel(id));
    assert!(matches!(
        v2::to_vec(&twice),
        Err(EncodeError::DuplicateRequest { .. })
    ));
    let twice = Message::new()
        .with_response(Response::new(id, ResponseStatus::PartialResponse))
        .with_response(Response::new(id, ResponseStatus::RequestCompletedFull));
    assert!(matches!(
        v2::to_vec(&twice),
        Err(EncodeError::DuplicateResponse { .. })
    ));
    let cancel = Request::cancel(id).with_extensions(Extensions::new().with("a", None));
    let message = Message::new().with_request(cancel);
    assert!(matches!(
        v2::to_vec(&message),
        Err(EncodeError::CancelWithExtensions { .. })
    ));
    assert!(matches!(
        v1::encode(&message, &mut PeerIds::new(0), &mut BytesMut::new()),
        Err(EncodeError::CancelWithExtensions { .. })
    ));
}

fn v1_body(message: &pb::Message) -> BytesMut {
    let mut out = BytesMut::new();
    v1::encode_wire(message, &mut out);
    out
}

fn v1_new_request() -> pb::Request {
    pb::Request {
        id: 3,
        root: root().to_bytes(),
        selector: ipld_dagcbor::to_vec(&selector()).expect("encodable"),
        ..pb::Request::default()
    }
}

fn v1_error(message: pb::Message) -> DecodeError {
    v1::decode(&v1_body(&message), &mut PeerIds::new(0)).expect_err("go rejects this message")
}

#[test]
fn v1_rejects_a_request_carrying_response_metadata() {
    let mut request = v1_new_request();
    request
        .extensions
        .insert(extension::RESPONSE_METADATA.to_owned(), vec![0x80]);
    let error = v1_error(pb::Message {
        requests: vec![request],
        ..Default::default()
    });
    assert!(matches!(error, DecodeError::MetadataOnRequest { ref at } if at == "requests[0]"));
}

#[test]
fn v1_encode_refuses_response_metadata_in_model_extensions() {
    let id = RequestId::new(ID);
    let ext = Extensions::new().with(extension::RESPONSE_METADATA, Some(Node::List(vec![])));
    let message = Message::new().with_request(Request::update(id, ext.clone()));
    assert!(matches!(
        v1::encode(&message, &mut PeerIds::new(0), &mut BytesMut::new()),
        Err(EncodeError::ReservedExtension { .. })
    ));
    let mut ids = PeerIds::new(0);
    let id = v1::IdMap::incoming_request(&mut ids, 4);
    let message = Message::new()
        .with_response(Response::new(id, ResponseStatus::PartialResponse).with_extensions(ext));
    assert!(matches!(
        v1::encode(&message, &mut ids, &mut BytesMut::new()),
        Err(EncodeError::ReservedExtension { .. })
    ));
}

#[test]
fn v1_rejects_bad_roots_and_selectors_on_new_requests() {
    for root in [
        vec![],
        vec![0x01, 0x55],
        [root().to_bytes(), vec![0]].concat(),
    ] {
        let request = pb::Request {
            root,
            ..v1_new_request()
        };
        let error = v1_error(pb::Message {
            requests: vec![request],
            ..Default::default()
        });
        assert!(matches!(error, DecodeError::BadCid { ref at, .. } if at == "requests[0].root"));
    }
    for selector in [vec![], vec![0xa1], vec![0xc1, 0x01]] {
        let request = pb::Request {
            selector,
            ..v1_new_request()
        };
        let error = v1_error(pb::Message {
            requests: vec![request],
            ..Default::default()
        });
        assert!(
            matches!(error, DecodeError::BadValue { ref at, .. } if at == "requests[0].selector")
        );
    }
    // A cancel or update needs neither.
    let cancel = pb::Request {
        id: 1,
        cancel: true,
        update: true,
        ..Default::default()
    };
    let update = pb::Request {
        id: 2,
        update: true,
        ..Default::default()
    };
    let body = v1_body(&pb::Message {
        requests: vec![cancel, update],
        ..Default::default()
    });
    let decoded = v1::decode(&body, &mut PeerIds::new(0)).expect("valid");
    let kinds: Vec<_> = decoded.requests.iter().map(|r| r.kind.clone()).collect();
    assert_eq!(
        kinds,
        [RequestKind::Cancel, RequestKind::Update],
        "cancel wins over update"
    );
}

#[test]
fn v1_extension_values_must_be_dag_cbor_and_empty_ones_are_dropped() {
    let mut request = v1_new_request();
    request.extensions.insert("bad".to_owned(), vec![0xa1]);
    let error = v1_error(pb::Message {
        requests: vec![request],
        ..Default::default()
    });
    assert!(
        matches!(error, DecodeError::BadValue { ref at, .. } if at == "requests[0].extensions[bad]")
    );

    let mut request = v1_new_request();
    request.extensions.insert("empty".to_owned(), vec![]);
    request.extensions.insert("null".to_owned(), vec![0xf6]);
    let body = v1_body(&pb::Message {
        requests: vec![request],
        ..Default::default()
    });
    let decoded = v1::decode(&body, &mut PeerIds::new(0)).expect("valid");
    let extensions = &decoded.requests[0].extensions;
    assert!(!extensions.contains("empty"));
    assert_eq!(extensions.get("null"), Some(None));
}

#[test]
fn v1_rejects_unknown_statuses_and_bad_metadata() {
    let response = pb::Response {
        id: 1,
        status: 16,
        ..Default::default()
    };
    let error = v1_error(pb::Message {
        responses: vec![response],
        ..Default::default()
    });
    assert!(matches!(error, DecodeError::UnknownStatus { code: 16, .. }));

    let metadata = ipld_dagcbor::to_vec(&Node::List(vec![Node::Map(
        Map::new().with("link", root()),
    )]))
    .expect("encodable");
    let response = pb::Response {
        id: 1,
        status: 20,
        extensions: BTreeMap::from([(extension::RESPONSE_METADATA.to_owned(), metadata)]),
    };
    let error = v1_error(pb::Message {
        responses: vec![response],
        ..Default::default()
    });
    assert!(matches!(error, DecodeError::BadMetadata { .. }));

    // A response without the extension has no metadata.
    let response = pb::Response {
        id: 1,
        status: 14,
        ..Default::default()
    };
    let body = v1_body(&pb::Message {
        responses: vec![response],
        ..Default::default()
    });
    let decoded = v1::decode(&body, &mut PeerIds::new(0)).expect("valid");
    assert!(decoded.responses[0].metadata.is_empty());
}

#[test]
fn v1_rejects_bad_prefixes_and_garbage() {
    let block = pb::Block {
        prefix: vec![0x00, 0x70, 0x12, 0x10],
        data: bytes::Bytes::from_static(b"x"),
    };
    let error = v1_error(pb::Message {
        data: vec![block],
        ..Default::default()
    });
    assert!(matches!(
        error,
        DecodeError::BadPrefix {
            source: CidPrefixError::InvalidV0 { .. },
            ..
        }
    ));
    let error = v1::decode(&[0x12, 0x05, 0x08], &mut PeerIds::new(0)).expect_err("truncated");
    assert!(matches!(error, DecodeError::Protobuf { .. }));
}

#[test]
fn v1_a_rejected_message_maps_no_ids() {
    let mut ids = PeerIds::new(0);
    let good = v1_new_request();
    let bad = pb::Request {
        id: 9,
        root: vec![],
        ..v1_new_request()
    };
    let body = v1_body(&pb::Message {
        requests: vec![good, bad],
        ..Default::default()
    });
    assert!(v1::decode(&body, &mut ids).is_err());
    let first = v1::IdMap::incoming_request(&mut ids, 3);
    let mut fresh = PeerIds::new(0);
    assert_eq!(
        first,
        v1::IdMap::incoming_request(&mut fresh, 3),
        "nothing was minted before"
    );
}

#[test]
fn framer_rejects_non_minimal_lengths() {
    let config = FrameConfig::default();
    assert_eq!(
        frame::decode_frame(&[0x81, 0x00, 0xaa], &config),
        Err(FrameError::NonMinimalLength)
    );
    assert_eq!(
        frame::decode_frame(&[0x80, 0x80, 0x00], &config),
        Err(FrameError::NonMinimalLength)
    );
}

#[test]
fn framer_accepts_4_mib_and_rejects_one_byte_more() {
    let config = FrameConfig::default();
    let body = vec![0xa0; frame::MAX_MESSAGE_SIZE];
    let mut framed = BytesMut::new();
    frame::write_frame(&body, &config, &mut framed).expect("exactly the limit");
    assert_eq!(&framed[..4], [0x80, 0x80, 0x80, 0x02]);
    let mut decoder = FrameDecoder::default();
    assert_eq!(
        decoder
            .decode(&mut framed)
            .expect("accepted")
            .map(|b| b.len()),
        Some(body.len())
    );

    let over = [0x81, 0x80, 0x80, 0x02];
    assert_eq!(
        frame::decode_frame(&over, &config),
        Err(FrameError::TooLarge {
            len: (1 << 22) + 1,
            limit: 1 << 22
        })
    );
    let mut big = body;
    big.push(0);
    assert!(matches!(
        frame::write_frame(&big, &config, &mut BytesMut::new()),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn framer_rejects_zero_length_frames() {
    assert_eq!(
        frame::decode_frame(&[0x00], &FrameConfig::default()),
        Err(FrameError::Empty)
    );
    let mut buf = BytesMut::from(&[0x00, 0x01, 0xa0][..]);
    assert_eq!(
        FrameDecoder::default().decode(&mut buf),
        Err(FrameError::Empty)
    );
    assert_eq!(
        frame::decode_frame(&[0x01], &FrameConfig::default()),
        Ok(Frame::Incomplete { needed: 1 })
    );
}
