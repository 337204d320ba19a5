//! The version-independent Graphsync message model: [`Message`] with its [`Request`]s,
//! [`Response`]s and [`Block`]s.
//!
//! Both wire formats (2.0.0 DAG-CBOR and 1.0.0 protobuf, see [`crate::codec`]) encode and decode
//! this one model.

use std::fmt;

use bytes::Bytes;
use cid::Cid;
use ipld_dagcbor::Node;

use crate::block::CidPrefix;
use crate::extension::Extensions;

/// A request id: 16 opaque bytes, a random UUIDv4 when Go picks it.
///
/// Ids are scoped to one (requester, responder) pair and direction. Its text form (logs,
/// connection-manager tags) is the hyphenated UUID, which [`fmt::Display`] writes.
///
/// # Examples
/// ```
/// use graphsync::RequestId;
///
/// let id = RequestId::new([0x8b, 0x1b, 0x5a, 0x0e, 0x5f, 0x43, 0x4d, 0x2b, 0x9a, 0x6e, 0x1f, 0x2c,
///     0x3d, 0x4e, 0x5f, 0x60]);
/// assert_eq!(id.to_string(), "8b1b5a0e-5f43-4d2b-9a6e-1f2c3d4e5f60");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// The length of a request id on the 2.0.0 wire.
    pub const LEN: usize = 16;

    /// A request id from its 16 bytes.
    pub const fn new(bytes: [u8; 16]) -> Self {
        RequestId(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A request id from a byte slice, if it is exactly 16 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(RequestId)
    }
}

impl From<[u8; 16]> for RequestId {
    fn from(bytes: [u8; 16]) -> Self {
        RequestId(bytes)
    }
}

impl fmt::Display for RequestId {
    /// Writes the canonical hyphenated UUID form, lowercase.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// A request priority. Go's requester always sends 0, and 0 is left off the 2.0.0 wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i32);

/// One request entry of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id the requester chose.
    pub id: RequestId,
    /// New, cancel or update, with what each carries.
    pub kind: RequestKind,
    /// Extensions. Go sends none on a cancel and drops any it receives there, so the encoders
    /// refuse a cancel that carries some.
    pub extensions: Extensions,
}

impl Request {
    /// A new request for the DAG under `root` selected by `selector`, priority 0, no extensions.
    pub fn new(id: RequestId, root: Cid, selector: Node) -> Self {
        Request {
            id,
            kind: RequestKind::New {
                root,
                selector,
                priority: Priority::default(),
            },
            extensions: Extensions::new(),
        }
    }

    /// A cancel of request `id`.
    pub fn cancel(id: RequestId) -> Self {
        Request {
            id,
            kind: RequestKind::Cancel,
            extensions: Extensions::new(),
        }
    }

    /// An update of request `id` carrying `extensions`.
    pub fn update(id: RequestId, extensions: Extensions) -> Self {
        Request {
            id,
            kind: RequestKind::Update,
            extensions,
        }
    }

    /// This request with another priority; only a new request carries one, so on a cancel or
    /// an update this changes nothing.
    pub fn with_priority(mut self, value: Priority) -> Self {
        if let RequestKind::New { priority, .. } = &mut self.kind {
            *priority = value;
        }
        self
    }

    /// This request with `extensions`.
    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }
}

/// What a [`Request`] asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestKind {
    /// Start a traversal (2.0.0 type `"n"`).
    New {
        /// The root of the DAG.
        root: Cid,
        /// The selector, as an IPLD node.
        selector: Node,
        /// The priority.
        priority: Priority,
    },
    /// Stop a request (2.0.0 type `"c"`). Go sends no reply.
    Cancel,
    /// Send extensions to a running request (2.0.0 type `"u"`).
    Update,
}

