//! The DAG-CBOR codec of `/fil/datatransfer/1.2.0` (`spec/data-transfer.md` §3.1–§3.2).
//!
//! Encoding writes what go-data-transfer v1.15.1 writes: every key always present, `null` for
//! absent nullable values, keys in canonical DAG-CBOR order at every level. Decoding accepts
//! what v1.15.1 accepts (keys in any order, text that is not UTF-8) and rejects what it rejects
//! (unknown or missing keys, wrong kinds, integers outside `0 ..= 2⁶³−1`, `IsRq` naming a
//! `null` side), plus unknown `Type` values (see [`MessageType`]).

use bytes::BytesMut;
use cid::Cid;
use ipld_dagcbor::{Map, Node, Text};

use crate::error::{DecodeError, EncodeError};
use crate::ids::{ChannelId, PeerId, TransferId, TypeIdentifier};
use crate::message::{Message, MessageType, Request, Response, non_null};

const TRANSFER_MESSAGE: &str = "TransferMessage";
const TRANSFER_REQUEST: &str = "TransferRequest";
const TRANSFER_RESPONSE: &str = "TransferResponse";
const CHANNEL_ID: &str = "ChannelID";

const MESSAGE_KEYS: [&str; 3] = ["IsRq", "Request", "Response"];
const REQUEST_KEYS: [&str; 10] = [
    "BCid",
    "Part",
    "Paus",
    "Pull",
    "Stor",
    "Type",
    "VTyp",
    "Vouch",
    "XferID",
    "RestartChannel",
];
const RESPONSE_KEYS: [&str; 6] = ["Acpt", "Paus", "Type", "VRes", "VTyp", "XferID"];

/// Bounds the decoder enforces before it allocates: the DAG-CBOR limits of
/// [`ipld_dagcbor::Limits`], whose defaults (10 MiB, depth 128) are those of a data-transfer
/// message. Go's decoder also charges 8 units per map entry and 4 per list entry against its
/// 10 MiB budget, so Go may refuse a message slightly below this size. The depth counts the
/// message's own two levels.
pub use ipld_dagcbor::Limits;

/// Appends the DAG-CBOR encoding of `message` to `out`, byte for byte as v1.15.1 writes it.
///
/// # Errors
/// [`EncodeError::TransferIdOutOfRange`] for a transfer id above 2⁶³ − 1, and
/// [`EncodeError::EmbeddedIntegerOutOfRange`] for a voucher, result or selector holding an
/// integer CBOR cannot carry. `out` is left as it was on error.
///
/// # Examples
/// ```
/// use bytes::BytesMut;
/// use datatransfer_message::{TransferId, cancel_request, decode, encode};
///
/// let message = cancel_request(TransferId(1)).into();
/// let mut out = BytesMut::new();
/// encode(&message, &mut out)?;
/// assert_eq!(decode(&out)?, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(message: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    let node = message.to_node()?;
    let start = out.len();
    ipld_dagcbor::encode(&node, out).map_err(|source| {
        out.truncate(start);
        EncodeError::Cbor { source }
    })
}

/// The DAG-CBOR encoding of `message` in a new vector.
///
/// # Errors
/// As [`encode`].
pub fn to_vec(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let node = message.to_node()?;
    ipld_dagcbor::to_vec(&node).map_err(|source| EncodeError::Cbor { source })
}

/// Decodes exactly one message from `bytes` with the default [`Limits`].
///
/// # Errors
/// Any [`DecodeError`]: empty, truncated, oversize or malformed input, or a value that does not
/// fit the message schema.
///
/// # Examples
/// ```
/// use datatransfer_message::{DecodeError, decode};
///
/// // IsRq = true with Request = null: Go rejects it, and so do we.
/// let bytes = b"\xa3\x64IsRq\xf5\x67Request\xf6\x68Response\xf6";
/// assert!(matches!(decode(bytes), Err(DecodeError::NullBody { field: "Request", .. })));
/// ```
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_with(bytes, &Limits::default())
}

/// Decodes exactly one message from `bytes` within `limits`.
///
/// The size bound is checked before anything is decoded.
///
/// # Errors
/// As [`decode`]; [`DecodeError::TooLarge`] when `bytes` is longer than
/// [`Limits::max_bytes`].
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let node = ipld_dagcbor::decode_with(bytes, limits).map_err(from_cbor)?;
    Message::from_node(&node)
}

