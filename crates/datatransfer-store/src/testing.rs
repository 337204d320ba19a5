//! Test helpers (feature `test-util`): [`arb_channel_state`], hand-built
//! [version 1](v1_record) and [version 2](v2_record) records, raw record access
//! ([`RawRecords`]) and [`suite`], the behaviour every [`ChannelStore`] must have.

use datatransfer_fsm::{
    ChannelStage, ChannelStages, ChannelState, ChannelStatus, StageLog, UnixNanos, Voucher,
    VoucherResult,
};
use datatransfer_message::testing::{
    arb_channel_id, arb_embedded, arb_peer_id, arb_type_identifier,
};
use datatransfer_message::{ChannelId, PeerId, TransferId, TypeIdentifier};
use ipld_dagcbor::testing::arb_cid;
use ipld_dagcbor::{Map, Node, Text};
use proptest::prelude::*;

use crate::error::StoreError;
use crate::mem::MemStore;
use crate::sled_store::SledStore;
use crate::store::ChannelStore;

/// Any trace: up to 4 stages of up to 3 lines, with any UTF-8 texts and any `i64` times (the
/// engine's invariants, such as unique names, are not required by the record format).
pub fn arb_channel_stages() -> impl Strategy<Value = ChannelStages> {
    let line = (any::<String>(), any::<i64>()).prop_map(|(log, at)| StageLog {
        log,
        updated_time: UnixNanos(at),
    });
    let stage = (
        any::<String>(),
        any::<String>(),
        any::<i64>(),
        any::<i64>(),
        prop::collection::vec(line, 0..3),
    )
        .prop_map(|(name, description, created, updated, logs)| ChannelStage {
            name,
            description,
            created_time: UnixNanos(created),
            updated_time: UnixNanos(updated),
            logs,
        });
    prop::collection::vec(stage, 0..4).prop_map(|stages| ChannelStages { stages })
}

/// Any channel state: arbitrary peers and ids, any status, any counters, any UTF-8 message,
/// any trace, and selectors, vouchers and results whose maps are in canonical key order (the
/// order a decoded record holds them; node equality is order-sensitive).
pub fn arb_channel_state() -> impl Strategy<Value = ChannelState> {
    let value = || arb_embedded().prop_map(|node| node.unwrap_or(Node::Null));
    let vouchers = prop::collection::vec(
        (arb_type_identifier(), value()).prop_map(|(kind, node)| Voucher::new(kind, node)),
        0..4,
    );
    let results = prop::collection::vec(
        (arb_type_identifier(), value()).prop_map(|(kind, node)| VoucherResult::new(kind, node)),
        0..4,
    );
    let ids = (
        arb_peer_id(),
        arb_channel_id(),
        arb_cid(),
        value(),
        arb_peer_id(),
        arb_peer_id(),
    );
    let counters = (
        any::<u64>(),
        prop::sample::select(ChannelStatus::ALL.to_vec()),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    );
    let texts = (any::<String>(), arb_channel_stages());
    (ids, counters, texts, vouchers, results).prop_map(
        |(
            (self_peer, channel_id, base_cid, selector, sender, recipient),
            (total_size, status, queued, sent, received, rbt, qbt, sbt),
            (message, stages),
            vouchers,
            voucher_results,
        )| ChannelState {
            self_peer,
            channel_id,
            base_cid,
            selector,
            sender,
            recipient,
            total_size,
            status,
            queued,
            sent,
            received,
            message,
            vouchers,
            voucher_results,
            received_blocks_total: rbt,
            queued_blocks_total: qbt,
            sent_blocks_total: sbt,
            stages,
        },
    )
}

