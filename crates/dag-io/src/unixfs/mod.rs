//! UnixFS: importing files and directory trees the way kubo's `ipfs add` does (identical
//! CIDs), and exporting file and directory DAGs back to bytes and to a filesystem tree.
//!
//! Import layout (kubo defaults): fixed-size chunks of 262144 bytes, the balanced layout with at
//! most 174 links per node, CIDv1 with raw leaves ([`ImportOptions::default`], like
//! `ipfs add --cid-version=1`) or CIDv0 with dag-pb leaves ([`ImportOptions::cid_v0`], like a
//! plain `ipfs add`). Directories are plain, links sorted by name (bytewise), dot-files skipped
//! unless [`ImportOptions::hidden`].
//!
//! Limits: the importer never writes HAMT-sharded directories. kubo switches a directory to a
//! HAMT once its links pass about 256 KiB (several thousand entries), so for such directories
//! our root CID differs from kubo's. The exporter reads both plain and HAMT-sharded directories.
//! Files, symlinks and directories are supported; UnixFS mode and mtime metadata are neither
//! written nor restored.

mod data;

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use blockstore::Blockstore;
use cid::{Cid, Version};
use ipld_selector::dagpb::{self, PbLink, PbNode};
use prost::Message;

use crate::blocks::{self, BlockError};
use data::{Data, DataType};

/// Multicodec code of raw blocks.
pub const RAW_CODEC: u64 = 0x55;

/// How to cut and encode a file. The defaults are kubo's `ipfs add --cid-version=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// CID version of every block. Default [`Version::V1`].
    pub cid_version: Version,
    /// Store leaves as raw blocks (true) or as dag-pb UnixFS `File` nodes (false).
    /// Default `true`.
    pub raw_leaves: bool,
    /// Chunk size in bytes. Default 262144 (256 KiB), kubo's `size-262144` chunker.
    pub chunk_size: usize,
    /// Most links in one internal node. Default 174, kubo's balanced layout.
    pub max_links: usize,
    /// Include files and directories whose name starts with a dot when importing a tree.
    /// Default `false`, like `ipfs add -r` without `--hidden`.
    pub hidden: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            cid_version: Version::V1,
            raw_leaves: true,
            chunk_size: 262_144,
            max_links: 174,
            hidden: false,
        }
    }
}

