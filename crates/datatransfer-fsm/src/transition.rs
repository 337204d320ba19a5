//! The transition table of go-data-transfer v1.15.1 (`spec/data-transfer.md` §5.3–§5.4, §5.7)
//! as one function, [`transition`].

use crate::event_code::EventCode;
use crate::status::ChannelStatus;

/// Why an event cannot be applied in a status.
///
/// The engine treats both as "drop the event": no action runs and nothing is notified, as
/// go-statemachine does (§5.3). A [`Terminated`](Self::Terminated) channel absorbs every
/// later event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IllegalTransition {
    /// The channel is in a terminal status (`Completed`, `Failed`, `Cancelled`).
    #[error("channel is terminated ({status}): event {event} is absorbed")]
    Terminated {
        /// The terminal status.
        status: ChannelStatus,
        /// The absorbed event.
        event: EventCode,
    },
    /// The table has no row for the event in this status.
    #[error("event {event} is not allowed in status {status}")]
    NotAllowed {
        /// The status the channel is in.
        status: ChannelStatus,
        /// The event that has no row for it.
        event: EventCode,
    },
}

impl IllegalTransition {
    /// The status the event was tried in.
    pub fn status(&self) -> ChannelStatus {
        match *self {
            IllegalTransition::Terminated { status, .. }
            | IllegalTransition::NotAllowed { status, .. } => status,
        }
    }

    /// The event that was tried.
    pub fn event(&self) -> EventCode {
        match *self {
            IllegalTransition::Terminated { event, .. }
            | IllegalTransition::NotAllowed { event, .. } => event,
        }
    }
}

/// The status a channel in `status` moves to on `event`: the whole table of §5.4.
///
/// Events that Go applies "record-only" or "no-change" return `status` itself; the action
/// that goes with the event (counters, vouchers, message) is the caller's. The pause events
/// combine the two pause flags as §5.7 describes (`InitiatorPaused` + `PauseResponder` →
/// `BothPaused`, and back). `ChannelNotFoundError` is not a channel status: every event is
/// [`NotAllowed`](IllegalTransition::NotAllowed) there.
///
/// # Errors
/// [`IllegalTransition::Terminated`] in a terminal status, for every event (including
/// `Cancel`, which Go silently ignores there); [`IllegalTransition::NotAllowed`] where the
/// table has no row (`Accept` outside `Requested`, `CleanupComplete` outside the cleanup
/// statuses, progress events outside the transferring statuses, `RequestTimedOut` anywhere).
///
/// # Examples
/// ```
/// use datatransfer_fsm::{ChannelStatus, EventCode, transition};
///
/// let paused = transition(ChannelStatus::Ongoing, EventCode::PauseInitiator)?;
/// assert_eq!(paused, ChannelStatus::InitiatorPaused);
/// let both = transition(paused, EventCode::PauseResponder)?;
/// assert_eq!(both, ChannelStatus::BothPaused);
/// assert!(transition(ChannelStatus::Completed, EventCode::Open).is_err());
/// # Ok::<(), datatransfer_fsm::IllegalTransition>(())
/// ```
pub fn transition(
    status: ChannelStatus,
    event: EventCode,
) -> Result<ChannelStatus, IllegalTransition> {
    use ChannelStatus::*;
    use EventCode as E;

    if status.is_terminal() {
        return Err(IllegalTransition::Terminated { status, event });
    }
    let not_allowed = Err(IllegalTransition::NotAllowed { status, event });
    if status == ChannelNotFoundError {
        return not_allowed;
    }
    let transferring = status.is_transferring();
    let next = match (event, status) {
        (E::Open, _) => Requested,
        (E::Accept, Requested) => Ongoing,
        (E::TransferRequestQueued | E::Restart | E::Opened, _) => status,
        (E::Cancel, _) => Cancelling,
        (E::DataReceived, _) => status,
        (E::DataReceivedProgress | E::DataSentProgress | E::DataQueuedProgress, _)
            if transferring =>
        {
            status
        }
        (E::DataSent | E::DataQueued, _) if transferring || status == TransferFinished => status,
        (E::Disconnected | E::SendDataError | E::ReceiveDataError | E::RequestCancelled, _) => {
            status
        }
        (E::Error, _) => Failing,
        (E::NewVoucher | E::NewVoucherResult, _) => status,

        (E::PauseInitiator, Requested | Ongoing) => InitiatorPaused,
        (E::PauseInitiator, ResponderPaused) => BothPaused,
        (E::PauseInitiator, _) => status,
        (E::PauseResponder, Requested | Ongoing) => ResponderPaused,
        (E::PauseResponder, InitiatorPaused) => BothPaused,
        (E::PauseResponder, _) => status,
        (E::ResumeInitiator, InitiatorPaused) => Ongoing,
        (E::ResumeInitiator, BothPaused) => ResponderPaused,
        (E::ResumeInitiator, _) => status,
        (E::ResumeResponder, ResponderPaused) => Ongoing,
        (E::ResumeResponder, BothPaused) => InitiatorPaused,
        (E::ResumeResponder, Finalizing) => Completing,
        (E::ResumeResponder, _) => status,

        (E::FinishTransfer, Failing | Cancelling) => status,
        (E::FinishTransfer, ResponderCompleted) => Completing,
        (E::FinishTransfer, ResponderFinalizing) => ResponderFinalizingTransferFinished,
        (E::FinishTransfer, Requested) => Completing,
        (E::FinishTransfer, _) => TransferFinished,
        (E::ResponderBeginsFinalization, Failing | Cancelling) => status,
        (E::ResponderBeginsFinalization, TransferFinished) => ResponderFinalizingTransferFinished,
        (E::ResponderBeginsFinalization, _) => ResponderFinalizing,
        (E::ResponderCompletes, Failing | Cancelling) => status,
        (E::ResponderCompletes, ResponderPaused) => ResponderFinalizing,
        (E::ResponderCompletes, TransferFinished) => Completing,
        (E::ResponderCompletes, ResponderFinalizing) => ResponderCompleted,
        (E::ResponderCompletes, ResponderFinalizingTransferFinished) => Completing,
        (E::ResponderCompletes, _) => ResponderCompleted,
        (E::BeginFinalizing, _) => Finalizing,
        (E::Complete, _) => Completing,

        (E::CleanupComplete, Cancelling) => Cancelled,
        (E::CleanupComplete, Failing) => Failed,
        (E::CleanupComplete, Completing) => Completed,
        (E::CompleteCleanupOnRestart, _) => status,

        // Accept outside Requested, CleanupComplete outside cleanup, progress and data events
        // outside their statuses, and RequestTimedOut (no FSM entry in Go).
        (
            E::Accept
            | E::CleanupComplete
            | E::DataReceivedProgress
            | E::DataSentProgress
            | E::DataQueuedProgress
            | E::DataSent
            | E::DataQueued
            | E::RequestTimedOut,
            _,
        ) => return not_allowed,
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_absorb_every_event() {
        for status in ChannelStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in EventCode::ALL {
                assert_eq!(
                    transition(status, event),
                    Err(IllegalTransition::Terminated { status, event })
                );
            }
        }
    }

    #[test]
    fn channel_not_found_is_not_a_channel_status() {
        for event in EventCode::ALL {
            let error = transition(ChannelStatus::ChannelNotFoundError, event)
                .expect_err("no event applies to ChannelNotFoundError");
            assert_eq!(error.status(), ChannelStatus::ChannelNotFoundError);
            assert_eq!(error.event(), event);
        }
    }
}
