//! [`ChannelStatus`]: the status of one channel, with Go's integer codes and names
//! (`spec/data-transfer.md` §5.1, §5.5).

use std::fmt;

/// The status of a channel: Go's `datatransfer.Status`, with the same integer codes (iota
/// order) and names.
///
/// `Completed`, `Failed` and `Cancelled` are terminal ([`is_terminal`](Self::is_terminal)):
/// they absorb every later event. `Completing`, `Failing` and `Cancelling` are the cleanup
/// statuses that lead to them ([`is_cleaning_up`](Self::is_cleaning_up)).
///
/// # Examples
/// ```
/// use datatransfer_fsm::ChannelStatus;
///
/// assert_eq!(ChannelStatus::BothPaused.code(), 13);
/// assert_eq!(ChannelStatus::from_code(6), Some(ChannelStatus::Completed));
/// assert_eq!(ChannelStatus::Completed.name(), "Completed");
/// assert!(ChannelStatus::Completed.is_terminal());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelStatus {
    /// 0: created, not yet accepted.
    Requested,
    /// 1: accepted and transferring.
    Ongoing,
    /// 2: initiator only: the local side is done; waiting for the responder's Complete.
    TransferFinished,
    /// 3: initiator only: the responder said Complete before the local side finished.
    ResponderCompleted,
    /// 4: responder only: done, waiting for the initiator's final voucher.
    Finalizing,
    /// 5: cleanup pending, success path.
    Completing,
    /// 6: terminal success.
    Completed,
    /// 7: cleanup pending, error path.
    Failing,
    /// 8: terminal failure.
    Failed,
    /// 9: cleanup pending, cancel path.
    Cancelling,
    /// 10: terminal cancellation.
    Cancelled,
    /// 11: the initiator paused.
    InitiatorPaused,
    /// 12: the responder paused.
    ResponderPaused,
    /// 13: both sides paused.
    BothPaused,
    /// 14: initiator only: the responder sent Complete with `Paus=true` before the local side
    /// finished.
    ResponderFinalizing,
    /// 15: initiator only: the local side is finished and the responder wants a final voucher.
    ResponderFinalizingTransferFinished,
    /// 16: never stored; Go returns it for a channel it does not know.
    ChannelNotFoundError,
}

impl ChannelStatus {
    /// Every status, in code order (`ALL[n].code() == n`).
    pub const ALL: [ChannelStatus; 17] = [
        ChannelStatus::Requested,
        ChannelStatus::Ongoing,
        ChannelStatus::TransferFinished,
        ChannelStatus::ResponderCompleted,
        ChannelStatus::Finalizing,
        ChannelStatus::Completing,
        ChannelStatus::Completed,
        ChannelStatus::Failing,
        ChannelStatus::Failed,
        ChannelStatus::Cancelling,
        ChannelStatus::Cancelled,
        ChannelStatus::InitiatorPaused,
        ChannelStatus::ResponderPaused,
        ChannelStatus::BothPaused,
        ChannelStatus::ResponderFinalizing,
        ChannelStatus::ResponderFinalizingTransferFinished,
        ChannelStatus::ChannelNotFoundError,
    ];

    /// Go's integer code (`type Status uint64`).
    pub fn code(self) -> u64 {
        match self {
            ChannelStatus::Requested => 0,
            ChannelStatus::Ongoing => 1,
            ChannelStatus::TransferFinished => 2,
            ChannelStatus::ResponderCompleted => 3,
            ChannelStatus::Finalizing => 4,
            ChannelStatus::Completing => 5,
            ChannelStatus::Completed => 6,
            ChannelStatus::Failing => 7,
            ChannelStatus::Failed => 8,
            ChannelStatus::Cancelling => 9,
            ChannelStatus::Cancelled => 10,
            ChannelStatus::InitiatorPaused => 11,
            ChannelStatus::ResponderPaused => 12,
            ChannelStatus::BothPaused => 13,
            ChannelStatus::ResponderFinalizing => 14,
            ChannelStatus::ResponderFinalizingTransferFinished => 15,
            ChannelStatus::ChannelNotFoundError => 16,
        }
    }

