//! [`MemNetwork`]: one peer's [`Network`] on a [`MemHub`](super::MemHub), and the task that
//! delivers its inbound messages.

use std::sync::{Arc, Weak};
use std::time::Instant;

use datatransfer_message::{Message, PeerId, decode, to_vec};
use futures::StreamExt;
use futures::channel::mpsc;
use futures_timer::Delay;

use super::{Hub, Peer, lock};
use crate::error::NetworkError;
use crate::network::{Network, Receiver};

/// A network message on its way: the encoded bytes, the sender and when to deliver it.
pub(super) struct Envelope {
    from: PeerId,
    bytes: Vec<u8>,
    due: Option<Instant>,
}

/// One peer's in-memory [`Network`]. Messages are encoded with the wire codec, queued in the
/// receiving peer's bounded inbox and decoded on delivery, in order per sender.
///
/// Cloning gives another handle to the same network.
pub struct MemNetwork<B> {
    hub: Arc<Hub<B>>,
    peer: Arc<Peer<B>>,
}

impl<B> Clone for MemNetwork<B> {
    fn clone(&self) -> Self {
        MemNetwork {
            hub: Arc::clone(&self.hub),
            peer: Arc::clone(&self.peer),
        }
    }
}

impl<B: Send + Sync + 'static> MemNetwork<B> {
    pub(super) fn new(hub: Arc<Hub<B>>, peer: Arc<Peer<B>>) -> Self {
        MemNetwork { hub, peer }
    }

    fn reachable(&self, peer: &PeerId) -> Result<Arc<Peer<B>>, NetworkError> {
        let disconnected = || NetworkError::Disconnected { peer: peer.clone() };
        let target = self.hub.peer(peer).ok_or_else(disconnected)?;
        if self.hub.connected(&self.peer.id, peer) {
            Ok(target)
        } else {
            Err(disconnected())
        }
    }
}

impl<B: Send + Sync + 'static> Network for MemNetwork<B> {
    fn self_peer(&self) -> PeerId {
        self.peer.id.clone()
    }

    fn set_receiver(&self, receiver: Arc<dyn Receiver>) -> Result<(), NetworkError> {
        self.peer
            .receiver
            .set(receiver)
            .map_err(|_| NetworkError::ReceiverAlreadySet)
    }

    async fn send_message(&self, peer: PeerId, message: Message) -> Result<(), NetworkError> {
        let target = self.reachable(&peer)?;
        let bytes = to_vec(&message).map_err(|error| NetworkError::Encode {
            peer: peer.clone(),
            reason: error.to_string(),
        })?;
        let dropped = lock(&self.hub.knobs)
            .dropping
            .contains(&(self.peer.id.clone(), peer.clone()));
        if dropped {
            tracing::debug!(from = %self.peer.id, to = %peer, "message dropped by fault injection");
            return Ok(());
        }
        let latency = self.hub.latency();
        let envelope = Envelope {
            from: self.peer.id.clone(),
            bytes,
            due: (!latency.is_zero()).then(|| Instant::now() + latency),
        };
        lock(&target.inbox).try_send(envelope).map_err(|error| {
            if error.is_full() {
                NetworkError::QueueFull { peer }
            } else {
                NetworkError::ShutDown
            }
        })
    }

    async fn connect(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.reachable(&peer).map(|_| ())
    }

    fn protect(&self, peer: &PeerId, tag: &str) {
        lock(&self.peer.protected)
            .entry(peer.clone())
            .or_default()
            .insert(tag.to_owned());
    }

    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        let mut protected = lock(&self.peer.protected);
        let Some(tags) = protected.get_mut(peer) else {
            return false;
        };
        tags.remove(tag);
        let still = !tags.is_empty();
        if !still {
            protected.remove(peer);
        }
        still
    }
}

/// Delivers a peer's inbound messages in order, each at its due time; messages that arrive
/// across a partition made after sending are lost, and messages before a receiver is set are
/// dropped.
pub(super) async fn deliver<B>(
    hub: Weak<Hub<B>>,
    peer: Weak<Peer<B>>,
    mut inbox: mpsc::Receiver<Envelope>,
) {
    while let Some(envelope) = inbox.next().await {
        if let Some(due) = envelope.due {
            let now = Instant::now();
            if due > now {
                Delay::new(due - now).await;
            }
        }
        let (Some(hub), Some(peer)) = (hub.upgrade(), peer.upgrade()) else {
            return;
        };
        if !hub.connected(&envelope.from, &peer.id) {
            tracing::debug!(from = %envelope.from, to = %peer.id, "message lost in a partition");
            continue;
        }
        let Some(receiver) = peer.receiver.get().cloned() else {
            tracing::debug!(from = %envelope.from, to = %peer.id, "message before a receiver");
            continue;
        };
        match decode(&envelope.bytes) {
            Ok(message) => receiver.receive_message(envelope.from, message),
            Err(source) => receiver.receive_error(NetworkError::Decode {
                peer: envelope.from,
                source: Arc::new(source),
            }),
        }
    }
}
