//! Persistence of data-transfer channel state, on sled or in memory.
//!
//! Place in the stack: layer 2, above `datatransfer-message` and `datatransfer-fsm`. The
//! engine of `datatransfer-fsm` emits [`ChannelState`](datatransfer_fsm::ChannelState)
//! snapshots; the facade writes them here before sending what depends on them, and on start
//! reads them back for `Engine::restore`. This step holds the record format.
//!
//! Main types:
//! - [`record`]: the versioned DAG-CBOR record format (current version 2, version 1 still
//!   read), keyed by Go's `ChannelID.String()`.
//! - [`StoreError`] for store operations, [`RecordError`] for the record format.
//!
//! Feature flags:
//! - `test-util`: the [`testing`] module: `arb_channel_state()` and hand-built version 1
//!   records.
//!
//! # Examples
//! ```
//! use datatransfer_message::{ChannelId, PeerId, TransferId};
//!
//! let id = ChannelId::new(PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]), TransferId(7));
//! assert_eq!(datatransfer_store::record::key(&id), "2-3-7");
//! ```

mod error;
pub mod record;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use error::{RecordError, StoreError};
