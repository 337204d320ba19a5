//! Hooks and listeners registered at runtime on a [`Node`](super::Node), as go-graphsync has
//! them (spec §7.9, §8.6).
//!
//! Hooks may change what goes on the wire through the actions object they receive; listeners
//! only observe. Every registered hook of a kind runs, in registration order, for each
//! occasion; once one terminates the request, the later ones are skipped (Go's rule).
//!
//! All hooks and listeners run synchronously inside the node's driver task. They MUST NOT
//! block: no locks held for long, no blocking I/O, no sleeping, no waiting on the node itself
//! (a hook that awaits a [`Node`](super::Node) command deadlocks the driver). Hand slow work to
//! another task and answer later through a [`Node`](super::Node) command (for example pause in
//! the hook, then `unpause_response` from the other task).
//!
//! A hook that panics counts as terminating its request (the reason reads "a hook panicked");
//! a listener that panics is only logged. Either way the driver goes on.
//!
//! A hook that holds a clone of its own [`Node`](super::Node) keeps the node's driver running
//! until the hook is unregistered (the driver stops when the last handle is dropped).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use cid::Cid;
use ipld_dagcbor::{Node as Ipld, Text};
use ipld_selector::{Path, Selector};
use libp2p::PeerId;

use crate::extension::Extensions;
use crate::message::{Request, RequestId, ResponseStatus};
use crate::protocol::ProtocolError;
use crate::responder::BlockRecord;

/// Removes a registered hook or listener. Dropping the handle keeps the hook registered (as
/// ignoring go-graphsync's unregister function does); call [`HookHandle::unregister`] to remove
/// it.
#[must_use = "dropping the handle keeps the hook registered; keep it to unregister later"]
pub struct HookHandle {
    remove: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl HookHandle {
    /// Removes the hook. Occasions the driver is already handling may still call it once.
    pub fn unregister(mut self) {
        if let Some(remove) = self.remove.take() {
            remove();
        }
    }
}

impl fmt::Debug for HookHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookHandle")
    }
}

/// The incoming-request hook's view of a request's decision (go-graphsync's
/// `IncomingRequestHookActions`).
#[derive(Debug, Default)]
pub struct IncomingRequestActions {
    default_validated: bool,
    pub(super) validated: bool,
    pub(super) pause: bool,
    pub(super) terminated: Option<String>,
    pub(super) extensions: Extensions,
    pub(super) store: Option<String>,
    pub(super) link_budget: Option<u64>,
}

impl IncomingRequestActions {
    pub(super) fn new(default_validated: bool) -> Self {
        IncomingRequestActions {
            default_validated,
            ..IncomingRequestActions::default()
        }
    }

    /// Whether go-graphsync's default validator validates the request (every ExploreRecursive
    /// limited to a depth of at most 100). It still counts when no hook validates.
    pub fn default_validated(&self) -> bool {
        self.default_validated
    }

    /// Validates the request.
    pub fn validate(&mut self) {
        self.validated = true;
    }

    /// Pauses the response before its traversal starts (15 is sent).
    pub fn pause(&mut self) {
        self.pause = true;
    }

    /// Terminates the request with an error (32 is sent); later hooks are skipped.
    pub fn terminate(&mut self, reason: impl Into<String>) {
        self.terminated = Some(reason.into());
    }

    /// Adds an extension to the response (a later value for the same name wins).
    pub fn add_extension(&mut self, name: impl Into<Text>, value: Option<Ipld>) {
        self.extensions.insert(name, value);
    }

    /// Serves the request from the store registered under `name` (go-graphsync's
    /// `UsePersistenceOption`). An unknown name terminates the request (32).
    pub fn use_store(&mut self, name: impl Into<String>) {
        self.store = Some(name.into());
    }

    /// Sets the request's link budget (the root counts, Go style).
    pub fn set_link_budget(&mut self, budget: u64) {
        self.link_budget = Some(budget);
    }
}

/// What an outgoing-request hook sees: the request before it gets its id.
#[derive(Debug)]
#[non_exhaustive]
pub struct OutgoingRequest<'a> {
    /// The root asked for.
    pub root: &'a Cid,
    /// The selector.
    pub selector: &'a Selector,
    /// The extensions the caller gave.
    pub extensions: &'a Extensions,
}

/// The outgoing-request hook's actions.
#[derive(Debug, Default)]
pub struct OutgoingRequestActions {
    pub(super) store: Option<String>,
}

impl OutgoingRequestActions {
    /// Stores (and loads local) blocks of this request in the store registered under `name`;
    /// the request then carries `graphsync/dedup-by-key` = `name`, as go-graphsync does. An
    /// unknown name fails the request with [`NodeError::UnknownStore`](super::NodeError).
    pub fn use_store(&mut self, name: impl Into<String>) {
        self.store = Some(name.into());
    }
}

