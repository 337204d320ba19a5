//! The data-transfer transport over Graphsync, wire compatible with go-data-transfer v1.15.1's
//! `transport/graphsync`.
//!
//! Place in the stack: layer 2. [`GraphsyncTransport`] implements the
//! `datatransfer-transport` [`Transport`](datatransfer_transport::Transport) trait (with the
//! pause capability) on a [`graphsync::Node`], registering Go's hooks on it; [`extension`]
//! holds the extension names and Go's `ToExtensionData` / `GetTransferData`.
//!
//! Feature flags: none.
//!
//! # Example
//!
//! ```
//! use datatransfer_graphsync::extension::{self, INCOMING_REQUEST_NAMES};
//! use datatransfer_message::{Message, TransferId, new_response};
//!
//! // A responder's accept rides in a graphsync response under two names.
//! let accept = Message::from(new_response(TransferId(1), true, false, "".into(), None));
//! let ext = extension::extensions(&accept, INCOMING_REQUEST_NAMES)?;
//! assert_eq!(ext.len(), 2);
//! assert_eq!(extension::read(&ext, INCOMING_REQUEST_NAMES)?, Some(accept));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod extension;
mod transport;

pub use transport::{
    Config, GraphsyncTransport, STORE_PREFIX, StoreError, dt_peer, libp2p_peer, store_name,
};
