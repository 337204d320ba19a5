//! [`MemStore`]: channel snapshots in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use datatransfer_fsm::ChannelState;
use datatransfer_message::ChannelId;

use crate::error::StoreError;
use crate::store::{ChannelStore, KeyCache, read_record, write_record};

/// A [`ChannelStore`] in memory, for tests and nodes that need no restart.
///
/// It keeps the encoded records (the same bytes [`SledStore`](crate::SledStore) writes) in a
/// map ordered by key, so reads go through the record decoder just as on disk. Clones share
/// the same map: a clone is a second handle to the same store, which lets a test "reopen" it.
///
/// # Examples
/// ```
/// use datatransfer_store::{ChannelStore, MemStore};
/// # use datatransfer_message::{ChannelId, PeerId, TransferId};
/// # let id = ChannelId::new(PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]), TransferId(3));
///
/// let store = MemStore::new();
/// assert_eq!(store.get(&id)?, None);
/// assert!(store.list()?.is_empty());
/// # Ok::<(), datatransfer_store::StoreError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    records: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
    keys: Arc<KeyCache>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    /// Stores raw bytes under a raw key, bypassing the record encoder (for tests of corrupt
    /// and old records).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn insert_raw(&self, key: &[u8], bytes: &[u8]) {
        self.lock().insert(key.to_vec(), bytes.to_vec());
    }

    /// The map. A poisoned lock is taken over: every operation leaves the map consistent, so a
    /// panic elsewhere while holding it cannot leave a half-written entry.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ChannelStore for MemStore {
    fn put(&self, state: &ChannelState) -> Result<(), StoreError> {
        let (key, bytes) = write_record(state, &self.keys)?;
        self.lock().insert(key.as_bytes().to_vec(), bytes);
        Ok(())
    }

    fn get(&self, channel: &ChannelId) -> Result<Option<ChannelState>, StoreError> {
        let key = crate::record::key(channel);
        let bytes = self.lock().get(key.as_bytes()).cloned();
        bytes
            .map(|bytes| read_record(key.as_bytes(), &bytes))
            .transpose()
    }

    fn delete(&self, channel: &ChannelId) -> Result<bool, StoreError> {
        let key = crate::record::key(channel);
        self.keys.forget(channel);
        Ok(self.lock().remove(key.as_bytes()).is_some())
    }

    fn list(&self) -> Result<Vec<ChannelState>, StoreError> {
        let records = self.lock().clone();
        records
            .iter()
            .map(|(key, bytes)| read_record(key, bytes))
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
