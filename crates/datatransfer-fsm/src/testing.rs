//! Test helpers (feature `test-util`): [`SimNet`], a deterministic in-memory network of
//! [`Engine`]s with a virtual clock and a simple transport model, and proptest strategies.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cid::Cid;
use datatransfer_message::{ChannelId, Message, PeerId};
use ipld_dagcbor::Node;
use proptest::prelude::*;

use datatransfer_message::MessageType;

use crate::engine::{
    ChannelEvent, Config, Engine, Event, Transmit, TransportInput, Validation, ValidationKind,
    ValidationRequest, Verdict,
};
use crate::error::{CommandError, ProtocolError};
use crate::state::{ChannelState, DataKind, UnixNanos, Voucher, VoucherResult};
use crate::status::ChannelStatus;

/// The Unix time of a [`SimNet`]'s start (2023-11-14 22:13:20 UTC): every engine of the net
/// gets it as its wall-clock anchor at the start instant, so trace times are
/// `SIM_UNIX_START` plus the virtual time elapsed.
pub const SIM_UNIX_START: UnixNanos = UnixNanos(1_700_000_000_000_000_000);

/// The knobs of a [`SimNet`]: delays and fault probabilities of network messages.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Base one-way delay of every message and transport report. Default 10 ms.
    pub latency: Duration,
    /// Extra random delay of data-transfer messages, up to this much; with it, messages can
    /// overtake each other and the transport's reports. Default 0.
    pub jitter: Duration,
    /// Probability that a data-transfer message is lost (only messages within `drop_scope`).
    /// Default 0.
    pub drop: f64,
    /// Which messages `drop` may lose. Default [`FaultScope::AllMessages`].
    pub drop_scope: FaultScope,
    /// Probability that a data-transfer message is delivered twice. Default 0.
    pub duplicate: f64,
    /// Blocks in the simulated DAG every channel transfers. Default 8.
    pub blocks: u64,
    /// Size of each block in bytes. Default 1000.
    pub block_size: u64,
    /// Time between two blocks of one channel. Default 1 ms.
    pub block_interval: Duration,
    /// The engines' configuration (each node gets its own transfer-id seed on top).
    pub engine: Config,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            drop: 0.0,
            drop_scope: FaultScope::AllMessages,
            duplicate: 0.0,
            blocks: 8,
            block_size: 1000,
            block_interval: Duration::from_millis(1),
            engine: Config::default(),
        }
    }
}

/// Which data-transfer messages a [`SimNet`] may lose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultScope {
    /// Any message.
    #[default]
    AllMessages,
    /// Only the payment messages a paying client recovers from by sending its voucher again:
    /// Voucher requests and paused voucher results (payment requests). Go has no recovery for
    /// the others (a lost Complete, or a lost resume that leaves the initiator believing the
    /// responder paused, hang the channel, spec §11 item 6), so a scenario that expects
    /// completion under loss scopes it to these.
    PaymentMessages,
}

impl FaultScope {
    fn covers(self, message: &Message) -> bool {
        match self {
            FaultScope::AllMessages => true,
            FaultScope::PaymentMessages => match message {
                Message::Request(request) => request.message_type() == MessageType::Voucher,
                Message::Response(response) => {
                    response.message_type() == MessageType::VoucherResult && response.is_paused()
                }
            },
        }
    }
}

/// How a node's validator answers every question.
pub type Validator = Box<dyn FnMut(&ValidationRequest) -> Validation>;

/// A node's application on the initiator side: sees every channel event with the channel's
/// current state, and may answer with a voucher to send on that channel (a payment).
pub type Client = Box<dyn FnMut(&ChannelEvent, &ChannelState) -> Option<Voucher>>;