/// A response entry as the incoming-response hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingResponse<'a> {
    /// The request it answers.
    pub request: RequestId,
    /// Its status.
    pub status: ResponseStatus,
    /// Its extensions.
    pub extensions: &'a Extensions,
}

/// The incoming-response hook's actions.
#[derive(Debug, Default)]
pub struct IncomingResponseActions {
    pub(super) extensions: Extensions,
    pub(super) terminated: Option<String>,
}

impl IncomingResponseActions {
    /// Sends an extension to the responder at once, in an Update request.
    pub fn add_extension(&mut self, name: impl Into<Text>, value: Option<Ipld>) {
        self.extensions.insert(name, value);
    }

    /// Fails the request (a Cancel is sent); later hooks are skipped.
    pub fn terminate(&mut self, reason: impl Into<String>) {
        self.terminated = Some(reason.into());
    }
}

/// A verified block as the incoming-block hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct IncomingBlock<'a> {
    /// The request.
    pub request: RequestId,
    /// The block's CID.
    pub cid: Cid,
    /// The path of its link.
    pub path: &'a Path,
    /// Its size.
    pub size: u64,
    /// The bytes received over the network for it (0 when it came from the local store).
    pub wire_size: u64,
    /// The load's position among this request's loads, from 0 (the root).
    pub index: u64,
}

/// The incoming-block hook's actions.
#[derive(Debug, Default)]
pub struct IncomingBlockActions {
    pub(super) extensions: Extensions,
    pub(super) pause: bool,
    pub(super) terminated: Option<String>,
}

impl IncomingBlockActions {
    /// Sends an extension to the responder at once, in an Update request.
    pub fn add_extension(&mut self, name: impl Into<Text>, value: Option<Ipld>) {
        self.extensions.insert(name, value);
    }

    /// Pauses the request after this block (a Cancel goes to the responder, spec §9.2).
    pub fn pause(&mut self) {
        self.pause = true;
    }

    /// Fails the request (a Cancel is sent); later hooks are skipped.
    pub fn terminate(&mut self, reason: impl Into<String>) {
        self.terminated = Some(reason.into());
    }
}

/// The outgoing-block hook's actions.
#[derive(Debug, Default)]
pub struct OutgoingBlockActions {
    pub(super) extensions: Extensions,
    pub(super) pause: bool,
    pub(super) terminated: Option<String>,
}

impl OutgoingBlockActions {
    /// Adds an extension to this block's transaction (the message carrying the block).
    pub fn add_extension(&mut self, name: impl Into<Text>, value: Option<Ipld>) {
        self.extensions.insert(name, value);
    }

    /// Pauses the response after this block (15 joins its transaction).
    pub fn pause(&mut self) {
        self.pause = true;
    }

    /// Terminates the response (32 follows this block); later hooks are skipped.
    pub fn terminate(&mut self, reason: impl Into<String>) {
        self.terminated = Some(reason.into());
    }
}

/// The request-updated hook's actions.
#[derive(Debug, Default)]
pub struct RequestUpdatedActions {
    pub(super) extensions: Extensions,
    pub(super) unpause: bool,
    pub(super) terminated: Option<String>,
}

impl RequestUpdatedActions {
    /// Adds an extension to the response (sent with the next transaction, or as a 14
    /// response while paused).
    pub fn add_extension(&mut self, name: impl Into<Text>, value: Option<Ipld>) {
        self.extensions.insert(name, value);
    }

    /// Resumes the response if it is paused (no effect otherwise).
    pub fn unpause(&mut self) {
        self.unpause = true;
    }

    /// Terminates the response (32); later hooks are skipped.
    pub fn terminate(&mut self, reason: impl Into<String>) {
        self.terminated = Some(reason.into());
    }
}

/// A network failure reported to network-error listeners.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NetworkFailure {
    /// Responder side: a message of this response could not be written; the response was
    /// dropped without a terminal status.
    ResponseNotSent {
        /// The request.
        request: RequestId,
    },
    /// Requester side: a message carrying this New request could not be written (the peer
    /// could not be reached); the request ended with
    /// [`NodeError::Unreachable`](super::NodeError::Unreachable).
    RequestNotSent {
        /// The request.
        request: RequestId,
    },
    /// Requester side: the last connection to the responder of this request closed. The
    /// request stays alive.
    ResponderDisconnected {
        /// The request.
        request: RequestId,
    },
    /// An inbound stream from the peer failed to read or decode and was dropped.
    Receive {
        /// The cause.
        error: Arc<ProtocolError>,
    },
}

