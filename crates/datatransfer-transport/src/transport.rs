//! The [`Transport`] trait and the arguments of its commands.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use cid::Cid;
use datatransfer_message::{ChannelId, Message, PeerId};
use ipld_dagcbor::Node;

use crate::error::TransportError;
use crate::events::EventsHandler;

/// Moves the blocks of data-transfer channels between two peers (Go's `Transport` and
/// `PauseableTransport`). See the crate documentation for the semantics of each command.
///
/// The commands are `async` (return-position `impl Future + Send`), so a transport is used
/// generically (`Manager<T: Transport>`) and its futures can be awaited from a multi-threaded
/// runtime; the trait is therefore not object-safe.
pub trait Transport: Send + Sync {
    /// Sets the receiver of this transport's reports (Go: `SetEventHandler`). It must be set
    /// once, before the first command.
    ///
    /// # Errors
    /// [`TransportError::HandlerAlreadySet`] on a second call.
    fn set_events_handler(&self, handler: Arc<dyn EventsHandler>) -> Result<(), TransportError>;

    /// What this transport can do beyond the required commands.
    fn capabilities(&self) -> Capabilities;

    /// As the **data receiver**, asks `open.data_sender` for the DAG under `open.root`
    /// selected by `open.selector`, carrying `open.message` (Go: `OpenChannel`; in a pull it
    /// is the initiator's request, in a push the responder's accept). A channel that already
    /// has an exchange is replaced: the old exchange is cancelled without reports and a new
    /// one starts (a restart). Returns once the request is on its way;
    /// [`EventsHandler::on_channel_opened`] has been called by then.
    ///
    /// # Errors
    /// [`TransportError::HandlerNotSet`], [`TransportError::OpenToSelf`],
    /// [`TransportError::UnknownStore`], [`TransportError::ShutDown`],
    /// [`TransportError::QueueFull`] or [`TransportError::Backend`]. An unreachable data
    /// sender is reported through [`EventsHandler::on_request_disconnected`], not here.
    fn open_channel(
        &self,
        open: OpenChannel,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Sends `message` inside the channel's current exchange: on the data sender, in its
    /// answer stream (Go: a graphsync response extension); on the data receiver, in an update
    /// of its request. When the exchange is held (the handler answered
    /// [`RequestAnswer::Hold`](crate::RequestAnswer::Hold)), the message is the deferred
    /// answer and also decides the exchange's fate, as Go's incoming-request hook does: a
    /// response that does not accept terminates it as rejected, a paused response keeps it
    /// held until [`resume_channel`](Self::resume_channel), anything else lets data flow.
    ///
    /// # Errors
    /// [`TransportError::UnknownChannel`], [`TransportError::ShutDown`],
    /// [`TransportError::QueueFull`] or [`TransportError::Backend`].
    fn attach(
        &self,
        channel: ChannelId,
        message: Message,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Stops the channel's exchange, from either side (Go: `CloseChannel`). On the data
    /// receiver it reports [`EventsHandler::on_request_cancelled`]; the data sender reports
    /// nothing (the data-transfer Cancel message, sent on the network, tells the peer). The
    /// channel stays known until [`cleanup_channel`](Self::cleanup_channel).
    ///
    /// # Errors
    /// [`TransportError::UnknownChannel`] when the transport never saw the channel or has
    /// cleaned it up, [`TransportError::ShutDown`], [`TransportError::Backend`].
    fn close_channel(
        &self,
        channel: ChannelId,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Forgets everything about the channel without reporting (Go: `CleanupChannel`): a
    /// running exchange is dropped, later commands on it fail with
    /// [`TransportError::UnknownChannel`]. Unknown channels are ignored.
    fn cleanup_channel(&self, channel: ChannelId) -> impl Future<Output = ()> + Send;

    /// Stops every exchange without reports and refuses later commands with
    /// [`TransportError::ShutDown`] (Go: `Shutdown`).
    ///
    /// # Errors
    /// [`TransportError::Backend`] when the backend fails to stop cleanly.
    fn shutdown(&self) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Pauses the local side of the channel's exchange (Go: `PauseableTransport.PauseChannel`):
    /// a data sender stops sending, a data receiver asks the sender to stop. Only when
    /// [`Capabilities::pause`] is true; the default refuses.
    ///
    /// # Errors
    /// [`TransportError::Unsupported`] without the capability,
    /// [`TransportError::UnknownChannel`], [`TransportError::ShutDown`],
    /// [`TransportError::Backend`].
    fn pause_channel(
        &self,
        channel: ChannelId,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        async move {
            Err(TransportError::Unsupported {
                channel,
                operation: "pause",
            })
        }
    }

    /// Resumes the local side of the channel's exchange, carrying `message` to the peer
    /// inside it (Go: `PauseableTransport.ResumeChannel`; the resume Update, or the voucher
    /// result that lifts a responder pause). Also releases an exchange held by
    /// [`RequestAnswer::Hold`](crate::RequestAnswer::Hold). A resume that arrives while a
    /// handler of this side is running counts as resuming the pause (or hold) that handler is
    /// about to answer: the transport must then not apply that answer. Only when
    /// [`Capabilities::pause`] is true; the default refuses.
    ///
    /// # Errors
    /// [`TransportError::Unsupported`] without the capability,
    /// [`TransportError::UnknownChannel`], [`TransportError::NotPaused`] when the local side
    /// is not paused (the message is then not sent), [`TransportError::ShutDown`],
    /// [`TransportError::Backend`].
    fn resume_channel(
        &self,
        channel: ChannelId,
        message: Message,
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        let _ = message;
        async move {
            Err(TransportError::Unsupported {
                channel,
                operation: "resume",
            })
        }
    }
}

/// The optional capabilities of a [`Transport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// Whether [`Transport::pause_channel`] and [`Transport::resume_channel`] work (Go: the
    /// transport is a `PauseableTransport`).
    pub pause: bool,
}

impl Capabilities {
    /// No optional capability.
    pub fn none() -> Self {
        Capabilities::default()
    }

    /// These capabilities, with pause and resume on or off.
    pub fn with_pause(mut self, pause: bool) -> Self {
        self.pause = pause;
        self
    }
}

/// The arguments of [`Transport::open_channel`] (Go: `OpenChannel`'s parameters, with the
/// restart's `ChannelState` reduced to the one number the transport reads from it).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OpenChannel {
    /// The peer that holds the data (the graphsync responder).
    pub data_sender: PeerId,
    /// The channel.
    pub channel: ChannelId,
    /// The DAG root.
    pub root: Cid,
    /// The IPLD selector, as a data-model node.
    pub selector: Node,
    /// The data-transfer message that rides with the request.
    pub message: Message,
    /// On a restart, how many blocks (in traversal order) the data sender must not send
    /// again: Go's `graphsync/do-not-send-first-blocks`, set to the channel's received-blocks
    /// total. `Some(0)` is still a restart and is sent as such, as Go does.
    pub skip_blocks: Option<u64>,
    /// The block store to use for this channel instead of the transport's default (Go:
    /// `UseStore`), by the name it was registered under with the transport.
    pub store: Option<StoreName>,
}

impl OpenChannel {
    /// The arguments of a first open: no skipped blocks, the default store.
    pub fn new(
        data_sender: PeerId,
        channel: ChannelId,
        root: Cid,
        selector: Node,
        message: Message,
    ) -> Self {
        OpenChannel {
            data_sender,
            channel,
            root,
            selector,
            message,
            skip_blocks: None,
            store: None,
        }
    }

