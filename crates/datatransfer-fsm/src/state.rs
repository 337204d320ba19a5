//! [`ChannelState`]: everything a node knows and persists about one channel, and the actions
//! and counter rules the events apply to it (`spec/data-transfer.md` §5.4, §5.6, §8).

use cid::Cid;
use datatransfer_message::{ChannelId, PeerId, TransferId, TypeIdentifier};
use ipld_dagcbor::Node;

use crate::event_code::EventCode;
use crate::status::ChannelStatus;
use crate::transition::{IllegalTransition, transition};

/// A voucher recorded on a channel: its type and its IPLD value.
#[derive(Clone, Debug, PartialEq)]
pub struct Voucher {
    /// The registered type of the voucher (`VTyp`).
    pub voucher_type: TypeIdentifier,
    /// The voucher itself, as embedded in the message.
    pub node: Node,
}

impl Voucher {
    /// A voucher of this type and value.
    pub fn new(voucher_type: impl Into<TypeIdentifier>, node: Node) -> Self {
        Voucher {
            voucher_type: voucher_type.into(),
            node,
        }
    }
}

/// A voucher result recorded on a channel: its type and its IPLD value (`Node::Null` when the
/// responder sent a type but no value).
#[derive(Clone, Debug, PartialEq)]
pub struct VoucherResult {
    /// The registered type of the result (`VTyp` of a response).
    pub result_type: TypeIdentifier,
    /// The result itself.
    pub node: Node,
}

impl VoucherResult {
    /// A result of this type and value.
    pub fn new(result_type: impl Into<TypeIdentifier>, node: Node) -> Self {
        VoucherResult {
            result_type: result_type.into(),
            node,
        }
    }
}

/// The state of one channel as one node sees it: every field of Go's `ChannelState` record
/// (§8) except the experimental `Stages` trace, which needs wall-clock times this crate never
/// reads.
///
/// It is also the snapshot the engine emits for persistence and takes back in
/// [`Engine::restore`](crate::Engine::restore).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelState {
    /// The local peer.
    pub self_peer: PeerId,
    /// Initiator, responder and transfer id.
    pub channel_id: ChannelId,
    /// The root of the transferred DAG.
    pub base_cid: Cid,
    /// The IPLD selector over the DAG.
    pub selector: Node,
    /// The data sender.
    pub sender: PeerId,
    /// The data receiver. The channel is a pull exactly when the initiator is the recipient.
    pub recipient: PeerId,
    /// Go's `TotalSize`: never set, always 0.
    pub total_size: u64,
    /// The current status.
    pub status: ChannelStatus,
    /// Bytes of new blocks read and queued for sending.
    pub queued: u64,
    /// Bytes of new blocks sent.
    pub sent: u64,
    /// Bytes of new blocks received.
    pub received: u64,
    /// The last error or information text (Go's `Message`).
    pub message: String,
    /// Every voucher of the channel; the first is the original one that opened it.
    pub vouchers: Vec<Voucher>,
    /// Every voucher result of the channel, in arrival order.
    pub voucher_results: Vec<VoucherResult>,
    /// The highest block index received (Go's `ReceivedCidsTotal`); a restart asks the sender
    /// to skip this many blocks.
    pub received_blocks_total: u64,
    /// The highest block index queued (Go's `QueuedCidsTotal`).
    pub queued_blocks_total: u64,
    /// The highest block index sent (Go's `SentCidsTotal`).
    pub sent_blocks_total: u64,
}

impl ChannelState {
    /// The transfer id.
    pub fn transfer_id(&self) -> TransferId {
        self.channel_id.id
    }

    /// Whether the local peer opened the channel.
    pub fn is_initiator(&self) -> bool {
        self.self_peer == self.channel_id.initiator
    }

    /// Whether data flows from the responder to the initiator (initiator = recipient).
    pub fn is_pull(&self) -> bool {
        self.channel_id.initiator == self.recipient
    }