/// A deterministic network of `N` engines (STYLE §6).
///
/// It holds the engines, a virtual clock starting at the `Instant` given to [`SimNet::new`]
/// (and at [`SIM_UNIX_START`] on the engines' wall clocks),
/// and an in-flight queue ordered by delivery time. All randomness (jitter, drops, duplicates)
/// comes from one `u64` seed, printed when a test panics while the net is alive.
///
/// The transport model: [`Transmit::OpenChannel`] opens a pipe from the data sender to the
/// data receiver; while neither side has paused it and the sender's channel is `Ongoing`, one
/// block flows every `block_interval` (queued and sent at the sender, received at the receiver
/// one latency later), then both sides get `Completed(Ok)`. A restart's `skip_blocks` starts the
/// pipe after the skipped blocks. Messages carried by `OpenChannel`, `Attach` and
/// `ResumeChannel` travel like network messages.
///
/// # Examples
/// ```
/// use std::time::Instant;
///
/// use datatransfer_fsm::ChannelStatus;
/// use datatransfer_fsm::testing::{SimConfig, SimNet};
///
/// let mut net = SimNet::new(2, 7, SimConfig::default(), Instant::now());
/// let channel = net.open_pull(0, 1).expect("open");
/// net.run_until_idle();
/// assert_eq!(net.status(0, &channel), Some(ChannelStatus::Completed));
/// assert_eq!(net.status(1, &channel), Some(ChannelStatus::Completed));
/// ```
pub struct SimNet {
    config: SimConfig,
    seed: u64,
    rng: SplitMix64,
    start: Instant,
    now: Instant,
    nodes: Vec<SimNode>,
    in_flight: BinaryHeap<Reverse<(Instant, u64)>>,
    deliveries: BTreeMap<u64, Delivery>,
    next_seq: u64,
    pipes: BTreeMap<ChannelId, Pipe>,
}

struct SimNode {
    peer: PeerId,
    engine: Engine,
    validator: Validator,
    client: Option<Client>,
    snapshots: BTreeMap<ChannelId, ChannelState>,
    events: Vec<ChannelEvent>,
    errors: Vec<ProtocolError>,
    /// The most transmits and events found queued at one drain.
    peak_queues: (usize, usize),
}

#[derive(Debug)]
enum Delivery {
    Message {
        to: usize,
        from: PeerId,
        message: Box<Message>,
    },
    Transport {
        to: usize,
        channel: ChannelId,
        input: TransportInput,
    },
}

#[derive(Clone, Debug)]
struct Pipe {
    sender: usize,
    receiver: usize,
    next_index: u64,
    sender_paused: bool,
    receiver_paused: bool,
    pump_at: Option<Instant>,
}

impl SimNet {
    /// `nodes` engines with peer ids `[0, i]`, all validators accepting, the clock at `start`.
    pub fn new(nodes: usize, seed: u64, config: SimConfig, start: Instant) -> Self {
        let nodes = (0..nodes)
            .map(|i| {
                let peer = PeerId::from_bytes(vec![0, u8::try_from(i).unwrap_or(u8::MAX)]);
                let engine_config = config
                    .engine
                    .clone()
                    .with_transfer_id_seed((i as u64 + 1) * 1_000_000);
                let mut engine = Engine::new(peer.clone(), engine_config);
                engine.handle_wall_clock(start, SIM_UNIX_START);
                SimNode {
                    engine,
                    peer,
                    validator: Box::new(|_| Validation::new(Verdict::Accept)),
                    client: None,
                    snapshots: BTreeMap::new(),
                    events: Vec::new(),
                    errors: Vec::new(),
                    peak_queues: (0, 0),
                }
            })
            .collect();
        SimNet {
            config,
            seed,
            rng: SplitMix64(seed),
            start,
            now: start,
            nodes,
            in_flight: BinaryHeap::new(),
            deliveries: BTreeMap::new(),
            next_seq: 0,
            pipes: BTreeMap::new(),
        }
    }

