//! The inbound side: one task accepting streams and one reader task per sending peer, which
//! reads that peer's streams one after another (bounded queues, bounded reads).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datatransfer_message::{DecodeError, Limits, PeerId, decode_prefix};
use datatransfer_transport::{NetworkError, Receiver};
use futures::AsyncReadExt;
use libp2p::Stream;
use tokio::sync::{mpsc, oneshot};

use super::{NetError, NetworkConfig, from_libp2p};

type SharedReceiver = Arc<OnceLock<Arc<dyn Receiver>>>;

/// Accepts streams until `stop` fires or the behaviour is gone, handing each to its peer's
/// reader task.
pub(super) async fn run(
    mut incoming: mpsc::Receiver<(libp2p::PeerId, Stream)>,
    receiver: SharedReceiver,
    config: NetworkConfig,
    mut stop: oneshot::Receiver<()>,
) {
    let mut readers: HashMap<libp2p::PeerId, mpsc::Sender<Stream>> = HashMap::new();
    loop {
        let (peer, stream) = tokio::select! {
            _ = &mut stop => return,
            next = incoming.recv() => match next {
                Some(accepted) => accepted,
                None => return,
            },
        };
        let mut stream = stream;
        if let Some(reader) = readers.get(&peer) {
            match reader.try_send(stream) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_dropped)) => {
                    tracing::debug!(%peer, "too many inbound data-transfer streams; dropped one");
                    report(
                        &receiver,
                        NetworkError::QueueFull {
                            peer: from_libp2p(&peer),
                        },
                    );
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    readers.remove(&peer);
                    stream = back;
                }
            }
        }
        if readers.len() >= config.max_inbound_peers.max(1) {
            readers.retain(|_, reader| !reader.is_closed());
        }
        if readers.len() >= config.max_inbound_peers.max(1) {
            tracing::debug!(%peer, "too many peers sending data-transfer streams; dropped one");
            report(
                &receiver,
                NetworkError::QueueFull {
                    peer: from_libp2p(&peer),
                },
            );
            continue;
        }
        let (tx, rx) = mpsc::channel(config.inbound_streams_per_peer.max(1));
        if tx.try_send(stream).is_err() {
            // A new channel with room for at least one: cannot fail.
            continue;
        }
        tokio::spawn(read_peer(peer, rx, Arc::clone(&receiver), config.clone()));
        readers.insert(peer, tx);
    }
}

/// Reads one peer's streams in order until it has sent none for [`NetworkConfig::inbound_idle`].
async fn read_peer(
    peer: libp2p::PeerId,
    mut streams: mpsc::Receiver<Stream>,
    receiver: SharedReceiver,
    config: NetworkConfig,
) {
    let from = from_libp2p(&peer);
    loop {
        match tokio::time::timeout(config.inbound_idle, streams.recv()).await {
            Ok(Some(stream)) => read_stream(&from, stream, &receiver, &config).await,
            Ok(None) => return,
            Err(_) => {
                // Idle: refuse new streams, read the ones already queued, and end; the
                // acceptor starts a new reader for this peer's next stream.
                streams.close();
                while let Ok(stream) = streams.try_recv() {
                    read_stream(&from, stream, &receiver, &config).await;
                }
                return;
            }
        }
    }
}

/// Reads one stream to its end and delivers every message in it.
async fn read_stream(
    from: &PeerId,
    stream: Stream,
    receiver: &SharedReceiver,
    config: &NetworkConfig,
) {
    let limit = config.max_message_size;
    let mut bytes = Vec::new();
    // One byte more than the limit tells an oversize stream from one exactly at the limit.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = stream.take(cap);
    let read = tokio::time::timeout(config.read_timeout, reader.read_to_end(&mut bytes)).await;
    let ended = match read {
        Ok(Ok(_)) => None,
        Ok(Err(source)) => Some(NetError::Read { source }),
        Err(_) => Some(NetError::ReadTimedOut {
            after: config.read_timeout,
        }),
    };
    drop(reader);
    if bytes.len() > limit {
        let source = DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        };
        tracing::debug!(peer = %from, error = %source, "oversize data-transfer stream");
        report(
            receiver,
            NetworkError::Decode {
                peer: from.clone(),
                source: Arc::new(source),
            },
        );
        return;
    }
    let limits = Limits::default().with_max_bytes(limit);
    let mut rest = &bytes[..];
    loop {
        match decode_prefix(rest, &limits) {
            Ok((message, used)) => {
                deliver(receiver, from, message);
                rest = rest.get(used..).unwrap_or_default();
            }
            // The stream ended between messages: the normal end (and the whole of an empty
            // stream, as Go's `ConnectWithRetry` sends).
            Err(DecodeError::Empty) => break,
            // A message cut short by a failed or timed-out read: report the read failure.
            Err(DecodeError::Truncated { .. }) if ended.is_some() => break,
            Err(source) => {
                tracing::debug!(peer = %from, error = %source, "undecodable data-transfer stream");
                report(
                    receiver,
                    NetworkError::Decode {
                        peer: from.clone(),
                        source: Arc::new(source),
                    },
                );
                return;
            }
        }
    }
    if let Some(error) = ended {
        tracing::debug!(peer = %from, %error, "reading a data-transfer stream failed");
        report(
            receiver,
            NetworkError::Backend {
                peer: from.clone(),
                source: Arc::new(error),
            },
        );
    }
}

fn deliver(receiver: &SharedReceiver, from: &PeerId, message: datatransfer_message::Message) {
    match receiver.get() {
        Some(receiver) => receiver.receive_message(from.clone(), message),
        None => tracing::debug!(peer = %from, "data-transfer message before a receiver; dropped"),
    }
}

fn report(receiver: &SharedReceiver, error: NetworkError) {
    if let Some(receiver) = receiver.get() {
        receiver.receive_error(error);
    }
}
