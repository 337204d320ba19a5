//! Errors of the transport layer, one enum per operation family. Backend causes are kept as
//! shared `dyn Error` sources, so that the backend crates' versions are not part of this API
//! and the errors stay cloneable (one failure is often reported to both ends of a channel).

use std::error::Error as StdError;
use std::sync::Arc;

use cid::Cid;
use datatransfer_message::{ChannelId, DecodeError, PeerId};

use crate::transport::StoreName;

/// Why a [`Transport`](crate::Transport) command failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The transport tracks no data channel with this id (never opened, closed by the peer,
    /// or cleaned up).
    #[error("unknown channel {channel}")]
    UnknownChannel {
        /// The channel.
        channel: ChannelId,
    },
    /// The transport lacks the capability (see [`Capabilities`](crate::Capabilities)).
    #[error("transport does not support {operation} (channel {channel})")]
    Unsupported {
        /// The channel.
        channel: ChannelId,
        /// What was asked (`"pause"`, `"resume"`).
        operation: &'static str,
    },
    /// `open_channel` named a store that was not registered with the transport.
    #[error("unknown store {store} for channel {channel}")]
    UnknownStore {
        /// The channel.
        channel: ChannelId,
        /// The store name.
        store: StoreName,
    },
    /// `open_channel` named the local peer as the data sender.
    #[error("channel {channel} would send data to itself")]
    OpenToSelf {
        /// The channel.
        channel: ChannelId,
    },
    /// `resume_channel` on a data channel that is not paused locally.
    #[error("channel {channel} is not paused")]
    NotPaused {
        /// The channel.
        channel: ChannelId,
    },
    /// The command needs the events handler, and none was set.
    #[error("no events handler set")]
    HandlerNotSet,
    /// The channel's exchange already ended (completed, failed or closed); open it again to
    /// go on.
    #[error("exchange of channel {channel} has finished")]
    Finished {
        /// The channel.
        channel: ChannelId,
    },
    /// `open_channel` would track more channels than the transport's limit.
    #[error("cannot open channel {channel}: the transport tracks {limit} channels already")]
    TooManyChannels {
        /// The channel.
        channel: ChannelId,
        /// The limit.
        limit: usize,
    },
    /// [`Transport::set_events_handler`](crate::Transport::set_events_handler) was called
    /// twice.
    #[error("events handler already set")]
    HandlerAlreadySet,
    /// The transport was shut down.
    #[error("transport is shut down")]
    ShutDown,
    /// The peer cannot be reached.
    #[error("peer {peer} is unreachable")]
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A bounded queue of the transport is full; try again later.
    #[error("transport queue towards {peer} is full")]
    QueueFull {
        /// The peer the queue leads to.
        peer: PeerId,
    },
    /// The underlying machinery (graphsync, a block store) failed.
    #[error("transport backend failed")]
    Backend {
        /// The channel, when the failure concerns one.
        channel: Option<ChannelId>,
        /// The cause.
        #[source]
        source: Arc<dyn StdError + Send + Sync>,
    },
}

/// Why a data channel failed, as reported to the [`EventsHandler`](crate::EventsHandler)
/// (`on_channel_completed`, `on_request_cancelled`, `on_send_data_error`, …).
///
/// The manager usually records the [`Display`](std::fmt::Display) text of it in the channel's
/// state, as Go records `err.Error()`.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The connection to the peer was lost.
    #[error("peer {peer} disconnected")]
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// The data sender rejected the request (Go: graphsync status 32 after a rejecting
    /// `OnRequestReceived`).
    #[error("request rejected by the data sender")]
    Rejected,
    /// The local side cancelled the exchange (`close_channel`).
    #[error("request cancelled locally")]
    Cancelled,
    /// The data sender lacks a block the selector reaches (Go: graphsync status 21).
    #[error("data sender is missing block {cid}")]
    MissingBlock {
        /// The missing block.
        cid: Cid,
    },
    /// The selector traversal failed (bad selector, undecodable block, budget exceeded).
    #[error("traversal failed: {reason}")]
    Traversal {
        /// What went wrong.
        reason: String,
    },
    /// A handler answered with an error, so the transport terminated the exchange.
    #[error("events handler refused")]
    Refused {
        /// The handler's error.
        #[source]
        source: HandlerError,
    },
    /// The transport is shutting down.
    #[error("transport shut down")]
    ShutDown,
    /// The underlying machinery (graphsync, a block store) failed.
    #[error("transport backend failed")]
    Backend {
        /// The cause.
        #[source]
        source: Arc<dyn StdError + Send + Sync>,
    },
}

/// What an [`EventsHandler`](crate::EventsHandler) returns to make the transport stop an
/// exchange (Go: a non-`nil`, non-`ErrPause` error from a handler).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The handler refuses the channel or the data, with the reason.
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// The handler does not know the channel.
    #[error("unknown channel {channel}")]
    UnknownChannel {
        /// The channel.
        channel: ChannelId,
    },
}

impl HandlerError {
    /// A [`HandlerError::Refused`] with this reason.
    pub fn refused(reason: impl Into<String>) -> Self {
        HandlerError::Refused {
            reason: reason.into(),
        }
    }
}

/// Why a [`Network`](crate::Network) command failed, or what went wrong receiving.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The peer cannot be reached (after the network's retries).
    #[error("peer {peer} is unreachable")]
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A bounded queue towards the peer is full; try again later.
    #[error("network queue towards {peer} is full")]
    QueueFull {
        /// The peer.
        peer: PeerId,
    },
    /// A message from the peer did not decode (reported to
    /// [`Receiver::receive_error`](crate::Receiver::receive_error)).
    #[error("undecodable message from {peer}")]
    Decode {
        /// The sender.
        peer: PeerId,
        /// The codec's error.
        #[source]
        source: Arc<DecodeError>,
    },
    /// The message could not be encoded.
    #[error("cannot encode message for {peer}: {reason}")]
    Encode {
        /// The receiver.
        peer: PeerId,
        /// What went wrong.
        reason: String,
    },
    /// [`Network::set_receiver`](crate::Network::set_receiver) was called twice.
    #[error("receiver already set")]
    ReceiverAlreadySet,
    /// The network was shut down.
    #[error("network is shut down")]
    ShutDown,
    /// The underlying network stack failed.
    #[error("network backend failed for {peer}")]
    Backend {
        /// The peer.
        peer: PeerId,
        /// The cause.
        #[source]
        source: Arc<dyn StdError + Send + Sync>,
    },
}