    /// The status with this Go code, if v1.15.1 defines one.
    pub fn from_code(code: u64) -> Option<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|index| Self::ALL.get(index).copied())
    }

    /// Go's name for the status, as its `Statuses` map gives it.
    pub fn name(self) -> &'static str {
        match self {
            ChannelStatus::Requested => "Requested",
            ChannelStatus::Ongoing => "Ongoing",
            ChannelStatus::TransferFinished => "TransferFinished",
            ChannelStatus::ResponderCompleted => "ResponderCompleted",
            ChannelStatus::Finalizing => "Finalizing",
            ChannelStatus::Completing => "Completing",
            ChannelStatus::Completed => "Completed",
            ChannelStatus::Failing => "Failing",
            ChannelStatus::Failed => "Failed",
            ChannelStatus::Cancelling => "Cancelling",
            ChannelStatus::Cancelled => "Cancelled",
            ChannelStatus::InitiatorPaused => "InitiatorPaused",
            ChannelStatus::ResponderPaused => "ResponderPaused",
            ChannelStatus::BothPaused => "BothPaused",
            ChannelStatus::ResponderFinalizing => "ResponderFinalizing",
            ChannelStatus::ResponderFinalizingTransferFinished => {
                "ResponderFinalizingTransferFinished"
            }
            ChannelStatus::ChannelNotFoundError => "ChannelNotFoundError",
        }
    }

    /// Whether the status is final (`Completed`, `Failed`, `Cancelled`): Go's
    /// `IsChannelTerminated`. A terminal channel absorbs every later event.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ChannelStatus::Completed | ChannelStatus::Failed | ChannelStatus::Cancelled
        )
    }

    /// Whether the status is a cleanup status (`Completing`, `Failing`, `Cancelling`): Go's
    /// `IsChannelCleaningUp`.
    pub fn is_cleaning_up(self) -> bool {
        matches!(
            self,
            ChannelStatus::Completing | ChannelStatus::Failing | ChannelStatus::Cancelling
        )
    }

    /// Whether either side is paused (`InitiatorPaused`, `ResponderPaused`, `BothPaused`).
    pub fn is_paused(self) -> bool {
        self.is_initiator_paused() || self.is_responder_paused()
    }

    /// Whether the initiator's side is paused (`InitiatorPaused` or `BothPaused`).
    pub fn is_initiator_paused(self) -> bool {
        matches!(
            self,
            ChannelStatus::InitiatorPaused | ChannelStatus::BothPaused
        )
    }

    /// Whether the responder's side is paused (`ResponderPaused` or `BothPaused`).
    pub fn is_responder_paused(self) -> bool {
        matches!(
            self,
            ChannelStatus::ResponderPaused | ChannelStatus::BothPaused
        )
    }

    /// Whether the status is in the "transferring" set `T` of the transition table (§5.4):
    /// `Requested`, `Ongoing`, the three paused statuses, `ResponderCompleted` and
    /// `ResponderFinalizing`. Byte counters only move in these statuses.
    pub fn is_transferring(self) -> bool {
        matches!(
            self,
            ChannelStatus::Requested
                | ChannelStatus::Ongoing
                | ChannelStatus::InitiatorPaused
                | ChannelStatus::ResponderPaused
                | ChannelStatus::BothPaused
                | ChannelStatus::ResponderCompleted
                | ChannelStatus::ResponderFinalizing
        )
    }
}

impl fmt::Display for ChannelStatus {
    /// Prints Go's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_stop_at_sixteen() {
        for (code, status) in (0u64..).zip(ChannelStatus::ALL) {
            assert_eq!(status.code(), code);
            assert_eq!(ChannelStatus::from_code(code), Some(status));
        }
        assert_eq!(ChannelStatus::from_code(17), None);
        assert_eq!(ChannelStatus::from_code(u64::MAX), None);
    }

    #[test]
    fn pause_predicates_follow_the_two_flags() {
        use ChannelStatus::*;
        for status in ChannelStatus::ALL {
            assert_eq!(
                status.is_initiator_paused(),
                matches!(status, InitiatorPaused | BothPaused)
            );
            assert_eq!(
                status.is_responder_paused(),
                matches!(status, ResponderPaused | BothPaused)
            );
            assert_eq!(
                status.is_paused(),
                matches!(status, InitiatorPaused | ResponderPaused | BothPaused)
            );
        }
    }

    #[test]
    fn terminal_and_cleanup_sets_are_disjoint_triples() {
        let terminal: Vec<_> = ChannelStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        let cleanup: Vec<_> = ChannelStatus::ALL
            .into_iter()
            .filter(|s| s.is_cleaning_up())
            .collect();
        assert_eq!(
            terminal,
            [
                ChannelStatus::Completed,
                ChannelStatus::Failed,
                ChannelStatus::Cancelled
            ]
        );
        assert_eq!(
            cleanup,
            [
                ChannelStatus::Completing,
                ChannelStatus::Failing,
                ChannelStatus::Cancelling
            ]
        );
    }
}
