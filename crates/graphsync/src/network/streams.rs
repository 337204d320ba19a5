//! The stream tasks: one writer per peer (one outbound stream, opened lazily, reopened on
//! failure, closed when idle) and one reader per inbound stream, each speaking the protocol
//! version of its stream.
//!
//! A message goes out only on the connection it was queued for: it carries the peer's
//! connection epoch of the moment it was queued ([`Disconnects::epoch`]), and once that
//! epoch has ended (the peer's last connection closed) the message fails instead of being
//! written on a later connection. Only a message with a New request may dial a peer that has
//! no connection (and only when it was queued while none was open); responses, cancels and
//! updates go over an open connection or fail.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use libp2p_stream::OpenStreamError;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::behaviour::Disconnects;
use super::{Config, Version};
use crate::codec::frame::FrameConfig;
use crate::codec::v1::PeerIds;
use crate::codec::{v1, v2};
use crate::message::Message;
use crate::protocol::{MessageReader, ProtocolError, write_pieces};

/// A message for a peer's writer, with the slot its send result goes to.
pub(super) struct Outbound {
    pub(super) message: Message,
    pub(super) report: Option<oneshot::Sender<bool>>,
    /// The peer's connection epoch when the message was queued; `None` when no connection
    /// was open.
    pub(super) epoch: Option<u64>,
    /// Whether the message may dial the peer (it carries a New request).
    pub(super) dial: bool,
}

/// What a reader task hands the driver.
pub(super) enum Inbound {
    /// A message arrived, with the block bytes it added to its peer's [`ReadGate`] (the
    /// driver takes them off when it takes the message).
    Message(PeerId, Message, usize),
    /// The stream failed to read or decode and was dropped.
    Failed(PeerId, ProtocolError),
}

/// The wire state of one peer shared by its reader and writer tasks: the 1.0.0 id map (both
/// directions use it) and the version this node answers on (the one the peer last used, or
/// the one our last stream to it negotiated).
pub(super) struct PeerWire {
    ids: Mutex<PeerIds>,
    preferred: AtomicU8,
    /// Holds the peer's readers while too many of its block bytes wait for the traversals.
    pub(super) gate: ReadGate,
}

impl PeerWire {
    /// The wire state of a new peer; its readers pause above `high` bytes ahead, a metadata
    /// entry weighing at least `entry_weight` bytes (see [`ReadGate`]).
    pub(super) fn new(seed: u64, high: usize, entry_weight: usize) -> Self {
        PeerWire {
            ids: Mutex::new(PeerIds::new(seed)),
            preferred: AtomicU8::new(0),
            gate: ReadGate::new(high, entry_weight),
        }
    }

    fn prefer(&self, version: Version) {
        self.preferred.store(version.tag(), Ordering::Relaxed);
    }

    fn preferred(&self) -> Option<Version> {
        Version::from_tag(self.preferred.load(Ordering::Relaxed))
    }

    /// Encodes `message` for `version`, as pieces to write in order (large blocks are
    /// shared, not copied: [`v2::encode_pieces`], [`v1::encode_pieces`]).
    fn encode(&self, message: &Message, version: Version) -> Result<Vec<Bytes>, ProtocolError> {
        match version {
            Version::V2 => v2::encode_pieces(message),
            Version::V1 => {
                let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
                v1::encode_pieces(message, &mut *ids)
            }
        }
        .map_err(|source| ProtocolError::Encode { source })
    }

    /// Decodes a body received on a `version` stream.
    fn decode(&self, body: &Bytes, version: Version) -> Result<Message, ProtocolError> {
        match version {
            Version::V2 => v2::decode_shared(body),
            Version::V1 => {
                let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
                v1::decode_shared(body, &mut *ids)
            }
        }
        .map_err(|source| ProtocolError::Decode { source })
    }
}

