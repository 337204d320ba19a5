//! The message types: [`MessageType`], [`Request`], [`Response`] and [`Message`], with the
//! predicates and constructors of Go's `message` package (`spec/data-transfer.md` §3.3–§3.4).

use cid::Cid;
use ipld_dagcbor::Node;

use crate::ids::{ChannelId, TransferId, TypeIdentifier};

/// What a message asks for or reports: the wire field `Type`.
///
/// Every value v1.15.1 defines (0 to 7) has a variant. Go decodes any non-negative `Type` and
/// its manager treats an unknown value as a pause/resume update; this crate instead rejects
/// unknown values when decoding (see [`DecodeError::UnknownMessageType`]), because no Go
/// version sends them and acting on them as updates would be a guess. `docs/protocol.md`
/// records the decision.
///
/// [`DecodeError::UnknownMessageType`]: crate::DecodeError::UnknownMessageType
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageType {
    /// 0: open a channel (request), or answer an open (response).
    New,
    /// 1: the sender paused or resumed its side.
    Update,
    /// 2: the sender cancelled the channel.
    Cancel,
    /// 3: the responder finished its part (response only).
    Complete,
    /// 4: a new voucher for revalidation (request only).
    Voucher,
    /// 5: a revalidation result or a payment request (response only).
    VoucherResult,
    /// 6: restart an existing channel (request), or answer a restart (response).
    Restart,
    /// 7: the responder asks the initiator to restart a channel; encoded as a request.
    RestartExistingChannelRequest,
}

impl MessageType {
    /// Every type, in wire-value order.
    pub const ALL: [MessageType; 8] = [
        MessageType::New,
        MessageType::Update,
        MessageType::Cancel,
        MessageType::Complete,
        MessageType::Voucher,
        MessageType::VoucherResult,
        MessageType::Restart,
        MessageType::RestartExistingChannelRequest,
    ];

    /// The wire value.
    pub fn wire_value(self) -> u64 {
        match self {
            MessageType::New => 0,
            MessageType::Update => 1,
            MessageType::Cancel => 2,
            MessageType::Complete => 3,
            MessageType::Voucher => 4,
            MessageType::VoucherResult => 5,
            MessageType::Restart => 6,
            MessageType::RestartExistingChannelRequest => 7,
        }
    }

    /// The type with this wire value, if v1.15.1 defines one.
    pub fn from_wire_value(value: u64) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|index| Self::ALL.get(index).copied())
    }
}

/// A data-transfer request: sent by the initiator (and, for
/// [`MessageType::RestartExistingChannelRequest`] only, by the responder).
///
/// Build one with the constructors ([`new_request`], [`cancel_request`], …), which set exactly
/// the fields Go's constructors set; read it through the accessors and predicates.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub(crate) message_type: MessageType,
    pub(crate) transfer_id: TransferId,
    pub(crate) base_cid: Option<Cid>,
    pub(crate) paused: bool,
    pub(crate) partial: bool,
    pub(crate) pull: bool,
    pub(crate) selector: Option<Node>,
    pub(crate) voucher: Option<Node>,
    pub(crate) voucher_type: TypeIdentifier,
    pub(crate) restart_channel: ChannelId,
}

impl Request {
    /// The `Type` field.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The `XferID` field (0 in a restart-existing-channel request).
    pub fn transfer_id(&self) -> TransferId {
        self.transfer_id
    }

    /// The root of the requested DAG (`BCid`), if any.
    pub fn base_cid(&self) -> Option<&Cid> {
        self.base_cid.as_ref()
    }

    /// The selector (`Stor`), if any.
    pub fn selector(&self) -> Option<&Node> {
        self.selector.as_ref()
    }

    /// The voucher (`Vouch`), if any, as an IPLD node for the registered type to decode.
    pub fn voucher(&self) -> Option<&Node> {
        self.voucher.as_ref()
    }

    /// The voucher's type (`VTyp`); empty if there is none.
    pub fn voucher_type(&self) -> &TypeIdentifier {
        &self.voucher_type
    }

    /// The channel a restart-existing-channel request names (`RestartChannel`); the zero
    /// channel id in every other request.
    pub fn restart_channel(&self) -> &ChannelId {
        &self.restart_channel
    }

    /// Whether this is the initiator asking for data to be pulled (`Pull`).
    pub fn is_pull(&self) -> bool {
        self.pull
    }

