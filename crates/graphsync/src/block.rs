//! Block CID prefixes: parsing, encoding, and rebuilding a block's CID from its bytes.

use cid::{Cid, Version};
use multihash::Multihash;
use multihash_codetable::{Code, MultihashDigest};

use crate::message::Block;

/// The multihash code of the identity "hash", which holds the data itself.
pub(crate) const IDENTITY: u64 = 0x00;
/// The multihash code of sha2-256.
pub(crate) const SHA2_256: u64 = 0x12;
/// The multicodec code of dag-pb, the codec a CIDv0 implies.
pub(crate) const DAG_PB: u64 = 0x70;

/// The largest digest a [`Cid`] of this workspace can hold, in bytes.
const MAX_DIGEST: usize = 64;

/// A CID without its digest: version, codec, multihash code and digest length.
///
/// On the wire (the first element of a 2.0.0 block, the `prefix` of a 1.0.0 block) it is four
/// unsigned varints in that order, e.g. `01 71 12 20` for a CIDv1 dag-cbor sha2-256 block.
///
/// # Examples
/// ```
/// use graphsync::CidPrefix;
///
/// let prefix = CidPrefix::from_bytes(&[0x01, 0x55, 0x12, 0x20])?;
/// assert_eq!((prefix.version, prefix.codec, prefix.mh_code, prefix.mh_len), (1, 0x55, 0x12, 32));
/// assert_eq!(prefix.to_bytes(), [0x01, 0x55, 0x12, 0x20]);
/// # Ok::<(), graphsync::CidPrefixError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CidPrefix {
    /// The CID version: 0 or 1.
    pub version: u64,
    /// The multicodec of the block's content (ignored for version 0, which implies dag-pb).
    pub codec: u64,
    /// The multihash function code.
    pub mh_code: u64,
    /// The digest length in bytes; shorter than the function's natural size truncates the
    /// digest, and it is ignored for the identity function.
    pub mh_len: u64,
}

impl CidPrefix {
    /// The prefix of a CIDv0 block: dag-pb, sha2-256, 32 bytes.
    pub const V0: CidPrefix = CidPrefix {
        version: 0,
        codec: DAG_PB,
        mh_code: SHA2_256,
        mh_len: 32,
    };

    /// A CIDv1 prefix.
    pub const fn v1(codec: u64, mh_code: u64, mh_len: u64) -> Self {
        CidPrefix {
            version: 1,
            codec,
            mh_code,
            mh_len,
        }
    }

    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Self {
        CidPrefix {
            version: match cid.version() {
                Version::V0 => 0,
                Version::V1 => 1,
            },
            codec: cid.codec(),
            mh_code: cid.hash().code(),
            mh_len: u64::from(cid.hash().size()),
        }
    }