/// The status of a response, with every code go-graphsync defines.
///
/// Names are Go's. Terminal codes are the successes 20 and 21 and the failures 30 to 35.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseStatus {
    /// 10: used by Go only as an internal placeholder.
    RequestAcknowledged,
    /// 11: reserved.
    AdditionalPeers,
    /// 12: reserved.
    NotEnoughGas,
    /// 13: reserved.
    OtherProtocol,
    /// 14: any non-final message; the traversal is still running.
    PartialResponse,
    /// 15: the responder paused; not terminal.
    RequestPaused,
    /// 20: the traversal finished and no link was missing.
    RequestCompletedFull,
    /// 21: the traversal finished but some link was missing.
    RequestCompletedPartial,
    /// 30: no hook validated the request.
    RequestRejected,
    /// 31: reserved.
    RequestFailedBusy,
    /// 32: a hook or the traversal failed.
    RequestFailedUnknown,
    /// 33: reserved.
    RequestFailedLegal,
    /// 34: the root block was missing.
    RequestFailedContentNotFound,
    /// 35: the responder's application cancelled the response.
    RequestCancelled,
}

impl ResponseStatus {
    /// Every status, in code order.
    pub const ALL: [ResponseStatus; 14] = [
        ResponseStatus::RequestAcknowledged,
        ResponseStatus::AdditionalPeers,
        ResponseStatus::NotEnoughGas,
        ResponseStatus::OtherProtocol,
        ResponseStatus::PartialResponse,
        ResponseStatus::RequestPaused,
        ResponseStatus::RequestCompletedFull,
        ResponseStatus::RequestCompletedPartial,
        ResponseStatus::RequestRejected,
        ResponseStatus::RequestFailedBusy,
        ResponseStatus::RequestFailedUnknown,
        ResponseStatus::RequestFailedLegal,
        ResponseStatus::RequestFailedContentNotFound,
        ResponseStatus::RequestCancelled,
    ];

    /// The integer code on the wire.
    pub const fn code(self) -> i32 {
        match self {
            ResponseStatus::RequestAcknowledged => 10,
            ResponseStatus::AdditionalPeers => 11,
            ResponseStatus::NotEnoughGas => 12,
            ResponseStatus::OtherProtocol => 13,
            ResponseStatus::PartialResponse => 14,
            ResponseStatus::RequestPaused => 15,
            ResponseStatus::RequestCompletedFull => 20,
            ResponseStatus::RequestCompletedPartial => 21,
            ResponseStatus::RequestRejected => 30,
            ResponseStatus::RequestFailedBusy => 31,
            ResponseStatus::RequestFailedUnknown => 32,
            ResponseStatus::RequestFailedLegal => 33,
            ResponseStatus::RequestFailedContentNotFound => 34,
            ResponseStatus::RequestCancelled => 35,
        }
    }

    /// The status with this code, if Go defines one.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| i64::from(status.code()) == code)
    }

    /// Go's name for the status, e.g. `"RequestCompletedFull"`.
    pub const fn name(self) -> &'static str {
        match self {
            ResponseStatus::RequestAcknowledged => "RequestAcknowledged",
            ResponseStatus::AdditionalPeers => "AdditionalPeers",
            ResponseStatus::NotEnoughGas => "NotEnoughGas",
            ResponseStatus::OtherProtocol => "OtherProtocol",
            ResponseStatus::PartialResponse => "PartialResponse",
            ResponseStatus::RequestPaused => "RequestPaused",
            ResponseStatus::RequestCompletedFull => "RequestCompletedFull",
            ResponseStatus::RequestCompletedPartial => "RequestCompletedPartial",
            ResponseStatus::RequestRejected => "RequestRejected",
            ResponseStatus::RequestFailedBusy => "RequestFailedBusy",
            ResponseStatus::RequestFailedUnknown => "RequestFailedUnknown",
            ResponseStatus::RequestFailedLegal => "RequestFailedLegal",
            ResponseStatus::RequestFailedContentNotFound => "RequestFailedContentNotFound",
            ResponseStatus::RequestCancelled => "RequestCancelled",
        }
    }

    /// Whether no more responses follow this one: a success or a failure.
    pub const fn is_terminal(self) -> bool {
        self.is_success() || self.is_failure()
    }

    /// Whether this is a terminal success (20 or 21).
    pub const fn is_success(self) -> bool {
        matches!(
            self,
            ResponseStatus::RequestCompletedFull | ResponseStatus::RequestCompletedPartial
        )
    }

    /// Whether this is a terminal failure (30 to 35).
    pub const fn is_failure(self) -> bool {
        matches!(
            self,
            ResponseStatus::RequestRejected
                | ResponseStatus::RequestFailedBusy
                | ResponseStatus::RequestFailedUnknown
                | ResponseStatus::RequestFailedLegal
                | ResponseStatus::RequestFailedContentNotFound
                | ResponseStatus::RequestCancelled
        )
    }
}

