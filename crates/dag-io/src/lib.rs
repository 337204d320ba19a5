//! Getting IPLD data in and out: CAR import and export, UnixFS import (kubo-identical CIDs) and
//! export.
//!
//! Place in the stack: layer 1, above `ipld-selector`.
//!
//! This crate is built in the selectors, blocks, CAR and UnixFS issue; until then it holds no
//! items.
