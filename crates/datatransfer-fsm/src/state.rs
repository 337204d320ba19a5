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

/// A wall-clock time: nanoseconds since the Unix epoch, as Go's `cbg.CborTime` stores it
/// (negative before 1970). The engine never reads a clock: it converts its `now: Instant` with
/// the anchor the driver gives it ([`Engine::handle_wall_clock`](crate::Engine::handle_wall_clock)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixNanos(pub i64);

/// One line of a stage's trace (Go's `Log`): a human-readable text and when it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageLog {
    /// The text (Go's `Log`).
    pub log: String,
    /// When it was written (Go's `UpdatedTime`).
    pub updated_time: UnixNanos,
}

/// One stage of a channel's trace (Go's `ChannelStage`): the events applied while the channel
/// was in one status, named after that status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelStage {
    /// The stage's name: Go's name of the status the events were applied in.
    pub name: String,
    /// A description; Go never sets it, and neither does the engine (always empty).
    pub description: String,
    /// When the first event of the stage was applied.
    pub created_time: UnixNanos,
    /// When the latest event of the stage was applied.
    pub updated_time: UnixNanos,
    /// The stage's non-empty log lines, oldest first, without consecutive repeats.
    pub logs: Vec<StageLog>,
}

/// A channel's experimental trace (Go's `ChannelStages`): one [`ChannelStage`] per status the
/// channel applied events in, in the order each was first entered.
///
/// Go's [`add_log`](ChannelStages::add_log) finds a stage by name, so a status visited twice
/// (Ongoing, paused, Ongoing again) has one stage whose logs span both visits. Unlike Go, the
/// trace is bounded: past `max_stages` stages the oldest stage is dropped, past
/// `max_logs` lines in a stage its oldest line is dropped
/// ([`Config::max_stages`](crate::Config::max_stages),
/// [`Config::max_stage_logs`](crate::Config::max_stage_logs)).
///
/// # Examples
/// ```
/// use datatransfer_fsm::{ChannelStages, UnixNanos};
///
/// let mut stages = ChannelStages::default();
/// stages.add_log("Ongoing", "received data", UnixNanos(10), 32, 64);
/// stages.add_log("Ongoing", "received data", UnixNanos(20), 32, 64);
/// stages.add_log("TransferFinished", "", UnixNanos(30), 32, 64);
/// let names: Vec<&str> = stages.names().collect();
/// assert_eq!(names, ["Ongoing", "TransferFinished"]);
/// let ongoing = stages.stage("Ongoing").expect("recorded");
/// assert_eq!((ongoing.created_time, ongoing.updated_time), (UnixNanos(10), UnixNanos(20)));
/// assert_eq!(ongoing.logs.len(), 1, "a repeated line is written once");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelStages {
    /// Every stage, in the order each was first entered.
    pub stages: Vec<ChannelStage>,
}

impl ChannelStages {
    /// The stage named `name` (Go's `GetStage`).
    pub fn stage(&self, name: &str) -> Option<&ChannelStage> {
        self.stages.iter().find(|stage| stage.name == name)
    }

    /// The stages' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|stage| stage.name.as_str())
    }

    /// Records an event under the stage `stage` at `at` (Go's `AddLog`): creates the stage if
    /// it is new, sets its updated time, and appends `message` unless it is empty or repeats
    /// the stage's last line. Then drops the oldest stages beyond `max_stages` and the oldest
    /// lines of the stage beyond `max_logs`.
    pub fn add_log(
        &mut self,
        stage: &str,
        message: &str,
        at: UnixNanos,
        max_stages: usize,
        max_logs: usize,
    ) {
        let index = match self.stages.iter().position(|s| s.name == stage) {
            Some(index) => index,
            None => {
                self.stages.push(ChannelStage {
                    name: stage.to_owned(),
                    description: String::new(),
                    created_time: at,
                    updated_time: at,
                    logs: Vec::new(),
                });
                self.stages.len() - 1
            }
        };
        let entry = &mut self.stages[index];
        entry.updated_time = at;
        if !message.is_empty() && entry.logs.last().is_none_or(|last| last.log != message) {
            entry.logs.push(StageLog {
                log: message.to_owned(),
                updated_time: at,
            });
        }
        if entry.logs.len() > max_logs {
            let excess = entry.logs.len() - max_logs;
            entry.logs.drain(..excess);
        }
        if self.stages.len() > max_stages {
            let excess = self.stages.len() - max_stages;
            self.stages.drain(..excess);
        }
    }
}

