//! [`Libp2pNetwork`]: the `/fil/datatransfer/1.2.0` [`Network`] over a libp2p-stream control.

use std::sync::{Arc, OnceLock};

use datatransfer_message::{Message, PeerId, to_vec};
use datatransfer_transport::{Network, NetworkError, Receiver};
use futures::AsyncWriteExt;
use libp2p::{Multiaddr, Stream, Swarm};
use tokio::sync::oneshot;

use super::inbound;
use super::peers::Shared as PeerShared;
use super::swarm::NodeBehaviour;
use super::{NetError, NetworkConfig, PROTOCOL, from_libp2p, to_libp2p};

/// One node's data-transfer [`Network`] over libp2p (Go's `libp2pDataTransferNetwork`).
///
/// - Sending: every message goes on a fresh outbound stream on [`PROTOCOL`]: the stream is
///   opened (dialing the peer by id if needed), the message's DAG-CBOR bytes are written with
///   no length prefix, and the stream is closed; nothing is read back (spec §2.2). Opening is
///   tried [`NetworkConfig::max_attempts`] times, each within
///   [`NetworkConfig::open_timeout`], with Go's backoff between attempts; writing is not
///   retried and must finish within [`NetworkConfig::send_timeout`].
///   [`Network::send_message_connected`] (a channel responder's sends) never dials: each
///   attempt needs an open connection to the peer, and without one the send fails at once
///   with [`NetError::NotConnected`], so that after a disconnect only the initiator dials.
/// - Receiving: every inbound stream is read to its end (at most
///   [`NetworkConfig::max_message_size`] bytes within [`NetworkConfig::read_timeout`]) and
///   every complete message in it goes to the [`Receiver`] with the sender's peer id from the
///   connection. An empty stream (Go's `ConnectWithRetry`) is normal. A stream that does not
///   decode is dropped and reported to [`Receiver::receive_error`]; the messages it completed
///   before are delivered. One peer's streams are read one after another, in the order they
///   arrived.
/// - [`Network::protect`] / [`Network::unprotect`] keep the peer's connections alive through
///   the [`PeerBook`](super::PeerBook) behaviour.
///
/// Cloning gives another handle; the inbound task stops when the last handle is dropped.
#[derive(Clone)]
pub struct Libp2pNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    local: libp2p::PeerId,
    control: libp2p_stream::Control,
    peers: Arc<PeerShared>,
    receiver: Arc<OnceLock<Arc<dyn Receiver>>>,
    config: NetworkConfig,
    /// Dropped with the last handle, which stops the inbound task.
    _stop: oneshot::Sender<()>,
}

impl Libp2pNetwork {
    /// The network of the swarm that carries `behaviour` (built by
    /// [`build_swarm`](super::build_swarm)), whose local peer is `local`.
    ///
    /// # Errors
    /// [`NetError::AlreadyRegistered`] when a network was already made on this behaviour (its
    /// [`PeerBook`](super::PeerBook) hands its inbound [`PROTOCOL`] streams to one network only,
    /// for the swarm's lifetime).
    ///
    /// # Panics
    /// When called outside a tokio runtime (the inbound task is spawned on it).
    pub fn new(
        behaviour: &NodeBehaviour,
        local: libp2p::PeerId,
        config: NetworkConfig,
    ) -> Result<Self, NetError> {
        Self::with_parts(
            behaviour.datatransfer.new_control(),
            Arc::clone(&behaviour.peer_book.shared),
            local,
            config,
        )
    }

    /// The network of `swarm` (as [`Libp2pNetwork::new`] with the swarm's own peer id).
    ///
    /// # Errors
    /// As [`Libp2pNetwork::new`].
    ///
    /// # Panics
    /// As [`Libp2pNetwork::new`].
    pub fn for_swarm(
        swarm: &Swarm<NodeBehaviour>,
        config: NetworkConfig,
    ) -> Result<Self, NetError> {
        Self::new(swarm.behaviour(), *swarm.local_peer_id(), config)
    }

    fn with_parts(
        control: libp2p_stream::Control,
        peers: Arc<PeerShared>,
        local: libp2p::PeerId,
        config: NetworkConfig,
    ) -> Result<Self, NetError> {
        let incoming = peers.take_inbound().ok_or(NetError::AlreadyRegistered)?;
        let receiver = Arc::new(OnceLock::new());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(inbound::run(
            incoming,
            Arc::clone(&receiver),
            config.clone(),
            stopped,
        ));
        Ok(Libp2pNetwork {
            inner: Arc::new(Inner {
                local,
                control,
                peers,
                receiver,
                config,
                _stop: stop,
            }),
        })
    }

    /// The local libp2p peer id.
    pub fn local_peer_id(&self) -> libp2p::PeerId {
        self.inner.local
    }

