//! Scenarios that span several crates of the data-transfer workspace (not published).
//!
//! It holds no items until the scenarios that need several crates exist.
