//! Getting DAGs in and out of the block store: importing paths (UnixFS, or CAR for `.car`),
//! checking that a DAG is complete and verified, and writing one out (UnixFS or CAR) through a
//! temporary name that is renamed only once the whole output is written.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use blockstore::Blockstore;
use cid::CidGeneric;
use dag_io::{car, unixfs};
use datatransfer::Cid;
use indicatif::ProgressBar;
use ipld_selector::Selector;

use crate::error::{CliError, chain};

/// What importing one path gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Imported {
    /// The roots (one for UnixFS; a CAR's header roots).
    pub(crate) roots: Vec<Cid>,
    /// Blocks written.
    pub(crate) blocks: u64,
    /// Block bytes written (what a pull of the DAG transfers).
    pub(crate) bytes: u64,
}

impl Imported {
    /// The first root, the one printed.
    pub(crate) fn root(&self) -> Cid {
        self.roots[0]
    }
}

/// Whether `path` names a CAR file (by its extension).
pub(crate) fn is_car(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("car"))
}

/// Imports `path` into `blocks`: a `.car` file as CAR (its header must name a root), anything
/// else as UnixFS with kubo's CIDv1 defaults.
pub(crate) async fn import<B: Blockstore>(path: &Path, blocks: &B) -> Result<Imported, CliError> {
    let fail = |reason: String| CliError::Import {
        path: path.to_path_buf(),
        reason,
    };
    if is_car(path) && path.is_file() {
        let file = std::fs::File::open(path).map_err(|error| fail(chain(&error)))?;
        let summary = car::import(BufReader::new(file), blocks)
            .await
            .map_err(|error| fail(chain(&error)))?;
        if summary.header.roots.is_empty() {
            return Err(fail("the CAR names no root".into()));
        }
        return Ok(Imported {
            roots: summary.header.roots.clone(),
            blocks: summary.blocks,
            bytes: summary.block_bytes,
        });
    }
    let imported = unixfs::import_path(path, blocks, &unixfs::ImportOptions::default())
        .await
        .map_err(|error| fail(chain(&error)))?;
    Ok(Imported {
        roots: vec![imported.root],
        blocks: imported.blocks,
        bytes: imported.dag_size,
    })
}

/// What a [`Counting`] block store adds to its progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Count {
    /// The bytes of every block written.
    Puts,
    /// The bytes of the raw blocks written: the file bytes of a UnixFS import (kubo's CIDv1
    /// defaults store every chunk as a raw leaf).
    RawPuts,
    /// The bytes of every block read.
    Gets,
}

/// A block store that counts the bytes going through it on a progress bar (a hidden bar when
/// there is nothing to show), for `dtx import`, `dtx export` and a pull's output, and tallies
/// the distinct blocks read.
pub(crate) struct Counting<'a, B> {
    blocks: &'a B,
    bar: &'a ProgressBar,
    count: Count,
    read: std::sync::Mutex<ReadTally>,
}

/// The distinct blocks read through a [`Counting`] store.
#[derive(Default)]
struct ReadTally {
    /// The CIDs read, as bytes.
    seen: std::collections::HashSet<Vec<u8>>,
    /// The bytes of those blocks.
    bytes: u64,
}

impl<'a, B: Blockstore> Counting<'a, B> {
    /// `blocks`, counting on `bar` what `count` says.
    pub(crate) fn new(blocks: &'a B, bar: &'a ProgressBar, count: Count) -> Self {
        Counting {
            blocks,
            bar,
            count,
            read: std::sync::Mutex::default(),
        }
    }

    /// The distinct blocks read so far and their bytes.
    fn read_totals(&self) -> Verified {
        let tally = self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Verified {
            blocks: tally.seen.len() as u64,
            bytes: tally.bytes,
        }
    }
}

impl<B: Blockstore> Blockstore for Counting<'_, B> {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        let block = self.blocks.get(cid).await?;
        if let Some(block) = &block {
            if self.count == Count::Gets {
                self.bar.inc(block.len() as u64);
            }
            let mut tally = self
                .read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if tally.seen.insert(cid.to_bytes()) {
                tally.bytes += block.len() as u64;
            }
        }
        Ok(block)
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.blocks.put_keyed(cid, data).await?;
        let counted = match self.count {
            Count::Puts => true,
            Count::RawPuts => cid.codec() == unixfs::RAW_CODEC,
            Count::Gets => false,
        };
        if counted {
            self.bar.inc(data.len() as u64);
        }
        Ok(())
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        self.blocks.remove(cid).await
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<bool> {
        self.blocks.has(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        // The wrapped store is borrowed: its owner closes it.
        Ok(())
    }
}

