//! Message bodies of `/ipfs/graphsync/1.0.0`: protobuf (spec §3).
//!
//! Two layers:
//! - the wire message [`pb::Message`], hand-written prost structs equal to go-graphsync's
//!   `message.proto`, with `int32` request ids; [`encode_wire`] and [`decode_wire`] turn it
//!   into bytes and back. Extension maps are `BTreeMap`s, so entries are written sorted by name
//!   (Go writes them in random order; receivers accept any);
//! - [`to_wire`] and [`from_wire`] convert between it and the shared [`Message`] model, with
//!   an [`IdMap`] that turns 16-byte [`RequestId`]s into the integer ids of this version and
//!   back. [`encode`] and [`decode`] do both steps.
//!
//! Conversion follows Go v0.13.1: the root is binary CID bytes and the selector DAG-CBOR bytes;
//! extension values are DAG-CBOR bytes (an empty value is dropped on receipt, a `None` value
//! is written as `null`); link metadata travels in the `graphsync/response-metadata` extension,
//! attached to every response even when empty (`0x80`), with only [`LinkAction::Present`](crate::LinkAction::Present) as
//! `blockPresent: true` (the other actions read back as [`LinkAction::Missing`](crate::LinkAction::Missing)); a request
//! carrying that extension is rejected. A cancel keeps only its id and an update only its id
//! and extensions. Differences from Go, on input Go never sends: unknown status codes are
//! rejected (Go carries them as "in progress"); prefix bytes after the four varints are
//! rejected.
//!
//! # Request ids
//!
//! Integer ids belong to one peer and one direction: the requester picks them, and responses
//! echo them. A connection layer keeps one [`PeerIds`] per remote peer for as long as it talks
//! 1.0.0 to that peer, and passes it to every [`encode`] and [`decode`] on that peer's streams
//! (both directions share it): our outgoing requests get fresh integers 0, 1, 2, … that are
//! never reused, incoming requests get a fresh [`RequestId`] the first time their integer is
//! seen, and responses are mapped back through the same tables.

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, Bytes, BytesMut};
use cid::Cid;
use ipld_dagcbor::Node;
use prost::Message as _;

use super::{
    DecodeError, EncodeError, check_encodable, copied_len, keep_last, shared_block, wire_len,
};
use crate::block::CidPrefix;
use crate::extension::{
    Extensions, RESPONSE_METADATA, decode_response_metadata, encode_response_metadata,
};
use crate::message::{
    Block, Message, Priority, Request, RequestId, RequestKind, Response, ResponseStatus,
};

/// The protobuf wire structs of protocol 1.0.0 (package `graphsync.message.pb`).
pub mod pb {
    use std::collections::BTreeMap;

    /// A 1.0.0 message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        /// Never set by Go, and ignored.
        #[prost(bool, tag = "1")]
        pub complete_request_list: bool,
        /// Requests.
        #[prost(message, repeated, tag = "2")]
        pub requests: Vec<Request>,
        /// Responses.
        #[prost(message, repeated, tag = "3")]
        pub responses: Vec<Response>,
        /// Blocks.
        #[prost(message, repeated, tag = "4")]
        pub data: Vec<Block>,
    }

    /// A 1.0.0 request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        /// The integer request id.
        #[prost(int32, tag = "1")]
        pub id: i32,
        /// The binary root CID (new requests only).
        #[prost(bytes = "vec", tag = "2")]
        pub root: Vec<u8>,
        /// The DAG-CBOR selector (new requests only).
        #[prost(bytes = "vec", tag = "3")]
        pub selector: Vec<u8>,
        /// Extension name to DAG-CBOR value.
        #[prost(btree_map = "string, bytes", tag = "4")]
        pub extensions: BTreeMap<String, Vec<u8>>,
        /// The priority.
        #[prost(int32, tag = "5")]
        pub priority: i32,
        /// Whether this cancels the request (checked before `update`).
        #[prost(bool, tag = "6")]
        pub cancel: bool,
        /// Whether this updates the request.
        #[prost(bool, tag = "7")]
        pub update: bool,
    }

    /// A 1.0.0 response.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        /// The integer id of the request answered.
        #[prost(int32, tag = "1")]
        pub id: i32,
        /// The status code.
        #[prost(int32, tag = "2")]
        pub status: i32,
        /// Extension name to DAG-CBOR value, including `graphsync/response-metadata`.
        #[prost(btree_map = "string, bytes", tag = "3")]
        pub extensions: BTreeMap<String, Vec<u8>>,
    }

    /// A 1.0.0 block.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Block {
        /// The CID prefix: four varints.
        #[prost(bytes = "vec", tag = "1")]
        pub prefix: Vec<u8>,
        /// The block bytes.
        #[prost(bytes = "bytes", tag = "2")]
        pub data: bytes::Bytes,
    }
}

