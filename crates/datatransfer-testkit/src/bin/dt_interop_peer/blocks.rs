//! The peer's block store: in memory, or one file per block ([`block_files::Store`]): under
//! `--store DIR` in the durable layout (every file synced before its rename, so that a SIGKILL
//! loses no block the channel store counts as received), with the read delay of
//! `--read-delay-after N:MS`; or, for the bench commands (`bench.rs`), in go-ds-flatfs's
//! `next-to-last/2` layout, never synced: the layout and write path of the Go bench peers'
//! `FileBlockstore` (`interop/go-peer/filestore.go`). Reads run inline; puts run on the store's
//! writer threads in the durable layout (defaults of [`block_files::Config`]: a synced file
//! waits for the disk) and inline in the bench's, as Go's `FileBlockstore.Put` writes in the
//! caller's goroutine (on the bench's tmpfs a file costs less than the hand-off to a writer
//! thread and back).
//!
//! The files rather than the `blockstore` crate's sled backend: opening that needs `sled` as a
//! direct dependency, which `cargo xtask deps` allows only to `datatransfer-store`; a test peer
//! does not justify widening that rule, and one file per block is as durable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use block_files::{Config, Layout, OpenError, Store};
use blockstore::{Blockstore, InMemoryBlockstore};
use cid::CidGeneric;

/// Where the blocks are.
pub(crate) enum Backend {
    /// A fresh in-memory store.
    Memory(InMemoryBlockstore<64>),
    /// One file per block in a directory.
    Files(Store),
}

impl Backend {
    /// The durable block files of `dir` (created if missing).
    pub(crate) fn files(dir: PathBuf) -> Result<Self, OpenError> {
        Store::open(dir, Layout::Durable, Config::default()).map(Backend::Files)
    }

    /// The `next-to-last/2` bench block files of `dir` (created if missing), written inline.
    pub(crate) fn sharded(dir: PathBuf) -> Result<Self, OpenError> {
        let config = Config::default().with_inline_writes(true);
        Store::open(dir, Layout::Sharded, config).map(Backend::Files)
    }
}

/// The node's block store.
pub(crate) struct Blocks {
    backend: Backend,
    /// After this many reads, every read sleeps `delay` (`--read-delay-after N:MS`).
    delay_after: Option<(u64, Duration)>,
    reads: AtomicU64,
}

impl Blocks {
    pub(crate) fn new(backend: Backend, delay_after: Option<(u64, Duration)>) -> Self {
        Blocks {
            backend,
            delay_after,
            reads: AtomicU64::new(0),
        }
    }

    /// The store without the read delay (for `export` and imports).
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Parses `N:MS`.
    pub(crate) fn parse_delay(text: &str) -> anyhow::Result<(u64, Duration)> {
        let (n, ms) = text
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--read-delay-after {text:?} is not N:MS"))?;
        Ok((n.parse()?, Duration::from_millis(ms.parse()?)))
    }
}

impl Blockstore for Blocks {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        if let Some((after, delay)) = self.delay_after {
            let reads = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
            if reads > after {
                tokio::time::sleep(delay).await;
            }
        }
        self.backend.get(cid).await
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<bool> {
        self.backend.has(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.backend.put_keyed(cid, data).await
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        self.backend.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        self.backend.close().await
    }
}

impl Blockstore for Backend {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        match self {
            Backend::Memory(store) => store.get(cid).await,
            Backend::Files(files) => files.get(cid).await,
        }
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<bool> {
        match self {
            Backend::Memory(store) => store.has(cid).await,
            Backend::Files(files) => files.has(cid).await,
        }
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        match self {
            Backend::Memory(store) => store.put_keyed(cid, data).await,
            Backend::Files(files) => files.put_keyed(cid, data).await,
        }
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        match self {
            Backend::Memory(store) => store.remove(cid).await,
            Backend::Files(files) => files.remove(cid).await,
        }
    }

    async fn close(self) -> blockstore::Result<()> {
        match self {
            Backend::Memory(store) => store.close().await,
            Backend::Files(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use blockstore::Blockstore;

    use super::*;

    fn raw(bytes: &[u8]) -> anyhow::Result<cid::Cid> {
        Ok(dag_io::blocks::cid_of(cid::Version::V1, 0x55, 0x12, bytes)?)
    }

    #[tokio::test]
    async fn store_uses_the_durable_layout_and_bench_the_sharded_one() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let cid = raw(b"block")?;
        let key = cid.to_string();
        let durable = Backend::files(dir.path().join("durable"))?;
        let sharded = Backend::sharded(dir.path().join("sharded"))?;
        for store in [&durable, &sharded] {
            store.put_keyed(&cid, b"block").await?;
            assert_eq!(store.get(&cid).await?, Some(b"block".to_vec()));
        }
        assert_eq!(
            std::fs::read(dir.path().join("durable").join(&key))?,
            b"block"
        );
        let shard = &key[key.len() - 3..key.len() - 1];
        assert_eq!(
            std::fs::read(dir.path().join("sharded").join(shard).join(&key))?,
            b"block"
        );
        Ok(())
    }

    #[tokio::test]
    async fn reads_slow_down_after_the_first_n() -> anyhow::Result<()> {
        let cid = raw(b"x")?;
        let delay = Duration::from_millis(200);
        let blocks = Blocks::new(Backend::Memory(InMemoryBlockstore::new()), Some((1, delay)));
        blocks.put_keyed(&cid, b"x").await?;
        let started = std::time::Instant::now();
        blocks.get(&cid).await?;
        assert!(started.elapsed() < delay, "the first read is not delayed");
        blocks.get(&cid).await?;
        assert!(started.elapsed() >= delay, "the second read is delayed");
        assert_eq!(Blocks::parse_delay("3:50")?, (3, Duration::from_millis(50)));
        assert!(Blocks::parse_delay("3").is_err());
        Ok(())
    }
}
