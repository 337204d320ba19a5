//! [`NetworkConfig`]: the timeouts, retries and bounds of a [`Libp2pNetwork`](super::Libp2pNetwork),
//! and the backoff between open attempts (spec §2.3).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use datatransfer_message::Limits;

/// Settings of a [`Libp2pNetwork`](super::Libp2pNetwork). Every value has a documented
/// default; the send-side defaults are go-data-transfer v1.15.1's (`network.NewFromLibp2pHost`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NetworkConfig {
    /// How long one attempt to open a stream (dialing included) may take (Go:
    /// `openStreamTimeout`). Default: 10 s.
    pub open_timeout: Duration,
    /// How long writing and closing one message's stream may take (Go: `sendMessageTimeout`).
    /// Writing is not retried. Default: 10 s.
    pub send_timeout: Duration,
    /// Attempts to open a stream before a send or a connect gives up (Go:
    /// `maxStreamOpenAttempts`). Default: 5. Zero counts as one.
    pub max_attempts: u32,
    /// The first wait between attempts (Go's backoff `min`). Default: 1 s.
    pub backoff_min: Duration,
    /// The longest wait between attempts (Go's backoff `max`). Default: 5 min.
    pub backoff_max: Duration,
    /// The growth of the wait per attempt (Go's backoff `factor`). Default: 5.
    pub backoff_factor: u32,
    /// Whether each wait is drawn uniformly from `[backoff_min, wait)`, as Go's jittered
    /// backoff does, instead of being `wait` itself. Default: `true`.
    pub jitter: bool,
    /// The largest message sent or received, in bytes, and the most bytes read from one
    /// inbound stream: Go's decoder budget of 10 × 1 048 576 (spec §2.2). Default: 10 MiB.
    pub max_message_size: usize,
    /// How long reading one inbound stream may take; go-data-transfer v1.15.1 sets no read
    /// deadline, later versions 10 s per message. A stream still open after this is dropped
    /// and the messages it completed are delivered. Default: 10 s.
    pub read_timeout: Duration,
    /// Peers whose inbound streams are being read at once; streams from further peers are
    /// dropped and reported as [`NetworkError::QueueFull`](crate::NetworkError::QueueFull).
    /// Default: 256.
    pub max_inbound_peers: usize,
    /// Inbound streams of one peer waiting to be read (a peer's streams are read one after
    /// another, so its messages arrive in the order it opened them); more are dropped and
    /// reported as [`NetworkError::QueueFull`](crate::NetworkError::QueueFull). Default: 32.
    pub inbound_streams_per_peer: usize,
    /// A peer's reader task ends after this long without streams (a new one starts with its
    /// next stream). Default: 30 s.
    pub inbound_idle: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            open_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            backoff_factor: 5,
            jitter: true,
            max_message_size: Limits::DEFAULT_MAX_BYTES,
            read_timeout: Duration::from_secs(10),
            max_inbound_peers: 256,
            inbound_streams_per_peer: 32,
            inbound_idle: Duration::from_secs(30),
        }
    }
}

impl NetworkConfig {
    /// This config with other open and send timeouts (Go's `SendMessageParameters`).
    pub fn with_timeouts(self, open_timeout: Duration, send_timeout: Duration) -> Self {
        NetworkConfig {
            open_timeout,
            send_timeout,
            ..self
        }
    }

    /// This config with another retry policy (Go's `RetryParameters(min, max, attempts,
    /// factor)`).
    pub fn with_retries(self, min: Duration, max: Duration, attempts: u32, factor: u32) -> Self {
        NetworkConfig {
            backoff_min: min,
            backoff_max: max,
            max_attempts: attempts,
            backoff_factor: factor,
            ..self
        }
    }

    /// This config with jitter switched on or off.
    pub fn with_jitter(self, jitter: bool) -> Self {
        NetworkConfig { jitter, ..self }
    }

    /// This config with another message size limit.
    pub fn with_max_message_size(self, max_message_size: usize) -> Self {
        NetworkConfig {
            max_message_size,
            ..self
        }
    }

    /// This config with another read timeout for inbound streams.
    pub fn with_read_timeout(self, read_timeout: Duration) -> Self {
        NetworkConfig {
            read_timeout,
            ..self
        }
    }

    /// This config with other inbound bounds: peers read at once, and streams queued per peer.
    pub fn with_inbound_limits(self, max_peers: usize, streams_per_peer: usize) -> Self {
        NetworkConfig {
            max_inbound_peers: max_peers,
            inbound_streams_per_peer: streams_per_peer,
            ..self
        }
    }

    /// The number of open attempts, at least one.
    pub(super) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The wait after `sleeps` earlier waits (jpillora/backoff v1.0.0 as Go uses it, spec
    /// §2.3): `min · factor^sleeps`, jittered to `[min, that)` when [`jitter`](Self::jitter)
    /// is on, clamped to `[min, max]`; always `max` when `min ≥ max`.
    pub fn backoff(&self, sleeps: u32) -> Duration {
        let (min, max) = (self.backoff_min, self.backoff_max);
        if min >= max {
            return max;
        }
        let grown = self
            .backoff_factor
            .checked_pow(sleeps)
            .and_then(|growth| min.checked_mul(growth))
            .unwrap_or(max);
        let wait = if self.jitter && grown > min {
            let span = (grown - min).as_nanos();
            let draw = u128::from(random_u64()) % span;
            // `draw < span`, and `span` came from a `Duration`, so it fits.
            min + Duration::from_nanos(u64::try_from(draw).unwrap_or(u64::MAX))
        } else {
            grown
        };
        wait.clamp(min, max)
    }
}

/// A random number from the standard library's randomly seeded hasher (no extra dependency;
/// jitter needs no cryptographic quality).
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_go_defaults() {
        let config = NetworkConfig::default();
        assert_eq!(config.open_timeout, Duration::from_secs(10));
        assert_eq!(config.send_timeout, Duration::from_secs(10));
        assert_eq!(config.max_attempts, 5);
        assert_eq!(config.backoff_min, Duration::from_secs(1));
        assert_eq!(config.backoff_max, Duration::from_secs(300));
        assert_eq!(config.backoff_factor, 5);
        assert!(config.jitter);
        assert_eq!(config.max_message_size, 10 * 1_048_576);
    }

    #[test]
    fn backoff_without_jitter_grows_by_the_factor_up_to_max() {
        let config = NetworkConfig::default().with_jitter(false);
        let waits: Vec<u64> = (0..6).map(|k| config.backoff(k).as_secs()).collect();
        assert_eq!(waits, [1, 5, 25, 125, 300, 300]);
        assert_eq!(config.backoff(200), Duration::from_secs(300));
    }

    #[test]
    fn backoff_with_jitter_stays_in_go_bounds() {
        let config = NetworkConfig::default();
        assert_eq!(config.backoff(0), Duration::from_secs(1));
        for k in 1..5u32 {
            let upper = Duration::from_secs(5u64.pow(k)).min(Duration::from_secs(300));
            for _ in 0..50 {
                let wait = config.backoff(k);
                assert!(
                    wait >= Duration::from_secs(1) && wait <= upper,
                    "{wait:?} for {k}"
                );
            }
        }
    }

    #[test]
    fn backoff_is_max_when_min_is_not_below_max() {
        let config = NetworkConfig::default().with_retries(
            Duration::from_secs(3),
            Duration::from_secs(2),
            5,
            5,
        );
        assert_eq!(config.backoff(0), Duration::from_secs(2));
        assert_eq!(config.backoff(3), Duration::from_secs(2));
    }
}
