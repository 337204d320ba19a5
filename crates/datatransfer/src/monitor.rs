//! The channel monitor (Go's `channelmonitor`, spec §7.4): accept and complete timeouts,
//! automatic restarts after transport errors (debounced, backed off, capped), and a
//! no-progress window so that no channel sits in `Ongoing` forever.
//!
//! [`MonitorConfig`] is the configuration, [`MonitorEvent`] what subscribers see of the
//! monitor's decisions (inside [`Event::Monitor`](crate::Event::Monitor)) and
//! [`MonitorFailure`] why the monitor failed a channel. The monitor itself is sans-IO: the
//! [`Manager`](crate::Manager) feeds it the channel events, asks it when to wake up and
//! carries out the [`Action`]s it returns (restarts, failures, publications).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datatransfer_fsm::{ChannelEvent, ChannelState, ChannelStatus, EventCode};
use datatransfer_message::{ChannelId, PeerId};

/// Settings of the channel monitor. Every field has a documented default.
///
/// The monitor is off unless [`Config::monitor`](crate::Config::monitor) holds a
/// `MonitorConfig`, as Go's is off unless the manager is built with `ChannelRestartConfig`
/// (Go has no default configuration). [`MonitorConfig::default`] gives the values this
/// crate suggests for production; [`MonitorConfig::lotus`] gives the values Lotus's client
/// ran Go's monitor with.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// use datatransfer::{Config, MonitorConfig};
///
/// let monitor = MonitorConfig::default().with_no_progress_window(Some(Duration::from_secs(120)));
/// let config = Config::default().with_monitor(Some(monitor));
/// assert_eq!(config.monitor.map(|m| m.max_consecutive_restarts), Some(3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// How long a channel this node opened may wait for the responder's accept before the
    /// monitor fails it ([`MonitorFailure::AcceptTimeout`]); `None` disables. Stopped by the
    /// accept, and also by a restart or any later status (Go's is stopped by `Accept` only,
    /// spec §11 item 17). Default 5 min (Lotus: disabled).
    pub accept_timeout: Option<Duration>,
    /// How long a channel this node opened may stay between finishing its side of the
    /// transfer (`FinishTransfer`) and completing before the monitor fails it
    /// ([`MonitorFailure::CompleteTimeout`]); `None` disables. Default 5 min (Lotus:
    /// disabled).
    pub complete_timeout: Option<Duration>,
    /// Quiet time after the last transport error (a send or receive error, a disconnection)
    /// before the initiator restarts the channel; errors within it push the restart back.
    /// Default 10 s (as Lotus).
    pub restart_debounce: Duration,
    /// Time after a restart attempt, successful or not, before the next one may run;
    /// restart needs that come meanwhile are merged into one restart at its end. Default
    /// 1 min (as Lotus).
    pub restart_backoff: Duration,
    /// The most restarts in a row without a block sent or received; the next restart need
    /// fails the channel ([`MonitorFailure::TooManyRestarts`]). 0 fails the channel at its
    /// first restart need. Default 3 (as Lotus).
    pub max_consecutive_restarts: u32,
    /// How long an `Ongoing` channel may go without any event but an error (a block, a
    /// voucher, a pause or resume, an accept, a restart) before the monitor reports
    /// [`MonitorEvent::Stalled`]; then the initiator restarts the channel and the responder,
    /// after one more window without progress, fails it ([`MonitorFailure::NoProgress`]).
    /// Paused channels (a validator pause, a wait for payment) and channels that are not
    /// `Ongoing` are never stalled. `None` disables. Default 5 min. Go has no such window
    /// (its v1.4 data-rate monitor was removed in v1.5).
    pub no_progress_window: Option<Duration>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            accept_timeout: Some(Duration::from_secs(300)),
            complete_timeout: Some(Duration::from_secs(300)),
            restart_debounce: Duration::from_secs(10),
            restart_backoff: Duration::from_secs(60),
            max_consecutive_restarts: 3,
            no_progress_window: Some(Duration::from_secs(300)),
        }
    }
}

impl MonitorConfig {
    /// The configuration Lotus's client ran Go's monitor with (spec §7.4): no accept or
    /// complete timeout, 10 s debounce, 1 min backoff, 3 consecutive restarts, and no
    /// no-progress window (Go has none).
    pub fn lotus() -> Self {
        MonitorConfig {
            accept_timeout: None,
            complete_timeout: None,
            restart_debounce: Duration::from_secs(10),
            restart_backoff: Duration::from_secs(60),
            max_consecutive_restarts: 3,
            no_progress_window: None,
        }
    }

