//! `Libp2pNetwork` between real swarms: messages both ways on the memory transport, loopback
//! TCP and QUIC; bad frames; retries and their limit; the size limit; protection.

// Networks alone here, without managers: only the swarm helpers of `net` apply.
#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::PATIENCE;
use datatransfer::libp2p::{
    Libp2pNetwork, NetError, NetworkConfig, NodeBehaviour, PROTOCOL, SwarmConfig, build_swarm,
    from_libp2p,
};
use datatransfer::{Network, NetworkError, PeerId, TransferId};
use datatransfer_message::{
    DecodeError, Message, TypeIdentifier, cancel_request, complete_response, to_vec,
    voucher_request,
};
use datatransfer_transport::Receiver;
use futures::{AsyncWriteExt, StreamExt};
use ipld_dagcbor::Node;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use net::listen;
use tokio::sync::mpsc;

/// What a test receiver saw.
#[derive(Debug)]
enum Seen {
    Message(PeerId, Box<Message>),
    Error(NetworkError),
}

/// A receiver that queues everything it gets.
struct Inbox(mpsc::Sender<Seen>);

impl Receiver for Inbox {
    fn receive_message(&self, from: PeerId, message: Message) {
        let _ = self.0.try_send(Seen::Message(from, Box::new(message)));
    }

    fn receive_error(&self, error: NetworkError) {
        let _ = self.0.try_send(Seen::Error(error));
    }
}

/// Swarm events a test looks at, forwarded by the swarm's driver task.
#[derive(Debug)]
enum SwarmNote {
    Closed(libp2p::PeerId),
    DialFailed(Option<libp2p::PeerId>),
}

/// One node: its network, what its receiver saw, and swarm notes.
struct TestNode {
    id: libp2p::PeerId,
    net: Libp2pNetwork,
    inbox: mpsc::Receiver<Seen>,
    notes: mpsc::Receiver<SwarmNote>,
    swarm: tokio::task::JoinHandle<()>,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.swarm.abort();
    }
}

impl TestNode {
    async fn next(&mut self) -> anyhow::Result<Seen> {
        tokio::time::timeout(PATIENCE, self.inbox.recv())
            .await
            .context("timed out waiting for the receiver")?
            .context("receiver queue closed")
    }

    async fn next_message(&mut self) -> anyhow::Result<(PeerId, Message)> {
        match self.next().await? {
            Seen::Message(from, message) => Ok((from, *message)),
            Seen::Error(error) => bail!("expected a message, got error {error}"),
        }
    }

    async fn next_error(&mut self) -> anyhow::Result<NetworkError> {
        match self.next().await? {
            Seen::Error(error) => Ok(error),
            Seen::Message(_, message) => bail!("expected an error, got {message:?}"),
        }
    }

    fn peer(&self) -> PeerId {
        from_libp2p(&self.id)
    }
}

fn swarm_with(config: SwarmConfig) -> anyhow::Result<Swarm<NodeBehaviour>> {
    Ok(build_swarm(Keypair::generate_ed25519(), config)?)
}

/// Starts the network of `swarm` with `config` and drives the swarm in a task.
fn start(swarm: Swarm<NodeBehaviour>, config: NetworkConfig) -> anyhow::Result<TestNode> {
    let id = *swarm.local_peer_id();
    let net = Libp2pNetwork::for_swarm(&swarm, config)?;
    let (tx, inbox) = mpsc::channel(64);
    net.set_receiver(Arc::new(Inbox(tx)))?;
    let (note_tx, notes) = mpsc::channel(256);
    let swarm = tokio::spawn(drive(swarm, note_tx));
    Ok(TestNode {
        id,
        net,
        inbox,
        notes,
        swarm,
    })
}

async fn drive(mut swarm: Swarm<NodeBehaviour>, notes: mpsc::Sender<SwarmNote>) {
    loop {
        let note = match swarm.select_next_some().await {
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => SwarmNote::Closed(peer_id),
            SwarmEvent::OutgoingConnectionError { peer_id, .. } => SwarmNote::DialFailed(peer_id),
            _ => continue,
        };
        let _ = notes.try_send(note);
    }
}

/// Two nodes; `b` listens on `address` (returned) and `a` knows where.
async fn pair(
    address: &str,
    config: NetworkConfig,
) -> anyhow::Result<(TestNode, TestNode, Multiaddr)> {
    let a = swarm_with(SwarmConfig::default())?;
    let mut b = swarm_with(SwarmConfig::default())?;
    let b_address = listen(&mut b, address).await?;
    let (a, b) = (start(a, config.clone())?, start(b, config)?);
    a.net.add_address(b.id, b_address.clone());
    Ok((a, b, b_address))
}

