//! The engine's error families: [`CommandError`] (local misuse) and [`ProtocolError`] (the peer
//! sent something invalid for the channel).

use datatransfer_message::{ChannelId, MessageType, PeerId};

use crate::status::ChannelStatus;
use crate::transition::IllegalTransition;

/// A command, local input or restore the engine refused: local misuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No channel with this id.
    #[error("unknown channel {channel}")]
    UnknownChannel {
        /// The channel asked for.
        channel: ChannelId,
    },
    /// The command needs the local peer to be the channel's initiator.
    #[error("channel {channel} was not initiated by this node")]
    NotInitiator {
        /// The channel.
        channel: ChannelId,
    },
    /// The channel is terminal and takes no more commands.
    #[error("channel {channel} is terminated ({status})")]
    Terminated {
        /// The channel.
        channel: ChannelId,
        /// Its terminal status.
        status: ChannelStatus,
    },
    /// The engine holds `Config::max_channels` channels already.
    #[error("too many channels (limit {limit})")]
    TooManyChannels {
        /// The configured limit.
        limit: usize,
    },
    /// The channel already holds `Config::max_vouchers` vouchers or results.
    #[error("channel {channel} holds too many vouchers (limit {limit})")]
    TooManyVouchers {
        /// The channel.
        channel: ChannelId,
        /// The configured limit.
        limit: usize,
    },
    /// An output queue is near its bound: drain `poll_*` before feeding more input.
    #[error("output queues are full; drain them first")]
    QueueFull,
    /// `handle_validation` for a channel with no open question.
    #[error("no validation is pending for channel {channel}")]
    NoPendingValidation {
        /// The channel.
        channel: ChannelId,
    },
    /// A snapshot given to `restore` belongs to another local peer.
    #[error("snapshot of channel {channel} belongs to peer {self_peer}, not this node")]
    ForeignSnapshot {
        /// The channel.
        channel: ChannelId,
        /// The snapshot's local peer.
        self_peer: PeerId,
    },
    /// The command would need a transition the table does not allow.
    #[error("channel {channel}: command not allowed")]
    Illegal {
        /// The channel.
        channel: ChannelId,
        /// The refused transition.
        #[source]
        source: IllegalTransition,
    },
}

/// A message from a peer that is invalid for the channel it names. Where the channel exists it
/// is failed (the `Error` event, then `Failed`), except where the list says otherwise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message names a channel this node does not have; nothing changes.
    #[error("peer {peer} sent a message for unknown channel {channel}")]
    UnknownChannel {
        /// The sender.
        peer: PeerId,
        /// The channel derived from the message.
        channel: ChannelId,
    },
    /// A new request for a channel that already exists; the existing channel is not touched.
    #[error("peer {peer} opened channel {channel} which already exists")]
    ChannelExists {
        /// The sender.
        peer: PeerId,
        /// The channel.
        channel: ChannelId,
    },
    /// A message of a type that role never sends (a Complete request, a Voucher response…).
    #[error("peer {peer} sent a {message_type:?} {direction} on channel {channel}")]
    UnexpectedMessage {
        /// The sender.
        peer: PeerId,
        /// The channel.
        channel: ChannelId,
        /// The message type.
        message_type: MessageType,
        /// "request" or "response".
        direction: &'static str,
    },
    /// A new or restart request without a root CID or selector; it is rejected.
    #[error("peer {peer} sent a request without {field} on channel {channel}")]
    MissingField {
        /// The sender.
        peer: PeerId,
        /// The channel.
        channel: ChannelId,
        /// The missing wire field.
        field: &'static str,
    },
    /// A restart request that does not match the stored channel (root or original voucher);
    /// it is rejected and the channel is left as it is.
    #[error("peer {peer} sent a restart for channel {channel} that does not match it: {reason}")]
    RestartMismatch {
        /// The sender.
        peer: PeerId,
        /// The channel.
        channel: ChannelId,
        /// What differs.
        reason: &'static str,
    },
    /// The message would need a transition the table does not allow. Go drops such events;
    /// so does the engine, and the channel is not failed.
    #[error("peer {peer}: message ignored on channel {channel}")]
    Illegal {
        /// The sender.
        peer: PeerId,
        /// The channel.
        channel: ChannelId,
        /// The refused transition.
        #[source]
        source: IllegalTransition,
    },
    /// An output queue is near its bound: drain `poll_*` before feeding more input.
    #[error("output queues are full; drain them first")]
    QueueFull,
}
