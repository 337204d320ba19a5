//! The record format: every field round-trips (the stages trace included), versions 1 and 2
//! still read, the trace has Go's tuple layout, arbitrary bytes never panic the decoder, and
//! the decoder is bounded.

use datatransfer_fsm::{ChannelStage, ChannelStages, StageLog, UnixNanos};
use datatransfer_message::{ChannelId, PeerId, TransferId};
use datatransfer_store::RecordError;
use datatransfer_store::record::{self, CURRENT_VERSION, SUPPORTED_VERSIONS};
use datatransfer_store::testing::{arb_channel_state, sample_state, v1_record, v2_record};
use ipld_dagcbor::{Limits, Map, Node};
use proptest::prelude::*;

proptest! {
    #[test]
    fn every_field_round_trips(state in arb_channel_state()) {
        let bytes = record::encode(&state).expect("arbitrary states encode");
        prop_assert_eq!(record::decode(&bytes).expect("own records decode"), state);
    }

    #[test]
    fn records_are_canonical_dag_cbor(state in arb_channel_state()) {
        let bytes = record::encode(&state).expect("arbitrary states encode");
        let node = ipld_dagcbor::decode(&bytes).expect("a record is DAG-CBOR");
        prop_assert_eq!(ipld_dagcbor::to_vec(&node).expect("it encodes again"), bytes);
    }

    #[test]
    fn version_1_reads_with_zero_block_totals(state in arb_channel_state()) {
        let mut expected = state.clone();
        expected.received_blocks_total = 0;
        expected.queued_blocks_total = 0;
        expected.sent_blocks_total = 0;
        expected.stages = ChannelStages::default();
        prop_assert_eq!(record::decode(&v1_record(&state)).expect("v1 decodes"), expected);
    }

    #[test]
    fn version_2_reads_with_an_empty_trace(state in arb_channel_state()) {
        let mut expected = state.clone();
        expected.stages = ChannelStages::default();
        prop_assert_eq!(record::decode(&v2_record(&state)).expect("v2 decodes"), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = record::decode(&bytes);
    }

    #[test]
    fn a_mutated_record_decodes_or_fails_cleanly(
        state in arb_channel_state(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = record::encode(&state).expect("arbitrary states encode");
        let at = index.index(bytes.len());
        bytes[at] = byte;
        if let Ok(decoded) = record::decode(&bytes) {
            // Whatever decodes is a record that encodes again.
            prop_assert!(record::encode(&decoded).is_ok());
        }
    }
}

#[test]
fn the_current_version_is_3_and_1_and_2_are_still_supported() {
    assert_eq!(CURRENT_VERSION, 3);
    assert_eq!(SUPPORTED_VERSIONS, [1, 2, 3]);
    let bytes = record::encode(&sample_state(1)).expect("encode");
    let node = ipld_dagcbor::decode(&bytes).expect("a record is dag-cbor");
    let map = node.as_map().expect("a record is a map");
    assert_eq!(map.get("Version"), Some(&Node::from(3u64)));
    assert_eq!(
        map.len(),
        21,
        "version, 16 state fields, 3 block totals, stages"
    );
}

/// The `Stages` value written out byte by byte in Go's cbor-gen tuple layout
/// (`spec/data-transfer.md` §8): `[[ [Name, Description, CreatedTime, UpdatedTime, Logs] ]]`,
/// `Log = [Log, UpdatedTime]`, times as CBOR integers (a negative one included).
#[test]
fn the_stages_field_has_gos_tuple_layout() {
    let mut state = sample_state(1);
    state.stages = ChannelStages {
        stages: vec![ChannelStage {
            name: "Ongoing".into(),
            description: String::new(),
            created_time: UnixNanos(-1),
            updated_time: UnixNanos(2),
            logs: vec![StageLog {
                log: "received data".into(),
                updated_time: UnixNanos(2),
            }],
        }],
    };
    let mut hand = vec![
        0x81, // ChannelStages: a tuple of one field
        0x81, // Stages: a list of one stage
        0x85, // ChannelStage: a tuple of five fields
        0x67, b'O', b'n', b'g', b'o', b'i', b'n', b'g', // Name
        0x60, // Description: ""
        0x20, // CreatedTime: -1
        0x02, // UpdatedTime: 2
        0x81, // Logs: one line
        0x82, // Log: a tuple of two fields
        0x6d, // Log: a text of 13 bytes
    ];
    hand.extend_from_slice(b"received data");
    hand.push(0x02); // UpdatedTime: 2

    let bytes = record::encode(&state).expect("encode");
    let node = ipld_dagcbor::decode(&bytes).expect("dag-cbor");
    let stages = node.as_map().and_then(|m| m.get("Stages")).expect("stages");
    assert_eq!(ipld_dagcbor::to_vec(stages).expect("encodes"), hand);

    // The hand-written bytes in a record read back as the trace.
    let mut map = node.as_map().expect("map").clone();
    map.insert("Stages", ipld_dagcbor::decode(&hand).expect("hand bytes"));
    let spliced = ipld_dagcbor::to_vec(&Node::Map(map)).expect("encodes");
    assert_eq!(record::decode(&spliced).expect("decodes"), state);
}

/// A version 1 record written out byte by byte, independent of every encoder in the
/// workspace: channel `[1]` → `[2]`, transfer 7, Ongoing, 300 bytes received, no vouchers.
#[test]
fn a_hand_written_version_1_record_reads() {
    // Keys in canonical order (length, then bytes); values follow each key.
    let cid: ipld_dagcbor::Cid = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
        .parse()
        .expect("valid cid");
    let mut entries: Vec<(&str, Vec<u8>)> = vec![
        ("Sent", vec![0x00]),
        ("Queued", vec![0x00]),
        ("Sender", vec![0x61, 0x02]),
        ("Status", vec![0x01]),
        ("BaseCid", {
            let cid_bytes = cid.to_bytes();
            let mut v = vec![
                0xd8,
                0x2a,
                0x58,
                u8::try_from(cid_bytes.len() + 1).expect("short"),
            ];
            v.push(0x00);
            v.extend_from_slice(&cid_bytes);
            v
        }),
        ("Message", vec![0x62, b'h', b'i']),
        ("Version", vec![0x01]),
        ("Received", vec![0x19, 0x01, 0x2c]),
        ("SelfPeer", vec![0x61, 0x01]),
        ("Selector", vec![0xa0]),
        ("Vouchers", vec![0x80]),
        ("Initiator", vec![0x61, 0x01]),
        ("Recipient", vec![0x61, 0x01]),
        ("Responder", vec![0x61, 0x02]),
        ("TotalSize", vec![0x00]),
        ("TransferID", vec![0x07]),
        ("VoucherResults", vec![0x80]),
    ];
    entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then(a.cmp(b)));
    // A map of 17 entries, each key a short text string followed by its value.
    let mut record_bytes = vec![0xb1];
    for (name, value) in &entries {
        record_bytes.push(0x60 + u8::try_from(name.len()).expect("short key"));
        record_bytes.extend_from_slice(name.as_bytes());
        record_bytes.extend_from_slice(value);
    }
    let state = record::decode(&record_bytes).expect("hand-written v1 decodes");
    let mut expected = sample_state(7);
    expected.self_peer = PeerId::from_bytes(vec![1]);
    expected.channel_id = ChannelId::new(
        PeerId::from_bytes(vec![1]),
        PeerId::from_bytes(vec![2]),
        TransferId(7),
    );
    expected.base_cid = cid;
    expected.selector = Node::empty_map();
    expected.sender = PeerId::from_bytes(vec![2]);
    expected.recipient = PeerId::from_bytes(vec![1]);
    expected.received = 300;
    expected.message = "hi".into();
    expected.vouchers = Vec::new();
    expected.received_blocks_total = 0;
    expected.queued_blocks_total = 0;
    expected.sent_blocks_total = 0;
    expected.stages = ChannelStages::default();
    assert_eq!(state, expected);
    // The same bytes as the testing helper builds.
    assert_eq!(record_bytes, v1_record(&expected));
}

#[test]
fn decoding_is_bounded_by_the_limits() {
    let bytes = record::encode(&sample_state(1)).expect("encode");
    let tight = Limits::default().with_max_bytes(bytes.len() - 1);
    assert!(matches!(
        record::decode_with(&bytes, &tight),
        Err(RecordError::Cbor(_))
    ));
    let exact = Limits::default().with_max_bytes(bytes.len());
    assert_eq!(
        record::decode_with(&bytes, &exact).expect("fits"),
        sample_state(1)
    );
}

#[test]
fn missing_unknown_and_ill_typed_fields_are_errors() {
    let bytes = record::encode(&sample_state(1)).expect("encode");
    let node = ipld_dagcbor::decode(&bytes).expect("dag-cbor");
    let map = node.as_map().expect("map");
    let rebuild = |edit: &dyn Fn(&str, &Node) -> Option<Node>, extra: Option<(&str, Node)>| {
        let mut out = Map::new();
        for (key, value) in map.iter() {
            let name = key.as_str().expect("keys are ascii");
            if let Some(value) = edit(name, value) {
                out.insert(name, value);
            }
        }
        if let Some((name, value)) = extra {
            out.insert(name, value);
        }
        ipld_dagcbor::to_vec(&Node::Map(out)).expect("encodes")
    };
    let without_sent = rebuild(&|k, v| (k != "SentBlocksTotal").then(|| v.clone()), None);
    assert!(matches!(
        record::decode(&without_sent),
        Err(RecordError::MissingField {
            field: "SentBlocksTotal"
        })
    ));
    let negative = rebuild(
        &|k, v| {
            Some(if k == "Queued" {
                Node::from(-1i64)
            } else {
                v.clone()
            })
        },
        None,
    );
    assert!(matches!(
        record::decode(&negative),
        Err(RecordError::InvalidField { field: "Queued" })
    ));
    let bad_status = rebuild(
        &|k, v| {
            Some(if k == "Status" {
                Node::from(17u64)
            } else {
                v.clone()
            })
        },
        None,
    );
    assert!(matches!(
        record::decode(&bad_status),
        Err(RecordError::InvalidField { field: "Status" })
    ));
    let extra = rebuild(&|_, v| Some(v.clone()), Some(("Future", Node::Null)));
    assert!(matches!(
        record::decode(&extra),
        Err(RecordError::UnknownField { version: 3, .. })
    ));
    // A version 2 record may not carry the version 3 stages.
    let v2_with_stages = rebuild(
        &|k, v| {
            Some(if k == "Version" {
                Node::from(2u64)
            } else {
                v.clone()
            })
        },
        None,
    );
    assert!(matches!(
        record::decode(&v2_with_stages),
        Err(RecordError::UnknownField { version: 2, .. })
    ));
    let without_stages = rebuild(&|k, v| (k != "Stages").then(|| v.clone()), None);
    assert!(matches!(
        record::decode(&without_stages),
        Err(RecordError::MissingField { field: "Stages" })
    ));
    let stage = |fields: Vec<Node>| Node::List(vec![Node::List(vec![Node::List(fields)])]);
    let ill_shaped = [
        Node::Null,
        Node::List(Vec::new()),
        stage(vec![Node::from("Ongoing")]),
        // A time beyond i64.
        stage(vec![
            Node::from("Ongoing"),
            Node::from(""),
            Node::from(u64::MAX),
            Node::from(0u64),
            Node::List(Vec::new()),
        ]),
        // A name that is not UTF-8.
        stage(vec![
            Node::String(ipld_dagcbor::Text::from_bytes(vec![0xff])),
            Node::from(""),
            Node::from(0u64),
            Node::from(0u64),
            Node::List(Vec::new()),
        ]),
        // A log line of one field.
        stage(vec![
            Node::from("Ongoing"),
            Node::from(""),
            Node::from(0u64),
            Node::from(0u64),
            Node::List(vec![Node::List(vec![Node::from("x")])]),
        ]),
    ];
    for bad in ill_shaped {
        let record_bytes = rebuild(
            &|k, v| {
                Some(if k == "Stages" {
                    bad.clone()
                } else {
                    v.clone()
                })
            },
            None,
        );
        assert!(
            matches!(
                record::decode(&record_bytes),
                Err(RecordError::InvalidField { field: "Stages" })
            ),
            "{bad:?}"
        );
    }
    // A version 1 record may not carry the version 2 totals.
    let v1_with_totals = rebuild(
        &|k, v| {
            Some(if k == "Version" {
                Node::from(1u64)
            } else {
                v.clone()
            })
        },
        None,
    );
    assert!(matches!(
        record::decode(&v1_with_totals),
        Err(RecordError::UnknownField { version: 1, .. })
    ));
    let not_utf8 = rebuild(
        &|k, v| {
            Some(if k == "Message" {
                Node::String(ipld_dagcbor::Text::from_bytes(vec![0xff]))
            } else {
                v.clone()
            })
        },
        None,
    );
    assert!(matches!(
        record::decode(&not_utf8),
        Err(RecordError::InvalidField { field: "Message" })
    ));
}