    /// Parses the four varints of a prefix and checks that a block can be hashed with it.
    ///
    /// Varints must be minimal, as Go's reader requires, and nothing may follow the fourth
    /// (Go ignores such bytes; it never writes them, and this codec refuses them).
    ///
    /// # Errors
    /// [`CidPrefixError`] when the bytes are not four minimal varints, or the prefix fails
    /// [`CidPrefix::check`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CidPrefixError> {
        let (version, rest) = read_varint(bytes, "version")?;
        let (codec, rest) = read_varint(rest, "codec")?;
        let (mh_code, rest) = read_varint(rest, "multihash code")?;
        let (mh_len, rest) = read_varint(rest, "digest length")?;
        if !rest.is_empty() {
            return Err(CidPrefixError::TrailingBytes { count: rest.len() });
        }
        let prefix = CidPrefix {
            version,
            codec,
            mh_code,
            mh_len,
        };
        prefix.check()?;
        Ok(prefix)
    }

    /// The four varints.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8);
        for value in [self.version, self.codec, self.mh_code, self.mh_len] {
            let mut buf = unsigned_varint::encode::u64_buffer();
            out.extend_from_slice(unsigned_varint::encode::u64(value, &mut buf));
        }
        out
    }

    /// Checks, without hashing, that a CID can be built with this prefix: version 0 or 1,
    /// version 0 only with sha2-256 and 32 bytes, a known multihash function, and a length no
    /// larger than the function's natural digest size.
    ///
    /// # Errors
    /// The [`CidPrefixError`] naming the first problem.
    pub fn check(&self) -> Result<(), CidPrefixError> {
        match self.version {
            0 if self.mh_code != SHA2_256 || self.mh_len != 32 => {
                return Err(CidPrefixError::InvalidV0 {
                    mh_code: self.mh_code,
                    mh_len: self.mh_len,
                });
            }
            0 | 1 => {}
            version => return Err(CidPrefixError::UnsupportedVersion { version }),
        }
        if self.mh_code == IDENTITY {
            return Ok(());
        }
        let natural = natural_size(self.mh_code)?;
        if self.mh_len > natural {
            return Err(CidPrefixError::DigestTooLong {
                mh_code: self.mh_code,
                requested: self.mh_len,
                natural,
            });
        }
        Ok(())
    }

    /// The CID of `data` under this prefix: the data hashed with the prefix's function,
    /// truncated to its length (go-multihash behaviour), as a CIDv0 or a CIDv1 with the codec.
    /// The identity function ignores the length and takes the whole data.
    ///
    /// # Errors
    /// As [`CidPrefix::check`], and [`CidPrefixError::IdentityTooLarge`] for identity data
    /// longer than the 64 bytes a [`Cid`] here can hold.
    pub fn to_cid(&self, data: &[u8]) -> Result<Cid, CidPrefixError> {
        self.check()?;
        let hash = if self.mh_code == IDENTITY {
            Multihash::<MAX_DIGEST>::wrap(IDENTITY, data)
                .map_err(|_| CidPrefixError::IdentityTooLarge { len: data.len() })?
        } else {
            let code = Code::try_from(self.mh_code).map_err(|_| CidPrefixError::UnknownHash {
                mh_code: self.mh_code,
            })?;
            let full = code.digest(data);
            let len = u8::try_from(self.mh_len).expect("check bounds the length by a digest size");
            full.truncate(len)
        };
        if self.version == 0 {
            Cid::new_v0(hash).map_err(|_| CidPrefixError::InvalidV0 {
                mh_code: self.mh_code,
                mh_len: self.mh_len,
            })
        } else {
            Ok(Cid::new_v1(self.codec, hash))
        }
    }
}

impl Block {
    /// The block's CID, computed by hashing its data as its prefix says.
    ///
    /// # Errors
    /// As [`CidPrefix::to_cid`].
    ///
    /// # Examples
    /// ```
    /// use graphsync::{Block, CidPrefix};
    ///
    /// let block = Block::new(CidPrefix::v1(0x55, 0x12, 32), &b"leaf one"[..]);
    /// assert_eq!(
    ///     block.cid()?.to_string(),
    ///     "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i"
    /// );
    /// # Ok::<(), graphsync::CidPrefixError>(())
    /// ```
    pub fn cid(&self) -> Result<Cid, CidPrefixError> {
        self.prefix.to_cid(&self.data)
    }
}

/// Why a block prefix is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidPrefixError {
    /// A varint is cut short, over-long (not minimal) or too large.
    #[error("bad varint for the {field} of the prefix: {reason}")]
    Varint {
        /// Which of the four fields.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes follow the four varints.
    #[error("{count} bytes follow the four varints of the prefix")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A version other than 0 and 1.
    #[error("unsupported cid version {version}")]
    UnsupportedVersion {
        /// The version.
        version: u64,
    },
    /// A version-0 prefix with another hash than sha2-256 of 32 bytes.
    #[error("cid version 0 needs sha2-256 of 32 bytes, not code {mh_code:#x} of {mh_len} bytes")]
    InvalidV0 {
        /// The multihash code.
        mh_code: u64,
        /// The digest length.
        mh_len: u64,
    },
    /// A multihash function this implementation cannot compute. Supported: identity,
    /// sha2-256, sha2-512, sha3-224/256/384/512, keccak-224/256/384/512, blake2b-256/512,
    /// blake2s-128/256 and blake3 (Go knows a few more, such as sha1 and the odd blake2
    /// sizes, which no graphsync peer uses in practice).
    #[error("unknown multihash code {mh_code:#x}")]
    UnknownHash {
        /// The multihash code.
        mh_code: u64,
    },
    /// A digest length above the function's natural size.
    #[error("digest length {requested} is over the {natural} bytes of hash {mh_code:#x}")]
    DigestTooLong {
        /// The multihash code.
        mh_code: u64,
        /// The length asked for.
        requested: u64,
        /// The function's digest size.
        natural: u64,
    },
    /// Identity-hashed data too long for a CID of this workspace.
    #[error("identity data of {len} bytes is over the 64 bytes a cid can hold here")]
    IdentityTooLarge {
        /// The data length.
        len: usize,
    },
}

