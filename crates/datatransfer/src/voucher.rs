//! Vouchers and voucher results as Rust types ([`Voucher`], [`VoucherResult`]), the
//! application's decision procedures ([`RequestValidator`], [`Revalidator`],
//! [`TransportConfigurer`]) and the [`Decision`] they return (`spec/data-transfer.md` §6).

use std::any::Any;

use cid::Cid;
use datatransfer_fsm::{Validation, Verdict};
use datatransfer_message::{ChannelId, PeerId, TypeIdentifier};
use datatransfer_transport::StoreName;
use ipld_dagcbor::Node;

/// A voucher type: the value an initiator sends to justify a transfer (Go's `Voucher`).
///
/// It has a type identifier, unique among the registered voucher types, and an IPLD form.
///
/// # Examples
/// ```
/// use datatransfer::{Voucher, VoucherError};
/// use ipld_dagcbor::Node;
///
/// #[derive(Debug, PartialEq)]
/// struct Deal(String);
///
/// impl Voucher for Deal {
///     const TYPE: &'static str = "example/deal";
///     fn to_node(&self) -> Node {
///         Node::text(self.0.as_str())
///     }
///     fn from_node(node: &Node) -> Result<Self, VoucherError> {
///         let text = node.as_text().and_then(|t| t.as_str()).ok_or_else(|| {
///             VoucherError::Invalid { reason: "expected a text string".into() }
///         })?;
///         Ok(Deal(text.to_owned()))
///     }
/// }
///
/// let deal = Deal("deal 7".into());
/// assert_eq!(Deal::from_node(&deal.to_node())?, deal);
/// # Ok::<(), VoucherError>(())
/// ```
pub trait Voucher: Sized + Send + Sync + 'static {
    /// The type identifier sent on the wire (`VTyp`), Go's `Type()`.
    const TYPE: &'static str;

    /// The IPLD form embedded in messages.
    fn to_node(&self) -> Node;

    /// Reads the IPLD form back.
    ///
    /// # Errors
    /// [`VoucherError::Invalid`] when the node is not a voucher of this type.
    fn from_node(node: &Node) -> Result<Self, VoucherError>;
}

/// A voucher-result type: what a responder's validator sends back (Go's `VoucherResult`).
///
/// The same shape as [`Voucher`]; a type may implement both.
pub trait VoucherResult: Sized + Send + Sync + 'static {
    /// The type identifier sent on the wire (`VTyp` of a response).
    const TYPE: &'static str;

    /// The IPLD form embedded in messages.
    fn to_node(&self) -> Node;

    /// Reads the IPLD form back.
    ///
    /// # Errors
    /// [`VoucherError::Invalid`] when the node is not a result of this type.
    fn from_node(node: &Node) -> Result<Self, VoucherError>;
}

/// A voucher or voucher result could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VoucherError {
    /// The IPLD value is not of the expected shape.
    #[error("invalid voucher: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// The recorded type identifier is not the one asked for.
    #[error("voucher type is {found}, not {expected}")]
    WrongType {
        /// The type asked for.
        expected: TypeIdentifier,
        /// The recorded type.
        found: TypeIdentifier,
    },
}

/// The encoded form of a typed voucher, as the state machine records it.
pub fn encode_voucher<V: Voucher>(voucher: &V) -> datatransfer_fsm::Voucher {
    datatransfer_fsm::Voucher::new(V::TYPE, voucher.to_node())
}

/// The encoded form of a typed voucher result, as the state machine records it.
pub fn encode_result<R: VoucherResult>(result: &R) -> datatransfer_fsm::VoucherResult {
    datatransfer_fsm::VoucherResult::new(R::TYPE, result.to_node())
}

/// Reads a recorded voucher as the typed voucher `V`.
///
/// # Errors
/// [`VoucherError::WrongType`] when it has another type identifier; `V`'s decoding error.
pub fn decode_voucher<V: Voucher>(voucher: &datatransfer_fsm::Voucher) -> Result<V, VoucherError> {
    check_type(V::TYPE, &voucher.voucher_type)?;
    V::from_node(&voucher.node)
}

/// Reads a recorded voucher result as the typed result `R`.
///
/// # Errors
/// [`VoucherError::WrongType`] when it has another type identifier; `R`'s decoding error.
pub fn decode_result<R: VoucherResult>(
    result: &datatransfer_fsm::VoucherResult,
) -> Result<R, VoucherError> {
    check_type(R::TYPE, &result.result_type)?;
    R::from_node(&result.node)
}

fn check_type(expected: &str, found: &TypeIdentifier) -> Result<(), VoucherError> {
    if found.as_bytes() == expected.as_bytes() {
        Ok(())
    } else {
        Err(VoucherError::WrongType {
            expected: TypeIdentifier::new(expected),
            found: found.clone(),
        })
    }
}

/// A validator's answer: accept, accept paused, resume or reject, with an optional voucher
/// result sent back to the initiator (Go's `(VoucherResult, error)` pair, with `ErrPause` and
/// `ErrResume` as [`Decision::pause`] and [`Decision::resume`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    verdict: Verdict,
    result: Option<datatransfer_fsm::VoucherResult>,
}