    /// The `Part` flag: never set true by Go, never read.
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// Whether the initiator paused its side (`Paus`).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Type = 0.
    pub fn is_new(&self) -> bool {
        self.message_type == MessageType::New
    }

    /// Type = 1.
    pub fn is_update(&self) -> bool {
        self.message_type == MessageType::Update
    }

    /// Type = 2.
    pub fn is_cancel(&self) -> bool {
        self.message_type == MessageType::Cancel
    }

    /// Type ∈ {0, 4}: the request carries a voucher to validate.
    pub fn is_voucher(&self) -> bool {
        matches!(self.message_type, MessageType::New | MessageType::Voucher)
    }

    /// Type = 6.
    pub fn is_restart(&self) -> bool {
        self.message_type == MessageType::Restart
    }

    /// Type = 7.
    pub fn is_restart_existing_channel_request(&self) -> bool {
        self.message_type == MessageType::RestartExistingChannelRequest
    }
}

/// A data-transfer response: always sent by the responder.
///
/// Build one with the constructors ([`new_response`], [`complete_response`], …), which set
/// exactly the fields Go's constructors set; read it through the accessors and predicates.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub(crate) message_type: MessageType,
    pub(crate) transfer_id: TransferId,
    pub(crate) accepted: bool,
    pub(crate) paused: bool,
    pub(crate) voucher_result: Option<Node>,
    pub(crate) voucher_result_type: TypeIdentifier,
}

impl Response {
    /// The `Type` field.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The `XferID` field.
    pub fn transfer_id(&self) -> TransferId {
        self.transfer_id
    }

    /// The voucher result (`VRes`), if any, as an IPLD node for the registered type to decode.
    pub fn voucher_result(&self) -> Option<&Node> {
        self.voucher_result.as_ref()
    }

    /// The voucher result's type (`VTyp`); empty if there is none.
    pub fn voucher_result_type(&self) -> &TypeIdentifier {
        &self.voucher_result_type
    }

    /// Whether the responder accepted (`Acpt`); always false in update and cancel responses.
    pub fn accepted(&self) -> bool {
        self.accepted
    }

    /// Whether the responder paused its side (`Paus`).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Type = 0.
    pub fn is_new(&self) -> bool {
        self.message_type == MessageType::New
    }

    /// Type = 1.
    pub fn is_update(&self) -> bool {
        self.message_type == MessageType::Update
    }

    /// Type = 2.
    pub fn is_cancel(&self) -> bool {
        self.message_type == MessageType::Cancel
    }

    /// Type = 3.
    pub fn is_complete(&self) -> bool {
        self.message_type == MessageType::Complete
    }

    /// Type ∈ {0, 3, 5, 6}: the response may carry a voucher result.
    pub fn is_voucher_result(&self) -> bool {
        matches!(
            self.message_type,
            MessageType::New
                | MessageType::Complete
                | MessageType::VoucherResult
                | MessageType::Restart
        )
    }

    /// Type = 6.
    pub fn is_restart(&self) -> bool {
        self.message_type == MessageType::Restart
    }

    /// Whether `VTyp` is empty, Go's `EmptyVoucherResult`.
    pub fn empty_voucher_result(&self) -> bool {
        self.voucher_result_type.is_empty()
    }
}

/// One data-transfer message: the wire's `TransferMessage`, whose `IsRq` flag picks the side.
// A request is a few hundred bytes larger than a response. Messages are built once per network
// message and rarely moved, so plain variants keep matching and construction simple.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `IsRq = true`.
    Request(Request),
    /// `IsRq = false`.
    Response(Response),
}

impl Message {
    /// Whether this is a request (`IsRq`).
    pub fn is_request(&self) -> bool {
        matches!(self, Message::Request(_))
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(request) => Some(request),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Request(_) => None,
            Message::Response(response) => Some(response),
        }
    }

    /// The `Type` field of the request or response.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Request(request) => request.message_type,
            Message::Response(response) => response.message_type,
        }
    }

    /// The `XferID` field of the request or response.
    pub fn transfer_id(&self) -> TransferId {
        match self {
            Message::Request(request) => request.transfer_id,
            Message::Response(response) => response.transfer_id,
        }
    }

    /// Type = 0.
    pub fn is_new(&self) -> bool {
        self.message_type() == MessageType::New
    }

    /// Type = 1.
    pub fn is_update(&self) -> bool {
        self.message_type() == MessageType::Update
    }

    /// Type = 2.
    pub fn is_cancel(&self) -> bool {
        self.message_type() == MessageType::Cancel
    }

    /// Type = 6.
    pub fn is_restart(&self) -> bool {
        self.message_type() == MessageType::Restart
    }

    /// The `Paus` flag of the request or response.
    pub fn is_paused(&self) -> bool {
        match self {
            Message::Request(request) => request.paused,
            Message::Response(response) => response.paused,
        }
    }
}

