//! The data-transfer network protocol `/fil/datatransfer/1.2.0` over rust-libp2p (spec §2),
//! and a ready-made swarm for a node (feature `libp2p`, on by default).
//!
//! - [`Libp2pNetwork`]: the [`Network`](crate::Network) the [`Manager`](crate::Manager) sends
//!   and receives its messages through, one message per stream as go-data-transfer does, with
//!   Go's retries, backoff and timeouts from [`NetworkConfig`];
//! - [`build_swarm`] with [`SwarmConfig`]: one [`Swarm`](libp2p::Swarm) with a
//!   [`NodeBehaviour`] (Graphsync, data-transfer, [`PeerBook`], identify, ping) on TCP + noise +
//!   yamux, QUIC and the in-process memory transport;
//! - [`Node`] with its [`NodeBuilder`]: all of the above assembled with a graphsync node, the
//!   graphsync transport, a channel store and a started [`Manager`](crate::Manager), the swarm
//!   driven by a task of its own;
//! - [`PeerBook`]: what `protect`/`unprotect` rest on (a protected peer's connections are kept
//!   alive) and a bounded address book for dials by peer id;
//! - [`to_libp2p`] and [`from_libp2p`]: the wire [`PeerId`] (raw multihash bytes) and libp2p's
//!   peer id, one to one.
//!
//! Framing (spec §2.2): a message is its DAG-CBOR bytes, alone on a stream the sender opens
//! and closes, with no length prefix; the receiver reads the stream to its end and decodes
//! every message in it. Bounds: [`NetworkConfig::max_message_size`] (10 MiB, Go's decoder
//! budget) for a message sent and for the bytes read from one stream,
//! [`NetworkConfig::read_timeout`] per inbound stream, [`NetworkConfig::max_inbound_peers`]
//! peers read at once with [`NetworkConfig::inbound_streams_per_peer`] queued streams each,
//! and 64 accepted streams waiting for the acceptor ([`PeerBook`]). Outbound there is no queue:
//! each send holds its own stream for at most the open attempts and the send timeout.
//!
//! # Examples
//! Two nodes on the memory transport; one sends a message to the other:
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use datatransfer::libp2p::{Libp2pNetwork, NetworkConfig, SwarmConfig, build_swarm};
//! use datatransfer::{Network, NetworkError, PeerId, TransferId};
//! use datatransfer_transport::Receiver;
//! use datatransfer_message::{Message, cancel_request};
//! use futures::StreamExt;
//! use libp2p::identity::Keypair;
//! use libp2p::swarm::SwarmEvent;
//!
//! struct Inbox(tokio::sync::mpsc::Sender<(PeerId, Message)>);
//! impl Receiver for Inbox {
//!     fn receive_message(&self, from: PeerId, message: Message) {
//!         let _ = self.0.try_send((from, message));
//!     }
//!     fn receive_error(&self, _: NetworkError) {}
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut alice = build_swarm(Keypair::generate_ed25519(), SwarmConfig::default())?;
//! let mut bob = build_swarm(Keypair::generate_ed25519(), SwarmConfig::default())?;
//! let alice_net = Libp2pNetwork::for_swarm(&alice, NetworkConfig::default())?;
//! let bob_net = Libp2pNetwork::for_swarm(&bob, NetworkConfig::default())?;
//! let (tx, mut inbox) = tokio::sync::mpsc::channel(8);
//! bob_net.set_receiver(Arc::new(Inbox(tx)))?;
//!
//! // Alice learns where Bob listens, and the swarms run in their own tasks.
//! bob.listen_on("/memory/0".parse()?)?;
//! let address = loop {
//!     if let SwarmEvent::NewListenAddr { address, .. } = bob.select_next_some().await {
//!         break address;
//!     }
//! };
//! alice_net.add_address(*bob.local_peer_id(), address);
//! tokio::spawn(async move { loop { alice.select_next_some().await; } });
//! tokio::spawn(async move { loop { bob.select_next_some().await; } });
//!
//! let message: Message = cancel_request(TransferId(7)).into();
//! alice_net.send_message(bob_net.self_peer(), message.clone()).await?;
//! let (from, received) = inbox.recv().await.ok_or("no message")?;
//! assert_eq!((from, received), (alice_net.self_peer(), message));
//! # Ok(())
//! # }
//! ```

