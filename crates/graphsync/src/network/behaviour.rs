//! [`Behaviour`]: the swarm side of the node, a libp2p-stream control behaviour (outbound
//! streams) whose connection handler also accepts the inbound Graphsync streams into a bounded
//! queue, and which notices when a peer's last connection closes.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, InboundUpgrade, Multiaddr, UpgradeInfo};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent,
    ConnectionHandlerSelect, ConnectionId, FromSwarm, NetworkBehaviour, SubstreamProtocol,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, Stream, StreamProtocol};
use tokio::sync::{Notify, mpsc, watch};

use super::Version;

/// An accepted inbound stream: its peer, the stream, the version it negotiated, and a signal
/// of its connection's end (the sender lives in the connection's handler, so `changed()`
/// fails once the connection is gone).
pub(super) type Accepted = (PeerId, Stream, Version, watch::Receiver<()>);

/// The swarm's Graphsync behaviour: a stream-control behaviour (libp2p-stream) through which a
/// [`Node`](super::Node) opens Graphsync streams, and whose connection handlers accept the
/// inbound ones. It emits no events and does no stream I/O.
///
/// Inbound streams are not taken through libp2p-stream's acceptor: that one holds a single
/// stream and drops the next until its consumer has polled, so a burst of streams (many
/// peers at once, or one peer opening several) lost requests whenever the node was busy.
/// Instead each connection handler puts a negotiated stream straight into a bounded queue
/// ([`Config::accept_capacity`](super::Config::accept_capacity), default 256) that the node's
/// driver drains; only a stream arriving while the queue is full is dropped (logged at debug
/// level, the peer sees its stream reset). Before a node is spawned on the behaviour no
/// Graphsync protocol is offered at all.
pub struct Behaviour {
    pub(super) inner: libp2p_stream::Behaviour,
    pub(super) disconnects: Arc<Disconnects>,
    pub(super) acceptor: Arc<Acceptor>,
}

impl Behaviour {
    /// A behaviour with no node attached yet.
    pub fn new() -> Self {
        Behaviour {
            inner: libp2p_stream::Behaviour::new(),
            disconnects: Arc::new(Disconnects::default()),
            acceptor: Arc::new(Acceptor::default()),
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::new()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = ConnectionHandlerSelect<
        <libp2p_stream::Behaviour as NetworkBehaviour>::ConnectionHandler,
        AcceptHandler,
    >;
    type ToSwarm = ();

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let streams = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(streams.select(AcceptHandler::new(peer, &self.acceptor)))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let streams = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(streams.select(AcceptHandler::new(peer, &self.acceptor)))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                other_established: 0,
                ..
            }) => self.disconnects.connected(peer_id),
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                remaining_established: 0,
                ..
            }) => self.disconnects.push(peer_id),
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        // Both handlers emit no events (their event types are uninhabited).
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<(), THandlerInEvent<Self>>> {
        self.inner
            .poll(cx)
            .map(|event| event.map_in(|never| match never {}))
    }
}

/// Peers whose last connection closed, waiting for the driver (a set: it holds each peer at
/// most once, so it is bounded by the number of peers), and the connection epoch of every
/// connected peer: a number drawn when the peer goes from no connection to one, forgotten
/// when its last connection closes. A message queued for a peer carries the epoch of that
/// moment; the writer sends it only while the peer is still in the same epoch, so a message
/// queued before a disconnect fails instead of going out on a later connection.
#[derive(Default)]
pub(super) struct Disconnects {
    peers: Mutex<HashSet<PeerId>>,
    pub(super) notify: Notify,
    epochs: Mutex<HashMap<PeerId, u64>>,
    last_epoch: AtomicU64,
}