/// A small, valid channel state whose transfer id and counters all derive from `n`: a pull
/// from peer `[2, …]` by the local peer `[1, …]`, with one voucher and a two-stage trace.
pub fn sample_state(n: u64) -> ChannelState {
    let me = PeerId::from_bytes(vec![0x00, 0x01, 0x01]);
    let other = PeerId::from_bytes(vec![0x00, 0x01, 0x02]);
    let at = |offset: i64| UnixNanos(1_700_000_000_000_000_000 + offset);
    let mut stages = ChannelStages::default();
    stages.add_log("Requested", "", at(0), 32, 64);
    stages.add_log("Requested", "", at(10), 32, 64);
    stages.add_log("Ongoing", "received data", at(20), 32, 64);
    stages.add_log("Ongoing", &format!("sample {n}"), at(30), 32, 64);
    ChannelState {
        self_peer: me.clone(),
        channel_id: ChannelId::new(me.clone(), other.clone(), TransferId(n)),
        base_cid: "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
            .parse()
            .expect("the sample cid is valid"),
        selector: Node::Map(Map::new().with("R", Node::Map(Map::new().with("l", 1u64)))),
        sender: other,
        recipient: me,
        total_size: 0,
        status: ChannelStatus::Ongoing,
        queued: 0,
        sent: 0,
        received: n.saturating_mul(1000),
        message: format!("sample {n}"),
        vouchers: vec![Voucher::new("FakeDTType", Node::text("voucher"))],
        voucher_results: Vec::new(),
        received_blocks_total: n,
        queued_blocks_total: n / 2,
        sent_blocks_total: n / 3,
        stages,
    }
}

/// The version 1 record of `state`, built field by field without the crate's encoder: the
/// version 3 fields minus `ReceivedBlocksTotal`, `QueuedBlocksTotal`, `SentBlocksTotal` and
/// `Stages`. Decoding it gives `state` with those three totals at 0 and an empty trace.
///
/// # Panics
/// If `state`'s selector or vouchers hold an integer DAG-CBOR cannot carry.
pub fn v1_record(state: &ChannelState) -> Vec<u8> {
    ipld_dagcbor::to_vec(&Node::Map(v1_map(state))).expect("the state holds only encodable values")
}

/// The version 2 record of `state`, built field by field without the crate's encoder: the
/// version 1 fields with `Version` 2 and the three block totals, without `Stages`. Decoding it
/// gives `state` with an empty trace.
///
/// # Panics
/// If `state`'s selector or vouchers hold an integer DAG-CBOR cannot carry.
pub fn v2_record(state: &ChannelState) -> Vec<u8> {
    let mut map = Map::new();
    for (key, value) in v1_map(state).iter() {
        if key.as_bytes() == b"Version" {
            map.insert("Version", Node::from(2u64));
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    map.insert(
        "ReceivedBlocksTotal",
        Node::from(state.received_blocks_total),
    );
    map.insert("QueuedBlocksTotal", Node::from(state.queued_blocks_total));
    map.insert("SentBlocksTotal", Node::from(state.sent_blocks_total));
    ipld_dagcbor::to_vec(&Node::Map(map)).expect("the state holds only encodable values")
}

fn v1_map(state: &ChannelState) -> Map {
    let text = |bytes: &[u8]| Node::String(Text::from_bytes(bytes));
    let typed = |kind: &TypeIdentifier, key: &str, node: &Node| {
        Node::Map(
            Map::new()
                .with("Type", text(kind.as_bytes()))
                .with(key, node.clone()),
        )
    };
    Map::new()
        .with("Version", 1u64)
        .with("SelfPeer", text(state.self_peer.as_bytes()))
        .with("TransferID", state.channel_id.id.value())
        .with("Initiator", text(state.channel_id.initiator.as_bytes()))
        .with("Responder", text(state.channel_id.responder.as_bytes()))
        .with("BaseCid", state.base_cid)
        .with("Selector", state.selector.clone())
        .with("Sender", text(state.sender.as_bytes()))
        .with("Recipient", text(state.recipient.as_bytes()))
        .with("TotalSize", state.total_size)
        .with("Status", state.status.code())
        .with("Queued", state.queued)
        .with("Sent", state.sent)
        .with("Received", state.received)
        .with("Message", text(state.message.as_bytes()))
        .with(
            "Vouchers",
            state
                .vouchers
                .iter()
                .map(|v| typed(&v.voucher_type, "Voucher", &v.node))
                .collect::<Vec<_>>(),
        )
        .with(
            "VoucherResults",
            state
                .voucher_results
                .iter()
                .map(|r| typed(&r.result_type, "VoucherResult", &r.node))
                .collect::<Vec<_>>(),
        )
}

/// Stores that can take raw bytes under a raw key, bypassing the record encoder, so a test
/// can plant corrupt, old or future records.
pub trait RawRecords: ChannelStore {
    /// Stores `bytes` under `key` in the channel records, as they are.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the backend fails.
    fn insert_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError>;
}

impl RawRecords for MemStore {
    fn insert_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        MemStore::insert_raw(self, key, bytes);
        Ok(())
    }
}

impl RawRecords for SledStore {
    fn insert_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        SledStore::insert_raw(self, key, bytes)
    }
}