    /// The network's settings.
    pub fn config(&self) -> &NetworkConfig {
        &self.inner.config
    }

    /// Remembers an address of `peer`, offered when a stream to it needs a dial (the same as
    /// `Swarm::add_peer_address` on the swarm).
    pub fn add_address(&self, peer: libp2p::PeerId, address: Multiaddr) {
        self.inner.peers.add_address(peer, address);
    }

    /// Opens a stream to `peer`, retrying as configured; with `dial` false only over a
    /// connection that is open at each attempt (no connection fails at once with
    /// [`NetError::NotConnected`]).
    async fn open(&self, peer: &PeerId, dial: bool) -> Result<Stream, NetworkError> {
        let remote = to_libp2p(peer).map_err(|error| backend(peer, error))?;
        let config = &self.inner.config;
        let attempts = config.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // libp2p-stream dials a peer it has no connection to: a send that must not dial
            // looks first. (A connection closing between this look and the open can still
            // let libp2p-stream dial; the window is the swarm's next poll.)
            if !dial && !self.inner.peers.is_connected(&remote) {
                tracing::debug!(%peer, attempt, "no connection; a responder's send does not dial");
                return Err(backend(peer, NetError::NotConnected { peer: peer.clone() }));
            }
            let mut control = self.inner.control.clone();
            let opened =
                tokio::time::timeout(config.open_timeout, control.open_stream(remote, PROTOCOL))
                    .await;
            match opened {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(error)) => {
                    tracing::debug!(%peer, attempt, %error, "opening a data-transfer stream failed");
                }
                Err(_) => {
                    tracing::debug!(%peer, attempt, "opening a data-transfer stream timed out");
                }
            }
            if attempt >= attempts {
                return Err(NetworkError::Disconnected { peer: peer.clone() });
            }
            tokio::time::sleep(config.backoff(attempt - 1)).await;
        }
    }
}

impl Network for Libp2pNetwork {
    fn self_peer(&self) -> PeerId {
        from_libp2p(&self.inner.local)
    }

    fn set_receiver(&self, receiver: Arc<dyn Receiver>) -> Result<(), NetworkError> {
        self.inner
            .receiver
            .set(receiver)
            .map_err(|_| NetworkError::ReceiverAlreadySet)
    }

    async fn send_message(&self, peer: PeerId, message: Message) -> Result<(), NetworkError> {
        self.send(peer, message, true).await
    }

    async fn send_message_connected(
        &self,
        peer: PeerId,
        message: Message,
    ) -> Result<(), NetworkError> {
        self.send(peer, message, false).await
    }

    async fn connect(&self, peer: PeerId) -> Result<(), NetworkError> {
        // Go's `ConnectWithRetry`: open a stream with the same retries and close it unwritten.
        let mut stream = self.open(&peer, true).await?;
        let closed = tokio::time::timeout(self.inner.config.send_timeout, stream.close()).await;
        if !matches!(closed, Ok(Ok(()))) {
            tracing::debug!(%peer, "closing an empty data-transfer stream failed");
        }
        Ok(())
    }

    fn protect(&self, peer: &PeerId, tag: &str) {
        match to_libp2p(peer) {
            Ok(remote) => self.inner.peers.protect(remote, tag),
            Err(error) => tracing::debug!(%peer, %error, "cannot protect an invalid peer id"),
        }
    }

    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool {
        match to_libp2p(peer) {
            Ok(remote) => self.inner.peers.unprotect(remote, tag),
            Err(_) => false,
        }
    }
}

impl Libp2pNetwork {
    /// Sends one message on a fresh stream; with `dial` false only over an open connection.
    async fn send(&self, peer: PeerId, message: Message, dial: bool) -> Result<(), NetworkError> {
        let bytes = to_vec(&message).map_err(|error| NetworkError::Encode {
            peer: peer.clone(),
            reason: error.to_string(),
        })?;
        let limit = self.inner.config.max_message_size;
        if bytes.len() > limit {
            let error = NetError::MessageTooLarge {
                size: bytes.len(),
                limit,
            };
            return Err(backend(&peer, error));
        }
        let mut stream = self.open(&peer, dial).await?;
        let written = tokio::time::timeout(self.inner.config.send_timeout, async {
            stream.write_all(&bytes).await?;
            stream.close().await
        })
        .await;
        // On failure the stream is dropped, which resets it (Go: `Reset`).
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(backend(&peer, NetError::Write { source })),
            Err(_) => Err(backend(
                &peer,
                NetError::SendTimedOut {
                    after: self.inner.config.send_timeout,
                },
            )),
        }
    }
}

/// A [`NetworkError::Backend`] for `peer` caused by `error`.
fn backend(peer: &PeerId, error: NetError) -> NetworkError {
    NetworkError::Backend {
        peer: peer.clone(),
        source: Arc::new(error),
    }
}