fn read_varint<'a>(
    bytes: &'a [u8],
    field: &'static str,
) -> Result<(u64, &'a [u8]), CidPrefixError> {
    unsigned_varint::decode::u64(bytes).map_err(|error| CidPrefixError::Varint {
        field,
        reason: match error {
            unsigned_varint::decode::Error::Insufficient => "cut short",
            unsigned_varint::decode::Error::NotMinimal => "not minimal",
            _ => "too large",
        },
    })
}

/// The natural digest size of a known hash function.
fn natural_size(mh_code: u64) -> Result<u64, CidPrefixError> {
    let code = Code::try_from(mh_code).map_err(|_| CidPrefixError::UnknownHash { mh_code })?;
    Ok(u64::from(code.digest(&[]).size()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn computes_cidv0_for_dag_pb_blocks() {
        let data = hex(
            "122b0a240155122063c5cdfc617fb8fe93888e68674717590957a25b5e08219b1a61c3f031f88ee61201\
             611806122b0a2401551220ee8869b8de3c8de510951bc7ef5eed482198e21ed4a71cc9213274898cac21c1\
             12016218060a020801",
        );
        let cid = CidPrefix::V0.to_cid(&data).expect("valid prefix");
        assert_eq!(
            cid.to_string(),
            "QmWti3GZxEcmTAnb67nKN42NhkHhmFqjL36U3UNUQst4FD"
        );
        assert_eq!(CidPrefix::of(&cid), CidPrefix::V0);
    }

    #[test]
    fn identity_ignores_the_length_field() {
        let prefix = CidPrefix::v1(0x55, IDENTITY, 3);
        let cid = prefix.to_cid(b"hello world").expect("identity");
        assert_eq!(cid.hash().code(), IDENTITY);
        assert_eq!(cid.hash().digest(), b"hello world");
        let too_big = prefix.to_cid(&[0; 65]).expect_err("too large");
        assert_eq!(too_big, CidPrefixError::IdentityTooLarge { len: 65 });
    }

    #[test]
    fn shorter_lengths_truncate_the_digest() {
        let full = CidPrefix::v1(0x55, SHA2_256, 32)
            .to_cid(b"abc")
            .expect("full");
        let short = CidPrefix::v1(0x55, SHA2_256, 20)
            .to_cid(b"abc")
            .expect("short");
        assert_eq!(short.hash().size(), 20);
        assert_eq!(short.hash().digest(), &full.hash().digest()[..20]);
    }

    #[test]
    fn other_hash_functions_have_their_natural_sizes() {
        for (code, size) in [(0x13, 64), (0x16, 32), (0x1b, 32), (0xb220, 32)]
            .into_iter()
            .chain([(0xb240, 64), (0xb260, 32), (0x1e, 32)])
        {
            let cid = CidPrefix::v1(0x55, code, size)
                .to_cid(b"x")
                .expect("known hash");
            assert_eq!(u64::from(cid.hash().size()), size, "{code:#x}");
        }
    }

    #[test]
    fn rejects_unusable_prefixes() {
        let cases: [(&[u8], CidPrefixError); 7] = [
            (
                &[0x01, 0x55, 0x12],
                CidPrefixError::Varint {
                    field: "digest length",
                    reason: "cut short",
                },
            ),
            (
                &[0x01, 0xd5, 0x00, 0x12, 0x20],
                CidPrefixError::Varint {
                    field: "codec",
                    reason: "not minimal",
                },
            ),
            (
                &[0x01, 0x55, 0x12, 0x20, 0x00],
                CidPrefixError::TrailingBytes { count: 1 },
            ),
            (
                &[0x02, 0x55, 0x12, 0x20],
                CidPrefixError::UnsupportedVersion { version: 2 },
            ),
            (
                &[0x00, 0x70, 0x12, 0x10],
                CidPrefixError::InvalidV0 {
                    mh_code: 0x12,
                    mh_len: 16,
                },
            ),
            (
                &[0x01, 0x55, 0x99, 0x01, 0x20],
                CidPrefixError::UnknownHash { mh_code: 0x99 },
            ),
            (
                &[0x01, 0x55, 0x12, 0x21],
                CidPrefixError::DigestTooLong {
                    mh_code: 0x12,
                    requested: 33,
                    natural: 32,
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(CidPrefix::from_bytes(bytes), Err(expected), "{bytes:02x?}");
        }
    }
}
