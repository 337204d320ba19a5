//! The driver task: owns both cores, answers what they ask (hooks synchronously, block loads
//! and puts in spawned store tasks), and moves their messages between the stream tasks and
//! the [`Node`](super::Node) handles.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::task::noop_waker_ref;
use ipld_selector::Selector;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::behaviour::{Accepted, Disconnects};
use super::hooks::{
    IncomingBlock, IncomingBlockActions, IncomingRequestActions, IncomingResponse,
    IncomingResponseActions, NetworkFailure, OutgoingBlockActions, OutgoingRequest,
    OutgoingRequestActions, Registry, RequestUpdatedActions,
};
use super::report_order::ReportOrder;
use super::store::{DynBlockstore, Stores};
use super::streams::{Inbound, Outbound, PeerWire, read_stream, spawn_writer};
use super::{Config, NodeError, RequestEvent, RequestHandle, RequestStats, Stats};
use crate::extension::{self, Extensions};
use crate::message::{Message, Request, RequestId, RequestKind};
use crate::requester::{self, Outcome, Requester};
use crate::responder::{self, MessageId, RequestDecision, Responder};

/// A command from a [`Node`](super::Node) handle.
pub(super) enum Command {
    Request {
        peer: PeerId,
        root: Cid,
        selector: Box<Selector>,
        extensions: Extensions,
        reply: oneshot::Sender<Result<RequestHandle, NodeError>>,
    },
    Cancel {
        request: RequestId,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Pause {
        request: RequestId,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Unpause {
        request: RequestId,
        extensions: Extensions,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Update {
        request: RequestId,
        extensions: Extensions,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    PauseResponse {
        peer: PeerId,
        request: RequestId,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    UnpauseResponse {
        peer: PeerId,
        request: RequestId,
        extensions: Extensions,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    ResponseUpdate {
        peer: PeerId,
        request: RequestId,
        extensions: Extensions,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    CancelResponse {
        peer: PeerId,
        request: RequestId,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    Stats {
        reply: oneshot::Sender<Result<Stats, NodeError>>,
    },
}

/// Where a request's progress and outcome go, and which store serves it.
struct Subscriber {
    peer: PeerId,
    events: mpsc::Sender<RequestEvent>,
    outcome: oneshot::Sender<Result<Outcome, NodeError>>,
    store: Arc<dyn DynBlockstore>,
}

/// A response this node serves: the request as received and the store it reads.
struct Served {
    request: Request,
    store: Arc<dyn DynBlockstore>,
}

/// What a written (or failed) message carried, for the report.
enum Sent {
    /// A responder message.
    Response(MessageId),
    /// A requester message with these New requests.
    Requests(Vec<RequestId>),
}

/// A message's send result: the peer, the message's place in the peer's queue, what it
/// carried and whether it was written.
type SendReport = Pin<Box<dyn Future<Output = (PeerId, u64, Sent, bool)> + Send>>;

/// A blockstore call waiting for a slot.
enum Job {
    ResponderLoad {
        peer: PeerId,
        request: RequestId,
        cid: Cid,
        store: Arc<dyn DynBlockstore>,
    },
    RequesterLoad {
        request: RequestId,
        cid: Cid,
        store: Arc<dyn DynBlockstore>,
    },
    Put {
        request: RequestId,
        cid: Cid,
        data: Bytes,
        store: Arc<dyn DynBlockstore>,
    },
}

impl Job {
    /// What the call reports if its task fails: nothing loaded, the put over.
    fn failed(&self) -> JobDone {
        match self {
            Job::ResponderLoad {
                peer, request, cid, ..
            } => JobDone::ResponderLoad {
                peer: *peer,
                request: *request,
                cid: *cid,
                data: None,
            },
            Job::RequesterLoad { request, cid, .. } => JobDone::RequesterLoad {
                request: *request,
                cid: *cid,
                data: None,
            },
            Job::Put { request, cid, .. } => JobDone::Put {
                request: *request,
                cid: *cid,
            },
        }
    }
}

/// A finished blockstore call.
enum JobDone {
    ResponderLoad {
        peer: PeerId,
        request: RequestId,
        cid: Cid,
        data: Option<Bytes>,
    },
    RequesterLoad {
        request: RequestId,
        cid: Cid,
        data: Option<Bytes>,
    },
    Put {
        request: RequestId,
        cid: Cid,
    },
}

/// A requester event held back until the puts of the blocks before it have finished.
enum Held {
    /// A verified block, reported (hooks and event) once no put of its CID is pending.
    Block {
        cid: Cid,
        path: ipld_selector::Path,
        size: u64,
        wire_size: u64,
        index: u64,
        /// Whether the requester still waits for this block's decision.
        awaits_decision: bool,
    },
    /// Another event of the request, passed on in order after the blocks before it.
    Event(requester::Event<PeerId>),
}

/// Counters behind [`Stats`].
#[derive(Default)]
struct Counters {
    blocks_sent: u64,
    bytes_sent: u64,
    blocks_received: u64,
    bytes_received: u64,
    messages_sent: u64,
    messages_received: u64,
    messages_failed: u64,
}

/// The driver task's state.
pub(super) struct Driver {
    config: Config,
    store: Arc<dyn DynBlockstore>,
    control: libp2p_stream::Control,
    responder: Responder<PeerId>,
    requester: Requester<PeerId>,
    hooks: Arc<Registry>,
    stores: Arc<Stores>,
    writers: HashMap<PeerId, mpsc::Sender<Outbound>>,
    /// Messages for a peer whose writer queue is full, in order.
    overflow: HashMap<PeerId, VecDeque<Outbound>>,
    /// Waits for room in a writer's queue.
    room: FuturesUnordered<BoxFuture<'static, PeerId>>,
    /// Timers of requests waiting for their terminal status.
    status_timers: FuturesUnordered<BoxFuture<'static, RequestId>>,
    /// Per-peer wire state (1.0.0 ids, answering version), shared with the stream tasks. Kept
    /// after a disconnect, as go-graphsync keeps its 1.0.0 id map: requests survive a
    /// disconnect, and their responses after a reconnect must still map to them.
    wires: HashMap<PeerId, Arc<PeerWire>>,
    /// Seeds of the per-peer 1.0.0 id maps.
    seeds: RandomState,
    sends: FuturesUnordered<SendReport>,
    /// Puts the reports of `sends` back in each peer's write order.
    send_order: ReportOrder<PeerId, (Sent, bool)>,
    subscribers: HashMap<RequestId, Subscriber>,
    served: HashMap<(PeerId, RequestId), Served>,
    inbound_tx: mpsc::Sender<Inbound>,
    inbound_rx: mpsc::Receiver<Inbound>,
    disconnects: Arc<Disconnects>,
    counters: Counters,
    /// Store calls running in spawned tasks (at most [`Config::max_store_tasks`]).
    jobs: FuturesUnordered<BoxFuture<'static, JobDone>>,
    /// Store calls waiting for a slot.
    waiting_jobs: VecDeque<Job>,
    /// Verified blocks whose put has not finished: loads of them are answered from here, so
    /// a block stored by one load is found by the next.
    pending_puts: HashMap<Cid, (Bytes, usize)>,
    /// Puts not finished, per request: a cancel answers once they are done.
    puts_in_flight: HashMap<RequestId, usize>,
    /// Cancel commands waiting for their request's puts.
    cancel_waiters: HashMap<RequestId, Vec<oneshot::Sender<Result<(), NodeError>>>>,
    /// Outcomes of ended requests whose puts have not all finished: each goes to its caller
    /// after the request's last put, so that the caller finds every verified block in its
    /// store once it has the outcome.
    held_outcomes: HashMap<RequestId, (Subscriber, Outcome)>,
    /// Per request, in order, the events held back because a block before them (or they
    /// themselves) waits for its put: a block reaches the hooks and the caller only once it
    /// is stored, as Go stores a block before it runs the incoming-block hooks.
    held: HashMap<RequestId, VecDeque<Held>>,
    /// Per peer, the bytes last reported to its [`ReadGate`](super::streams::ReadGate) as
    /// buffered ahead of its running traversals (peers with none are left out).
    ahead: HashMap<PeerId, usize>,
    /// The bytes ahead per peer being counted (kept to reuse its memory).
    ahead_now: HashMap<PeerId, usize>,
}

impl Driver {
    pub(super) fn new(
        config: Config,
        store: Arc<dyn DynBlockstore>,
        control: libp2p_stream::Control,
        hooks: Arc<Registry>,
        stores: Arc<Stores>,
        disconnects: Arc<Disconnects>,
    ) -> Self {
        let mut responder_config = config.responder.clone();
        responder_config.hooks = responder::Hooks {
            request: true,
            update: true,
            block: true,
        };
        let seeds = RandomState::new();
        let mut requester_config = config
            .requester
            .clone()
            .with_response_hooks(true)
            .with_block_hooks(true);
        if requester_config.id_seed == 0 {
            // Request ids must not repeat across runs: seed from the process's random keys.
            requester_config.id_seed = seeds.hash_one("requester ids");
        }
        let (inbound_tx, inbound_rx) = mpsc::channel(config.inbound_capacity.max(1));
        Driver {
            responder: Responder::new(responder_config),
            requester: Requester::new(requester_config),
            config,
            store,
            control,
            hooks,
            stores,
            writers: HashMap::new(),
            overflow: HashMap::new(),
            room: FuturesUnordered::new(),
            status_timers: FuturesUnordered::new(),
            wires: HashMap::new(),
            seeds,
            sends: FuturesUnordered::new(),
            send_order: ReportOrder::new(),
            subscribers: HashMap::new(),
            served: HashMap::new(),
            inbound_tx,
            inbound_rx,
            disconnects,
            counters: Counters::default(),
            jobs: FuturesUnordered::new(),
            waiting_jobs: VecDeque::new(),
            pending_puts: HashMap::new(),
            puts_in_flight: HashMap::new(),
            cancel_waiters: HashMap::new(),
            held_outcomes: HashMap::new(),
            held: HashMap::new(),
            ahead: HashMap::new(),
            ahead_now: HashMap::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut incoming: mpsc::Receiver<Accepted>,
    ) {
        loop {
            self.drain();
            self.update_gates();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                // A store slower than the network: no more inbound blocks until it catches up.
                Some(inbound) = self.inbound_rx.recv(),
                    if self.waiting_jobs.len() < self.config.max_waiting_store_calls.max(1) =>
                {
                    self.inbound(inbound);
                }
                Some((peer, stream, version, closed)) = incoming.recv() => {
                    tokio::spawn(read_stream(
                        peer,
                        stream,
                        version,
                        closed,
                        self.wire(peer),
                        self.inbound_tx.clone(),
                        self.config.frame,
                    ));
                }
                () = self.disconnects.notify.notified() => {
                    for peer in self.disconnects.take() {
                        self.writers.remove(&peer);
                        self.overflow.remove(&peer);
                        self.served.retain(|(served_peer, _), _| *served_peer != peer);
                        self.responder.handle_peer_disconnected(&peer);
                        self.requester.handle_peer_disconnected(&peer);
                    }
                }
                Some(peer) = self.room.next(), if !self.room.is_empty() => self.flush(peer),
                Some(request) = self.status_timers.next(), if !self.status_timers.is_empty() => {
                    if let Err(error) = self.requester.handle_status_timeout(request) {
                        tracing::trace!(%request, %error, "stale terminal-status timer");
                    }
                }
                Some((peer, sequence, sent, written)) = self.sends.next(), if !self.sends.is_empty() => {
                    for (sent, written) in self.send_order.arrived(&peer, sequence, (sent, written)) {
                        self.sent(peer, sent, written);
                    }
                }
                Some(done) = self.jobs.next(), if !self.jobs.is_empty() => {
                    self.job_done(done);
                    self.start_jobs();
                }
            }
        }
    }

    fn inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Message(peer, message, bytes) => {
                self.wire(peer).gate.take(bytes);
                self.counters.messages_received += 1;
                // Requests are the responder's business, responses and blocks the requester's:
                // each core gets its part, nothing is copied.
                let Message {
                    requests,
                    responses,
                    blocks,
                } = message;
                if !requests.is_empty() {
                    let requests = Message {
                        requests,
                        ..Message::default()
                    };
                    self.responder.handle_message(peer, requests);
                }
                if !(responses.is_empty() && blocks.is_empty()) {
                    let responses = Message {
                        responses,
                        blocks,
                        ..Message::default()
                    };
                    self.requester.handle_message(peer, responses);
                }
            }
            Inbound::Failed(peer, error) => {
                let failure = NetworkFailure::Receive {
                    error: Arc::new(error),
                };
                for (_, listener) in self.hooks.network_error.snapshot().iter() {
                    guarded("listener", || listener(&peer, &failure));
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                root,
                selector,
                extensions,
                reply,
            } => {
                let result = self.request(peer, root, &selector, extensions);
                // A caller that stopped waiting still has its request run to the end.
                let _ = reply.send(result);
            }
            Command::Cancel { request, reply } => {
                match self.requester.cancel(request) {
                    Ok(()) => {
                        // Puts not started yet are withdrawn; running ones finish first.
                        let (withdrawn, kept): (VecDeque<Job>, VecDeque<Job>) =
                            std::mem::take(&mut self.waiting_jobs)
                                .into_iter()
                                .partition(|job| {
                                    matches!(job, Job::Put { request: r, cid, .. }
                                if *r == request && !self.awaited_by_other(request, cid))
                                });
                        self.waiting_jobs = kept;
                        for job in withdrawn {
                            if let Job::Put { request, cid, .. } = job {
                                self.put_finished(request, cid);
                            }
                        }
                        // The cancelled request's held blocks are never reported; its other
                        // held events go on, in order.
                        for held in self.held.remove(&request).unwrap_or_default() {
                            if let Held::Event(event) = held {
                                self.pass_on(event);
                            }
                        }
                        if self.puts_in_flight.contains_key(&request) {
                            self.cancel_waiters.entry(request).or_default().push(reply);
                        } else {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(source) => {
                        let _ = reply.send(Err(NodeError::Command {
                            request,
                            source: Box::new(source),
                        }));
                    }
                }
            }
            Command::Pause { request, reply } => {
                let result = self.requester.pause(request);
                let _ = reply.send(result.map_err(|source| NodeError::Command {
                    request,
                    source: Box::new(source),
                }));
            }
            Command::Unpause {
                request,
                extensions,
                reply,
            } => {
                let result = self.requester.resume(request, extensions);
                let _ = reply.send(result.map_err(|source| NodeError::Command {
                    request,
                    source: Box::new(source),
                }));
            }
            Command::Update {
                request,
                extensions,
                reply,
            } => {
                let result = self.requester.update(request, extensions);
                let _ = reply.send(result.map_err(|source| NodeError::Command {
                    request,
                    source: Box::new(source),
                }));
            }
            Command::PauseResponse {
                peer,
                request,
                reply,
            } => {
                let result = self.responder.pause(&peer, request);
                let _ = reply.send(result.map_err(|source| NodeError::Response {
                    peer,
                    request,
                    source: Box::new(source),
                }));
            }
            Command::UnpauseResponse {
                peer,
                request,
                extensions,
                reply,
            } => {
                let result = self.responder.unpause(&peer, request, extensions);
                let _ = reply.send(result.map_err(|source| NodeError::Response {
                    peer,
                    request,
                    source: Box::new(source),
                }));
            }
            Command::ResponseUpdate {
                peer,
                request,
                extensions,
                reply,
            } => {
                let result = self.responder.send_extensions(&peer, request, extensions);
                let _ = reply.send(result.map_err(|source| NodeError::Response {
                    peer,
                    request,
                    source: Box::new(source),
                }));
            }
            Command::CancelResponse {
                peer,
                request,
                reply,
            } => {
                let result = self.responder.cancel(&peer, request);
                let _ = reply.send(result.map_err(|source| NodeError::Response {
                    peer,
                    request,
                    source: Box::new(source),
                }));
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.stats()));
            }
        }
    }

    /// Runs the outgoing-request hooks and hands the request to the requester.
    fn request(
        &mut self,
        peer: PeerId,
        root: Cid,
        selector: &Selector,
        mut extensions: Extensions,
    ) -> Result<RequestHandle, NodeError> {
        let mut actions = OutgoingRequestActions::default();
        {
            let info = OutgoingRequest {
                root: &root,
                selector,
                extensions: &extensions,
            };
            for (_, hook) in self.hooks.outgoing_request.snapshot().iter() {
                guarded("outgoing-request hook", || hook(&peer, &info, &mut actions));
            }
        }
        let store = match actions.store {
            None => self.store.clone(),
            Some(name) => {
                let Some(store) = self.stores.get(&name) else {
                    return Err(NodeError::UnknownStore { name });
                };
                extensions.insert(
                    extension::DEDUP_BY_KEY,
                    Some(extension::encode_dedup_by_key(name.as_str())),
                );
                store
            }
        };
        let id = self
            .requester
            .request(peer, root, selector, extensions)
            .map_err(|source| NodeError::Request { source })?;
        let (events_tx, events) = mpsc::channel(self.config.event_capacity.max(1));
        let (outcome_tx, outcome) = oneshot::channel();
        self.subscribers.insert(
            id,
            Subscriber {
                peer,
                events: events_tx,
                outcome: outcome_tx,
                store,
            },
        );
        Ok(RequestHandle {
            id,
            events,
            outcome,
        })
    }

    fn stats(&self) -> Stats {
        let tracked = self.responder.tracked() as u64;
        let running = self.responder.running() as u64;
        let counters = &self.counters;
        Stats {
            outgoing_requests: RequestStats {
                active: self.requester.in_progress() as u64,
                pending: self.requester.queued() as u64,
            },
            incoming_requests: RequestStats {
                active: running,
                pending: tracked.saturating_sub(running),
            },
            blocks_sent: counters.blocks_sent,
            bytes_sent: counters.bytes_sent,
            blocks_received: counters.blocks_received,
            bytes_received: counters.bytes_received,
            messages_sent: counters.messages_sent,
            messages_received: counters.messages_received,
            messages_failed: counters.messages_failed,
            responder_memory: self.responder.total_memory(),
            peak_buffered_bytes: self.requester.peak_buffered_bytes() as u64,
            reading_pauses: self.wires.values().map(|wire| wire.gate.pauses()).sum(),
        }
    }

    /// Tells each peer's read gate how many bytes its running requests hold buffered ahead
    /// of their traversals (the gate holds the peer's readers above its high watermark): the
    /// block bytes, or the entries at their least weight when that is more (small blocks).
    fn update_gates(&mut self) {
        let mut now = std::mem::take(&mut self.ahead_now);
        now.clear();
        for (peer, bytes) in self.requester.buffered_bytes() {
            let sum = now.entry(*peer).or_insert(0);
            *sum = sum.saturating_add(bytes);
        }
        let entry_weight = self.config.entry_weight();
        for (peer, items) in self.requester.buffered_items() {
            let weight = items.saturating_mul(entry_weight);
            let sum = now.entry(*peer).or_insert(0);
            *sum = (*sum).max(weight);
        }
        for peer in self.ahead.keys() {
            if let Some(wire) = self.wires.get(peer).filter(|_| !now.contains_key(peer)) {
                wire.gate.set_ahead(0);
            }
        }
        for (peer, bytes) in &now {
            if self.ahead.get(peer) != Some(bytes) {
                self.wire(*peer).gate.set_ahead(*bytes);
            }
        }
        self.ahead_now = std::mem::replace(&mut self.ahead, now);
    }

    /// Drains both cores until neither has anything left, answering what they ask.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.responder.poll_event() {
                progressed = true;
                self.responder_event(event);
            }
            while let Some(event) = self.requester.poll_event() {
                progressed = true;
                self.requester_event(event);
            }
            if progressed {
                // Answers to the events may have produced more; transmits wait so that the
                // responder's transactions batch into full messages.
                continue;
            }
            while let Some(transmit) = self.responder.poll_transmit() {
                progressed = true;
                let sent = Sent::Response(transmit.id);
                self.send(transmit.peer, transmit.message, sent);
            }
            while let Some((peer, message)) = self.requester.poll_transmit() {
                progressed = true;
                let news = message
                    .requests
                    .iter()
                    .filter(|request| matches!(request.kind, RequestKind::New { .. }))
                    .map(|request| request.id)
                    .collect();
                self.send(peer, message, Sent::Requests(news));
            }
            if !progressed {
                return;
            }
        }
    }

    fn responder_event(&mut self, event: responder::Event<PeerId>) {
        match event {
            responder::Event::LoadBlock { peer, request, cid } => {
                let store = self
                    .served
                    .get(&(peer, request))
                    .map_or_else(|| self.store.clone(), |served| served.store.clone());
                self.job(Job::ResponderLoad {
                    peer,
                    request,
                    cid,
                    store,
                });
            }
            responder::Event::RequestReceived {
                peer,
                request,
                default_validated,
            } => self.decide_request(peer, request, default_validated),
            responder::Event::UpdateReceived {
                peer,
                request,
                updates,
            } => self.decide_update(peer, request, updates),
            responder::Event::BlockLoaded {
                peer,
                request,
                record,
            } => {
                let mut actions = OutgoingBlockActions::default();
                if let Some(served) = self.served.get(&(peer, request)) {
                    for (_, hook) in self.hooks.outgoing_block.snapshot().iter() {
                        if !guarded("hook", || {
                            hook(&peer, &served.request, &record, &mut actions)
                        }) {
                            actions.terminated = Some("a hook panicked".to_owned());
                        }
                        if actions.terminated.is_some() {
                            break;
                        }
                    }
                }
                if let Some(reason) = &actions.terminated {
                    tracing::debug!(%peer, %request, %reason, "outgoing-block hook terminated");
                }
                let decision = responder::BlockDecision {
                    pause: actions.pause,
                    terminate: actions.terminated.is_some(),
                    extensions: actions.extensions,
                };
                if let Err(error) = self
                    .responder
                    .handle_block_decision(&peer, request, decision)
                {
                    tracing::debug!(%peer, %request, %error, "stale block decision");
                }
            }
            responder::Event::BlockSent {
                peer,
                request,
                record,
            } => {
                if record.sent > 0 {
                    self.counters.blocks_sent += 1;
                    self.counters.bytes_sent += record.sent;
                }
                for (_, listener) in self.hooks.block_sent.snapshot().iter() {
                    guarded("listener", || listener(&peer, request, &record));
                }
            }
            responder::Event::Completed {
                peer,
                request,
                status,
            } => {
                self.served.remove(&(peer, request));
                for (_, listener) in self.hooks.completed.snapshot().iter() {
                    guarded("listener", || listener(&peer, request, status));
                }
            }
            responder::Event::CancelledByRequester { peer, request } => {
                self.served.remove(&(peer, request));
                for (_, listener) in self.hooks.requestor_cancelled.snapshot().iter() {
                    guarded("listener", || listener(&peer, request));
                }
            }
            responder::Event::NetworkError { peer, request } => {
                self.served.remove(&(peer, request));
                let failure = NetworkFailure::ResponseNotSent { request };
                for (_, listener) in self.hooks.network_error.snapshot().iter() {
                    guarded("listener", || listener(&peer, &failure));
                }
            }
            responder::Event::Failed {
                peer,
                request,
                status,
                error,
            } => {
                self.served.remove(&(peer, request));
                tracing::debug!(%peer, %request, ?status, %error, "response failed");
            }
            other => tracing::trace!(event = ?other, "responder event"),
        }
    }

    /// Runs the incoming-request-queued listeners and the incoming-request hooks.
    fn decide_request(&mut self, peer: PeerId, request: Request, default_validated: bool) {
        for (_, listener) in self.hooks.request_queued.snapshot().iter() {
            guarded("listener", || listener(&peer, &request));
        }
        let mut actions = IncomingRequestActions::new(default_validated);
        for (_, hook) in self.hooks.incoming_request.snapshot().iter() {
            if !guarded("hook", || hook(&peer, &request, &mut actions)) {
                actions.terminated = Some("a hook panicked".to_owned());
            }
            if actions.terminated.is_some() {
                break;
            }
        }
        let mut store = self.store.clone();
        if actions.terminated.is_none()
            && let Some(name) = &actions.store
        {
            match self.stores.get(name) {
                Some(named) => store = named,
                None => actions.terminated = Some(format!("unknown store `{name}`")),
            }
        }
        if let Some(reason) = &actions.terminated {
            tracing::debug!(%peer, request = %request.id, %reason, "incoming-request hook terminated");
        }
        let id = request.id;
        let decision = RequestDecision {
            validated: actions.validated,
            pause: actions.pause,
            terminate: actions.terminated.is_some(),
            extensions: actions.extensions,
            link_budget: actions.link_budget,
        };
        self.served.insert((peer, id), Served { request, store });
        if let Err(error) = self.responder.handle_request_decision(&peer, id, decision) {
            tracing::debug!(%peer, request = %id, %error, "stale request decision");
        }
    }

    fn decide_update(&mut self, peer: PeerId, request: RequestId, updates: Vec<Extensions>) {
        let mut actions = RequestUpdatedActions::default();
        if let Some(served) = self.served.get(&(peer, request)) {
            let hooks = self.hooks.request_updated.snapshot();
            'updates: for update in &updates {
                for (_, hook) in hooks.iter() {
                    if !guarded("hook", || {
                        hook(&peer, &served.request, update, &mut actions)
                    }) {
                        actions.terminated = Some("a hook panicked".to_owned());
                    }
                    if actions.terminated.is_some() {
                        break 'updates;
                    }
                }
            }
        }
        if let Some(reason) = &actions.terminated {
            tracing::debug!(%peer, %request, %reason, "request-updated hook terminated");
        }
        let decision = responder::UpdateDecision {
            unpause: actions.unpause,
            terminate: actions.terminated.is_some(),
            extensions: actions.extensions,
        };
        if let Err(error) = self
            .responder
            .handle_update_decision(&peer, request, decision)
        {
            tracing::debug!(%peer, %request, %error, "stale update decision");
        }
    }

    /// A requester event: passed on at once, or held back behind a block whose put has not
    /// finished.
    fn requester_event(&mut self, event: requester::Event<PeerId>) {
        let request = match &event {
            requester::Event::ResponseReceived { request, .. }
            | requester::Event::BlockReceived { request, .. }
            | requester::Event::BlockMissing { request, .. }
            | requester::Event::Progress { request, .. }
            | requester::Event::Paused { request }
            | requester::Event::NetworkError { request, .. }
            | requester::Event::Completed { request, .. } => *request,
            _ => return self.pass_on(event),
        };
        if let requester::Event::BlockReceived { wire_size, .. } = &event
            && *wire_size > 0
        {
            // Counted when verified (the stats count traffic); reported once stored.
            self.counters.blocks_received += 1;
            self.counters.bytes_received += *wire_size;
        }
        let queued = self.held.contains_key(&request);
        match event {
            requester::Event::BlockReceived {
                request,
                cid,
                path,
                size,
                wire_size,
                index,
                awaits_decision,
            } if queued || self.pending_puts.contains_key(&cid) => {
                let mut awaits_decision = awaits_decision;
                if awaits_decision && self.hooks.incoming_block.snapshot().is_empty() {
                    // No hook to run: the traversal goes on while the put runs, only the
                    // report waits.
                    awaits_decision = false;
                    let decision = requester::BlockDecision::proceed();
                    if let Err(error) = self.requester.handle_block_decision(request, decision) {
                        tracing::debug!(%request, %error, "stale block decision");
                    }
                }
                self.held
                    .entry(request)
                    .or_default()
                    .push_back(Held::Block {
                        cid,
                        path,
                        size,
                        wire_size,
                        index,
                        awaits_decision,
                    });
            }
            requester::Event::ResponseReceived {
                request,
                status,
                extensions,
                awaits_decision: true,
            } if queued && self.hooks.incoming_response.snapshot().is_empty() => {
                // No hook to run: the response is approved at once and only its report waits
                // behind the earlier puts. Held undecided, it stalled the traversal until those
                // puts finished, so a responder faster than the store overflowed the
                // requester's response buffer (`max_buffered_bytes`) and failed the request.
                let decision = requester::ResponseDecision::proceed();
                if let Err(error) = self.requester.handle_response_decision(request, decision) {
                    tracing::debug!(%request, %error, "stale response decision");
                }
                if let Some(queue) = self.held.get_mut(&request) {
                    queue.push_back(Held::Event(requester::Event::ResponseReceived {
                        request,
                        status,
                        extensions,
                        awaits_decision: false,
                    }));
                }
            }
            event if queued => {
                if let Some(queue) = self.held.get_mut(&request) {
                    queue.push_back(Held::Event(event));
                }
            }
            event => self.pass_on(event),
        }
    }

    /// Whether a request other than `request` holds a block of `cid` back for its put.
    fn awaited_by_other(&self, request: RequestId, cid: &Cid) -> bool {
        self.held.iter().any(|(other, queue)| {
            *other != request
                && queue
                    .iter()
                    .any(|held| matches!(held, Held::Block { cid: c, .. } if c == cid))
        })
    }

    /// Reports the held events of `request` from the front, up to the first block whose put
    /// has not finished.
    fn release_held(&mut self, request: RequestId) {
        loop {
            let Some(queue) = self.held.get_mut(&request) else {
                return;
            };
            if let Some(Held::Block { cid, .. }) = queue.front()
                && self.pending_puts.contains_key(cid)
            {
                return;
            }
            let Some(held) = queue.pop_front() else {
                self.held.remove(&request);
                return;
            };
            if queue.is_empty() {
                self.held.remove(&request);
            }
            match held {
                Held::Block {
                    cid,
                    path,
                    size,
                    wire_size,
                    index,
                    awaits_decision,
                } => self.block_received(
                    &IncomingBlock {
                        request,
                        cid,
                        path: &path,
                        size,
                        wire_size,
                        index,
                    },
                    awaits_decision,
                ),
                Held::Event(event) => self.pass_on(event),
            }
        }
    }

    /// A stored block: reported to the caller, and given to the incoming-block hooks when
    /// the requester waits for their decision.
    fn block_received(&mut self, block: &IncomingBlock<'_>, awaits_decision: bool) {
        self.notify(
            block.request,
            RequestEvent::BlockReceived {
                cid: block.cid,
                size: block.size,
                wire_size: block.wire_size,
            },
        );
        if awaits_decision {
            self.decide_block(block);
        }
    }

    /// Answers a requester event that nothing holds back.
    fn pass_on(&mut self, event: requester::Event<PeerId>) {
        match event {
            requester::Event::LoadBlock { request, cid } => {
                if let Some((data, _)) = self.pending_puts.get(&cid) {
                    let data = data.clone();
                    if let Err(error) = self.requester.provide_block(request, cid, Some(data)) {
                        tracing::debug!(%request, %error, "local block refused");
                    }
                    return;
                }
                let store = self.request_store(request);
                self.job(Job::RequesterLoad {
                    request,
                    cid,
                    store,
                });
            }
            requester::Event::StoreBlock { request, cid, data } => {
                let store = self.request_store(request);
                self.job(Job::Put {
                    request,
                    cid,
                    data,
                    store,
                });
            }
            requester::Event::ResponseReceived {
                request,
                status,
                extensions,
                awaits_decision,
            } => {
                self.notify(request, RequestEvent::ResponseReceived { status });
                if awaits_decision {
                    self.decide_response(request, status, &extensions);
                }
            }
            requester::Event::BlockReceived {
                request,
                cid,
                path,
                size,
                wire_size,
                index,
                awaits_decision,
            } => {
                let block = IncomingBlock {
                    request,
                    cid,
                    path: &path,
                    size,
                    wire_size,
                    index,
                };
                self.block_received(&block, awaits_decision);
            }
            requester::Event::BlockMissing { request, cid, .. } => {
                self.notify(request, RequestEvent::BlockMissing { cid });
            }
            requester::Event::Paused { request } => self.notify(request, RequestEvent::Paused),
            requester::Event::AwaitingStatus { request, timeout } => {
                self.status_timers.push(Box::pin(async move {
                    tokio::time::sleep(timeout).await;
                    request
                }));
            }
            requester::Event::NetworkError { peer, request } => {
                self.notify(request, RequestEvent::PeerDisconnected);
                let failure = NetworkFailure::ResponderDisconnected { request };
                for (_, listener) in self.hooks.network_error.snapshot().iter() {
                    guarded("listener", || listener(&peer, &failure));
                }
            }
            requester::Event::Completed { request, outcome } => {
                if let Some(subscriber) = self.subscribers.remove(&request) {
                    if self.puts_in_flight.contains_key(&request) {
                        self.held_outcomes.insert(request, (subscriber, outcome));
                    } else {
                        // A caller that dropped its handle no longer wants the outcome.
                        let _ = subscriber.outcome.send(Ok(outcome));
                    }
                }
            }
            other => tracing::trace!(event = ?other, "requester event"),
        }
    }

    fn decide_response(
        &mut self,
        request: RequestId,
        status: crate::message::ResponseStatus,
        extensions: &Extensions,
    ) {
        let mut actions = IncomingResponseActions::default();
        if let Some(peer) = self.subscribers.get(&request).map(|s| s.peer) {
            let response = IncomingResponse {
                request,
                status,
                extensions,
            };
            for (_, hook) in self.hooks.incoming_response.snapshot().iter() {
                if !guarded("hook", || hook(&peer, &response, &mut actions)) {
                    actions.terminated = Some("a hook panicked".to_owned());
                }
                if actions.terminated.is_some() {
                    break;
                }
            }
        }
        let decision = match actions.terminated {
            Some(reason) => requester::ResponseDecision::terminate(reason),
            None => requester::ResponseDecision::proceed().with_extensions(actions.extensions),
        };
        if let Err(error) = self.requester.handle_response_decision(request, decision) {
            tracing::debug!(%request, %error, "stale response decision");
        }
    }

    fn decide_block(&mut self, block: &IncomingBlock<'_>) {
        let request = block.request;
        let mut actions = IncomingBlockActions::default();
        if let Some(peer) = self.subscribers.get(&request).map(|s| s.peer) {
            for (_, hook) in self.hooks.incoming_block.snapshot().iter() {
                if !guarded("hook", || hook(&peer, block, &mut actions)) {
                    actions.terminated = Some("a hook panicked".to_owned());
                }
                if actions.terminated.is_some() {
                    break;
                }
            }
        }
        let decision = match actions.terminated {
            Some(reason) => requester::BlockDecision::terminate(reason),
            None => {
                let decision =
                    requester::BlockDecision::proceed().with_extensions(actions.extensions);
                if actions.pause {
                    decision.with_pause()
                } else {
                    decision
                }
            }
        };
        if let Err(error) = self.requester.handle_block_decision(request, decision) {
            tracing::debug!(%request, %error, "stale block decision");
        }
    }

    fn request_store(&self, request: RequestId) -> Arc<dyn DynBlockstore> {
        self.subscribers
            .get(&request)
            .map_or_else(|| self.store.clone(), |s| s.store.clone())
    }

    fn notify(&mut self, request: RequestId, event: RequestEvent) {
        if let Some(subscriber) = self.subscribers.get(&request)
            && subscriber.events.try_send(event).is_err()
        {
            tracing::trace!(%request, "progress event dropped: receiver full or gone");
        }
    }

    /// Starts a store call: answered at once when the store is ready at the first poll (an
    /// in-memory store), else run in a spawned task once a slot is free.
    fn job(&mut self, job: Job) {
        if let Job::Put {
            request, cid, data, ..
        } = &job
        {
            let entry = self
                .pending_puts
                .entry(*cid)
                .or_insert_with(|| (data.clone(), 0));
            entry.1 += 1;
            *self.puts_in_flight.entry(*request).or_insert(0) += 1;
        }
        if self.jobs.len() >= self.config.max_store_tasks.max(1) {
            self.waiting_jobs.push_back(job);
            return;
        }
        self.run_job(job);
    }

    fn start_jobs(&mut self) {
        while self.jobs.len() < self.config.max_store_tasks.max(1) {
            let Some(job) = self.waiting_jobs.pop_front() else {
                return;
            };
            self.run_job(job);
        }
    }

    fn run_job(&mut self, job: Job) {
        let failed = job.failed();
        let mut future = job_future(job);
        let mut context = Context::from_waker(noop_waker_ref());
        let first =
            std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut context)));
        match first {
            Ok(Poll::Ready(done)) => self.job_done(done),
            Err(_) => {
                // A store that panicked: the future is dropped, the call reads as failed.
                tracing::warn!("a blockstore call panicked");
                self.job_done(failed);
            }
            Ok(Poll::Pending) => {
                let task: JoinHandle<JobDone> = tokio::spawn(future);
                self.jobs.push(Box::pin(async move {
                    task.await.unwrap_or_else(|error| {
                        // A store that panicked: the load reads as missing, the put as done.
                        tracing::warn!(%error, "a blockstore task failed");
                        failed
                    })
                }));
            }
        }
    }

