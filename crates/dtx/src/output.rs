//! [`Output`]: what `dtx` tells the user on stdout, as human lines or (with `--json`) one JSON
//! object per line; and the progress bar of a transfer.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

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

    /// One event: `json` (an object with an `"event"` key) in JSON mode, `human` otherwise
    /// (unless quiet). A closed stdout is ignored: the work still goes on.
    pub(crate) fn event(&self, json: Value, human: impl FnOnce() -> String) {
        let line = if self.json {
            json.to_string()
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
    fn a_known_total_sets_the_length() {
        let bar = ProgressBar::hidden();
        set_total(&bar, 42);
        assert_eq!(bar.length(), Some(42));
    }
}
