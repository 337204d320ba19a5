//! The driver task: owns both cores, answers what they ask, and moves their messages between
//! the stream tasks and the [`Node`](super::Node) handles.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use blockstore::Blockstore;
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ipld_selector::Selector;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use super::behaviour::Disconnects;
use super::streams::{Outbound, read_stream, spawn_writer};
use super::{Config, NodeError, RequestEvent, RequestHandle};
use crate::extension::Extensions;
use crate::message::{Message, RequestId};
use crate::requester::{self, Outcome, Requester};
use crate::responder::{self, MessageId, RequestDecision, Responder};

/// A command from a [`Node`] handle.
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
}

/// Where a request's progress and outcome go.
pub(super) struct Subscriber {
    events: mpsc::Sender<RequestEvent>,
    outcome: oneshot::Sender<Outcome>,
}

/// A response message's send result: the peer, its id and whether it was written.
type SendReport = Pin<Box<dyn Future<Output = (PeerId, MessageId, bool)> + Send>>;

/// The driver task's state.
pub(super) struct Driver<B> {
    pub(super) config: Config,
    pub(super) store: Arc<B>,
    pub(super) control: libp2p_stream::Control,
    pub(super) responder: Responder<PeerId>,
    pub(super) requester: Requester<PeerId>,
    pub(super) writers: HashMap<PeerId, mpsc::Sender<Outbound>>,
    pub(super) sends: FuturesUnordered<SendReport>,
    pub(super) subscribers: HashMap<RequestId, Subscriber>,
    pub(super) inbound_tx: mpsc::Sender<(PeerId, Message)>,
    pub(super) disconnects: Arc<Disconnects>,
}