/// Maps 16-byte request ids to the integer ids of one peer's 1.0.0 streams and back.
pub trait IdMap {
    /// The integer for a request we send (new, cancel or update). A new id gets an integer
    /// never used before towards this peer; a known id gets its integer again.
    ///
    /// # Errors
    /// [`EncodeError::IdsExhausted`] when no unused integer is left.
    fn outgoing_request(&mut self, id: RequestId) -> Result<i32, EncodeError>;

    /// The integer for a response we send: the one the peer used for its request.
    ///
    /// # Errors
    /// [`EncodeError::UnmappedRequestId`] when `id` did not come from this peer.
    fn outgoing_response(&mut self, id: RequestId) -> Result<i32, EncodeError>;

    /// The id of a request the peer sent with integer `wire`: the same id every time the
    /// integer comes again.
    fn incoming_request(&mut self, wire: i32) -> RequestId;

    /// The id of the request of ours that a response with integer `wire` answers (an id no
    /// request of ours has if the integer is unknown).
    fn incoming_response(&mut self, wire: i32) -> RequestId;
}

/// The [`IdMap`] of one remote peer: pure, deterministic given its seed.
///
/// Ids invented for the peer's integers are `seed ‖ counter` with the UUIDv4 version and
/// variant bits set, so they are unique within this map; the connection layer seeds each map
/// from a random source so ids of different peers do not collide. The tables only grow, as in
/// Go, except through [`PeerIds::forget`].
#[derive(Clone, Debug)]
pub struct PeerIds {
    seed: [u8; 8],
    minted: u64,
    next_outgoing: Option<i32>,
    outgoing: HashMap<RequestId, i32>,
    outgoing_back: HashMap<i32, RequestId>,
    incoming: HashMap<i32, RequestId>,
    incoming_back: HashMap<RequestId, i32>,
}

impl PeerIds {
    /// Empty tables; outgoing integers start at 0.
    pub fn new(seed: u64) -> Self {
        PeerIds {
            seed: seed.to_be_bytes(),
            minted: 0,
            next_outgoing: Some(0),
            outgoing: HashMap::new(),
            outgoing_back: HashMap::new(),
            incoming: HashMap::new(),
            incoming_back: HashMap::new(),
        }
    }

    /// Drops what is known about `id` once its request is over. Its integer is not given out
    /// again; an incoming integer seen again afterwards gets a new id.
    pub fn forget(&mut self, id: RequestId) {
        if let Some(wire) = self.outgoing.remove(&id) {
            self.outgoing_back.remove(&wire);
        }
        if let Some(wire) = self.incoming_back.remove(&id) {
            self.incoming.remove(&wire);
        }
    }

    fn mint(&mut self) -> RequestId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.seed);
        bytes[8..].copy_from_slice(&self.minted.to_be_bytes());
        self.minted += 1;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        RequestId::new(bytes)
    }
}

impl IdMap for PeerIds {
    fn outgoing_request(&mut self, id: RequestId) -> Result<i32, EncodeError> {
        if let Some(wire) = self.outgoing.get(&id) {
            return Ok(*wire);
        }
        let wire = self.next_outgoing.ok_or(EncodeError::IdsExhausted)?;
        self.next_outgoing = wire.checked_add(1);
        self.outgoing.insert(id, wire);
        self.outgoing_back.insert(wire, id);
        Ok(wire)
    }

    fn outgoing_response(&mut self, id: RequestId) -> Result<i32, EncodeError> {
        self.incoming_back
            .get(&id)
            .copied()
            .ok_or(EncodeError::UnmappedRequestId { id })
    }

    fn incoming_request(&mut self, wire: i32) -> RequestId {
        if let Some(id) = self.incoming.get(&wire) {
            return *id;
        }
        let id = self.mint();
        self.incoming.insert(wire, id);
        self.incoming_back.insert(id, wire);
        id
    }

    fn incoming_response(&mut self, wire: i32) -> RequestId {
        match self.outgoing_back.get(&wire) {
            Some(id) => *id,
            None => self.mint(),
        }
    }
}