    /// These arguments, as a restart that skips the first `blocks` blocks.
    pub fn with_skip_blocks(mut self, blocks: u64) -> Self {
        self.skip_blocks = Some(blocks);
        self
    }

    /// These arguments, with a named store.
    pub fn with_store(mut self, store: StoreName) -> Self {
        self.store = Some(store);
        self
    }
}

/// The name of a block store registered with a transport, for
/// [`OpenChannel::store`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreName(String);

impl StoreName {
    /// A store name.
    pub fn new(name: impl Into<String>) -> Self {
        StoreName(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use datatransfer_message::{TransferId, update_request};

    use super::*;

    /// A transport with only the required commands, all refusing.
    struct Minimal;

    impl Transport for Minimal {
        fn set_events_handler(&self, _: Arc<dyn EventsHandler>) -> Result<(), TransportError> {
            Err(TransportError::HandlerAlreadySet)
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities::none()
        }

        async fn open_channel(&self, _: OpenChannel) -> Result<(), TransportError> {
            Err(TransportError::ShutDown)
        }

        async fn attach(&self, channel: ChannelId, _: Message) -> Result<(), TransportError> {
            Err(TransportError::UnknownChannel { channel })
        }

        async fn close_channel(&self, channel: ChannelId) -> Result<(), TransportError> {
            Err(TransportError::UnknownChannel { channel })
        }

        async fn cleanup_channel(&self, _: ChannelId) {}

        async fn shutdown(&self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    /// Polls a future that never waits.
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future waited"),
        }
    }

    fn channel() -> ChannelId {
        ChannelId::new(
            PeerId::from_bytes(vec![1]),
            PeerId::from_bytes(vec![2]),
            TransferId(9),
        )
    }

    #[test]
    fn pause_and_resume_are_refused_without_the_capability() {
        let transport = Minimal;
        assert!(!transport.capabilities().pause);
        let paused = ready(transport.pause_channel(channel()));
        assert!(
            matches!(&paused, Err(TransportError::Unsupported { channel: c, operation: "pause" })
                if *c == channel()),
            "{paused:?}"
        );
        let message = Message::from(update_request(TransferId(9), false));
        let resumed = ready(transport.resume_channel(channel(), message));
        assert!(
            matches!(
                &resumed,
                Err(TransportError::Unsupported {
                    operation: "resume",
                    ..
                })
            ),
            "{resumed:?}"
        );
        let text = resumed.map(|()| String::new()).unwrap_err().to_string();
        assert!(
            text.starts_with("transport does not support resume"),
            "{text}"
        );
    }

    #[test]
    fn open_arguments_keep_restart_and_store() {
        let root: Cid = "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb"
            .parse()
            .expect("valid cid literal");
        let message = Message::from(update_request(TransferId(9), false));
        let open = OpenChannel::new(
            PeerId::from_bytes(vec![2]),
            channel(),
            root,
            Node::Null,
            message,
        );
        assert_eq!((open.skip_blocks, open.store.clone()), (None, None));
        let restart = open
            .with_skip_blocks(0)
            .with_store(StoreName::new("deal-1"));
        assert_eq!(restart.skip_blocks, Some(0));
        assert_eq!(
            restart.store.as_ref().map(StoreName::as_str),
            Some("deal-1")
        );
        assert!(Capabilities::none().with_pause(true).pause);
    }
}
