//! Decoding a block into the data model by the codec its CID names.

use bytes::Bytes;
use cid::Cid;
use ipld_dagcbor::{Limits, Node};

use crate::{dagjson, dagpb};

/// Multicodec code of dag-pb.
pub const DAG_PB: u64 = 0x70;
/// Multicodec code of dag-cbor.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec code of raw.
pub const RAW: u64 = 0x55;
/// Multicodec code of dag-json.
pub const DAG_JSON: u64 = 0x0129;

/// Why a block cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockDecodeError {
    /// The CID names a codec this crate does not decode.
    #[error("unsupported codec 0x{codec:x}")]
    UnknownCodec {
        /// The multicodec code.
        codec: u64,
    },
    /// Invalid dag-cbor.
    #[error("invalid dag-cbor block")]
    DagCbor {
        /// The decoder's reason.
        #[source]
        source: ipld_dagcbor::DecodeError,
    },
    /// Invalid dag-pb.
    #[error("invalid dag-pb block")]
    DagPb {
        /// The decoder's reason.
        #[source]
        source: dagpb::DecodeError,
    },
    /// Invalid dag-json.
    #[error("invalid dag-json block")]
    DagJson {
        /// The decoder's reason.
        #[source]
        source: dagjson::DecodeError,
    },
}

/// Decodes `bytes` with the codec `cid` names: dag-cbor (bounded by `limits`), dag-pb (Go's
/// dag-pb data model), raw (one bytes node) or dag-json. The hash is not checked: verifying
/// that the bytes belong to the CID is the block layer's job.
///
/// # Errors
/// [`BlockDecodeError::UnknownCodec`] for any other codec, else the codec's decode error.
///
/// # Examples
/// ```
/// use ipld_selector::codec::decode_block;
/// use ipld_dagcbor::{Limits, Node};
///
/// let cid: cid::Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let node = decode_block(&cid, b"leaf one", &Limits::default())?;
/// assert_eq!(node, Node::Bytes(bytes::Bytes::from_static(b"leaf one")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_block(cid: &Cid, bytes: &[u8], limits: &Limits) -> Result<Node, BlockDecodeError> {
    decode(cid, Input::Borrowed(bytes), limits)
}

/// Decodes `bytes` like [`decode_block`], without copying what it need not: a raw block's
/// node shares `bytes`, and so do a dag-cbor block's byte strings of at least
/// [`ipld_dagcbor::SHARED_BYTES_MIN`] bytes.
///
/// # Errors
/// As [`decode_block`].
pub fn decode_shared_block(
    cid: &Cid,
    bytes: &Bytes,
    limits: &Limits,
) -> Result<Node, BlockDecodeError> {
    decode(cid, Input::Shared(bytes), limits)
}

/// A block's bytes, borrowed or in a buffer the decoded node may share.
#[derive(Clone, Copy)]
enum Input<'a> {
    Borrowed(&'a [u8]),
    Shared(&'a Bytes),
}

impl Input<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Input::Borrowed(bytes) => bytes,
            Input::Shared(bytes) => bytes,
        }
    }

    /// The whole block as one byte string: the shared buffer itself, or a copy.
    fn to_bytes(self) -> Bytes {
        match self {
            Input::Borrowed(bytes) => Bytes::copy_from_slice(bytes),
            Input::Shared(bytes) => bytes.clone(),
        }
    }
}

fn decode(cid: &Cid, input: Input<'_>, limits: &Limits) -> Result<Node, BlockDecodeError> {
    let bytes = input.as_slice();
    match cid.codec() {
        DAG_CBOR => match input {
            Input::Borrowed(bytes) => ipld_dagcbor::decode_with(bytes, limits),
            Input::Shared(bytes) => ipld_dagcbor::decode_shared(bytes, limits),
        }
        .map_err(|source| BlockDecodeError::DagCbor { source }),
        RAW => Ok(Node::Bytes(input.to_bytes())),
        DAG_PB => dagpb::decode_node(bytes).map_err(|source| BlockDecodeError::DagPb { source }),
        DAG_JSON => dagjson::decode(bytes).map_err(|source| BlockDecodeError::DagJson { source }),
        codec => Err(BlockDecodeError::UnknownCodec { codec }),
    }
}

#[cfg(test)]
mod tests {
    use multihash::Multihash;

    use super::*;

    fn cid(codec: u64) -> Cid {
        Cid::new_v1(codec, Multihash::wrap(0x00, b"id").expect("identity"))
    }

    fn shares(node: &Node, input: &Bytes) -> bool {
        let bytes = node.as_bytes().expect("a bytes node");
        input.as_ptr_range().contains(&bytes.as_ptr())
    }

    #[test]
    fn a_shared_raw_block_is_not_copied_and_a_borrowed_one_is() {
        let input = Bytes::from(vec![5; 300]);
        let limits = Limits::default();
        let shared = decode_shared_block(&cid(RAW), &input, &limits).expect("raw");
        let copied = decode_block(&cid(RAW), &input, &limits).expect("raw");
        assert_eq!(shared, copied);
        assert!(shares(&shared, &input));
        assert!(!shares(&copied, &input));
    }

    #[test]
    fn a_shared_dag_cbor_block_shares_its_long_byte_strings() {
        let mut cbor = vec![0x59, 0x08, 0x00]; // a byte string of 2048 bytes
        cbor.resize(3 + 2048, 9);
        let input = Bytes::from(cbor);
        let limits = Limits::default();
        let shared = decode_shared_block(&cid(DAG_CBOR), &input, &limits).expect("dag-cbor");
        assert_eq!(
            shared,
            decode_block(&cid(DAG_CBOR), &input, &limits).expect("dag-cbor")
        );
        assert!(shares(&shared, &input));
    }

    #[test]
    fn a_shared_block_fails_as_a_borrowed_one_does() {
        let input = Bytes::from_static(&[0xff]);
        let limits = Limits::default();
        assert!(matches!(
            decode_shared_block(&cid(DAG_CBOR), &input, &limits),
            Err(BlockDecodeError::DagCbor { .. })
        ));
        assert!(matches!(
            decode_shared_block(&cid(0x300), &input, &limits),
            Err(BlockDecodeError::UnknownCodec { codec: 0x300 })
        ));
    }
}
