//! Message bodies of `/ipfs/graphsync/2.0.0`: canonical DAG-CBOR under `{"gs2": {…}}`.
//!
//! The encoder writes exactly what go-graphsync writes (spec §2.2–2.3): canonical key order
//! (message `blk`, `req`, `rsp`; request `id`, `ext`, `pri`, `sel`, `root`, `type`; response
//! `ext`, `meta`, `stat`, `reqid`), one-letter enums, integer statuses, and optional fields
//! only when Go writes them (`pri` only on a new request and only if not 0, `ext`, `meta` and
//! the message lists only if not empty). List order is kept.
//!
//! The decoder rejects what Go rejects (spec §2.4): unknown keys, missing `id`/`type`/`reqid`/
//! `stat`, wrong kinds, two-element lists of another length, unknown statuses and enum strings
//! (both one-letter forms and member names such as `"New"` are accepted), ids that are not 16
//! bytes, bad block prefixes, and tags other than 42. After decoding it applies Go's semantics:
//! a cancel keeps only its id, an update only its id and extensions, and of several requests
//! (or responses) with one id only the last survives. Differences from Go, all on input Go
//! never produces: a new request without `root` or `sel` is rejected (Go accepts it and fails
//! later); the un-renamed field names Go's decoder happens to accept (`priority`, `selector`…)
//! are unknown keys here; a block prefix with bytes after its four varints is rejected; and
//! duplicate blocks are kept (Go collapses them by CID).

use bytes::{BufMut, Bytes, BytesMut};
use ipld_dagcbor::{Limits, Map, Node, write_head};

use super::{
    DecodeError, EncodeError, check_encodable, copied_len, keep_last, shared_block, wire_len,
};
use crate::block::CidPrefix;
use crate::extension::Extensions;
use crate::message::{
    Block, LinkAction, Message, Metadatum, Priority, Request, RequestId, RequestKind, Response,
    ResponseStatus,
};

/// Appends the 2.0.0 body of `message` to `out` (without the length prefix).
///
/// # Errors
/// [`EncodeError::DuplicateRequest`], [`EncodeError::DuplicateResponse`] and
/// [`EncodeError::CancelWithExtensions`] for messages Go cannot produce;
/// [`EncodeError::Cbor`] for a selector or extension value holding an integer CBOR cannot
/// carry. On error `out` is left as it was.
///
/// # Examples
/// ```
/// use bytes::BytesMut;
/// use graphsync::{Message, Request, RequestId, codec::v2};
/// use ipld_dagcbor::{Cid, Node};
///
/// let root: Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let selector = ipld_dagcbor::decode(&[0xa1, 0x61, b'.', 0xa0])?; // {".": {}}
/// let message = Message::new().with_request(Request::new(RequestId::new([7; 16]), root, selector));
/// let mut body = BytesMut::new();
/// v2::encode(&message, &mut body)?;
/// assert_eq!(v2::decode(&body)?, message);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(message: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    check_encodable(message)?;
    let start = out.len();
    let result = write_message(message, out, None);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The 2.0.0 body of `message` as pieces to be written in order, without copying its large
/// blocks: each block of at least [`ipld_dagcbor::SHARED_BYTES_MIN`] bytes is a piece of its
/// own, sharing the message's buffer; the rest is encoded into one buffer reserved up front
/// (grown only for a large selector or extension), of which the other pieces are slices.
/// The pieces together are exactly what [`encode`] writes.
///
/// # Errors
/// As [`encode`].
///
/// # Examples
/// ```
/// use bytes::Bytes;
/// use graphsync::{Block, Message, codec::v2};
///
/// let cid: ipld_dagcbor::Cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".parse()?;
/// let data = Bytes::from(vec![7; 4096]);
/// let message = Message::new().with_block(Block::from_cid(&cid, data.clone()));
/// let pieces = v2::encode_pieces(&message)?;
/// assert!(pieces.iter().any(|piece| piece.as_ptr() == data.as_ptr())); // not copied
/// assert_eq!(pieces.concat(), v2::to_vec(&message)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_pieces(message: &Message) -> Result<Vec<Bytes>, EncodeError> {
    check_encodable(message)?;
    let mut out = BytesMut::with_capacity(unshared_capacity(message));
    let mut pieces = Vec::with_capacity(2 * message.blocks.len() + 1);
    write_message(message, &mut out, Some(&mut pieces))?;
    if !out.is_empty() {
        pieces.push(out.split().freeze());
    }
    Ok(pieces)
}

