//! The peer's block store: in memory, or one file per block under `--store DIR` (written to a
//! temporary file, synced, then renamed, so that a SIGKILL loses no block the channel store
//! counts as received), with the read delay of `--read-delay-after N:MS`; or, for the bench
//! commands (`bench.rs`), one file per block in go-ds-flatfs's `next-to-last/2` layout, never
//! synced: the layout and write path of the Go bench peers' `FileBlockstore`
//! (`interop/go-peer/filestore.go`).
//!
//! The files rather than the `blockstore` crate's sled backend: opening that needs `sled` as a
//! direct dependency, which `cargo xtask deps` allows only to `datatransfer-store`; a test peer
//! does not justify widening that rule, and one file per block is as durable.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::CidGeneric;

/// Where the blocks are.
pub(crate) enum Backend {
    /// A fresh in-memory store.
    Memory(InMemoryBlockstore<64>),
    /// One file per block in a directory.
    Files(FileBlocks),
}

/// How [`FileBlocks`] names and writes its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `DIR/<cid>`, every write synced before its rename (`--store`: a SIGKILL loses nothing
    /// counted as received).
    Durable,
    /// `DIR/<next-to-last two characters of the cid>/<cid>` (go-ds-flatfs's
    /// `next-to-last/2`), never synced, and a block already there is not written again: the
    /// store of `cargo xtask bench`, kept exactly as the Go bench peers keep theirs.
    Sharded,
}

/// One file per block, named by the CID's string form; written to a temporary name and
/// renamed; file operations on tokio's blocking threads.
pub(crate) struct FileBlocks {
    dir: PathBuf,
    layout: Layout,
    /// Distinguishes the temporary names of concurrent writes.
    next_temp: AtomicU64,
}

impl Backend {
    /// The durable block files of `dir` (created if missing).
    pub(crate) fn files(dir: PathBuf) -> std::io::Result<Self> {
        FileBlocks::open(dir, Layout::Durable).map(Backend::Files)
    }

    /// The `next-to-last/2` bench block files of `dir` (created if missing).
    pub(crate) fn sharded(dir: PathBuf) -> std::io::Result<Self> {
        FileBlocks::open(dir, Layout::Sharded).map(Backend::Files)
    }
}

impl FileBlocks {
    fn open(dir: PathBuf, layout: Layout) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(FileBlocks {
            dir,
            layout,
            next_temp: AtomicU64::new(0),
        })
    }

    /// The file of a block.
    fn path<const S: usize>(&self, cid: &CidGeneric<S>) -> PathBuf {
        let key = cid.to_string();
        match self.layout {
            Layout::Durable => self.dir.join(key),
            Layout::Sharded => self.dir.join(shard(&key)).join(key),
        }
    }

    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(cid)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(fatal(error)),
        }
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<bool> {
        tokio::fs::try_exists(self.path(cid)).await.map_err(fatal)
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        let path = self.path(cid);
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{cid}.{n}.tmp"));
        let layout = self.layout;
        // The trait lends the bytes; the blocking thread needs its own.
        let data = data.to_vec();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if layout == Layout::Sharded {
                if path.exists() {
                    return Ok(());
                }
                std::fs::create_dir_all(&dir)?;
            }
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&data)?;
            if layout == Layout::Durable {
                file.sync_all()?;
            }
            std::fs::rename(&temporary, &path)
        })
        .await
        .map_err(|error| blockstore::Error::ExecutorError(error.to_string()))?
        .map_err(fatal)
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        match tokio::fs::remove_file(self.path(cid)).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(fatal(error)),
        }
    }
}

/// go-ds-flatfs's `next-to-last/2` shard of a key: its next-to-last two characters (`__` for
/// a key shorter than three).
fn shard(key: &str) -> &str {
    key.len()
        .checked_sub(3)
        .and_then(|start| key.get(start..key.len() - 1))
        .unwrap_or("__")
}

fn fatal(error: std::io::Error) -> blockstore::Error {
    blockstore::Error::FatalDatabaseError(error.to_string())
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
    async fn block_files_survive_a_new_handle() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let cid = raw(b"block")?;
        let store = Backend::files(dir.path().join("blocks"))?;
        assert_eq!(store.get(&cid).await?, None);
        store.put_keyed(&cid, b"block").await?;
        drop(store);
        let again = Backend::files(dir.path().join("blocks"))?;
        assert!(again.has(&cid).await?);
        assert_eq!(again.get(&cid).await?, Some(b"block".to_vec()));
        again.remove(&cid).await?;
        assert_eq!(again.get(&cid).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn sharded_block_files_use_the_flatfs_layout_and_are_written_once() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let cid = raw(b"block")?;
        let key = cid.to_string();
        let store = Backend::sharded(dir.path().join("blocks"))?;
        assert_eq!(store.get(&cid).await?, None);
        assert!(!store.has(&cid).await?);
        store.put_keyed(&cid, b"block").await?;
        // go-ds-flatfs's next-to-last/2: the shard is the key's next-to-last two characters.
        let shard = &key[key.len() - 3..key.len() - 1];
        let file = dir.path().join("blocks").join(shard).join(&key);
        assert_eq!(std::fs::read(&file)?, b"block");
        // A block already stored is not written again (the file keeps its bytes).
        std::fs::write(&file, b"kept")?;
        store.put_keyed(&cid, b"block").await?;
        assert_eq!(store.get(&cid).await?, Some(b"kept".to_vec()));
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("blocks").join(shard))?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from(&key)]);
        store.remove(&cid).await?;
        assert!(!store.has(&cid).await?);
        store.remove(&cid).await?;
        Ok(())
    }

    #[test]
    fn shards_are_the_next_to_last_two_characters() {
        assert_eq!(shard("bafkreiabcdefgxy"), "gx");
        assert_eq!(shard("abc"), "ab");
        assert_eq!(shard("ab"), "__");
        assert_eq!(shard(""), "__");
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
