//! Data transfer between libp2p peers, wire compatible with go-data-transfer v1.15.1.
//!
//! This is the facade a user depends on alone: the `Manager`, its configuration and errors, and
//! the `/fil/datatransfer/1.2.0` network protocol. It is the only place where I/O, the clock,
//! the store and the state machine meet.
//!
//! This crate is built in the data-transfer core issue; until then it holds no items.
