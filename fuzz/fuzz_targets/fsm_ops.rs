//! Fuzz target: arbitrary sequences of commands, peer messages and transport reports on two
//! `datatransfer_fsm::Engine`s (Alice and Bob) that talk to each other.
//!
//! The fuzz bytes choose each step: a command (open, pause, resume, cancel, send a voucher,
//! restart) on one node; delivering, dropping or duplicating a queued network message;
//! a message decoded from fuzz bytes with `datatransfer_message::decode_with`, or built with
//! the message constructors for a channel the node has; a transport report (opened, queued,
//! data blocks, completion, errors); an answer to an open validation question (any verdict,
//! with or without a voucher result); time passing; a node restarting from its persisted
//! snapshots. Revalidation (the data and completion questions) is on or off per node.
//!
//! Asserts: nothing panics, and after every step, for every channel a node had before: a
//! terminal status stays the same, the byte counters and block totals never decrease, the
//! voucher lists never shrink, and the output queues stay within their bounds.

#![no_main]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datatransfer_fsm::{
    ChannelState, ChannelStatus, Config, DataKind, Engine, Event, Transmit, TransportInput,
    Validation, Verdict, Voucher, VoucherResult,
};
use datatransfer_message::{
    ChannelId, Limits, Message, PeerId, TypeIdentifier, cancel_request, cancel_response,
    complete_response, decode_with, new_request, new_response, restart_existing_channel_request,
    restart_request, restart_response, update_request, update_response, voucher_request,
    voucher_result_response,
};
use ipld_dagcbor::{Map, Node};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_bytes: 4 * 1024,
    max_depth: 16,
};

/// The most messages kept in flight per node; older ones are dropped beyond it.
const MAX_IN_FLIGHT: usize = 64;

/// The fuzz bytes, read one choice at a time; reading past the end gives zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    fn small(&mut self, below: usize) -> usize {
        usize::from(self.byte()) % below.max(1)
    }

    fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.byte()) | (u64::from(self.byte()) << 8)
    }

    fn bytes(&mut self) -> &[u8] {
        let len = usize::from(self.byte()).min(self.data.len());
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        taken
    }
}

struct Peer {
    peer: PeerId,
    engine: Engine,
    /// The persisted snapshots, as the store would hold them.
    store: BTreeMap<ChannelId, ChannelState>,
    /// Channels with an open validation question, oldest first.
    questions: VecDeque<ChannelId>,
    /// Messages sent to the other node, not yet delivered.
    in_flight: VecDeque<Message>,
}

/// What the invariants compare for one channel.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    status: ChannelStatus,
    counters: [u64; 6],
    vouchers: usize,
    results: usize,
}

fn seen(state: &ChannelState) -> Seen {
    Seen {
        status: state.status,
        counters: [
            state.sent,
            state.received,
            state.queued,
            state.sent_blocks_total,
            state.received_blocks_total,
            state.queued_blocks_total,
        ],
        vouchers: state.vouchers.len(),
        results: state.voucher_results.len(),
    }
}

fn observe(nodes: &[Peer; 2]) -> BTreeMap<(usize, ChannelId), Seen> {
    let mut all = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for state in node.engine.channels() {
            all.insert((i, state.channel_id.clone()), seen(state));
        }
    }
    all
}

fn root() -> ipld_dagcbor::Cid {
    "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
        .parse()
        .expect("a valid constant cid")
}

fn selector() -> Node {
    Node::Map(Map::new().with(".", Node::empty_map()))
}

fn voucher(input: &mut Input<'_>) -> Voucher {
    Voucher::new("FuzzVoucher", Node::Integer(i128::from(input.byte() % 4)))
}

fn result(input: &mut Input<'_>) -> Option<VoucherResult> {
    input
        .bool()
        .then(|| VoucherResult::new("FuzzResult", Node::Integer(i128::from(input.byte()))))
}

fn verdict(input: &mut Input<'_>) -> Verdict {
    match input.small(4) {
        0 => Verdict::Accept,
        1 => Verdict::Pause,
        2 => Verdict::Resume,
        _ => Verdict::Reject("fuzz says no".into()),
    }
}