    /// The seed all randomness comes from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The peer id of node `i`.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn peer(&self, i: usize) -> PeerId {
        self.nodes[i].peer.clone()
    }

    /// The engine of node `i`.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn engine(&self, i: usize) -> &Engine {
        &self.nodes[i].engine
    }

    /// The status of `channel` at node `i`, if it has the channel.
    pub fn status(&self, i: usize, channel: &ChannelId) -> Option<ChannelStatus> {
        self.nodes.get(i)?.engine.channel(channel).map(|s| s.status)
    }

    /// Every channel event node `i` reported, in order.
    pub fn events(&self, i: usize) -> &[ChannelEvent] {
        &self.nodes[i].events
    }

    /// Every protocol error node `i`'s engine returned, in order.
    pub fn errors(&self, i: usize) -> &[ProtocolError] {
        &self.nodes[i].errors
    }

    /// The most transmits and the most events node `i` had queued when drained (events are
    /// counted over one drain pass, answers to questions included).
    pub fn peak_queues(&self, i: usize) -> (usize, usize) {
        self.nodes[i].peak_queues
    }

    /// The last persisted snapshot of `channel` at node `i`.
    pub fn snapshot(&self, i: usize, channel: &ChannelId) -> Option<&ChannelState> {
        self.nodes.get(i)?.snapshots.get(channel)
    }

    /// Replaces node `i`'s validator.
    pub fn set_validator(&mut self, i: usize, validator: Validator) {
        self.nodes[i].validator = validator;
    }

    /// Gives node `i` a client application; its vouchers are sent with
    /// [`Engine::send_voucher`] right after the event that prompted them.
    pub fn set_client(&mut self, i: usize, client: Client) {
        self.nodes[i].client = Some(client);
    }

    /// Node `from` pulls the simulated DAG from node `to`.
    ///
    /// # Errors
    /// The engine's [`CommandError`].
    pub fn open_pull(&mut self, from: usize, to: usize) -> Result<ChannelId, CommandError> {
        let peer = self.peer(to);
        self.command(from, |engine, now| {
            engine.open_pull(peer, sim_voucher(), sim_root(), sim_selector(), now)
        })
    }

    /// Node `from` pushes the simulated DAG to node `to`.
    ///
    /// # Errors
    /// The engine's [`CommandError`].
    pub fn open_push(&mut self, from: usize, to: usize) -> Result<ChannelId, CommandError> {
        let peer = self.peer(to);
        self.command(from, |engine, now| {
            engine.open_push(peer, sim_voucher(), sim_root(), sim_selector(), now)
        })
    }

    /// Runs a command on node `i`'s engine at the current time, then drains its outputs.
    pub fn command<R>(&mut self, i: usize, f: impl FnOnce(&mut Engine, Instant) -> R) -> R {
        let now = self.now;
        let result = f(&mut self.nodes[i].engine, now);
        self.drain(i);
        result
    }

    /// Restarts node `i` from its persisted snapshots: a fresh engine, `restore`, and the
    /// node's transport pipes are gone. Messages in flight still arrive.
    ///
    /// # Panics
    /// If the node's own snapshots do not restore (they always belong to it).
    pub fn restart_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let config = node.engine.config().clone();
        let mut engine = Engine::new(node.peer.clone(), config);
        engine.handle_wall_clock(self.start, SIM_UNIX_START);
        engine
            .restore(node.snapshots.values().cloned())
            .expect("a node's own snapshots restore");
        node.engine = engine;
        self.pipes
            .retain(|_, pipe| pipe.sender != i && pipe.receiver != i);
    }

    /// Advances to the next delivery, block or timeout and processes it. Returns false when
    /// nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.refresh_pipes();
        let next_delivery = self.in_flight.peek().map(|Reverse((at, _))| *at);
        let next_block = self.pipes.values().filter_map(|p| p.pump_at).min();
        let next_timeout = self
            .nodes
            .iter()
            .filter_map(|node| node.engine.poll_timeout())
            .min();
        let Some(next) = [next_delivery, next_block, next_timeout]
            .into_iter()
            .flatten()
            .min()
        else {
            return false;
        };
        self.now = self.now.max(next);
        if next_delivery == Some(next) {
            let Reverse((_, seq)) = self.in_flight.pop().expect("peeked");
            if let Some(delivery) = self.deliveries.remove(&seq) {
                self.deliver(delivery);
            }
        } else if next_block == Some(next) {
            self.pump();
        } else {
            for i in 0..self.nodes.len() {
                let now = self.now;
                self.nodes[i].engine.handle_timeout(now);
                self.drain(i);
            }
        }
        true
    }

    /// Steps until nothing is left to do (or a safety bound of one million steps).
    pub fn run_until_idle(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
    }

    /// Steps until the clock would pass `now + duration`, then sets it there.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..1_000_000 {
            self.refresh_pipes();
            let next = [
                self.in_flight.peek().map(|Reverse((at, _))| *at),
                self.pipes.values().filter_map(|p| p.pump_at).min(),
                self.nodes
                    .iter()
                    .filter_map(|n| n.engine.poll_timeout())
                    .min(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
    }

    fn node_of(&self, peer: &PeerId) -> Option<usize> {
        self.nodes.iter().position(|node| &node.peer == peer)
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.config.jitter.as_nanos() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            self.rng.next() % (jitter + 1)
        };
        self.config.latency + Duration::from_nanos(extra)
    }

    fn schedule(&mut self, delivery: Delivery) {
        // Transport reports of one channel stay in order (a graphsync stream is ordered), so
        // only data-transfer messages get jitter.
        let delay = match delivery {
            Delivery::Message { .. } => self.delay(),
            Delivery::Transport { .. } => self.config.latency,
        };
        let at = self.now + delay;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(Reverse((at, seq)));
        self.deliveries.insert(seq, delivery);
    }

    fn send_message(&mut self, from: usize, to: usize, message: Message) {
        if self.config.drop_scope.covers(&message) && self.rng.chance(self.config.drop) {
            return;
        }
        let copies = if self.rng.chance(self.config.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let from = self.nodes[from].peer.clone();
            self.schedule(Delivery::Message {
                to,
                from,
                message: Box::new(message.clone()),
            });
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now;
        match delivery {
            Delivery::Message { to, from, message } => {
                if let Err(error) = self.nodes[to].engine.handle_message(from, *message, now) {
                    self.nodes[to].errors.push(error);
                }
                self.drain(to);
            }
            Delivery::Transport { to, channel, input } => {
                // A report for a channel the (restarted) node no longer has is stale.
                let _ = self.nodes[to]
                    .engine
                    .handle_transport_event(&channel, input, now);
                self.drain(to);
            }
        }
    }

    /// Drains node `i`'s outputs: persists snapshots, answers questions, routes transmits.
    fn drain(&mut self, i: usize) {
        loop {
            let mut moved = false;
            let mut events = 0;
            let mut payments = Vec::new();
            while let Some(event) = self.nodes[i].engine.poll_event() {
                moved = true;
                events += 1;
                match event {
                    Event::Snapshot(state) => {
                        self.nodes[i]
                            .snapshots
                            .insert(state.channel_id.clone(), Arc::unwrap_or_clone(state));
                    }
                    Event::Channel(event) => {
                        let node = &mut self.nodes[i];
                        if let (Some(client), Some(state)) =
                            (node.client.as_mut(), node.engine.channel(&event.channel))
                            && let Some(voucher) = client(&event, state)
                        {
                            payments.push((event.channel.clone(), voucher));
                        }
                        node.events.push(event);
                    }
                    Event::ValidationRequested(question) => {
                        let node = &mut self.nodes[i];
                        let answer = (node.validator)(&question);
                        let _ = node
                            .engine
                            .handle_validation(&question.channel, answer, self.now);
                    }
                }
            }
            for (channel, voucher) in payments {
                // A command error (the channel ended meanwhile) is the client's problem.
                let _ = self.nodes[i]
                    .engine
                    .send_voucher(&channel, voucher, self.now);
            }
            let transmits: Vec<Transmit> =
                std::iter::from_fn(|| self.nodes[i].engine.poll_transmit()).collect();
            let peak = &mut self.nodes[i].peak_queues;
            *peak = (peak.0.max(transmits.len()), peak.1.max(events));
            for transmit in transmits {
                moved = true;
                self.route(i, transmit);
            }
            if !moved {
                return;
            }
        }
    }

    fn other_node(&self, i: usize, channel: &ChannelId) -> Option<usize> {
        let other = channel.other_party(&self.nodes[i].peer).clone();
        self.node_of(&other)
    }

    fn route(&mut self, i: usize, transmit: Transmit) {
        match transmit {
            Transmit::Message { peer, message, .. } => {
                if let Some(to) = self.node_of(&peer) {
                    self.send_message(i, to, message);
                }
            }
            Transmit::OpenChannel {
                data_sender,
                channel,
                message,
                skip_blocks,
                ..
            } => {
                let Some(sender) = self.node_of(&data_sender) else {
                    return;
                };
                self.pipes.insert(
                    channel.clone(),
                    Pipe {
                        sender,
                        receiver: i,
                        next_index: skip_blocks.unwrap_or(0) + 1,
                        sender_paused: false,
                        receiver_paused: false,
                        pump_at: None,
                    },
                );
                self.schedule(Delivery::Transport {
                    to: i,
                    channel: channel.clone(),
                    input: TransportInput::Opened,
                });
                self.send_message(i, sender, message);
                self.schedule(Delivery::Transport {
                    to: sender,
                    channel,
                    input: TransportInput::RequestQueued,
                });
            }
            Transmit::Attach { channel, message } => {
                if let Some(to) = self.other_node(i, &channel) {
                    self.send_message(i, to, message);
                }
            }
            Transmit::ResumeChannel { channel, message } => {
                self.set_paused(i, &channel, false);
                if let Some(to) = self.other_node(i, &channel) {
                    self.send_message(i, to, message);
                }
            }
            Transmit::PauseChannel { channel } => self.set_paused(i, &channel, true),
            Transmit::CloseChannel { channel } | Transmit::CleanupChannel { channel } => {
                self.pipes.remove(&channel);
            }
        }
    }

    fn set_paused(&mut self, i: usize, channel: &ChannelId, paused: bool) {
        if let Some(pipe) = self.pipes.get_mut(channel) {
            if pipe.sender == i {
                pipe.sender_paused = paused;
            }
            if pipe.receiver == i {
                pipe.receiver_paused = paused;
            }
        }
    }

    /// Gives flowing pipes a time for their next block and stops the others.
    fn refresh_pipes(&mut self) {
        let now = self.now;
        let interval = self.config.block_interval;
        let flowing: Vec<(ChannelId, bool)> = self
            .pipes
            .iter()
            .map(|(channel, pipe)| {
                let sender_ok = self.status(pipe.sender, channel) == Some(ChannelStatus::Ongoing);
                let receiver_live = self
                    .status(pipe.receiver, channel)
                    .is_some_and(|s| !s.is_terminal());
                let flows =
                    sender_ok && receiver_live && !pipe.sender_paused && !pipe.receiver_paused;
                (channel.clone(), flows)
            })
            .collect();
        for (channel, flows) in flowing {
            let pipe = self.pipes.get_mut(&channel).expect("listed above");
            if !flows {
                pipe.pump_at = None;
            } else if pipe.pump_at.is_none() {
                pipe.pump_at = Some(now + interval);
            }
        }
    }

    /// Moves one block on every pipe whose time has come.
    fn pump(&mut self) {
        let now = self.now;
        let due: Vec<ChannelId> = self
            .pipes
            .iter()
            .filter(|(_, pipe)| pipe.pump_at.is_some_and(|at| at <= now))
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in due {
            let Some(pipe) = self.pipes.get_mut(&channel) else {
                continue;
            };
            pipe.pump_at = None;
            let (sender, receiver) = (pipe.sender, pipe.receiver);
            if pipe.next_index > self.config.blocks {
                self.pipes.remove(&channel);
                for to in [sender, receiver] {
                    self.schedule(Delivery::Transport {
                        to,
                        channel: channel.clone(),
                        input: TransportInput::Completed(Ok(())),
                    });
                }
                continue;
            }
            let index = pipe.next_index;
            pipe.next_index += 1;
            let size = self.config.block_size;
            // The sender's outgoing-block hook: report the block and let the node answer its
            // data question before anything else (a pause takes effect after this block, as
            // in graphsync), then the block is sent.
            for kind in [DataKind::Queued, DataKind::Sent] {
                let input = TransportInput::Data {
                    kind,
                    index,
                    size,
                    unique: true,
                };
                let _ = self.nodes[sender]
                    .engine
                    .handle_transport_event(&channel, input, now);
                self.drain(sender);
            }
            self.schedule(Delivery::Transport {
                to: receiver,
                channel,
                input: TransportInput::Data {
                    kind: DataKind::Received,
                    index,
                    size,
                    unique: true,
                },
            });
        }
    }
}

