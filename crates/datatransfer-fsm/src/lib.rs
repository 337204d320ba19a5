//! The sans-IO channel state machine of data-transfer (go-data-transfer v1.15.1): every
//! status and event of the Go API.
//!
//! Place in the stack: layer 1, above `datatransfer-message`. It performs no I/O, reads no
//! clock and holds no user callbacks; the `datatransfer` facade drives it.
//!
//! Main items: [`ChannelStatus`] (Go's `Status`, codes 0–16) and [`EventCode`] (Go's
//! `EventCode`, codes 0–30), and [`transition`], the whole transition table as one function
//! (illegal pairs give [`IllegalTransition`]).
//!
//! ```
//! use datatransfer_fsm::{ChannelStatus, EventCode};
//!
//! assert_eq!(ChannelStatus::from_code(1), Some(ChannelStatus::Ongoing));
//! assert_eq!(EventCode::Accept.code(), 1);
//! ```

mod event_code;
mod status;
mod transition;

pub use event_code::EventCode;
pub use status::ChannelStatus;
pub use transition::{IllegalTransition, transition};