/// The `k`-th channel of a node, if it has any.
fn nth_channel(engine: &Engine, k: usize) -> Option<ChannelId> {
    let channels: Vec<ChannelId> = engine.channels().map(|s| s.channel_id.clone()).collect();
    (!channels.is_empty()).then(|| channels[k % channels.len()].clone())
}

/// A message for one of the node's channels, built with the constructors.
fn built_message(input: &mut Input<'_>, engine: &Engine) -> Option<Message> {
    let channel = nth_channel(engine, input.small(8))?;
    let id = channel.id;
    let accepted = input.bool();
    let paused = input.bool();
    let (result_type, result_node) = match result(input) {
        Some(r) => (r.result_type, Some(r.node)),
        None => (TypeIdentifier::EMPTY, None),
    };
    let vouch = voucher(input);
    let pull = input.bool();
    let message = match input.small(14) {
        0 => new_request(id, pull, vouch.voucher_type, vouch.node, root(), selector()).into(),
        1 => restart_request(id, pull, vouch.voucher_type, vouch.node, root(), selector()).into(),
        2 => restart_existing_channel_request(channel).into(),
        3 => cancel_request(id).into(),
        4 => update_request(id, paused).into(),
        5 => voucher_request(id, vouch.voucher_type, vouch.node).into(),
        6 => new_response(id, accepted, paused, result_type, result_node).into(),
        7 => restart_response(id, accepted, paused, result_type, result_node).into(),
        8 => voucher_result_response(id, accepted, paused, result_type, result_node).into(),
        9 | 10 => complete_response(id, accepted, paused, result_type, result_node).into(),
        11 => update_response(id, paused).into(),
        _ => cancel_response(id).into(),
    };
    Some(message)
}

fn transport_input(input: &mut Input<'_>) -> TransportInput {
    match input.small(9) {
        0 => TransportInput::Opened,
        1 => TransportInput::RequestQueued,
        2 => TransportInput::Completed(Ok(())),
        3 => TransportInput::Completed(Err("transport failed".into())),
        4 => TransportInput::SendDataError("send".into()),
        5 => TransportInput::ReceiveDataError("receive".into()),
        6 => TransportInput::RequestCancelled("cancelled".into()),
        _ => TransportInput::Data {
            kind: match input.small(3) {
                0 => DataKind::Queued,
                1 => DataKind::Sent,
                _ => DataKind::Received,
            },
            index: u64::from(input.byte() % 32),
            size: input.u64(),
            unique: input.byte() % 4 != 0,
        },
    }
}

/// Drains a node's outputs: snapshots to its store, questions to its list, messages in flight.
fn drain(node: &mut Peer) {
    let max_events = node.engine.config().max_events;
    let max_transmits = node.engine.config().max_transmits;
    let mut events = 0;
    while let Some(event) = node.engine.poll_event() {
        events += 1;
        match event {
            Event::Snapshot(state) => {
                node.store
                    .insert(state.channel_id.clone(), Arc::unwrap_or_clone(state));
            }
            Event::ValidationRequested(question) => node.questions.push_back(question.channel),
            Event::Channel(_) => {}
        }
    }
    assert!(events <= max_events, "{events} events queued");
    let mut transmits = 0;
    while let Some(transmit) = node.engine.poll_transmit() {
        transmits += 1;
        match transmit {
            Transmit::Message { message, .. }
            | Transmit::OpenChannel { message, .. }
            | Transmit::Attach { message, .. }
            | Transmit::ResumeChannel { message, .. } => {
                if node.in_flight.len() >= MAX_IN_FLIGHT {
                    node.in_flight.pop_front();
                }
                node.in_flight.push_back(message);
            }
            Transmit::PauseChannel { .. }
            | Transmit::CloseChannel { .. }
            | Transmit::CleanupChannel { .. } => {}
        }
    }
    assert!(transmits <= max_transmits, "{transmits} transmits queued");
}

