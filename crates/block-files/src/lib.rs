//! A [`blockstore::Blockstore`] with one file per block, named by the CID's string form: the
//! block store of `dtx` and of the Rust interop and bench peers.
//!
//! Place in the stack: beside the layers, not part of the library. `dtx` keeps its blocks in
//! it ([`Layout::ShardedDurable`], decision 0009), `datatransfer-testkit`'s `dt_interop_peer`
//! too, and `graphsync`'s `bench_peer` example takes it as a dev-dependency. It depends on no
//! workspace crate and never on libp2p, sled or the data-transfer crates.
//!
//! Main types:
//! - [`Store`]: the store; [`Store::open`] creates its directory.
//! - [`Layout`]: [`Layout::Durable`] (`DIR/<cid>`, every file synced before its rename, so a
//!   SIGKILL loses no block a put reported stored) or [`Layout::Sharded`]
//!   (`DIR/<next-to-last two characters>/<cid>`, go-ds-flatfs's `next-to-last/2`, never synced:
//!   the layout and write path of the Go bench peers' `FileBlockstore`,
//!   `interop/go-peer/filestore.go`), or [`Layout::ShardedDurable`] (those names, each file
//!   synced before it gets its name: `dtx`'s store).
//! - [`Config`]: the writer threads ([`DEFAULT_WRITERS`]) and their queue
//!   ([`DEFAULT_WRITE_QUEUE`]), or inline writes.
//! - [`OpenError`]: why a store could not be opened.
//!
//! How it does its I/O, in both layouts:
//! - Reads (`get`, `has`) and `remove` run inline on the caller's thread: a block read from the
//!   page cache takes microseconds, while a hop to a blocking thread and back costs two thread
//!   wake-ups per block (on the bench's 2-core machine most of a peer's CPU went there).
//! - Puts go through a bounded queue to a fixed pool of writer threads, so a node keeps running
//!   while files are created, a disk slower than the network slows the caller through the
//!   queue instead of growing memory, and the thread count stays fixed. A put returns once its
//!   file has its final name (after the sync, in the durable layout).
//! - Or, with [`Config::with_inline_writes`], puts write inline too, as the Go bench peers do:
//!   where a file costs microseconds (tmpfs, an unsynced layout), the hop to a writer thread and
//!   back cost more than the file (in the data-transfer bench's dag-cbor pull, about a third of
//!   the requester's time).
//! - A reader never sees half a block, and a block already stored is not written again. In the
//!   durable layout (and wherever the system has no unnamed files), a put looks the block up,
//!   then creates, writes (and syncs) a temporary file in its final directory, closes and
//!   renames it. In the sharded layouts on Linux, a put creates an unnamed file in its
//!   directory (`O_TMPFILE`), writes (and syncs) it, links it in under its name (`linkat`,
//!   which fails when the block is there already) and closes it: no lookup and fewer path
//!   walks, about a third less time per file on tmpfs. The Go bench store does the same.
//! - The store remembers the shard directories it has made (one removed behind its back is
//!   made again) and its process id, so neither costs a system call per block.
//!
//! No feature flags.
//!
//! ```
//! use blockstore::Blockstore;
//! use block_files::{Config, Layout, Store};
//! use cid::Cid;
//! use cid::multihash::Multihash;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), Layout::Sharded, Config::default())?;
//! // A raw block with an identity hash: the store does not check hashes.
//! let cid = Cid::new_v1(0x55, Multihash::wrap(0x00, b"hello")?);
//! pollster::block_on(store.put_keyed(&cid, b"hello"))?;
//! assert_eq!(pollster::block_on(store.get(&cid))?, Some(b"hello".to_vec()));
//! // The shard of bafkqablimvwgy3y is its next-to-last two characters.
//! assert_eq!(cid.to_string(), "bafkqablimvwgy3y");
//! assert_eq!(store.path(&cid), dir.path().join("y3").join("bafkqablimvwgy3y"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use blockstore::Blockstore;
use cid::CidGeneric;

use crate::writers::{WriteError, Writers};

mod writers;

/// The default number of writer threads ([`Config::with_writers`]).
pub const DEFAULT_WRITERS: usize = 4;

/// The default number of puts waiting for a writer thread ([`Config::with_write_queue`]): a put
/// beyond it waits for room, so a store whose disk is slower than its caller holds at most this
/// many blocks (plus one per writer thread) in memory.
pub const DEFAULT_WRITE_QUEUE: usize = 64;

