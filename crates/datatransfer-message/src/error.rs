//! The codec's errors: [`DecodeError`] and [`EncodeError`].

use ipld_dagcbor::Kind;

/// Why some bytes, or a node, are not one acceptable `/fil/datatransfer/1.2.0` message.
///
/// `structure` names the schema type being read (`"TransferMessage"`, `"TransferRequest"`,
/// `"TransferResponse"` or `"ChannelID"`) and `field` its wire key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input holds no byte at all (a stream closed before the first message).
    #[error("input is empty")]
    Empty,
    /// The input ends inside the message; a stream reader may wait for more bytes.
    #[error("input ends inside the message at offset {offset}")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// The message is longer than [`Limits::max_bytes`](crate::Limits::max_bytes).
    #[error("message of at least {len} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The input length seen.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Lists, maps and links nest deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("nesting deeper than {limit} at offset {offset}")]
    TooDeep {
        /// Where the limit was passed.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes that are not DAG-CBOR (a forbidden tag, an indefinite length, a repeated or
    /// non-text map key, trailing bytes, …).
    #[error("malformed dag-cbor")]
    Cbor {
        /// What the DAG-CBOR decoder found.
        #[source]
        source: ipld_dagcbor::DecodeError,
    },
    /// The top-level value is not a map.
    #[error("message is a {found}, not a map")]
    NotAMap {
        /// The kind found.
        found: Kind,
    },
    /// A field holds a value of the wrong kind.
    #[error("{structure}.{field} is a {found}, expected {expected}")]
    WrongKind {
        /// The schema type.
        structure: &'static str,
        /// The wire key.
        field: &'static str,
        /// The kinds the schema allows.
        expected: &'static str,
        /// The kind found.
        found: Kind,
    },
    /// A required key is absent (Go: "missing required fields").
    #[error("{structure} lacks the field {field}")]
    MissingField {
        /// The schema type.
        structure: &'static str,
        /// The missing wire key.
        field: &'static str,
    },
    /// A key the schema does not define (Go: "invalid key").
    #[error("{structure} has the unknown field {key:?}")]
    UnknownField {
        /// The schema type.
        structure: &'static str,
        /// The key, printed lossily.
        key: String,
    },
    /// An integer outside the `0 ..= 2⁶³−1` range Go reads (`spec/data-transfer.md` §1.2).
    #[error("{structure}.{field} is {value}, outside 0 ..= 2^63-1")]
    IntegerOutOfRange {
        /// The schema type.
        structure: &'static str,
        /// The wire key.
        field: &'static str,
        /// The integer found.
        value: i128,
    },
    /// A `Type` value that v1.15.1 does not define (above 7).
    #[error("{structure}.Type is {value}, which names no message type")]
    UnknownMessageType {
        /// The schema type.
        structure: &'static str,
        /// The value found.
        value: u64,
    },
    /// The `ChannelID` tuple does not have exactly three members.
    #[error("{structure}.{field} has {found} members, expected 3")]
    WrongTupleLength {
        /// The schema type holding the tuple.
        structure: &'static str,
        /// The wire key.
        field: &'static str,
        /// The number of members found.
        found: usize,
    },
    /// `IsRq` names a side whose field is `null` (Go: "invalid/malformed message").
    #[error("IsRq is {is_request} but TransferMessage.{field} is null")]
    NullBody {
        /// The `IsRq` flag.
        is_request: bool,
        /// `"Request"` or `"Response"`.
        field: &'static str,
    },
}

/// Why a message cannot be written to the wire.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A transfer id above 2⁶³ − 1, which Go would read as negative and reject.
    #[error("{structure}.{field} is {value}, above 2^63-1")]
    TransferIdOutOfRange {
        /// The schema type.
        structure: &'static str,
        /// The wire key.
        field: &'static str,
        /// The id.
        value: u64,
    },
    /// An embedded voucher, result or selector holds an integer CBOR cannot carry.
    #[error("embedded {field} holds the integer {value}, outside the cbor range")]
    EmbeddedIntegerOutOfRange {
        /// The wire key of the embedded value.
        field: &'static str,
        /// The integer.
        value: i128,
    },
    /// The DAG-CBOR encoder refused the message.
    #[error("dag-cbor encoding failed")]
    Cbor {
        /// What the DAG-CBOR encoder refused.
        #[source]
        source: ipld_dagcbor::EncodeError,
    },
}
