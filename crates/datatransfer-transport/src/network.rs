//! [`Network`] and [`Receiver`]: sending and receiving data-transfer messages outside the data
//! channels (Go's `DataTransferNetwork` and `Receiver`).

use std::future::Future;
use std::sync::Arc;

use datatransfer_message::{Message, PeerId};

use crate::error::NetworkError;

/// The data-transfer message network of one node (Go's `DataTransferNetwork`): over libp2p
/// `/fil/datatransfer/1.2.0` in production, in memory in tests.
///
/// Like [`Transport`](crate::Transport), its commands return `impl Future + Send`, so it is
/// used generically.
pub trait Network: Send + Sync {
    /// The local peer (Go: `ID`).
    fn self_peer(&self) -> PeerId;

    /// Sets who receives the messages that arrive (Go: `SetDelegate`). Set it once, before
    /// messages can arrive; messages that arrive earlier are dropped.
    ///
    /// # Errors
    /// [`NetworkError::ReceiverAlreadySet`] on a second call.
    fn set_receiver(&self, receiver: Arc<dyn Receiver>) -> Result<(), NetworkError>;

    /// Sends one message to `peer` (Go: `SendMessage`), retrying to reach it as the network's
    /// configuration says. `Ok` means the message was handed to the network, not that the
    /// peer processed it.
    ///
    /// # Errors
    /// [`NetworkError::Disconnected`] when the peer cannot be reached,
    /// [`NetworkError::QueueFull`], [`NetworkError::Encode`], [`NetworkError::ShutDown`],
    /// [`NetworkError::Backend`].
    fn send_message(
        &self,
        peer: PeerId,
        message: Message,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;

    /// Sends one message to `peer` only over a connection that is open now: never dials, and
    /// fails fast when there is none. A channel's responder sends this way, so that after a
    /// disconnect only the initiator dials again (and restarts the channel). A network without
    /// connections (in memory) sends as [`Network::send_message`] does, which is the default.
    ///
    /// # Errors
    /// As [`Network::send_message`]; no open connection is a [`NetworkError::Backend`] or
    /// [`NetworkError::Disconnected`] error of the network.
    fn send_message_connected(
        &self,
        peer: PeerId,
        message: Message,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send {
        self.send_message(peer, message)
    }

    /// Makes sure `peer` can be reached, with retries (Go: `ConnectWithRetry`), before a
    /// restart.
    ///
    /// # Errors
    /// [`NetworkError::Disconnected`], [`NetworkError::ShutDown`], [`NetworkError::Backend`].
    fn connect(&self, peer: PeerId) -> impl Future<Output = Result<(), NetworkError>> + Send;

    /// Asks the connection manager to keep the connection to `peer` open, under `tag` (Go:
    /// `Protect`; the tag is the channel id's string).
    fn protect(&self, peer: &PeerId, tag: &str);

    /// Withdraws the protection under `tag`; returns whether the peer is still protected by
    /// another tag (Go: `Unprotect`).
    fn unprotect(&self, peer: &PeerId, tag: &str) -> bool;
}

/// Who gets the messages a [`Network`] receives (Go's `Receiver`).
///
/// Like [`EventsHandler`](crate::EventsHandler), the methods are synchronous and **must not
/// block**: queue the message (bounded, with `try_send`) and return. Messages from one peer
/// arrive in the order that peer sent them.
pub trait Receiver: Send + Sync {
    /// A message arrived from `from` (the sender's identity comes from the connection, never
    /// from the message). Go splits this by kind (`ReceiveRequest`, `ReceiveResponse`,
    /// `ReceiveRestartExistingChannelRequest`); here the receiver matches on the message.
    fn receive_message(&self, from: PeerId, message: Message);

    /// Receiving from a peer failed, for example with an undecodable message (Go:
    /// `ReceiveError`, which only logs).
    fn receive_error(&self, error: NetworkError);
}