/// Room for what [`encode_pieces`] copies of `message`: the small blocks plus a generous
/// allowance for the framing of every block, the metadata and the rest.
fn unshared_capacity(message: &Message) -> usize {
    const PER_BLOCK: usize = 32;
    const PER_METADATUM: usize = 64;
    const PER_ENTRY: usize = 512;
    let blocks: usize = message
        .blocks
        .iter()
        .map(|block| PER_BLOCK + copied_len(&block.data))
        .sum();
    let metadata: usize = message
        .responses
        .iter()
        .map(|response| response.metadata.len() * PER_METADATUM)
        .sum();
    let entries = (message.requests.len() + message.responses.len() + 1) * PER_ENTRY;
    blocks + metadata + entries
}

/// The 2.0.0 body of `message` in a new vector.
///
/// # Errors
/// As [`encode`].
pub fn to_vec(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = BytesMut::new();
    encode(message, &mut out)?;
    Ok(out.to_vec())
}

/// Decodes one 2.0.0 body (without the length prefix).
///
/// Block bytes are copied once, by the DAG-CBOR decoder into its tree; each block then takes
/// over that tree's buffer (no second copy). [`decode_shared`] copies no block of 1 KiB or
/// more.
///
/// # Errors
/// The [`DecodeError`] for the first problem found; any error means Go would reset the stream.
pub fn decode(body: &[u8]) -> Result<Message, DecodeError> {
    let root = ipld_dagcbor::decode(body).map_err(|source| DecodeError::Cbor { source })?;
    decode_node(root)
}

/// Decodes one 2.0.0 body like [`decode`], with each block of at least
/// [`ipld_dagcbor::SHARED_BYTES_MIN`] bytes a slice of `body` rather than a copy (smaller
/// blocks are copied, so that they do not keep the whole body alive).
///
/// # Errors
/// As [`decode`].
pub fn decode_shared(body: &Bytes) -> Result<Message, DecodeError> {
    let root = ipld_dagcbor::decode_shared(body, &Limits::default())
        .map_err(|source| DecodeError::Cbor { source })?;
    decode_node(root)
}