/// Backpressure on one peer's inbound streams: counts the peer's block bytes that wait
/// for this node, both in messages its readers handed the driver and not yet taken
/// (`queued`) and in the requester's buffers ahead of the traversals of running requests
/// (`ahead`, set by the driver after each input). Above the high watermark the gate closes:
/// the peer's readers read no further message (a read under way finishes), so the streams'
/// flow control slows the peer; at or below the low watermark (half the high)
/// it opens again. Other peers' readers are not held.
///
/// No deadlock: only bytes that drain without this peer sending more are counted (the
/// driver takes queued messages whatever the gate; the requester leaves out paused requests
/// and those whose traversal is complete, and drops the buffers of requests that end), and
/// the traversals' other needs (store calls, hook decisions) never pass a reader.
pub(super) struct ReadGate {
    high: usize,
    /// The least weight of one metadata entry: a message of many small blocks counts its
    /// entries at this weight each (the requester's buffer bounds entries as well as bytes).
    entry_weight: usize,
    low: usize,
    queued: AtomicUsize,
    ahead: AtomicUsize,
    closed: AtomicBool,
    opened: Notify,
    /// Times the gate closed.
    pauses: AtomicU64,
}

impl ReadGate {
    fn new(high: usize, entry_weight: usize) -> Self {
        let high = high.max(1);
        ReadGate {
            high,
            entry_weight,
            low: high / 2,
            queued: AtomicUsize::new(0),
            ahead: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            opened: Notify::new(),
            pauses: AtomicU64::new(0),
        }
    }

    /// What a message counts for: its block bytes, or its metadata entries at their least
    /// weight when that is more.
    fn weight(&self, message: &Message) -> usize {
        let entries = message.responses.iter().fold(0usize, |sum, response| {
            sum.saturating_add(response.metadata.len())
        });
        block_bytes(message).max(entries.saturating_mul(self.entry_weight))
    }

    /// A reader hands the driver a message with `bytes` of blocks.
    fn queue(&self, bytes: usize) {
        self.queued.fetch_add(bytes, Ordering::SeqCst);
        self.update();
    }

