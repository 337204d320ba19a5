//! What subscribers of a [`Manager`](crate::Manager) see: [`Event`]s through a bounded
//! [`Subscription`].

use std::sync::Arc;

use datatransfer_fsm::{ChannelEvent, ChannelState, ProtocolError};
use datatransfer_message::{ChannelId, PeerId};
use tokio::sync::broadcast;

use crate::monitor::MonitorEvent;

/// One thing that happened on a manager, in the order it happened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// An event was applied to a channel (Go's subscriber notification): its code, the status
    /// and message after it, and the channel's whole state once the input that caused it was
    /// processed.
    Channel {
        /// The applied event.
        event: ChannelEvent,
        /// The channel's state, shared by every subscriber (a clone of the event copies no
        /// state).
        state: Arc<ChannelState>,
    },
    /// This node's validators refused a peer's request or voucher. The peer saw `Acpt =
    /// false` on the wire; the reason stays here.
    Rejected {
        /// The channel the request named.
        channel: ChannelId,
        /// The validator's reason (`unknown voucher type: …` for an unregistered type).
        reason: String,
    },
    /// A peer sent a message that is invalid for its channel; the channel was failed where
    /// the error says so, other channels are untouched.
    ProtocolViolated {
        /// The sender.
        peer: PeerId,
        /// What was wrong.
        error: ProtocolError,
    },
    /// A message could not be sent or a transport command failed.
    TransmitFailed {
        /// The channel concerned.
        channel: ChannelId,
        /// Why, as text: the error and its causes, `: `-separated.
        reason: String,
    },
    /// A channel snapshot could not be written to the store. The channel goes on in memory
    /// (what followed from that state is still sent); the next snapshot that can be written
    /// replaces it, and a node restarted before that resumes from the last stored state.
    StoreFailed {
        /// The channel concerned.
        channel: ChannelId,
        /// Why, as text.
        reason: String,
    },
    /// A data-transfer message from `peer` was dropped unprocessed: the transmits that
    /// peers' earlier messages caused (answers, rejections, transport commands) still wait to
    /// go out, as many as [`Config::max_queued_per_peer`](crate::Config::max_queued_per_peer)
    /// for this peer or [`Config::max_queued_for_peers`](crate::Config::max_queued_for_peers)
    /// for all peers. Counted in [`OutboundStats::dropped_messages`](crate::OutboundStats).
    MessageDropped {
        /// The sender.
        peer: PeerId,
        /// Which bound was reached.
        scope: QueueScope,
        /// The transmits waiting under that bound.
        queued: usize,
        /// The bound.
        limit: usize,
    },
    /// A decision of the channel monitor ([`Config::monitor`](crate::Config::monitor)): a
    /// stall, a restart and its outcome, or the failure of the channel.
    Monitor {
        /// The channel concerned.
        channel: ChannelId,
        /// The decision.
        event: MonitorEvent,
    },
}

impl Event {
    /// The channel the event concerns, if it names one.
    pub fn channel(&self) -> Option<&ChannelId> {
        match self {
            Event::Channel { event, .. } => Some(&event.channel),
            Event::Rejected { channel, .. }
            | Event::TransmitFailed { channel, .. }
            | Event::StoreFailed { channel, .. }
            | Event::Monitor { channel, .. } => Some(channel),
            Event::ProtocolViolated { error, .. } => protocol_error_channel(error),
            Event::MessageDropped { .. } => None,
        }
    }
}

/// Which bound of the outbound queue dropped a peer's message ([`Event::MessageDropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueScope {
    /// The sender's own bound, [`Config::max_queued_per_peer`](crate::Config::max_queued_per_peer).
    Peer,
    /// The bound of all peers together,
    /// [`Config::max_queued_for_peers`](crate::Config::max_queued_for_peers).
    AllPeers,
}

fn protocol_error_channel(error: &ProtocolError) -> Option<&ChannelId> {
    match error {
        ProtocolError::UnknownChannel { channel, .. }
        | ProtocolError::ChannelExists { channel, .. }
        | ProtocolError::UnexpectedMessage { channel, .. }
        | ProtocolError::MissingField { channel, .. }
        | ProtocolError::RestartMismatch { channel, .. }
        | ProtocolError::Illegal { channel, .. } => Some(channel),
        _ => None,
    }
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The subscriber fell behind by more than the queue holds: the oldest `missed` events
    /// were dropped for it. The next `recv` continues with the oldest event still queued.
    #[error("subscriber fell behind; {missed} events dropped")]
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
    /// The manager is gone; no more events will come.
    #[error("manager closed")]
    Closed,
}

/// A subscriber's queue of [`Event`]s, all or one channel's (Go's `SubscribeToEvents`;
/// dropping it unsubscribes).
///
/// The queue is bounded ([`Config::subscriber_capacity`](crate::Config::subscriber_capacity)).
/// A slow subscriber never slows the manager down: when it falls behind by more than the
/// capacity, its oldest events are dropped and the next `recv` reports
/// [`SubscriptionError::Lagged`] with the count, then continues in order.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Event>,
    channel: Option<ChannelId>,
}

impl Subscription {
    pub(crate) fn new(receiver: broadcast::Receiver<Event>, channel: Option<ChannelId>) -> Self {
        Subscription { receiver, channel }
    }

    /// The next event, waiting for it.
    ///
    /// # Errors
    /// [`SubscriptionError::Lagged`] once after events were dropped for this subscriber;
    /// [`SubscriptionError::Closed`] when the manager is gone.
    pub async fn recv(&mut self) -> Result<Event, SubscriptionError> {
        loop {
            match self.receiver.recv().await {
                Ok(event) if self.wants(&event) => return Ok(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Err(SubscriptionError::Lagged { missed });
                }
                Err(broadcast::error::RecvError::Closed) => return Err(SubscriptionError::Closed),
            }
        }
    }

    /// The next event if one is queued, without waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Option<Event>, SubscriptionError> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) if self.wants(&event) => return Ok(Some(event)),
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    return Err(SubscriptionError::Lagged { missed });
                }
                Err(broadcast::error::TryRecvError::Closed) => {
                    return Err(SubscriptionError::Closed);
                }
            }
        }
    }

    fn wants(&self, event: &Event) -> bool {
        match &self.channel {
            None => true,
            Some(channel) => event.channel() == Some(channel),
        }
    }
}