/// How a [`Store`] names and writes its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// `DIR/<cid>`, every file synced before its rename: a SIGKILL loses no block that a put
    /// reported stored (the interop peers' `--store`).
    Durable,
    /// `DIR/<next-to-last two characters of the cid>/<cid>` (go-ds-flatfs's `next-to-last/2`;
    /// `__` for a name shorter than three characters), never synced: the store of
    /// `cargo xtask bench`, kept as the Go bench peers keep theirs.
    Sharded,
    /// The sharded names of [`Layout::Sharded`], every file synced before it is linked in or
    /// renamed, as in [`Layout::Durable`]: `dtx`'s block store, which holds many more blocks
    /// than one directory should.
    ShardedDurable,
}

impl Layout {
    /// Whether files go into shard directories.
    fn is_sharded(self) -> bool {
        matches!(self, Layout::Sharded | Layout::ShardedDurable)
    }

    /// Whether each file is synced before it gets its name.
    fn syncs(self) -> bool {
        matches!(self, Layout::Durable | Layout::ShardedDurable)
    }
}

/// How a [`Store`] writes: on writer threads (the default) or inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    writers: usize,
    write_queue: usize,
    inline_writes: bool,
}

/// Why a [`Store`] could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store's directory could not be created.
    #[error("cannot create the block directory {}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A writer thread could not be started.
    #[error("cannot start the writer threads")]
    StartWriters {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// A block store with one file per block (see the crate docs).
///
/// Dropping it lets the writer threads (if any) finish the puts already queued and exit.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    layout: Layout,
    /// This process's id, the first part of every temporary name.
    pid: u32,
    /// Distinguishes the temporary names of concurrent writes.
    next_temp: AtomicU64,
    /// The shard directories made so far (the sharded layout).
    shards: Arc<ShardDirs>,
    /// Puts that finished without an error.
    puts: AtomicU64,
    /// `None` with inline writes.
    writers: Option<Writers>,
}

impl Config {
    /// Sets the number of writer threads (at least one; default [`DEFAULT_WRITERS`]).
    #[must_use]
    pub fn with_writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// Sets how many puts may wait for a writer thread before the next put waits for room (at
    /// least one; default [`DEFAULT_WRITE_QUEUE`]).
    #[must_use]
    pub fn with_write_queue(mut self, write_queue: usize) -> Self {
        self.write_queue = write_queue.max(1);
        self
    }

    /// Writes each file inline, on the thread that calls `put`, as reads are done, instead of
    /// on the writer threads (default: false).
    ///
    /// This saves the hop to a writer thread and back, two thread wake-ups per block, which
    /// cost more than the file itself where a file costs microseconds (tmpfs, or the page cache
    /// of an unsynced layout): it is how the Go bench peers' `FileBlockstore` writes, in the
    /// caller's goroutine. It blocks the caller for each file's create, write and rename, so
    /// where those wait for a disk (the [`Layout::Durable`] sync) the threads are the better
    /// choice. The writer settings are then unused and no thread is started.
    #[must_use]
    pub fn with_inline_writes(mut self, inline_writes: bool) -> Self {
        self.inline_writes = inline_writes;
        self
    }

    /// Whether files are written inline ([`Config::with_inline_writes`]).
    pub fn inline_writes(&self) -> bool {
        self.inline_writes
    }

    /// The number of writer threads.
    pub fn writers(&self) -> usize {
        self.writers
    }

    /// How many puts may wait for a writer thread.
    pub fn write_queue(&self) -> usize {
        self.write_queue
    }
}

impl Default for Config {
    /// [`DEFAULT_WRITERS`] threads behind a queue of [`DEFAULT_WRITE_QUEUE`] puts.
    fn default() -> Self {
        Self {
            writers: DEFAULT_WRITERS,
            write_queue: DEFAULT_WRITE_QUEUE,
            inline_writes: false,
        }
    }
}