impl ImportOptions {
    /// kubo's CIDv0 defaults (a plain `ipfs add`): CIDv0, dag-pb leaves.
    pub fn cid_v0() -> Self {
        Self {
            cid_version: Version::V0,
            raw_leaves: false,
            ..Self::default()
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The root CID.
    pub root: Cid,
    /// Content bytes (file bytes, summed over a tree).
    pub size: u64,
    /// Cumulative size of the DAG: every block's bytes (what a parent link's Tsize holds).
    pub dag_size: u64,
    /// Blocks written (including repeats of identical blocks).
    pub blocks: u64,
}

/// Errors from UnixFS import and export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnixfsError {
    /// Reading the input or writing the output failed.
    #[error("i/o error at {}", path.as_deref().map_or_else(|| "stream".into(), |p| p.display().to_string()))]
    Io {
        /// The file involved, if any.
        path: Option<PathBuf>,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A block failed verification or the store failed.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A block the DAG needs is not in the store.
    #[error("block {cid} is missing from the store")]
    MissingBlock {
        /// The missing block.
        cid: Box<Cid>,
    },
    /// A dag-pb block does not decode.
    #[error("invalid dag-pb block {cid}")]
    DagPb {
        /// The block.
        cid: Box<Cid>,
        /// Why.
        #[source]
        source: dagpb::DecodeError,
    },
    /// A dag-pb block's UnixFS data is missing or invalid.
    #[error("invalid unixfs data in {cid}: {reason}")]
    InvalidData {
        /// The block.
        cid: Box<Cid>,
        /// What is wrong.
        reason: String,
    },
    /// The block's codec is neither dag-pb nor raw.
    #[error("block {cid} has codec {codec:#x}, not dag-pb or raw")]
    UnsupportedCodec {
        /// The block.
        cid: Box<Cid>,
        /// Its codec.
        codec: u64,
    },
    /// A file was expected but the node is of another UnixFS type.
    #[error("{cid} is not a unixfs file")]
    NotAFile {
        /// The node.
        cid: Box<Cid>,
    },
    /// A directory entry name that cannot be a path component (or is not UTF-8).
    #[error("invalid entry name {name:?} in {cid}")]
    InvalidName {
        /// The directory node.
        cid: Box<Cid>,
        /// The name (bytes that are not UTF-8 shown as U+FFFD).
        name: String,
    },
    /// A file's content does not add up to the size its root declares.
    #[error("file {cid} declares {declared} bytes but holds {actual}")]
    SizeMismatch {
        /// The file root.
        cid: Box<Cid>,
        /// Size in the root's UnixFS data.
        declared: u64,
        /// Bytes found (when the export stopped early because the file grew past its declared
        /// size: the bytes counted so far).
        actual: u64,
    },
    /// A path to import is neither a file, a directory nor a symlink, or its name is not UTF-8.
    #[error("cannot import {}: {reason}", path.display())]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// Invalid options (chunk size or link count of zero or one).
    #[error("invalid import options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Imports a file from a stream, chunk by chunk (one chunk in memory at a time, plus the links of
/// the open internal nodes), into `store`.
///
/// # Errors
///
/// [`UnixfsError::Io`] if reading fails, [`UnixfsError::Block`] if the store fails.
///
/// # Examples
///
/// ```
/// use blockstore::InMemoryBlockstore;
/// use dag_io::unixfs::{self, ImportOptions};
///
/// let store = InMemoryBlockstore::<64>::new();
/// let file = pollster::block_on(unixfs::import_file(
///     &b"hello world\n"[..],
///     &store,
///     &ImportOptions::cid_v0(),
/// ))?;
/// assert_eq!(file.root.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
/// # Ok::<(), dag_io::unixfs::UnixfsError>(())
/// ```
pub async fn import_file<R: Read, B: Blockstore>(
    mut reader: R,
    store: &B,
    options: &ImportOptions,
) -> Result<Imported, UnixfsError> {
    if options.chunk_size == 0 {
        return Err(UnixfsError::InvalidOptions {
            reason: "chunk size is zero",
        });
    }
    if options.max_links < 2 {
        return Err(UnixfsError::InvalidOptions {
            reason: "max links is below two",
        });
    }
    let mut layout = Balanced {
        levels: Vec::new(),
        blocks: 0,
    };
    let mut chunk = vec![0u8; options.chunk_size];
    let mut first = true;
    loop {
        let n = read_full(&mut reader, &mut chunk)
            .map_err(|source| UnixfsError::Io { path: None, source })?;
        if n == 0 && !first {
            break;
        }
        first = false;
        let leaf = put_leaf(store, options, &chunk[..n]).await?;
        layout.blocks += 1;
        layout.push(store, options, 0, leaf).await?;
        if n < chunk.len() {
            break;
        }
    }
    layout.finish(store, options).await
}

/// Imports a directory tree (plain UnixFS directories, links sorted by name, like
/// `ipfs add -r`), or a single file if `path` is a file. Symlinks are stored as UnixFS
/// symlinks, not followed.
///
/// # Errors
///
/// [`UnixfsError::Io`] for filesystem errors, [`UnixfsError::Unsupported`] for special files
/// and names that are not UTF-8, [`UnixfsError::Block`] if the store fails.
pub async fn import_path<B: Blockstore>(
    path: &Path,
    store: &B,
    options: &ImportOptions,
) -> Result<Imported, UnixfsError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnixfsError::Io {
            path: Some(path),
            source,
        }
    };
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if !meta.is_dir() {
        return import_entry(path, &meta, store, options).await;
    }
    // Depth-first, iterative (no recursion, so the future stays small and `Send` when the
    // store's futures are).
    let mut stack = vec![DirFrame::open(path, String::new(), options)?];
    loop {
        let mut top = stack
            .pop()
            .expect("the root frame is popped only to return its result");
        if let Some((name, entry_path)) = top.entries.pop() {
            let meta = fs::symlink_metadata(&entry_path).map_err(io_err(&entry_path))?;
            if meta.is_dir() {
                let frame = DirFrame::open(&entry_path, name, options)?;
                stack.push(top);
                stack.push(frame);
            } else {
                let imported = import_entry(&entry_path, &meta, store, options).await?;
                top.add(name, imported);
                stack.push(top);
            }
            continue;
        }
        let name = top.name.clone();
        let imported = top.finish(store, options).await?;
        match stack.last_mut() {
            Some(parent) => parent.add(name, imported),
            None => return Ok(imported),
        }
    }
}

/// Writes the bytes of a UnixFS file DAG (or a raw block) to `out`, streaming block by block,
/// and returns the number of bytes written. Every block is verified as it is loaded.
///
/// # Errors
///
/// [`UnixfsError::MissingBlock`] for an absent block, [`UnixfsError::NotAFile`] for a
/// directory, [`UnixfsError::SizeMismatch`] when the content does not match the declared size,
/// decoding and I/O errors otherwise.
pub async fn export_file<B: Blockstore, W: Write>(
    store: &B,
    root: &Cid,
    mut out: W,
) -> Result<u64, UnixfsError> {
    let mut written = 0u64;
    let mut declared = None;
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        let bytes = load(store, &cid).await?;
        let chunk: &[u8] = match cid.codec() {
            RAW_CODEC => &bytes,
            dagpb::CODEC => {
                let (node, data) = decode_unixfs(&cid, &bytes)?;
                if !matches!(data.kind(), Some(DataType::File | DataType::Raw)) {
                    return Err(UnixfsError::NotAFile { cid: Box::new(cid) });
                }
                if cid == *root {
                    declared = data.filesize;
                }
                stack.extend(node.links.iter().rev().map(|link| link.hash));
                let content = data.data.unwrap_or_default();
                written += content.len() as u64;
                check_declared(root, declared, written)?;
                write_out(&mut out, &content)?;
                continue;
            }
            codec => {
                return Err(UnixfsError::UnsupportedCodec {
                    cid: Box::new(cid),
                    codec,
                });
            }
        };
        written += chunk.len() as u64;
        check_declared(root, declared, written)?;
        write_out(&mut out, chunk)?;
    }
    out.flush()
        .map_err(|source| UnixfsError::Io { path: None, source })?;
    match declared {
        Some(declared) if declared != written => Err(UnixfsError::SizeMismatch {
            cid: Box::new(*root),
            declared,
            actual: written,
        }),
        _ => Ok(written),
    }
}