/// The bytes an import of `path` reads: a file's length, or the sum of the file lengths under
/// a directory (symbolic links not followed); 0 for what cannot be read (the import then says
/// why).
pub(crate) fn source_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) if meta.is_file() => total += meta.len(),
                _ => {}
            }
        }
    }
    total
}

/// The size of the DAG under `root` once its root block is in `blocks`: a raw block's length,
/// or a dag-pb node's length plus its links' cumulative sizes (for UnixFS, every block's
/// bytes). `None` until then, or for other codecs.
pub(crate) async fn dag_total<B: Blockstore>(blocks: &B, root: &Cid) -> Option<u64> {
    let block = blocks.get(root).await.ok()??;
    match root.codec() {
        unixfs::RAW_CODEC => Some(block.len() as u64),
        ipld_selector::dagpb::CODEC => {
            let decoded = ipld_selector::dagpb::decode(&block).ok()?;
            decoded
                .links
                .iter()
                .try_fold(block.len() as u64, |sum, link| Some(sum + link.tsize?))
        }
        _ => None,
    }
}

/// The selector traversal settings: no depth limit (the selector's own recursion limit
/// applies), as the graphsync responder walks.
pub(crate) fn traversal_config() -> ipld_selector::Config {
    ipld_selector::Config::default().with_max_recursion_depth(None)
}

/// The totals of a verified DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    /// Distinct blocks.
    pub(crate) blocks: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// Checks that every block `selector` reaches from `root` is in `blocks` and hashes to its
/// CID.
pub(crate) async fn verify<B: Blockstore>(
    blocks: &B,
    root: &Cid,
    selector: &Selector,
) -> Result<Verified, CliError> {
    let (_, summary) = car::export(blocks, root, selector, traversal_config(), std::io::sink())
        .await
        .map_err(|error| CliError::Incomplete {
            cid: root.to_string(),
            reason: chain(&error),
        })?;
    Ok(Verified {
        blocks: summary.blocks,
        bytes: summary.block_bytes,
    })
}

/// Fails when `output` cannot be written: it exists already, or its directory is missing or
/// not writable (checked by creating and removing the temporary file).
pub(crate) fn check_output(output: &Path) -> Result<(), CliError> {
    if std::fs::symlink_metadata(output).is_ok() {
        return Err(CliError::OutputExists {
            path: output.to_path_buf(),
        });
    }
    let temp = temp_path(output)?;
    std::fs::File::create(&temp).map_err(|error| CliError::Output {
        path: output.to_path_buf(),
        reason: chain(&error),
    })?;
    let _ = std::fs::remove_file(&temp);
    Ok(())
}

/// Which blocks of a DAG an output holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reach<'a> {
    /// Every block under the root (the explore-all selector).
    WholeDag,
    /// The blocks a selector reaches.
    Selected(&'a Selector),
}

/// Writes the DAG under `root` to `output`: a CAR of the blocks `reach` names when it ends in
/// `.car`, otherwise the UnixFS file or directory (which needs every block). The output
/// appears under its name only once complete. Returns the totals of the blocks `reach` names,
/// each verified against its CID: in the same pass as the writing, except for a UnixFS output
/// of a selected part, which is checked by its selector first ([`verify`]) since the file
/// reads blocks of its own.
pub(crate) async fn write_output<B: Blockstore>(
    blocks: &B,
    root: &Cid,
    reach: Reach<'_>,
    output: &Path,
    bar: &ProgressBar,
) -> Result<Verified, CliError> {
    check_output(output)?;
    let everything;
    let selector = match reach {
        Reach::WholeDag => {
            everything = Selector::explore_all_recursively();
            &everything
        }
        Reach::Selected(selector) => selector,
    };
    let temp = temp_path(output)?;
    let written = if is_car(output) {
        let counting = Counting::new(blocks, bar, Count::Gets);
        write_car(&counting, root, selector, output, &temp).await
    } else {
        let checked = match reach {
            Reach::WholeDag => None,
            Reach::Selected(selector) => Some(verify(blocks, root, selector).await?),
        };
        // UnixFS reads every block of the DAG once or more, each verified.
        let counting = Counting::new(blocks, bar, Count::Gets);
        unixfs::export_path(&counting, root, &temp)
            .await
            .map_err(|error| unixfs_error(root, output, &error))
            .map(|()| checked.unwrap_or_else(|| counting.read_totals()))
    };
    let verified = match written {
        Ok(verified) => verified,
        Err(error) => {
            remove_any(&temp);
            return Err(error);
        }
    };
    std::fs::rename(&temp, output).map_err(|error| {
        remove_any(&temp);
        CliError::Output {
            path: output.to_path_buf(),
            reason: chain(&error),
        }
    })?;
    Ok(verified)
}

