//! The stream tasks: one writer per peer (one outbound stream, opened lazily, reopened on
//! failure, closed when idle) and one reader per inbound stream.

use std::time::Duration;

use futures::AsyncWriteExt;
use libp2p::{PeerId, Stream};
use tokio::sync::{mpsc, oneshot};

use super::Config;
use crate::codec::frame::FrameConfig;
use crate::message::Message;
use crate::protocol::{MessageReader, PROTOCOL_V2, ProtocolError, write_message};

/// A message for a peer's writer, with the responder's report slot if it is a response.
pub(super) struct Outbound {
    pub(super) message: Message,
    pub(super) report: Option<oneshot::Sender<bool>>,
}

/// Starts the writer task of `peer`.
pub(super) fn spawn_writer(
    peer: PeerId,
    control: libp2p_stream::Control,
    config: &Config,
) -> mpsc::Sender<Outbound> {
    let (tx, rx) = mpsc::channel(config.outbound_capacity.max(1));
    tokio::spawn(write_stream(
        peer,
        control,
        rx,
        config.frame,
        config.outbound_idle,
        config.open_timeout,
    ));
    tx
}

/// The writer task of one peer: keeps one outbound stream, opened lazily, closed when idle.
async fn write_stream(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut queue: mpsc::Receiver<Outbound>,
    frame: FrameConfig,
    idle: Duration,
    open_timeout: Duration,
) {
    let mut stream: Option<Stream> = None;
    loop {
        let next = match stream.as_mut() {
            Some(open) => match tokio::time::timeout(idle, queue.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    if let Err(error) = open.close().await {
                        tracing::debug!(%peer, %error, "closing an idle stream failed");
                    }
                    stream = None;
                    continue;
                }
            },
            None => queue.recv().await,
        };
        let Some(outbound) = next else {
            if let Some(mut open) = stream.take() {
                let _ = open.close().await;
            }
            return;
        };
        let written = write_once_or_twice(
            peer,
            &mut control,
            &mut stream,
            &outbound,
            &frame,
            open_timeout,
        )
        .await;
        if let Some(report) = outbound.report {
            let _ = report.send(written);
        }
    }
}

/// Writes one message, opening the stream if needed; an I/O failure reopens the stream and
/// writes once more.
async fn write_once_or_twice(
    peer: PeerId,
    control: &mut libp2p_stream::Control,
    stream: &mut Option<Stream>,
    outbound: &Outbound,
    frame: &FrameConfig,
    open_timeout: Duration,
) -> bool {
    for attempt in 0..2 {
        let open = match stream {
            Some(open) => open,
            None => {
                match tokio::time::timeout(open_timeout, control.open_stream(peer, PROTOCOL_V2))
                    .await
                {
                    Ok(Ok(opened)) => stream.insert(opened),
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, attempt, %error, "opening a graphsync stream failed");
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, attempt, "opening a graphsync stream timed out");
                        continue;
                    }
                }
            }
        };
        match write_message(open, &outbound.message, frame).await {
            Ok(()) => return true,
            Err(error @ ProtocolError::Io { .. }) => {
                tracing::debug!(%peer, attempt, %error, "write failed; reopening the stream");
                *stream = None;
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "message not sendable");
                return false;
            }
        }
    }
    false
}

/// What a reader task hands the driver.
pub(super) enum Inbound {
    /// A message arrived.
    Message(PeerId, Message),
    /// The stream failed to read or decode and was dropped.
    Failed(PeerId, ProtocolError),
}

/// The reader task of one inbound stream: hands each message to the driver until EOF.
pub(super) async fn read_stream(
    peer: PeerId,
    mut stream: Stream,
    driver: mpsc::Sender<Inbound>,
    frame: FrameConfig,
) {
    let mut reader = MessageReader::new(frame);
    loop {
        match reader.read(&mut stream).await {
            Ok(Some(message)) => {
                if driver.send(Inbound::Message(peer, message)).await.is_err() {
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
