//! [`EventCode`]: the events a channel goes through, with Go's integer codes and names
//! (`spec/data-transfer.md` §5.2).

use std::fmt;

/// What happened to a channel: Go's `datatransfer.EventCode`, with the same integer codes (iota
/// order) and names.
///
/// Events are local: they drive the transition table and are reported to the
/// application, but never go on the wire. Go's `Events` name map has no entry for
/// [`Opened`](Self::Opened) (30); [`go_events_name`](Self::go_events_name) reproduces that gap,
/// [`name`](Self::name) does not.
///
/// # Examples
/// ```
/// use datatransfer_fsm::EventCode;
///
/// assert_eq!(EventCode::DataReceivedProgress.code(), 24);
/// assert_eq!(EventCode::from_code(19), Some(EventCode::Complete));
/// assert_eq!(EventCode::Opened.name(), "Opened");
/// assert_eq!(EventCode::Opened.go_events_name(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventCode {
    /// 0: a channel was created.
    Open,
    /// 1: the responder accepted the channel.
    Accept,
    /// 2: the channel was restarted.
    Restart,
    /// 3: a block arrived from the remote peer (carries its index).
    DataReceived,
    /// 4: a block went to the remote peer (carries its index).
    DataSent,
    /// 5: one side cancelled the channel.
    Cancel,
    /// 6: the channel failed.
    Error,
    /// 7: cleanup finished; the channel reaches its terminal status.
    CleanupComplete,
    /// 8: a voucher was added to the channel.
    NewVoucher,
    /// 9: a voucher result was added to the channel.
    NewVoucherResult,
    /// 10: the initiator paused.
    PauseInitiator,
    /// 11: the initiator resumed.
    ResumeInitiator,
    /// 12: the responder paused.
    PauseResponder,
    /// 13: the responder resumed.
    ResumeResponder,
    /// 14: the local side finished sending or receiving.
    FinishTransfer,
    /// 15: the responder said Complete.
    ResponderCompletes,
    /// 16: the responder said Complete and asks for a final voucher.
    ResponderBeginsFinalization,
    /// 17: the responder awaits the initiator's final voucher.
    BeginFinalizing,
    /// 18: a message could not be sent to the peer.
    Disconnected,
    /// 19: the transfer completed.
    Complete,
    /// 20: a restart found the channel cleaning up and finishes the cleanup.
    CompleteCleanupOnRestart,
    /// 21: a block was queued for sending (carries its index).
    DataQueued,
    /// 22: a new block was queued: adds its size to `Queued`.
    DataQueuedProgress,
    /// 23: a new block was sent: adds its size to `Sent`.
    DataSentProgress,
    /// 24: a new block was received: adds its size to `Received`.
    DataReceivedProgress,
    /// 25: deprecated; never emitted and without a transition.
    RequestTimedOut,
    /// 26: the transport failed to send data.
    SendDataError,
    /// 27: the transport failed to receive data.
    ReceiveDataError,
    /// 28: the transport queued the data request.
    TransferRequestQueued,
    /// 29: the transport request was cancelled.
    RequestCancelled,
    /// 30: the transport opened the data channel.
    Opened,
}

impl EventCode {
    /// Every event code, in code order (`ALL[n].code() == n`).
    pub const ALL: [EventCode; 31] = [
        EventCode::Open,
        EventCode::Accept,
        EventCode::Restart,
        EventCode::DataReceived,
        EventCode::DataSent,
        EventCode::Cancel,
        EventCode::Error,
        EventCode::CleanupComplete,
        EventCode::NewVoucher,
        EventCode::NewVoucherResult,
        EventCode::PauseInitiator,
        EventCode::ResumeInitiator,
        EventCode::PauseResponder,
        EventCode::ResumeResponder,
        EventCode::FinishTransfer,
        EventCode::ResponderCompletes,
        EventCode::ResponderBeginsFinalization,
        EventCode::BeginFinalizing,
        EventCode::Disconnected,
        EventCode::Complete,
        EventCode::CompleteCleanupOnRestart,
        EventCode::DataQueued,
        EventCode::DataQueuedProgress,
        EventCode::DataSentProgress,
        EventCode::DataReceivedProgress,
        EventCode::RequestTimedOut,
        EventCode::SendDataError,
        EventCode::ReceiveDataError,
        EventCode::TransferRequestQueued,
        EventCode::RequestCancelled,
        EventCode::Opened,
    ];

