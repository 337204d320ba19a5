//! Decoding a block into the data model by the codec its CID names.

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
/// assert_eq!(node, Node::Bytes(b"leaf one".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_block(cid: &Cid, bytes: &[u8], limits: &Limits) -> Result<Node, BlockDecodeError> {
    match cid.codec() {
        DAG_CBOR => ipld_dagcbor::decode_with(bytes, limits)
            .map_err(|source| BlockDecodeError::DagCbor { source }),
        RAW => Ok(Node::Bytes(bytes.to_vec())),
        DAG_PB => dagpb::decode_node(bytes).map_err(|source| BlockDecodeError::DagPb { source }),
        DAG_JSON => dagjson::decode(bytes).map_err(|source| BlockDecodeError::DagJson { source }),
        codec => Err(BlockDecodeError::UnknownCodec { codec }),
    }
}