    /// The driver took a message with `bytes` of blocks.
    pub(super) fn take(&self, bytes: usize) {
        // Saturating: a count never goes below zero, whatever the order of updates.
        let _ = self
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |queued| {
                Some(queued.saturating_sub(bytes))
            });
        self.update();
    }

    /// The driver's figure of the bytes buffered ahead of the peer's running traversals.
    pub(super) fn set_ahead(&self, bytes: usize) {
        if self.ahead.swap(bytes, Ordering::SeqCst) != bytes {
            self.update();
        }
    }

    /// How many times the gate has closed.
    pub(super) fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// Closes above the high watermark, opens at or below the low one.
    fn update(&self) {
        let total = self
            .queued
            .load(Ordering::SeqCst)
            .saturating_add(self.ahead.load(Ordering::SeqCst));
        if total > self.high {
            if !self.closed.swap(true, Ordering::SeqCst) {
                self.pauses.fetch_add(1, Ordering::Relaxed);
            }
        } else if total <= self.low && self.closed.swap(false, Ordering::SeqCst) {
            self.opened.notify_waiters();
        }
    }

    /// Returns once the gate is open.
    async fn open(&self) {
        loop {
            let opened = self.opened.notified();
            tokio::pin!(opened);
            // Registered before the check, so an opening between the two is not missed.
            opened.as_mut().enable();
            if !self.closed.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

/// Block bytes a message carries.
fn block_bytes(message: &Message) -> usize {
    message
        .blocks
        .iter()
        .fold(0usize, |sum, block| sum.saturating_add(block.data.len()))
}

/// Starts the writer task of `peer`.
pub(super) fn spawn_writer(
    peer: PeerId,
    control: libp2p_stream::Control,
    wire: Arc<PeerWire>,
    links: Arc<Disconnects>,
    config: &Config,
) -> mpsc::Sender<Outbound> {
    let (tx, rx) = mpsc::channel(config.outbound_capacity.max(1));
    let writer = Writer {
        peer,
        control,
        wire,
        links,
        versions: config.protocols.clone(),
        frame: config.frame,
        open_timeout: config.open_timeout,
        stream: None,
    };
    tokio::spawn(writer.run(rx, config.outbound_idle));
    tx
}

/// The writer of one peer.
struct Writer {
    peer: PeerId,
    control: libp2p_stream::Control,
    wire: Arc<PeerWire>,
    /// The peer's connection epochs.
    links: Arc<Disconnects>,
    versions: Vec<Version>,
    frame: FrameConfig,
    open_timeout: Duration,
    /// The open stream, its version and the connection epoch it was opened in.
    stream: Option<(Stream, Version, Option<u64>)>,
}

impl Writer {
    /// Keeps one outbound stream, opened lazily, closed when idle.
    async fn run(mut self, mut queue: mpsc::Receiver<Outbound>, idle: Duration) {
        let peer = self.peer;
        loop {
            let next = match self.stream.as_mut() {
                Some((open, _, _)) => match tokio::time::timeout(idle, queue.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        if let Err(error) = open.close().await {
                            tracing::debug!(%peer, %error, "closing an idle stream failed");
                        }
                        self.stream = None;
                        continue;
                    }
                },
                None => queue.recv().await,
            };
            let Some(outbound) = next else {
                if let Some((mut open, _, _)) = self.stream.take() {
                    let _ = open.close().await;
                }
                return;
            };
            let written = self.write_once_or_twice(&outbound).await;
            if let Some(report) = outbound.report {
                let _ = report.send(written);
            }
        }
    }

    /// Whether a message bound to connection epoch `bound` may go out now: that epoch is
    /// still the peer's. A message not bound yet (queued while no connection was open) may go
    /// out only if it may dial; it is bound to the first connection it is written on.
    fn sendable(&self, bound: Option<u64>, dial: bool) -> bool {
        match bound {
            Some(epoch) => self.links.epoch(&self.peer) == Some(epoch),
            None => dial,
        }
    }

    /// Writes one message, opening the stream if needed (or reopening it when the peer now
    /// speaks another version to us, or when its connection has closed); an I/O failure
    /// reopens the stream and writes once more. A message whose connection has closed since
    /// it was queued fails (see the module docs).
    async fn write_once_or_twice(&mut self, outbound: &Outbound) -> bool {
        let peer = self.peer;
        let message = &outbound.message;
        let mut bound = outbound.epoch;
        for attempt in 0..2 {
            if !self.sendable(bound, outbound.dial) {
                tracing::debug!(%peer, "the connection this message was queued for is gone");
                return false;
            }
            let preferred = self.wire.preferred();
            let epoch = self.links.epoch(&peer);
            if let Some((mut open, version, opened_in)) = self.stream.take() {
                if preferred.is_none_or(|wanted| wanted == version) && opened_in == epoch {
                    self.stream = Some((open, version, opened_in));
                } else {
                    let _ = open.close().await;
                }
            }
            if self.stream.is_none() {
                let dial = outbound.dial && bound.is_none();
                match self.open(preferred, dial).await {
                    Some((opened, version)) => {
                        let opened_in = self.links.epoch(&peer);
                        self.stream = Some((opened, version, opened_in));
                        // A connection that closed (and perhaps came back) while the stream
                        // was being opened: the message is not for this one. The stream of a
                        // new connection may come before the swarm has told the behaviour of
                        // that connection (libp2p negotiates lazily, on another task): with no
                        // epoch yet, a message that may dial goes out on it all the same.
                        bound = bound.or(opened_in);
                        if !self.sendable(bound, outbound.dial) {
                            tracing::debug!(%peer, "the connection closed while opening");
                            return false;
                        }
                    }
                    None => continue,
                }
            }
            let Some((open, version, opened_in)) = self.stream.as_mut() else {
                continue;
            };
            // Written on this connection from now on, the message is bound to it.
            bound = bound.or(*opened_in);
            let body = match self.wire.encode(message, *version) {
                Ok(body) => body,
                Err(error) => {
                    tracing::warn!(%peer, %error, "message not sendable");
                    return false;
                }
            };
            match write_pieces(open, &body, &self.frame).await {
                Ok(()) => return true,
                Err(error @ ProtocolError::Io { .. }) => {
                    tracing::debug!(%peer, attempt, %error, "write failed; reopening the stream");
                    self.stream = None;
                }
                Err(error) => {
                    tracing::warn!(%peer, %error, "message not sendable");
                    return false;
                }
            }
        }
        false
    }

    /// Opens a stream, trying the preferred version first, then the configured ones in order
    /// (a peer that does not support one answers UnsupportedProtocol). Without `dial`, only
    /// over a connection open now (libp2p-stream would dial an unconnected peer).
    async fn open(&mut self, preferred: Option<Version>, dial: bool) -> Option<(Stream, Version)> {
        let peer = self.peer;
        let mut order: Vec<Version> = preferred
            .into_iter()
            .filter(|version| self.versions.contains(version))
            .collect();
        order.extend(self.versions.iter().filter(|v| Some(**v) != preferred));
        for version in order {
            if !dial && self.links.epoch(&peer).is_none() {
                tracing::debug!(%peer, "no connection to open a stream on; not dialing");
                return None;
            }
            let opening = self.control.open_stream(peer, version.protocol());
            match tokio::time::timeout(self.open_timeout, opening).await {
                Ok(Ok(stream)) => {
                    self.wire.prefer(version);
                    return Some((stream, version));
                }
                Ok(Err(OpenStreamError::UnsupportedProtocol(protocol))) => {
                    tracing::debug!(%peer, %protocol, "peer does not speak this version");
                }
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "opening a graphsync stream failed");
                    return None;
                }
                Err(_) => {
                    tracing::debug!(%peer, "opening a graphsync stream timed out");
                    return None;
                }
            }
        }
        None
    }
}

