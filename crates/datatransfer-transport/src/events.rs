//! [`EventsHandler`]: what a transport reports about its data channels, and the typed answers
//! the handler gives back (Go's `EventsHandler`).

use cid::Cid;
use datatransfer_message::{ChannelId, Message, Request, Response};

use crate::error::{DataError, HandlerError};

/// One block of a data channel, as the progress callbacks report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    /// The block's CID (Go's `ipld.Link`).
    pub link: Cid,
    /// The block's size in bytes.
    pub size: u64,
    /// The block's position in the selector traversal's load order, starting at 1. Within
    /// one exchange it strictly increases from one callback of a kind to the next.
    pub index: u64,
    /// Whether the block crossed the wire in this exchange. `false` for blocks the receiver
    /// did not get from the peer: the first blocks skipped on a restart
    /// ([`OpenChannel::skip_blocks`](crate::OpenChannel::skip_blocks)) and repeats of a
    /// block already sent in the same exchange. Senders report only unique blocks, as Go's
    /// graphsync hooks ignore blocks with no bytes on the wire.
    pub unique: bool,
    /// Only in [`EventsHandler::on_data_sent`]: the sender did not put the block on the wire
    /// in this exchange because a restart's skip count says the receiver holds it, and the
    /// transport never reported it sent before (its write was not confirmed when the
    /// connection went, or the sender's process started again). A late confirmation: the
    /// handler counts it if its index is new and otherwise ignores it (no `DataSent`: nothing
    /// was sent). `false` from [`BlockInfo::new`]; set with [`BlockInfo::withheld`].
    pub withheld: bool,
}

impl BlockInfo {
    /// A block record.
    pub fn new(link: Cid, size: u64, index: u64, unique: bool) -> Self {
        BlockInfo {
            link,
            size,
            index,
            unique,
            withheld: false,
        }
    }

    /// This record marked [`withheld`](Self::withheld).
    pub fn withheld(mut self) -> Self {
        self.withheld = true;
        self
    }
}

/// Whether data keeps flowing after a callback (Go: `nil` or `ErrPause`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Keep going (Go: `nil`).
    #[default]
    Continue,
    /// Pause the local side of the exchange until
    /// [`Transport::resume_channel`](crate::Transport::resume_channel) (Go: `ErrPause`).
    Pause,
}

/// The answer to [`EventsHandler::on_data_queued`] (Go: `(Message, error)`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueuedAnswer {
    /// A message to send to the data receiver inside the exchange, ahead of the block (Go
    /// attaches it under the outgoing-block extension), such as a payment request.
    pub message: Option<Message>,
    /// Whether to pause sending after this block.
    pub flow: Flow,
}

impl QueuedAnswer {
    /// Send the block, no message, keep going.
    pub fn proceed() -> Self {
        QueuedAnswer::default()
    }

    /// Send the block, then pause the exchange.
    pub fn pause() -> Self {
        QueuedAnswer {
            message: None,
            flow: Flow::Pause,
        }
    }

    /// This answer, with a message sent along with the block.
    pub fn with_message(mut self, message: Message) -> Self {
        self.message = Some(message);
        self
    }
}

/// The answer to [`EventsHandler::on_request_received`] (Go: `(Response, error)` where the
/// error is `nil`, `ErrPause` or a rejection).
#[derive(Clone, Debug, PartialEq)]
pub enum RequestAnswer {
    /// Go on: send the optional reply inside the exchange and let data flow (Go: `nil`).
    Proceed(Option<Response>),
    /// Send the optional reply and hold the exchange paused (Go: `ErrPause`). On an exchange
    /// that was just opened, this is how a handler defers its decision (asynchronous
    /// validation): no data flows until the handler's owner calls
    /// [`Transport::attach`](crate::Transport::attach) with the answer,
    /// [`Transport::resume_channel`](crate::Transport::resume_channel) or
    /// [`Transport::close_channel`](crate::Transport::close_channel). On a running exchange
    /// it pauses the local side.
    Hold(Option<Response>),
    /// Send the optional reply and terminate the exchange as rejected (Go: an error other
    /// than `ErrPause`; graphsync status 32). The data receiver's side completes with
    /// [`DataError::Rejected`].
    Reject(Option<Response>),
}