impl<B: Blockstore + 'static> Driver<B> {
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<(PeerId, Message)>,
        mut incoming: libp2p_stream::IncomingStreams,
    ) {
        loop {
            self.drain().await;
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                Some((peer, message)) = inbound.recv() => {
                    self.responder.handle_message(peer, message.clone());
                    self.requester.handle_message(peer, message);
                }
                Some((peer, stream)) = incoming.next() => {
                    tokio::spawn(read_stream(
                        peer,
                        stream,
                        self.inbound_tx.clone(),
                        self.config.frame,
                    ));
                }
                () = self.disconnects.notify.notified() => {
                    for peer in self.disconnects.take() {
                        self.writers.remove(&peer);
                        self.responder.handle_peer_disconnected(&peer);
                        self.requester.handle_peer_disconnected(&peer);
                    }
                }
                Some((peer, id, written)) = self.sends.next(), if !self.sends.is_empty() => {
                    let result = if written {
                        self.responder.handle_sent(&peer, id)
                    } else {
                        self.responder.handle_send_failed(&peer, id)
                    };
                    if let Err(error) = result {
                        tracing::debug!(%peer, ?id, %error, "stale send report");
                    }
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
                let result = self
                    .requester
                    .request(peer, root, &selector, extensions)
                    .map_err(|source| NodeError::Request { source })
                    .map(|id| {
                        let (events_tx, events) = mpsc::channel(self.config.event_capacity.max(1));
                        let (outcome_tx, outcome) = oneshot::channel();
                        self.subscribers.insert(
                            id,
                            Subscriber {
                                events: events_tx,
                                outcome: outcome_tx,
                            },
                        );
                        RequestHandle {
                            id,
                            events,
                            outcome,
                        }
                    });
                // A caller that stopped waiting still has its request run to the end.
                let _ = reply.send(result);
            }
            Command::Cancel { request, reply } => {
                let result = self
                    .requester
                    .cancel(request)
                    .map_err(|source| NodeError::Command { request, source });
                let _ = reply.send(result);
            }
        }
    }

    /// Drains both cores until neither has anything left, answering what they ask.
    async fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.responder.poll_event() {
                progressed = true;
                self.responder_event(event).await;
            }
            while let Some(transmit) = self.responder.poll_transmit() {
                progressed = true;
                self.send(transmit.peer, transmit.message, Some(transmit.id))
                    .await;
            }
            while let Some(event) = self.requester.poll_event() {
                progressed = true;
                self.requester_event(event).await;
            }
            while let Some((peer, message)) = self.requester.poll_transmit() {
                progressed = true;
                self.send(peer, message, None).await;
            }
            if !progressed {
                return;
            }
        }
    }

    async fn responder_event(&mut self, event: responder::Event<PeerId>) {
        match event {
            responder::Event::LoadBlock { peer, request, cid } => {
                let data = load(self.store.as_ref(), &cid).await;
                if let Err(error) = self.responder.provide_block(&peer, request, cid, data) {
                    tracing::debug!(%peer, ?request, %error, "block load no longer wanted");
                }
            }
            responder::Event::RequestReceived {
                peer,
                request,
                default_validated,
            } => {
                let decision = match &self.config.request_hook {
                    Some(hook) => (hook.0)(&peer, &request, default_validated),
                    None if default_validated => RequestDecision::validate(),
                    None => RequestDecision::reject(),
                };
                if let Err(error) = self
                    .responder
                    .handle_request_decision(&peer, request.id, decision)
                {
                    tracing::debug!(%peer, request = ?request.id, %error, "stale request decision");
                }
            }
            other => tracing::trace!(event = ?other, "responder event"),
        }
    }

    async fn requester_event(&mut self, event: requester::Event<PeerId>) {
        match event {
            requester::Event::LoadBlock { request, cid } => {
                let data = load(self.store.as_ref(), &cid).await;
                if let Err(error) = self.requester.provide_block(request, cid, data) {
                    tracing::debug!(?request, %error, "local block refused");
                }
            }
            requester::Event::StoreBlock { request, cid, data } => {
                if let Err(error) = self.store.put_keyed(&cid, &data).await {
                    tracing::warn!(?request, %cid, %error, "storing a verified block failed");
                }
            }
            requester::Event::ResponseReceived {
                request, status, ..
            } => self.notify(request, RequestEvent::ResponseReceived { status }),
            requester::Event::BlockReceived {
                request,
                cid,
                size,
                wire_size,
                ..
            } => self.notify(
                request,
                RequestEvent::BlockReceived {
                    cid,
                    size,
                    wire_size,
                },
            ),
            requester::Event::BlockMissing { request, cid, .. } => {
                self.notify(request, RequestEvent::BlockMissing { cid });
            }
            requester::Event::NetworkError { request, .. } => {
                self.notify(request, RequestEvent::PeerDisconnected);
            }
            requester::Event::Completed { request, outcome } => {
                if let Some(subscriber) = self.subscribers.remove(&request) {
                    // A caller that dropped its handle no longer wants the outcome.
                    let _ = subscriber.outcome.send(outcome);
                }
            }
            other => tracing::trace!(event = ?other, "requester event"),
        }
    }

    fn notify(&mut self, request: RequestId, event: RequestEvent) {
        if let Some(subscriber) = self.subscribers.get(&request)
            && subscriber.events.try_send(event).is_err()
        {
            tracing::trace!(?request, "progress event dropped: receiver full or gone");
        }
    }

    /// Queues `message` on `peer`'s writer, starting the writer if needed.
    async fn send(&mut self, peer: PeerId, message: Message, id: Option<MessageId>) {
        let writer = self
            .writers
            .entry(peer)
            .or_insert_with(|| spawn_writer(peer, self.control.clone(), &self.config));
        let report = id.map(|id| {
            let (report, written) = oneshot::channel();
            self.sends.push(Box::pin(async move {
                (peer, id, written.await.unwrap_or(false))
            }));
            report
        });
        if writer.send(Outbound { message, report }).await.is_err() {
            // The writer is gone: its report slot was dropped, which reads as a failed send.
            self.writers.remove(&peer);
            tracing::debug!(%peer, "outbound writer stopped");
        }
    }
}

/// Reads a block from the store; a store error counts as a missing block.
async fn load<B: Blockstore>(store: &B, cid: &Cid) -> Option<Bytes> {
    match store.get(cid).await {
        Ok(data) => data.map(Bytes::from),
        Err(error) => {
            tracing::warn!(%cid, %error, "blockstore read failed");
            None
        }
    }
}
