//! The parts of the `dtx` program that talk to a running `dtx serve`: its local control socket
//! and its Prometheus metrics endpoint.
//!
//! Place in the stack: layer 4, the program, on top of the [`datatransfer`] facade. The binary
//! (`src/main.rs`) parses the command line and uses both modules: `dtx serve` opens the control
//! socket and, with `--metrics ADDR`, the metrics endpoint (so do `dtx pull` and `dtx push`
//! with `--metrics`); `dtx channels|cancel|pause|resume|restart` are control clients.
//!
//! Main items:
//! - [`control`]: the control socket at `<data-dir>/control.sock` ([`control::serve`] for a
//!   [`control::ControlTarget`], implemented for [`datatransfer::Manager`]), and the client side
//!   of `dtx channels [--watch]` ([`control::channels`]) and `dtx cancel|pause|resume|restart
//!   <CHANNEL>` ([`control::channel_command`]);
//! - [`metrics`]: the metrics of `--metrics ADDR`, all started for a node by
//!   [`metrics::start`]: [`metrics::Metrics`], fed by [`metrics::spawn_recorder`], and the HTTP
//!   endpoint ([`metrics::serve_metrics`]).
//!
//! Feature flags: none.
//!
//! # Examples
//! A channel named on the command line is found among the node's channels by its full id or
//! any part of it that fits only one:
//! ```
//! use datatransfer::{ChannelId, PeerId, TransferId};
//! use dtx::control::resolve;
//!
//! let a = PeerId::from_bytes(vec![1]);
//! let b = PeerId::from_bytes(vec![2]);
//! let first = ChannelId::new(a.clone(), b.clone(), TransferId(41));
//! let second = ChannelId::new(a, b, TransferId(42));
//! let known = [first.clone(), second.clone()];
//!
//! assert_eq!(resolve(&first.to_string(), &known)?, first);
//! assert_eq!(resolve("42", &known)?, second);
//! assert_eq!(first.to_string(), "2-3-41");
//! assert!(resolve("2-3", &known).is_err()); // both ids start so
//! assert!(resolve("7", &known).is_err()); // no id fits
//! # Ok::<(), dtx::control::ControlError>(())
//! ```

pub mod control;
pub mod metrics;

#[cfg(test)]
mod testing;