/// Decodes the first message of `bytes`, which may hold several concatenated messages as a
/// data-transfer stream does, and says how many bytes it took.
///
/// Only the first [`Limits::max_bytes`] bytes are looked at. A stream reader that gets
/// [`DecodeError::Truncated`] may read more bytes and try again; [`DecodeError::Empty`] means
/// the stream ended cleanly between messages.
///
/// # Errors
/// As [`decode`], except that bytes after the first message are left alone.
///
/// # Examples
/// ```
/// use datatransfer_message::{Limits, TransferId, cancel_request, decode_prefix, to_vec};
///
/// let mut stream = to_vec(&cancel_request(TransferId(1)).into())?;
/// stream.extend(to_vec(&cancel_request(TransferId(2)).into())?);
/// let (first, used) = decode_prefix(&stream, &Limits::default())?;
/// let (second, _) = decode_prefix(&stream[used..], &Limits::default())?;
/// assert_eq!((first.transfer_id(), second.transfer_id()), (TransferId(1), TransferId(2)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_prefix(bytes: &[u8], limits: &Limits) -> Result<(Message, usize), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let (node, used) = ipld_dagcbor::decode_prefix(bytes, limits).map_err(from_cbor)?;
    Ok((Message::from_node(&node)?, used))
}

impl Message {
    /// The message as an IPLD node: the value Go embeds in a graphsync extension.
    ///
    /// Maps are built in canonical key order, so the node's own order matches the wire.
    ///
    /// # Errors
    /// As [`encode`].
    pub fn to_node(&self) -> Result<Node, EncodeError> {
        let (request, response) = match self {
            Message::Request(request) => (request_node(request)?, Node::Null),
            Message::Response(response) => (Node::Null, response_node(response)?),
        };
        let map = Map::new()
            .with("IsRq", self.is_request())
            .with("Request", request)
            .with("Response", response);
        Ok(Node::Map(map))
    }

    /// Reads a message from an IPLD node, such as a graphsync extension value, with the same
    /// rules as [`decode`].
    ///
    /// As in Go, both `Request` and `Response` are checked against the schema, and the side
    /// `IsRq` does not name is then dropped even when it is not `null`.
    ///
    /// # Errors
    /// The schema errors of [`DecodeError`]: [`DecodeError::NotAMap`],
    /// [`DecodeError::WrongKind`], [`DecodeError::MissingField`], [`DecodeError::UnknownField`],
    /// [`DecodeError::IntegerOutOfRange`], [`DecodeError::UnknownMessageType`],
    /// [`DecodeError::WrongTupleLength`] and [`DecodeError::NullBody`].
    pub fn from_node(node: &Node) -> Result<Message, DecodeError> {
        let Node::Map(map) = node else {
            return Err(DecodeError::NotAMap { found: node.kind() });
        };
        let fields = Fields::new(TRANSFER_MESSAGE, map, &MESSAGE_KEYS)?;
        let is_request = fields.bool("IsRq")?;
        let request = match fields.get("Request")? {
            Node::Null => None,
            Node::Map(map) => Some(request_from_map(map)?),
            other => return Err(fields.wrong_kind("Request", "map or null", other)),
        };
        let response = match fields.get("Response")? {
            Node::Null => None,
            Node::Map(map) => Some(response_from_map(map)?),
            other => return Err(fields.wrong_kind("Response", "map or null", other)),
        };
        match (is_request, request, response) {
            (true, Some(request), _) => Ok(Message::Request(request)),
            (false, _, Some(response)) => Ok(Message::Response(response)),
            (true, None, _) => Err(DecodeError::NullBody {
                is_request,
                field: "Request",
            }),
            (false, _, None) => Err(DecodeError::NullBody {
                is_request,
                field: "Response",
            }),
        }
    }
}

fn request_node(request: &Request) -> Result<Node, EncodeError> {
    let xfer_id = wire_id(TRANSFER_REQUEST, "XferID", request.transfer_id)?;
    let channel = &request.restart_channel;
    let restart_id = wire_id(CHANNEL_ID, "ID", channel.id)?;
    let map = Map::new()
        .with("BCid", request.base_cid.map_or(Node::Null, Node::Link))
        .with("Part", request.partial)
        .with("Paus", request.paused)
        .with("Pull", request.pull)
        .with("Stor", embedded("Stor", request.selector.as_ref())?)
        .with("Type", request.message_type.wire_value())
        .with("VTyp", type_node(&request.voucher_type))
        .with("Vouch", embedded("Vouch", request.voucher.as_ref())?)
        .with("XferID", xfer_id)
        .with(
            "RestartChannel",
            Node::List(vec![
                peer_node(&channel.initiator),
                peer_node(&channel.responder),
                restart_id,
            ]),
        );
    Ok(Node::Map(map))
}