fn step(input: &mut Input<'_>, nodes: &mut [Peer; 2], now: &mut Instant) {
    let i = input.small(2);
    let other = 1 - i;
    let peer = nodes[other].peer.clone();
    let t = *now;
    match input.small(12) {
        0 => {
            let v = voucher(input);
            let _ = nodes[i].engine.open_pull(peer, v, root(), selector(), t);
        }
        1 => {
            let v = voucher(input);
            let _ = nodes[i].engine.open_push(peer, v, root(), selector(), t);
        }
        2 => {
            let command = input.small(5);
            let k = input.small(8);
            let v = voucher(input);
            if let Some(channel) = nth_channel(&nodes[i].engine, k) {
                let engine = &mut nodes[i].engine;
                let _ = match command {
                    0 => engine.pause(&channel, t),
                    1 => engine.resume(&channel, t),
                    2 => engine.cancel(&channel, t),
                    3 => engine.send_voucher(&channel, v, t),
                    _ => engine.restart(&channel, t),
                };
            }
        }
        3 | 4 => {
            // Deliver the `k`-th message in flight from the other node (reordering), keep a
            // copy (duplication) or not.
            let k = input.small(8);
            let keep = input.bool();
            let queue = &mut nodes[other].in_flight;
            if !queue.is_empty() {
                let k = k % queue.len();
                let message = if keep {
                    queue[k].clone()
                } else {
                    queue.remove(k).expect("index within the queue")
                };
                let _ = nodes[i].engine.handle_message(peer, message, t);
            }
        }
        5 => {
            let k = input.small(8);
            let queue = &mut nodes[other].in_flight;
            if !queue.is_empty() {
                let k = k % queue.len();
                queue.remove(k);
            }
        }
        6 => {
            let bytes = input.bytes();
            if let Ok(message) = decode_with(bytes, &LIMITS) {
                let _ = nodes[i].engine.handle_message(peer, message, t);
            }
        }
        7 => {
            if let Some(message) = built_message(input, &nodes[i].engine) {
                let _ = nodes[i].engine.handle_message(peer, message, t);
            }
        }
        8 | 9 => {
            let k = input.small(8);
            let report = transport_input(input);
            if let Some(channel) = nth_channel(&nodes[i].engine, k) {
                let _ = nodes[i].engine.handle_transport_event(&channel, report, t);
            }
        }
        10 => {
            let v = verdict(input);
            let r = result(input);
            if let Some(channel) = nodes[i].questions.pop_front() {
                let mut answer = Validation::new(v);
                if let Some(r) = r {
                    answer = answer.with_result(r);
                }
                let _ = nodes[i].engine.handle_validation(&channel, answer, t);
            }
        }
        _ => {
            if input.bool() {
                // A node restarts from what it persisted.
                let node = &mut nodes[i];
                let mut engine = Engine::new(node.peer.clone(), node.engine.config().clone());
                engine
                    .restore(node.store.values().cloned())
                    .expect("a node's own snapshots restore");
                node.engine = engine;
                node.questions.clear();
            } else {
                *now += Duration::from_millis(u64::from(input.byte()) * 500);
                let t = *now;
                for node in nodes.iter_mut() {
                    node.engine.handle_timeout(t);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
    let flags = input.byte();
    let mut now = Instant::now();
    let config = |bit: u8| {
        Config::default()
            .with_revalidate_data(flags & bit != 0)
            .with_validate_completion(flags & (bit << 1) != 0)
            .with_validation_timeout(Duration::from_secs(10))
    };
    let node = |byte: u8, config: Config| {
        let peer = PeerId::from_bytes(vec![0, byte]);
        Peer {
            engine: Engine::new(peer.clone(), config),
            peer,
            store: BTreeMap::new(),
            questions: VecDeque::new(),
            in_flight: VecDeque::new(),
        }
    };
    let mut nodes = [node(0xaa, config(1)), node(0xbb, config(4))];
    let mut before = observe(&nodes);
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        step(&mut input, &mut nodes, &mut now);
        for node in nodes.iter_mut() {
            drain(node);
        }
        let after = observe(&nodes);
        for (key, old) in &before {
            let Some(new) = after.get(key) else {
                continue;
            };
            if old.status.is_terminal() {
                assert_eq!(new.status, old.status, "terminal absorbs: {key:?}");
            }
            for (o, n) in old.counters.iter().zip(&new.counters) {
                assert!(
                    n >= o,
                    "counters never decrease: {key:?} {old:?} -> {new:?}"
                );
            }
            assert!(
                new.vouchers >= old.vouchers && new.results >= old.results,
                "voucher lists never shrink: {key:?} {old:?} -> {new:?}"
            );
        }
        before = after;
    }
});
