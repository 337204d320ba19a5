//! Persistence of data-transfer channel state, on sled or in memory.
//!
//! Place in the stack: layer 2, above `datatransfer-message` and `datatransfer-fsm`. The
//! engine of `datatransfer-fsm` emits [`ChannelState`](datatransfer_fsm::ChannelState)
//! snapshots; the facade writes them here before sending what depends on them, and on start
//! reads them back with [`ChannelStore::list`] for `Engine::restore`. It is the only crate
//! that knows sled.
//!
//! Main types:
//! - [`ChannelStore`]: the synchronous store interface (`put`, `get`, `delete`, `list`,
//!   `flush`), keyed by [`ChannelId`](datatransfer_message::ChannelId).
//! - [`MemStore`]: in memory. [`SledStore`] with its [`Config`]: on disk, each `put` flushed
//!   before it returns unless configured otherwise.
//! - [`record`]: the versioned DAG-CBOR record format (current version 3, with the channel's
//!   stages; versions 1 and 2 still read), keyed by Go's `ChannelID.String()`.
//! - [`StoreError`] for store operations, [`RecordError`] for the record format.
//!
//! Feature flags:
//! - `test-util`: the [`testing`] module: `arb_channel_state()`, hand-built version 1 and 2
//!   records, raw record access and `suite`, the behaviour every `ChannelStore` must have.
//!
//! # Examples
//! ```
//! use datatransfer_fsm::{ChannelStages, ChannelState, ChannelStatus, UnixNanos};
//! use datatransfer_message::{ChannelId, PeerId, TransferId};
//! use datatransfer_store::{ChannelStore, MemStore};
//! use ipld_dagcbor::Node;
//!
//! let (me, other) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
//! let id = ChannelId::new(me.clone(), other.clone(), TransferId(1));
//! let mut state = ChannelState {
//!     self_peer: me.clone(),
//!     channel_id: id.clone(),
//!     base_cid: "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?,
//!     selector: Node::empty_map(),
//!     sender: other,
//!     recipient: me,
//!     total_size: 0,
//!     status: ChannelStatus::Ongoing,
//!     queued: 0,
//!     sent: 0,
//!     received: 4096,
//!     message: String::new(),
//!     vouchers: Vec::new(),
//!     voucher_results: Vec::new(),
//!     received_blocks_total: 2,
//!     queued_blocks_total: 0,
//!     sent_blocks_total: 0,
//!     stages: ChannelStages::default(),
//! };
//! state.stages.add_log("Ongoing", "received data", UnixNanos(1_700_000_000_000_000_000), 32, 64);
//!
//! let store = MemStore::new();
//! store.put(&state)?;
//! assert_eq!(store.get(&id)?, Some(state));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod mem;
pub mod record;
mod sled_store;
mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use error::{RecordError, StoreError};
pub use mem::MemStore;
pub use sled_store::{CHANNELS_TREE, Config, SledStore};
pub use store::ChannelStore;
