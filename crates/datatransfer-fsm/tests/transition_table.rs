//! The transition table of `spec/data-transfer.md` §5.4, written here as data (the "from → to"
//! cell of every row, copied from the spec), checked cell by cell against the spec text and
//! then pair by pair against [`transition`]: every (status, event) pair of a non-terminal
//! status, so both the rows and the illegal pairs are covered.

mod common;

use datatransfer_fsm::{ChannelStatus, EventCode, IllegalTransition, transition};

/// Every row of the §5.4 table: the event and its "from → to" rule, first matching clause
/// wins. `RequestTimedOut` has no row (no FSM entry).
const TABLE: &[(EventCode, &str)] = &[
    (EventCode::Open, "any → Requested"),
    (
        EventCode::Accept,
        "Requested → Ongoing (any other state: invalid, dropped)",
    ),
    (EventCode::TransferRequestQueued, "any → record-only"),
    (EventCode::Restart, "any → record-only"),
    (EventCode::Opened, "any → record-only"),
    (EventCode::Cancel, "any → Cancelling"),
    (EventCode::DataReceived, "any → no-change"),
    (EventCode::DataReceivedProgress, "T → no-change"),
    (EventCode::DataSent, "T ∪ {TransferFinished} → no-change"),
    (EventCode::DataSentProgress, "T → no-change"),
    (EventCode::DataQueued, "T ∪ {TransferFinished} → no-change"),
    (EventCode::DataQueuedProgress, "T → no-change"),
    (EventCode::Disconnected, "any → no-change"),
    (EventCode::SendDataError, "any → no-change"),
    (EventCode::ReceiveDataError, "any → no-change"),
    (EventCode::RequestCancelled, "any → no-change"),
    (EventCode::Error, "any → Failing"),
    (EventCode::NewVoucher, "any → no-change"),
    (EventCode::NewVoucherResult, "any → no-change"),
    (
        EventCode::PauseInitiator,
        "Requested, Ongoing → InitiatorPaused; ResponderPaused → BothPaused; any other → record-only",
    ),
    (
        EventCode::PauseResponder,
        "Requested, Ongoing → ResponderPaused; InitiatorPaused → BothPaused; any other → record-only",
    ),
    (
        EventCode::ResumeInitiator,
        "InitiatorPaused → Ongoing; BothPaused → ResponderPaused; any other → record-only",
    ),
    (
        EventCode::ResumeResponder,
        "ResponderPaused → Ongoing; BothPaused → InitiatorPaused; **Finalizing → Completing**; any other → record-only",
    ),
    (
        EventCode::FinishTransfer,
        "Failing, Cancelling → record-only; ResponderCompleted → Completing; ResponderFinalizing → ResponderFinalizingTransferFinished; **Requested → Completing**; any other → TransferFinished",
    ),
    (
        EventCode::ResponderBeginsFinalization,
        "Failing, Cancelling → record-only; TransferFinished → ResponderFinalizingTransferFinished; any other → ResponderFinalizing",
    ),
    (
        EventCode::ResponderCompletes,
        "Failing, Cancelling → record-only; ResponderPaused → ResponderFinalizing; TransferFinished → Completing; ResponderFinalizing → ResponderCompleted; ResponderFinalizingTransferFinished → Completing; any other → ResponderCompleted",
    ),
    (EventCode::BeginFinalizing, "any → Finalizing"),
    (EventCode::Complete, "any → Completing"),
    (
        EventCode::CleanupComplete,
        "Cancelling → Cancelled; Failing → Failed; Completing → Completed (any other state: invalid)",
    ),
    (
        EventCode::CompleteCleanupOnRestart,
        "any → no-change, which re-runs the cleanup entry function when the channel is in a cleanup state",
    ),
];

/// The transferring set `T` of §5.4, spelled out from the spec's definition.
const T: [ChannelStatus; 7] = [
    ChannelStatus::Requested,
    ChannelStatus::Ongoing,
    ChannelStatus::InitiatorPaused,
    ChannelStatus::ResponderPaused,
    ChannelStatus::BothPaused,
    ChannelStatus::ResponderCompleted,
    ChannelStatus::ResponderFinalizing,
];

/// The statuses a stored channel can be in and still take events: all but the terminal ones
/// and `ChannelNotFoundError` (never stored).
fn live_statuses() -> Vec<ChannelStatus> {
    ChannelStatus::ALL
        .into_iter()
        .filter(|s| !s.is_terminal() && *s != ChannelStatus::ChannelNotFoundError)
        .collect()
}

fn status_named(name: &str) -> ChannelStatus {
    ChannelStatus::ALL
        .into_iter()
        .find(|status| status.name() == name)
        .unwrap_or_else(|| panic!("no status named {name:?}"))
}

/// What the rule says for `status`: `Some(next)` for a row, `None` for no row (illegal).
fn apply_rule(rule: &str, status: ChannelStatus) -> Option<ChannelStatus> {
    let rule = rule.replace("**", "");
    // Drop parenthesised remarks and a trailing ", which …" explanation.
    let mut plain = String::new();
    let mut depth = 0;
    for c in rule.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    for clause in plain.split(';') {
        let (from, to) = clause
            .split_once('→')
            .unwrap_or_else(|| panic!("clause without an arrow: {clause:?}"));
        let from = from.trim();
        let matches = match from {
            "any" | "any other" => true,
            "T" => T.contains(&status),
            "T ∪ {TransferFinished}" => {
                T.contains(&status) || status == ChannelStatus::TransferFinished
            }
            list => list
                .split(',')
                .any(|name| status_named(name.trim()) == status),
        };
        if matches {
            let to = to.split(',').next().unwrap_or("").trim();
            return Some(match to {
                "record-only" | "no-change" => status,
                name => status_named(name),
            });
        }
    }
    None
}

