//! Getting IPLD data in and out: block verification, CAR import and export, and UnixFS
//! import (kubo-identical CIDs) and export.
//!
//! Place in the stack: layer 1, above `ipld-selector` and `ipld-dagcbor`; `dtx` uses it for its
//! `import` and `export` commands. Blocks live in any [`blockstore::Blockstore`] (the house
//! block interface); functions that touch a store are `async` and need no particular runtime.
//!
//! Main items:
//! - [`blocks`]: [`blocks::verify`] rehashes a block with its CID's hash function (sha2-256,
//!   sha2-512, blake2b-256, blake2b-512, blake3, identity) and names both CIDs on mismatch;
//!   [`blocks::put_verified`] never stores an unverified block.
//! - [`car`]: streaming CARv1/CARv2 [`car::Reader`], CARv1 [`car::Writer`], [`car::import`]
//!   into a store (every error names the byte offset and the problem), and [`car::export`] of a
//!   DAG selected by an `ipld_selector::Selector`, in traversal order.
//! - [`unixfs`]: [`unixfs::import_file`] and [`unixfs::import_path`] with kubo's `ipfs add`
//!   defaults ([`unixfs::ImportOptions`]: CIDv1 raw leaves, or CIDv0), and
//!   [`unixfs::export_file`] / [`unixfs::export_path`] back to bytes and files (plain and
//!   HAMT-sharded directories).
//!
//! dag-pb blocks are read and written with `ipld_selector::dagpb` (the workspace's one dag-pb
//! codec); import it from there.
//!
//! No feature flags.
//!
//! ```
//! use blockstore::InMemoryBlockstore;
//! use dag_io::unixfs::{self, ImportOptions};
//!
//! let store = InMemoryBlockstore::<64>::new();
//! let file = pollster::block_on(unixfs::import_file(
//!     &b"hello world"[..],
//!     &store,
//!     &ImportOptions::default(), // kubo's `ipfs add --cid-version=1`
//! ))?;
//! println!("root: {}", file.root);
//! assert_eq!(file.root.to_string(), "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e");
//!
//! let mut out = Vec::new();
//! pollster::block_on(unixfs::export_file(&store, &file.root, &mut out))?;
//! assert_eq!(out, b"hello world");
//! # Ok::<(), unixfs::UnixfsError>(())
//! ```
//!
//! CAR import:
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
pub mod unixfs;