fn response_node(response: &Response) -> Result<Node, EncodeError> {
    let xfer_id = wire_id(TRANSFER_RESPONSE, "XferID", response.transfer_id)?;
    let map = Map::new()
        .with("Acpt", response.accepted)
        .with("Paus", response.paused)
        .with("Type", response.message_type.wire_value())
        .with("VRes", embedded("VRes", response.voucher_result.as_ref())?)
        .with("VTyp", type_node(&response.voucher_result_type))
        .with("XferID", xfer_id);
    Ok(Node::Map(map))
}

fn wire_id(
    structure: &'static str,
    field: &'static str,
    id: TransferId,
) -> Result<Node, EncodeError> {
    if id.fits_wire() {
        Ok(Node::from(id.value()))
    } else {
        Err(EncodeError::TransferIdOutOfRange {
            structure,
            field,
            value: id.value(),
        })
    }
}

fn peer_node(peer: &PeerId) -> Node {
    Node::String(Text::from_bytes(peer.as_bytes()))
}

fn type_node(type_id: &TypeIdentifier) -> Node {
    Node::String(Text::from_bytes(type_id.as_bytes()))
}

/// An embedded value, or `null`; refuses integers the encoder could not write, naming the field.
fn embedded(field: &'static str, node: Option<&Node>) -> Result<Node, EncodeError> {
    let Some(node) = node else {
        return Ok(Node::Null);
    };
    let mut pending = vec![node];
    while let Some(next) = pending.pop() {
        match next {
            Node::Integer(value) if !(Node::MIN_INTEGER..=Node::MAX_INTEGER).contains(value) => {
                return Err(EncodeError::EmbeddedIntegerOutOfRange {
                    field,
                    value: *value,
                });
            }
            Node::List(items) => pending.extend(items),
            Node::Map(map) => pending.extend(map.iter().map(|(_, value)| value)),
            _ => {}
        }
    }
    Ok(node.clone())
}

fn request_from_map(map: &Map) -> Result<Request, DecodeError> {
    let fields = Fields::new(TRANSFER_REQUEST, map, &REQUEST_KEYS)?;
    Ok(Request {
        base_cid: fields.link_or_null("BCid")?,
        partial: fields.bool("Part")?,
        paused: fields.bool("Paus")?,
        pull: fields.bool("Pull")?,
        selector: fields.any_or_null("Stor")?,
        message_type: fields.message_type()?,
        voucher_type: TypeIdentifier::from_bytes(fields.text("VTyp")?),
        voucher: fields.any_or_null("Vouch")?,
        transfer_id: TransferId(fields.int("XferID")?),
        restart_channel: fields.channel_id("RestartChannel")?,
    })
}

fn response_from_map(map: &Map) -> Result<Response, DecodeError> {
    let fields = Fields::new(TRANSFER_RESPONSE, map, &RESPONSE_KEYS)?;
    Ok(Response {
        accepted: fields.bool("Acpt")?,
        paused: fields.bool("Paus")?,
        message_type: fields.message_type()?,
        voucher_result: fields.any_or_null("VRes")?,
        voucher_result_type: TypeIdentifier::from_bytes(fields.text("VTyp")?),
        transfer_id: TransferId(fields.int("XferID")?),
    })
}

/// The entries of one schema struct's map, checked for unknown keys up front.
struct Fields<'a> {
    structure: &'static str,
    map: &'a Map,
}