    /// This configuration with another accept timeout.
    pub fn with_accept_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.accept_timeout = timeout;
        self
    }

    /// This configuration with another complete timeout.
    pub fn with_complete_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.complete_timeout = timeout;
        self
    }

    /// This configuration with another restart debounce and backoff.
    pub fn with_restart_timing(mut self, debounce: Duration, backoff: Duration) -> Self {
        self.restart_debounce = debounce;
        self.restart_backoff = backoff;
        self
    }

    /// This configuration with another cap on consecutive restarts.
    pub fn with_max_consecutive_restarts(mut self, max: u32) -> Self {
        self.max_consecutive_restarts = max;
        self
    }

    /// This configuration with another no-progress window.
    pub fn with_no_progress_window(mut self, window: Option<Duration>) -> Self {
        self.no_progress_window = window;
        self
    }
}

/// Why the monitor failed a channel; the channel's message is this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorFailure {
    /// The responder did not accept in time.
    #[error("channel was not accepted within {timeout:?}")]
    AcceptTimeout {
        /// The configured timeout.
        timeout: Duration,
    },
    /// The channel did not complete in time after its transfer finished.
    #[error("channel did not complete within {timeout:?} of its transfer finishing")]
    CompleteTimeout {
        /// The configured timeout.
        timeout: Duration,
    },
    /// Restarts did not bring data back (Go's text).
    #[error("after {restarts} consecutive restarts failed to transfer any data")]
    TooManyRestarts {
        /// The restarts made.
        restarts: u32,
    },
    /// The responder saw no progress for two windows in a row.
    #[error("no progress for {idle:?}")]
    NoProgress {
        /// How long nothing happened.
        idle: Duration,
    },
}

/// A decision of the monitor, published as [`Event::Monitor`](crate::Event::Monitor).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MonitorEvent {
    /// An `Ongoing` channel went a whole no-progress window without progress. A restart
    /// (initiator) or, after one more window, a failure (responder) follows unless progress
    /// comes first.
    Stalled {
        /// The window.
        idle: Duration,
    },
    /// The initiator is restarting the channel: it connects to the peer, then restarts
    /// the channel as [`Manager::restart_channel`](crate::Manager::restart_channel) does.
    Restarting {
        /// The restart's number among consecutive restarts (from 1).
        attempt: u32,
        /// What made it restart: the last transport error, or the stall.
        reason: String,
    },
    /// The restart was sent; the no-progress window starts again.
    Restarted {
        /// The restart's number among consecutive restarts.
        attempt: u32,
    },
    /// The restart could not be sent (the peer cannot be reached); another follows after
    /// the backoff, within the cap.
    RestartFailed {
        /// The restart's number among consecutive restarts.
        attempt: u32,
        /// Why, as text.
        reason: String,
    },
    /// The monitor failed the channel: its transport was closed, the peer was sent a cancel
    /// and the channel got an `Error` event with this reason as its message.
    Failed {
        /// Why.
        failure: MonitorFailure,
    },
}

/// What the manager must do for the monitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Publish a monitor event.
    Publish(ChannelId, MonitorEvent),
    /// Connect to `peer` and restart `channel`, then report with
    /// [`Monitor::restart_outcome`].
    Restart {
        /// The channel.
        channel: ChannelId,
        /// The other peer.
        peer: PeerId,
    },
    /// Fail the channel (the `Failed` event is published with it).
    Fail {
        /// The channel.
        channel: ChannelId,
        /// Why.
        failure: MonitorFailure,
    },
}

/// What the monitor knows of one channel.
#[derive(Clone, Debug)]
struct Watch {
    initiator: bool,
    peer: PeerId,
    status: ChannelStatus,
    accept_deadline: Option<Instant>,
    complete_deadline: Option<Instant>,
    /// The last progress (or re-arm) of the no-progress window.
    last_progress: Instant,
    /// A `Stalled` event was published since the last progress.
    stalled: bool,
    /// When the next restart runs, with its reason.
    restart_due: Option<(Instant, String)>,
    /// A restart is being carried out.
    restarting: bool,
    /// No restart starts before this.
    backoff_until: Option<Instant>,
    /// Restarts since the last block sent or received.
    consecutive: u32,
}

