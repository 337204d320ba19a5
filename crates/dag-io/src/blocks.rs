//! Block verification: a block's bytes must hash to the multihash in its CID before anything
//! keeps them.

use blockstore::Blockstore;
use cid::{Cid, Version};
use multihash::Multihash;
use multihash_codetable::{Code, MultihashDigest};

/// Multihash code of the identity "hash" (the digest is the data itself).
pub const IDENTITY: u64 = 0x00;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of sha2-512.
pub const SHA2_512: u64 = 0x13;
/// Multihash code of blake2b-256.
pub const BLAKE2B_256: u64 = 0xb220;
/// Multihash code of blake2b-512.
pub const BLAKE2B_512: u64 = 0xb240;
/// Multihash code of blake3 (32-byte digest).
pub const BLAKE3: u64 = 0x1e;

/// Errors from verifying or storing a block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The block's bytes hash to a different CID than the one it was given under.
    #[error("block bytes do not match cid: expected {expected}, got {actual}")]
    Mismatch {
        /// The CID the block was announced under.
        expected: Box<Cid>,
        /// The CID its bytes actually hash to (same version, codec and hash function).
        actual: Box<Cid>,
    },
    /// The CID's multihash function is not one this crate can compute.
    #[error("unsupported multihash code {code:#x} in cid {cid}")]
    UnsupportedHash {
        /// The CID of the block.
        cid: Box<Cid>,
        /// The multihash code.
        code: u64,
    },
    /// A hash result could not be turned back into a CID (for example a CIDv0 that is not
    /// sha2-256, which cannot be written).
    #[error("cannot build a cid for the digest of {cid}")]
    InvalidCid {
        /// The CID of the block.
        cid: Box<Cid>,
        /// What went wrong.
        #[source]
        source: cid::Error,
    },
    /// The blockstore failed.
    #[error("blockstore failed for {cid}")]
    Store {
        /// The CID of the block.
        cid: Box<Cid>,
        /// The store's error.
        #[source]
        source: blockstore::Error,
    },
}

/// Computes the multihash of `bytes` with the multihash function `code`.
///
/// Supported: identity, sha2-256, sha2-512, blake2b-256, blake2b-512 and blake3. Returns `None`
/// for any other code, or for identity data longer than 64 bytes.
pub fn digest(code: u64, bytes: &[u8]) -> Option<Multihash<64>> {
    match code {
        IDENTITY => Multihash::wrap(IDENTITY, bytes).ok(),
        SHA2_256 | SHA2_512 | BLAKE2B_256 | BLAKE2B_512 | BLAKE3 => {
            Code::try_from(code).ok().map(|c| c.digest(bytes))
        }
        _ => None,
    }
}

/// Builds the CID of `bytes` for a given version, codec and multihash function.
///
/// # Errors
///
/// [`BlockError::UnsupportedHash`] for an unknown hash function, [`BlockError::InvalidCid`]
/// for a combination that has no CID (a CIDv0 must be dag-pb and sha2-256).
pub fn cid_of(version: Version, codec: u64, hash: u64, bytes: &[u8]) -> Result<Cid, BlockError> {
    let placeholder = Cid::new_v1(codec, Multihash::default());
    let mh = digest(hash, bytes).ok_or(BlockError::UnsupportedHash {
        cid: Box::new(placeholder),
        code: hash,
    })?;
    Cid::new(version, codec, mh).map_err(|source| BlockError::InvalidCid {
        cid: Box::new(placeholder),
        source,
    })
}

/// Checks that `bytes` hash to the multihash inside `cid`.
///
/// # Errors
///
/// [`BlockError::Mismatch`] naming both CIDs when the bytes hash to something else, and
/// [`BlockError::UnsupportedHash`] when the CID uses a hash function this crate cannot compute.
///
/// # Examples
///
/// ```
/// use dag_io::blocks::{self, BlockError};
///
/// let cid = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"hello")?;
/// blocks::verify(&cid, b"hello")?;
/// assert!(matches!(blocks::verify(&cid, b"jello"), Err(BlockError::Mismatch { .. })));
/// # Ok::<(), BlockError>(())
/// ```
pub fn verify(cid: &Cid, bytes: &[u8]) -> Result<(), BlockError> {
    let expected = cid.hash();
    let code = expected.code();
    if code == IDENTITY {
        if expected.digest() == bytes {
            return Ok(());
        }
        // Identity data longer than 64 bytes has no CID here; the empty identity CID stands in.
        let actual = Multihash::wrap(IDENTITY, bytes).unwrap_or_default();
        return Err(BlockError::Mismatch {
            expected: Box::new(*cid),
            actual: Box::new(Cid::new(cid.version(), cid.codec(), actual).unwrap_or(*cid)),
        });
    }
    let actual_mh = digest(code, bytes).ok_or(BlockError::UnsupportedHash {
        cid: Box::new(*cid),
        code,
    })?;
    // Truncated digests are not accepted: the CID's digest must be the function's full output.
    if actual_mh == *expected {
        return Ok(());
    }
    let actual = Cid::new(cid.version(), cid.codec(), actual_mh).map_err(|source| {
        BlockError::InvalidCid {
            cid: Box::new(*cid),
            source,
        }
    })?;
    Err(BlockError::Mismatch {
        expected: Box::new(*cid),
        actual: Box::new(actual),
    })
}