/// The reader task of one inbound stream: hands each message to the driver until EOF, or
/// until the stream's connection is gone (`closed` fails: a stream of a closed connection does
/// not always report its end, and its reader would wait forever). A peer that opens a stream
/// of some version is answered on that version from then on.
pub(super) async fn read_stream(
    peer: PeerId,
    mut stream: Stream,
    version: Version,
    mut closed: watch::Receiver<()>,
    wire: Arc<PeerWire>,
    driver: mpsc::Sender<Inbound>,
    frame: FrameConfig,
) {
    wire.prefer(version);
    let mut reader = MessageReader::new(frame);
    loop {
        // Backpressure: while too many of this peer's block bytes wait for the traversals,
        // nothing more is read from the stream (its flow control then slows the peer).
        tokio::select! {
            () = wire.gate.open() => {}
            _ = closed.changed() => {
                tracing::debug!(%peer, "connection closed; inbound stream reader ends");
                return;
            }
        }
        let read = tokio::select! {
            read = reader.read_body(&mut stream) => read,
            // Nothing is ever sent: `changed` returns only when the connection's handler is
            // dropped.
            _ = closed.changed() => {
                tracing::debug!(%peer, "connection closed; inbound stream reader ends");
                return;
            }
        };
        let result = match read {
            Ok(Some(body)) => wire.decode(&body, version).map(Some),
            Ok(None) => Ok(None),
            Err(error) => Err(error),
        };
        match result {
            Ok(Some(message)) => {
                let bytes = wire.gate.weight(&message);
                wire.gate.queue(bytes);
                if driver
                    .send(Inbound::Message(peer, message, bytes))
                    .await
                    .is_err()
                {
                    wire.gate.take(bytes);
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%peer, %error, "dropping an invalid inbound stream");
                let _ = driver.send(Inbound::Failed(peer, error)).await;
                return;
            }
        }
    }
}