impl fmt::Display for ResponseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// One response entry of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request answered.
    pub id: RequestId,
    /// The status.
    pub status: ResponseStatus,
    /// Every link load since the previous message for this request, in traversal order.
    pub metadata: Vec<Metadatum>,
    /// Extensions.
    pub extensions: Extensions,
}

impl Response {
    /// A response with this status, no metadata and no extensions.
    pub fn new(id: RequestId, status: ResponseStatus) -> Self {
        Response {
            id,
            status,
            metadata: Vec::new(),
            extensions: Extensions::new(),
        }
    }

    /// This response with `metadata`.
    pub fn with_metadata(mut self, metadata: Vec<Metadatum>) -> Self {
        self.metadata = metadata;
        self
    }

    /// This response with `extensions`.
    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }
}

/// What the responder did with one link it loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkAction {
    /// `"p"`: the responder had the block. It is in the same message unless the responder
    /// knows the requester has it.
    Present,
    /// `"d"`: the responder had the block and did not send it (Go never sends this).
    DuplicateNotSent,
    /// `"m"`: the responder lacks the block and skipped that branch.
    Missing,
    /// `"s"`: the responder skipped the sub-DAG as already sent (Go never sends this).
    DuplicateDagSkipped,
}

impl LinkAction {
    /// Every action.
    pub const ALL: [LinkAction; 4] = [
        LinkAction::Present,
        LinkAction::DuplicateNotSent,
        LinkAction::Missing,
        LinkAction::DuplicateDagSkipped,
    ];

    /// The one-letter form Go writes on 2.0.0.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkAction::Present => "p",
            LinkAction::DuplicateNotSent => "d",
            LinkAction::Missing => "m",
            LinkAction::DuplicateDagSkipped => "s",
        }
    }

    /// The schema member name, which Go's decoder also accepts, e.g. `"DuplicateDAGSkipped"`.
    pub const fn member_name(self) -> &'static str {
        match self {
            LinkAction::Present => "Present",
            LinkAction::DuplicateNotSent => "DuplicateNotSent",
            LinkAction::Missing => "Missing",
            LinkAction::DuplicateDagSkipped => "DuplicateDAGSkipped",
        }
    }

    /// The action written as `text`: its one-letter form or its member name.
    pub fn from_wire(text: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|action| {
            text == action.as_str().as_bytes() || text == action.member_name().as_bytes()
        })
    }

    /// Whether the responder continued its traversal below this link.
    pub const fn is_followed(self) -> bool {
        matches!(self, LinkAction::Present | LinkAction::DuplicateNotSent)
    }
}

/// One link load reported by a responder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metadatum {
    /// The CID of the loaded link.
    pub link: Cid,
    /// What the responder did with it.
    pub action: LinkAction,
}

impl Metadatum {
    /// A metadatum.
    pub fn new(link: Cid, action: LinkAction) -> Self {
        Metadatum { link, action }
    }
}

/// A block as it travels: the CID's prefix and the raw bytes.
///
/// The CID itself is not sent; [`Block::cid`] rebuilds it by hashing the data, which is also
/// the integrity check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Version, codec and multihash parameters of the block's CID.
    pub prefix: CidPrefix,
    /// The block bytes.
    pub data: Bytes,
}

impl Block {
    /// A block from its prefix and bytes.
    pub fn new(prefix: CidPrefix, data: impl Into<Bytes>) -> Self {
        Block {
            prefix,
            data: data.into(),
        }
    }

