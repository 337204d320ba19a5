//! [`PeerBook`]: the behaviour behind protect/unprotect (connections to protected peers are
//! kept alive) and a small address book for dialing peers by id.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use libp2p::{PeerId, Stream};
use tokio::sync::mpsc;

use super::PROTOCOL;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, NewExternalAddrOfPeer, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};

/// Addresses kept per peer; the oldest is forgotten first.
const ADDRESSES_PER_PEER: usize = 8;
/// Peers whose addresses are kept; the peer added longest ago is forgotten first.
const PEERS_WITH_ADDRESSES: usize = 1024;
/// Inbound data-transfer streams waiting for the network's acceptor; more are dropped.
const INBOUND_QUEUE: usize = 64;

/// The swarm behaviour that keeps connections to protected peers open and remembers peer
/// addresses for dials by peer id.
///
/// Go's `Protect(peer, tag)` asks the connection manager not to trim the peer's connections.
/// rust-libp2p has no connection manager; a connection closes when no handler keeps it alive
/// for the swarm's idle timeout. So this behaviour's handler answers
/// `connection_keep_alive()` with "the peer holds at least one tag", and a change of tags
/// wakes the peer's connections so that the swarm looks again at once. Like Go's protection,
/// this neither dials nor reopens a closed connection.
///
/// Addresses come from `Swarm::add_peer_address` and from
/// [`Libp2pNetwork::add_address`](super::Libp2pNetwork::add_address), bounded to 8 per peer
/// and 1 024 peers; they are offered whenever the swarm dials a peer by id (as opening a
/// stream to an unconnected peer does).
///
/// It also knows which peers the swarm is connected to, so that a
/// [`Network::send_message_connected`](crate::Network::send_message_connected) (a channel
/// responder's send) goes only over an open connection and never dials.
///
/// Its handler also accepts the inbound `/fil/datatransfer/1.2.0` streams and queues them (64
/// at most; more are dropped) for the [`Libp2pNetwork`](super::Libp2pNetwork): libp2p-stream's
/// own acceptor holds a single stream and drops the next one until its reader has taken it,
/// which loses messages a peer sends in a quick burst.
pub struct PeerBook {
    pub(super) shared: Arc<Shared>,
}

impl PeerBook {
    /// A behaviour with no tags and no addresses.
    pub fn new() -> Self {
        let (inbound, accepted) = mpsc::channel(INBOUND_QUEUE);
        PeerBook {
            shared: Arc::new(Shared {
                state: Mutex::default(),
                inbound,
                accepted: Mutex::new(Some(accepted)),
            }),
        }
    }
}

impl Default for PeerBook {
    fn default() -> Self {
        PeerBook::new()
    }
}

/// The state the behaviour, its handlers and the network handles share.
pub(super) struct Shared {
    state: Mutex<State>,
    /// Where handlers queue inbound data-transfer streams.
    inbound: mpsc::Sender<(PeerId, Stream)>,
    /// The other end, taken once by the network.
    accepted: Mutex<Option<mpsc::Receiver<(PeerId, Stream)>>>,
}

