//! [`Error`]: what a [`Manager`](crate::Manager) operation can fail with.

use datatransfer_fsm::CommandError;
use datatransfer_message::ChannelId;
use datatransfer_store::StoreError;
use datatransfer_transport::{NetworkError, TransportError};

use crate::registry::RegistryError;

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state machine refused the command: local misuse (unknown channel, a command on a
    /// finished channel, a responder sending a voucher…).
    #[error("command refused")]
    Command(#[from] CommandError),
    /// A registration clashed with an earlier one.
    #[error("registration refused")]
    Registry(#[from] RegistryError),
    /// The channel store failed.
    #[error("channel store failed")]
    Store(#[from] StoreError),
    /// The transport refused a command.
    #[error("transport failed")]
    Transport(#[from] TransportError),
    /// The network refused a command.
    #[error("network failed")]
    Network(#[from] NetworkError),
    /// The operation needs a started manager.
    #[error("manager is not running")]
    NotRunning,
    /// `start` was called twice.
    #[error("manager already started")]
    AlreadyStarted,
    /// Pause and resume need a transport with the pause capability.
    #[error("transport cannot pause or resume channel {channel}")]
    PauseUnsupported {
        /// The channel.
        channel: ChannelId,
    },
    /// The manager's outbound queue is full: the transport or network is not keeping up.
    #[error("outbound queue is full (limit {limit})")]
    QueueFull {
        /// The configured limit.
        limit: usize,
    },
}