impl<'a> Fields<'a> {
    fn new(
        structure: &'static str,
        map: &'a Map,
        keys: &'static [&'static str],
    ) -> Result<Self, DecodeError> {
        if let Some(key) = map
            .keys()
            .find(|key| !keys.iter().any(|known| *key == *known))
        {
            return Err(DecodeError::UnknownField {
                structure,
                key: key.to_string(),
            });
        }
        if let Some(&field) = keys.iter().find(|key| !map.contains_key(key)) {
            return Err(DecodeError::MissingField { structure, field });
        }
        Ok(Fields { structure, map })
    }

    fn get(&self, field: &'static str) -> Result<&'a Node, DecodeError> {
        self.map.get(field).ok_or(DecodeError::MissingField {
            structure: self.structure,
            field,
        })
    }

    fn wrong_kind(&self, field: &'static str, expected: &'static str, found: &Node) -> DecodeError {
        DecodeError::WrongKind {
            structure: self.structure,
            field,
            expected,
            found: found.kind(),
        }
    }

    fn bool(&self, field: &'static str) -> Result<bool, DecodeError> {
        match self.get(field)? {
            Node::Bool(value) => Ok(*value),
            other => Err(self.wrong_kind(field, "bool", other)),
        }
    }

    fn int(&self, field: &'static str) -> Result<u64, DecodeError> {
        wire_int(self.structure, field, self.get(field)?)
    }

    fn text(&self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        match self.get(field)? {
            Node::String(text) => Ok(text.as_bytes()),
            other => Err(self.wrong_kind(field, "string", other)),
        }
    }

    fn link_or_null(&self, field: &'static str) -> Result<Option<Cid>, DecodeError> {
        match self.get(field)? {
            Node::Null => Ok(None),
            Node::Link(cid) => Ok(Some(*cid)),
            other => Err(self.wrong_kind(field, "link or null", other)),
        }
    }

    fn any_or_null(&self, field: &'static str) -> Result<Option<Node>, DecodeError> {
        Ok(non_null(self.get(field)?.clone()))
    }

    fn message_type(&self) -> Result<MessageType, DecodeError> {
        let value = self.int("Type")?;
        MessageType::from_wire_value(value).ok_or(DecodeError::UnknownMessageType {
            structure: self.structure,
            value,
        })
    }

    fn channel_id(&self, field: &'static str) -> Result<ChannelId, DecodeError> {
        let members = match self.get(field)? {
            Node::List(members) => members,
            other => return Err(self.wrong_kind(field, "list", other)),
        };
        let [initiator, responder, id] = members.as_slice() else {
            let found = members.len();
            return Err(DecodeError::WrongTupleLength {
                structure: self.structure,
                field,
                found,
            });
        };
        let peer = |field: &'static str, node: &Node| match node {
            Node::String(text) => Ok(PeerId::from_bytes(text.as_bytes())),
            other => Err(DecodeError::WrongKind {
                structure: CHANNEL_ID,
                field,
                expected: "string",
                found: other.kind(),
            }),
        };
        Ok(ChannelId {
            initiator: peer("Initiator", initiator)?,
            responder: peer("Responder", responder)?,
            id: TransferId(wire_int(CHANNEL_ID, "ID", id)?),
        })
    }
}

/// An `Int` field as Go reads it into a `uint64`: non-negative and at most 2⁶³ − 1.
fn wire_int(structure: &'static str, field: &'static str, node: &Node) -> Result<u64, DecodeError> {
    let Node::Integer(value) = node else {
        return Err(DecodeError::WrongKind {
            structure,
            field,
            expected: "int",
            found: node.kind(),
        });
    };
    u64::try_from(*value)
        .ok()
        .filter(|value| *value <= TransferId::MAX_WIRE)
        .ok_or(DecodeError::IntegerOutOfRange {
            structure,
            field,
            value: *value,
        })
}

fn from_cbor(error: ipld_dagcbor::DecodeError) -> DecodeError {
    match error {
        ipld_dagcbor::DecodeError::UnexpectedEof { offset } => DecodeError::Truncated { offset },
        ipld_dagcbor::DecodeError::TooLarge { len, limit } => DecodeError::TooLarge { len, limit },
        ipld_dagcbor::DecodeError::TooDeep { offset, limit } => {
            DecodeError::TooDeep { offset, limit }
        }
        source => DecodeError::Cbor { source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{cancel_request, update_response};

    #[test]
    fn unknown_keys_are_reported_before_missing_ones() {
        let map = Map::new().with("IsRq", true).with("Extra", Node::Null);
        let error = Message::from_node(&Node::Map(map)).expect_err("unknown key");
        assert!(
            matches!(&error, DecodeError::UnknownField { structure: "TransferMessage", key } if key == "Extra"),
            "{error:?}"
        );
    }

    #[test]
    fn to_node_keeps_canonical_key_order() {
        let node = Message::from(update_response(TransferId(3), true))
            .to_node()
            .expect("node");
        let response = node
            .as_map()
            .and_then(|m| m.get("Response"))
            .and_then(Node::as_map);
        let keys: Vec<String> = response
            .expect("response map")
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, RESPONSE_KEYS);
    }

    #[test]
    fn encode_leaves_the_buffer_alone_on_error() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let message = Message::from(cancel_request(TransferId(u64::MAX)));
        let error = encode(&message, &mut out).expect_err("id too large");
        assert!(matches!(
            error,
            EncodeError::TransferIdOutOfRange {
                field: "XferID",
                ..
            }
        ));
        assert_eq!(&out[..], b"keep");
    }
}
