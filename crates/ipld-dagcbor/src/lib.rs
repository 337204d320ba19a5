//! DAG-CBOR data-model values that keep map order and raw text bytes, with a strict, bounded
//! codec that writes the canonical form Go writes.
//!
//! Place in the stack: layer 0, beneath `datatransfer-message`, `ipld-selector` and
//! `graphsync`. It exists because the maintained IPLD crates cannot carry what Go puts on the
//! wire (see `docs/decisions/0001-own-dag-cbor-node.md`):
//! - Go writes peer ids and some vouchers as CBOR *text* strings holding arbitrary bytes, which
//!   `String`-based values reject;
//! - graphsync's block order follows map order *in the block bytes*, which a `BTreeMap` loses.
//!
//! Main items: [`Node`] (with [`Text`] and [`Map`]), [`decode`] / [`decode_with`] /
//! [`decode_prefix`] bounded by [`Limits`], and [`encode`] / [`to_vec`] (canonical form).
//! [`Node`] converts to and from `ipld_core::ipld::Ipld` where the value allows.
//!
//! Feature `test-util`: proptest strategies in `testing`.
//!
//! ```
//! use ipld_dagcbor::{Node, decode, to_vec};
//!
//! // {"b": 1, "a": 2} as a non-canonical peer might write it: order is kept on decode…
//! let node = decode(&[0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02])?;
//! let keys: Vec<String> = node.as_map().unwrap().keys().map(|k| k.to_string()).collect();
//! assert_eq!(keys, ["b", "a"]);
//! // …and the encoder writes the canonical order.
//! assert_eq!(to_vec(&node)?, [0xa2, 0x61, b'a', 0x02, 0x61, b'b', 0x01]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod encode;
mod ipld;
mod node;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use decode::{
    DecodeError, Limits, SHARED_BYTES_MIN, decode, decode_prefix, decode_shared, decode_with,
};
pub use encode::{EncodeError, encode, to_vec, write_head};
pub use ipld::NotIpldError;
pub use node::{Kind, Map, Node, Text, canonical_key_order};

pub use cid::Cid;
