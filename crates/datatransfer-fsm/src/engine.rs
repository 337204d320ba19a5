//! [`Engine`]: every channel of one node, driven by commands and `handle_*` inputs, producing
//! [`Transmit`]s, [`Event`]s and timeouts (`spec/data-transfer.md` §4.4–§4.7, §5, §6, §7.1–§7.2).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use datatransfer_message::{
    ChannelId, Message, MessageType, PeerId, Request, Response, TransferId, TypeIdentifier,
    cancel_request, cancel_response, complete_response, new_request, new_response,
    restart_existing_channel_request, restart_request, restart_response, update_request,
    update_response, voucher_request, voucher_result_response,
};
use ipld_dagcbor::Node;

use crate::error::{CommandError, ProtocolError};
use crate::event_code::EventCode;
use crate::state::{
    BlockCache, ChannelStages, ChannelState, DataKind, Step, UnixNanos, Voucher, VoucherResult,
    block_steps,
};
use crate::status::ChannelStatus;
use crate::transition::IllegalTransition;

/// The text of the `Error` event when the responder rejects (Go's `ErrRejected`).
pub const REJECTED_MESSAGE: &str = "response rejected";

/// The most outputs one input or command can queue; inputs are refused while a queue has less
/// room than this.
const MAX_OUTPUTS_PER_INPUT: usize = 32;

/// Engine configuration. Every field has a documented default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Seed of the transfer-id counter: each new channel takes `seed + 1`, `seed + 2`, …,
    /// kept within `0 ..= 2⁶³ − 1`. Go seeds it with the Unix time in nanoseconds when the
    /// manager starts; the driver should do the same (this crate reads no clock). Default 0.
    pub transfer_id_seed: u64,
    /// The most channels the engine holds (terminal ones included, until
    /// [`Engine::remove`]). Default 4096.
    pub max_channels: usize,
    /// Bound of the transmit queue. Default 1024. One input queues at most 32 items, and an
    /// input is refused while fewer than 32 slots are free, so the bound must exceed 32.
    pub max_transmits: usize,
    /// Bound of the event queue, with the same rule as `max_transmits`. Default 4096.
    pub max_events: usize,
    /// The most open validation questions, over all channels. Default 256.
    pub max_pending_validations: usize,
    /// How long a validation question may stay unanswered before the engine answers it with a
    /// rejection. Default 60 s.
    pub validation_timeout: Duration,
    /// The most vouchers plus voucher results one channel keeps; more fail the channel (from a
    /// peer) or the command (locally). Default 1024.
    pub max_vouchers: usize,
    /// Whether the responder asks ([`ValidationKind::Complete`]) before sending Complete, as
    /// Go's revalidators' `OnComplete` does. When false it completes at once, as Go does with
    /// no revalidator. Default false.
    pub validate_completion: bool,
    /// Whether the responder asks about the bytes of every new block, as Go's revalidators'
    /// `OnPullDataSent` (pull responder, per block queued) and `OnPushDataReceived` (push
    /// responder, per block received) do: [`ValidationKind::PullDataSent`] and
    /// [`ValidationKind::PushDataReceived`]. When false nothing is asked, as Go does with no
    /// revalidator. Default false.
    pub revalidate_data: bool,
    /// The most stages one channel's trace ([`ChannelState::stages`]) keeps; past it the oldest
    /// stage is dropped. Stages are named after statuses, so the engine itself makes at most
    /// 16. Go has no bound. Default 32.
    pub max_stages: usize,
    /// The most log lines one stage of the trace keeps; past it the stage's oldest line is
    /// dropped. Go has no bound (a paid retrieval alternating vouchers and results grows its
    /// trace with every payment). Default 64.
    pub max_stage_logs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            transfer_id_seed: 0,
            max_channels: 4096,
            max_transmits: 1024,
            max_events: 4096,
            max_pending_validations: 256,
            validation_timeout: Duration::from_secs(60),
            max_vouchers: 1024,
            validate_completion: false,
            revalidate_data: false,
            max_stages: 32,
            max_stage_logs: 64,
        }
    }
}

impl Config {
    /// This configuration with another transfer-id seed.
    pub fn with_transfer_id_seed(mut self, seed: u64) -> Self {
        self.transfer_id_seed = seed;
        self
    }

    /// This configuration with another validation timeout.
    pub fn with_validation_timeout(mut self, timeout: Duration) -> Self {
        self.validation_timeout = timeout;
        self
    }

    /// This configuration with completion validation on or off.
    pub fn with_validate_completion(mut self, on: bool) -> Self {
        self.validate_completion = on;
        self
    }

    /// This configuration with the per-block data questions on or off.
    pub fn with_revalidate_data(mut self, on: bool) -> Self {
        self.revalidate_data = on;
        self
    }

    /// This configuration with other bounds on each channel's trace: at most `max_stages`
    /// stages of at most `max_logs` lines each.
    pub fn with_stage_limits(mut self, max_stages: usize, max_logs: usize) -> Self {
        self.max_stages = max_stages;
        self.max_stage_logs = max_logs;
        self
    }

    /// This configuration with every revalidator hook on or off: the per-block data questions
    /// ([`Config::revalidate_data`]) and the completion question
    /// ([`Config::validate_completion`]), as a Go node with a registered `Revalidator` runs.
    pub fn with_revalidation(self, on: bool) -> Self {
        self.with_revalidate_data(on).with_validate_completion(on)
    }
}

/// What the driver must do on the network or the transport, in queue order.
// Messages dominate the size; transmits are built once and moved out once.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Transmit {
    /// Send `message` to `peer` on the data-transfer protocol (libp2p).
    Message {
        /// The receiver.
        peer: PeerId,
        /// The channel it concerns.
        channel: ChannelId,
        /// The message.
        message: Message,
    },
    /// As data receiver, open the transport's data channel (a graphsync request) to
    /// `data_sender`, carrying `message`; on a restart also ask it to skip the first
    /// `skip_blocks` blocks (`graphsync/do-not-send-first-blocks`).
    OpenChannel {
        /// The data sender.
        data_sender: PeerId,
        /// The channel.
        channel: ChannelId,
        /// The DAG root.
        base_cid: Cid,
        /// The selector.
        selector: Node,
        /// The data-transfer message to carry.
        message: Message,
        /// Blocks to skip (`Some` on restarts, even when 0).
        skip_blocks: Option<u64>,
    },
    /// Attach `message` to the channel's current transport exchange (the answer to a request
    /// that arrived inside it, such as a pull's accept or reject).
    Attach {
        /// The channel.
        channel: ChannelId,
        /// The message.
        message: Message,
    },
    /// Pause the local side of the transport.
    PauseChannel {
        /// The channel.
        channel: ChannelId,
    },
    /// Resume the local side of the transport, carrying `message` inside it.
    ResumeChannel {
        /// The channel.
        channel: ChannelId,
        /// The message that travels with the resume.
        message: Message,
    },
    /// Stop the transport's data channel (cancel its request or response).
    CloseChannel {
        /// The channel.
        channel: ChannelId,
    },
    /// Forget the transport's state for the channel (Go's `CleanupChannel`).
    CleanupChannel {
        /// The channel.
        channel: ChannelId,
    },
}

/// What the engine reports, in queue order.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An event was applied to a channel: Go's subscriber notification.
    Channel(ChannelEvent),
    /// A decision for the application: answer with [`Engine::handle_validation`].
    ValidationRequested(ValidationRequest),
    /// The channel's state changed and must be persisted before the transmits that follow
    /// it are sent. Shared with the engine until its next change to the channel, so taking
    /// a snapshot copies nothing.
    Snapshot(Arc<ChannelState>),
}

/// One applied event, as Go notifies subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelEvent {
    /// The channel.
    pub channel: ChannelId,
    /// What happened.
    pub code: EventCode,
    /// The channel's status after the event.
    pub status: ChannelStatus,
    /// The channel's `message` after the event.
    pub message: String,
    /// When it happened.
    pub at: Instant,
}