/// Writes the CAR of the blocks `selector` reaches to `temp`, synced; their totals.
async fn write_car<B: Blockstore>(
    blocks: &B,
    root: &Cid,
    selector: &Selector,
    output: &Path,
    temp: &Path,
) -> Result<Verified, CliError> {
    let io_error = |error: &dyn std::error::Error| CliError::Output {
        path: output.to_path_buf(),
        reason: chain(error),
    };
    let file = std::fs::File::create(temp).map_err(|error| io_error(&error))?;
    let (writer, summary) = car::export(
        blocks,
        root,
        selector,
        traversal_config(),
        BufWriter::new(file),
    )
    .await
    .map_err(|error| match error {
        car::ExportError::Write(error) => io_error(&error),
        other => CliError::Incomplete {
            cid: root.to_string(),
            reason: chain(&other),
        },
    })?;
    let file = writer
        .into_inner()
        .map_err(|error| io_error(error.error()))?;
    file.sync_all().map_err(|error| io_error(&error))?;
    Ok(Verified {
        blocks: summary.blocks,
        bytes: summary.block_bytes,
    })
}

fn unixfs_error(root: &Cid, output: &Path, error: &unixfs::UnixfsError) -> CliError {
    match error {
        unixfs::UnixfsError::Io { .. } => CliError::Output {
            path: output.to_path_buf(),
            reason: chain(error),
        },
        unixfs::UnixfsError::MissingBlock { .. } | unixfs::UnixfsError::Block(_) => {
            CliError::Incomplete {
                cid: root.to_string(),
                reason: chain(error),
            }
        }
        _ => CliError::Export {
            cid: root.to_string(),
            form: "a UnixFS file or directory",
            reason: chain(error),
        },
    }
}

/// `.<name>.dtx-partial-<pid>` beside `output`.
fn temp_path(output: &Path) -> Result<PathBuf, CliError> {
    let name = output
        .file_name()
        .ok_or_else(|| CliError::Output {
            path: output.to_path_buf(),
            reason: "the path names no file".into(),
        })?
        .to_string_lossy();
    let temp = format!(".{name}.dtx-partial-{}", std::process::id());
    Ok(match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(temp),
        _ => PathBuf::from(temp),
    })
}

fn remove_any(path: &Path) {
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
}

#[cfg(test)]
mod tests {
    use blockstore::InMemoryBlockstore;

    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    /// `content` written to `a.txt` in `dir` and imported into a fresh in-memory store.
    fn imported_file(dir: &Path, content: &[u8]) -> (InMemoryBlockstore<64>, Imported) {
        let source = dir.join("a.txt");
        std::fs::write(&source, content).expect("write");
        let store = InMemoryBlockstore::<64>::new();
        let imported = block_on(import(&source, &store)).expect("imported");
        (store, imported)
    }