/// Writes a UnixFS DAG to the filesystem at `dest`: a directory (plain or HAMT-sharded) becomes
/// a directory tree, a file a file, a symlink a symlink (on Unix). `dest` must not exist yet.
///
/// # Errors
///
/// As [`export_file`], plus [`UnixfsError::InvalidName`] for entry names that are not a single
/// path component and [`UnixfsError::Io`] for filesystem errors.
pub async fn export_path<B: Blockstore>(
    store: &B,
    root: &Cid,
    dest: &Path,
) -> Result<(), UnixfsError> {
    enum Item {
        /// A UnixFS node to create at a path.
        Entry(Cid, PathBuf),
        /// A HAMT shard whose entries go into an existing directory.
        Shard(Cid, PathBuf),
    }
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UnixfsError::Io {
            path: Some(path),
            source,
        }
    };
    let mut stack = vec![Item::Entry(*root, dest.to_path_buf())];
    while let Some(item) = stack.pop() {
        let (cid, path, in_shard) = match item {
            Item::Entry(cid, path) => (cid, path, false),
            Item::Shard(cid, path) => (cid, path, true),
        };
        if cid.codec() == RAW_CODEC {
            let file = create_new(&path)?;
            export_file(store, &cid, file).await?;
            continue;
        }
        if cid.codec() != dagpb::CODEC {
            return Err(UnixfsError::UnsupportedCodec {
                cid: Box::new(cid),
                codec: cid.codec(),
            });
        }
        let bytes = load(store, &cid).await?;
        let (node, data) = decode_unixfs(&cid, &bytes)?;
        match data.kind() {
            Some(DataType::File | DataType::Raw) => {
                let file = create_new(&path)?;
                export_file(store, &cid, file).await?;
            }
            Some(DataType::Symlink) => {
                let target = data.data.unwrap_or_default();
                make_symlink(&cid, &target, &path)?;
            }
            Some(DataType::Directory) => {
                fs::create_dir(&path).map_err(io_err(&path))?;
                for link in node.links.iter().rev() {
                    let name = entry_name(&cid, link)?;
                    check_name(&cid, &name)?;
                    stack.push(Item::Entry(link.hash, path.join(name)));
                }
            }
            Some(DataType::HamtShard) => {
                if !in_shard {
                    fs::create_dir(&path).map_err(io_err(&path))?;
                }
                let fanout = data.fanout.unwrap_or(0);
                if !fanout.is_power_of_two() || fanout < 2 {
                    return Err(UnixfsError::InvalidData {
                        cid: Box::new(cid),
                        reason: format!("hamt fanout {fanout} is not a power of two"),
                    });
                }
                let pad = format!("{:X}", fanout - 1).len();
                for link in node.links.iter().rev() {
                    let name = entry_name(&cid, link)?;
                    match name.get(pad..) {
                        Some("") => stack.push(Item::Shard(link.hash, path.clone())),
                        Some(entry) => {
                            check_name(&cid, entry)?;
                            stack.push(Item::Entry(link.hash, path.join(entry)));
                        }
                        None => {
                            return Err(UnixfsError::InvalidName {
                                cid: Box::new(cid),
                                name,
                            });
                        }
                    }
                }
            }
            Some(DataType::Metadata) | None => {
                return Err(UnixfsError::InvalidData {
                    cid: Box::new(cid),
                    reason: format!("unsupported unixfs type {}", data.r#type),
                });
            }
        }
    }
    Ok(())
}

