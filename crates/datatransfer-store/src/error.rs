//! [`StoreError`] for store operations and [`RecordError`] for the record format.

use std::error::Error as StdError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage backend (sled, the file system) failed. The backend's own error type is
    /// boxed as the source so that its version is not part of this crate's API.
    #[error("storage backend failed during {operation}")]
    Backend {
        /// What the store was doing: `"open"`, `"put"`, `"get"`, `"delete"`, `"list"` or
        /// `"flush"`.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn StdError + Send + Sync + 'static>,
    },
    /// A stored record could not be decoded, or does not belong under its key.
    #[error("stored record under key {key:?} is corrupt")]
    Corrupt {
        /// The record's key: Go's `ChannelID.String()` form, or the raw key bytes read lossily
        /// when they are not UTF-8.
        key: String,
        /// What is wrong with it.
        #[source]
        source: RecordError,
    },
    /// A stored record carries a format version this build cannot read.
    #[error("stored record under key {key:?} has unsupported version {found}")]
    UnsupportedVersion {
        /// The record's key (as in [`StoreError::Corrupt`]).
        key: String,
        /// The version the record carries.
        found: u64,
    },
    /// A channel state cannot be written as a record (its selector or a voucher holds a value
    /// DAG-CBOR cannot carry).
    #[error("channel state for key {key:?} cannot be encoded")]
    Unencodable {
        /// The key the record would have had.
        key: String,
        /// Why it cannot be encoded.
        #[source]
        source: RecordError,
    },
}

/// Why bytes are not a readable channel record, or a state cannot become one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not one DAG-CBOR value within the decoding limits.
    #[error("record is not valid dag-cbor")]
    Cbor(#[source] ipld_dagcbor::DecodeError),
    /// The record is not a map.
    #[error("record is not a map")]
    NotAMap,
    /// The record has no usable `Version` field.
    #[error("record has no integer version field")]
    MissingVersion,
    /// The record's version is not one this build reads.
    #[error("record version {found} is not supported")]
    UnsupportedVersion {
        /// The version the record carries.
        found: u64,
    },
    /// A field the record's version requires is absent.
    #[error("field {field} is missing")]
    MissingField {
        /// The field's key.
        field: &'static str,
    },
    /// A field has the wrong kind or an out-of-range value.
    #[error("field {field} is invalid")]
    InvalidField {
        /// The field's key.
        field: &'static str,
    },
    /// The record has a field its version does not define.
    #[error("field {field:?} is not defined in version {version}")]
    UnknownField {
        /// The field's key, read lossily.
        field: String,
        /// The record's version.
        version: u64,
    },
    /// The record describes another channel than the key it is stored under.
    #[error("record belongs under key {expected:?}")]
    KeyMismatch {
        /// The key of the channel the record describes.
        expected: String,
    },
    /// A state holds a value DAG-CBOR cannot carry.
    #[error("state cannot be encoded as dag-cbor")]
    Encode(#[source] ipld_dagcbor::EncodeError),
}