/// The function type of an incoming-request hook.
pub(super) type IncomingRequestFn =
    dyn Fn(&PeerId, &Request, &mut IncomingRequestActions) + Send + Sync;
/// The function type of an outgoing-request hook.
pub(super) type OutgoingRequestFn =
    dyn Fn(&PeerId, &OutgoingRequest<'_>, &mut OutgoingRequestActions) + Send + Sync;
/// The function type of an incoming-response hook.
pub(super) type IncomingResponseFn =
    dyn Fn(&PeerId, &IncomingResponse<'_>, &mut IncomingResponseActions) + Send + Sync;
/// The function type of an incoming-block hook.
pub(super) type IncomingBlockFn =
    dyn Fn(&PeerId, &IncomingBlock<'_>, &mut IncomingBlockActions) + Send + Sync;
/// The function type of an outgoing-block hook.
pub(super) type OutgoingBlockFn =
    dyn Fn(&PeerId, &Request, &BlockRecord, &mut OutgoingBlockActions) + Send + Sync;
/// The function type of a request-updated hook: the original request and one update's
/// extensions.
pub(super) type RequestUpdatedFn =
    dyn Fn(&PeerId, &Request, &Extensions, &mut RequestUpdatedActions) + Send + Sync;
/// The function type of a completed-response listener.
pub(super) type CompletedFn = dyn Fn(&PeerId, RequestId, ResponseStatus) + Send + Sync;
/// The function type of a requestor-cancelled listener.
pub(super) type CancelledFn = dyn Fn(&PeerId, RequestId) + Send + Sync;
/// The function type of a block-sent listener.
pub(super) type BlockSentFn = dyn Fn(&PeerId, RequestId, &BlockRecord) + Send + Sync;
/// The function type of a network-error listener.
pub(super) type NetworkErrorFn = dyn Fn(&PeerId, &NetworkFailure) + Send + Sync;
/// The function type of an incoming-request-queued listener.
pub(super) type QueuedFn = dyn Fn(&PeerId, &Request) + Send + Sync;

/// Every hook and listener of one node. Shared by the [`Node`](super::Node) handles (which
/// register) and the driver (which calls).
#[derive(Default)]
pub(super) struct Registry {
    pub(super) incoming_request: Arc<HookList<IncomingRequestFn>>,
    pub(super) outgoing_request: Arc<HookList<OutgoingRequestFn>>,
    pub(super) incoming_response: Arc<HookList<IncomingResponseFn>>,
    pub(super) incoming_block: Arc<HookList<IncomingBlockFn>>,
    pub(super) outgoing_block: Arc<HookList<OutgoingBlockFn>>,
    pub(super) request_updated: Arc<HookList<RequestUpdatedFn>>,
    pub(super) completed: Arc<HookList<CompletedFn>>,
    pub(super) requestor_cancelled: Arc<HookList<CancelledFn>>,
    pub(super) block_sent: Arc<HookList<BlockSentFn>>,
    pub(super) network_error: Arc<HookList<NetworkErrorFn>>,
    pub(super) request_queued: Arc<HookList<QueuedFn>>,
}

/// The registered functions of one kind with their registration numbers.
type Entries<F> = Arc<Vec<(u64, Arc<F>)>>;

/// Registered functions of one kind, in registration order. Copy on write: the driver takes
/// a snapshot (one reference count) per occasion, registration replaces the list.
pub(super) struct HookList<F: ?Sized> {
    next: AtomicU64,
    entries: Mutex<Entries<F>>,
}

impl<F: ?Sized> Default for HookList<F> {
    fn default() -> Self {
        HookList {
            next: AtomicU64::new(0),
            entries: Mutex::new(Arc::new(Vec::new())),
        }
    }
}

impl<F: ?Sized + Send + Sync + 'static> HookList<F> {
    /// The functions registered now, in order.
    pub(super) fn snapshot(&self) -> Entries<F> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Registers `hook` after the others.
    pub(super) fn add(self: &Arc<Self>, hook: Arc<F>) -> HookHandle {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let mut list = Vec::clone(&entries);
            list.push((id, hook));
            *entries = Arc::new(list);
        }
        let list: Weak<Self> = Arc::downgrade(self);
        HookHandle {
            remove: Some(Box::new(move || {
                if let Some(list) = list.upgrade() {
                    list.remove(id);
                }
            })),
        }
    }

    fn remove(&self, id: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let list: Vec<(u64, Arc<F>)> = entries
            .iter()
            .filter(|(entry, _)| *entry != id)
            .cloned()
            .collect();
        *entries = Arc::new(list);
    }
}