    /// Whether the local peer is the data sender.
    pub fn is_sender(&self) -> bool {
        self.self_peer == self.sender
    }

    /// The peer on the other side.
    pub fn other_peer(&self) -> &PeerId {
        self.channel_id.other_party(&self.self_peer)
    }

    /// The original voucher (Go's `Voucher()`, `Vouchers[0]`), used again by restarts.
    pub fn voucher(&self) -> Option<&Voucher> {
        self.vouchers.first()
    }

    /// The latest voucher.
    pub fn last_voucher(&self) -> Option<&Voucher> {
        self.vouchers.last()
    }

    /// The latest voucher result.
    pub fn last_voucher_result(&self) -> Option<&VoucherResult> {
        self.voucher_results.last()
    }

    /// Applies one event: looks up the transition, runs the event's action (§5.4) and moves to
    /// the new status. On an illegal transition nothing changes.
    pub(crate) fn apply(&mut self, step: &Step) -> Result<ChannelStatus, IllegalTransition> {
        let next = transition(self.status, step.code())?;
        match step {
            Step::Plain(code) => {
                if matches!(
                    code,
                    EventCode::TransferRequestQueued | EventCode::Restart | EventCode::Opened
                ) {
                    self.message.clear();
                }
            }
            Step::Block(kind, index) => {
                let total = match kind {
                    DataKind::Received => &mut self.received_blocks_total,
                    DataKind::Queued => &mut self.queued_blocks_total,
                    DataKind::Sent => &mut self.sent_blocks_total,
                };
                *total = (*total).max(*index);
            }
            Step::Progress(kind, delta) => {
                let counter = match kind {
                    DataKind::Received => &mut self.received,
                    DataKind::Queued => &mut self.queued,
                    DataKind::Sent => &mut self.sent,
                };
                *counter = counter.saturating_add(*delta);
            }
            Step::WithMessage(_, text) => self.message.clone_from(text),
            Step::NewVoucher(voucher) => self.vouchers.push(voucher.clone()),
            Step::NewVoucherResult(result) => self.voucher_results.push(result.clone()),
        }
        self.status = next;
        Ok(next)
    }
}

/// Which of the three block streams a transport report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Blocks arriving from the remote peer (data receiver side).
    Received,
    /// Blocks read locally and queued for sending (data sender side).
    Queued,
    /// Blocks handed to the network (data sender side).
    Sent,
}

impl DataKind {
    /// The plain event fired for every block (`DataReceived`, `DataQueued`, `DataSent`).
    pub fn event(self) -> EventCode {
        match self {
            DataKind::Received => EventCode::DataReceived,
            DataKind::Queued => EventCode::DataQueued,
            DataKind::Sent => EventCode::DataSent,
        }
    }

    /// The progress event fired for new on-the-wire blocks (`…Progress`).
    pub fn progress_event(self) -> EventCode {
        match self {
            DataKind::Received => EventCode::DataReceivedProgress,
            DataKind::Queued => EventCode::DataQueuedProgress,
            DataKind::Sent => EventCode::DataSentProgress,
        }
    }
}

/// One event with its payload, as the engine applies it to a channel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// An event without payload.
    Plain(EventCode),
    /// `DataReceived` / `DataQueued` / `DataSent` with the block index.
    Block(DataKind, u64),
    /// A progress event with the byte delta.
    Progress(DataKind, u64),
    /// `Error`, `Disconnected`, `SendDataError`, `ReceiveDataError`, `RequestCancelled`:
    /// sets `Message`.
    WithMessage(EventCode, String),
    /// `NewVoucher`.
    NewVoucher(Voucher),
    /// `NewVoucherResult`.
    NewVoucherResult(VoucherResult),
}

impl Step {
    /// The event code.
    pub(crate) fn code(&self) -> EventCode {
        match self {
            Step::Plain(code) | Step::WithMessage(code, _) => *code,
            Step::Block(kind, _) => kind.event(),
            Step::Progress(kind, _) => kind.progress_event(),
            Step::NewVoucher(_) => EventCode::NewVoucher,
            Step::NewVoucherResult(_) => EventCode::NewVoucherResult,
        }
    }
}