mod config;
mod inbound;
mod network;
mod node;
mod peers;
mod swarm;

use std::io;
use std::time::Duration;

use datatransfer_message::PeerId;
use libp2p::StreamProtocol;

pub use self::config::NetworkConfig;
pub use self::network::Libp2pNetwork;
pub use self::node::{DialError, Node, NodeBuilder, NodeError, NodeManager};
pub use self::peers::{KeepAlive, PeerBook};
pub use self::swarm::{
    BuildError, DEFAULT_TCP_READ_BUFFER, Event, NodeBehaviour, SwarmConfig, build_swarm,
};
pub use graphsync::network::{REUSE_FREED_BUFFERS_UP_TO, reuse_freed_buffers};

/// The data-transfer protocol id, the only one go-data-transfer v1.15.1 speaks (spec §2.1).
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/fil/datatransfer/1.2.0");

/// What went wrong in the libp2p network: the source inside a
/// [`NetworkError::Backend`](crate::NetworkError::Backend), or the error of
/// [`Libp2pNetwork::new`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A network was already made on this behaviour.
    #[error("data-transfer streams are already accepted on this behaviour")]
    AlreadyRegistered,
    /// The wire peer id is not a libp2p peer id (not a valid multihash of a key).
    #[error("peer id {peer} is not a libp2p peer id")]
    InvalidPeerId {
        /// The peer id.
        peer: PeerId,
    },
    /// The message is larger than [`NetworkConfig::max_message_size`]; it was not sent.
    #[error("message of {size} bytes is over the limit of {limit} bytes")]
    MessageTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No connection to the peer is open, and the send may not dial (a channel responder's
    /// send, [`Network::send_message_connected`](crate::Network::send_message_connected)).
    #[error("no open connection to {peer}, and a responder does not dial")]
    NotConnected {
        /// The peer.
        peer: PeerId,
    },
    /// Writing or closing the message's stream failed (not retried).
    #[error("writing the message failed")]
    Write {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing and closing the message's stream took longer than
    /// [`NetworkConfig::send_timeout`].
    #[error("writing the message took longer than {after:?}")]
    SendTimedOut {
        /// The timeout.
        after: Duration,
    },
    /// Reading an inbound stream failed.
    #[error("reading a stream failed")]
    Read {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An inbound stream stayed open longer than [`NetworkConfig::read_timeout`].
    #[error("reading a stream took longer than {after:?}")]
    ReadTimedOut {
        /// The timeout.
        after: Duration,
    },
}

/// The libp2p peer id of a wire peer id.
///
/// # Errors
/// [`NetError::InvalidPeerId`] when the bytes are not a libp2p peer id.
///
/// # Examples
/// ```
/// use datatransfer::libp2p::{from_libp2p, to_libp2p};
///
/// let peer = libp2p::PeerId::random();
/// assert_eq!(to_libp2p(&from_libp2p(&peer))?, peer);
/// # Ok::<(), datatransfer::libp2p::NetError>(())
/// ```
pub fn to_libp2p(peer: &PeerId) -> Result<libp2p::PeerId, NetError> {
    libp2p::PeerId::from_bytes(peer.as_bytes())
        .map_err(|_| NetError::InvalidPeerId { peer: peer.clone() })
}

/// The wire peer id (raw multihash bytes) of a libp2p peer id.
pub fn from_libp2p(peer: &libp2p::PeerId) -> PeerId {
    PeerId::from_bytes(peer.to_bytes())
}