impl fmt::Debug for SimNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNet")
            .field("seed", &self.seed)
            .field("elapsed", &self.elapsed())
            .field("nodes", &self.nodes.len())
            .field("in_flight", &self.in_flight.len())
            .field("pipes", &self.pipes)
            .finish()
    }
}

impl Drop for SimNet {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("SimNet seed: {}", self.seed);
        }
    }
}

/// The voucher-result type of [`paid_provider`]'s payment requests.
pub const SIM_INVOICE: &str = "SimInvoice";
/// The voucher type of [`paying_client`]'s payments.
pub const SIM_PAYMENT: &str = "SimPayment";

/// A payment voucher: the cumulative amount paid on the channel (one unit per byte).
pub fn sim_payment(amount: u64) -> Voucher {
    Voucher::new(SIM_PAYMENT, Node::Integer(i128::from(amount)))
}

/// A payment request: the cumulative amount owed on the channel.
pub fn sim_invoice(amount: u64) -> VoucherResult {
    VoucherResult::new(SIM_INVOICE, Node::Integer(i128::from(amount)))
}

/// The amount of a [`sim_invoice`], if `result` is one.
pub fn invoice_amount(result: &VoucherResult) -> Option<u64> {
    match (
        &result.node,
        result.result_type.as_bytes() == SIM_INVOICE.as_bytes(),
    ) {
        (Node::Integer(amount), true) => u64::try_from(*amount).ok(),
        _ => None,
    }
}

