//! IPLD selectors: parsing, canonical encoding, and a traversal that visits nodes and loads
//! blocks in exactly the order go-ipld-prime does.
//!
//! Place in the stack: layer 0, pure (no I/O of its own; blocks arrive through a loader).
//!
//! This crate is built in the selectors issue; until then it holds no items.