/// Messages both ways: `a` reaches `b` by address, `b` answers on the connection `a` opened.
async fn both_ways(address: &str) -> anyhow::Result<()> {
    let (mut a, mut b, _) = pair(address, NetworkConfig::default()).await?;
    let request: Message = cancel_request(TransferId(41)).into();
    a.net.send_message(b.peer(), request.clone()).await?;
    assert_eq!(b.next_message().await?, (a.peer(), request));

    let response: Message =
        complete_response(TransferId(41), true, false, TypeIdentifier::EMPTY, None).into();
    b.net.send_message(a.peer(), response.clone()).await?;
    assert_eq!(a.next_message().await?, (b.peer(), response));

    // Several messages in a row from one peer arrive in order.
    for n in 0..5 {
        a.net
            .send_message(b.peer(), cancel_request(TransferId(n)).into())
            .await?;
    }
    for n in 0..5 {
        let (_, message) = b.next_message().await?;
        assert_eq!(message.transfer_id(), TransferId(n));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_on_the_memory_transport() -> anyhow::Result<()> {
    both_ways("/memory/0").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_on_loopback_tcp() -> anyhow::Result<()> {
    both_ways("/ip4/127.0.0.1/tcp/0").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_both_ways_on_loopback_quic() -> anyhow::Result<()> {
    both_ways("/ip4/127.0.0.1/udp/0/quic-v1").await
}

/// A raw peer: a swarm whose data-transfer control writes hand-built frames.
async fn raw_peer(
    target: &TestNode,
    target_address: Multiaddr,
) -> anyhow::Result<(
    libp2p_stream::Control,
    libp2p::PeerId,
    tokio::task::JoinHandle<()>,
)> {
    let mut swarm = swarm_with(SwarmConfig::default())?;
    let id = *swarm.local_peer_id();
    let control = swarm.behaviour().datatransfer.new_control();
    swarm.add_peer_address(target.id, target_address);
    let (notes, _) = mpsc::channel(1);
    Ok((control, id, tokio::spawn(drive(swarm, notes))))
}

async fn write_raw(
    control: &mut libp2p_stream::Control,
    to: libp2p::PeerId,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut stream = tokio::time::timeout(PATIENCE, control.open_stream(to, PROTOCOL)).await??;
    stream.write_all(bytes).await?;
    stream.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_drops_only_its_stream() -> anyhow::Result<()> {
    let mut b = swarm_with(SwarmConfig::default())?;
    let address = listen(&mut b, "/memory/0").await?;
    let mut b = start(b, NetworkConfig::default())?;
    let (mut raw, raw_id, raw_swarm) = raw_peer(&b, address).await?;
    let raw_peer_id = from_libp2p(&raw_id);

    // Not DAG-CBOR at all: a typed decode error naming the sender, no message.
    write_raw(&mut raw, b.id, b"\xff\xff\xff").await?;
    match b.next_error().await? {
        NetworkError::Decode { peer, source } => {
            assert_eq!(peer, raw_peer_id);
            assert!(matches!(*source, DecodeError::Cbor { .. }), "{source:?}");
        }
        other => bail!("unexpected error {other}"),
    }

    // A good message then garbage on one stream: the message is delivered, then the error.
    let good: Message = cancel_request(TransferId(9)).into();
    let mut bytes = to_vec(&good)?;
    bytes.extend_from_slice(b"\xa1\x61");
    write_raw(&mut raw, b.id, &bytes).await?;
    assert_eq!(b.next_message().await?, (raw_peer_id.clone(), good.clone()));
    assert!(matches!(b.next_error().await?, NetworkError::Decode { .. }));

    // A message cut short: reported, not delivered.
    let cut = to_vec(&good)?;
    write_raw(&mut raw, b.id, &cut[..cut.len() - 3]).await?;
    assert!(matches!(b.next_error().await?, NetworkError::Decode { .. }));

    // An empty stream (Go's ConnectWithRetry) is no error; two messages on one stream are both
    // delivered; and the node goes on serving the same peer.
    write_raw(&mut raw, b.id, b"").await?;
    let second: Message = cancel_request(TransferId(10)).into();
    let mut two = to_vec(&good)?;
    two.extend(to_vec(&second)?);
    write_raw(&mut raw, b.id, &two).await?;
    assert_eq!(b.next_message().await?, (raw_peer_id.clone(), good));
    assert_eq!(b.next_message().await?, (raw_peer_id, second));
    raw_swarm.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_is_refused_both_ways() -> anyhow::Result<()> {
    let limit = 1_000;
    let (a, mut b, b_address) = pair(
        "/memory/0",
        NetworkConfig::default().with_max_message_size(limit),
    )
    .await?;
    let big: Message = voucher_request(
        TransferId(1),
        TypeIdentifier::new("big"),
        Node::Bytes(vec![7; 2 * limit].into()),
    )
    .into();
    match a.net.send_message(b.peer(), big.clone()).await {
        Err(NetworkError::Backend { peer, source }) => {
            assert_eq!(peer, b.peer());
            match source.downcast_ref::<NetError>() {
                Some(NetError::MessageTooLarge {
                    size,
                    limit: refused,
                }) => {
                    assert!(*size > limit);
                    assert_eq!(*refused, limit);
                }
                other => bail!("unexpected source {other:?}"),
            }
        }
        other => bail!("oversize message not refused: {other:?}"),
    }

    // A sender with a larger limit: the receiver refuses the stream with a typed error.
    let c = start(
        swarm_with(SwarmConfig::default())?,
        NetworkConfig::default(),
    )?;
    c.net.add_address(b.id, b_address);
    c.net.send_message(b.peer(), big).await?;
    match b.next_error().await? {
        NetworkError::Decode { peer, source } => {
            assert_eq!(peer, c.peer());
            assert!(matches!(*source, DecodeError::TooLarge { limit: l, .. } if l == limit));
        }
        other => bail!("unexpected error {other}"),
    }
    // The receiver goes on: a small message from the same peer arrives.
    c.net
        .send_message(b.peer(), cancel_request(TransferId(2)).into())
        .await?;
    assert_eq!(b.next_message().await?.0, c.peer());
    Ok(())
}

/// A retry policy for tests: `attempts` attempts, waits of 100 ms doubling up to 400 ms, no
/// jitter, 2 s per open.
fn quick_retries(attempts: u32) -> NetworkConfig {
    NetworkConfig::default()
        .with_retries(
            Duration::from_millis(100),
            Duration::from_millis(400),
            attempts,
            2,
        )
        .with_jitter(false)
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(10))
}

/// A memory address nobody listens on yet.
fn free_memory_address() -> Multiaddr {
    let port = rand_port();
    format!("/memory/{port}").parse().expect("a memory address")
}

fn rand_port() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(1);
    // Memory ports are process-wide; keep clear of small numbers other tests may pick.
    (hasher.finish() >> 1) | (1 << 40)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_peer_that_appears_later_succeeds_after_retries() -> anyhow::Result<()> {
    let a = start(swarm_with(SwarmConfig::default())?, quick_retries(10))?;
    let mut b_swarm = swarm_with(SwarmConfig::default())?;
    let b_id = *b_swarm.local_peer_id();
    let b_address = free_memory_address();
    a.net.add_address(b_id, b_address.clone());

    // The peer starts listening 1.5 s after the send began.
    let started = Instant::now();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        b_swarm.listen_on(b_address)?;
        start(b_swarm, NetworkConfig::default())
    });
    let message: Message = cancel_request(TransferId(3)).into();
    a.net
        .send_message(from_libp2p(&b_id), message.clone())
        .await?;
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    let mut b = late.await??;
    assert_eq!(b.next_message().await?, (a.peer(), message));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_peer_that_never_appears_fails_after_the_configured_attempts()
-> anyhow::Result<()> {
    let mut a = start(swarm_with(SwarmConfig::default())?, quick_retries(3))?;
    let absent = libp2p::PeerId::random();
    a.net.add_address(absent, free_memory_address());

    let started = Instant::now();
    let sent = a
        .net
        .send_message(from_libp2p(&absent), cancel_request(TransferId(4)).into())
        .await;
    match sent {
        Err(NetworkError::Disconnected { peer }) => assert_eq!(peer, from_libp2p(&absent)),
        other => bail!("expected Disconnected, got {other:?}"),
    }
    // Two waits between three attempts: 100 ms, then 200 ms.
    assert!(started.elapsed() >= Duration::from_millis(300));
    // One dial per attempt, and no more.
    let mut dials = 0;
    while dials < 3 {
        let note = tokio::time::timeout(PATIENCE, a.notes.recv()).await?;
        if matches!(note, Some(SwarmNote::DialFailed(Some(peer))) if peer == absent) {
            dials += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.notes.try_recv().is_err(), "more dials than attempts");

    // connect() follows the same policy.
    match a.net.connect(from_libp2p(&absent)).await {
        Err(NetworkError::Disconnected { .. }) => {}
        other => bail!("expected Disconnected, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_peer_id_is_a_typed_error() -> anyhow::Result<()> {
    let a = start(swarm_with(SwarmConfig::default())?, quick_retries(1))?;
    let bogus = PeerId::from_bytes(vec![1, 2, 3]);
    match a
        .net
        .send_message(bogus.clone(), cancel_request(TransferId(5)).into())
        .await
    {
        Err(NetworkError::Backend { peer, source }) => {
            assert_eq!(peer, bogus);
            assert!(matches!(
                source.downcast_ref::<NetError>(),
                Some(NetError::InvalidPeerId { .. })
            ));
        }
        other => bail!("expected a backend error, got {other:?}"),
    }
    assert!(!a.net.unprotect(&bogus, "tag"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_peer_keeps_its_idle_connection() -> anyhow::Result<()> {
    let idle = SwarmConfig::default().with_idle_connection_timeout(Duration::from_millis(300));
    // Only `a` closes idle connections quickly.
    let a = swarm_with(idle)?;
    let mut b = swarm_with(SwarmConfig::default())?;
    let b_address = listen(&mut b, "/memory/0").await?;
    let (mut a, b) = (
        start(a, NetworkConfig::default())?,
        start(b, NetworkConfig::default())?,
    );
    a.net.add_address(b.id, b_address);

    // Unprotected: the connection a message opened closes once idle.
    a.net.connect(b.peer()).await?;
    wait_closed(&mut a, b.id).await?;

    // Protected: it stays open well past the idle timeout.
    a.net.protect(&b.peer(), "channel-1");
    a.net.protect(&b.peer(), "channel-2");
    a.net.connect(b.peer()).await?;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(a.notes.try_recv().is_err(), "a protected connection closed");

    // One tag withdrawn: still protected; the last one: the connection closes.
    assert!(a.net.unprotect(&b.peer(), "channel-1"));
    assert!(!a.net.unprotect(&b.peer(), "channel-2"));
    wait_closed(&mut a, b.id).await?;
    Ok(())
}

async fn wait_closed(node: &mut TestNode, peer: libp2p::PeerId) -> anyhow::Result<()> {
    tokio::time::timeout(PATIENCE, async {
        while let Some(note) = node.notes.recv().await {
            if matches!(note, SwarmNote::Closed(closed) if closed == peer) {
                return Ok(());
            }
        }
        bail!("swarm stopped")
    })
    .await
    .context("the connection did not close")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_open_streams_is_bounded_per_peer() -> anyhow::Result<()> {
    let mut b = swarm_with(SwarmConfig::default())?;
    let address = listen(&mut b, "/memory/0").await?;
    let config = NetworkConfig::default()
        .with_read_timeout(Duration::from_secs(2))
        .with_inbound_limits(256, 1);
    let mut b = start(b, config)?;
    let (mut raw, raw_id, raw_swarm) = raw_peer(&b, address).await?;
    let raw_peer_id = from_libp2p(&raw_id);

    // The first stream is being read (it stays open), the second waits in the peer's queue of
    // one, and the third is refused at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::time::timeout(PATIENCE, raw.open_stream(b.id, PROTOCOL)).await??);
    }
    match b.next_error().await? {
        NetworkError::QueueFull { peer } => assert_eq!(peer, raw_peer_id),
        other => bail!("expected QueueFull, got {other}"),
    }
    // A stream that never ends is cut at the read timeout, with a typed error; the queued one
    // is read next and cut the same way.
    for _ in 0..2 {
        match b.next_error().await? {
            NetworkError::Backend { peer, source } => {
                assert_eq!(peer, raw_peer_id);
                assert!(matches!(
                    source.downcast_ref::<NetError>(),
                    Some(NetError::ReadTimedOut { .. })
                ));
            }
            other => bail!("expected a read timeout, got {other}"),
        }
    }
    // A message written on a stream left open is still delivered when the stream is cut.
    let message: Message = cancel_request(TransferId(11)).into();
    let mut open = tokio::time::timeout(PATIENCE, raw.open_stream(b.id, PROTOCOL)).await??;
    open.write_all(&to_vec(&message)?).await?;
    assert_eq!(b.next_message().await?, (raw_peer_id, message));
    assert!(matches!(
        b.next_error().await?,
        NetworkError::Backend { .. }
    ));
    drop((held, open));
    raw_swarm.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_sends_all_arrive() -> anyhow::Result<()> {
    let (a, mut b, _) = pair("/memory/0", NetworkConfig::default()).await?;
    // Connected first, so that the burst does not race the dial. 24 streams at once stay within
    // the receiver's bounds (32 queued per peer by default); libp2p-stream's own acceptor
    // would drop all but one or two of them.
    a.net.connect(b.peer()).await?;
    let sends = (0..24u64).map(|n| {
        a.net
            .send_message(b.peer(), cancel_request(TransferId(n)).into())
    });
    for sent in futures::future::join_all(sends).await {
        sent?;
    }
    let mut ids = Vec::new();
    for _ in 0..24 {
        ids.push(b.next_message().await?.1.transfer_id().0);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..24).collect::<Vec<_>>());
    Ok(())
}