impl Disconnects {
    /// The peer's last connection closed.
    pub(super) fn push(&self, peer: PeerId) {
        self.epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&peer);
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer);
        self.notify.notify_one();
    }

    /// The peer's first connection is established: a new epoch starts.
    fn connected(&self, peer: PeerId) {
        let epoch = self.last_epoch.fetch_add(1, Ordering::Relaxed) + 1;
        self.epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer, epoch);
    }

    /// The peer's connection epoch; `None` while no connection to it is established.
    pub(super) fn epoch(&self, peer: &PeerId) -> Option<u64> {
        self.epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .copied()
    }

    pub(super) fn take(&self) -> HashSet<PeerId> {
        std::mem::take(&mut *self.peers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Where the connection handlers put inbound Graphsync streams: empty until a node is spawned
/// on the behaviour, then the protocols it accepts and its bounded queue.
#[derive(Default)]
pub(super) struct Acceptor {
    slot: Mutex<Option<Accepting>>,
}

struct Accepting {
    protocols: Vec<Version>,
    queue: mpsc::Sender<Accepted>,
}

impl Acceptor {
    /// Starts accepting `protocols` into a queue of `capacity` (at least 1) streams; `None`
    /// when a running node already accepts on this behaviour.
    pub(super) fn register(
        &self,
        protocols: Vec<Version>,
        capacity: usize,
    ) -> Option<mpsc::Receiver<Accepted>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|open| !open.queue.is_closed()) {
            return None;
        }
        let (queue, accepted) = mpsc::channel(capacity.max(1));
        *slot = Some(Accepting { protocols, queue });
        Some(accepted)
    }

    /// The protocols offered to peers: none while no node accepts.
    fn protocols(&self) -> Vec<StreamProtocol> {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(open) if !open.queue.is_closed() => {
                open.protocols.iter().map(|v| v.protocol()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Queues a negotiated stream with its connection's end signal; drops it when the queue
    /// is full or no node reads it.
    fn push(
        &self,
        peer: PeerId,
        stream: Stream,
        protocol: &StreamProtocol,
        closed: watch::Receiver<()>,
    ) {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(open) = slot.as_ref() else {
            tracing::debug!(%peer, %protocol, "no graphsync node; inbound stream dropped");
            return;
        };
        let Some(version) = open
            .protocols
            .iter()
            .copied()
            .find(|version| version.protocol() == *protocol)
        else {
            tracing::debug!(%peer, %protocol, "protocol no longer accepted; stream dropped");
            return;
        };
        if let Err(error) = open.queue.try_send((peer, stream, version, closed)) {
            tracing::debug!(%peer, %protocol, %error, "graphsync accept queue: stream dropped");
        }
    }
}

/// The connection handler half that accepts inbound Graphsync streams (the other half,
/// libp2p-stream's, opens the outbound ones).
pub struct AcceptHandler {
    peer: PeerId,
    acceptor: Arc<Acceptor>,
    /// Dropped with the handler, that is when the connection closes: the reader tasks of the
    /// streams it accepted end then, even if their streams never report an end.
    closed: watch::Sender<()>,
}

impl AcceptHandler {
    fn new(peer: PeerId, acceptor: &Arc<Acceptor>) -> Self {
        AcceptHandler {
            peer,
            acceptor: Arc::clone(acceptor),
            closed: watch::channel(()).0,
        }
    }
}

impl ConnectionHandler for AcceptHandler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = AcceptUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(
            AcceptUpgrade {
                protocols: self.acceptor.protocols(),
            },
            (),
        )
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            self.acceptor
                .push(self.peer, stream, &protocol, self.closed.subscribe());
        }
    }
}

/// The inbound upgrade of [`AcceptHandler`]: offers the node's Graphsync versions and yields
/// the negotiated stream with its protocol.
pub struct AcceptUpgrade {
    protocols: Vec<StreamProtocol>,
}

impl UpgradeInfo for AcceptUpgrade {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.protocols.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for AcceptUpgrade {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, protocol: Self::Info) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_offered_before_a_node_registers() {
        let acceptor = Acceptor::default();
        assert!(acceptor.protocols().is_empty());
    }

    #[test]
    fn one_node_accepts_at_a_time_and_its_protocols_are_offered_in_order() {
        let acceptor = Acceptor::default();
        let queue = acceptor
            .register(vec![Version::V2, Version::V1], 8)
            .expect("the first node registers");
        assert_eq!(
            acceptor.protocols(),
            [Version::V2.protocol(), Version::V1.protocol()]
        );
        assert!(acceptor.register(vec![Version::V1], 8).is_none());
        assert_eq!(queue.max_capacity(), 8);

        // Once the node's queue is gone, nothing is offered and another node may register.
        drop(queue);
        assert!(acceptor.protocols().is_empty());
        let queue = acceptor
            .register(vec![Version::V1], 0)
            .expect("a node registers after the first one is gone");
        assert_eq!(acceptor.protocols(), [Version::V1.protocol()]);
        assert_eq!(queue.max_capacity(), 1, "a capacity of 0 means 1");
    }
}