/// A question for the application's validators (Go's `RequestValidator` and `Revalidator`).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationRequest {
    /// The channel (it may not exist yet, for a new request).
    pub channel: ChannelId,
    /// What is to be decided.
    pub kind: ValidationKind,
}

/// What a [`ValidationRequest`] asks.
#[derive(Clone, Debug, PartialEq)]
pub enum ValidationKind {
    /// A peer opens a channel (`ValidatePush` / `ValidatePull` with `isRestart = false`).
    Open {
        /// Whether the initiator pulls.
        pull: bool,
        /// The voucher.
        voucher: Voucher,
        /// The root.
        base_cid: Cid,
        /// The selector.
        selector: Node,
    },
    /// A peer restarts a channel (`isRestart = true`).
    Restart {
        /// Whether the initiator pulls (taken from the message, as Go does).
        pull: bool,
        /// The voucher (equal to the channel's original one).
        voucher: Voucher,
        /// The root.
        base_cid: Cid,
        /// The selector.
        selector: Node,
    },
    /// The initiator sent a new voucher (`Revalidate`).
    Voucher {
        /// The voucher.
        voucher: Voucher,
    },
    /// The responder's side finished (`OnComplete`); only with
    /// [`Config::validate_completion`].
    Complete,
    /// The pull responder queued new blocks for sending (`OnPullDataSent`); only with
    /// [`Config::revalidate_data`].
    ///
    /// Asked for each block counted in `queued` (new index, crossed the wire), as Go calls
    /// the hook per block. While a data question of the channel is open, the bytes of later
    /// blocks add up and are asked about together once it is answered, so every counted byte
    /// is reported exactly once. A driver that answers before its next transport report (the
    /// graphsync outgoing-block hook) gets one question per block, as in Go.
    ///
    /// Answers: [`Verdict::Accept`] continues (with a result, it is sent as a voucher result);
    /// [`Verdict::Pause`] pauses the responder and sends the voucher result with `Paus=true`
    /// (a payment request): [`Transmit::Attach`] then [`Transmit::PauseChannel`];
    /// [`Verdict::Resume`] counts as `Accept`; [`Verdict::Reject`] sends the result with
    /// `Acpt=false`, closes the transport and fails the channel.
    PullDataSent {
        /// Bytes counted since the previous data question of the channel (Go's
        /// `additionalBytesSent`: one block's size when answered at once).
        additional_bytes: u64,
        /// The channel's `queued` counter when asked.
        total: u64,
    },
    /// The push responder received new blocks (`OnPushDataReceived`); only with
    /// [`Config::revalidate_data`]. Asked and answered as
    /// [`PullDataSent`](ValidationKind::PullDataSent), over the blocks counted in `received`;
    /// the voucher result goes on the network ([`Transmit::Message`]).
    PushDataReceived {
        /// Bytes counted since the previous data question of the channel (Go's
        /// `additionalBytesReceived`).
        additional_bytes: u64,
        /// The channel's `received` counter when asked.
        total: u64,
    },
}

impl ValidationKind {
    /// Whether this is a per-block data question.
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            ValidationKind::PullDataSent { .. } | ValidationKind::PushDataReceived { .. }
        )
    }
}

/// The application's answer to a [`ValidationRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    /// The decision.
    pub verdict: Verdict,
    /// A voucher result to record and send, if any.
    pub result: Option<VoucherResult>,
}

impl Validation {
    /// An answer without a voucher result.
    pub fn new(verdict: Verdict) -> Self {
        Validation {
            verdict,
            result: None,
        }
    }

    /// This answer with a voucher result.
    pub fn with_result(mut self, result: VoucherResult) -> Self {
        self.result = Some(result);
        self
    }
}

/// A validator's decision: Go's `nil`, `ErrPause`, `ErrResume` or another error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accept (`nil`).
    Accept,
    /// Accept, but pause the responder (`ErrPause`); for `Complete`, ask for a final voucher.
    Pause,
    /// Resume the responder (`ErrResume`); for `Open` and `Restart` it counts as `Accept`.
    Resume,
    /// Reject, with the reason.
    Reject(String),
}

impl Verdict {
    fn accepted(&self) -> bool {
        !matches!(self, Verdict::Reject(_))
    }
}

/// What the transport reported about a channel; the facade maps the real transport's events
/// onto these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportInput {
    /// The data channel was opened (graphsync request sent): event `Opened`.
    Opened,
    /// The data request was queued on the sender: event `TransferRequestQueued`.
    RequestQueued,
    /// A block was received, queued or sent, with its traversal index (1-based), its size,
    /// and whether it crossed the wire (`unique`; false for blocks loaded locally or skipped).
    Data {
        /// Which stream.
        kind: DataKind,
        /// The block's traversal index.
        index: u64,
        /// The block's size in bytes.
        size: u64,
        /// Whether it crossed the wire.
        unique: bool,
    },
    /// The local side of the data channel finished: `Ok` when all data went through, else the
    /// error text.
    Completed(Result<(), String>),
    /// Sending data failed: event `SendDataError`.
    SendDataError(String),
    /// Receiving data failed: event `ReceiveDataError`.
    ReceiveDataError(String),
    /// The local request was cancelled: event `RequestCancelled`.
    RequestCancelled(String),
}

/// One open validation question.
#[derive(Clone, Debug)]
struct Pending {
    kind: ValidationKind,
    deadline: Instant,
    /// The peer that asked (for open requests, before the channel exists).
    peer: PeerId,
}

/// All channels of one node: the sans-IO core of data-transfer.
///
/// See the crate documentation for the driving contract.
#[derive(Debug)]
pub struct Engine {
    self_peer: PeerId,
    config: Config,
    next_transfer_id: u64,
    channels: BTreeMap<ChannelId, Channel>,
    pending: BTreeMap<ChannelId, VecDeque<Pending>>,
    pending_count: usize,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// The driver's last wall-clock reading: at this instant, this Unix time.
    wall_clock: Option<(Instant, UnixNanos)>,
}

#[derive(Clone, Debug)]
struct Channel {
    /// Copied on the first change after a snapshot shared it ([`Arc::make_mut`]).
    state: Arc<ChannelState>,
    cache: BlockCache,
    /// Bytes counted for a data question but not yet asked about (not persisted).
    unchecked: u64,
}

impl Engine {
    /// An engine for the local peer `self_peer`, with no channels.
    pub fn new(self_peer: PeerId, config: Config) -> Self {
        Engine {
            self_peer,
            next_transfer_id: config.transfer_id_seed,
            config,
            channels: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_count: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            wall_clock: None,
        }
    }

    /// The wall clock read `unix_time` at `now`: the anchor the engine converts its `now`
    /// arguments with to stamp the channels' traces ([`ChannelState::stages`]), since it reads
    /// no clock itself. A driver calls it once at start, and again whenever it wants to correct
    /// drift between the monotonic and the wall clock; later calls replace the anchor.
    ///
    /// Until it is called, trace times are `UnixNanos(0)` (unknown).
    ///
    /// # Examples
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// use datatransfer_fsm::{Config, Engine, UnixNanos};
    /// use datatransfer_message::PeerId;
    ///
    /// let mut engine = Engine::new(PeerId::from_bytes(vec![1]), Config::default());
    /// let start = Instant::now();
    /// assert_eq!(engine.unix_time(start), UnixNanos(0));
    /// engine.handle_wall_clock(start, UnixNanos(1_700_000_000_000_000_000));
    /// let later = start + Duration::from_millis(5);
    /// assert_eq!(engine.unix_time(later), UnixNanos(1_700_000_000_005_000_000));
    /// ```
    pub fn handle_wall_clock(&mut self, now: Instant, unix_time: UnixNanos) {
        self.wall_clock = Some((now, unix_time));
    }

