//! The [`ChannelStore`] trait.

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
pub(crate) fn write_record(state: &ChannelState) -> Result<(String, Vec<u8>), StoreError> {
    let key = crate::record::key(&state.channel_id);
    match crate::record::encode(state) {
        Ok(bytes) => Ok((key, bytes)),
        Err(source) => Err(StoreError::Unencodable { key, source }),
    }
}
