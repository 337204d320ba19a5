//! Block stores behind a [`Node`](super::Node): an object-safe view of any
//! [`blockstore::Blockstore`] and the registry of named stores (go-graphsync's persistence
//! options).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use blockstore::Blockstore;
use cid::Cid;
use futures::future::BoxFuture;

/// An object-safe block store: what the node reads blocks from and writes verified blocks to.
/// Every [`Blockstore`] is one.
pub trait DynBlockstore: Send + Sync + 'static {
    /// Reads a block; `Ok(None)` when the store lacks it.
    ///
    /// # Errors
    /// The store's error; the node treats it as a missing block.
    fn load_block<'a>(
        &'a self,
        cid: &'a Cid,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, blockstore::Error>>;

    /// Writes a block whose bytes hash to `cid`.
    ///
    /// # Errors
    /// The store's error; the node logs it.
    fn store_block<'a>(
        &'a self,
        cid: &'a Cid,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), blockstore::Error>>;
}

impl<B: Blockstore + 'static> DynBlockstore for B {
    fn load_block<'a>(
        &'a self,
        cid: &'a Cid,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, blockstore::Error>> {
        Box::pin(self.get(cid))
    }

    fn store_block<'a>(
        &'a self,
        cid: &'a Cid,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<(), blockstore::Error>> {
        Box::pin(self.put_keyed(cid, data))
    }
}

/// Why a store could not be registered or unregistered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreNameError {
    /// A store is already registered under this name.
    #[error("a store named `{name}` is already registered")]
    AlreadyRegistered {
        /// The name.
        name: String,
    },
    /// No store is registered under this name.
    #[error("no store named `{name}` is registered")]
    Unknown {
        /// The name.
        name: String,
    },
}

/// Named stores of one node, shared by its handles and its driver.
#[derive(Default)]
pub(super) struct Stores {
    named: Mutex<HashMap<String, Arc<dyn DynBlockstore>>>,
}

impl Stores {
    pub(super) fn register(
        &self,
        name: String,
        store: Arc<dyn DynBlockstore>,
    ) -> Result<(), StoreNameError> {
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        if named.contains_key(&name) {
            return Err(StoreNameError::AlreadyRegistered { name });
        }
        named.insert(name, store);
        Ok(())
    }

    pub(super) fn unregister(&self, name: &str) -> Result<(), StoreNameError> {
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        named
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StoreNameError::Unknown {
                name: name.to_owned(),
            })
    }

    pub(super) fn get(&self, name: &str) -> Option<Arc<dyn DynBlockstore>> {
        self.named
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Stores")
            .field("names", &named.keys().collect::<Vec<_>>())
            .finish()
    }
}
