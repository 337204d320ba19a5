//! The pure Graphsync codec: message bodies for `/ipfs/graphsync/2.0.0` ([`v2`], DAG-CBOR) and
//! `/ipfs/graphsync/1.0.0` ([`v1`], protobuf), and the length-prefix framing both use
//! ([`frame`]).
//!
//! Everything here is sans-IO: byte slices and buffers in, values or typed errors out, no
//! panics on any input. Decoders are as strict as go-graphsync v0.13.1, since anything Go
//! rejects makes it reset the stream; where this codec differs from Go, the item docs say so.

use ipld_dagcbor::Kind;

use crate::block::CidPrefixError;
use crate::extension::ExtensionError;
use crate::message::RequestId;

pub mod frame;
pub mod v1;
pub mod v2;

/// Why some bytes are not an acceptable Graphsync message body.
///
/// `at` fields locate the problem, e.g. `gs2.req[0].type` on 2.0.0 or `requests[1].root` on
/// 1.0.0.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not one DAG-CBOR value (including an empty body and tags other than 42).
    #[error("malformed dag-cbor body")]
    Cbor {
        /// The DAG-CBOR error.
        #[source]
        source: ipld_dagcbor::DecodeError,
    },
    /// The body is not a protobuf `Message`.
    #[error("malformed protobuf body")]
    Protobuf {
        /// The protobuf error.
        #[source]
        source: prost::DecodeError,
    },
    /// A map holds a key the schema does not name.
    #[error("unknown field {field:?} at {at}")]
    UnknownField {
        /// Where.
        at: String,
        /// The key, printed lossily.
        field: String,
    },
    /// A required field is absent.
    #[error("missing field {field} at {at}")]
    MissingField {
        /// Where.
        at: String,
        /// The field.
        field: &'static str,
    },
    /// A value of the wrong kind.
    #[error("expected {expected} at {at}, found {found}")]
    WrongKind {
        /// Where.
        at: String,
        /// The kind required.
        expected: &'static str,
        /// The kind found.
        found: Kind,
    },
    /// A block or metadatum list whose length is not 2.
    #[error("expected a list of {expected} at {at}, found {found} elements")]
    WrongArity {
        /// Where.
        at: String,
        /// The length required.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A status code that is not one of the 14 Go defines.
    #[error("unknown response status {code} at {at}")]
    UnknownStatus {
        /// Where.
        at: String,
        /// The code.
        code: i128,
    },
    /// A request type other than `n`, `c`, `u` and their member names.
    #[error("unknown request type {value:?} at {at}")]
    UnknownRequestType {
        /// Where.
        at: String,
        /// The string, printed lossily.
        value: String,
    },
    /// A link action other than `p`, `d`, `m`, `s` and their member names.
    #[error("unknown link action {value:?} at {at}")]
    UnknownLinkAction {
        /// Where.
        at: String,
        /// The string, printed lossily.
        value: String,
    },
    /// A request id that is not 16 bytes long.
    #[error("request id of {len} bytes at {at}, expected 16")]
    BadRequestId {
        /// Where.
        at: String,
        /// Its length.
        len: usize,
    },
    /// A priority outside the `int32` Go keeps it in.
    #[error("priority {value} out of range at {at}")]
    PriorityOutOfRange {
        /// Where.
        at: String,
        /// The value.
        value: i128,
    },
    /// A block prefix that cannot be parsed or hashed with.
    #[error("bad block prefix at {at}")]
    BadPrefix {
        /// Where.
        at: String,
        /// What is wrong.
        #[source]
        source: CidPrefixError,
    },
    /// Bytes that should be one binary CID are not (1.0.0 `root`).
    #[error("bad cid at {at}")]
    BadCid {
        /// Where.
        at: String,
        /// The parse error.
        #[source]
        source: cid::Error,
    },
    /// Bytes that should hold one DAG-CBOR value do not (1.0.0 selectors and extension values).
    #[error("bad dag-cbor value at {at}")]
    BadValue {
        /// Where.
        at: String,
        /// The DAG-CBOR error.
        #[source]
        source: ipld_dagcbor::DecodeError,
    },
    /// A 1.0.0 `graphsync/response-metadata` value of the wrong shape.
    #[error("bad response metadata at {at}")]
    BadMetadata {
        /// Where.
        at: String,
        /// What is wrong.
        #[source]
        source: ExtensionError,
    },
    /// A 1.0.0 request carrying `graphsync/response-metadata`, which Go v0.13.1 rejects.
    #[error("request at {at} carries the response-metadata extension")]
    MetadataOnRequest {
        /// Where.
        at: String,
    },
}