/// Appends the 1.0.0 body of `message` to `out` (without the length prefix).
///
/// # Errors
/// As [`to_wire`]. On error `out` is left as it was.
///
/// # Examples
/// ```
/// use bytes::BytesMut;
/// use graphsync::codec::v1::{self, PeerIds};
/// use graphsync::{Message, Request, RequestId};
///
/// let root = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let selector = ipld_dagcbor::decode(&[0xa1, 0x61, b'.', 0xa0])?;
/// let id = RequestId::new([7; 16]);
/// let message = Message::new().with_request(Request::new(id, root, selector));
/// let mut ours = PeerIds::new(1);
/// let mut body = BytesMut::new();
/// v1::encode(&message, &mut ours, &mut body)?;
/// assert_eq!(v1::decode_wire(&body)?.requests[0].id, 0);
///
/// // The peer sees the request under an id of its own making.
/// let mut theirs = PeerIds::new(2);
/// let received = v1::decode(&body, &mut theirs)?;
/// assert_ne!(received.requests[0].id, id);
/// assert_eq!(received.requests[0].kind, message.requests[0].kind);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(
    message: &Message,
    ids: &mut impl IdMap,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let wire = to_wire(message, ids)?;
    encode_wire(&wire, out);
    Ok(())
}

/// The 1.0.0 body of `message` as pieces to be written in order, without copying its large
/// blocks: the bytes [`encode`] writes, with each block of at least
/// [`ipld_dagcbor::SHARED_BYTES_MIN`] bytes a piece of its own (its `Bytes` itself). The
/// blocks are the last field (number 4), so they are written after the rest, as prost
/// writes them.
///
/// # Errors
/// As [`encode`].
pub fn encode_pieces(message: &Message, ids: &mut impl IdMap) -> Result<Vec<Bytes>, EncodeError> {
    const PER_BLOCK: usize = 32;
    let mut wire = to_wire(message, ids)?;
    let blocks = std::mem::take(&mut wire.data);
    let copied: usize = blocks
        .iter()
        .map(|block| PER_BLOCK + block.prefix.len() + copied_len(&block.data))
        .sum();
    let mut out = BytesMut::with_capacity(wire.encoded_len() + copied);
    wire.encode_raw(&mut out);
    let mut pieces = Vec::with_capacity(2 * blocks.len() + 1);
    for block in &blocks {
        write_block_field(block, &mut out, &mut pieces);
    }
    if !out.is_empty() {
        pieces.push(out.split().freeze());
    }
    Ok(pieces)
}

/// Writes `block` as field 4 of the message, as prost would; large block bytes go to `pieces`
/// after the piece of `out` written before them.
fn write_block_field(block: &pb::Block, out: &mut BytesMut, pieces: &mut Vec<Bytes>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    const BLOCKS: u32 = 4;
    const PREFIX: u32 = 1;
    const DATA: u32 = 2;
    encode_key(BLOCKS, WireType::LengthDelimited, out);
    encode_varint(wire_len(block.encoded_len()), out);
    if !block.prefix.is_empty() {
        prost::encoding::bytes::encode(PREFIX, &block.prefix, out);
    }
    if block.data.is_empty() {
        return;
    }
    encode_key(DATA, WireType::LengthDelimited, out);
    encode_varint(wire_len(block.data.len()), out);
    if shared_block(&block.data) {
        pieces.push(out.split().freeze());
        pieces.push(block.data.clone());
    } else {
        out.put_slice(&block.data);
    }
}

/// Decodes one 1.0.0 body (without the length prefix) into the shared model.
///
/// # Errors
/// As [`decode_wire`] and [`from_wire`].
pub fn decode(body: &[u8], ids: &mut impl IdMap) -> Result<Message, DecodeError> {
    from_wire(decode_wire(body)?, ids)
}

/// Decodes one 1.0.0 body like [`decode`], with each block of at least
/// [`ipld_dagcbor::SHARED_BYTES_MIN`] bytes a slice of `body` rather than a copy (smaller
/// blocks are copied, so that they do not keep the whole body alive).
///
/// # Errors
/// As [`decode`].
pub fn decode_shared(body: &Bytes, ids: &mut impl IdMap) -> Result<Message, DecodeError> {
    // Decoding from `Bytes`, prost slices `bytes = "bytes"` fields (the block data) out of it.
    let mut wire =
        pb::Message::decode(body.clone()).map_err(|source| DecodeError::Protobuf { source })?;
    for block in &mut wire.data {
        if !shared_block(&block.data) {
            block.data = Bytes::copy_from_slice(&block.data);
        }
    }
    from_wire(wire, ids)
}