/// The open internal nodes of a balanced DAG: `levels[k]` holds the links (children) of the
/// node being filled at depth `k + 1`. A full node is closed only when another child arrives,
/// which is when kubo's builder finds there is more data.
struct Balanced {
    levels: Vec<Vec<Child>>,
    blocks: u64,
}

/// A finished node as its parent sees it.
#[derive(Debug, Clone, Copy)]
struct Child {
    cid: Cid,
    /// Content bytes below it.
    file_size: u64,
    /// Cumulative block bytes below it (its link's Tsize).
    dag_size: u64,
}

impl Balanced {
    async fn push<B: Blockstore>(
        &mut self,
        store: &B,
        options: &ImportOptions,
        level: usize,
        child: Child,
    ) -> Result<(), UnixfsError> {
        // Iterative: closing a full node may cascade up the levels.
        let mut level = level;
        let mut child = child;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            if self.levels[level].len() < options.max_links {
                self.levels[level].push(child);
                return Ok(());
            }
            let full = std::mem::replace(&mut self.levels[level], vec![child]);
            child = put_file_node(store, options, &full).await?;
            self.blocks += 1;
            level += 1;
        }
    }

    async fn finish<B: Blockstore>(
        mut self,
        store: &B,
        options: &ImportOptions,
    ) -> Result<Imported, UnixfsError> {
        let mut level = 0;
        loop {
            let top = level + 1 == self.levels.len();
            let children = std::mem::take(&mut self.levels[level]);
            if top && children.len() == 1 {
                let root = children[0];
                return Ok(Imported {
                    root: root.cid,
                    size: root.file_size,
                    dag_size: root.dag_size,
                    blocks: self.blocks,
                });
            }
            let node = put_file_node(store, options, &children).await?;
            self.blocks += 1;
            self.push(store, options, level + 1, node).await?;
            level += 1;
        }
    }
}