/// The amount of a [`sim_payment`], if `voucher` is one.
pub fn payment_amount(voucher: &Voucher) -> Option<u64> {
    match (
        &voucher.node,
        voucher.voucher_type.as_bytes() == SIM_PAYMENT.as_bytes(),
    ) {
        (Node::Integer(amount), true) => u64::try_from(*amount).ok(),
        _ => None,
    }
}

/// What a [`paid_provider`] knows about one channel.
#[derive(Clone, Copy, Debug, Default)]
struct Books {
    delivered: u64,
    paid: u64,
    settling: bool,
}

/// The provider's validator of a paid retrieval (Filecoin's pattern, spec §6.4): it accepts
/// every request, pauses with a payment request ([`sim_invoice`] of everything delivered)
/// whenever `interval` or more bytes are unpaid, resumes once a voucher covers the debt,
/// and always asks for a final voucher on completion (`OnComplete` → `Pause`), settling when
/// everything delivered is paid. Run it on an engine with [`Config::with_revalidation`].
pub fn paid_provider(interval: u64) -> Validator {
    let mut books: BTreeMap<ChannelId, Books> = BTreeMap::new();
    Box::new(move |question| {
        let books = books.entry(question.channel.clone()).or_default();
        let owed = |books: &Books| {
            Validation::new(Verdict::Pause).with_result(sim_invoice(books.delivered))
        };
        match &question.kind {
            ValidationKind::Open { .. } | ValidationKind::Restart { .. } => {
                Validation::new(Verdict::Accept)
            }
            ValidationKind::PullDataSent {
                additional_bytes, ..
            }
            | ValidationKind::PushDataReceived {
                additional_bytes, ..
            } => {
                books.delivered = books.delivered.saturating_add(*additional_bytes);
                if books.delivered >= books.paid.saturating_add(interval) {
                    owed(books)
                } else {
                    Validation::new(Verdict::Accept)
                }
            }
            ValidationKind::Voucher { voucher } => {
                let Some(amount) = payment_amount(voucher) else {
                    return Validation::new(Verdict::Reject("not a payment".into()));
                };
                books.paid = books.paid.max(amount);
                let covered = if books.settling {
                    books.paid >= books.delivered
                } else {
                    books.delivered < books.paid.saturating_add(interval)
                };
                if covered {
                    Validation::new(Verdict::Resume)
                } else {
                    owed(books)
                }
            }
            ValidationKind::Complete => {
                books.settling = true;
                owed(books)
            }
        }
    })
}