/// The in-memory cache of the highest block index seen per stream (§5.6), initialised from a
/// channel's persisted totals. It decides whether a reported block is new.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockCache {
    received: u64,
    queued: u64,
    sent: u64,
}

impl BlockCache {
    /// A cache starting at the channel's persisted highest indices.
    pub(crate) fn from_state(state: &ChannelState) -> Self {
        BlockCache {
            received: state.received_blocks_total,
            queued: state.queued_blocks_total,
            sent: state.sent_blocks_total,
        }
    }

    /// Records `index`; true if it is higher than any index seen before on that stream.
    pub(crate) fn observe(&mut self, kind: DataKind, index: u64) -> bool {
        let highest = match kind {
            DataKind::Received => &mut self.received,
            DataKind::Queued => &mut self.queued,
            DataKind::Sent => &mut self.sent,
        };
        let is_new = index > *highest;
        if is_new {
            *highest = index;
        }
        is_new
    }
}

/// The events one block report fires (§5.6): the progress event (with the block's size) only
/// for a unique block whose index is new, then always the plain event with the index.
pub(crate) fn block_steps(
    cache: &mut BlockCache,
    kind: DataKind,
    index: u64,
    size: u64,
    unique: bool,
) -> (bool, Vec<Step>) {
    let is_new = cache.observe(kind, index);
    let counted = unique && is_new;
    let mut steps = Vec::with_capacity(2);
    if counted {
        steps.push(Step::Progress(kind, size));
    }
    steps.push(Step::Block(kind, index));
    (counted, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn state(status: ChannelStatus) -> ChannelState {
        let me = PeerId::from_bytes(vec![1]);
        let other = PeerId::from_bytes(vec![2]);
        ChannelState {
            self_peer: me.clone(),
            channel_id: ChannelId::new(me.clone(), other.clone(), TransferId(9)),
            base_cid: "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
                .parse()
                .expect("valid test cid"),
            selector: Node::empty_map(),
            sender: other,
            recipient: me,
            total_size: 0,
            status,
            queued: 0,
            sent: 0,
            received: 0,
            message: String::new(),
            vouchers: Vec::new(),
            voucher_results: Vec::new(),
            received_blocks_total: 0,
            queued_blocks_total: 0,
            sent_blocks_total: 0,
        }
    }

    fn report(
        state: &mut ChannelState,
        cache: &mut BlockCache,
        kind: DataKind,
        index: u64,
        size: u64,
        unique: bool,
    ) -> bool {
        let (counted, steps) = block_steps(cache, kind, index, size, unique);
        for step in steps {
            let _ = state.apply(&step);
        }
        counted
    }

    #[test]
    fn progress_counts_a_block_index_only_the_first_time() {
        let mut channel = state(ChannelStatus::Ongoing);
        let mut cache = BlockCache::from_state(&channel);
        assert!(report(
            &mut channel,
            &mut cache,
            DataKind::Received,
            1,
            100,
            true
        ));
        assert!(report(
            &mut channel,
            &mut cache,
            DataKind::Received,
            2,
            50,
            true
        ));
        // The same index again (a re-sent block) counts nothing.
        assert!(!report(
            &mut channel,
            &mut cache,
            DataKind::Received,
            2,
            50,
            true
        ));
        // A lower index counts nothing and leaves the total alone.
        assert!(!report(
            &mut channel,
            &mut cache,
            DataKind::Received,
            1,
            100,
            true
        ));
        assert_eq!(channel.received, 150);
        assert_eq!(channel.received_blocks_total, 2);
    }

    #[test]
    fn blocks_loaded_locally_raise_the_index_but_not_the_bytes() {
        let mut channel = state(ChannelStatus::Ongoing);
        let mut cache = BlockCache::from_state(&channel);
        assert!(!report(
            &mut channel,
            &mut cache,
            DataKind::Received,
            5,
            100,
            false
        ));
        assert_eq!(channel.received, 0);
        assert_eq!(channel.received_blocks_total, 5);
        // Index 5 is no longer new, even when it now comes over the wire.
        assert!(!report(
            &mut channel,
            &mut cache,
            DataKind::Received,
            5,
            100,
            true
        ));
        assert_eq!(channel.received, 0);
    }

    #[test]
    fn the_cache_starts_from_the_persisted_totals() {
        let mut channel = state(ChannelStatus::Ongoing);
        channel.sent_blocks_total = 10;
        channel.queued_blocks_total = 10;
        let mut cache = BlockCache::from_state(&channel);
        assert!(!report(
            &mut channel,
            &mut cache,
            DataKind::Sent,
            10,
            7,
            true
        ));
        assert!(report(
            &mut channel,
            &mut cache,
            DataKind::Sent,
            11,
            7,
            true
        ));
        assert!(report(
            &mut channel,
            &mut cache,
            DataKind::Queued,
            11,
            7,
            true
        ));
        assert_eq!((channel.sent, channel.queued), (7, 7));
        assert_eq!(
            (channel.sent_blocks_total, channel.queued_blocks_total),
            (11, 11)
        );
    }

    #[test]
    fn progress_outside_the_transferring_statuses_is_dropped_but_the_index_is_kept() {
        let mut channel = state(ChannelStatus::TransferFinished);
        let mut cache = BlockCache::from_state(&channel);
        report(&mut channel, &mut cache, DataKind::Sent, 3, 30, true);
        assert_eq!(
            channel.sent, 0,
            "DataSentProgress has no row in TransferFinished"
        );
        assert_eq!(
            channel.sent_blocks_total, 3,
            "DataSent applies in TransferFinished"
        );
        report(&mut channel, &mut cache, DataKind::Received, 4, 30, true);
        assert_eq!((channel.received, channel.received_blocks_total), (0, 4));
    }

    #[test]
    fn actions_set_message_and_append_vouchers() {
        let mut channel = state(ChannelStatus::Ongoing);
        let error = Step::WithMessage(EventCode::Disconnected, "stream reset".into());
        assert_eq!(channel.apply(&error), Ok(ChannelStatus::Ongoing));
        assert_eq!(channel.message, "stream reset");
        assert_eq!(
            channel.apply(&Step::Plain(EventCode::Restart)),
            Ok(ChannelStatus::Ongoing)
        );
        assert_eq!(channel.message, "", "Restart clears the message");
        let voucher = Voucher::new("T", Node::text("v"));
        channel
            .apply(&Step::NewVoucher(voucher.clone()))
            .expect("any status");
        let result = VoucherResult::new("R", Node::Null);
        channel
            .apply(&Step::NewVoucherResult(result.clone()))
            .expect("any status");
        assert_eq!(channel.voucher(), Some(&voucher));
        assert_eq!(channel.last_voucher_result(), Some(&result));
        let failed = Step::WithMessage(EventCode::Error, "boom".into());
        assert_eq!(channel.apply(&failed), Ok(ChannelStatus::Failing));
        assert_eq!(channel.message, "boom");
    }

    #[test]
    fn illegal_events_change_nothing() {
        let mut channel = state(ChannelStatus::Completed);
        let before = channel.clone();
        let step = Step::NewVoucher(Voucher::new("T", Node::Null));
        assert!(channel.apply(&step).is_err());
        assert_eq!(channel, before);
    }

    #[test]
    fn roles_follow_the_peers() {
        let channel = state(ChannelStatus::Ongoing);
        assert!(channel.is_initiator() && channel.is_pull() && !channel.is_sender());
        assert_eq!(channel.other_peer(), &PeerId::from_bytes(vec![2]));
        assert_eq!(channel.transfer_id(), TransferId(9));
    }
}
