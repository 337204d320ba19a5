//! The [`ChannelStore`] trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datatransfer_fsm::ChannelState;
use datatransfer_message::ChannelId;

use crate::error::StoreError;

/// Where a node keeps the snapshots of its channels.
///
/// Synchronous: the facade calls it from a blocking context. Methods take `&self`; an
/// implementation that is shared between threads synchronises inside. A channel is identified
/// by its [`ChannelId`]; [`put`](ChannelStore::put) replaces any earlier snapshot of the same
/// channel.
pub trait ChannelStore {
    /// Stores `state`, replacing the channel's earlier snapshot. For a durable store, the
    /// record is on disk when this returns (see [`Config`](crate::Config)).
    ///
    /// # Errors
    /// [`StoreError::Unencodable`] when the state cannot be written as a record;
    /// [`StoreError::Backend`] when the backend fails.
    fn put(&self, state: &ChannelState) -> Result<(), StoreError>;

    /// The channel's snapshot, or `None` when none is stored.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] or [`StoreError::UnsupportedVersion`] when the stored record
    /// cannot be read; [`StoreError::Backend`] when the backend fails.
    fn get(&self, channel: &ChannelId) -> Result<Option<ChannelState>, StoreError>;

    /// Removes the channel's snapshot; true if there was one.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the backend fails.
    fn delete(&self, channel: &ChannelId) -> Result<bool, StoreError>;

    /// Every stored snapshot, terminal channels included, in key order.
    ///
    /// # Errors
    /// As [`get`](ChannelStore::get), for the first record that cannot be read.
    fn list(&self) -> Result<Vec<ChannelState>, StoreError>;

    /// Makes every earlier write durable (a no-op for a store that is not durable).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the backend fails.
    fn flush(&self) -> Result<(), StoreError>;
}

/// Decodes the record stored under `key`, checking that it belongs there.
pub(crate) fn read_record(key: &[u8], bytes: &[u8]) -> Result<ChannelState, StoreError> {
    let key_text = || String::from_utf8_lossy(key).into_owned();
    match crate::record::decode(bytes) {
        Ok(state) => {
            let expected = crate::record::key(&state.channel_id);
            if expected.as_bytes() == key {
                Ok(state)
            } else {
                Err(StoreError::Corrupt {
                    key: key_text(),
                    source: crate::error::RecordError::KeyMismatch { expected },
                })
            }
        }
        Err(crate::error::RecordError::UnsupportedVersion { found }) => {
            Err(StoreError::UnsupportedVersion {
                key: key_text(),
                found,
            })
        }
        Err(source) => Err(StoreError::Corrupt {
            key: key_text(),
            source,
        }),
    }
}

/// Encodes `state` as a record, with its key.
pub(crate) fn write_record(
    state: &ChannelState,
    keys: &KeyCache,
) -> Result<(Arc<str>, Vec<u8>), StoreError> {
    let key = keys.key(&state.channel_id);
    match crate::record::encode(state) {
        Ok(bytes) => Ok((key, bytes)),
        Err(source) => Err(StoreError::Unencodable {
            key: key.to_string(),
            source,
        }),
    }
}

/// How many channels' keys a [`KeyCache`] holds before it starts afresh.
const KEY_CACHE_LIMIT: usize = 1024;

/// The record keys of the channels written lately. A key base58-encodes two peer ids, and a
/// busy channel is written once or twice per block, so its key is formatted once and reused.
/// Bounded: at [`KEY_CACHE_LIMIT`] channels the cache is emptied.
#[derive(Debug, Default)]
pub(crate) struct KeyCache(Mutex<HashMap<ChannelId, Arc<str>>>);

impl KeyCache {
    /// The record key of `channel`.
    pub(crate) fn key(&self, channel: &ChannelId) -> Arc<str> {
        let mut keys = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = keys.get(channel) {
            return Arc::clone(key);
        }
        if keys.len() >= KEY_CACHE_LIMIT {
            keys.clear();
        }
        let key: Arc<str> = crate::record::key(channel).into();
        keys.insert(channel.clone(), Arc::clone(&key));
        key
    }

    /// Drops `channel`'s key (its record is deleted).
    pub(crate) fn forget(&self, channel: &ChannelId) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(channel);
    }
}

#[cfg(test)]
mod tests {
    use datatransfer_message::{PeerId, TransferId};

    use super::*;

    fn channel(id: u64) -> ChannelId {
        ChannelId::new(
            PeerId::from_bytes(vec![1, 2]),
            PeerId::from_bytes(vec![3]),
            TransferId(id),
        )
    }

    #[test]
    fn cached_keys_are_the_record_keys_and_the_cache_stays_bounded() {
        let cache = KeyCache::default();
        for id in 0..(KEY_CACHE_LIMIT as u64 * 2 + 3) {
            let key = cache.key(&channel(id));
            assert_eq!(&*key, crate::record::key(&channel(id)));
            assert_eq!(
                cache.key(&channel(id)),
                key,
                "a second lookup gives the same key"
            );
            let cached = cache.0.lock().expect("not poisoned").len();
            assert!(cached <= KEY_CACHE_LIMIT, "{cached} keys cached");
        }
        let last = channel(KEY_CACHE_LIMIT as u64 * 2 + 2);
        assert!(cache.0.lock().expect("not poisoned").contains_key(&last));
        cache.forget(&last);
        assert!(!cache.0.lock().expect("not poisoned").contains_key(&last));
    }
}