/// A directory being imported: its remaining entries (sorted, popped from the end) and the links
/// made so far.
struct DirFrame {
    name: String,
    entries: Vec<(String, PathBuf)>,
    links: Vec<(String, Imported)>,
}

impl DirFrame {
    fn open(path: &Path, name: String, options: &ImportOptions) -> Result<Self, UnixfsError> {
        let io_err = |source| UnixfsError::Io {
            path: Some(path.to_path_buf()),
            source,
        };
        let mut entries = Vec::new();
        for entry in fs::read_dir(path).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let entry_path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(UnixfsError::Unsupported {
                    path: entry_path,
                    reason: "name is not utf-8",
                });
            };
            if name.starts_with('.') && !options.hidden {
                continue;
            }
            entries.push((name, entry_path));
        }
        // kubo sorts links by name, bytewise; entries are popped from the end.
        entries.sort_by(|a, b| b.0.as_bytes().cmp(a.0.as_bytes()));
        Ok(Self {
            name,
            entries,
            links: Vec::new(),
        })
    }

    fn add(&mut self, name: String, imported: Imported) {
        self.links.push((name, imported));
    }

    async fn finish<B: Blockstore>(
        self,
        store: &B,
        options: &ImportOptions,
    ) -> Result<Imported, UnixfsError> {
        let node = PbNode {
            links: self
                .links
                .iter()
                .map(|(name, child)| PbLink {
                    hash: child.root,
                    name: Some(name.clone().into_bytes()),
                    tsize: Some(child.dag_size),
                })
                .collect(),
            data: Some(Data::of(DataType::Directory).encode_to_vec()),
        };
        let bytes = dagpb::encode(&node);
        let cid = put_pb(store, options, &bytes).await?;
        Ok(Imported {
            root: cid,
            size: self.links.iter().map(|(_, c)| c.size).sum(),
            dag_size: bytes.len() as u64 + self.links.iter().map(|(_, c)| c.dag_size).sum::<u64>(),
            blocks: 1 + self.links.iter().map(|(_, c)| c.blocks).sum::<u64>(),
        })
    }
}

async fn import_entry<B: Blockstore>(
    path: &Path,
    meta: &fs::Metadata,
    store: &B,
    options: &ImportOptions,
) -> Result<Imported, UnixfsError> {
    let io_err = |source| UnixfsError::Io {
        path: Some(path.to_path_buf()),
        source,
    };
    if meta.is_file() {
        let file = fs::File::open(path).map_err(io_err)?;
        return import_file(io::BufReader::new(file), store, options).await;
    }
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map_err(io_err)?;
        let Some(target) = target.to_str() else {
            return Err(UnixfsError::Unsupported {
                path: path.to_path_buf(),
                reason: "symlink target is not utf-8",
            });
        };
        let data = Data {
            data: Some(target.as_bytes().to_vec()),
            ..Data::of(DataType::Symlink)
        };
        let bytes = dagpb::encode(&PbNode {
            links: Vec::new(),
            data: Some(data.encode_to_vec()),
        });
        let cid = put_pb(store, options, &bytes).await?;
        return Ok(Imported {
            root: cid,
            size: 0,
            dag_size: bytes.len() as u64,
            blocks: 1,
        });
    }
    Err(UnixfsError::Unsupported {
        path: path.to_path_buf(),
        reason: "not a file, directory or symlink",
    })
}