    #[test]
    fn import_export_round_trip_as_file_and_car() {
        let dir = tempfile::tempdir().expect("temp dir");
        let content: Vec<u8> = (0..300_000u32).map(|n| (n % 251) as u8).collect();
        let (store, imported) = imported_file(dir.path(), &content);
        assert_eq!(imported.blocks, 3); // two leaves and the root
        let everything = Selector::explore_all_recursively();
        let verified = block_on(verify(&store, &imported.root(), &everything)).expect("complete");
        assert_eq!(verified.bytes, imported.bytes);

        let out = dir.path().join("b.txt");
        let bar = ProgressBar::hidden();
        let written = block_on(write_output(
            &store,
            &imported.root(),
            Reach::WholeDag,
            &out,
            &bar,
        ))
        .expect("written");
        assert_eq!(written, verified);
        assert_eq!(std::fs::read(&out).expect("read"), content);

        let car_out = dir.path().join("b.car");
        let written = block_on(write_output(
            &store,
            &imported.root(),
            Reach::WholeDag,
            &car_out,
            &bar,
        ))
        .expect("car");
        assert_eq!(written, verified);
        let other = InMemoryBlockstore::<64>::new();
        let again = block_on(import(&car_out, &other)).expect("car import");
        assert_eq!(again.roots, imported.roots);
        assert_eq!(again.bytes, imported.bytes);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().contains("dtx-partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn an_incomplete_dag_fails_verification_and_leaves_no_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, imported) = imported_file(dir.path(), &[7u8; 300_000]);
        // A second store with only the root block.
        let partial = InMemoryBlockstore::<64>::new();
        let root_block = block_on(store.get(&imported.root()))
            .expect("get")
            .expect("root stored");
        block_on(partial.put_keyed(&imported.root(), &root_block)).expect("put");
        let everything = Selector::explore_all_recursively();
        assert!(matches!(
            block_on(verify(&partial, &imported.root(), &everything)),
            Err(CliError::Incomplete { .. })
        ));
        let bar = ProgressBar::hidden();
        for name in ["out.bin", "out.car"] {
            let out = dir.path().join(name);
            assert!(matches!(
                block_on(write_output(
                    &partial,
                    &imported.root(),
                    Reach::WholeDag,
                    &out,
                    &bar
                )),
                Err(CliError::Incomplete { .. })
            ));
            assert!(!out.exists());
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    /// The totals of a UnixFS output written in one pass are those of the selector's check:
    /// distinct blocks, for a file whose leaves repeat and for a directory.
    #[test]
    fn one_pass_totals_match_the_check() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
        // 1 MiB of zeros: four identical 256 KiB leaves, one block.
        std::fs::write(tree.join("zeros"), vec![0u8; 1 << 20]).expect("write");
        std::fs::write(tree.join("sub/a.txt"), b"a").expect("write");
        std::fs::write(tree.join("sub/b.txt"), b"a").expect("write");
        let everything = Selector::explore_all_recursively();
        let bar = ProgressBar::hidden();
        for (source, name) in [
            (tree.join("zeros"), "zeros-out"),
            (tree.clone(), "tree-out"),
        ] {
            let store = InMemoryBlockstore::<64>::new();
            let root = block_on(import(&source, &store)).expect("imported").root();
            let checked = block_on(verify(&store, &root, &everything)).expect("complete");
            let out = dir.path().join(name);
            let written = block_on(write_output(&store, &root, Reach::WholeDag, &out, &bar))
                .expect("written");
            assert_eq!(written, checked, "{name}");
        }
        let out = dir.path().join("zeros-out");
        assert_eq!(std::fs::read(out).expect("read"), vec![0u8; 1 << 20]);
    }

    /// A block that does not hash to its CID fails the one-pass write, which leaves no output.
    #[test]
    fn a_corrupt_block_fails_the_write_and_leaves_no_output() {
        let dir = tempfile::tempdir().expect("temp dir");
        let content: Vec<u8> = (0..600_000u32).map(|n| (n % 253) as u8).collect();
        let (store, imported) = imported_file(dir.path(), &content);
        let root = imported.root();
        // A copy of the DAG with the second leaf's first byte flipped.
        let root_block = block_on(store.get(&root)).expect("get").expect("root");
        let corrupt = InMemoryBlockstore::<64>::new();
        block_on(corrupt.put_keyed(&root, &root_block)).expect("put");
        let links = ipld_selector::dagpb::decode(&root_block)
            .expect("dag-pb")
            .links;
        assert!(links.len() >= 2, "{} leaves", links.len());
        for (index, link) in links.iter().enumerate() {
            let mut data = block_on(store.get(&link.hash)).expect("get").expect("leaf");
            if index == 1 {
                data[0] ^= 1;
            }
            block_on(corrupt.put_keyed(&link.hash, &data)).expect("put");
        }
        let bar = ProgressBar::hidden();
        for name in ["out.bin", "out.car"] {
            let out = dir.path().join(name);
            let result = block_on(write_output(&corrupt, &root, Reach::WholeDag, &out, &bar));
            assert!(
                matches!(result, Err(CliError::Incomplete { .. })),
                "{name}: {result:?}"
            );
            assert!(!out.exists(), "{name}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn existing_and_unwritable_outputs_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let existing = dir.path().join("there");
        std::fs::write(&existing, b"x").expect("write");
        assert!(matches!(
            check_output(&existing),
            Err(CliError::OutputExists { .. })
        ));
        let missing_dir = dir.path().join("no/such/dir/file");
        assert!(matches!(
            check_output(&missing_dir),
            Err(CliError::Output { .. })
        ));
    }
}