/// The state of one channel as one node sees it: every field of Go's `ChannelState` record
/// (§8), the experimental `Stages` trace included.
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
    /// The experimental trace of the events applied, grouped by the status they were applied
    /// in (Go's `Stages`, §5.3).
    pub stages: ChannelStages,
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
    /// The line Go's action writes to the channel's trace for this event (go-data-transfer
    /// v1.15.1 `channels_fsm.go`); empty for events that write none.
    pub(crate) fn log_text(&self) -> String {
        match self {
            Step::Plain(_) | Step::Block(..) | Step::Progress(DataKind::Queued, _) => String::new(),
            Step::Progress(DataKind::Received, _) => "received data".to_owned(),
            Step::Progress(DataKind::Sent, _) => "sending data".to_owned(),
            Step::WithMessage(code, text) => match code {
                EventCode::Disconnected => format!("data transfer disconnected: {text}"),
                EventCode::SendDataError => format!("data transfer send error: {text}"),
                EventCode::ReceiveDataError => format!("data transfer receive error: {text}"),
                EventCode::RequestCancelled => {
                    format!("data transfer request cancelled: {text}")
                }
                EventCode::Error => format!("data transfer erred: {text}"),
                _ => String::new(),
            },
            Step::NewVoucher(_) => "got new voucher".to_owned(),
            Step::NewVoucherResult(_) => "got new voucher result".to_owned(),
        }
    }

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
            stages: ChannelStages::default(),
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
    fn add_log_reuses_a_stage_by_name_and_skips_empty_and_repeated_lines() {
        let mut stages = ChannelStages::default();
        stages.add_log("Ongoing", "", UnixNanos(1), 8, 8);
        stages.add_log("Ongoing", "received data", UnixNanos(2), 8, 8);
        stages.add_log("Ongoing", "received data", UnixNanos(3), 8, 8);
        stages.add_log("ResponderPaused", "got new voucher", UnixNanos(4), 8, 8);
        stages.add_log("Ongoing", "got new voucher result", UnixNanos(5), 8, 8);
        stages.add_log("Ongoing", "received data", UnixNanos(6), 8, 8);
        assert_eq!(
            stages.names().collect::<Vec<_>>(),
            ["Ongoing", "ResponderPaused"]
        );
        let ongoing = stages.stage("Ongoing").expect("recorded");
        assert_eq!(
            (ongoing.created_time, ongoing.updated_time),
            (UnixNanos(1), UnixNanos(6))
        );
        let lines: Vec<(&str, i64)> = ongoing
            .logs
            .iter()
            .map(|l| (l.log.as_str(), l.updated_time.0))
            .collect();
        assert_eq!(
            lines,
            [
                ("received data", 2),
                ("got new voucher result", 5),
                ("received data", 6)
            ],
            "only a consecutive repeat is skipped"
        );
        assert!(stages.stage("Completed").is_none());
    }

    #[test]
    fn add_log_drops_the_oldest_stages_and_lines_past_the_bounds() {
        let mut stages = ChannelStages::default();
        for (i, name) in ["A", "B", "C"].into_iter().enumerate() {
            let at = UnixNanos(i64::try_from(i).expect("small"));
            stages.add_log(name, "x", at, 2, 2);
        }
        assert_eq!(stages.names().collect::<Vec<_>>(), ["B", "C"]);
        for text in ["1", "2", "3"] {
            stages.add_log("C", text, UnixNanos(9), 2, 2);
        }
        let lines: Vec<&str> = stages
            .stage("C")
            .expect("kept")
            .logs
            .iter()
            .map(|l| l.log.as_str())
            .collect();
        assert_eq!(lines, ["2", "3"]);
        // A restored trace over the bounds is trimmed by the next entry.
        stages.add_log("B", "", UnixNanos(10), 1, 0);
        assert_eq!(stages.names().collect::<Vec<_>>(), ["C"]);
        stages.add_log("C", "", UnixNanos(11), 1, 0);
        assert!(stages.stages[0].logs.is_empty());
    }

    #[test]
    fn each_event_writes_the_line_gos_action_writes() {
        let voucher = Voucher::new("T", Node::Null);
        let result = VoucherResult::new("R", Node::Null);
        let cases = [
            (Step::Plain(EventCode::Accept), ""),
            (Step::Block(DataKind::Received, 1), ""),
            (Step::Progress(DataKind::Received, 1), "received data"),
            (Step::Progress(DataKind::Sent, 1), "sending data"),
            (Step::Progress(DataKind::Queued, 1), ""),
            (
                Step::WithMessage(EventCode::Disconnected, "e".into()),
                "data transfer disconnected: e",
            ),
            (
                Step::WithMessage(EventCode::SendDataError, "e".into()),
                "data transfer send error: e",
            ),
            (
                Step::WithMessage(EventCode::ReceiveDataError, "e".into()),
                "data transfer receive error: e",
            ),
            (
                Step::WithMessage(EventCode::RequestCancelled, "e".into()),
                "data transfer request cancelled: e",
            ),
            (
                Step::WithMessage(EventCode::Error, "e".into()),
                "data transfer erred: e",
            ),
            (Step::NewVoucher(voucher), "got new voucher"),
            (Step::NewVoucherResult(result), "got new voucher result"),
        ];
        for (step, line) in cases {
            assert_eq!(step.log_text(), line, "{step:?}");
        }
    }

    #[test]
    fn roles_follow_the_peers() {
        let channel = state(ChannelStatus::Ongoing);
        assert!(channel.is_initiator() && channel.is_pull() && !channel.is_sender());
        assert_eq!(channel.other_peer(), &PeerId::from_bytes(vec![2]));
        assert_eq!(channel.transfer_id(), TransferId(9));
    }
}