    fn job_done(&mut self, done: JobDone) {
        match done {
            JobDone::ResponderLoad {
                peer,
                request,
                cid,
                data,
            } => {
                if let Err(error) = self.responder.provide_block(&peer, request, cid, data) {
                    tracing::debug!(%peer, %request, %error, "block load no longer wanted");
                }
            }
            JobDone::RequesterLoad { request, cid, data } => {
                if let Err(error) = self.requester.provide_block(request, cid, data) {
                    tracing::debug!(%request, %error, "local block refused");
                }
            }
            JobDone::Put { request, cid } => self.put_finished(request, cid),
        }
    }

    /// A put ran or was withdrawn: its bookkeeping is released, and a cancel and an outcome
    /// waiting for the request's puts are answered after the last one.
    fn put_finished(&mut self, request: RequestId, cid: Cid) {
        if let Some(entry) = self.pending_puts.get_mut(&cid) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.pending_puts.remove(&cid);
                // The block is stored: the requests holding it back report it now.
                let waiting: Vec<RequestId> = self
                    .held
                    .iter()
                    .filter(|(_, queue)| {
                        matches!(queue.front(), Some(Held::Block { cid: c, .. }) if *c == cid)
                    })
                    .map(|(request, _)| *request)
                    .collect();
                for request in waiting {
                    self.release_held(request);
                }
            }
        }
        if let Some(count) = self.puts_in_flight.get_mut(&request) {
            *count -= 1;
            if *count == 0 {
                self.puts_in_flight.remove(&request);
                for waiter in self.cancel_waiters.remove(&request).unwrap_or_default() {
                    let _ = waiter.send(Ok(()));
                }
                if let Some((subscriber, outcome)) = self.held_outcomes.remove(&request) {
                    // A caller that dropped its handle no longer wants the outcome.
                    let _ = subscriber.outcome.send(Ok(outcome));
                }
            }
        }
    }

    /// A message report from a writer.
    fn sent(&mut self, peer: PeerId, sent: Sent, written: bool) {
        if written {
            self.counters.messages_sent += 1;
        }
        match sent {
            Sent::Response(id) => {
                let result = if written {
                    self.responder.handle_sent(&peer, id)
                } else {
                    self.counters.messages_failed += 1;
                    self.responder.handle_send_failed(&peer, id)
                };
                if let Err(error) = result {
                    tracing::debug!(%peer, ?id, %error, "stale send report");
                }
            }
            Sent::Requests(news) if !written => {
                for request in news {
                    self.unreachable(peer, request);
                }
            }
            Sent::Requests(_) => {}
        }
    }

    /// A New request could not be sent: the request ends with [`NodeError::Unreachable`].
    fn unreachable(&mut self, peer: PeerId, request: RequestId) {
        let Some(subscriber) = self.subscribers.remove(&request) else {
            return;
        };
        if let Err(error) = self.requester.cancel(request) {
            tracing::debug!(%request, %error, "unsent request already ended");
        }
        let failure = NetworkFailure::RequestNotSent { request };
        for (_, listener) in self.hooks.network_error.snapshot().iter() {
            guarded("listener", || listener(&peer, &failure));
        }
        let _ = subscriber
            .outcome
            .send(Err(NodeError::Unreachable { peer, request }));
    }

    /// The wire state of `peer`, created on first use.
    fn wire(&mut self, peer: PeerId) -> Arc<PeerWire> {
        let seeds = &self.seeds;
        let high = self.config.read_pause_threshold();
        let entry_weight = self.config.entry_weight();
        self.wires
            .entry(peer)
            .or_insert_with(|| Arc::new(PeerWire::new(seeds.hash_one(peer), high, entry_weight)))
            .clone()
    }

    /// Queues `message` on `peer`'s writer, starting the writer if needed. Never waits: when
    /// the writer's queue is full the message joins the peer's overflow, which is flushed as
    /// the writer frees room, so the driver keeps reading while a peer is slow (two nodes
    /// flooding each other cannot stall each other).
    ///
    /// The message is for the peer's current connection (its epoch is taken now); only one
    /// carrying a New request may dial a peer with no connection.
    fn send(&mut self, peer: PeerId, message: Message, sent: Sent) {
        let dial = matches!(&sent, Sent::Requests(news) if !news.is_empty());
        if !self.writers.contains_key(&peer) {
            let wire = self.wire(peer);
            let writer = spawn_writer(
                peer,
                self.control.clone(),
                wire,
                Arc::clone(&self.disconnects),
                &self.config,
            );
            self.writers.insert(peer, writer);
        }
        let (report, written) = oneshot::channel();
        let sequence = self.send_order.issue(&peer);
        self.sends.push(Box::pin(async move {
            (peer, sequence, sent, written.await.unwrap_or(false))
        }));
        let outbound = Outbound {
            message,
            report: Some(report),
            epoch: self.disconnects.epoch(&peer),
            dial,
        };
        // A dropped report slot reads as a failed send. An existing overflow means a wait for
        // room is already pending; it flushes this message too.
        let waiting = self.overflow.contains_key(&peer);
        self.overflow.entry(peer).or_default().push_back(outbound);
        if !waiting {
            self.flush(peer);
        }
    }

    /// Moves `peer`'s overflow into its writer's queue while there is room; when the queue is
    /// full, waits (in the select loop) for room.
    fn flush(&mut self, peer: PeerId) {
        let Some(queue) = self.overflow.get_mut(&peer) else {
            return;
        };
        let Some(writer) = self.writers.get(&peer) else {
            self.overflow.remove(&peer);
            return;
        };
        while let Some(outbound) = queue.pop_front() {
            match writer.try_send(outbound) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(outbound)) => {
                    queue.push_front(outbound);
                    let writer = writer.clone();
                    self.room.push(Box::pin(async move {
                        // The permit is released at once: only the driver sends on this
                        // queue, so the room stays until the flush takes it.
                        let _ = writer.reserve().await;
                        peer
                    }));
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::debug!(%peer, "outbound writer stopped");
                    self.overflow.remove(&peer);
                    self.writers.remove(&peer);
                    return;
                }
            }
        }
        self.overflow.remove(&peer);
    }
}

