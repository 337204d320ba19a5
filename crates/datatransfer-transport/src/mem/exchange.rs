//! One data channel's exchange: its shared state, the commands that steer it, and the task
//! that moves the blocks and makes every handler call.

use std::collections::{HashSet, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use blockstore::Blockstore;
use cid::Cid;
use datatransfer_message::{ChannelId, Message, PeerId, Response};
use futures::channel::oneshot;
use futures_timer::Delay;
use ipld_selector::{Selector, Step, Traversal};

use super::{Hub, Peer, lock};
use crate::error::{DataError, HandlerError, TransportError};
use crate::events::{BlockInfo, EventsHandler, Flow, RequestAnswer};
use crate::transport::OpenChannel;

/// The two ends of an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// The data sender (graphsync responder).
    Sender,
    /// The data receiver (graphsync requester), which opened the exchange.
    Receiver,
}

impl Side {
    /// The index of per-side arrays.
    fn slot(self) -> usize {
        match self {
            Side::Sender => 0,
            Side::Receiver => 1,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Sender => Side::Receiver,
            Side::Receiver => Side::Sender,
        }
    }
}

/// How an exchange is being stopped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// `close_channel` from this side.
    Close(Side),
    /// Cleanup, a replacing open, or shutdown: no reports.
    Abort,
}

/// A command queued for the exchange task.
enum Control {
    /// `attach` from this side.
    Attach(Side, Message),
    /// The message of a `resume_channel` from the other side, for this side.
    Deliver(Side, Message),
}

/// An exchange shared by both peers' transports.
pub(super) struct Exchange {
    pub(super) channel: ChannelId,
    pub(super) receiver: PeerId,
    pub(super) sender: PeerId,
    state: Mutex<State>,
}

struct State {
    receiver_paused: bool,
    sender_paused: bool,
    /// The sender's handler answered the opening request with `Hold`.
    held: bool,
    /// Resumes per side (sender, receiver): a pause or hold answered by a handler is applied
    /// only if no resume of that side came while the handler ran.
    resumes: [u64; 2],
    /// Whether a handler of the side (sender, receiver) is running; a resume then counts as
    /// resuming the pause it may answer.
    calling: [bool; 2],
    control: VecDeque<Control>,
    stop: Option<Stop>,
    acks: Vec<oneshot::Sender<()>>,
    finished: bool,
    notified: bool,
    waker: Option<Waker>,
}

impl Exchange {
    pub(super) fn new(channel: ChannelId, receiver: PeerId, sender: PeerId) -> Self {
        Exchange {
            channel,
            receiver,
            sender,
            state: Mutex::new(State {
                receiver_paused: false,
                sender_paused: false,
                held: false,
                resumes: [0, 0],
                calling: [false, false],
                control: VecDeque::new(),
                stop: None,
                acks: Vec::new(),
                finished: false,
                notified: false,
                waker: None,
            }),
        }
    }

    /// Which side `peer` is on.
    pub(super) fn side_of(&self, peer: &PeerId) -> Side {
        if *peer == self.sender {
            Side::Sender
        } else {
            Side::Receiver
        }
    }