    /// A block whose CID is `cid`, holding `data`. The data is not checked against the CID;
    /// [`Block::cid`] does that.
    pub fn from_cid(cid: &Cid, data: impl Into<Bytes>) -> Self {
        Block {
            prefix: CidPrefix::of(cid),
            data: data.into(),
        }
    }
}

/// One Graphsync message: any number of requests, responses and blocks.
///
/// Lists keep their order. The encoders refuse two requests (or two responses) with the same
/// id in one message, which Go cannot produce either; the decoders keep only the last entry
/// for an id, as Go does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Requests.
    pub requests: Vec<Request>,
    /// Responses.
    pub responses: Vec<Response>,
    /// Blocks.
    pub blocks: Vec<Block>,
}

impl Message {
    /// An empty message (which is not worth sending).
    pub fn new() -> Self {
        Message::default()
    }

    /// Whether the message holds nothing.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.responses.is_empty() && self.blocks.is_empty()
    }

    /// This message with one more request.
    pub fn with_request(mut self, request: Request) -> Self {
        self.requests.push(request);
        self
    }

    /// This message with one more response.
    pub fn with_response(mut self, response: Response) -> Self {
        self.responses.push(response);
        self
    }

    /// This message with one more block.
    pub fn with_block(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_and_classes_match_go() {
        let codes: Vec<i32> = ResponseStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(
            codes,
            [10, 11, 12, 13, 14, 15, 20, 21, 30, 31, 32, 33, 34, 35]
        );
        for status in ResponseStatus::ALL {
            assert_eq!(
                ResponseStatus::from_code(status.code().into()),
                Some(status)
            );
            let code = status.code();
            assert_eq!(status.is_success(), code == 20 || code == 21, "{status}");
            assert_eq!(status.is_failure(), (30..=35).contains(&code), "{status}");
            assert_eq!(status.is_terminal(), code >= 20, "{status}");
        }
        assert_eq!(ResponseStatus::from_code(16), None);
        assert_eq!(ResponseStatus::from_code(0), None);
    }

    #[test]
    fn link_actions_accept_letters_and_member_names_only() {
        assert_eq!(LinkAction::from_wire(b"p"), Some(LinkAction::Present));
        assert_eq!(LinkAction::from_wire(b"Present"), Some(LinkAction::Present));
        assert_eq!(
            LinkAction::from_wire(b"DuplicateDAGSkipped"),
            Some(LinkAction::DuplicateDagSkipped)
        );
        assert_eq!(LinkAction::from_wire(b"DuplicateDagSkipped"), None);
        assert_eq!(LinkAction::from_wire(b"P"), None);
        assert_eq!(LinkAction::from_wire(b""), None);
    }

    #[test]
    fn request_id_prints_as_hyphenated_uuid() {
        let id = RequestId::new([
            0x3d, 0x2c, 0x1b, 0x0a, 0x99, 0x88, 0x4e, 0x77, 0xa6, 0x65, 0x54, 0x43, 0x32, 0x21,
            0x10, 0xff,
        ]);
        assert_eq!(id.to_string(), "3d2c1b0a-9988-4e77-a665-5443322110ff");
        assert_eq!(
            format!("{id:?}"),
            "RequestId(3d2c1b0a-9988-4e77-a665-5443322110ff)"
        );
        assert_eq!(RequestId::from_slice(&[0; 15]), None);
        assert_eq!(
            RequestId::from_slice(&[7; 16]),
            Some(RequestId::new([7; 16]))
        );
    }

    #[test]
    fn priority_is_only_set_on_new_requests() {
        let id = RequestId::new([1; 16]);
        let cancel = Request::cancel(id).with_priority(Priority(5));
        assert_eq!(cancel.kind, RequestKind::Cancel);
        let new = Request::new(id, Cid::default(), Node::empty_map()).with_priority(Priority(5));
        assert!(matches!(
            new.kind,
            RequestKind::New {
                priority: Priority(5),
                ..
            }
        ));
    }
}
