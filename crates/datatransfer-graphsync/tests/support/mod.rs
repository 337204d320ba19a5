//! Two graphsync nodes on libp2p's memory transport, each with its own block store, and a
//! `GraphsyncTransport` on each.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::CidGeneric;
use datatransfer_graphsync::{Config as TransportConfig, GraphsyncTransport};
use graphsync::network::{Behaviour, Config, Node};
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::futures::{AsyncRead, AsyncWrite, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, Transport as _, identity, noise, yamux};
use tokio::task::JoinHandle;

/// How long any wait of these tests may take.
pub const BOUND: Duration = Duration::from_secs(20);

/// Fails the test when `future` takes longer than [`BOUND`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The one-way latency of the memory links of these tests. A block's sender hears that the
/// block was written (the block-sent listener) before its receiver hears the block, as on a
/// real network; without it, both happen within microseconds and a check that marks its logs
/// right after the receiver's block (the conformance suite's reopen check) can see the
/// sender's report of that block after the mark. It is kept well under [`READ_DELAY`], so
/// that a pause still lands before the sender has read its next block.
pub const LINK_DELAY: Duration = Duration::from_millis(3);

/// A connection whose reads see each chunk of bytes `delay` after it arrived.
pub struct Delayed<C> {
    inner: C,
    delay: Duration,
    queue: VecDeque<(tokio::time::Instant, Vec<u8>)>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    eof: bool,
}

impl<C> Delayed<C> {
    pub fn new(inner: C, delay: Duration) -> Self {
        Delayed {
            inner,
            delay,
            queue: VecDeque::new(),
            timer: None,
            eof: false,
        }
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Delayed<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Take in everything that arrived, stamped with when it may be read.
        while !this.eof {
            let mut chunk = vec![0u8; 64 * 1024];
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(n)) => {
                    chunk.truncate(n);
                    let due = tokio::time::Instant::now() + this.delay;
                    this.queue.push_back((due, chunk));
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => break,
            }
        }
        let Some((due, _)) = this.queue.front() else {
            return if this.eof {
                Poll::Ready(Ok(0))
            } else {
                Poll::Pending
            };
        };
        let due = *due;
        if tokio::time::Instant::now() < due {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            timer.as_mut().reset(due);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let (due, mut chunk) = this.queue.pop_front().expect("the front was just seen");
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            chunk.drain(..n);
            this.queue.push_front((due, chunk));
        }
        Poll::Ready(Ok(n))
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Delayed<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// A swarm with a graphsync behaviour on the memory transport.
pub fn memory_swarm() -> Swarm<Behaviour> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .map(|connection, _| Delayed::new(connection, LINK_DELAY))
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                .multiplex(yamux::Config::default())
        })
        .expect("the memory transport builds")
        .with_behaviour(|_| Behaviour::new())
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Makes `listener` listen on a fresh memory address and `dialer` connect to it.
pub async fn connect(listener: &mut Swarm<Behaviour>, dialer: &mut Swarm<Behaviour>) {
    listener
        .listen_on("/memory/0".parse::<Multiaddr>().expect("an address"))
        .expect("listening");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = listener.select_next_some().await {
            break address;
        }
    };
    dialer.dial(address).expect("dialing the listener");
    let (mut dialer_up, mut listener_up) = (false, false);
    while !(dialer_up && listener_up) {
        tokio::select! {
            event = dialer.select_next_some() => {
                dialer_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
            event = listener.select_next_some() => {
                listener_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
        }
    }
}

/// Drives a swarm in its own task; aborting the task drops the swarm and its connections.
pub fn drive(mut swarm: Swarm<Behaviour>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    })
}

/// The graphsync node settings of these tests: unreachable peers are given up quickly.
pub fn node_config() -> Config {
    Config {
        open_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A block store whose reads take `delay`, as a disk would: a graphsync responder reading it
/// sends one block per `delay`, so a requester's pause or cancel reaches it before it has
/// sent the whole (small) test DAG. Without it, the responder sends every block of the
/// conformance DAG in well under a millisecond, before any pause can land (spec §4.2: Go's
/// responder completes in that race too).
pub struct Slow<B> {
    inner: Arc<B>,
    delay: Duration,
}

impl<B> Slow<B> {
    pub fn new(inner: Arc<B>, delay: Duration) -> Self {
        Slow { inner, delay }
    }
}

impl<B: Blockstore> Blockstore for Slow<B> {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        tokio::time::sleep(self.delay).await;
        self.inner.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

/// The per-block read delay of the data sender's store in these tests.
pub const READ_DELAY: Duration = Duration::from_millis(30);

/// One side: its transport, node, libp2p id and swarm task.
pub struct Side {
    pub transport: GraphsyncTransport,
    pub node: Node,
    pub peer: libp2p::PeerId,
    pub swarm: JoinHandle<()>,
}

/// Two connected sides: the data sender serves `sender_store`, the data receiver writes
/// `receiver_store`.
pub async fn sides(
    sender_store: Arc<InMemoryBlockstore<64>>,
    receiver_store: Arc<InMemoryBlockstore<64>>,
) -> (Side, Side) {
    sides_with(sender_store, receiver_store, TransportConfig::default()).await
}

/// [`sides`] with transports configured by `config`.
pub async fn sides_with(
    sender_store: Arc<InMemoryBlockstore<64>>,
    receiver_store: Arc<InMemoryBlockstore<64>>,
    config: TransportConfig,
) -> (Side, Side) {
    let mut sender_swarm = memory_swarm();
    let mut receiver_swarm = memory_swarm();
    connect(&mut sender_swarm, &mut receiver_swarm).await;
    fn side<B: Blockstore + 'static>(
        swarm: Swarm<Behaviour>,
        store: Arc<B>,
        config: TransportConfig,
    ) -> Side {
        let node = Node::spawn(swarm.behaviour(), store, node_config()).expect("the node starts");
        let peer = *swarm.local_peer_id();
        let transport = GraphsyncTransport::new(node.clone(), peer, config);
        Side {
            transport,
            node,
            peer,
            swarm: drive(swarm),
        }
    }
    (
        side(
            sender_swarm,
            Arc::new(Slow::new(sender_store, READ_DELAY)),
            config.clone(),
        ),
        side(receiver_swarm, receiver_store, config),
    )
}

/// Swarm tasks by peer, for partitions.
#[derive(Default)]
pub struct Swarms(Mutex<HashMap<libp2p::PeerId, JoinHandle<()>>>);

impl Swarms {
    pub fn keep(&self, peer: libp2p::PeerId, task: JoinHandle<()>) {
        self.0.lock().expect("not poisoned").insert(peer, task);
    }

    /// Drops the swarm of `peer`: its connections close and no one can reach it again.
    pub fn stop(&self, peer: &libp2p::PeerId) {
        if let Some(task) = self.0.lock().expect("not poisoned").remove(peer) {
            task.abort();
        }
    }
}