fn normalise(cell: &str) -> String {
    cell.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_table_here_is_the_table_of_the_spec() {
    let text = common::spec_text();
    let rows = common::table_rows(&common::section(&text, "### 5.4 Transition table"));
    assert_eq!(rows.len(), TABLE.len(), "one spec row per table entry");
    for (row, (event, rule)) in rows.iter().zip(TABLE) {
        let name = row[0].split('(').next().unwrap_or("").trim();
        assert_eq!(name, event.name(), "rows are in the spec's order");
        assert_eq!(normalise(&row[1]), normalise(rule), "{event}");
    }
}

#[test]
fn every_row_of_the_table_gives_the_status_transition_gives() {
    let mut checked = 0;
    for (event, rule) in TABLE {
        for status in live_statuses() {
            let expected = apply_rule(rule, status);
            let actual = transition(status, *event);
            match expected {
                Some(next) => assert_eq!(actual, Ok(next), "{event} in {status}"),
                None => assert_eq!(
                    actual,
                    Err(IllegalTransition::NotAllowed {
                        status,
                        event: *event
                    }),
                    "{event} in {status}"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, TABLE.len() * 13);
}

#[test]
fn request_timed_out_has_no_row_and_is_never_allowed() {
    assert!(
        TABLE
            .iter()
            .all(|(event, _)| *event != EventCode::RequestTimedOut)
    );
    for status in live_statuses() {
        assert_eq!(
            transition(status, EventCode::RequestTimedOut),
            Err(IllegalTransition::NotAllowed {
                status,
                event: EventCode::RequestTimedOut
            })
        );
    }
}

#[test]
fn illegal_pairs_named_by_the_spec_are_errors() {
    use ChannelStatus::*;
    let illegal = [
        (Ongoing, EventCode::Accept),
        (InitiatorPaused, EventCode::Accept),
        (Completing, EventCode::Accept),
        (Requested, EventCode::CleanupComplete),
        (Ongoing, EventCode::CleanupComplete),
        (Finalizing, EventCode::CleanupComplete),
        (TransferFinished, EventCode::DataReceivedProgress),
        (Finalizing, EventCode::DataSentProgress),
        (Completing, EventCode::DataQueuedProgress),
        (Finalizing, EventCode::DataSent),
        (Failing, EventCode::DataQueued),
    ];
    for (status, event) in illegal {
        assert_eq!(
            transition(status, event),
            Err(IllegalTransition::NotAllowed { status, event }),
            "{event} in {status}"
        );
    }
}

#[test]
fn quirky_rows_are_copied_from_go() {
    use ChannelStatus::*;
    assert_eq!(
        transition(Requested, EventCode::FinishTransfer),
        Ok(Completing)
    );
    assert_eq!(
        transition(ResponderPaused, EventCode::ResponderCompletes),
        Ok(ResponderFinalizing)
    );
    assert_eq!(
        transition(Finalizing, EventCode::ResumeResponder),
        Ok(Completing)
    );
    assert_eq!(
        transition(TransferFinished, EventCode::PauseInitiator),
        Ok(TransferFinished)
    );
}

#[test]
fn pause_flags_combine_as_the_pause_state_mapping_says() {
    use ChannelStatus::*;
    // From Ongoing, every order of pausing and resuming both sides ends where the two flags say.
    let flags =
        |status: ChannelStatus| (status.is_initiator_paused(), status.is_responder_paused());
    let events = [
        EventCode::PauseInitiator,
        EventCode::PauseResponder,
        EventCode::ResumeInitiator,
        EventCode::ResumeResponder,
    ];
    for first in events {
        for second in events {
            for third in events {
                let mut status = Ongoing;
                let (mut initiator, mut responder) = (false, false);
                for event in [first, second, third] {
                    status = transition(status, event).expect("pause events always apply");
                    match event {
                        EventCode::PauseInitiator => initiator = true,
                        EventCode::PauseResponder => responder = true,
                        EventCode::ResumeInitiator => initiator = false,
                        _ => responder = false,
                    }
                    assert_eq!(
                        flags(status),
                        (initiator, responder),
                        "{first} {second} {third}"
                    );
                }
            }
        }
    }
}

#[test]
fn terminal_statuses_absorb_every_event_and_only_cleanup_reaches_them() {
    for status in ChannelStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
        for event in EventCode::ALL {
            assert_eq!(
                transition(status, event),
                Err(IllegalTransition::Terminated { status, event })
            );
        }
    }
    for status in live_statuses() {
        for event in EventCode::ALL {
            if let Ok(next) = transition(status, event)
                && next.is_terminal()
            {
                assert_eq!(event, EventCode::CleanupComplete, "{event} in {status}");
                assert!(status.is_cleaning_up());
            }
        }
    }
}