/// Appends the protobuf encoding of `wire` to `out`: fields in number order, zero values left
/// out, as protobuf-go writes them.
pub fn encode_wire(wire: &pb::Message, out: &mut BytesMut) {
    out.reserve(wire.encoded_len());
    wire.encode_raw(out);
}

/// Parses a protobuf body.
///
/// # Errors
/// [`DecodeError::Protobuf`] when it is not a `Message`.
pub fn decode_wire(body: &[u8]) -> Result<pb::Message, DecodeError> {
    pb::Message::decode(body).map_err(|source| DecodeError::Protobuf { source })
}

/// The wire form of `message`, with ids mapped through `ids`.
///
/// # Errors
/// [`EncodeError::DuplicateRequest`], [`EncodeError::DuplicateResponse`],
/// [`EncodeError::CancelWithExtensions`] as on 2.0.0; [`EncodeError::ReservedExtension`] when a
/// model extension is named `graphsync/response-metadata`; [`EncodeError::NonUtf8ExtensionName`];
/// [`EncodeError::Cbor`]; and the id-mapping errors of [`IdMap`]. Ids are only mapped once the
/// message is known to be encodable.
pub fn to_wire(message: &Message, ids: &mut impl IdMap) -> Result<pb::Message, EncodeError> {
    check_encodable(message)?;
    let mut requests = Vec::with_capacity(message.requests.len());
    for request in &message.requests {
        let mut wire = pb::Request {
            extensions: wire_extensions(&request.extensions, &request.id)?,
            ..pb::Request::default()
        };
        match &request.kind {
            RequestKind::New {
                root,
                selector,
                priority,
            } => {
                wire.root = root.to_bytes();
                wire.selector =
                    ipld_dagcbor::to_vec(selector).map_err(|source| EncodeError::Cbor {
                        at: format!("request {} sel", request.id),
                        source,
                    })?;
                wire.priority = priority.0;
            }
            RequestKind::Cancel => wire.cancel = true,
            RequestKind::Update => wire.update = true,
        }
        requests.push((request.id, wire));
    }
    let mut responses = Vec::with_capacity(message.responses.len());
    for response in &message.responses {
        let mut extensions = wire_extensions(&response.extensions, &response.id)?;
        let metadata = ipld_dagcbor::to_vec(&encode_response_metadata(&response.metadata))
            .expect("metadata holds only links, maps and booleans");
        extensions.insert(RESPONSE_METADATA.to_owned(), metadata);
        let wire = pb::Response {
            id: 0,
            status: response.status.code(),
            extensions,
        };
        responses.push((response.id, wire));
    }
    let data = message
        .blocks
        .iter()
        .map(|block| pb::Block {
            prefix: block.prefix.to_bytes(),
            data: block.data.clone(),
        })
        .collect();

    let requests = requests
        .into_iter()
        .map(|(id, wire)| {
            Ok(pb::Request {
                id: ids.outgoing_request(id)?,
                ..wire
            })
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    let responses = responses
        .into_iter()
        .map(|(id, wire)| {
            Ok(pb::Response {
                id: ids.outgoing_response(id)?,
                ..wire
            })
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    Ok(pb::Message {
        complete_request_list: false,
        requests,
        responses,
        data,
    })
}

/// The model form of a wire message, with ids mapped through `ids`.
///
/// Of several requests (or responses) with one integer id only the last is kept, as in Go.
/// Ids are only mapped once the whole message has been checked, so a rejected message leaves
/// `ids` unchanged.
///
/// # Errors
/// [`DecodeError::BadCid`] for a new request's root, [`DecodeError::BadValue`] for its
/// selector or any extension value that is not one DAG-CBOR value,
/// [`DecodeError::MetadataOnRequest`], [`DecodeError::UnknownStatus`],
/// [`DecodeError::BadMetadata`] and [`DecodeError::BadPrefix`].
pub fn from_wire(wire: pb::Message, ids: &mut impl IdMap) -> Result<Message, DecodeError> {
    let requests = keep_last(
        wire.requests.into_iter().enumerate().collect(),
        |(_, request): &(usize, pb::Request)| request.id,
    );
    let mut decoded_requests = Vec::with_capacity(requests.len());
    for (index, request) in requests {
        let at = format!("requests[{index}]");
        if request.extensions.contains_key(RESPONSE_METADATA) {
            return Err(DecodeError::MetadataOnRequest { at });
        }
        let kind = if request.cancel {
            RequestKind::Cancel
        } else if request.update {
            RequestKind::Update
        } else {
            let root = parse_cid(&request.root).map_err(|source| DecodeError::BadCid {
                at: format!("{at}.root"),
                source,
            })?;
            let selector = ipld_dagcbor::decode(&request.selector).map_err(|source| {
                DecodeError::BadValue {
                    at: format!("{at}.selector"),
                    source,
                }
            })?;
            RequestKind::New {
                root,
                selector,
                priority: Priority(request.priority),
            }
        };
        let extensions = match kind {
            RequestKind::Cancel => Extensions::new(),
            _ => model_extensions(request.extensions, &at)?,
        };
        decoded_requests.push((request.id, kind, extensions));
    }

    let responses = keep_last(
        wire.responses.into_iter().enumerate().collect(),
        |(_, response): &(usize, pb::Response)| response.id,
    );
    let mut decoded_responses = Vec::with_capacity(responses.len());
    for (index, response) in responses {
        let at = format!("responses[{index}]");
        let status = ResponseStatus::from_code(response.status.into()).ok_or_else(|| {
            DecodeError::UnknownStatus {
                at: format!("{at}.status"),
                code: response.status.into(),
            }
        })?;
        let mut extensions = model_extensions(response.extensions, &at)?;
        let metadata = match extensions.remove(RESPONSE_METADATA) {
            Some(Some(value)) => {
                decode_response_metadata(&value).map_err(|source| DecodeError::BadMetadata {
                    at: format!("{at}.extensions[{RESPONSE_METADATA}]"),
                    source,
                })?
            }
            Some(None) | None => Vec::new(),
        };
        decoded_responses.push((response.id, status, metadata, extensions));
    }

    let blocks = wire
        .data
        .into_iter()
        .enumerate()
        .map(|(index, block)| {
            let prefix =
                CidPrefix::from_bytes(&block.prefix).map_err(|source| DecodeError::BadPrefix {
                    at: format!("data[{index}].prefix"),
                    source,
                })?;
            Ok(Block {
                prefix,
                data: block.data,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;

    let requests = decoded_requests
        .into_iter()
        .map(|(wire, kind, extensions)| Request {
            id: ids.incoming_request(wire),
            kind,
            extensions,
        })
        .collect();
    let responses = decoded_responses
        .into_iter()
        .map(|(wire, status, metadata, extensions)| Response {
            id: ids.incoming_response(wire),
            status,
            metadata,
            extensions,
        })
        .collect();
    Ok(Message {
        requests,
        responses,
        blocks,
    })
}

fn wire_extensions(
    extensions: &Extensions,
    id: &RequestId,
) -> Result<BTreeMap<String, Vec<u8>>, EncodeError> {
    let mut wire = BTreeMap::new();
    for (name, value) in extensions.iter() {
        let name = name
            .as_str()
            .ok_or_else(|| EncodeError::NonUtf8ExtensionName {
                id: *id,
                name: name.to_string(),
            })?;
        if name == RESPONSE_METADATA {
            return Err(EncodeError::ReservedExtension {
                id: *id,
                name: RESPONSE_METADATA,
            });
        }
        let bytes = ipld_dagcbor::to_vec(value.unwrap_or(&Node::Null)).map_err(|source| {
            EncodeError::Cbor {
                at: format!("request {id} ext {name}"),
                source,
            }
        })?;
        wire.insert(name.to_owned(), bytes);
    }
    Ok(wire)
}

fn model_extensions(wire: BTreeMap<String, Vec<u8>>, at: &str) -> Result<Extensions, DecodeError> {
    let mut extensions = Extensions::new();
    for (name, bytes) in wire {
        if bytes.is_empty() {
            continue;
        }
        let value = ipld_dagcbor::decode(&bytes).map_err(|source| DecodeError::BadValue {
            at: format!("{at}.extensions[{name}]"),
            source,
        })?;
        extensions.insert(name, Some(value));
    }
    Ok(extensions)
}

/// Parses exactly one binary CID, refusing trailing bytes as go-cid's `Cast` does.
fn parse_cid(bytes: &[u8]) -> Result<Cid, cid::Error> {
    let mut reader = bytes;
    let cid = Cid::read_bytes(&mut reader)?;
    if reader.is_empty() {
        Ok(cid)
    } else {
        Err(cid::Error::ParsingError)
    }
}

#[cfg(test)]
mod tests {
    use ipld_dagcbor::SHARED_BYTES_MIN;

    use super::*;

    #[test]
    fn peer_ids_never_reuse_outgoing_integers() {
        let mut ids = PeerIds::new(9);
        let a = RequestId::new([1; 16]);
        let b = RequestId::new([2; 16]);
        assert_eq!(ids.outgoing_request(a).expect("fresh"), 0);
        assert_eq!(ids.outgoing_request(b).expect("fresh"), 1);
        assert_eq!(ids.outgoing_request(a).expect("known"), 0);
        ids.forget(a);
        assert_eq!(ids.outgoing_request(a).expect("fresh again"), 2);
        assert_eq!(ids.incoming_response(1), b);
    }

    #[test]
    fn peer_ids_give_one_id_per_incoming_integer() {
        let mut ids = PeerIds::new(9);
        let first = ids.incoming_request(5);
        assert_eq!(ids.incoming_request(5), first);
        let other = ids.incoming_request(6);
        assert_ne!(other, first);
        assert_eq!(first.as_bytes()[6] >> 4, 4, "uuid version 4");
        assert_eq!(ids.outgoing_response(first).expect("mapped"), 5);
        assert!(matches!(
            ids.outgoing_response(RequestId::new([3; 16])),
            Err(EncodeError::UnmappedRequestId { .. })
        ));
    }

    #[test]
    fn outgoing_integers_run_out_at_i32_max() {
        let mut ids = PeerIds::new(0);
        ids.next_outgoing = Some(i32::MAX);
        assert_eq!(
            ids.outgoing_request(RequestId::new([1; 16])).expect("last"),
            i32::MAX
        );
        assert!(matches!(
            ids.outgoing_request(RequestId::new([2; 16])),
            Err(EncodeError::IdsExhausted)
        ));
    }

    #[test]
    fn decode_shared_slices_large_blocks_out_of_the_body() {
        let prefix = CidPrefix::v1(0x55, 0x12, 32);
        let sizes = [256 * 1024, SHARED_BYTES_MIN, SHARED_BYTES_MIN - 1];
        let mut message = Message::new();
        for (size, fill) in sizes.into_iter().zip(1u8..) {
            message.blocks.push(Block::new(prefix, vec![fill; size]));
        }
        let mut body = BytesMut::new();
        encode(&message, &mut PeerIds::new(1), &mut body).expect("encodes");
        let body = body.freeze();
        let decoded = decode_shared(&body, &mut PeerIds::new(2)).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(
            decode(&body, &mut PeerIds::new(2)).expect("decodes"),
            decoded
        );
        let in_body: Vec<bool> = decoded
            .blocks
            .iter()
            .map(|block| body.as_ptr_range().contains(&block.data.as_ptr()))
            .collect();
        assert_eq!(in_body, [true, true, false]);
    }

    /// A message with every part: a new request, a response (with metadata) to a request the
    /// peer sent as integer 5, and blocks of 256 KiB, 1 KiB, 1 KiB − 1 and 0 bytes.
    fn full_message(ids: &mut PeerIds) -> Message {
        use crate::message::{LinkAction, Metadatum};
        let root: Cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
            .parse()
            .expect("cid");
        let selector = Node::Map(ipld_dagcbor::Map::new().with(".", Node::empty_map()));
        let answered = ids.incoming_request(5);
        let mut response = Response::new(answered, ResponseStatus::PartialResponse);
        response
            .metadata
            .push(Metadatum::new(root, LinkAction::Present));
        let mut message = Message::new()
            .with_request(Request::new(RequestId::new([4; 16]), root, selector))
            .with_response(response);
        let prefix = CidPrefix::v1(0x55, 0x12, 32);
        for size in [256 * 1024, SHARED_BYTES_MIN, SHARED_BYTES_MIN - 1, 0] {
            message.blocks.push(Block::new(prefix, vec![7; size]));
        }
        message
    }

    #[test]
    fn encode_pieces_are_the_encoding_with_large_blocks_shared() {
        let (mut for_pieces, mut for_body) = (PeerIds::new(3), PeerIds::new(3));
        let message = full_message(&mut for_pieces);
        assert_eq!(full_message(&mut for_body), message);
        let pieces = encode_pieces(&message, &mut for_pieces).expect("encodes");
        let mut body = BytesMut::new();
        encode(&message, &mut for_body, &mut body).expect("encodes");
        assert_eq!(pieces.concat(), body);
        let shared: Vec<bool> = message
            .blocks
            .iter()
            .map(|block| {
                pieces
                    .iter()
                    .any(|piece| piece.as_ptr() == block.data.as_ptr())
            })
            .collect();
        assert_eq!(shared[..3], [true, true, false]);
    }
}