#[derive(Default)]
struct State {
    tags: HashMap<PeerId, HashSet<String>>,
    wakers: HashMap<PeerId, HashMap<ConnectionId, Waker>>,
    addresses: HashMap<PeerId, VecDeque<Multiaddr>>,
    address_order: VecDeque<PeerId>,
    /// Established connections per connected peer, as the swarm reports them (a peer is
    /// removed with its last connection, so this is bounded by the swarm's connections).
    connections: HashMap<PeerId, usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue of inbound data-transfer streams; `None` once taken.
    pub(super) fn take_inbound(&self) -> Option<mpsc::Receiver<(PeerId, Stream)>> {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Adds `tag` for `peer`.
    pub(super) fn protect(&self, peer: PeerId, tag: &str) {
        let mut state = self.lock();
        state.tags.entry(peer).or_default().insert(tag.to_owned());
        state.wake(&peer);
    }

    /// Removes `tag` for `peer`; whether another tag still protects it.
    pub(super) fn unprotect(&self, peer: PeerId, tag: &str) -> bool {
        let mut state = self.lock();
        let Some(tags) = state.tags.get_mut(&peer) else {
            return false;
        };
        tags.remove(tag);
        let still = !tags.is_empty();
        if !still {
            state.tags.remove(&peer);
            state.wake(&peer);
        }
        still
    }

    /// Whether `peer` holds a tag.
    pub(super) fn is_protected(&self, peer: &PeerId) -> bool {
        self.lock().tags.contains_key(peer)
    }

    /// Remembers an address of `peer`.
    pub(super) fn add_address(&self, peer: PeerId, address: Multiaddr) {
        let mut state = self.lock();
        if !state.addresses.contains_key(&peer) {
            if state.address_order.len() >= PEERS_WITH_ADDRESSES
                && let Some(oldest) = state.address_order.pop_front()
            {
                state.addresses.remove(&oldest);
            }
            state.address_order.push_back(peer);
        }
        let known = state.addresses.entry(peer).or_default();
        if known.contains(&address) {
            return;
        }
        if known.len() >= ADDRESSES_PER_PEER {
            known.pop_front();
        }
        known.push_back(address);
    }

    /// Whether the swarm has at least one established connection to `peer`.
    pub(super) fn is_connected(&self, peer: &PeerId) -> bool {
        self.lock().connections.contains_key(peer)
    }

    fn connection_opened(&self, peer: PeerId) {
        *self.lock().connections.entry(peer).or_default() += 1;
    }

    fn connection_closed(&self, peer: PeerId, remaining: usize) {
        let mut state = self.lock();
        if remaining == 0 {
            state.connections.remove(&peer);
        } else {
            state.connections.insert(peer, remaining);
        }
    }

    fn addresses(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.lock()
            .addresses
            .get(peer)
            .map(|known| known.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn register(&self, peer: PeerId, connection: ConnectionId, waker: &Waker) {
        let mut state = self.lock();
        let wakers = state.wakers.entry(peer).or_default();
        match wakers.get_mut(&connection) {
            Some(known) if known.will_wake(waker) => {}
            _ => {
                wakers.insert(connection, waker.clone());
            }
        }
    }

    fn forget(&self, peer: PeerId, connection: ConnectionId) {
        let mut state = self.lock();
        if let Some(wakers) = state.wakers.get_mut(&peer) {
            wakers.remove(&connection);
            if wakers.is_empty() {
                state.wakers.remove(&peer);
            }
        }
    }
}

impl State {
    fn wake(&self, peer: &PeerId) {
        for waker in self.wakers.get(peer).into_iter().flat_map(HashMap::values) {
            waker.wake_by_ref();
        }
    }
}

impl NetworkBehaviour for PeerBook {
    type ConnectionHandler = KeepAlive;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(maybe_peer
            .map(|peer| self.shared.addresses(&peer))
            .unwrap_or_default())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(KeepAlive::new(&self.shared, peer, connection))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(KeepAlive::new(&self.shared, peer, connection))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::NewExternalAddrOfPeer(NewExternalAddrOfPeer { peer_id, addr }) => {
                self.shared.add_address(peer_id, addr.clone());
            }
            FromSwarm::ConnectionEstablished(ConnectionEstablished { peer_id, .. }) => {
                self.shared.connection_opened(peer_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                self.shared.forget(peer_id, connection_id);
                self.shared
                    .connection_closed(peer_id, remaining_established);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// The connection handler of [`PeerBook`]: accepts inbound data-transfer streams, and keeps
/// the connection alive while its peer is protected.
pub struct KeepAlive {
    shared: Arc<Shared>,
    peer: PeerId,
    connection: ConnectionId,
}

impl KeepAlive {
    fn new(shared: &Arc<Shared>, peer: PeerId, connection: ConnectionId) -> Self {
        KeepAlive {
            shared: Arc::clone(shared),
            peer,
            connection,
        }
    }
}

impl ConnectionHandler for KeepAlive {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<libp2p::StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.shared.is_protected(&self.peer)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        // Woken when the peer's tags change, so that the swarm asks `connection_keep_alive`
        // again.
        self.shared.register(self.peer, self.connection, cx.waker());
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
            protocol: stream,
            ..
        }) = event
            && self.shared.inbound.try_send((self.peer, stream)).is_err()
        {
            tracing::debug!(peer = %self.peer, "inbound data-transfer queue full; stream dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u64) -> Multiaddr {
        format!("/memory/{n}").parse().expect("a memory address")
    }

    #[test]
    fn a_peer_stays_protected_until_its_last_tag_goes() {
        let book = PeerBook::new();
        let peer = PeerId::random();
        assert!(!book.shared.is_protected(&peer));
        book.shared.protect(peer, "a");
        book.shared.protect(peer, "b");
        book.shared.protect(peer, "b");
        assert!(book.shared.unprotect(peer, "a"));
        assert!(book.shared.is_protected(&peer));
        assert!(!book.shared.unprotect(peer, "b"));
        assert!(!book.shared.is_protected(&peer));
        assert!(!book.shared.unprotect(peer, "b"));
    }

    #[test]
    fn addresses_are_bounded_per_peer_and_in_peers() {
        let book = PeerBook::new();
        let peer = PeerId::random();
        for n in 0..12 {
            book.shared.add_address(peer, address(n));
        }
        book.shared.add_address(peer, address(11));
        let kept = book.shared.addresses(&peer);
        assert_eq!(kept, (4..12).map(address).collect::<Vec<_>>());

        let others: Vec<PeerId> = (0..PEERS_WITH_ADDRESSES)
            .map(|_| PeerId::random())
            .collect();
        for other in &others {
            book.shared.add_address(*other, address(1));
        }
        assert!(
            book.shared.addresses(&peer).is_empty(),
            "the oldest peer is forgotten"
        );
        assert_eq!(book.shared.addresses(&others[0]), vec![address(1)]);
        assert_eq!(book.shared.lock().addresses.len(), PEERS_WITH_ADDRESSES);
    }

    #[test]
    fn the_inbound_queue_is_taken_once() {
        let book = PeerBook::new();
        assert!(book.shared.take_inbound().is_some());
        assert!(book.shared.take_inbound().is_none());
    }
}