/// Verifies a block and stores it; a block that fails verification is never stored.
///
/// # Errors
///
/// Everything [`verify`] returns, and [`BlockError::Store`] if the store fails.
pub async fn put_verified<B: Blockstore>(
    store: &B,
    cid: &Cid,
    bytes: &[u8],
) -> Result<(), BlockError> {
    verify(cid, bytes)?;
    store
        .put_keyed(cid, bytes)
        .await
        .map_err(|source| BlockError::Store {
            cid: Box::new(*cid),
            source,
        })
}

/// Loads a block from the store and verifies it, so a corrupted store cannot feed bad data
/// onwards. Returns `None` if the store does not have the block.
///
/// # Errors
///
/// Everything [`verify`] returns, and [`BlockError::Store`] if the store fails.
pub async fn get_verified<B: Blockstore>(
    store: &B,
    cid: &Cid,
) -> Result<Option<Vec<u8>>, BlockError> {
    let bytes = store.get(cid).await.map_err(|source| BlockError::Store {
        cid: Box::new(*cid),
        source,
    })?;
    match bytes {
        Some(bytes) => {
            verify(cid, &bytes)?;
            Ok(Some(bytes))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use blockstore::InMemoryBlockstore;

    use super::*;

    const RAW: u64 = 0x55;

    fn store() -> InMemoryBlockstore<64> {
        InMemoryBlockstore::new()
    }

    #[test]
    fn every_supported_hash_verifies_its_own_digest_and_rejects_others() {
        for code in [
            SHA2_256,
            SHA2_512,
            BLAKE2B_256,
            BLAKE2B_512,
            BLAKE3,
            IDENTITY,
        ] {
            let cid = cid_of(Version::V1, RAW, code, b"block data").expect("supported code");
            assert_eq!(cid.hash().code(), code);
            verify(&cid, b"block data").expect("same bytes verify");
            match verify(&cid, b"other data") {
                Err(BlockError::Mismatch { expected, actual }) => {
                    assert_eq!(*expected, cid);
                    assert_eq!(
                        *actual,
                        cid_of(Version::V1, RAW, code, b"other data").unwrap()
                    );
                    let (expected_text, actual_text) = (expected.to_string(), actual.to_string());
                    let message = BlockError::Mismatch { expected, actual }.to_string();
                    assert!(message.contains(&expected_text), "{message}");
                    assert!(message.contains(&actual_text), "{message}");
                }
                other => panic!("code {code:#x}: expected a mismatch, got {other:?}"),
            }
        }
    }

    #[test]
    fn known_digests_match_published_cids() {
        // The empty raw block and "hello world" (no newline) as published for kubo
        // (`ipfs add --cid-version=1`), and "hello world\n" as computed independently with
        // Python's hashlib (sha2-256, CIDv1 raw, base32).
        let empty = cid_of(Version::V1, RAW, SHA2_256, b"").unwrap();
        assert_eq!(
            empty.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        let hello = cid_of(Version::V1, RAW, SHA2_256, b"hello world").unwrap();
        assert_eq!(
            hello.to_string(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        let hello_nl = cid_of(Version::V1, RAW, SHA2_256, b"hello world\n").unwrap();
        assert_eq!(
            hello_nl.to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
    }

    #[test]
    fn unsupported_hash_is_a_typed_error() {
        // sha3-256 (0x16) is not compiled in.
        let mh = Multihash::<64>::wrap(0x16, &[0u8; 32]).unwrap();
        let cid = Cid::new_v1(RAW, mh);
        assert!(matches!(
            verify(&cid, b"x"),
            Err(BlockError::UnsupportedHash { code: 0x16, .. })
        ));
    }

    #[test]
    fn cidv0_requires_sha2_256() {
        assert!(matches!(
            cid_of(Version::V0, 0x70, BLAKE3, b"x"),
            Err(BlockError::InvalidCid { .. })
        ));
        let v0 = cid_of(Version::V0, 0x70, SHA2_256, b"x").unwrap();
        verify(&v0, b"x").unwrap();
    }

    #[test]
    fn put_verified_never_stores_a_mismatching_block() {
        pollster::block_on(async {
            let store = store();
            let cid = cid_of(Version::V1, RAW, SHA2_256, b"good").unwrap();
            let err = put_verified(&store, &cid, b"evil").await.unwrap_err();
            assert!(matches!(err, BlockError::Mismatch { .. }));
            assert!(!store.has(&cid).await.unwrap());
            put_verified(&store, &cid, b"good").await.unwrap();
            assert_eq!(get_verified(&store, &cid).await.unwrap().unwrap(), b"good");
        });
    }

    #[test]
    fn get_verified_rejects_a_corrupted_store_entry() {
        pollster::block_on(async {
            let store = store();
            let cid = cid_of(Version::V1, RAW, SHA2_256, b"good").unwrap();
            store.put_keyed(&cid, b"bad").await.unwrap();
            assert!(matches!(
                get_verified(&store, &cid).await,
                Err(BlockError::Mismatch { .. })
            ));
        });
    }
}
