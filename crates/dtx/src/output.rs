//! [`Output`]: what `dtx` tells the user on stdout, as human lines or (with `--json`) one JSON
//! object per line; and the progress bar of a transfer.

use std::io::Write;
use std::time::Duration;

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
    use super::*;

    #[test]
    fn json_and_quiet_hide_the_progress_bar() {
        assert!(Output::new(true, false).progress("x").is_hidden());
        assert!(Output::new(false, true).progress("x").is_hidden());
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

    #[test]
    fn a_known_total_sets_the_length() {
        let bar = ProgressBar::hidden();
        set_total(&bar, 42);
        assert_eq!(bar.length(), Some(42));
    }
}
