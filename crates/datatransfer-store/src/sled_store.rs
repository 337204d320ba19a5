//! [`SledStore`]: channel snapshots in a sled database, and its [`Config`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datatransfer_fsm::ChannelState;
use datatransfer_message::ChannelId;

use crate::error::StoreError;
use crate::store::{ChannelStore, KeyCache, read_record, write_record};

/// The sled tree that holds channel records.
pub const CHANNELS_TREE: &str = "channels";

/// Settings of a [`SledStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Whether [`put`](ChannelStore::put) and [`delete`](ChannelStore::delete) flush the
    /// database to disk before they return. Default: `true`.
    ///
    /// With `true`, a write that returned survives a crash of the process or the machine, at
    /// the cost of one `fsync` per write (about a millisecond on an SSD, far more on a
    /// spinning disk or a network file system). With `false`, writes reach disk when sled's
    /// background flusher runs (every 500 ms by default) or on [`flush`](ChannelStore::flush),
    /// so a crash can lose the writes of the last moments, and a restarted node may resume a
    /// channel from an older snapshot.
    pub flush_every_write: bool,
    /// How long [`SledStore::open`] keeps retrying while another handle holds the directory's
    /// lock. Default: 2 s.
    ///
    /// A handle dropped by another task of this process (a manager's last task ending after
    /// `stop`) releases the lock moments later; a lock held by a live process or a handle that
    /// stays open still fails the open once this has passed.
    pub lock_wait: Duration,
}

impl Config {
    /// This configuration with [`Config::flush_every_write`] set.
    pub fn with_flush_every_write(self, flush_every_write: bool) -> Self {
        Config {
            flush_every_write,
            ..self
        }
    }

    /// This configuration with [`Config::lock_wait`] set.
    pub fn with_lock_wait(self, lock_wait: Duration) -> Self {
        Config { lock_wait, ..self }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flush_every_write: true,
            lock_wait: Duration::from_secs(2),
        }
    }
}

/// How often [`SledStore::open`] tries again while the directory is locked.
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// A [`ChannelStore`] in a sled database on disk.
///
/// Records live in the tree [`CHANNELS_TREE`], one per channel, keyed by the UTF-8 bytes of
/// Go's `ChannelID.String()` ([`record::key`](crate::record::key)), holding the
/// [versioned record](crate::record). Other record kinds, if a later version adds them, get
/// trees of their own. Handles are cheap to clone and share the database.
///
/// sled holds a lock on the directory: open it from one process at a time, and drop every
/// handle before opening it again.
///
/// # Examples
/// ```
/// use datatransfer_store::{ChannelStore, Config, SledStore};
///
/// let dir = tempfile::tempdir()?;
/// let store = SledStore::open(dir.path(), Config::default())?;
/// assert!(store.list()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SledStore {
    db: sled::Db,
    channels: sled::Tree,
    config: Config,
    keys: Arc<KeyCache>,
}

impl SledStore {
    /// Opens (or creates) the database in the directory `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when sled cannot open the directory (missing permissions,
    /// another process or handle holds it for longer than [`Config::lock_wait`], damaged
    /// files).
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let deadline = Instant::now() + config.lock_wait;
        let db = loop {
            match sled::open(path) {
                Err(error) if is_locked(&error) && Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                opened => break opened.map_err(backend("open"))?,
            }
        };
        let channels = db.open_tree(CHANNELS_TREE).map_err(backend("open"))?;
        Ok(SledStore {
            db,
            channels,
            config,
            keys: Arc::default(),
        })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stores raw bytes under a raw key, bypassing the record encoder (for tests of corrupt
    /// and old records). Flushes like a `put`.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn insert_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.channels.insert(key, bytes).map_err(backend("put"))?;
        self.flush_if_configured("put")
    }

    fn flush_if_configured(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.config.flush_every_write {
            self.db.flush().map_err(backend(operation))?;
        }
        Ok(())
    }
}

impl ChannelStore for SledStore {
    fn put(&self, state: &ChannelState) -> Result<(), StoreError> {
        let (key, bytes) = write_record(state, &self.keys)?;
        self.channels
            .insert(key.as_bytes(), bytes)
            .map_err(backend("put"))?;
        self.flush_if_configured("put")
    }

    fn get(&self, channel: &ChannelId) -> Result<Option<ChannelState>, StoreError> {
        let key = crate::record::key(channel);
        let bytes = self.channels.get(key.as_bytes()).map_err(backend("get"))?;
        bytes
            .map(|bytes| read_record(key.as_bytes(), &bytes))
            .transpose()
    }

    fn delete(&self, channel: &ChannelId) -> Result<bool, StoreError> {
        let key = crate::record::key(channel);
        self.keys.forget(channel);
        let removed = self
            .channels
            .remove(key.as_bytes())
            .map_err(backend("delete"))?;
        self.flush_if_configured("delete")?;
        Ok(removed.is_some())
    }

    fn list(&self) -> Result<Vec<ChannelState>, StoreError> {
        self.channels
            .iter()
            .map(|entry| {
                let (key, bytes) = entry.map_err(backend("list"))?;
                read_record(&key, &bytes)
            })
            .collect()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(backend("flush"))
    }
}

/// Maps a sled error to [`StoreError::Backend`], boxing it.
fn backend(operation: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |error| StoreError::Backend {
        operation,
        source: Box::new(error),
    }
}

/// Whether sled failed because another handle holds the directory's lock. sled 0.34 reports
/// it as an `Other` I/O error whose text names the lock (the `WouldBlock` of `flock` is only
/// in that text).
fn is_locked(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}
