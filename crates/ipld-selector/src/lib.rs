//! IPLD selectors: parsing, canonical encoding, and a traversal that visits nodes and loads
//! blocks in exactly the order go-ipld-prime does.
//!
//! Place in the stack: layer 0, pure (no I/O, no async runtime, no clock). `graphsync` uses
//! it to predict (requester) and produce (responder) the block order of a response, which is
//! part of the graphsync protocol (`spec/graphsync.md` §6); `dag-io` uses it to walk DAGs.
//!
//! Main items:
//! - [`Selector`]: every clause go-ipld-prime parses (`.`, `a`, `f`, `i`, `r`, `R` with `l`
//!   and `!`, `@`, `|`, `~`), from a data-model [`Node`](ipld_dagcbor::Node), DAG-CBOR or
//!   DAG-JSON, with a [`ParseError`] that names the path of the bad field; canonical encoding
//!   with [`Selector::to_dag_cbor`].
//! - [`Traversal`]: a sans-IO, resumable state machine with an explicit stack. It asks for
//!   blocks ([`Step::Load`]), reports nodes ([`Step::Visit`]) and is answered with
//!   [`Traversal::provide`] / [`Traversal::missing`]. [`Config`] holds the recursion depth cap
//!   and the link budget.
//! - [`traverse`], [`traverse_with`] and [`traverse_async`]: drivers over a loader closure.
//! - [`codec::decode_block`]: blocks in dag-cbor, dag-pb ([`dagpb`], Go's field names and
//!   order), raw and dag-json ([`dagjson`], map order kept) into the data model.
//! - [`dagpb`]: the one dag-pb codec of the workspace: typed [`dagpb::PbNode`] /
//!   [`dagpb::PbLink`], the strict [`dagpb::decode`] (go-codec-dagpb's acceptance), the
//!   byte-exact [`dagpb::encode`], and [`dagpb::PbNode::to_node`] into the data model.
//!
//! Feature flags: none.
//!
//! ```
//! use ipld_selector::{Config, Selector, traverse};
//! use ipld_dagcbor::{Map, Node, to_vec};
//!
//! // A dag-cbor root {"b": leaf, "aa": leaf}: canonical order puts "b" first, and the
//! // traversal follows the bytes, loading the leaf twice.
//! let leaf: cid::Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
//! let root_bytes = to_vec(&Node::Map(Map::new().with("aa", leaf).with("b", leaf)))?;
//! let root: cid::Cid = "bafyreiaeth2oqylkuauom7tbqesf4jlc37dk27v4e4zggaaeccx5riac5e".parse()?;
//!
//! let config = Config::default().with_max_recursion_depth(None);
//! let outcome = traverse(root, &Selector::explore_all_recursively(), config, |cid| {
//!     if *cid == root { Some(root_bytes.clone()) } else { Some(b"leaf one".to_vec()) }
//! })?;
//! let paths: Vec<String> = outcome.loads.iter().map(|load| load.path.to_string()).collect();
//! assert_eq!(paths, ["", "b", "aa"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Errors carry the CID they concern by value (as context fields); CIDs are large, but errors
// end a traversal, so their size does not matter on any hot path.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod dagjson;
pub mod dagpb;
mod driver;
mod path;
mod selector;
mod traversal;
mod walk;

pub use driver::{Load, Outcome, traverse, traverse_async, traverse_with};
pub use path::{Path, Segment};
pub use selector::{Condition, ParseError, RecursionLimit, RecursionLimitError, Selector, Subset};
pub use traversal::{
    Config, GRAPHSYNC_MAX_RECURSION_DEPTH, LoadRequest, Step, Traversal, TraversalError, Visit,
};

pub use cid::Cid;