/// The client of a paid retrieval: on every payment request ([`sim_invoice`]) recorded on a
/// channel it initiated, it pays the amount asked ([`sim_payment`]).
pub fn paying_client() -> Client {
    Box::new(|event, state| {
        if event.code != crate::EventCode::NewVoucherResult || !state.is_initiator() {
            return None;
        }
        let amount = invoice_amount(state.last_voucher_result()?)?;
        Some(sim_payment(amount))
    })
}

/// The voucher every simulated channel opens with.
pub fn sim_voucher() -> Voucher {
    Voucher::new("SimVoucher", Node::text("sim"))
}

/// The root every simulated channel transfers.
///
/// # Panics
/// Never: the CID is a valid constant.
pub fn sim_root() -> Cid {
    "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
        .parse()
        .expect("a valid constant cid")
}

/// The selector every simulated channel uses ("everything").
pub fn sim_selector() -> Node {
    Node::Map(ipld_dagcbor::Map::new().with(".", Node::empty_map()))
}

/// One thing to do to a [`SimNet`] of two nodes, for property tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimOp {
    /// Node `.0` pulls from the other node.
    OpenPull(usize),
    /// Node `.0` pushes to the other node.
    OpenPush(usize),
    /// Node `.0` pauses its `.1`-th channel (modulo the count).
    Pause(usize, usize),
    /// Node `.0` resumes its `.1`-th channel.
    Resume(usize, usize),
    /// Node `.0` cancels its `.1`-th channel.
    Cancel(usize, usize),
    /// Node `.0` sends a voucher on its `.1`-th channel.
    SendVoucher(usize, usize),
    /// Node `.0` restarts its `.1`-th channel.
    Restart(usize, usize),
    /// Node `.0` restarts from its snapshots.
    RestartNode(usize),
    /// Let this many milliseconds of virtual time pass.
    RunFor(u64),
}