impl From<Request> for Message {
    fn from(request: Request) -> Self {
        Message::Request(request)
    }
}

impl From<Response> for Message {
    fn from(response: Response) -> Self {
        Message::Response(response)
    }
}

/// A new channel (Type 0), Go's `NewRequest(id, false, isPull, …)`: sets `Pull`, `Vouch`,
/// `Stor`, `BCid`, `VTyp` and `XferID`. A `Node::Null` voucher or selector means none.
///
/// # Examples
/// ```
/// use datatransfer_message::{TransferId, new_request};
/// use ipld_dagcbor::{Map, Node};
///
/// let cid = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?;
/// let all = Node::Map(Map::new().with(".", Node::empty_map()));
/// let voucher = Node::List(vec![Node::text("v")]);
/// let request = new_request(TransferId(7), true, "FakeDTType".into(), voucher, cid, all);
/// assert!(request.is_new() && request.is_pull() && request.is_voucher());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn new_request(
    id: TransferId,
    is_pull: bool,
    voucher_type: TypeIdentifier,
    voucher: Node,
    base_cid: Cid,
    selector: Node,
) -> Request {
    open_request(
        MessageType::New,
        id,
        is_pull,
        voucher_type,
        voucher,
        base_cid,
        selector,
    )
}

/// A restart of an existing channel (Type 6), Go's `NewRequest(id, true, isPull, …)`: the same
/// fields as [`new_request`], repeating the channel's original voucher, root and selector.
pub fn restart_request(
    id: TransferId,
    is_pull: bool,
    voucher_type: TypeIdentifier,
    voucher: Node,
    base_cid: Cid,
    selector: Node,
) -> Request {
    open_request(
        MessageType::Restart,
        id,
        is_pull,
        voucher_type,
        voucher,
        base_cid,
        selector,
    )
}

/// The responder asking the initiator to restart `channel` (Type 7): sets only
/// `RestartChannel`; `XferID` stays 0.
pub fn restart_existing_channel_request(channel: ChannelId) -> Request {
    Request {
        restart_channel: channel,
        ..empty_request(MessageType::RestartExistingChannelRequest, TransferId(0))
    }
}

/// The initiator cancelling (Type 2): sets only `XferID`.
pub fn cancel_request(id: TransferId) -> Request {
    empty_request(MessageType::Cancel, id)
}

/// The initiator pausing (`paused = true`) or resuming its side (Type 1): sets `Paus` and
/// `XferID`.
pub fn update_request(id: TransferId, paused: bool) -> Request {
    Request {
        paused,
        ..empty_request(MessageType::Update, id)
    }
}

/// A new voucher for revalidation (Type 4): sets `Vouch`, `VTyp` and `XferID`. A `Node::Null`
/// voucher means none.
pub fn voucher_request(id: TransferId, voucher_type: TypeIdentifier, voucher: Node) -> Request {
    Request {
        voucher: non_null(voucher),
        voucher_type,
        ..empty_request(MessageType::Voucher, id)
    }
}

/// The answer to a new request (Type 0): sets `Acpt`, `Paus`, `XferID`, `VTyp` and `VRes`
/// (`None` or `Node::Null` for no result).
pub fn new_response(
    id: TransferId,
    accepted: bool,
    paused: bool,
    result_type: TypeIdentifier,
    result: Option<Node>,
) -> Response {
    result_response(MessageType::New, id, accepted, paused, result_type, result)
}

/// The answer to a restart request (Type 6): the same fields as [`new_response`].
pub fn restart_response(
    id: TransferId,
    accepted: bool,
    paused: bool,
    result_type: TypeIdentifier,
    result: Option<Node>,
) -> Response {
    result_response(
        MessageType::Restart,
        id,
        accepted,
        paused,
        result_type,
        result,
    )
}

/// A revalidation result or payment request (Type 5): the same fields as [`new_response`].
pub fn voucher_result_response(
    id: TransferId,
    accepted: bool,
    paused: bool,
    result_type: TypeIdentifier,
    result: Option<Node>,
) -> Response {
    result_response(
        MessageType::VoucherResult,
        id,
        accepted,
        paused,
        result_type,
        result,
    )
}

