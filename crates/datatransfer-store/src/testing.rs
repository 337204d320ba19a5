//! Test helpers (feature `test-util`): [`arb_channel_state`], [`sample_state`] and hand-built
//! [version 1 records](v1_record).

use datatransfer_fsm::{ChannelState, ChannelStatus, Voucher, VoucherResult};
use datatransfer_message::testing::{
    arb_channel_id, arb_embedded, arb_peer_id, arb_type_identifier,
};
use datatransfer_message::{ChannelId, PeerId, TransferId, TypeIdentifier};
use ipld_dagcbor::testing::arb_cid;
use ipld_dagcbor::{Map, Node, Text};
use proptest::prelude::*;

/// Any channel state: arbitrary peers and ids, any status, any counters, any UTF-8 message,
/// and selectors, vouchers and results whose maps are in canonical key order (the order a
/// decoded record holds them; node equality is order-sensitive).
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
    (ids, counters, any::<String>(), vouchers, results).prop_map(
        |(
            (self_peer, channel_id, base_cid, selector, sender, recipient),
            (total_size, status, queued, sent, received, rbt, qbt, sbt),
            message,
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
        },
    )
}

/// A small, valid channel state whose transfer id and counters all derive from `n`: a pull
/// from peer `[2, …]` by the local peer `[1, …]`, with one voucher.
pub fn sample_state(n: u64) -> ChannelState {
    let me = PeerId::from_bytes(vec![0x00, 0x01, 0x01]);
    let other = PeerId::from_bytes(vec![0x00, 0x01, 0x02]);
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
    }
}

/// The version 1 record of `state`, built field by field without the crate's encoder: the
/// version 2 fields minus `ReceivedBlocksTotal`, `QueuedBlocksTotal` and `SentBlocksTotal`.
/// Decoding it gives `state` with those three totals at 0.
///
/// # Panics
/// If `state`'s selector or vouchers hold an integer DAG-CBOR cannot carry.
pub fn v1_record(state: &ChannelState) -> Vec<u8> {
    let text = |bytes: &[u8]| Node::String(Text::from_bytes(bytes));
    let typed = |kind: &TypeIdentifier, key: &str, node: &Node| {
        Node::Map(
            Map::new()
                .with("Type", text(kind.as_bytes()))
                .with(key, node.clone()),
        )
    };
    let map = Map::new()
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
        );
    ipld_dagcbor::to_vec(&Node::Map(map)).expect("the state holds only encodable values")
}
