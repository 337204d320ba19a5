//! [`NodeBehaviour`] and [`build_swarm`]: one swarm carrying Graphsync, data-transfer,
//! identify, ping and the [`PeerBook`], on TCP (noise, yamux), QUIC and the in-process memory
//! transport.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::time::Duration;

use futures::io::BufReader;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, Transport, identify, identity, noise, ping, tcp, yamux};

use super::PeerBook;

/// The behaviour of a data-transfer node's swarm.
///
/// Start the protocols on it after [`build_swarm`]: a
/// [`graphsync::network::Node`] with `Node::spawn(&swarm.behaviour().graphsync, store, config)`
/// and a [`Libp2pNetwork`](super::Libp2pNetwork) with
/// [`Libp2pNetwork::for_swarm`](super::Libp2pNetwork::for_swarm); then drive the swarm.
#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "Event", prelude = "libp2p::swarm::derive_prelude")]
pub struct NodeBehaviour {
    /// Graphsync (`/ipfs/graphsync/2.0.0` and `/1.0.0`), for the data.
    pub graphsync: graphsync::network::Behaviour,
    /// The stream control through which `/fil/datatransfer/1.2.0` streams are opened (inbound
    /// ones are accepted by the [`PeerBook`]'s handler).
    pub datatransfer: libp2p_stream::Behaviour,
    /// Connection protection and peer addresses.
    pub peer_book: PeerBook,
    /// Identify (`/ipfs/id/1.0.0`): tells peers our addresses and protocols.
    pub identify: identify::Behaviour,
    /// Ping (`/ipfs/ping/1.0.0`): liveness of connections.
    pub ping: ping::Behaviour,
}

/// What a [`NodeBehaviour`] reports to the swarm's owner.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// An identify exchange with a peer.
    Identify(Box<identify::Event>),
    /// A ping round trip or failure.
    Ping(ping::Event),
    /// Never sent in practice: the stream-control behaviours (Graphsync and data-transfer)
    /// report nothing, but the derived behaviour needs a place for their `()` events.
    StreamControl,
}

impl From<identify::Event> for Event {
    fn from(event: identify::Event) -> Self {
        Event::Identify(Box::new(event))
    }
}

impl From<ping::Event> for Event {
    fn from(event: ping::Event) -> Self {
        Event::Ping(event)
    }
}

impl From<()> for Event {
    fn from((): ()) -> Self {
        Event::StreamControl
    }
}

impl From<Infallible> for Event {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

/// Settings of [`build_swarm`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// A connection that no behaviour keeps alive (no stream open, no protected peer) closes
    /// after this long. Default: 60 s.
    pub idle_connection_timeout: Duration,
    /// The identify protocol version announced. Default: `"ipfs/0.1.0"`, as go-libp2p.
    pub identify_protocol_version: String,
    /// The identify agent version announced. Default: `"datatransfer-rs/<crate version>"`.
    pub agent_version: String,
    /// Ping interval. Default: 15 s (libp2p's default).
    pub ping_interval: Duration,
    /// Bytes read from a TCP socket at a time, below noise (one buffer per connection).
    /// Default: [`DEFAULT_TCP_READ_BUFFER`] (64 KiB); `0` reads unbuffered.
    ///
    /// libp2p's noise reads its socket 8 KiB at a time: 131 000 system calls to receive 1 GiB,
    /// 15 % of the receiver's CPU. Reading up to 64 KiB at a time takes 24 000, for one more
    /// copy in memory (`docs/benchmarks.md`).
    pub tcp_read_buffer: usize,
}

/// The default [`SwarmConfig::tcp_read_buffer`]: 64 KiB per TCP connection.
pub const DEFAULT_TCP_READ_BUFFER: usize = 64 * 1024;

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            idle_connection_timeout: Duration::from_secs(60),
            identify_protocol_version: "ipfs/0.1.0".to_owned(),
            agent_version: concat!("datatransfer-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            ping_interval: Duration::from_secs(15),
            tcp_read_buffer: DEFAULT_TCP_READ_BUFFER,
        }
    }
}

impl SwarmConfig {
    /// This config with another idle connection timeout.
    pub fn with_idle_connection_timeout(self, idle_connection_timeout: Duration) -> Self {
        SwarmConfig {
            idle_connection_timeout,
            ..self
        }
    }

    /// This config with another TCP read buffer (`0`: unbuffered).
    pub fn with_tcp_read_buffer(self, tcp_read_buffer: usize) -> Self {
        SwarmConfig {
            tcp_read_buffer,
            ..self
        }
    }
}

/// Why [`build_swarm`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The TCP transport (with noise and yamux) could not be built.
    #[error("cannot build the tcp transport")]
    Tcp {
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The memory transport (with noise and yamux) could not be built.
    #[error("cannot build the memory transport")]
    Memory {
        /// The cause.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// A swarm for a data-transfer node with identity `keypair`: TCP with noise and yamux, QUIC
/// (v1), and libp2p's in-process memory transport (`/memory/<n>` addresses, for tests), carrying
/// a [`NodeBehaviour`]. It listens nowhere yet.
///
/// # Errors
/// [`BuildError`] when a transport cannot be built (noise refusing the key).
///
/// # Panics
/// When called outside a tokio runtime (TCP and QUIC run on tokio).
///
/// # Examples
/// ```
/// use datatransfer::libp2p::{SwarmConfig, build_swarm};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keypair = libp2p::identity::Keypair::generate_ed25519();
/// let mut swarm = build_swarm(keypair, SwarmConfig::default())?;
/// swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
/// swarm.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)?;
/// # Ok(())
/// # }
/// ```
pub fn build_swarm(
    keypair: identity::Keypair,
    config: SwarmConfig,
) -> Result<Swarm<NodeBehaviour>, BuildError> {
    let SwarmConfig {
        idle_connection_timeout,
        identify_protocol_version,
        agent_version,
        ping_interval,
        tcp_read_buffer,
    } = config;
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|error| -> Box<dyn StdError + Send + Sync> { Box::new(error) })?;
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .map(move |socket, _| BufReader::with_capacity(tcp_read_buffer, socket))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default()),
            )
        })
        .map_err(|source| BuildError::Tcp {
            source: Box::new(source),
        })?
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|error| -> Box<dyn StdError + Send + Sync> { Box::new(error) })?;
            Ok(MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default()))
        })
        .map_err(|source| BuildError::Memory {
            source: Box::new(source),
        })?
        .with_behaviour(|key| NodeBehaviour {
            graphsync: graphsync::network::Behaviour::new(),
            datatransfer: libp2p_stream::Behaviour::new(),
            peer_book: PeerBook::new(),
            identify: identify::Behaviour::new(
                identify::Config::new(identify_protocol_version, key.public())
                    .with_agent_version(agent_version),
            ),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
        })
        .map_err(|never| match never {})?
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(idle_connection_timeout))
        .build();
    Ok(swarm)
}
