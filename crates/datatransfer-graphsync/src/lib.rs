//! The data-transfer transport over Graphsync, wire compatible with go-data-transfer's
//! `transport/graphsync`.
//!
//! Place in the stack: layer 2, implementing the `datatransfer-transport` trait on the
//! `graphsync` crate.
//!
//! This crate is built in the network issue; until then it holds no items.
