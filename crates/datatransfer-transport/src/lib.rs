//! The transport abstraction under the data-transfer manager, so a custom transport can be
//! swapped in.
//!
//! Place in the stack: layer 1, above `datatransfer-message`. It knows nothing about channel
//! status; the `datatransfer` facade turns its events into state-machine inputs.
//!
//! This crate is built in the data-transfer core issue; until then it holds no items.