impl Decision {
    /// Accept (Go's `nil` error).
    pub fn accept() -> Self {
        Decision {
            verdict: Verdict::Accept,
            result: None,
        }
    }

    /// Accept, but pause the responder until a voucher resumes it (Go's `ErrPause`). For
    /// [`Revalidator::on_complete`] it asks for a final voucher (finalization).
    pub fn pause() -> Self {
        Decision {
            verdict: Verdict::Pause,
            result: None,
        }
    }

    /// Resume a paused responder (Go's `ErrResume`); from a [`RequestValidator`] it counts as
    /// [`Decision::accept`].
    pub fn resume() -> Self {
        Decision {
            verdict: Verdict::Resume,
            result: None,
        }
    }

    /// Reject, with the reason. The initiator sees `Acpt = false` on the wire; the reason
    /// is reported to the local subscribers.
    pub fn reject(reason: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Reject(reason.into()),
            result: None,
        }
    }

    /// This decision with a voucher result for the initiator.
    pub fn with_result<R: VoucherResult>(mut self, result: &R) -> Self {
        self.result = Some(encode_result(result));
        self
    }

    /// Whether it accepts (every decision but a rejection).
    pub fn is_accepted(&self) -> bool {
        !matches!(self.verdict, Verdict::Reject(_))
    }

    /// The rejection reason, if it rejects.
    pub fn rejection(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Reject(reason) => Some(reason),
            _ => None,
        }
    }

    /// The answer the state machine takes.
    pub(crate) fn into_validation(self) -> Validation {
        Validation {
            verdict: self.verdict,
            result: self.result,
        }
    }
}

/// What a [`RequestValidator`] is asked about: a peer's New or Restart request.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a, V> {
    /// Whether the peer restarts an existing channel (Go's `isRestart`).
    pub is_restart: bool,
    /// The channel the request opens.
    pub channel: &'a ChannelId,
    /// The initiator, the peer that sent the request.
    pub initiator: &'a PeerId,
    /// The decoded voucher.
    pub voucher: &'a V,
    /// The DAG root.
    pub base_cid: &'a Cid,
    /// The selector.
    pub selector: &'a Node,
}

/// Decides whether this node serves a peer's push or pull (Go's `RequestValidator`).
///
/// Called on the manager's task: it must not block for long.
pub trait RequestValidator<V: Voucher>: Send + Sync + 'static {
    /// The initiator wants to push data to this node.
    fn validate_push(&self, request: &Request<'_, V>) -> Decision;

    /// The initiator wants to pull data from this node.
    fn validate_pull(&self, request: &Request<'_, V>) -> Decision;
}

/// Re-checks a running transfer on the responder (Go's `Revalidator`): vouchers sent mid-way,
/// and hooks on data flow and completion.
///
/// The hooks return `None` when this revalidator does not handle the channel (Go's
/// `handled = false`); the manager asks each registered revalidator in registration order and
/// stops at the first `Some`. Called on the manager's task: it must not block for long.
pub trait Revalidator<V: Voucher>: Send + Sync + 'static {
    /// The initiator sent a new voucher for `channel` (Go's `Revalidate`).
    fn revalidate(&self, channel: &ChannelId, voucher: &V) -> Decision;

    /// As pull responder, `bytes` of a new block were queued for sending (Go's
    /// `OnPullDataSent`; `bytes` is the block's size, not a total).
    fn on_pull_data_sent(&self, channel: &ChannelId, bytes: u64) -> Option<Decision> {
        let _ = (channel, bytes);
        None
    }

    /// As push responder, `bytes` of a new block were received (Go's `OnPushDataReceived`).
    fn on_push_data_received(&self, channel: &ChannelId, bytes: u64) -> Option<Decision> {
        let _ = (channel, bytes);
        None
    }

    /// As responder, all data went through (Go's `OnComplete`). [`Decision::pause`] asks the
    /// initiator for a final voucher before completing.
    fn on_complete(&self, channel: &ChannelId) -> Option<Decision> {
        let _ = channel;
        None
    }
}

/// Adjusts the transport for a channel whose voucher has type `V`, when the channel is created
/// or restarted (Go's `TransportConfigurer`). The transport is given as `&dyn Any`: downcast it
/// to the transport type the manager was built with.
///
/// Go's configurers typically call `UseStore` to give a channel its own block store. Here the
/// configurer registers the store with its transport and returns its name: the manager then
/// opens the channel's data exchanges with that store
/// ([`OpenChannel::store`](datatransfer_transport::OpenChannel::store)).
pub trait TransportConfigurer<V: Voucher>: Send + Sync + 'static {
    /// Configures `transport` for `channel`; returns the block store to use for it, if not the
    /// transport's default.
    fn configure(&self, channel: &ChannelId, voucher: &V, transport: &dyn Any)
    -> Option<StoreName>;
}

impl<V, F> TransportConfigurer<V> for F
where
    V: Voucher,
    F: Fn(&ChannelId, &V, &dyn Any) -> Option<StoreName> + Send + Sync + 'static,
{
    fn configure(
        &self,
        channel: &ChannelId,
        voucher: &V,
        transport: &dyn Any,
    ) -> Option<StoreName> {
        self(channel, voucher, transport)
    }
}