    /// The Unix time of `now` by the anchor of [`Engine::handle_wall_clock`], saturating at the
    /// ends of `i64`; `UnixNanos(0)` when no anchor was given.
    pub fn unix_time(&self, now: Instant) -> UnixNanos {
        let Some((anchor, unix)) = self.wall_clock else {
            return UnixNanos(0);
        };
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match now.checked_duration_since(anchor) {
            Some(after) => UnixNanos(unix.0.saturating_add(nanos(after))),
            None => UnixNanos(unix.0.saturating_sub(nanos(anchor.duration_since(now)))),
        }
    }

    /// The local peer.
    pub fn self_peer(&self) -> &PeerId {
        &self.self_peer
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state of a channel.
    pub fn channel(&self, channel: &ChannelId) -> Option<&ChannelState> {
        self.channels.get(channel).map(|c| &*c.state)
    }

    /// The state of a channel as a shared snapshot: later changes to the channel do not show
    /// in it, and taking it copies nothing.
    pub fn channel_snapshot(&self, channel: &ChannelId) -> Option<Arc<ChannelState>> {
        self.channels.get(channel).map(|c| Arc::clone(&c.state))
    }

    /// Every channel, terminal ones included, in channel-id order.
    pub fn channels(&self) -> impl Iterator<Item = &ChannelState> {
        self.channels.values().map(|c| &*c.state)
    }

    /// Forgets a terminal channel (after the driver has archived it), freeing its slot.
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`]; [`CommandError::Illegal`] if it is not terminal.
    pub fn remove(&mut self, channel: &ChannelId) -> Result<ChannelState, CommandError> {
        let status = self.state(channel)?.status;
        if !status.is_terminal() {
            return Err(CommandError::Illegal {
                channel: channel.clone(),
                source: IllegalTransition::NotAllowed {
                    status,
                    event: EventCode::CleanupComplete,
                },
            });
        }
        let removed = self
            .channels
            .remove(channel)
            .expect("the channel was just found");
        Ok(Arc::unwrap_or_clone(removed.state))
    }

    /// Loads persisted channel states back (on start, before any other input). Channels
    /// already present are replaced. Nothing is emitted: the states are already persisted.
    ///
    /// # Errors
    /// [`CommandError::ForeignSnapshot`] for a state of another local peer,
    /// [`CommandError::TooManyChannels`]; states before the failing one stay loaded.
    pub fn restore(
        &mut self,
        states: impl IntoIterator<Item = ChannelState>,
    ) -> Result<(), CommandError> {
        for state in states {
            if state.self_peer != self.self_peer {
                return Err(CommandError::ForeignSnapshot {
                    channel: state.channel_id,
                    self_peer: state.self_peer,
                });
            }
            if !self.channels.contains_key(&state.channel_id)
                && self.channels.len() >= self.config.max_channels
            {
                return Err(CommandError::TooManyChannels {
                    limit: self.config.max_channels,
                });
            }
            let cache = BlockCache::from_state(&state);
            self.channels.insert(
                state.channel_id.clone(),
                Channel {
                    state: Arc::new(state),
                    cache,
                    unchecked: 0,
                },
            );
        }
        Ok(())
    }

    // ----- commands -------------------------------------------------------------------------

    /// Opens a push channel: this node sends the DAG under `base_cid` selected by `selector`
    /// to `to`. Queues the new request for the network.
    ///
    /// # Errors
    /// [`CommandError::TooManyChannels`], [`CommandError::QueueFull`].
    pub fn open_push(
        &mut self,
        to: PeerId,
        voucher: Voucher,
        base_cid: Cid,
        selector: Node,
        now: Instant,
    ) -> Result<ChannelId, CommandError> {
        let channel = self.open(to.clone(), false, voucher.clone(), base_cid, &selector, now)?;
        let request = new_request(
            channel.id,
            false,
            voucher.voucher_type,
            voucher.node,
            base_cid,
            selector,
        );
        self.transmit(Transmit::Message {
            peer: to,
            channel: channel.clone(),
            message: request.into(),
        });
        Ok(channel)
    }

    /// Opens a pull channel: this node asks `from` for the DAG under `base_cid` selected by
    /// `selector`. Queues [`Transmit::OpenChannel`] carrying the new request.
    ///
    /// # Errors
    /// [`CommandError::TooManyChannels`], [`CommandError::QueueFull`].
    pub fn open_pull(
        &mut self,
        from: PeerId,
        voucher: Voucher,
        base_cid: Cid,
        selector: Node,
        now: Instant,
    ) -> Result<ChannelId, CommandError> {
        let channel = self.open(
            from.clone(),
            true,
            voucher.clone(),
            base_cid,
            &selector,
            now,
        )?;
        let request = new_request(
            channel.id,
            true,
            voucher.voucher_type,
            voucher.node,
            base_cid,
            selector.clone(),
        );
        self.transmit(Transmit::OpenChannel {
            data_sender: from,
            channel: channel.clone(),
            base_cid,
            selector,
            message: request.into(),
            skip_blocks: None,
        });
        Ok(channel)
    }

    /// Sends a new voucher to the responder (initiator only) and records it (`NewVoucher`).
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`], [`CommandError::NotInitiator`],
    /// [`CommandError::Terminated`], [`CommandError::TooManyVouchers`],
    /// [`CommandError::QueueFull`].
    pub fn send_voucher(
        &mut self,
        channel: &ChannelId,
        voucher: Voucher,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let state = self.live_state(channel)?;
        if !state.is_initiator() {
            return Err(CommandError::NotInitiator {
                channel: channel.clone(),
            });
        }
        if state.vouchers.len() + state.voucher_results.len() >= self.config.max_vouchers {
            return Err(CommandError::TooManyVouchers {
                channel: channel.clone(),
                limit: self.config.max_vouchers,
            });
        }
        let peer = state.other_peer().clone();
        let message = voucher_request(
            channel.id,
            voucher.voucher_type.clone(),
            voucher.node.clone(),
        );
        self.transmit(Transmit::Message {
            peer,
            channel: channel.clone(),
            message: message.into(),
        });
        let _ = self.apply(channel, Step::NewVoucher(voucher), now);
        self.snapshot(channel);
        Ok(())
    }