/// The sans-IO channel monitor: channel events and transport errors in, deadlines and
/// [`Action`]s out.
#[derive(Debug)]
pub(crate) struct Monitor {
    config: MonitorConfig,
    watches: BTreeMap<ChannelId, Watch>,
    /// The earliest deadline set since [`take_new_deadline`](Self::take_new_deadline).
    new_deadline: Option<Instant>,
}

impl Monitor {
    pub(crate) fn new(config: MonitorConfig) -> Self {
        Monitor {
            config,
            watches: BTreeMap::new(),
            new_deadline: None,
        }
    }

    /// Starts watching a channel (a restored one, or one that appeared), unless it is watched
    /// already or finished.
    pub(crate) fn watch(&mut self, state: &ChannelState, now: Instant) {
        if state.status.is_terminal() || state.status.is_cleaning_up() {
            return;
        }
        if self.watches.contains_key(&state.channel_id) {
            return;
        }
        let initiator = state.is_initiator();
        let accept_deadline = match (initiator, state.status) {
            (true, ChannelStatus::Requested) => self.after(now, self.config.accept_timeout),
            _ => None,
        };
        let complete_deadline = match (initiator, state.status) {
            (true, ChannelStatus::TransferFinished) => {
                self.after(now, self.config.complete_timeout)
            }
            _ => None,
        };
        let watch = Watch {
            initiator,
            peer: state.other_peer().clone(),
            status: state.status,
            accept_deadline,
            complete_deadline,
            last_progress: now,
            stalled: false,
            restart_due: None,
            restarting: false,
            backoff_until: None,
            consecutive: 0,
        };
        self.watches.insert(state.channel_id.clone(), watch);
        self.note_deadline(&state.channel_id);
    }

    /// Whether the monitor watches `channel`.
    #[cfg(test)]
    pub(crate) fn is_watching(&self, channel: &ChannelId) -> bool {
        self.watches.contains_key(channel)
    }

    /// An event was applied to a channel.
    pub(crate) fn observe(&mut self, event: &ChannelEvent, state: &ChannelState, now: Instant) {
        if event.status.is_terminal() || event.status.is_cleaning_up() {
            self.watches.remove(&event.channel);
            return;
        }
        if !self.watches.contains_key(&event.channel) {
            self.watch(state, now);
        }
        let complete_timeout = self.config.complete_timeout;
        let debounce = self.config.restart_debounce;
        let Some(watch) = self.watches.get_mut(&event.channel) else {
            return;
        };
        watch.status = event.status;
        match event.code {
            EventCode::FinishTransfer if watch.initiator => {
                watch.complete_deadline = complete_timeout.and_then(|t| now.checked_add(t));
            }
            EventCode::DataSent | EventCode::DataReceived => watch.consecutive = 0,
            EventCode::SendDataError | EventCode::ReceiveDataError if watch.initiator => {
                let at = now.checked_add(debounce).unwrap_or(now);
                schedule(watch, at, event.message.clone());
            }
            _ => {}
        }
        if event.status != ChannelStatus::Requested {
            // Accepted, restarted or further: Go stops its timer on `Accept` only.
            watch.accept_deadline = None;
        }
        if is_progress(event.code) {
            watch.last_progress = now;
            watch.stalled = false;
        }
        self.note_deadline(&event.channel);
    }

    /// The transport lost the connection of `channel` (no engine event says so): the
    /// initiator restarts after the debounce.
    pub(crate) fn transport_error(&mut self, channel: &ChannelId, reason: String, now: Instant) {
        let debounce = self.config.restart_debounce;
        if let Some(watch) = self.watches.get_mut(channel)
            && watch.initiator
        {
            let at = now.checked_add(debounce).unwrap_or(now);
            schedule(watch, at, reason);
            self.note_deadline(channel);
        }
    }

    /// The earliest deadline set since the last call: the manager wakes its timer when it
    /// is earlier than the one the timer sleeps until.
    pub(crate) fn take_new_deadline(&mut self) -> Option<Instant> {
        self.new_deadline.take()
    }

