//! Getting IPLD data in and out: block verification, CAR import and export, and UnixFS
//! import (kubo-identical CIDs) and export.
//!
//! Place in the stack: layer 1, above `ipld-selector` and `ipld-dagcbor`; `dtx` uses it for its
//! `import` and `export` commands. Blocks live in any [`blockstore::Blockstore`] (the house
//! block interface); functions that touch a store are `async` and need no particular runtime.
//!
//! Main items:
//! - [`blocks`]: [`blocks::verify`] rehashes a block with its CID's hash function and names both
//!   CIDs on mismatch; [`blocks::put_verified`] never stores an unverified block.
//! - [`car`]: streaming CARv1/CARv2 [`car::Reader`], CARv1 [`car::Writer`], and [`car::import`]
//!   into a store; every error names the byte offset and the problem.
//!
//! No feature flags.
//!
//! ```
//! use blockstore::InMemoryBlockstore;
//! use dag_io::{blocks, car};
//!
//! let cid = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"hello")?;
//! let mut writer = car::Writer::new(Vec::new(), &[cid])?;
//! writer.write_block(&cid, b"hello")?;
//! let bytes = writer.finish()?;
//!
//! let store = InMemoryBlockstore::<64>::new();
//! let summary = pollster::block_on(car::import(&bytes[..], &store))?;
//! assert_eq!((summary.header.roots.as_slice(), summary.blocks), (&[cid][..], 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod blocks;
pub mod car;