/// The behaviour every [`ChannelStore`] must have, checked on stores that `open` returns.
/// `open` is called again after the previous handle is dropped, and must give the same data
/// back (reopen the database; for [`MemStore`], return a clone of one store).
///
/// Checks, in order: an empty store; write and read (stages included); list in key order;
/// overwrite (with a longer trace); delete (twice); flush; drop, reopen and read back; reading
/// hand-built version 1 and version 2 records (no stages) and a current one; a corrupt record is [`StoreError::Corrupt`] with its key, for `get` and
/// `list`; a record of version 99 is [`StoreError::UnsupportedVersion`] with its version; a
/// record under another channel's key is corrupt; and deleting bad records repairs the store.
///
/// # Panics
/// When the store misbehaves (this is a test helper).
pub fn suite<S, F>(mut open: F)
where
    S: RawRecords,
    F: FnMut() -> S,
{
    let store = open();
    let (a, b, c) = (sample_state(1), sample_state(2), sample_state(3));
    assert_eq!(
        store.list().expect("list"),
        Vec::new(),
        "a new store is empty"
    );
    assert_eq!(store.get(&a.channel_id).expect("get"), None);

    // Write and read.
    for state in [&b, &a, &c] {
        store.put(state).expect("put");
    }
    for state in [&a, &b, &c] {
        assert_eq!(
            store.get(&state.channel_id).expect("get"),
            Some(state.clone())
        );
    }
    assert_eq!(
        store.list().expect("list"),
        vec![a.clone(), b.clone(), c.clone()]
    );

    // Overwrite.
    let mut a2 = a.clone();
    a2.status = ChannelStatus::Completed;
    a2.received = 99_999;
    a2.voucher_results
        .push(VoucherResult::new("FakeDTType", Node::Bool(true)));
    a2.stages.add_log(
        "Completing",
        "",
        UnixNanos(1_700_000_000_000_000_100),
        32,
        64,
    );
    store.put(&a2).expect("overwrite");
    assert_eq!(store.get(&a.channel_id).expect("get"), Some(a2.clone()));
    assert_eq!(store.list().expect("list").len(), 3);

    // Delete.
    assert!(store.delete(&b.channel_id).expect("delete"));
    assert!(!store.delete(&b.channel_id).expect("second delete"));
    assert_eq!(store.get(&b.channel_id).expect("get"), None);
    store.flush().expect("flush");

    // Drop, reopen, read back.
    drop(store);
    let store = open();
    assert_eq!(store.get(&a.channel_id).expect("get"), Some(a2.clone()));
    assert_eq!(store.get(&b.channel_id).expect("get"), None);
    assert_eq!(store.list().expect("list"), vec![a2.clone(), c.clone()]);

    // Every supported version reads: version 1 built by hand, version 2 from the encoder.
    let old = sample_state(4);
    store
        .insert_raw(
            crate::record::key(&old.channel_id).as_bytes(),
            &v1_record(&old),
        )
        .expect("insert v1");
    let mut old_read = old.clone();
    (
        old_read.received_blocks_total,
        old_read.queued_blocks_total,
        old_read.sent_blocks_total,
    ) = (0, 0, 0);
    old_read.stages = ChannelStages::default();
    assert_eq!(
        store.get(&old.channel_id).expect("get v1"),
        Some(old_read.clone())
    );
    let v2 = sample_state(9);
    store
        .insert_raw(
            crate::record::key(&v2.channel_id).as_bytes(),
            &v2_record(&v2),
        )
        .expect("insert v2");
    let mut v2_read = v2.clone();
    v2_read.stages = ChannelStages::default();
    assert_eq!(store.get(&v2.channel_id).expect("get v2"), Some(v2_read));
    assert!(store.delete(&v2.channel_id).expect("delete v2"));
    let current = sample_state(5);
    assert!(!current.stages.stages.is_empty());
    store
        .insert_raw(
            crate::record::key(&current.channel_id).as_bytes(),
            &crate::record::encode(&current).expect("encode v3"),
        )
        .expect("insert v3");
    assert_eq!(
        store.get(&current.channel_id).expect("get v3"),
        Some(current.clone()),
        "the current version keeps the stages"
    );
    // A put rewrites an old record in the current version.
    store.put(&old).expect("put over v1");
    assert_eq!(store.get(&old.channel_id).expect("get"), Some(old.clone()));

    // A corrupt record.
    let bad = sample_state(6);
    let bad_key = crate::record::key(&bad.channel_id);
    store
        .insert_raw(bad_key.as_bytes(), &[0xa1, 0x67, b'V'])
        .expect("insert corrupt");
    match store.get(&bad.channel_id) {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, bad_key),
        other => panic!("corrupt record read as {other:?}"),
    }
    match store.list() {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, bad_key),
        other => panic!("list over a corrupt record gave {other:?}"),
    }
    assert!(store.delete(&bad.channel_id).expect("delete corrupt"));

    // A record of an unknown version.
    let future = sample_state(7);
    let future_key = crate::record::key(&future.channel_id);
    let future_bytes = ipld_dagcbor::to_vec(&Node::Map(
        Map::new().with("Version", 99u64).with("New", true),
    ))
    .expect("small map encodes");
    store
        .insert_raw(future_key.as_bytes(), &future_bytes)
        .expect("insert future");
    match store.get(&future.channel_id) {
        Err(StoreError::UnsupportedVersion { key, found }) => {
            assert_eq!((key.as_str(), found), (future_key.as_str(), 99));
        }
        other => panic!("version 99 read as {other:?}"),
    }
    assert!(matches!(
        store.list(),
        Err(StoreError::UnsupportedVersion { found: 99, .. })
    ));
    assert!(store.delete(&future.channel_id).expect("delete future"));

    // A valid record under another channel's key.
    let stray = sample_state(8);
    let stray_key = crate::record::key(&stray.channel_id);
    store
        .insert_raw(
            stray_key.as_bytes(),
            &crate::record::encode(&c).expect("encode"),
        )
        .expect("insert stray");
    match store.get(&stray.channel_id) {
        Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, stray_key),
        other => panic!("a record under the wrong key read as {other:?}"),
    }
    assert!(store.delete(&stray.channel_id).expect("delete stray"));

    // Repaired, and still there after another reopen.
    let expected = vec![a2, c, old, current];
    let mut listed = store.list().expect("list");
    let key_of = |s: &ChannelState| crate::record::key(&s.channel_id);
    let mut sorted = expected.clone();
    sorted.sort_by_key(key_of);
    assert_eq!(listed, sorted, "list is in key order");
    drop(store);
    let store = open();
    listed = store.list().expect("list after reopen");
    assert_eq!(listed, sorted);
}