    /// When [`poll`](Self::poll) must next run, if ever.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.watches
            .values()
            .filter_map(|watch| self.deadline(watch))
            .min()
    }

    /// Time passed: the decisions due at `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let due: Vec<ChannelId> = self
            .watches
            .iter()
            .filter(|(_, watch)| self.deadline(watch).is_some_and(|d| d <= now))
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in due {
            self.poll_channel(&channel, now, &mut actions);
        }
        actions
    }

    /// The outcome of a restart the monitor asked for.
    pub(crate) fn restart_outcome(
        &mut self,
        channel: &ChannelId,
        outcome: Result<(), String>,
        now: Instant,
    ) -> Vec<Action> {
        let backoff = self.config.restart_backoff;
        let Some(watch) = self.watches.get_mut(channel) else {
            return Vec::new();
        };
        watch.restarting = false;
        let until = now.checked_add(backoff).unwrap_or(now);
        watch.backoff_until = Some(until);
        let attempt = watch.consecutive;
        let event = match outcome {
            Ok(()) => {
                // Re-armed: the window starts again at the restart.
                watch.last_progress = now;
                watch.stalled = false;
                MonitorEvent::Restarted { attempt }
            }
            Err(reason) => {
                let again = watch
                    .restart_due
                    .take()
                    .map_or_else(|| reason.clone(), |(_, last)| last);
                watch.restart_due = Some((until, again));
                MonitorEvent::RestartFailed { attempt, reason }
            }
        };
        if let Some((at, _)) = watch.restart_due.as_mut() {
            *at = (*at).max(until);
        }
        self.note_deadline(channel);
        vec![Action::Publish(channel.clone(), event)]
    }

    fn poll_channel(&mut self, channel: &ChannelId, now: Instant, actions: &mut Vec<Action>) {
        let config = self.config.clone();
        let Some(watch) = self.watches.get_mut(channel) else {
            return;
        };
        if let (Some(at), Some(timeout)) = (watch.accept_deadline, config.accept_timeout)
            && at <= now
        {
            self.fail(channel, MonitorFailure::AcceptTimeout { timeout }, actions);
            return;
        }
        if let (Some(at), Some(timeout)) = (watch.complete_deadline, config.complete_timeout)
            && at <= now
        {
            self.fail(
                channel,
                MonitorFailure::CompleteTimeout { timeout },
                actions,
            );
            return;
        }
        if let (Some(at), Some(window)) =
            (stall_deadline(watch, &config), config.no_progress_window)
            && at <= now
        {
            if watch.stalled {
                // Only a responder gets here: an initiator's stall waits for its restart.
                let idle = now.saturating_duration_since(watch.last_progress) + window;
                self.fail(channel, MonitorFailure::NoProgress { idle }, actions);
                return;
            }
            watch.stalled = true;
            actions.push(Action::Publish(
                channel.clone(),
                MonitorEvent::Stalled { idle: window },
            ));
            if watch.initiator {
                let reason = format!("no progress for {window:?}");
                schedule(watch, now, reason);
            } else {
                // One more window for the initiator to restart it.
                watch.last_progress = now;
            }
        }
        if let Some((at, _)) = &watch.restart_due
            && *at <= now
            && !watch.restarting
        {
            let Some((_, reason)) = watch.restart_due.take() else {
                return;
            };
            watch.consecutive = watch.consecutive.saturating_add(1);
            if watch.consecutive > config.max_consecutive_restarts {
                let restarts = watch.consecutive - 1;
                self.fail(
                    channel,
                    MonitorFailure::TooManyRestarts { restarts },
                    actions,
                );
                return;
            }
            watch.restarting = true;
            actions.push(Action::Publish(
                channel.clone(),
                MonitorEvent::Restarting {
                    attempt: watch.consecutive,
                    reason,
                },
            ));
            actions.push(Action::Restart {
                channel: channel.clone(),
                peer: watch.peer.clone(),
            });
        }
    }

    /// Stops watching `channel` and asks for its failure.
    fn fail(&mut self, channel: &ChannelId, failure: MonitorFailure, actions: &mut Vec<Action>) {
        self.watches.remove(channel);
        actions.push(Action::Fail {
            channel: channel.clone(),
            failure,
        });
    }

    fn deadline(&self, watch: &Watch) -> Option<Instant> {
        let restart = match &watch.restart_due {
            Some((at, _)) if !watch.restarting => Some(*at),
            _ => None,
        };
        [
            watch.accept_deadline,
            watch.complete_deadline,
            stall_deadline(watch, &self.config),
            restart,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn note_deadline(&mut self, channel: &ChannelId) {
        let Some(at) = self.watches.get(channel).and_then(|w| self.deadline(w)) else {
            return;
        };
        self.new_deadline = Some(self.new_deadline.map_or(at, |d| d.min(at)));
    }

    fn after(&self, now: Instant, timeout: Option<Duration>) -> Option<Instant> {
        timeout.and_then(|t| now.checked_add(t))
    }
}

/// Schedules a restart at `at` (not before the backoff ends); a later need replaces the
/// reason and, for a debounce, pushes the restart back.
fn schedule(watch: &mut Watch, at: Instant, reason: String) {
    let at = watch.backoff_until.map_or(at, |until| at.max(until));
    watch.restart_due = Some((at, reason));
}

/// When the channel's no-progress window ends: only `Ongoing` channels stall, and an
/// initiator's stall waits for its restart.
fn stall_deadline(watch: &Watch, config: &MonitorConfig) -> Option<Instant> {
    let window = config.no_progress_window?;
    if watch.status != ChannelStatus::Ongoing {
        return None;
    }
    if watch.initiator && (watch.stalled || watch.restarting || watch.restart_due.is_some()) {
        return None;
    }
    watch.last_progress.checked_add(window)
}

/// Whether an event counts as progress: anything but an error report.
fn is_progress(code: EventCode) -> bool {
    !matches!(
        code,
        EventCode::SendDataError
            | EventCode::ReceiveDataError
            | EventCode::Disconnected
            | EventCode::RequestCancelled
            | EventCode::Error
            | EventCode::RequestTimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use cid::Cid;
    use datatransfer_fsm::{Engine, Voucher};
    use ipld_dagcbor::Node;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes(vec![n])
    }

    fn state(initiator: bool, status: ChannelStatus) -> ChannelState {
        let mut engine = Engine::new(peer(1), datatransfer_fsm::Config::default());
        let channel = engine
            .open_pull(
                peer(2),
                Voucher::new("test/voucher", Node::Null),
                Cid::default(),
                Node::Null,
                Instant::now(),
            )
            .expect("an empty engine has room for a channel");
        let mut state = engine
            .channel(&channel)
            .expect("the channel was just opened")
            .clone();
        if !initiator {
            // The same channel seen from the responder.
            state.self_peer = peer(2);
        }
        state.status = status;
        state
    }

    fn event(state: &ChannelState, code: EventCode, now: Instant) -> ChannelEvent {
        ChannelEvent {
            channel: state.channel_id.clone(),
            code,
            status: state.status,
            message: String::new(),
            at: now,
        }
    }

    const WINDOW: Duration = Duration::from_secs(60);

    fn config() -> MonitorConfig {
        MonitorConfig::default()
            .with_no_progress_window(Some(WINDOW))
            .with_restart_timing(Duration::from_secs(1), Duration::from_secs(10))
            .with_max_consecutive_restarts(2)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let suggested = MonitorConfig::default();
        assert_eq!(suggested.accept_timeout, Some(Duration::from_secs(300)));
        assert_eq!(suggested.complete_timeout, Some(Duration::from_secs(300)));
        assert_eq!(suggested.restart_debounce, Duration::from_secs(10));
        assert_eq!(suggested.restart_backoff, Duration::from_secs(60));
        assert_eq!(suggested.max_consecutive_restarts, 3);
        assert_eq!(suggested.no_progress_window, Some(Duration::from_secs(300)));
        let lotus = MonitorConfig::lotus();
        assert_eq!(lotus.accept_timeout, None);
        assert_eq!(lotus.complete_timeout, None);
        assert_eq!(lotus.no_progress_window, None);
        assert_eq!(
            (
                lotus.restart_debounce,
                lotus.restart_backoff,
                lotus.max_consecutive_restarts
            ),
            (Duration::from_secs(10), Duration::from_secs(60), 3)
        );
        assert_eq!(
            crate::Config::default().monitor,
            None,
            "off by default, as Go's"
        );
    }

    #[test]
    fn an_accepted_or_restarted_channel_has_no_accept_timer() {
        let start = Instant::now();
        let mut monitor = Monitor::new(config().with_no_progress_window(None));
        let requested = state(true, ChannelStatus::Requested);
        monitor.watch(&requested, start);
        assert_eq!(
            monitor.next_deadline(),
            Some(start + Duration::from_secs(300)),
            "the accept timer runs"
        );
        // Go stops the timer on `Accept` only; a restart response leaves the channel
        // `Ongoing` and must stop it too.
        let mut restarted = requested.clone();
        restarted.status = ChannelStatus::Ongoing;
        monitor.observe(
            &event(&restarted, EventCode::Restart, start),
            &restarted,
            start,
        );
        assert_eq!(monitor.next_deadline(), None);
        assert!(monitor.poll(start + Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn a_paused_channel_never_stalls() {
        let start = Instant::now();
        let mut monitor = Monitor::new(config());
        let paused = state(true, ChannelStatus::ResponderPaused);
        monitor.watch(&paused, start);
        assert_eq!(monitor.next_deadline(), None);
        assert!(monitor.poll(start + WINDOW * 10).is_empty());
    }

    #[test]
    fn stalled_initiator_restarts_then_fails_at_the_cap() {
        let start = Instant::now();
        let mut monitor = Monitor::new(config());
        let ongoing = state(true, ChannelStatus::Ongoing);
        let id = ongoing.channel_id.clone();
        monitor.watch(&ongoing, start);
        let mut restarts = 0;
        let failure = loop {
            let now = monitor
                .next_deadline()
                .expect("a watched ongoing channel has a deadline");
            let mut failed = None;
            for action in monitor.poll(now) {
                match action {
                    Action::Restart { .. } => {
                        restarts += 1;
                        monitor.restart_outcome(&id, Ok(()), now);
                    }
                    Action::Fail { failure, .. } => failed = Some(failure),
                    Action::Publish(..) => {}
                }
            }
            if let Some(failure) = failed {
                break failure;
            }
            assert!(now < start + WINDOW * 20, "the monitor never gave up");
        };
        assert_eq!(restarts, 2);
        assert_eq!(failure, MonitorFailure::TooManyRestarts { restarts: 2 });
        assert!(!monitor.is_watching(&id));
    }

    #[test]
    fn data_resets_the_restart_count() {
        let start = Instant::now();
        let mut monitor = Monitor::new(config());
        let ongoing = state(true, ChannelStatus::Ongoing);
        let id = ongoing.channel_id.clone();
        monitor.watch(&ongoing, start);
        let mut errors = event(&ongoing, EventCode::ReceiveDataError, start);
        errors.message = "lost".into();
        monitor.observe(&errors, &ongoing, start);
        let at = monitor.next_deadline().expect("restart scheduled");
        assert_eq!(at, start + Duration::from_secs(1), "the debounce");
        let actions = monitor.poll(at);
        assert!(actions.contains(&Action::Publish(
            id.clone(),
            MonitorEvent::Restarting {
                attempt: 1,
                reason: "lost".into()
            }
        )));
        monitor.restart_outcome(&id, Ok(()), at);
        monitor.observe(&event(&ongoing, EventCode::DataReceived, at), &ongoing, at);
        monitor.observe(&errors, &ongoing, at);
        let next = monitor.next_deadline().expect("restart scheduled");
        assert_eq!(next, at + Duration::from_secs(10), "the backoff");
        let actions = monitor.poll(next);
        assert!(actions.contains(&Action::Publish(
            id,
            MonitorEvent::Restarting {
                attempt: 1,
                reason: "lost".into()
            }
        )));
    }

    #[test]
    fn a_stalled_responder_fails_after_a_second_window() {
        let start = Instant::now();
        let mut monitor = Monitor::new(config());
        let ongoing = state(false, ChannelStatus::Ongoing);
        let id = ongoing.channel_id.clone();
        monitor.watch(&ongoing, start);
        monitor.transport_error(&id, "gone".into(), start);
        let first = monitor.poll(start + WINDOW);
        assert_eq!(
            first,
            vec![Action::Publish(
                id.clone(),
                MonitorEvent::Stalled { idle: WINDOW }
            )]
        );
        let second = monitor.poll(start + WINDOW * 2);
        assert_eq!(
            second,
            vec![Action::Fail {
                channel: id,
                failure: MonitorFailure::NoProgress { idle: WINDOW * 2 }
            }]
        );
    }
}