/// The responder finished its part (Type 3); `paused = true` means it awaits a final voucher.
/// The same fields as [`new_response`].
pub fn complete_response(
    id: TransferId,
    accepted: bool,
    paused: bool,
    result_type: TypeIdentifier,
    result: Option<Node>,
) -> Response {
    result_response(
        MessageType::Complete,
        id,
        accepted,
        paused,
        result_type,
        result,
    )
}

/// The responder pausing or resuming its side (Type 1): sets `Paus` and `XferID`; `Acpt`
/// stays false, as in Go.
pub fn update_response(id: TransferId, paused: bool) -> Response {
    Response {
        paused,
        ..empty_response(MessageType::Update, id)
    }
}

/// The responder cancelling (Type 2): sets only `XferID`.
pub fn cancel_response(id: TransferId) -> Response {
    empty_response(MessageType::Cancel, id)
}

fn open_request(
    message_type: MessageType,
    id: TransferId,
    is_pull: bool,
    voucher_type: TypeIdentifier,
    voucher: Node,
    base_cid: Cid,
    selector: Node,
) -> Request {
    Request {
        base_cid: Some(base_cid),
        pull: is_pull,
        selector: non_null(selector),
        voucher: non_null(voucher),
        voucher_type,
        ..empty_request(message_type, id)
    }
}

fn result_response(
    message_type: MessageType,
    id: TransferId,
    accepted: bool,
    paused: bool,
    result_type: TypeIdentifier,
    result: Option<Node>,
) -> Response {
    Response {
        accepted,
        paused,
        voucher_result: result.and_then(non_null),
        voucher_result_type: result_type,
        ..empty_response(message_type, id)
    }
}

fn empty_request(message_type: MessageType, transfer_id: TransferId) -> Request {
    Request {
        message_type,
        transfer_id,
        base_cid: None,
        paused: false,
        partial: false,
        pull: false,
        selector: None,
        voucher: None,
        voucher_type: TypeIdentifier::EMPTY,
        restart_channel: ChannelId::default(),
    }
}

fn empty_response(message_type: MessageType, transfer_id: TransferId) -> Response {
    Response {
        message_type,
        transfer_id,
        accepted: false,
        paused: false,
        voucher_result: None,
        voucher_result_type: TypeIdentifier::EMPTY,
    }
}

/// `None` for `Node::Null`: on the wire null means absent, so absent has one representation.
pub(crate) fn non_null(node: Node) -> Option<Node> {
    if node.is_null() { None } else { Some(node) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_stop_at_seven() {
        for (value, message_type) in (0u64..).zip(MessageType::ALL) {
            assert_eq!(message_type.wire_value(), value);
            assert_eq!(MessageType::from_wire_value(value), Some(message_type));
        }
        assert_eq!(MessageType::from_wire_value(8), None);
        assert_eq!(MessageType::from_wire_value(u64::MAX), None);
    }

    #[test]
    fn request_predicates_follow_go() {
        let id = TransferId(1);
        assert!(cancel_request(id).is_cancel());
        assert!(update_request(id, true).is_update() && update_request(id, true).is_paused());
        let voucher = voucher_request(id, "T".into(), Node::Null);
        assert!(voucher.is_voucher() && !voucher.is_new() && voucher.voucher().is_none());
        let restart = restart_existing_channel_request(ChannelId::default());
        assert!(restart.is_restart_existing_channel_request() && !restart.is_restart());
    }

    #[test]
    fn response_predicates_follow_go() {
        let id = TransferId(1);
        let result_types = [
            MessageType::New,
            MessageType::Complete,
            MessageType::VoucherResult,
        ];
        for message_type in MessageType::ALL {
            let response = Response {
                message_type,
                ..empty_response(message_type, id)
            };
            let expected =
                result_types.contains(&message_type) || message_type == MessageType::Restart;
            assert_eq!(response.is_voucher_result(), expected, "{message_type:?}");
        }
        let update = update_response(id, false);
        assert!(update.is_update() && !update.accepted() && update.empty_voucher_result());
        let complete = complete_response(id, true, true, "R".into(), Some(Node::Null));
        assert!(complete.is_complete() && complete.voucher_result().is_none());
        assert!(!complete.empty_voucher_result());
    }
}
