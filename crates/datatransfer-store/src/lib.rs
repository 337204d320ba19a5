//! Persistence of data-transfer channel state, on sled or in memory.
//!
//! Place in the stack: layer 2, above `datatransfer-message` and `datatransfer-fsm`. It is the
//! only crate that knows sled.
//!
//! This crate is built in the data-transfer core issue; until then it holds no items.