    /// Pauses the local side: pauses the transport, tells the peer (Update, `Paus=true`) and
    /// records `PauseInitiator` or `PauseResponder`.
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`], [`CommandError::Terminated`],
    /// [`CommandError::QueueFull`].
    pub fn pause(&mut self, channel: &ChannelId, now: Instant) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let state = self.live_state(channel)?;
        let (message, code) = if state.is_initiator() {
            (
                Message::from(update_request(channel.id, true)),
                EventCode::PauseInitiator,
            )
        } else {
            (
                Message::from(update_response(channel.id, true)),
                EventCode::PauseResponder,
            )
        };
        let peer = state.other_peer().clone();
        self.transmit(Transmit::PauseChannel {
            channel: channel.clone(),
        });
        self.transmit(Transmit::Message {
            peer,
            channel: channel.clone(),
            message,
        });
        let _ = self.apply(channel, Step::Plain(code), now);
        self.snapshot(channel);
        Ok(())
    }

    /// Resumes the local side: resumes the transport carrying the Update (`Paus=false`) and
    /// records `ResumeInitiator` or `ResumeResponder`.
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`], [`CommandError::Terminated`],
    /// [`CommandError::QueueFull`].
    pub fn resume(&mut self, channel: &ChannelId, now: Instant) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let state = self.live_state(channel)?;
        let (message, code) = if state.is_initiator() {
            (
                Message::from(update_request(channel.id, false)),
                EventCode::ResumeInitiator,
            )
        } else {
            (
                Message::from(update_response(channel.id, false)),
                EventCode::ResumeResponder,
            )
        };
        self.transmit(Transmit::ResumeChannel {
            channel: channel.clone(),
            message,
        });
        self.apply_and_cleanup(channel, Step::Plain(code), now);
        self.snapshot(channel);
        Ok(())
    }

    /// Cancels the channel: closes the transport, tells the peer (Cancel) and moves to
    /// `Cancelled`. A terminal channel is left alone (Go ignores it too).
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`], [`CommandError::QueueFull`].
    pub fn cancel(&mut self, channel: &ChannelId, now: Instant) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let state = self.state(channel)?;
        if state.status.is_terminal() {
            return Ok(());
        }
        let message = if state.is_initiator() {
            Message::from(cancel_request(channel.id))
        } else {
            Message::from(cancel_response(channel.id))
        };
        let peer = state.other_peer().clone();
        self.transmit(Transmit::CloseChannel {
            channel: channel.clone(),
        });
        self.transmit(Transmit::Message {
            peer,
            channel: channel.clone(),
            message,
        });
        self.apply_and_cleanup(channel, Step::Plain(EventCode::Cancel), now);
        self.snapshot(channel);
        Ok(())
    }

    /// Restarts the channel after a disconnection or a process restart (§7.1).
    ///
    /// A terminal channel is left alone; one that was cleaning up finishes its cleanup
    /// (`CompleteCleanupOnRestart`). The initiator repeats its original request as a restart
    /// (Type 6: a new data channel asking to skip the blocks already received for a pull, a
    /// network message for a push); the responder asks the initiator to restart (Type 7).
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`], [`CommandError::QueueFull`].
    pub fn restart(&mut self, channel: &ChannelId, now: Instant) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let state = self.state(channel)?;
        if state.status.is_terminal() {
            return Ok(());
        }
        if state.status.is_cleaning_up() {
            self.apply_and_cleanup(
                channel,
                Step::Plain(EventCode::CompleteCleanupOnRestart),
                now,
            );
            self.snapshot(channel);
            return Ok(());
        }
        if state.is_initiator() {
            self.send_restart_request(channel);
        } else {
            let peer = state.other_peer().clone();
            self.transmit(Transmit::Message {
                peer,
                channel: channel.clone(),
                message: restart_existing_channel_request(channel.clone()).into(),
            });
        }
        Ok(())
    }

    // ----- inputs ---------------------------------------------------------------------------

    /// A data-transfer message from `peer`, whichever way it arrived (network or transport).
    ///
    /// # Errors
    /// A [`ProtocolError`] when the message is invalid for its channel; the error's variant
    /// says whether the channel was failed.
    pub fn handle_message(
        &mut self,
        peer: PeerId,
        message: Message,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if !self.has_room() {
            return Err(ProtocolError::QueueFull);
        }
        match message {
            Message::Request(request) => self.handle_request(peer, request, now),
            Message::Response(response) => self.handle_response(peer, response, now),
        }
    }

    /// What the transport reported about `channel`.
    ///
    /// # Errors
    /// [`CommandError::UnknownChannel`], [`CommandError::QueueFull`].
    pub fn handle_transport_event(
        &mut self,
        channel: &ChannelId,
        input: TransportInput,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let state = self.state(channel)?;
        let is_initiator = state.is_initiator();
        match input {
            TransportInput::Opened => {
                self.apply_quiet(channel, Step::Plain(EventCode::Opened), now)
            }
            TransportInput::RequestQueued => {
                self.apply_quiet(channel, Step::Plain(EventCode::TransferRequestQueued), now)
            }
            TransportInput::Data {
                kind,
                index,
                size,
                unique,
            } => {
                let entry = self
                    .channels
                    .get_mut(channel)
                    .expect("the channel was just found");
                let (counted, steps) = block_steps(&mut entry.cache, kind, index, size, unique);
                for step in steps {
                    self.apply_quiet(channel, step, now);
                }
                if counted {
                    self.revalidate_data(channel, kind, size, now);
                }
            }
            TransportInput::Completed(Err(error)) => {
                self.apply_and_cleanup(channel, Step::WithMessage(EventCode::Error, error), now);
            }
            TransportInput::Completed(Ok(())) => {
                if is_initiator {
                    self.apply_and_cleanup(channel, Step::Plain(EventCode::FinishTransfer), now);
                } else if self.config.validate_completion {
                    let peer = state.other_peer().clone();
                    self.ask(channel.clone(), peer, ValidationKind::Complete, now);
                } else {
                    self.complete_responder(channel, &Validation::new(Verdict::Accept), now);
                }
            }
            TransportInput::SendDataError(error) => self.apply_quiet(
                channel,
                Step::WithMessage(EventCode::SendDataError, error),
                now,
            ),
            TransportInput::ReceiveDataError(error) => self.apply_quiet(
                channel,
                Step::WithMessage(EventCode::ReceiveDataError, error),
                now,
            ),
            TransportInput::RequestCancelled(error) => self.apply_quiet(
                channel,
                Step::WithMessage(EventCode::RequestCancelled, error),
                now,
            ),
        }
        self.snapshot(channel);
        Ok(())
    }

    /// The application's answer to the oldest open [`ValidationRequest`] of `channel`.
    ///
    /// # Errors
    /// [`CommandError::NoPendingValidation`], [`CommandError::QueueFull`].
    pub fn handle_validation(
        &mut self,
        channel: &ChannelId,
        validation: Validation,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.check_room_for_command()?;
        let pending =
            self.take_pending(channel)
                .ok_or_else(|| CommandError::NoPendingValidation {
                    channel: channel.clone(),
                })?;
        self.answer(channel, pending, validation, now);
        Ok(())
    }

    /// Time passed: answers every validation question older than
    /// [`Config::validation_timeout`] with a rejection.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<ChannelId> = self
            .pending
            .iter()
            .filter(|(_, queue)| queue.front().is_some_and(|p| p.deadline <= now))
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in expired {
            while self
                .pending
                .get(&channel)
                .and_then(VecDeque::front)
                .is_some_and(|p| p.deadline <= now)
            {
                let pending = self.take_pending(&channel).expect("front was just seen");
                let reject = Validation::new(Verdict::Reject("validation timed out".into()));
                self.answer(&channel, pending, reject, now);
            }
        }
    }

    // ----- outputs --------------------------------------------------------------------------

    /// The next thing to send or tell the transport, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any. Persist [`Event::Snapshot`]s before sending the transmits
    /// queued with them.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter_map(|queue| queue.front().map(|p| p.deadline))
            .min()
    }

    // ----- message handling -----------------------------------------------------------------

    fn handle_request(
        &mut self,
        peer: PeerId,
        request: Request,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if request.is_restart_existing_channel_request() {
            return self.handle_restart_existing(peer, request, now);
        }
        let channel = ChannelId::new(peer.clone(), self.self_peer.clone(), request.transfer_id());
        match request.message_type() {
            MessageType::New => self.handle_new_request(peer, channel, request, now),
            MessageType::Restart => self.handle_restart_request(peer, channel, request, now),
            MessageType::Update => {
                self.known(&peer, &channel)?;
                let code = if request.is_paused() {
                    EventCode::PauseInitiator
                } else {
                    EventCode::ResumeInitiator
                };
                let result = self.apply_from_peer(&peer, &channel, Step::Plain(code), now);
                self.snapshot(&channel);
                result
            }
            MessageType::Cancel => {
                self.known(&peer, &channel)?;
                // Cancelling's entry function emits `CleanupChannel`.
                let result =
                    self.apply_from_peer(&peer, &channel, Step::Plain(EventCode::Cancel), now);
                self.snapshot(&channel);
                result
            }
            MessageType::Voucher => {
                self.known(&peer, &channel)?;
                let voucher = Voucher::new(
                    request.voucher_type().clone(),
                    request.voucher().cloned().unwrap_or(Node::Null),
                );
                self.ask(channel, peer, ValidationKind::Voucher { voucher }, now);
                Ok(())
            }
            other => self.unexpected(peer, channel, other, "request", now),
        }
    }

    fn handle_new_request(
        &mut self,
        peer: PeerId,
        channel: ChannelId,
        request: Request,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if self.channels.contains_key(&channel) || self.pending.contains_key(&channel) {
            return Err(ProtocolError::ChannelExists { peer, channel });
        }
        let (base_cid, selector) = match (request.base_cid(), request.selector()) {
            (Some(cid), Some(selector)) => (*cid, selector.clone()),
            (cid, _) => {
                let field = if cid.is_none() { "BCid" } else { "Stor" };
                let response = new_response(channel.id, false, false, TypeIdentifier::EMPTY, None);
                self.send_answer(&peer, &channel, request.is_pull(), response);
                return Err(ProtocolError::MissingField {
                    peer,
                    channel,
                    field,
                });
            }
        };
        let voucher = Voucher::new(
            request.voucher_type().clone(),
            request.voucher().cloned().unwrap_or(Node::Null),
        );
        let kind = ValidationKind::Open {
            pull: request.is_pull(),
            voucher,
            base_cid,
            selector,
        };
        self.ask(channel, peer, kind, now);
        Ok(())
    }

    fn handle_restart_request(
        &mut self,
        peer: PeerId,
        channel: ChannelId,
        request: Request,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if let Err(unknown) = self.known(&peer, &channel) {
            // Go answers every restart request, one for a channel it does not have too, with
            // a Restart response whose `Acpt` is false (`receiveRestartRequest`).
            let response = restart_response(channel.id, false, false, TypeIdentifier::EMPTY, None);
            self.send_answer(&peer, &channel, request.is_pull(), response);
            return Err(unknown);
        }
        let state = self.state(&channel).expect("known channel");
        if state.status == ChannelStatus::Completed {
            // The restart raced the completion: it was sent before the initiator heard of it
            // (a late transport error, a lost Complete). Go rejects it and the initiator, which
            // may have every block, fails; the Complete again lets it complete
            // (docs/decisions/0003-fsm-go-bugs.md #16).
            let response = complete_response(channel.id, true, false, TypeIdentifier::EMPTY, None);
            self.send_answer(&peer, &channel, request.is_pull(), response);
            return Ok(());
        }
        let reject = |reason: &'static str| (reason, request.is_pull());
        let mismatch = if state.status.is_terminal() {
            Some(reject("the channel is terminated"))
        } else if request.base_cid() != Some(&state.base_cid) {
            Some(reject("the root differs"))
        } else if request.selector().is_none() {
            Some(reject("the selector is missing"))
        } else {
            match state.voucher() {
                Some(original)
                    if &original.voucher_type == request.voucher_type()
                        && Some(&original.node) == request.voucher() =>
                {
                    None
                }
                Some(original)
                    if &original.voucher_type == request.voucher_type()
                        && original.node.is_null()
                        && request.voucher().is_none() =>
                {
                    None
                }
                _ => Some(reject("the voucher differs from the original one")),
            }
        };
        if let Some((reason, pull)) = mismatch {
            let response = restart_response(channel.id, false, false, TypeIdentifier::EMPTY, None);
            self.send_answer(&peer, &channel, pull, response);
            return Err(ProtocolError::RestartMismatch {
                peer,
                channel,
                reason,
            });
        }
        let voucher = state.voucher().cloned().expect("checked above");
        let kind = ValidationKind::Restart {
            pull: request.is_pull(),
            voucher,
            base_cid: state.base_cid,
            selector: request.selector().cloned().expect("checked above"),
        };
        self.ask(channel, peer, kind, now);
        Ok(())
    }

    fn handle_restart_existing(
        &mut self,
        peer: PeerId,
        request: Request,
        _now: Instant,
    ) -> Result<(), ProtocolError> {
        let channel = request.restart_channel().clone();
        let Some(state) = self.channel(&channel) else {
            return Err(ProtocolError::UnknownChannel { peer, channel });
        };
        if !state.is_initiator() || state.other_peer() != &peer {
            return Err(ProtocolError::UnknownChannel { peer, channel });
        }
        if state.status.is_terminal() {
            return Err(ProtocolError::Illegal {
                peer,
                channel,
                source: IllegalTransition::Terminated {
                    status: state.status,
                    event: EventCode::Restart,
                },
            });
        }
        self.send_restart_request(&channel);
        Ok(())
    }

    fn handle_response(
        &mut self,
        peer: PeerId,
        response: Response,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let channel = ChannelId::new(self.self_peer.clone(), peer.clone(), response.transfer_id());
        self.known(&peer, &channel)?;
        let message_type = response.message_type();
        if matches!(
            message_type,
            MessageType::Voucher | MessageType::RestartExistingChannelRequest
        ) {
            return self.unexpected(peer, channel, message_type, "response", now);
        }
        let result = self.apply_response(&peer, &channel, &response, now);
        self.snapshot(&channel);
        result
    }

    fn apply_response(
        &mut self,
        peer: &PeerId,
        channel: &ChannelId,
        response: &Response,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        if response.is_cancel() {
            return self.apply_from_peer(peer, channel, Step::Plain(EventCode::Cancel), now);
        }
        if response.is_voucher_result() && !response.empty_voucher_result() {
            if self.voucher_room(channel) {
                let result = VoucherResult::new(
                    response.voucher_result_type().clone(),
                    response.voucher_result().cloned().unwrap_or(Node::Null),
                );
                self.apply_from_peer(peer, channel, Step::NewVoucherResult(result), now)?;
            } else {
                let text = format!(
                    "too many voucher results (limit {})",
                    self.config.max_vouchers
                );
                self.apply_and_cleanup(channel, Step::WithMessage(EventCode::Error, text), now);
                return Ok(());
            }
        }
        if response.is_voucher_result() && !response.accepted() {
            let step = Step::WithMessage(EventCode::Error, REJECTED_MESSAGE.into());
            return self.apply_from_peer(peer, channel, step, now);
        }
        match response.message_type() {
            MessageType::New => {
                self.apply_from_peer(peer, channel, Step::Plain(EventCode::Accept), now)?
            }
            MessageType::Restart => {
                self.apply_from_peer(peer, channel, Step::Plain(EventCode::Restart), now)?
            }
            // A repeated Complete(Paus=true) (the responder asks again for a final voucher
            // that did not cover the debt): Go's table moves ResponderFinalizingTransferFinished
            // back to ResponderFinalizing, forgetting that the local side finished, and the
            // channel then hangs in ResponderCompleted. The engine keeps the status
            // (docs/decisions/0003-fsm-go-bugs.md).
            MessageType::Complete
                if response.is_paused()
                    && self.status(channel)
                        == Some(ChannelStatus::ResponderFinalizingTransferFinished) => {}
            MessageType::Complete if response.is_paused() => {
                let step = Step::Plain(EventCode::ResponderBeginsFinalization);
                self.apply_from_peer(peer, channel, step, now)?
            }
            MessageType::Complete => {
                let step = Step::Plain(EventCode::ResponderCompletes);
                return self.apply_from_peer(peer, channel, step, now);
            }
            _ => {}
        }
        let code = if response.is_paused() {
            EventCode::PauseResponder
        } else {
            EventCode::ResumeResponder
        };
        self.apply_from_peer(peer, channel, Step::Plain(code), now)
    }

    // ----- validation answers ---------------------------------------------------------------

    fn answer(
        &mut self,
        channel: &ChannelId,
        pending: Pending,
        validation: Validation,
        now: Instant,
    ) {
        match pending.kind {
            ValidationKind::Open {
                pull,
                voucher,
                base_cid,
                selector,
            } => self.answer_open(
                channel,
                pending.peer,
                pull,
                voucher,
                base_cid,
                selector,
                validation,
                now,
            ),
            ValidationKind::Restart { pull, .. } => {
                self.answer_restart(channel, pending.peer, pull, validation, now)
            }
            ValidationKind::Voucher { voucher } => {
                self.answer_voucher(channel, voucher, validation, now)
            }
            ValidationKind::Complete => self.complete_responder(channel, &validation, now),
            ValidationKind::PullDataSent { .. } | ValidationKind::PushDataReceived { .. } => {
                self.answer_data(channel, validation, now)
            }
        }
        self.snapshot(channel);
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_open(
        &mut self,
        channel: &ChannelId,
        initiator: PeerId,
        pull: bool,
        voucher: Voucher,
        base_cid: Cid,
        selector: Node,
        validation: Validation,
        now: Instant,
    ) {
        let (result_type, result_node) = result_parts(&validation.result);
        let paused = validation.verdict == Verdict::Pause;
        let accepted =
            validation.verdict.accepted() && (self.channels.len() < self.config.max_channels);
        let response = new_response(
            channel.id,
            accepted,
            accepted && paused,
            result_type,
            result_node,
        );
        if !accepted {
            self.send_answer(&initiator, channel, pull, response);
            if pull {
                self.transmit(Transmit::CloseChannel {
                    channel: channel.clone(),
                });
            }
            return;
        }
        let (sender, recipient) = if pull {
            (self.self_peer.clone(), initiator.clone())
        } else {
            (initiator.clone(), self.self_peer.clone())
        };
        self.insert_channel(
            channel.clone(),
            sender,
            recipient,
            voucher,
            base_cid,
            selector.clone(),
        );
        self.trace(channel, ChannelStatus::Requested, "", now);
        self.notify(channel, EventCode::Open, now);
        if let Some(result) = validation.result {
            let _ = self.apply(channel, Step::NewVoucherResult(result), now);
        }
        let _ = self.apply(channel, Step::Plain(EventCode::Accept), now);
        if paused {
            let _ = self.apply(channel, Step::Plain(EventCode::PauseResponder), now);
        }
        if pull {
            self.transmit(Transmit::Attach {
                channel: channel.clone(),
                message: response.into(),
            });
        } else {
            self.transmit(Transmit::OpenChannel {
                data_sender: initiator,
                channel: channel.clone(),
                base_cid,
                selector,
                message: response.into(),
                skip_blocks: None,
            });
            if paused {
                self.transmit(Transmit::PauseChannel {
                    channel: channel.clone(),
                });
            }
        }
    }

    fn answer_restart(
        &mut self,
        channel: &ChannelId,
        initiator: PeerId,
        pull: bool,
        validation: Validation,
        now: Instant,
    ) {
        let (result_type, result_node) = result_parts(&validation.result);
        let paused = validation.verdict == Verdict::Pause;
        let live = self
            .channel(channel)
            .is_some_and(|state| !state.status.is_terminal());
        let accepted = validation.verdict.accepted() && live;
        let response = restart_response(
            channel.id,
            accepted,
            accepted && paused,
            result_type,
            result_node,
        );
        if !accepted {
            self.send_answer(&initiator, channel, pull, response);
            if pull {
                self.transmit(Transmit::CloseChannel {
                    channel: channel.clone(),
                });
            }
            return;
        }
        if let Some(result) = validation.result {
            let _ = self.apply(channel, Step::NewVoucherResult(result), now);
        }
        let _ = self.apply(channel, Step::Plain(EventCode::Restart), now);
        if paused {
            let _ = self.apply(channel, Step::Plain(EventCode::PauseResponder), now);
        }
        let state = self.channel(channel).expect("live channel");
        if pull {
            self.transmit(Transmit::Attach {
                channel: channel.clone(),
                message: response.into(),
            });
        } else {
            let transmit = Transmit::OpenChannel {
                data_sender: initiator,
                channel: channel.clone(),
                base_cid: state.base_cid,
                selector: state.selector.clone(),
                message: response.into(),
                skip_blocks: Some(state.received_blocks_total),
            };
            self.transmit(transmit);
            if paused {
                self.transmit(Transmit::PauseChannel {
                    channel: channel.clone(),
                });
            }
        }
    }

    fn answer_voucher(
        &mut self,
        channel: &ChannelId,
        voucher: Voucher,
        validation: Validation,
        now: Instant,
    ) {
        let Some(state) = self.channel(channel) else {
            return;
        };
        if state.status.is_terminal() {
            return;
        }
        let peer = state.other_peer().clone();
        if !self.voucher_room(channel) {
            let text = format!("too many vouchers (limit {})", self.config.max_vouchers);
            self.apply_and_cleanup(channel, Step::WithMessage(EventCode::Error, text), now);
            return;
        }
        let _ = self.apply(channel, Step::NewVoucher(voucher), now);
        let finalizing = self.status(channel) == Some(ChannelStatus::Finalizing);
        let (result_type, result_node) = result_parts(&validation.result);
        let accepted = validation.verdict.accepted();
        let paused = validation.verdict == Verdict::Pause;
        let build = if finalizing {
            complete_response
        } else {
            voucher_result_response
        };
        let response = build(channel.id, accepted, paused, result_type, result_node);
        if let Some(result) = validation.result {
            let _ = self.apply(channel, Step::NewVoucherResult(result), now);
        }
        match validation.verdict {
            Verdict::Pause => {
                let _ = self.apply(channel, Step::Plain(EventCode::PauseResponder), now);
                self.send(&peer, channel, response.into());
                self.transmit(Transmit::PauseChannel {
                    channel: channel.clone(),
                });
            }
            // Go leaves a Finalizing responder in Finalizing forever when the final voucher is
            // answered with `nil` (§6.4 quirk); the engine finishes it as `ErrResume` does
            // (docs/decisions/0003-fsm-go-bugs.md).
            Verdict::Resume | Verdict::Accept if finalizing => {
                self.send(&peer, channel, response.into());
                self.apply_and_cleanup(channel, Step::Plain(EventCode::ResumeResponder), now);
            }
            Verdict::Resume => {
                self.apply_and_cleanup(channel, Step::Plain(EventCode::ResumeResponder), now);
                let resumable = matches!(
                    self.status(channel),
                    Some(
                        ChannelStatus::Requested
                            | ChannelStatus::Ongoing
                            | ChannelStatus::InitiatorPaused
                    )
                );
                if resumable {
                    self.transmit(Transmit::ResumeChannel {
                        channel: channel.clone(),
                        message: response.into(),
                    });
                } else {
                    self.send(&peer, channel, response.into());
                }
            }
            Verdict::Accept => self.send(&peer, channel, response.into()),
            Verdict::Reject(_) => {
                self.send(&peer, channel, response.into());
                self.transmit(Transmit::CloseChannel {
                    channel: channel.clone(),
                });
            }
        }
    }

    /// A counted block on the responder: asks the data question (§6.3), or adds the bytes to
    /// the open one's successor.
    fn revalidate_data(&mut self, channel: &ChannelId, kind: DataKind, size: u64, now: Instant) {
        if !self.config.revalidate_data {
            return;
        }
        let Some(entry) = self.channels.get_mut(channel) else {
            return;
        };
        let state = &entry.state;
        if state.is_initiator() || state.status.is_terminal() {
            return;
        }
        let hooked = match kind {
            DataKind::Queued => state.is_pull(),
            DataKind::Received => !state.is_pull(),
            DataKind::Sent => false,
        };
        if !hooked {
            return;
        }
        entry.unchecked = entry.unchecked.saturating_add(size);
        if !self.data_question_open(channel) {
            self.ask_data(channel, now);
        }
    }

    fn data_question_open(&self, channel: &ChannelId) -> bool {
        self.pending
            .get(channel)
            .is_some_and(|queue| queue.iter().any(|p| p.kind.is_data()))
    }

    /// Asks about the channel's unchecked bytes, if any.
    fn ask_data(&mut self, channel: &ChannelId, now: Instant) {
        let Some(entry) = self.channels.get_mut(channel) else {
            return;
        };
        if entry.unchecked == 0 || entry.state.status.is_terminal() {
            return;
        }
        let additional_bytes = std::mem::take(&mut entry.unchecked);
        let state = &entry.state;
        let kind = if state.is_pull() {
            ValidationKind::PullDataSent {
                additional_bytes,
                total: state.queued,
            }
        } else {
            ValidationKind::PushDataReceived {
                additional_bytes,
                total: state.received,
            }
        };
        let peer = state.other_peer().clone();
        self.ask(channel.clone(), peer, kind, now);
    }

    /// The answer to a data question (Go's `processRevalidationResult` after
    /// `OnPullDataSent` / `OnPushDataReceived`, §6.3).
    fn answer_data(&mut self, channel: &ChannelId, validation: Validation, now: Instant) {
        let Some(state) = self.channel(channel) else {
            return;
        };
        if state.status.is_terminal() {
            return;
        }
        let peer = state.other_peer().clone();
        let pull = state.is_pull();
        let finalizing = state.status == ChannelStatus::Finalizing;
        let silent = matches!(validation.verdict, Verdict::Accept | Verdict::Resume)
            && validation.result.is_none();
        if !silent {
            if validation.result.is_some() && !self.voucher_room(channel) {
                let text = format!(
                    "too many voucher results (limit {})",
                    self.config.max_vouchers
                );
                self.transmit(Transmit::CloseChannel {
                    channel: channel.clone(),
                });
                self.apply_and_cleanup(channel, Step::WithMessage(EventCode::Error, text), now);
                return;
            }
            let (result_type, result_node) = result_parts(&validation.result);
            let accepted = validation.verdict.accepted();
            let paused = validation.verdict == Verdict::Pause;
            let build = if finalizing {
                complete_response
            } else {
                voucher_result_response
            };
            let response = build(channel.id, accepted, paused, result_type, result_node);
            if let Some(result) = validation.result {
                let _ = self.apply(channel, Step::NewVoucherResult(result), now);
            }
            // A pull's answer rides on the block (graphsync outgoing-block extension); a
            // push's goes on the network.
            if pull {
                self.transmit(Transmit::Attach {
                    channel: channel.clone(),
                    message: response.into(),
                });
            } else {
                self.send(&peer, channel, response.into());
            }
            match validation.verdict {
                Verdict::Pause => {
                    let _ = self.apply(channel, Step::Plain(EventCode::PauseResponder), now);
                    self.transmit(Transmit::PauseChannel {
                        channel: channel.clone(),
                    });
                }
                // Go terminates the transfer on `ErrResume` from a data hook (§6.5); the
                // engine continues, as for `nil` (docs/decisions/0003-fsm-go-bugs.md).
                Verdict::Accept | Verdict::Resume => {}
                Verdict::Reject(reason) => {
                    self.transmit(Transmit::CloseChannel {
                        channel: channel.clone(),
                    });
                    self.apply_and_cleanup(
                        channel,
                        Step::WithMessage(EventCode::Error, reason),
                        now,
                    );
                    return;
                }
            }
        }
        // Bytes counted while the question was open are asked about now.
        self.ask_data(channel, now);
    }

    /// The responder's side finished: send Complete and complete, or enter finalization.
    fn complete_responder(&mut self, channel: &ChannelId, validation: &Validation, now: Instant) {
        let Some(state) = self.channel(channel) else {
            return;
        };
        if state.status.is_terminal() {
            return;
        }
        let peer = state.other_peer().clone();
        let (result_type, result_node) = result_parts(&validation.result);
        let accepted = validation.verdict.accepted();
        let paused = validation.verdict == Verdict::Pause;
        let response = complete_response(channel.id, accepted, paused, result_type, result_node);
        if let Some(result) = validation.result.clone() {
            let _ = self.apply(channel, Step::NewVoucherResult(result), now);
        }
        self.send(&peer, channel, response.into());
        let step = match &validation.verdict {
            Verdict::Pause => Step::Plain(EventCode::BeginFinalizing),
            Verdict::Accept | Verdict::Resume => Step::Plain(EventCode::Complete),
            // Go fires `Error` with a nil error here and crashes (§11 bug 11.1); the engine
            // fails the channel with the validator's reason.
            Verdict::Reject(reason) => Step::WithMessage(EventCode::Error, reason.clone()),
        };
        self.apply_and_cleanup(channel, step, now);
    }

    // ----- helpers --------------------------------------------------------------------------

    fn open(
        &mut self,
        peer: PeerId,
        pull: bool,
        voucher: Voucher,
        base_cid: Cid,
        selector: &Node,
        now: Instant,
    ) -> Result<ChannelId, CommandError> {
        self.check_room_for_command()?;
        if self.channels.len() >= self.config.max_channels {
            return Err(CommandError::TooManyChannels {
                limit: self.config.max_channels,
            });
        }
        let id = self.next_id(&peer);
        let channel = ChannelId::new(self.self_peer.clone(), peer.clone(), id);
        let (sender, recipient) = if pull {
            (peer, self.self_peer.clone())
        } else {
            (self.self_peer.clone(), peer)
        };
        self.insert_channel(
            channel.clone(),
            sender,
            recipient,
            voucher,
            base_cid,
            selector.clone(),
        );
        self.trace(&channel, ChannelStatus::Requested, "", now);
        self.notify(&channel, EventCode::Open, now);
        self.snapshot(&channel);
        Ok(channel)
    }

    fn next_id(&mut self, responder: &PeerId) -> TransferId {
        loop {
            self.next_transfer_id = self.next_transfer_id.wrapping_add(1) & TransferId::MAX_WIRE;
            let id = TransferId(self.next_transfer_id);
            let channel = ChannelId::new(self.self_peer.clone(), responder.clone(), id);
            if !self.channels.contains_key(&channel) {
                return id;
            }
        }
    }

    fn insert_channel(
        &mut self,
        channel: ChannelId,
        sender: PeerId,
        recipient: PeerId,
        voucher: Voucher,
        base_cid: Cid,
        selector: Node,
    ) {
        let state = ChannelState {
            self_peer: self.self_peer.clone(),
            channel_id: channel.clone(),
            base_cid,
            selector,
            sender,
            recipient,
            total_size: 0,
            status: ChannelStatus::Requested,
            queued: 0,
            sent: 0,
            received: 0,
            message: String::new(),
            vouchers: vec![voucher],
            voucher_results: Vec::new(),
            received_blocks_total: 0,
            queued_blocks_total: 0,
            sent_blocks_total: 0,
            stages: ChannelStages::default(),
        };
        let cache = BlockCache::from_state(&state);
        self.channels.insert(
            channel,
            Channel {
                state: Arc::new(state),
                cache,
                unchecked: 0,
            },
        );
    }

    fn send_restart_request(&mut self, channel: &ChannelId) {
        let state = self.channel(channel).expect("caller checked the channel");
        let voucher = state.voucher().cloned().unwrap_or(Voucher {
            voucher_type: TypeIdentifier::EMPTY,
            node: Node::Null,
        });
        let pull = state.is_pull();
        let request = restart_request(
            channel.id,
            pull,
            voucher.voucher_type,
            voucher.node,
            state.base_cid,
            state.selector.clone(),
        );
        let peer = state.other_peer().clone();
        let transmit = if pull {
            Transmit::OpenChannel {
                data_sender: peer,
                channel: channel.clone(),
                base_cid: state.base_cid,
                selector: state.selector.clone(),
                message: request.into(),
                skip_blocks: Some(state.received_blocks_total),
            }
        } else {
            Transmit::Message {
                peer,
                channel: channel.clone(),
                message: request.into(),
            }
        };
        self.transmit(transmit);
    }

    /// Sends the answer to an open or restart request: inside the transport for a pull (the
    /// request came in a graphsync request), on the network for a push.
    fn send_answer(&mut self, peer: &PeerId, channel: &ChannelId, pull: bool, response: Response) {
        if pull {
            self.transmit(Transmit::Attach {
                channel: channel.clone(),
                message: response.into(),
            });
        } else {
            self.send(peer, channel, response.into());
        }
    }

    fn send(&mut self, peer: &PeerId, channel: &ChannelId, message: Message) {
        self.transmit(Transmit::Message {
            peer: peer.clone(),
            channel: channel.clone(),
            message,
        });
    }

    fn ask(&mut self, channel: ChannelId, peer: PeerId, kind: ValidationKind, now: Instant) {
        if self.pending_count >= self.config.max_pending_validations {
            // Answer at once rather than queue without bound.
            let pending = Pending {
                kind,
                deadline: now,
                peer,
            };
            let reject = Validation::new(Verdict::Reject("too many pending validations".into()));
            self.answer(&channel, pending, reject, now);
            return;
        }
        self.events
            .push_back(Event::ValidationRequested(ValidationRequest {
                channel: channel.clone(),
                kind: kind.clone(),
            }));
        let deadline = now
            .checked_add(self.config.validation_timeout)
            .unwrap_or(now);
        self.pending.entry(channel).or_default().push_back(Pending {
            kind,
            deadline,
            peer,
        });
        self.pending_count += 1;
    }

    fn take_pending(&mut self, channel: &ChannelId) -> Option<Pending> {
        let queue = self.pending.get_mut(channel)?;
        let pending = queue.pop_front();
        if queue.is_empty() {
            self.pending.remove(channel);
        }
        if pending.is_some() {
            self.pending_count -= 1;
        }
        pending
    }

    fn unexpected(
        &mut self,
        peer: PeerId,
        channel: ChannelId,
        message_type: MessageType,
        direction: &'static str,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let error = ProtocolError::UnexpectedMessage {
            peer,
            channel: channel.clone(),
            message_type,
            direction,
        };
        if self.channels.contains_key(&channel) {
            self.apply_and_cleanup(
                &channel,
                Step::WithMessage(EventCode::Error, error.to_string()),
                now,
            );
            self.snapshot(&channel);
        }
        Err(error)
    }

    fn known(&self, peer: &PeerId, channel: &ChannelId) -> Result<(), ProtocolError> {
        if self.channels.contains_key(channel) {
            Ok(())
        } else {
            Err(ProtocolError::UnknownChannel {
                peer: peer.clone(),
                channel: channel.clone(),
            })
        }
    }

    fn voucher_room(&self, channel: &ChannelId) -> bool {
        self.channel(channel).is_some_and(|state| {
            state.vouchers.len() + state.voucher_results.len() < self.config.max_vouchers
        })
    }

    fn state(&self, channel: &ChannelId) -> Result<&ChannelState, CommandError> {
        self.channel(channel)
            .ok_or_else(|| CommandError::UnknownChannel {
                channel: channel.clone(),
            })
    }

    fn live_state(&self, channel: &ChannelId) -> Result<&ChannelState, CommandError> {
        let state = self.state(channel)?;
        if state.status.is_terminal() {
            return Err(CommandError::Terminated {
                channel: channel.clone(),
                status: state.status,
            });
        }
        Ok(state)
    }

    fn status(&self, channel: &ChannelId) -> Option<ChannelStatus> {
        self.channel(channel).map(|state| state.status)
    }

    fn has_room(&self) -> bool {
        self.transmits.len() + MAX_OUTPUTS_PER_INPUT <= self.config.max_transmits
            && self.events.len() + MAX_OUTPUTS_PER_INPUT <= self.config.max_events
    }

    fn check_room_for_command(&self) -> Result<(), CommandError> {
        if self.has_room() {
            Ok(())
        } else {
            Err(CommandError::QueueFull)
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        self.transmits.push_back(transmit);
    }

    /// Applies a step caused by a peer message, finishing cleanup if needed; an illegal
    /// transition is dropped, as Go drops it, and reported.
    fn apply_from_peer(
        &mut self,
        peer: &PeerId,
        channel: &ChannelId,
        step: Step,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        self.apply_and_cleanup_result(channel, step, now)
            .map_err(|source| ProtocolError::Illegal {
                peer: peer.clone(),
                channel: channel.clone(),
                source,
            })
    }

    /// Applies a step from a local source; an illegal transition is dropped, as Go drops it.
    fn apply_quiet(&mut self, channel: &ChannelId, step: Step, now: Instant) {
        self.apply_and_cleanup(channel, step, now);
    }

    fn apply_and_cleanup(&mut self, channel: &ChannelId, step: Step, now: Instant) {
        let _ = self.apply_and_cleanup_result(channel, step, now);
    }

    /// Applies a step and, when the channel is then in a cleanup status, runs the cleanup
    /// entry function at once: the transport forgets the channel and `CleanupComplete` moves
    /// it to its terminal status.
    fn apply_and_cleanup_result(
        &mut self,
        channel: &ChannelId,
        step: Step,
        now: Instant,
    ) -> Result<(), IllegalTransition> {
        let status = self.apply(channel, step, now)?;
        if status.is_cleaning_up() {
            self.transmit(Transmit::CleanupChannel {
                channel: channel.clone(),
            });
            self.apply(channel, Step::Plain(EventCode::CleanupComplete), now)?;
            self.drop_pending(channel);
        }
        Ok(())
    }

    fn apply(
        &mut self,
        channel: &ChannelId,
        step: Step,
        now: Instant,
    ) -> Result<ChannelStatus, IllegalTransition> {
        let code = step.code();
        let entry = self
            .channels
            .get_mut(channel)
            .ok_or(IllegalTransition::NotAllowed {
                status: ChannelStatus::ChannelNotFoundError,
                event: code,
            })?;
        let before = entry.state.status;
        let status = Arc::make_mut(&mut entry.state).apply(&step)?;
        self.trace(channel, before, &step.log_text(), now);
        self.notify(channel, code, now);
        Ok(status)
    }

    /// Appends a trace entry to the channel's stages, under the stage named after `stage`
    /// (the status before the event, as Go's actions write it, §5.3).
    fn trace(&mut self, channel: &ChannelId, stage: ChannelStatus, message: &str, now: Instant) {
        let at = self.unix_time(now);
        let (max_stages, max_logs) = (self.config.max_stages, self.config.max_stage_logs);
        if let Some(entry) = self.channels.get_mut(channel) {
            Arc::make_mut(&mut entry.state).stages.add_log(
                stage.name(),
                message,
                at,
                max_stages,
                max_logs,
            );
        }
    }

    fn drop_pending(&mut self, channel: &ChannelId) {
        if let Some(queue) = self.pending.remove(channel) {
            self.pending_count -= queue.len();
        }
    }

    fn notify(&mut self, channel: &ChannelId, code: EventCode, now: Instant) {
        if let Some(state) = self.channel(channel) {
            let event = ChannelEvent {
                channel: channel.clone(),
                code,
                status: state.status,
                message: state.message.clone(),
                at: now,
            };
            self.events.push_back(Event::Channel(event));
        }
    }

    /// Queues a snapshot of the channel, unless the last queued event is the same snapshot
    /// (compared in place). The snapshot shares the state; the channel's next change copies
    /// it, once or twice per block.
    fn snapshot(&mut self, channel: &ChannelId) {
        let Some(state) = self.channels.get(channel).map(|c| &c.state) else {
            return;
        };
        let repeated = matches!(self.events.back(), Some(Event::Snapshot(last)) if last == state);
        if !repeated {
            let state = Arc::clone(state);
            self.events.push_back(Event::Snapshot(state));
        }
    }
}

fn result_parts(result: &Option<VoucherResult>) -> (TypeIdentifier, Option<Node>) {
    match result {
        Some(result) => (result.result_type.clone(), Some(result.node.clone())),
        None => (TypeIdentifier::EMPTY, None),
    }
}