/// Runs a hook or listener; `false` when it panicked (a hook then counts as terminating its
/// request; a listener's panic is only logged). User code never stops the driver.
fn guarded(what: &'static str, call: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!(what, "a hook or listener panicked");
            false
        }
    }
}

/// The future of one store call; a store error counts as a missing block (loads) or is logged
/// (puts).
fn job_future(job: Job) -> BoxFuture<'static, JobDone> {
    match job {
        Job::ResponderLoad {
            peer,
            request,
            cid,
            store,
        } => Box::pin(async move {
            let data = load(store.as_ref(), &cid).await;
            JobDone::ResponderLoad {
                peer,
                request,
                cid,
                data,
            }
        }),
        Job::RequesterLoad {
            request,
            cid,
            store,
        } => Box::pin(async move {
            let data = load(store.as_ref(), &cid).await;
            JobDone::RequesterLoad { request, cid, data }
        }),
        Job::Put {
            request,
            cid,
            data,
            store,
        } => Box::pin(async move {
            if let Err(error) = store.store_block(&cid, &data).await {
                tracing::warn!(%request, %cid, %error, "storing a verified block failed");
            }
            JobDone::Put { request, cid }
        }),
    }
}

/// Reads a block from the store; a store error counts as a missing block.
async fn load(store: &dyn DynBlockstore, cid: &Cid) -> Option<Bytes> {
    match store.load_block(cid).await {
        Ok(data) => data.map(Bytes::from),
        Err(error) => {
            tracing::warn!(%cid, %error, "blockstore read failed");
            None
        }
    }
}
