//! [`Output`]: what `dtx` tells the user on stdout, as human lines or (with `--json`) one JSON
//! object per line; the `channel` line of a data-transfer event ([`channel_line`], chosen by
//! [`EventLines`]); and the progress bar of a transfer.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use datatransfer::{ChannelEvent, ChannelId, ChannelState, EventCode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A JSON object on one line with its keys in the order written (`"event"` first), as the
/// `--json` lines are documented; the values are any `serde_json::json!` values.
macro_rules! ordered {
    ({ $($key:literal : $value:expr),* $(,)? }) => {{
        let mut line = String::from("{");
        $(
            if line.len() > 1 {
                line.push(',');
            }
            line.push_str(&serde_json::Value::from($key).to_string());
            line.push(':');
            line.push_str(&serde_json::json!($value).to_string());
        )*
        line.push('}');
        line
    }};
}
pub(crate) use ordered;

/// Where events and results go.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    json: bool,
    quiet: bool,
}

impl Output {
    /// An output in JSON or human form; `quiet` drops the human lines.
    pub(crate) fn new(json: bool, quiet: bool) -> Self {
        Output { json, quiet }
    }

    /// One event: `json` (an object from [`ordered!`] with `"event"` first) in JSON mode,
    /// `human` otherwise (unless quiet). A closed stdout is ignored: the work still goes on.
    pub(crate) fn event(&self, json: String, human: impl FnOnce() -> String) {
        let line = if self.json {
            json
        } else if self.quiet {
            return;
        } else {
            human()
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// One human line, unless in JSON or quiet mode.
    pub(crate) fn human(&self, human: impl FnOnce() -> String) {
        if !self.json && !self.quiet {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", human());
            let _ = stdout.flush();
        }
    }

    /// One JSON line (an object from [`ordered!`]) in JSON mode; nothing otherwise.
    pub(crate) fn json(&self, json: String) {
        if self.json {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{json}");
            let _ = stdout.flush();
        }
    }

    /// A progress bar for a transfer (bytes, rate and, once the total is known, ETA), drawn on
    /// stderr; hidden in JSON or quiet mode and when stderr is not a terminal.
    pub(crate) fn progress(&self, what: &str) -> ProgressBar {
        if self.json || self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(unknown_style());
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// The shortest time between two printed data events of one channel.
///
/// A block queued, sent or received is an event (three per block on a sender), so `--json`
/// prints a data event ([`is_data_event`]) only when no data event of that channel was printed
/// in the last 200 ms; every other event is printed. The lines that are printed still carry the
/// channel's totals so far, and the event that ends the channel carries the final ones.
pub(crate) const DATA_EVENT_INTERVAL: Duration = Duration::from_millis(200);

/// Whether `code` reports one block queued, sent or received (printed at most once per
/// [`DATA_EVENT_INTERVAL`] per channel).
pub(crate) fn is_data_event(code: EventCode) -> bool {
    matches!(
        code,
        EventCode::DataReceived
            | EventCode::DataReceivedProgress
            | EventCode::DataSent
            | EventCode::DataSentProgress
            | EventCode::DataQueued
            | EventCode::DataQueuedProgress
    )
}

/// Which data-transfer events of which channels become `--json` lines: all of them, except
/// data events within [`DATA_EVENT_INTERVAL`] of the last printed one of the same channel.
#[derive(Debug, Default)]
pub(crate) struct EventLines {
    /// When a data event of each channel was last printed.
    last_data: HashMap<ChannelId, Instant>,
}

impl EventLines {
    /// Past this many channels, those whose last data line is older than the interval (which
    /// no longer hold anything back) are forgotten.
    const LIMIT: usize = 1024;

    /// Whether `event`, which happened at `now`, is printed.
    pub(crate) fn wants(&mut self, event: &ChannelEvent, now: Instant) -> bool {
        if event.status.is_terminal() {
            self.last_data.remove(&event.channel);
            return true;
        }
        if !is_data_event(event.code) {
            return true;
        }
        let due = self
            .last_data
            .get(&event.channel)
            .is_none_or(|last| now.saturating_duration_since(*last) >= DATA_EVENT_INTERVAL);
        if due {
            self.last_data.insert(event.channel.clone(), now);
            if self.last_data.len() > Self::LIMIT {
                self.last_data
                    .retain(|_, last| now.saturating_duration_since(*last) < DATA_EVENT_INTERVAL);
            }
        }
        due
    }
}

/// "`blocks` blocks, `bytes` bytes", in the singular where a count is one.
pub(crate) fn blocks_and_bytes(blocks: u64, bytes: u64) -> String {
    let plural = |count: u64| if count == 1 { "" } else { "s" };
    format!(
        "{blocks} block{}, {bytes} byte{}",
        plural(blocks),
        plural(bytes)
    )
}

/// The `--json` line of a data-transfer event: `{"event":"channel","code":…,"channel":…,
/// "peer":…,"root":…,"status":…,"sent":N,"received":N,"sent_blocks":N,"received_blocks":N,
/// "message":…}`: the event's name, the status and message right after it, and the channel's
/// totals once the input that caused it was processed.
pub(crate) fn channel_line(event: &ChannelEvent, state: &ChannelState) -> String {
    ordered!({
        "event": "channel",
        "code": event.code.name(),
        "channel": event.channel.to_string(),
        "peer": state.other_peer().to_string(),
        "root": state.base_cid.to_string(),
        "status": event.status.to_string(),
        "sent": state.sent,
        "received": state.received,
        "sent_blocks": state.sent_blocks_total,
        "received_blocks": state.received_blocks_total,
        "message": event.message,
    })
}

/// Sets the total of `bar` once known, which switches it to the style with a bar and an ETA.
pub(crate) fn set_total(bar: &ProgressBar, total: u64) {
    if bar.length() != Some(total) {
        bar.set_length(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
    }
}

fn unknown_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec} {elapsed}")
        .expect("the template is valid")
}

#[cfg(test)]
mod tests {
    use datatransfer::ChannelStatus;

    use super::*;

    #[test]
    fn json_and_quiet_hide_the_progress_bar() {
        assert!(Output::new(true, false).progress("x").is_hidden());
        assert!(Output::new(false, true).progress("x").is_hidden());
    }

    #[test]
    fn counts_of_one_are_in_the_singular() {
        assert_eq!(blocks_and_bytes(1, 1), "1 block, 1 byte");
        assert_eq!(blocks_and_bytes(0, 2), "0 blocks, 2 bytes");
        assert_eq!(blocks_and_bytes(21, 5_001_009), "21 blocks, 5001009 bytes");
    }

    #[test]
    fn ordered_objects_keep_their_key_order_and_escape() {
        let addrs = vec!["/ip4/1.2.3.4/tcp/1".to_owned()];
        let line = ordered!({"event": "listening", "peer_id": "12D\"x", "addrs": addrs});
        assert_eq!(
            line,
            r#"{"event":"listening","peer_id":"12D\"x","addrs":["/ip4/1.2.3.4/tcp/1"]}"#
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["peer_id"], "12D\"x");
        assert_eq!(ordered!({}), "{}");
    }

    fn event(transfer: u64, code: EventCode, status: ChannelStatus, at: Instant) -> ChannelEvent {
        ChannelEvent {
            channel: ChannelId::new(
                datatransfer::PeerId::from_bytes(vec![1]),
                datatransfer::PeerId::from_bytes(vec![2]),
                datatransfer::TransferId(transfer),
            ),
            code,
            status,
            message: "fine".into(),
            at,
        }
    }

    #[test]
    fn data_events_are_printed_at_most_once_per_interval_per_channel() {
        let start = Instant::now();
        let later = |ms: u64| start + Duration::from_millis(ms);
        let ongoing = ChannelStatus::Ongoing;
        let mut lines = EventLines::default();
        assert!(lines.wants(
            &event(1, EventCode::Open, ChannelStatus::Requested, start),
            start
        ));
        assert!(lines.wants(&event(1, EventCode::DataReceived, ongoing, start), start));
        // Every data code counts against the same interval; other events always print.
        for code in [
            EventCode::DataReceivedProgress,
            EventCode::DataSent,
            EventCode::DataSentProgress,
            EventCode::DataQueued,
            EventCode::DataQueuedProgress,
        ] {
            assert!(
                !lines.wants(&event(1, code, ongoing, start), later(199)),
                "{code:?}"
            );
        }
        assert!(lines.wants(
            &event(1, EventCode::PauseResponder, ongoing, start),
            later(199)
        ));
        // Another channel has its own interval.
        assert!(lines.wants(
            &event(2, EventCode::DataReceived, ongoing, start),
            later(199)
        ));
        assert!(lines.wants(
            &event(1, EventCode::DataReceived, ongoing, start),
            later(200)
        ));
        assert!(!lines.wants(
            &event(1, EventCode::DataReceived, ongoing, start),
            later(201)
        ));
        // The event that ends a channel is printed and forgets it.
        let done = ChannelStatus::Completed;
        assert!(lines.wants(
            &event(1, EventCode::CleanupComplete, done, start),
            later(202)
        ));
        assert!(lines.wants(
            &event(1, EventCode::DataReceived, ongoing, start),
            later(203)
        ));
    }

    #[test]
    fn the_remembered_channels_stay_bounded() {
        let start = Instant::now();
        let mut lines = EventLines::default();
        for transfer in 0..(EventLines::LIMIT as u64 * 3) {
            let at = start + Duration::from_millis(transfer * 10);
            let data = event(transfer, EventCode::DataSent, ChannelStatus::Ongoing, at);
            assert!(lines.wants(&data, at));
            assert!(lines.last_data.len() <= EventLines::LIMIT);
        }
    }

    #[test]
    fn a_channel_line_carries_the_event_and_the_totals() {
        let applied = event(
            9,
            EventCode::Complete,
            ChannelStatus::Completed,
            Instant::now(),
        );
        let responder = datatransfer::PeerId::from_bytes(vec![2]);
        let state = ChannelState {
            self_peer: responder.clone(),
            channel_id: applied.channel.clone(),
            base_cid: dag_io::blocks::cid_of(
                cid::Version::V1,
                0x55,
                dag_io::blocks::SHA2_256,
                b"x",
            )
            .expect("a cid"),
            selector: datatransfer::Node::Null,
            sender: datatransfer::PeerId::from_bytes(vec![1]),
            recipient: responder,
            total_size: 0,
            status: ChannelStatus::Completed,
            queued: 0,
            sent: 7,
            received: 600_000,
            message: "the state's message".into(),
            vouchers: Vec::new(),
            voucher_results: Vec::new(),
            received_blocks_total: 4,
            queued_blocks_total: 0,
            sent_blocks_total: 0,
            stages: datatransfer::ChannelStages::default(),
        };
        let line = channel_line(&applied, &state);
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert!(
            line.starts_with(r#"{"event":"channel","code":"Complete","channel":"#),
            "{line}"
        );
        assert_eq!(value["received"], 600_000);
        assert_eq!(value["received_blocks"], 4);
        assert_eq!(value["sent"], 7);
        assert_eq!(value["sent_blocks"], 0);
        assert_eq!(value["message"], "fine");
        assert_eq!(value.as_object().map(|o| o.len()), Some(11));
    }

    #[test]
    fn a_known_total_sets_the_length() {
        let bar = ProgressBar::hidden();
        set_total(&bar, 42);
        assert_eq!(bar.length(), Some(42));
    }
}