async fn put_leaf<B: Blockstore>(
    store: &B,
    options: &ImportOptions,
    chunk: &[u8],
) -> Result<Child, UnixfsError> {
    if options.raw_leaves {
        let cid = blocks::cid_of(options.cid_version, RAW_CODEC, blocks::SHA2_256, chunk)?;
        blocks::put_verified(store, &cid, chunk).await?;
        return Ok(Child {
            cid,
            file_size: chunk.len() as u64,
            dag_size: chunk.len() as u64,
        });
    }
    let data = Data {
        data: (!chunk.is_empty()).then(|| chunk.to_vec()),
        filesize: Some(chunk.len() as u64),
        ..Data::of(DataType::File)
    };
    let bytes = dagpb::encode(&PbNode {
        links: Vec::new(),
        data: Some(data.encode_to_vec()),
    });
    let cid = put_pb(store, options, &bytes).await?;
    Ok(Child {
        cid,
        file_size: chunk.len() as u64,
        dag_size: bytes.len() as u64,
    })
}

async fn put_file_node<B: Blockstore>(
    store: &B,
    options: &ImportOptions,
    children: &[Child],
) -> Result<Child, UnixfsError> {
    let file_size = children.iter().map(|c| c.file_size).sum();
    let data = Data {
        filesize: Some(file_size),
        blocksizes: children.iter().map(|c| c.file_size).collect(),
        ..Data::of(DataType::File)
    };
    let node = PbNode {
        links: children
            .iter()
            .map(|c| PbLink {
                hash: c.cid,
                name: Some(Vec::new()),
                tsize: Some(c.dag_size),
            })
            .collect(),
        data: Some(data.encode_to_vec()),
    };
    let bytes = dagpb::encode(&node);
    let cid = put_pb(store, options, &bytes).await?;
    Ok(Child {
        cid,
        file_size,
        dag_size: bytes.len() as u64 + children.iter().map(|c| c.dag_size).sum::<u64>(),
    })
}

async fn put_pb<B: Blockstore>(
    store: &B,
    options: &ImportOptions,
    bytes: &[u8],
) -> Result<Cid, UnixfsError> {
    let cid = blocks::cid_of(options.cid_version, dagpb::CODEC, blocks::SHA2_256, bytes)?;
    blocks::put_verified(store, &cid, bytes).await?;
    Ok(cid)
}

async fn load<B: Blockstore>(store: &B, cid: &Cid) -> Result<Vec<u8>, UnixfsError> {
    blocks::get_verified(store, cid)
        .await?
        .ok_or_else(|| UnixfsError::MissingBlock {
            cid: Box::new(*cid),
        })
}

fn decode_unixfs(cid: &Cid, bytes: &[u8]) -> Result<(PbNode, Data), UnixfsError> {
    let node = dagpb::decode(bytes).map_err(|source| UnixfsError::DagPb {
        cid: Box::new(*cid),
        source,
    })?;
    let invalid = |reason: String| UnixfsError::InvalidData {
        cid: Box::new(*cid),
        reason,
    };
    let raw = node
        .data
        .as_deref()
        .ok_or_else(|| invalid("no data field".into()))?;
    let data = Data::decode(raw).map_err(|e| invalid(e.to_string()))?;
    Ok((node, data))
}

/// Fails as soon as a file holds more bytes than its root declares, so a DAG that repeats links
/// to blow up its size is stopped before it writes more than it claimed.
fn check_declared(root: &Cid, declared: Option<u64>, written: u64) -> Result<(), UnixfsError> {
    match declared {
        Some(declared) if written > declared => Err(UnixfsError::SizeMismatch {
            cid: Box::new(*root),
            declared,
            actual: written,
        }),
        _ => Ok(()),
    }
}

