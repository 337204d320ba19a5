//! The sans-IO channel state machine of data-transfer: every status and event of the Go API.
//!
//! Place in the stack: layer 1, above `datatransfer-message`. It performs no I/O, reads no
//! clock and holds no user callbacks; the `datatransfer` facade drives it.
//!
//! This crate is built in the data-transfer core issue; until then it holds no items.