    /// Go's integer code (`type EventCode int`).
    pub fn code(self) -> u32 {
        match self {
            EventCode::Open => 0,
            EventCode::Accept => 1,
            EventCode::Restart => 2,
            EventCode::DataReceived => 3,
            EventCode::DataSent => 4,
            EventCode::Cancel => 5,
            EventCode::Error => 6,
            EventCode::CleanupComplete => 7,
            EventCode::NewVoucher => 8,
            EventCode::NewVoucherResult => 9,
            EventCode::PauseInitiator => 10,
            EventCode::ResumeInitiator => 11,
            EventCode::PauseResponder => 12,
            EventCode::ResumeResponder => 13,
            EventCode::FinishTransfer => 14,
            EventCode::ResponderCompletes => 15,
            EventCode::ResponderBeginsFinalization => 16,
            EventCode::BeginFinalizing => 17,
            EventCode::Disconnected => 18,
            EventCode::Complete => 19,
            EventCode::CompleteCleanupOnRestart => 20,
            EventCode::DataQueued => 21,
            EventCode::DataQueuedProgress => 22,
            EventCode::DataSentProgress => 23,
            EventCode::DataReceivedProgress => 24,
            EventCode::RequestTimedOut => 25,
            EventCode::SendDataError => 26,
            EventCode::ReceiveDataError => 27,
            EventCode::TransferRequestQueued => 28,
            EventCode::RequestCancelled => 29,
            EventCode::Opened => 30,
        }
    }

    /// The event with this Go code, if v1.15.1 defines one.
    pub fn from_code(code: u32) -> Option<Self> {
        usize::try_from(code)
            .ok()
            .and_then(|index| Self::ALL.get(index).copied())
    }

    /// The Go identifier of the event (for every code, `Opened` included).
    pub fn name(self) -> &'static str {
        match self {
            EventCode::Open => "Open",
            EventCode::Accept => "Accept",
            EventCode::Restart => "Restart",
            EventCode::DataReceived => "DataReceived",
            EventCode::DataSent => "DataSent",
            EventCode::Cancel => "Cancel",
            EventCode::Error => "Error",
            EventCode::CleanupComplete => "CleanupComplete",
            EventCode::NewVoucher => "NewVoucher",
            EventCode::NewVoucherResult => "NewVoucherResult",
            EventCode::PauseInitiator => "PauseInitiator",
            EventCode::ResumeInitiator => "ResumeInitiator",
            EventCode::PauseResponder => "PauseResponder",
            EventCode::ResumeResponder => "ResumeResponder",
            EventCode::FinishTransfer => "FinishTransfer",
            EventCode::ResponderCompletes => "ResponderCompletes",
            EventCode::ResponderBeginsFinalization => "ResponderBeginsFinalization",
            EventCode::BeginFinalizing => "BeginFinalizing",
            EventCode::Disconnected => "Disconnected",
            EventCode::Complete => "Complete",
            EventCode::CompleteCleanupOnRestart => "CompleteCleanupOnRestart",
            EventCode::DataQueued => "DataQueued",
            EventCode::DataQueuedProgress => "DataQueuedProgress",
            EventCode::DataSentProgress => "DataSentProgress",
            EventCode::DataReceivedProgress => "DataReceivedProgress",
            EventCode::RequestTimedOut => "RequestTimedOut",
            EventCode::SendDataError => "SendDataError",
            EventCode::ReceiveDataError => "ReceiveDataError",
            EventCode::TransferRequestQueued => "TransferRequestQueued",
            EventCode::RequestCancelled => "RequestCancelled",
            EventCode::Opened => "Opened",
        }
    }

    /// The name Go's `Events` map gives the event: [`name`](Self::name), except `None` for
    /// [`Opened`](Self::Opened), which v1.15.1's map lacks.
    pub fn go_events_name(self) -> Option<&'static str> {
        match self {
            EventCode::Opened => None,
            other => Some(other.name()),
        }
    }
}

impl fmt::Display for EventCode {
    /// Prints the Go identifier.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_stop_at_thirty() {
        for (code, event) in (0u32..).zip(EventCode::ALL) {
            assert_eq!(event.code(), code);
            assert_eq!(EventCode::from_code(code), Some(event));
        }
        assert_eq!(EventCode::from_code(31), None);
        assert_eq!(EventCode::from_code(u32::MAX), None);
    }

    #[test]
    fn only_opened_lacks_a_go_events_name() {
        for event in EventCode::ALL {
            let expected = (event != EventCode::Opened).then(|| event.name());
            assert_eq!(event.go_events_name(), expected);
        }
    }
}