impl Store {
    /// Opens the store in `dir` (created if missing) and starts its writer threads (none with
    /// [`Config::with_inline_writes`]).
    ///
    /// # Errors
    /// [`OpenError::CreateDir`] when the directory cannot be created,
    /// [`OpenError::StartWriters`] when a thread cannot be started.
    pub fn open(dir: impl AsRef<Path>, layout: Layout, config: Config) -> Result<Self, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        let writers = if config.inline_writes {
            None
        } else {
            let writers = Writers::start(config.writers, config.write_queue)
                .map_err(|source| OpenError::StartWriters { source })?;
            Some(writers)
        };
        Ok(Self {
            dir,
            layout,
            pid: std::process::id(),
            next_temp: AtomicU64::new(0),
            shards: Arc::default(),
            puts: AtomicU64::new(0),
            writers,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The file that holds (or would hold) a block.
    pub fn path<const S: usize>(&self, cid: &CidGeneric<S>) -> PathBuf {
        let key = cid.to_string();
        match self.layout {
            Layout::Durable => self.dir.join(key),
            Layout::Sharded | Layout::ShardedDurable => self.dir.join(shard(&key)).join(key),
        }
    }

    /// How many puts have finished without an error (the block written, or found already
    /// stored) since the store was opened.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::Acquire)
    }

    /// A temporary file name no other write of this process uses, spelled only by a put that
    /// names its temporary file (a sharded put on Linux does not).
    fn temp_name(&self) -> TempName {
        TempName {
            pid: self.pid,
            serial: self.next_temp.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Blockstore for Store {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        // Inline, on the caller's thread (see the crate docs).
        let path = self.path(cid);
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(fatal(WriteError::Io {
                operation: "read",
                path,
                source,
            })),
        }
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        let target = Target {
            path: self.path(cid),
            temp_name: self.temp_name(),
            layout: self.layout,
        };
        match &self.writers {
            None => write_block(&target, data, &self.shards).map_err(fatal)?,
            Some(writers) => {
                // The trait lends the bytes; the writer thread needs its own copy.
                let data = data.to_vec();
                let shards = Arc::clone(&self.shards);
                let job = Box::new(move || write_block(&target, &data, &shards));
                writers.run(job).await.map_err(fatal)?;
            }
        }
        self.puts.fetch_add(1, Ordering::Release);
        Ok(())
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        let path = self.path(cid);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(fatal(WriteError::Io {
                operation: "remove",
                path,
                source,
            })),
        }
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<bool> {
        let path = self.path(cid);
        std::fs::exists(&path).map_err(|source| {
            fatal(WriteError::Io {
                operation: "look up",
                path,
                source,
            })
        })
    }

    async fn close(self) -> blockstore::Result<()> {
        // Every put has returned, so its file is in place; the threads exit when the queue
        // closes.
        Ok(())
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

/// The shard directories a [`Store`] has made, so that a put into a known shard makes none,
/// and whether they take unnamed files ([`write_unnamed`]).
#[derive(Debug, Default)]
struct ShardDirs {
    made: Mutex<HashSet<PathBuf>>,
    /// Set once the system refused an unnamed file or its link: every later put names its
    /// temporary file.
    no_unnamed_files: AtomicBool,
    /// Puts that linked in an unnamed file (or found the block there when linking).
    unnamed_links: AtomicU64,
}

impl ShardDirs {
    fn contains(&self, dir: &Path) -> bool {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(dir)
    }

    /// Makes `dir` (and its parents) unless it is known to exist, then remembers it.
    fn ensure(&self, dir: &Path) -> std::io::Result<()> {
        if self.contains(dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf());
        Ok(())
    }

    fn forget(&self, dir: &Path) {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(dir);
    }

    fn unnamed_files(&self) -> bool {
        !self.no_unnamed_files.load(Ordering::Relaxed)
    }

    fn refuse_unnamed_files(&self) {
        self.no_unnamed_files.store(true, Ordering::Relaxed);
    }
}

/// Where one put writes: the block's file, the temporary name beside it, and the layout.
struct Target {
    path: PathBuf,
    temp_name: TempName,
    layout: Layout,
}

/// `.tmp-<pid>-<serial>`: a temporary file name of this process.
struct TempName {
    pid: u32,
    serial: u64,
}

impl std::fmt::Display for TempName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, ".tmp-{}-{}", self.pid, self.serial)
    }
}

/// Writes one block file (inline or on a writer thread). In the sharded layout, as an unnamed
/// file linked in once written ([`write_unnamed`]) where the system allows it. Otherwise:
/// nothing when the block is already stored; else to the temporary name beside its final name,
/// synced in the durable layout, then renamed; a failed write removes its temporary file. The
/// shard directory is made if it is not known to exist.
fn write_block(target: &Target, data: &[u8], shards: &ShardDirs) -> Result<(), WriteError> {
    let Target {
        path,
        temp_name,
        layout,
    } = target;
    let Some(dir) = path.parent() else {
        return Err(io_error("find the directory of", path)(
            std::io::ErrorKind::InvalidInput.into(),
        ));
    };
    let sharded = layout.is_sharded();
    if sharded {
        shards.ensure(dir).map_err(io_error("create", dir))?;
        if let Some(written) = write_unnamed(dir, path, data, layout.syncs(), shards) {
            return written;
        }
    }
    if std::fs::exists(path).map_err(io_error("look up", path))? {
        return Ok(());
    }
    let temp = dir.join(temp_name.to_string());
    let written = (|| {
        let mut file = match std::fs::File::create(&temp) {
            Err(error) if sharded && error.kind() == std::io::ErrorKind::NotFound => {
                remake_shard(dir, shards)?;
                std::fs::File::create(&temp)
            }
            created => created,
        }
        .map_err(io_error("create", &temp))?;
        file.write_all(data).map_err(io_error("write", &temp))?;
        if layout.syncs() {
            file.sync_all().map_err(io_error("sync", &temp))?;
        }
        drop(file);
        std::fs::rename(&temp, path).map_err(io_error("rename", &temp))
    })();
    if written.is_err() {
        // Best effort: the temporary file may not exist, and the write's error is the one
        // worth reporting.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Makes a shard directory again after it was removed behind the store's back.
fn remake_shard(dir: &Path, shards: &ShardDirs) -> Result<(), WriteError> {
    shards.forget(dir);
    shards.ensure(dir).map_err(io_error("create", dir))
}

/// Writes `data` into an unnamed file in `dir` (`O_TMPFILE`) and links it in as `path`, so the
/// block appears only whole, as a renamed temporary file would, for fewer path lookups and no
/// lookup before: a block already stored makes the link fail with `EEXIST`, and the unnamed
/// copy goes with its descriptor. It takes an unnamed create, a write, a link and a close
/// instead of a lookup, a create, a write, a close and a rename: 100 000 files on tmpfs in
/// 1.03 s instead of 1.51 s.
///
/// `None` when the system refuses: a file system without unnamed files, or an older kernel
/// that allows the link (`AT_EMPTY_PATH`) only with `CAP_DAC_READ_SEARCH` (6.18 allows it an
/// unprivileged user); the store then names its temporary files from this put on.
#[cfg(target_os = "linux")]
fn write_unnamed(
    dir: &Path,
    path: &Path,
    data: &[u8],
    sync: bool,
    shards: &ShardDirs,
) -> Option<Result<(), WriteError>> {
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;

    if !shards.unnamed_files() {
        return None;
    }
    let create = || {
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        rustix::fs::open(dir, flags, Mode::from_raw_mode(0o644))
    };
    let created = match create() {
        Err(Errno::NOENT) => match remake_shard(dir, shards) {
            Ok(()) => create(),
            Err(error) => return Some(Err(error)),
        },
        created => created,
    };
    let mut file = match created {
        Ok(fd) => std::fs::File::from(fd),
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
            shards.refuse_unnamed_files();
            return None;
        }
        Err(error) => {
            return Some(Err(io_error("create an unnamed file in", dir)(
                error.into(),
            )));
        }
    };
    if let Err(error) = file.write_all(data) {
        return Some(Err(io_error("write", path)(error)));
    }
    if sync && let Err(error) = file.sync_all() {
        return Some(Err(io_error("sync", path)(error)));
    }
    match rustix::fs::linkat(&file, "", CWD, path, AtFlags::EMPTY_PATH) {
        Ok(()) | Err(Errno::EXIST) => {
            shards.unnamed_links.fetch_add(1, Ordering::Relaxed);
            Some(Ok(()))
        }
        Err(Errno::NOENT | Errno::PERM) => {
            shards.refuse_unnamed_files();
            None
        }
        Err(error) => Some(Err(io_error("link", path)(error.into()))),
    }
}

/// Unnamed files are Linux's: elsewhere every put names its temporary file.
#[cfg(not(target_os = "linux"))]
fn write_unnamed(
    _dir: &Path,
    _path: &Path,
    _data: &[u8],
    _sync: bool,
    _shards: &ShardDirs,
) -> Option<Result<(), WriteError>> {
    None
}

/// A [`WriteError::Io`] maker for `operation` on `path`.
fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io {
        operation,
        path,
        source,
    }
}

/// A file error as the `Blockstore` trait reports it: the message with its cause.
fn fatal(error: WriteError) -> blockstore::Error {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    match error {
        WriteError::Stopped => blockstore::Error::ExecutorError(message),
        _ => blockstore::Error::FatalDatabaseError(message),
    }
}

#[cfg(test)]
mod tests;