/// The receiver of a transport's reports about its data channels (Go's `EventsHandler`).
///
/// # Calling contract
/// - Methods are **synchronous** and run on the transport's own task or thread (Go's
///   graphsync hooks are synchronous too). **Implementations must not block and must not
///   await the transport**: record the event (for example, push it into a bounded queue with
///   `try_send`) and return. A handler that needs time to decide answers
///   [`RequestAnswer::Hold`] now and acts later through the [`Transport`](crate::Transport)
///   commands.
/// - For one channel, calls come one at a time, in the order the events happened; calls for
///   different channels may interleave, and may come from several threads.
/// - `index` in [`BlockInfo`] strictly increases per channel and per kind (received, queued,
///   sent) within one exchange; after a reopen (restart) it starts again from the traversal's
///   start.
/// - A transport calls nothing for a channel after `on_channel_completed` or
///   `on_request_cancelled` for it, until it is opened again.
///
/// The manager owns the channel state: the transport knows nothing about channel status, and
/// the handler turns these calls into state-machine inputs.
pub trait EventsHandler: Send + Sync {
    /// The data receiver sent its request for data (Go: `OnChannelOpened`; graphsync's
    /// outgoing-request hook). An error makes the transport cancel the exchange.
    ///
    /// # Errors
    /// A [`HandlerError`] when the channel is unknown or refused.
    fn on_channel_opened(&self, channel: &ChannelId) -> Result<(), HandlerError>;

    /// A data-transfer response arrived inside the exchange (Go: `OnResponseReceived`): on
    /// the data receiver, the answer to its pull request or a voucher result; on the data
    /// sender, the push responder's accept that opened the exchange. [`Flow::Pause`] pauses
    /// the local side; an error terminates the exchange.
    ///
    /// # Errors
    /// A [`HandlerError`] to terminate the exchange.
    fn on_response_received(
        &self,
        channel: &ChannelId,
        response: Response,
    ) -> Result<Flow, HandlerError>;

    /// A data-transfer request arrived inside the exchange (Go: `OnRequestReceived`): on the
    /// data sender, a pull or pull-restart request opening it, or the initiator's updates;
    /// on a push's data receiver, the initiator's updates. The answer decides what happens to
    /// the exchange; its reply travels back inside the exchange.
    fn on_request_received(&self, channel: &ChannelId, request: Request) -> RequestAnswer;

    /// The data receiver got a block (Go: `OnDataReceived`). [`Flow::Pause`] pauses the local
    /// side; an error terminates the exchange.
    ///
    /// # Errors
    /// A [`HandlerError`] to terminate the exchange.
    fn on_data_received(&self, channel: &ChannelId, block: BlockInfo)
    -> Result<Flow, HandlerError>;

    /// The data sender is about to send a block (Go: `OnDataQueued`). The answer may carry a
    /// message that goes out with the block and may pause the exchange after it; an error
    /// terminates the exchange and the block is not sent.
    ///
    /// # Errors
    /// A [`HandlerError`] to terminate the exchange.
    fn on_data_queued(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<QueuedAnswer, HandlerError>;

    /// The data sender sent a block (Go: `OnDataSent`).
    fn on_data_sent(&self, channel: &ChannelId, block: BlockInfo);

    /// The data sender queued a data receiver's request for a new channel (Go:
    /// `OnTransferQueued`; graphsync's incoming-request-queued hook, which reports only New
    /// messages, not restarts). It comes before
    /// [`on_request_received`](Self::on_request_received) or
    /// [`on_response_received`](Self::on_response_received) for the opening message.
    fn on_transfer_queued(&self, channel: &ChannelId);

    /// The local side's part of the exchange finished (Go: `OnChannelCompleted`): `Ok` when
    /// every block the selector reaches went through, else why not. It is the last call for
    /// the exchange.
    fn on_channel_completed(&self, channel: &ChannelId, result: Result<(), DataError>);

    /// The data receiver's request was cancelled locally (`close_channel`; Go:
    /// `OnRequestCancelled`). It is the last call for the exchange; no completion follows.
    fn on_request_cancelled(&self, channel: &ChannelId, error: DataError);

    /// The data receiver's request could not be sent to the data sender (Go:
    /// `OnRequestDisconnected`).
    fn on_request_disconnected(&self, channel: &ChannelId, error: DataError);

    /// Sending data failed on the network (Go: `OnSendDataError`).
    fn on_send_data_error(&self, channel: &ChannelId, error: DataError);

    /// Receiving data failed on the network (Go: `OnReceiveDataError`), reported for every
    /// channel with the peer concerned.
    fn on_receive_data_error(&self, channel: &ChannelId, error: DataError);
}