impl SimOp {
    /// Applies the operation to a two-node net; command errors are part of the game.
    pub fn apply(&self, net: &mut SimNet) {
        let nth = |net: &SimNet, node: usize, k: usize| {
            let channels: Vec<ChannelId> = net
                .engine(node)
                .channels()
                .map(|s| s.channel_id.clone())
                .collect();
            (!channels.is_empty()).then(|| channels[k % channels.len()].clone())
        };
        match *self {
            SimOp::OpenPull(node) => {
                let _ = net.open_pull(node, 1 - node);
            }
            SimOp::OpenPush(node) => {
                let _ = net.open_push(node, 1 - node);
            }
            SimOp::Pause(node, k)
            | SimOp::Resume(node, k)
            | SimOp::Cancel(node, k)
            | SimOp::SendVoucher(node, k)
            | SimOp::Restart(node, k) => {
                let Some(channel) = nth(net, node, k) else {
                    return;
                };
                let op = self.clone();
                let _ = net.command(node, |engine, now| match op {
                    SimOp::Pause(..) => engine.pause(&channel, now),
                    SimOp::Resume(..) => engine.resume(&channel, now),
                    SimOp::Cancel(..) => engine.cancel(&channel, now),
                    SimOp::SendVoucher(..) => engine.send_voucher(&channel, sim_voucher(), now),
                    _ => engine.restart(&channel, now),
                });
            }
            SimOp::RestartNode(node) => net.restart_node(node),
            SimOp::RunFor(ms) => net.run_for(Duration::from_millis(ms)),
        }
    }
}

/// An arbitrary [`SimOp`] for a two-node net.
pub fn arb_sim_op() -> impl Strategy<Value = SimOp> {
    let node = 0..2usize;
    let k = 0..4usize;
    prop_oneof![
        2 => node.clone().prop_map(SimOp::OpenPull),
        2 => node.clone().prop_map(SimOp::OpenPush),
        1 => (node.clone(), k.clone()).prop_map(|(n, k)| SimOp::Pause(n, k)),
        1 => (node.clone(), k.clone()).prop_map(|(n, k)| SimOp::Resume(n, k)),
        1 => (node.clone(), k.clone()).prop_map(|(n, k)| SimOp::Cancel(n, k)),
        1 => (node.clone(), k.clone()).prop_map(|(n, k)| SimOp::SendVoucher(n, k)),
        1 => (node.clone(), k).prop_map(|(n, k)| SimOp::Restart(n, k)),
        1 => node.prop_map(SimOp::RestartNode),
        3 => (0..30u64).prop_map(SimOp::RunFor),
    ]
}

/// SplitMix64: a tiny, seedable generator (no OS randomness).
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, probability: f64) -> bool {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        probability > 0.0 && unit < probability
    }
}
