//! [`Behaviour`]: the swarm side of the node, a libp2p-stream control behaviour that also
//! notices when a peer's last connection closes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use tokio::sync::Notify;

/// The swarm's Graphsync behaviour: a stream-control behaviour (libp2p-stream) through which a
/// [`Node`](super::Node) opens and accepts Graphsync streams. It emits no events and does no stream I/O.
pub struct Behaviour {
    pub(super) inner: libp2p_stream::Behaviour,
    pub(super) disconnects: Arc<Disconnects>,
}

impl Behaviour {
    /// A behaviour with no node attached yet.
    pub fn new() -> Self {
        Behaviour {
            inner: libp2p_stream::Behaviour::new(),
            disconnects: Arc::new(Disconnects::default()),
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::new()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = <libp2p_stream::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = ();

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id,
            remaining_established: 0,
            ..
        }) = event
        {
            self.disconnects.push(peer_id);
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<(), THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// Peers whose last connection closed, waiting for the driver. A set: it holds each peer at
/// most once, so it is bounded by the number of peers.
#[derive(Default)]
pub(super) struct Disconnects {
    peers: Mutex<HashSet<PeerId>>,
    pub(super) notify: Notify,
}

impl Disconnects {
    pub(super) fn push(&self, peer: PeerId) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer);
        self.notify.notify_one();
    }

    pub(super) fn take(&self) -> HashSet<PeerId> {
        std::mem::take(&mut *self.peers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