/// Creates a file that must not exist yet: an entry name seen twice, or a symlink exported
/// earlier under the same name, is never written through.
fn create_new(path: &Path) -> Result<io::BufWriter<fs::File>, UnixfsError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(io::BufWriter::new)
        .map_err(|source| UnixfsError::Io {
            path: Some(path.to_path_buf()),
            source,
        })
}

/// A link's name as a path component candidate: absent is empty, and a name that is not UTF-8
/// is an [`UnixfsError::InvalidName`].
fn entry_name(cid: &Cid, link: &PbLink) -> Result<String, UnixfsError> {
    let bytes = link.name.as_deref().unwrap_or_default();
    String::from_utf8(bytes.to_vec()).map_err(|_| UnixfsError::InvalidName {
        cid: Box::new(*cid),
        name: String::from_utf8_lossy(bytes).into_owned(),
    })
}

fn check_name(cid: &Cid, name: &str) -> Result<(), UnixfsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(UnixfsError::InvalidName {
            cid: Box::new(*cid),
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn write_out<W: Write>(out: &mut W, bytes: &[u8]) -> Result<(), UnixfsError> {
    out.write_all(bytes)
        .map_err(|source| UnixfsError::Io { path: None, source })
}

#[cfg(unix)]
fn make_symlink(_cid: &Cid, target: &[u8], path: &Path) -> Result<(), UnixfsError> {
    use std::os::unix::ffi::OsStrExt;
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path).map_err(|source| {
        UnixfsError::Io {
            path: Some(path.to_path_buf()),
            source,
        }
    })
}

#[cfg(not(unix))]
fn make_symlink(cid: &Cid, _target: &[u8], _path: &Path) -> Result<(), UnixfsError> {
    Err(UnixfsError::InvalidData {
        cid: Box::new(*cid),
        reason: "symlinks are exported on unix only".into(),
    })
}

/// Fills `buf` from `reader` unless the stream ends first; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use blockstore::InMemoryBlockstore;

    use super::*;

    #[test]
    fn internal_node_over_fixture_leaves_reproduces_the_fixture_root() {
        // The root and leaf CIDs of file-3k-and-3-blocks-missing-block.car (CIDv0, three
        // 1024-byte dag-pb leaves of 1035 block bytes each). One leaf is absent from that CAR,
        // so the root is rebuilt from the link list alone.
        let leaves = [
            "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF",
            "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV",
        ];
        let fixture = fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/car/file-3k-and-3-blocks-missing-block.car"
        ))
        .expect("shared fixtures beside the repository");
        let mut reader = crate::car::Reader::new(&fixture[..]).expect("fixture header");
        let root = reader.header().roots[0];
        let root_block = reader
            .find_map(|s| s.ok().filter(|s| s.cid == root))
            .expect("root block in the fixture");
        let links = dagpb::decode(&root_block.data).expect("dag-pb").links;
        for leaf in leaves {
            assert!(links.iter().any(|l| l.hash.to_string() == leaf));
        }
        let children: Vec<Child> = links
            .iter()
            .map(|l| Child {
                cid: l.hash,
                file_size: 1024,
                dag_size: 1035,
            })
            .collect();
        let store = InMemoryBlockstore::<64>::new();
        let node = pollster::block_on(put_file_node(&store, &ImportOptions::cid_v0(), &children))
            .expect("in-memory store");
        assert_eq!(node.cid, root);
        assert_eq!(node.dag_size, root_block.data.len() as u64 + 3 * 1035);
    }

    #[test]
    fn options_that_cannot_make_a_tree_are_rejected() {
        let store = InMemoryBlockstore::<64>::new();
        for options in [
            ImportOptions {
                chunk_size: 0,
                ..ImportOptions::default()
            },
            ImportOptions {
                max_links: 1,
                ..ImportOptions::default()
            },
        ] {
            let result = pollster::block_on(import_file(&b"x"[..], &store, &options));
            assert!(matches!(result, Err(UnixfsError::InvalidOptions { .. })));
        }
    }
}