/// Why a [`Message`](crate::Message) cannot be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A selector or extension value holds an integer CBOR cannot carry.
    #[error("value at {at} cannot be written as dag-cbor")]
    Cbor {
        /// Where, e.g. `request 8b1b…/ext/name`.
        at: String,
        /// The DAG-CBOR error.
        #[source]
        source: ipld_dagcbor::EncodeError,
    },
    /// Two requests with the same id in one message (Go keeps only the last).
    #[error("request {id} appears twice in one message")]
    DuplicateRequest {
        /// The id.
        id: RequestId,
    },
    /// Two responses with the same id in one message (Go keeps only the last).
    #[error("response {id} appears twice in one message")]
    DuplicateResponse {
        /// The id.
        id: RequestId,
    },
    /// A cancel carrying extensions, which Go neither sends nor reads.
    #[error("cancel of request {id} carries extensions")]
    CancelWithExtensions {
        /// The id.
        id: RequestId,
    },
    /// A 1.0.0 message whose model extensions use a name the 1.0.0 codec writes itself.
    #[error("request {id} uses the reserved extension {name} on 1.0.0")]
    ReservedExtension {
        /// The request id.
        id: RequestId,
        /// The name.
        name: &'static str,
    },
    /// A 1.0.0 extension name that is not UTF-8 (protobuf strings must be).
    #[error("extension name {name:?} of request {id} is not utf-8")]
    NonUtf8ExtensionName {
        /// The request id.
        id: RequestId,
        /// The name, printed lossily.
        name: String,
    },
    /// A 1.0.0 response to a request id that has no integer id for this peer.
    #[error("request {id} has no 1.0.0 integer id")]
    UnmappedRequestId {
        /// The id.
        id: RequestId,
    },
    /// No unused 1.0.0 integer id is left for this peer.
    #[error("all 1.0.0 request ids for this peer are used")]
    IdsExhausted,
}

/// Checks the rules both encoders share: one request and one response per id, no extensions on
/// a cancel.
fn check_encodable(message: &crate::Message) -> Result<(), EncodeError> {
    let mut seen = std::collections::HashSet::new();
    for request in &message.requests {
        if !seen.insert(request.id) {
            return Err(EncodeError::DuplicateRequest { id: request.id });
        }
        if request.kind == crate::RequestKind::Cancel && !request.extensions.is_empty() {
            return Err(EncodeError::CancelWithExtensions { id: request.id });
        }
    }
    seen.clear();
    for response in &message.responses {
        if !seen.insert(response.id) {
            return Err(EncodeError::DuplicateResponse { id: response.id });
        }
    }
    Ok(())
}

/// Keeps only the last entry for each key, in the order of those last entries (what Go's
/// per-id maps amount to).
fn keep_last<T, K: std::hash::Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<T> = items
        .into_iter()
        .rev()
        .filter(|item| seen.insert(key(item)))
        .collect();
    kept.reverse();
    kept
}

/// Whether an encoder leaves these block bytes in a piece of their own (`encode_pieces`)
/// rather than copying them into the body: blocks of at least
/// [`ipld_dagcbor::SHARED_BYTES_MIN`] bytes, the size from which the decoders share them too.
fn shared_block(data: &[u8]) -> bool {
    data.len() >= ipld_dagcbor::SHARED_BYTES_MIN
}

/// The bytes of a block that `encode_pieces` copies into the body: none of a shared block.
fn copied_len(data: &[u8]) -> usize {
    if shared_block(data) { 0 } else { data.len() }
}

/// A length as the `u64` the encoders write.
fn wire_len(len: usize) -> u64 {
    u64::try_from(len).expect("a length in memory fits in u64")
}