    /// Wakes the task so it re-reads its state and the hub's knobs.
    pub(super) fn wake(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.notified = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Stops the exchange; resolves once the task has made its last call (at once when it
    /// already finished). The first stop wins.
    pub(super) async fn stop(&self, how: StopHow) {
        let done = {
            let mut state = lock(&self.state);
            if state.finished {
                return;
            }
            if state.stop.is_none() {
                state.stop = Some(match how {
                    StopHow::Close(side) => Stop::Close(side),
                    StopHow::Abort => Stop::Abort,
                });
            }
            let (ack, done) = oneshot::channel();
            state.acks.push(ack);
            done
        };
        self.wake();
        // A dropped task also ends the wait.
        let _ = done.await;
    }

    /// Marks the exchange as never run (a refused opening).
    pub(super) fn finish_unstarted(&self) {
        lock(&self.state).finished = true;
    }

    /// Pauses `side`.
    pub(super) fn pause(&self, side: Side) -> Result<(), TransportError> {
        let mut state = lock(&self.state);
        if state.finished {
            return Err(TransportError::Finished {
                channel: self.channel.clone(),
            });
        }
        match side {
            Side::Sender => state.sender_paused = true,
            Side::Receiver => state.receiver_paused = true,
        }
        Ok(())
    }

    /// Resumes `side` (and releases a hold on the sender), queueing `message` for the other
    /// side.
    pub(super) fn resume(
        &self,
        side: Side,
        message: Message,
        capacity: usize,
    ) -> Result<(), TransportError> {
        {
            let mut state = lock(&self.state);
            if state.finished {
                return Err(TransportError::Finished {
                    channel: self.channel.clone(),
                });
            }
            let paused = state.calling[side.slot()]
                || match side {
                    Side::Sender => state.sender_paused || state.held,
                    Side::Receiver => state.receiver_paused,
                };
            if !paused {
                return Err(TransportError::NotPaused {
                    channel: self.channel.clone(),
                });
            }
            if state.control.len() >= capacity {
                return Err(TransportError::QueueFull {
                    peer: self.peer_of(side.other()).clone(),
                });
            }
            match side {
                Side::Sender => {
                    state.sender_paused = false;
                    state.held = false;
                }
                Side::Receiver => state.receiver_paused = false,
            }
            state.resumes[side.slot()] += 1;
            state
                .control
                .push_back(Control::Deliver(side.other(), message));
        }
        self.wake();
        Ok(())
    }

    /// Queues `message` from `side` for the other side.
    pub(super) fn attach(
        &self,
        side: Side,
        message: Message,
        capacity: usize,
    ) -> Result<(), TransportError> {
        {
            let mut state = lock(&self.state);
            if state.finished {
                return Err(TransportError::Finished {
                    channel: self.channel.clone(),
                });
            }
            if state.control.len() >= capacity {
                return Err(TransportError::QueueFull {
                    peer: self.peer_of(side.other()).clone(),
                });
            }
            state.control.push_back(Control::Attach(side, message));
        }
        self.wake();
        Ok(())
    }

    fn peer_of(&self, side: Side) -> &PeerId {
        match side {
            Side::Sender => &self.sender,
            Side::Receiver => &self.receiver,
        }
    }

    /// Waits until woken (at once if woken since the last wait).
    async fn notified(&self) {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.notified {
                state.notified = false;
                Poll::Ready(())
            } else {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    /// Marks the exchange finished and releases everyone waiting for it to stop.
    fn finish(&self) {
        let acks = {
            let mut state = lock(&self.state);
            state.finished = true;
            std::mem::take(&mut state.acks)
        };
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// How [`Exchange::stop`] stops it.
#[derive(Clone, Copy, Debug)]
pub(super) enum StopHow {
    /// `close_channel` from this side.
    Close(Side),
    /// No reports.
    Abort,
}

/// Why the task ended early.
enum End {
    /// Stopped from outside.
    Stopped(Stop),
    /// Both sides' exchange failed with this error.
    Failed(DataError),
    /// The link broke.
    Disconnected,
}

/// What the task runs with.
struct Run<B> {
    hub: Arc<Hub<B>>,
    exchange: Arc<Exchange>,
    receiver_handler: Arc<dyn EventsHandler>,
    /// Known once the request reached the sender.
    sender: Option<SenderEnd<B>>,
    receiver_peer: Arc<Peer<B>>,
}

/// The data sender's peer and handler.
struct SenderEnd<B> {
    peer: Arc<Peer<B>>,
    handler: Arc<dyn EventsHandler>,
}

/// The exchange task: see the module documentation of `mem`.
pub(super) async fn run<B: Blockstore + Send + Sync + 'static>(
    hub: Arc<Hub<B>>,
    exchange: Arc<Exchange>,
    receiver_peer: Arc<Peer<B>>,
    receiver_handler: Arc<dyn EventsHandler>,
    receiver_store: Arc<B>,
    open: OpenChannel,
) {
    let mut run = Run {
        hub,
        exchange,
        receiver_handler,
        sender: None,
        receiver_peer,
    };
    let end = run.exchange_blocks(&receiver_store, open).await;
    let channel = run.exchange.channel.clone();
    let outcome = match &end {
        Ok(()) => "completed".to_owned(),
        Err(End::Stopped(Stop::Abort)) => "aborted".to_owned(),
        Err(End::Stopped(Stop::Close(side))) => format!("closed by the {side:?}"),
        Err(End::Failed(error)) => format!("failed: {error}"),
        Err(End::Disconnected) => "disconnected".to_owned(),
    };
    tracing::debug!(%channel, %outcome, "mem exchange ended");
    match end {
        Ok(()) => {}
        Err(End::Stopped(Stop::Abort)) | Err(End::Stopped(Stop::Close(Side::Sender))) => {}
        Err(End::Stopped(Stop::Close(Side::Receiver))) => {
            run.receiver_handler
                .on_request_cancelled(&channel, DataError::Cancelled);
        }
        Err(End::Failed(error)) => {
            if let Some(SenderEnd { handler, .. }) = &run.sender {
                handler.on_channel_completed(&channel, Err(error.clone()));
            }
            run.receiver_handler
                .on_channel_completed(&channel, Err(error));
        }
        Err(End::Disconnected) => {
            let (receiver, sender) = (&run.exchange.receiver, &run.exchange.sender);
            if let Some(SenderEnd { peer, handler }) = &run.sender
                && !peer.is_shut_down()
            {
                let error = DataError::Disconnected {
                    peer: receiver.clone(),
                };
                handler.on_send_data_error(&channel, error.clone());
                handler.on_channel_completed(&channel, Err(error));
            }
            if !run.receiver_peer.is_shut_down() {
                let error = DataError::Disconnected {
                    peer: sender.clone(),
                };
                run.receiver_handler
                    .on_receive_data_error(&channel, error.clone());
                run.receiver_handler
                    .on_channel_completed(&channel, Err(error));
            }
        }
    }
    run.exchange.finish();
}

impl<B: Blockstore + Send + Sync + 'static> Run<B> {
    /// Everything from reaching the sender to both completions.
    async fn exchange_blocks(&mut self, receiver_store: &B, open: OpenChannel) -> Result<(), End> {
        let latency = self.hub.latency();
        if !latency.is_zero() {
            Delay::new(latency).await;
        }
        let stop = lock(&self.exchange.state).stop;
        if let Some(stop) = stop {
            return Err(End::Stopped(stop));
        }
        let channel = self.exchange.channel.clone();
        let sender_peer = self
            .hub
            .peer(&self.exchange.sender)
            .filter(|peer| !peer.is_shut_down() && self.reachable());
        let Some((sender_peer, sender_handler)) =
            sender_peer.and_then(|peer| peer.handler().map(|handler| (peer, handler)))
        else {
            let error = DataError::Disconnected {
                peer: self.exchange.sender.clone(),
            };
            self.receiver_handler
                .on_request_disconnected(&channel, error.clone());
            self.receiver_handler
                .on_channel_completed(&channel, Err(error));
            return Ok(());
        };
        lock(&sender_peer.exchanges).insert(channel.clone(), Arc::clone(&self.exchange));
        let sender_store = Arc::clone(&sender_peer.store);
        self.sender = Some(SenderEnd {
            peer: sender_peer,
            handler: Arc::clone(&sender_handler),
        });

        if open.message.is_new() {
            sender_handler.on_transfer_queued(&channel);
        }
        self.deliver(Side::Sender, open.message, true)?;

        let selector = Selector::from_node(&open.selector).map_err(|error| {
            End::Failed(DataError::Traversal {
                reason: error.to_string(),
            })
        })?;
        let mut traversal = Traversal::new(open.root, &selector, self.hub.config.traversal.clone())
            .map_err(traversal_failed)?;
        let skip = open.skip_blocks.unwrap_or(0);
        let mut index = 0u64;
        let mut sent: HashSet<Cid> = HashSet::new();
        let mut missing: Option<Cid> = None;
        loop {
            let cid = match traversal.next().map_err(traversal_failed)? {
                Step::Visit(_) => continue,
                Step::Done => break,
                Step::Load(load) => load.cid,
            };
            index += 1;
            let bytes = sender_store.get(&cid).await.map_err(backend)?;
            let Some(bytes) = bytes else {
                // Graphsync sends a missing block as metadata only: no data events.
                missing.get_or_insert(cid);
                traversal.missing().map_err(traversal_failed)?;
                continue;
            };
            let size = bytes.len() as u64;
            if index <= skip || sent.contains(&cid) {
                self.checkpoint(false).await?;
                let block = BlockInfo::new(cid, size, index, false);
                self.received(block)?;
                // A skipped load counts as sent for de-duplication, as in graphsync (§7.5).
                sent.insert(cid);
                traversal.provide(&bytes).map_err(traversal_failed)?;
                continue;
            }
            self.checkpoint(true).await?;
            let block = BlockInfo::new(cid, size, index, true);
            let answer = self.calling(
                Side::Sender,
                || sender_handler.on_data_queued(&channel, block),
                |answer| pause_if(matches!(answer, Ok(a) if a.flow == Flow::Pause)),
            );
            let answer = answer.map_err(refused)?;
            if let Some(message) = answer.message {
                self.deliver(Side::Receiver, message, false)?;
            }
            if !self.reachable() {
                return Err(End::Disconnected);
            }
            sender_handler.on_data_sent(&channel, block);
            receiver_store
                .put_keyed(&cid, &bytes)
                .await
                .map_err(backend)?;
            self.received(block)?;
            sent.insert(cid);
            traversal.provide(&bytes).map_err(traversal_failed)?;
            let delay = self.hub.block_delay();
            if !delay.is_zero() {
                Delay::new(delay).await;
            }
        }
        // A paused exchange completes only once resumed, as a paused graphsync response does.
        self.checkpoint(true).await?;
        if let Some(cid) = missing {
            return Err(End::Failed(DataError::MissingBlock { cid }));
        }
        sender_handler.on_channel_completed(&channel, Ok(()));
        self.receiver_handler.on_channel_completed(&channel, Ok(()));
        Ok(())
    }

    /// Reports a block to the receiver's handler.
    fn received(&self, block: BlockInfo) -> Result<(), End> {
        let channel = &self.exchange.channel;
        self.calling(
            Side::Receiver,
            || self.receiver_handler.on_data_received(channel, block),
            |flow| pause_if(matches!(flow, Ok(Flow::Pause))),
        )
        .map_err(refused)?;
        Ok(())
    }

    /// Runs a handler of `side` and applies the pause its answer asks for (`pauses`), unless
    /// `side` was resumed while the handler ran. The pause is applied under the same lock that
    /// ends the call, so a resume either comes before (and voids it) or finds it applied.
    fn calling<R>(
        &self,
        side: Side,
        call: impl FnOnce() -> R,
        pauses: impl FnOnce(&R) -> Option<Pausing>,
    ) -> R {
        let before = {
            let mut state = lock(&self.exchange.state);
            state.calling[side.slot()] = true;
            state.resumes[side.slot()]
        };
        let result = call();
        let mut state = lock(&self.exchange.state);
        state.calling[side.slot()] = false;
        if state.resumes[side.slot()] == before {
            match (pauses(&result), side) {
                (None, _) => {}
                (Some(Pausing::Hold), Side::Sender) => state.held = true,
                (Some(_), Side::Sender) => state.sender_paused = true,
                (Some(_), Side::Receiver) => state.receiver_paused = true,
            }
        }
        result
    }

    /// Whether both ends are up and can reach each other.
    fn reachable(&self) -> bool {
        let sender_up = self
            .sender
            .as_ref()
            .is_none_or(|end| !end.peer.is_shut_down());
        sender_up
            && !self.receiver_peer.is_shut_down()
            && self
                .hub
                .connected(&self.exchange.receiver, &self.exchange.sender)
    }

    /// Handles stops, queued commands and faults; with `flow`, also waits until neither side
    /// is paused or held and a block credit is taken.
    async fn checkpoint(&mut self, flow: bool) -> Result<(), End> {
        loop {
            // Built and consumed once per turn; boxing the command would only add a copy.
            #[allow(clippy::large_enum_variant)]
            enum Next {
                Stop(Stop),
                Control(Control),
                Wait,
                Go,
            }
            let next = {
                let mut state = lock(&self.exchange.state);
                if let Some(stop) = state.stop {
                    Next::Stop(stop)
                } else if let Some(control) = state.control.pop_front() {
                    Next::Control(control)
                } else if flow && (state.receiver_paused || state.sender_paused || state.held) {
                    Next::Wait
                } else {
                    Next::Go
                }
            };
            match next {
                Next::Stop(stop) => return Err(End::Stopped(stop)),
                Next::Control(control) => self.control(control)?,
                Next::Wait => {
                    if !self.reachable() {
                        return Err(End::Disconnected);
                    }
                    self.exchange.notified().await;
                }
                Next::Go => {
                    if !self.reachable() {
                        return Err(End::Disconnected);
                    }
                    if !flow || self.hub.take_credit() {
                        return Ok(());
                    }
                    self.exchange.notified().await;
                }
            }
        }
    }

    /// Carries out one queued command.
    fn control(&mut self, control: Control) -> Result<(), End> {
        match control {
            Control::Deliver(to, message) => self.deliver(to, message, false),
            Control::Attach(Side::Sender, message) if lock(&self.exchange.state).held => {
                // The deferred answer to the opening request decides the exchange's fate.
                let verdict = message
                    .as_response()
                    .map(|response| (response.accepted(), response.is_paused()));
                self.deliver(Side::Receiver, message, false)?;
                match verdict {
                    Some((false, _)) => Err(End::Failed(DataError::Rejected)),
                    Some((true, true)) => Ok(()),
                    _ => {
                        lock(&self.exchange.state).held = false;
                        Ok(())
                    }
                }
            }
            Control::Attach(from, message) => self.deliver(from.other(), message, false),
        }
    }

    /// Hands `message` to `to`'s handler and acts on the answer. `opening` marks the message
    /// that opened the exchange, for which the sender's `Hold` means a deferred answer.
    fn deliver(&mut self, to: Side, message: Message, opening: bool) -> Result<(), End> {
        let channel = self.exchange.channel.clone();
        let handler = match to {
            Side::Receiver => Arc::clone(&self.receiver_handler),
            Side::Sender => match &self.sender {
                Some(end) => Arc::clone(&end.handler),
                None => return Ok(()),
            },
        };
        match message {
            Message::Response(response) => {
                self.calling(
                    to,
                    || handler.on_response_received(&channel, response),
                    |flow| pause_if(matches!(flow, Ok(Flow::Pause))),
                )
                .map_err(refused)?;
                Ok(())
            }
            Message::Request(request) => {
                let hold = if opening {
                    Pausing::Hold
                } else {
                    Pausing::Pause
                };
                let answer = self.calling(
                    to,
                    || handler.on_request_received(&channel, request),
                    |answer| matches!(answer, RequestAnswer::Hold(_)).then_some(hold),
                );
                match answer {
                    RequestAnswer::Proceed(reply) | RequestAnswer::Hold(reply) => {
                        self.reply(to, reply)
                    }
                    RequestAnswer::Reject(reply) => {
                        self.reply(to, reply)?;
                        Err(End::Failed(DataError::Rejected))
                    }
                }
            }
        }
    }

    /// Sends `from`'s reply to a request back to the other side.
    fn reply(&mut self, from: Side, reply: Option<Response>) -> Result<(), End> {
        match reply {
            Some(response) => self.deliver(from.other(), Message::Response(response), false),
            None => Ok(()),
        }
    }
}

/// How a handler's answer stops the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pausing {
    /// Pause the side (`Flow::Pause`, or `Hold` on a running exchange).
    Pause,
    /// Hold the opening request until `attach` or `resume_channel` (`Hold` on the sender).
    Hold,
}

fn pause_if(pause: bool) -> Option<Pausing> {
    pause.then_some(Pausing::Pause)
}

fn traversal_failed(error: ipld_selector::TraversalError) -> End {
    End::Failed(DataError::Traversal {
        reason: error.to_string(),
    })
}

fn refused(source: HandlerError) -> End {
    End::Failed(DataError::Refused { source })
}

fn backend(source: blockstore::Error) -> End {
    End::Failed(DataError::Backend {
        source: Arc::new(source),
    })
}