/// Decodes a message from its DAG-CBOR tree, consuming the tree so that block bytes move into
/// the message instead of being copied.
fn decode_node(root: Node) -> Result<Message, DecodeError> {
    let envelope = expect_map(&root, "envelope")?;
    let [gs2] = fields(envelope, "envelope", ["gs2"])?;
    let gs2 = gs2.ok_or_else(|| missing("envelope", "gs2"))?;
    let message = expect_map(gs2, "gs2")?;
    let [blocks, requests, responses] = fields(message, "gs2", ["blk", "req", "rsp"])?;

    let mut decoded = Message::new();
    if let Some(requests) = requests {
        let list = expect_list(requests, "gs2.req")?;
        let requests = list
            .iter()
            .enumerate()
            .map(|(index, node)| decode_request(node, &format!("gs2.req[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        decoded.requests = keep_last(requests, |request| request.id);
    }
    if let Some(responses) = responses {
        let list = expect_list(responses, "gs2.rsp")?;
        let responses = list
            .iter()
            .enumerate()
            .map(|(index, node)| decode_response(node, &format!("gs2.rsp[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        decoded.responses = keep_last(responses, |response| response.id);
    }
    if blocks.is_some() {
        // The shape up to `gs2.blk` was checked above; take that node out of the tree by value.
        let blocks = take_field(take_field(root, "gs2"), "blk");
        let list = expect_list_owned(blocks, "gs2.blk")?;
        decoded.blocks = list
            .into_iter()
            .enumerate()
            .map(|(index, node)| decode_block(node, &format!("gs2.blk[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(decoded)
}

/// Writes `message` to `out`; with `pieces`, each large block goes there as a piece of its
/// own, after the piece of `out` written before it.
fn write_message(
    message: &Message,
    out: &mut BytesMut,
    mut pieces: Option<&mut Vec<Bytes>>,
) -> Result<(), EncodeError> {
    write_head(5, 1, out);
    write_text("gs2", out);
    let present = [
        !message.blocks.is_empty(),
        !message.requests.is_empty(),
        !message.responses.is_empty(),
    ];
    write_head(5, count(present), out);
    if !message.blocks.is_empty() {
        write_text("blk", out);
        write_head(4, wire_len(message.blocks.len()), out);
        for block in &message.blocks {
            write_head(4, 2, out);
            write_bytes(&block.prefix.to_bytes(), out);
            write_head(2, wire_len(block.data.len()), out);
            match pieces.as_deref_mut() {
                Some(pieces) if shared_block(&block.data) => {
                    pieces.push(out.split().freeze());
                    pieces.push(block.data.clone());
                }
                _ => out.put_slice(&block.data),
            }
        }
    }
    if !message.requests.is_empty() {
        write_text("req", out);
        write_head(4, wire_len(message.requests.len()), out);
        for request in &message.requests {
            write_request(request, out)?;
        }
    }
    if !message.responses.is_empty() {
        write_text("rsp", out);
        write_head(4, wire_len(message.responses.len()), out);
        for response in &message.responses {
            write_response(response, out)?;
        }
    }
    Ok(())
}

fn write_request(request: &Request, out: &mut BytesMut) -> Result<(), EncodeError> {
    let has_ext = !request.extensions.is_empty();
    let (new, priority) = match &request.kind {
        RequestKind::New {
            root,
            selector,
            priority,
        } => (Some((root, selector)), priority.0),
        RequestKind::Cancel | RequestKind::Update => (None, 0),
    };
    // Keys in canonical order: id, ext, pri, sel, root, type.
    write_head(
        5,
        count([
            true,
            has_ext,
            priority != 0,
            new.is_some(),
            new.is_some(),
            true,
        ]),
        out,
    );
    write_text("id", out);
    write_bytes(request.id.as_bytes(), out);
    if has_ext {
        write_text("ext", out);
        write_extensions(&request.extensions, &request.id, out)?;
    }
    if priority != 0 {
        write_text("pri", out);
        write_node(&Node::Integer(priority.into()), &request.id, "pri", out)?;
    }
    if let Some((root, selector)) = new {
        write_text("sel", out);
        write_node(selector, &request.id, "sel", out)?;
        write_text("root", out);
        write_node(&Node::Link(*root), &request.id, "root", out)?;
    }
    write_text("type", out);
    write_text(
        match request.kind {
            RequestKind::New { .. } => "n",
            RequestKind::Cancel => "c",
            RequestKind::Update => "u",
        },
        out,
    );
    Ok(())
}

fn write_response(response: &Response, out: &mut BytesMut) -> Result<(), EncodeError> {
    let has_ext = !response.extensions.is_empty();
    let has_meta = !response.metadata.is_empty();
    // Keys in canonical order: ext, meta, stat, reqid.
    write_head(5, count([has_ext, has_meta, true, true]), out);
    if has_ext {
        write_text("ext", out);
        write_extensions(&response.extensions, &response.id, out)?;
    }
    if has_meta {
        write_text("meta", out);
        write_head(4, wire_len(response.metadata.len()), out);
        for entry in &response.metadata {
            write_head(4, 2, out);
            write_node(&Node::Link(entry.link), &response.id, "meta", out)?;
            write_text(entry.action.as_str(), out);
        }
    }
    write_text("stat", out);
    let code = u64::try_from(response.status.code()).expect("status codes are positive");
    write_head(0, code, out);
    write_text("reqid", out);
    write_bytes(response.id.as_bytes(), out);
    Ok(())
}

fn write_extensions(
    extensions: &Extensions,
    id: &RequestId,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    // `Extensions` keeps its names in canonical order already.
    write_head(5, wire_len(extensions.len()), out);
    for (name, value) in extensions.iter() {
        write_head(3, wire_len(name.len()), out);
        out.put_slice(name.as_bytes());
        match value {
            Some(node) => write_node(node, id, "ext", out)?,
            None => out.put_u8(0xf6),
        }
    }
    Ok(())
}

fn write_node(
    node: &Node,
    id: &RequestId,
    field: &str,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    ipld_dagcbor::encode(node, out).map_err(|source| EncodeError::Cbor {
        at: format!("request {id} {field}"),
        source,
    })
}

fn write_text(text: &str, out: &mut BytesMut) {
    write_head(3, wire_len(text.len()), out);
    out.put_slice(text.as_bytes());
}

fn write_bytes(bytes: &[u8], out: &mut BytesMut) {
    write_head(2, wire_len(bytes.len()), out);
    out.put_slice(bytes);
}

fn count<const N: usize>(present: [bool; N]) -> u64 {
    present.iter().filter(|&&flag| flag).count() as u64
}

fn decode_request(node: &Node, at: &str) -> Result<Request, DecodeError> {
    let map = expect_map(node, at)?;
    let [id, ext, pri, sel, root, kind] =
        fields(map, at, ["id", "ext", "pri", "sel", "root", "type"])?;
    let id = decode_id(id.ok_or_else(|| missing(at, "id"))?, &format!("{at}.id"))?;
    let kind_node = kind.ok_or_else(|| missing(at, "type"))?;
    let kind_text = expect_text(kind_node, &format!("{at}.type"))?;
    let extensions = match ext {
        Some(ext) => decode_extensions(ext, &format!("{at}.ext"))?,
        None => Extensions::new(),
    };
    let priority = match pri {
        Some(pri) => {
            let value = expect_integer(pri, &format!("{at}.pri"))?;
            let value = i32::try_from(value).map_err(|_| DecodeError::PriorityOutOfRange {
                at: format!("{at}.pri"),
                value,
            })?;
            Priority(value)
        }
        None => Priority::default(),
    };
    let root = match root {
        Some(root) => Some(
            *root
                .as_link()
                .ok_or_else(|| wrong_kind(&format!("{at}.root"), "link", root))?,
        ),
        None => None,
    };
    match kind_text {
        b"n" | b"New" => {
            let root = root.ok_or_else(|| missing(at, "root"))?;
            let selector = sel.ok_or_else(|| missing(at, "sel"))?.clone();
            Ok(Request {
                id,
                kind: RequestKind::New {
                    root,
                    selector,
                    priority,
                },
                extensions,
            })
        }
        b"c" | b"Cancel" => Ok(Request::cancel(id)),
        b"u" | b"Update" => Ok(Request::update(id, extensions)),
        other => Err(DecodeError::UnknownRequestType {
            at: format!("{at}.type"),
            value: String::from_utf8_lossy(other).into_owned(),
        }),
    }
}

fn decode_response(node: &Node, at: &str) -> Result<Response, DecodeError> {
    let map = expect_map(node, at)?;
    let [ext, meta, stat, reqid] = fields(map, at, ["ext", "meta", "stat", "reqid"])?;
    let id = decode_id(
        reqid.ok_or_else(|| missing(at, "reqid"))?,
        &format!("{at}.reqid"),
    )?;
    let stat_at = format!("{at}.stat");
    let code = expect_integer(stat.ok_or_else(|| missing(at, "stat"))?, &stat_at)?;
    let status = i64::try_from(code)
        .ok()
        .and_then(ResponseStatus::from_code)
        .ok_or(DecodeError::UnknownStatus { at: stat_at, code })?;
    let metadata = match meta {
        Some(meta) => {
            let meta_at = format!("{at}.meta");
            expect_list(meta, &meta_at)?
                .iter()
                .enumerate()
                .map(|(index, entry)| decode_metadatum(entry, &format!("{meta_at}[{index}]")))
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    let extensions = match ext {
        Some(ext) => decode_extensions(ext, &format!("{at}.ext"))?,
        None => Extensions::new(),
    };
    Ok(Response {
        id,
        status,
        metadata,
        extensions,
    })
}

fn decode_metadatum(node: &Node, at: &str) -> Result<Metadatum, DecodeError> {
    let [link, action] = expect_pair(node, at)?;
    let link = *link
        .as_link()
        .ok_or_else(|| wrong_kind(&format!("{at}[0]"), "link", link))?;
    let action_at = format!("{at}[1]");
    let text = expect_text(action, &action_at)?;
    let action = LinkAction::from_wire(text).ok_or_else(|| DecodeError::UnknownLinkAction {
        at: action_at,
        value: String::from_utf8_lossy(text).into_owned(),
    })?;
    Ok(Metadatum { link, action })
}

fn decode_block(node: Node, at: &str) -> Result<Block, DecodeError> {
    let [prefix, data] = expect_pair_owned(node, at)?;
    let prefix_at = format!("{at}[0]");
    let prefix = prefix
        .as_bytes()
        .ok_or_else(|| wrong_kind(&prefix_at, "bytes", &prefix))?;
    let prefix = CidPrefix::from_bytes(prefix).map_err(|source| DecodeError::BadPrefix {
        at: prefix_at,
        source,
    })?;
    match data {
        Node::Bytes(data) => Ok(Block::new(prefix, data)),
        other => Err(wrong_kind(&format!("{at}[1]"), "bytes", &other)),
    }
}

/// Reads an `ext` map: text names to any value, `null` meaning no value.
pub(crate) fn decode_extensions(node: &Node, at: &str) -> Result<Extensions, DecodeError> {
    let map = expect_map(node, at)?;
    Ok(map
        .iter()
        .map(|(name, value)| (name.clone(), Some(value.clone())))
        .collect())
}

fn decode_id(node: &Node, at: &str) -> Result<RequestId, DecodeError> {
    let bytes = node
        .as_bytes()
        .ok_or_else(|| wrong_kind(at, "bytes", node))?;
    RequestId::from_slice(bytes).ok_or(DecodeError::BadRequestId {
        at: at.to_owned(),
        len: bytes.len(),
    })
}

/// The values of `names` in `map`, refusing any other key.
fn fields<'a, const N: usize>(
    map: &'a Map,
    at: &str,
    names: [&'static str; N],
) -> Result<[Option<&'a Node>; N], DecodeError> {
    let mut values = [None; N];
    for (key, value) in map.iter() {
        let index =
            names
                .iter()
                .position(|name| key == name)
                .ok_or_else(|| DecodeError::UnknownField {
                    at: at.to_owned(),
                    field: key.to_string(),
                })?;
        values[index] = Some(value);
    }
    Ok(values)
}

fn expect_map<'a>(node: &'a Node, at: &str) -> Result<&'a Map, DecodeError> {
    node.as_map().ok_or_else(|| wrong_kind(at, "map", node))
}

fn expect_list<'a>(node: &'a Node, at: &str) -> Result<&'a [Node], DecodeError> {
    node.as_list().ok_or_else(|| wrong_kind(at, "list", node))
}

fn expect_pair<'a>(node: &'a Node, at: &str) -> Result<[&'a Node; 2], DecodeError> {
    match expect_list(node, at)? {
        [first, second] => Ok([first, second]),
        other => Err(DecodeError::WrongArity {
            at: at.to_owned(),
            expected: 2,
            found: other.len(),
        }),
    }
}

/// The value under `key` of a map node, by value; `Node::Null` when `node` is not a map or has
/// no such key (callers check the shape by reference first).
fn take_field(node: Node, key: &str) -> Node {
    match node {
        Node::Map(map) => map
            .into_iter()
            .find(|(name, _)| name == key)
            .map_or(Node::Null, |(_, value)| value),
        _ => Node::Null,
    }
}

fn expect_list_owned(node: Node, at: &str) -> Result<Vec<Node>, DecodeError> {
    match node {
        Node::List(list) => Ok(list),
        other => Err(wrong_kind(at, "list", &other)),
    }
}

fn expect_pair_owned(node: Node, at: &str) -> Result<[Node; 2], DecodeError> {
    let list = expect_list_owned(node, at)?;
    <[Node; 2]>::try_from(list).map_err(|list| DecodeError::WrongArity {
        at: at.to_owned(),
        expected: 2,
        found: list.len(),
    })
}

fn expect_text<'a>(node: &'a Node, at: &str) -> Result<&'a [u8], DecodeError> {
    node.as_text()
        .map(|text| text.as_bytes())
        .ok_or_else(|| wrong_kind(at, "string", node))
}

fn expect_integer(node: &Node, at: &str) -> Result<i128, DecodeError> {
    node.as_integer().ok_or_else(|| wrong_kind(at, "int", node))
}

fn wrong_kind(at: &str, expected: &'static str, found: &Node) -> DecodeError {
    DecodeError::WrongKind {
        at: at.to_owned(),
        expected,
        found: found.kind(),
    }
}

fn missing(at: &str, field: &'static str) -> DecodeError {
    DecodeError::MissingField {
        at: at.to_owned(),
        field,
    }
}

#[cfg(test)]
mod tests {
    use ipld_dagcbor::SHARED_BYTES_MIN;

    use super::*;

    #[test]
    fn an_empty_message_is_an_empty_gs2_map() {
        let bytes = to_vec(&Message::new()).expect("encodes");
        assert_eq!(bytes, [0xa1, 0x63, b'g', b's', b'2', 0xa0]);
        assert_eq!(decode(&bytes).expect("decodes"), Message::new());
    }

    #[test]
    fn encode_leaves_the_buffer_untouched_on_error() {
        let id = RequestId::new([1; 16]);
        let selector = Node::Integer(Node::MAX_INTEGER + 1);
        let message = Message::new().with_request(Request::new(id, cid::Cid::default(), selector));
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(
            encode(&message, &mut out),
            Err(EncodeError::Cbor { .. })
        ));
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn decoded_blocks_take_over_the_tree_bytes_without_copying() {
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut message = Message::new();
        message
            .blocks
            .push(Block::new(CidPrefix::v1(0x55, 0x12, 32), data.clone()));
        message.blocks.push(Block::new(
            CidPrefix::v1(0x55, 0x12, 32),
            data[..1000].to_vec(),
        ));
        let body = to_vec(&message).expect("encodes");
        let root = ipld_dagcbor::decode(&body).expect("dag-cbor");
        let in_tree: Vec<*const u8> = root
            .as_map()
            .and_then(|envelope| envelope.get("gs2"))
            .and_then(Node::as_map)
            .and_then(|gs2| gs2.get("blk"))
            .and_then(Node::as_list)
            .expect("a block list")
            .iter()
            .map(|pair| {
                pair.as_list().expect("a pair")[1]
                    .as_bytes()
                    .expect("block bytes")
                    .as_ptr()
            })
            .collect();
        let decoded = decode_node(root).expect("decodes");
        assert_eq!(decoded, message);
        let in_message: Vec<*const u8> = decoded
            .blocks
            .iter()
            .map(|block| block.data.as_ptr())
            .collect();
        assert_eq!(
            in_message, in_tree,
            "block bytes were copied out of the tree"
        );
    }

    /// A response message as the responder builds it: each block with its metadatum.
    fn response_with(blocks: &[Vec<u8>], codec: u64) -> Message {
        use multihash_codetable::{Code, MultihashDigest};
        let id = RequestId::new([7; 16]);
        let mut response = Response::new(id, ResponseStatus::PartialResponse);
        let mut message = Message::new();
        for data in blocks {
            let link = cid::Cid::new_v1(codec, Code::Sha2_256.digest(data));
            response
                .metadata
                .push(Metadatum::new(link, LinkAction::Present));
            message.blocks.push(Block::from_cid(&link, data.clone()));
        }
        message.with_response(response)
    }

    /// Blocks of 256 KiB, 1 KiB (shared) and 1 KiB − 1 (copied), as in a UnixFS response.
    fn mixed_blocks() -> Message {
        let sizes = [256 * 1024, SHARED_BYTES_MIN, SHARED_BYTES_MIN - 1];
        let blocks: Vec<Vec<u8>> = sizes
            .iter()
            .zip(1u8..)
            .map(|(&size, fill)| vec![fill; size])
            .collect();
        response_with(&blocks, 0x55)
    }

    fn lies_in(inner: &[u8], outer: &[u8]) -> bool {
        outer.as_ptr_range().contains(&inner.as_ptr())
    }

    /// Checks that `pieces` are `message`'s body, that its large blocks are pieces of their
    /// own (not copied), and that every other piece lies in one buffer, in order (the
    /// reserved room was never reallocated).
    fn check_pieces(message: &Message) {
        let pieces = encode_pieces(message).expect("encodes");
        assert_eq!(pieces.concat(), to_vec(message).expect("encodes"));
        let large: Vec<&Bytes> = message
            .blocks
            .iter()
            .map(|b| &b.data)
            .filter(|d| shared_block(d))
            .collect();
        let (blocks, copied): (Vec<&Bytes>, Vec<&Bytes>) = pieces
            .iter()
            .partition(|piece| large.iter().any(|data| data.as_ptr() == piece.as_ptr()));
        assert_eq!(blocks.len(), large.len(), "a large block was copied");
        for pair in copied.windows(2) {
            let end = pair[0].as_ptr_range().end;
            assert_eq!(pair[1].as_ptr(), end, "the encoding buffer was reallocated");
        }
        for data in message
            .blocks
            .iter()
            .map(|b| &b.data)
            .filter(|d| !shared_block(d))
        {
            assert!(
                copied
                    .iter()
                    .any(|piece| piece.windows(data.len()).any(|w| w == &data[..])),
                "a small block is in no piece"
            );
        }
    }

    #[test]
    fn encode_pieces_shares_large_blocks_and_copies_small_ones() {
        check_pieces(&mixed_blocks());
    }

    #[test]
    fn encode_pieces_of_many_small_blocks_fit_their_reserved_room() {
        let blocks: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| {
                let mut data = vec![0xa1, 0x61, b'i', 0x1a];
                data.extend_from_slice(&i.to_be_bytes());
                data
            })
            .collect();
        check_pieces(&response_with(&blocks, 0x71));
        assert_eq!(
            encode_pieces(&response_with(&blocks, 0x71))
                .expect("encodes")
                .len(),
            1
        );
    }

    #[test]
    fn encode_pieces_of_a_request_is_one_piece() {
        let selector = Node::Map(Map::new().with(".", Node::empty_map()));
        let request = Request::new(RequestId::new([1; 16]), cid::Cid::default(), selector);
        let message = Message::new().with_request(request);
        let pieces = encode_pieces(&message).expect("encodes");
        assert_eq!(pieces, [Bytes::from(to_vec(&message).expect("encodes"))]);
    }

    #[test]
    fn encode_pieces_refuses_what_encode_refuses() {
        let id = RequestId::new([1; 16]);
        let selector = Node::Integer(Node::MAX_INTEGER + 1);
        let message = Message::new().with_request(Request::new(id, cid::Cid::default(), selector));
        assert!(matches!(
            encode_pieces(&message),
            Err(EncodeError::Cbor { .. })
        ));
    }

    #[test]
    fn decode_shared_slices_large_blocks_out_of_the_body() {
        let message = mixed_blocks();
        let body = Bytes::from(to_vec(&message).expect("encodes"));
        let decoded = decode_shared(&body).expect("decodes");
        assert_eq!(decoded, message);
        let in_body: Vec<bool> = decoded
            .blocks
            .iter()
            .map(|b| lies_in(&b.data, &body))
            .collect();
        assert_eq!(in_body, [true, true, false]);
        assert_eq!(decode(&body).expect("decodes"), decoded);
    }
}
