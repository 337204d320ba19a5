//! The store in both layouts, on temporary directories.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use blockstore::Blockstore;
use cid::Cid;
use cid::multihash::Multihash;

use super::*;

/// A raw block's CID (identity hash over `data`, which the store does not check).
fn raw(data: &[u8]) -> anyhow::Result<Cid> {
    Ok(Cid::new_v1(0x55, Multihash::wrap(0x00, data)?))
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> anyhow::Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

async fn round_trip(layout: Layout, config: Config) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let blocks = dir.path().join("blocks");
    let cid = raw(b"block")?;
    let store = Store::open(&blocks, layout, config.clone())?;
    assert_eq!(store.get(&cid).await?, None);
    assert!(!store.has(&cid).await?);
    store.put_keyed(&cid, b"block").await?;
    assert!(store.has(&cid).await?);
    assert_eq!(store.get(&cid).await?, Some(b"block".to_vec()));
    assert_eq!(std::fs::read(store.path(&cid))?, b"block");
    assert_eq!(store.puts(), 1);
    drop(store);
    // The files outlive the handle.
    let again = Store::open(&blocks, layout, config)?;
    assert_eq!(again.get(&cid).await?, Some(b"block".to_vec()));
    again.remove(&cid).await?;
    assert!(!again.has(&cid).await?);
    assert_eq!(again.get(&cid).await?, None);
    // Removing a missing block is not an error.
    again.remove(&cid).await?;
    again.close().await?;
    Ok(())
}

#[tokio::test]
async fn durable_blocks_round_trip_and_outlive_the_handle() -> anyhow::Result<()> {
    round_trip(Layout::Durable, Config::default()).await?;
    round_trip(Layout::Durable, Config::default().with_inline_writes(true)).await
}

#[tokio::test]
async fn sharded_blocks_round_trip_and_outlive_the_handle() -> anyhow::Result<()> {
    round_trip(Layout::Sharded, Config::default()).await?;
    round_trip(Layout::Sharded, Config::default().with_inline_writes(true)).await
}

#[tokio::test]
async fn sharded_durable_blocks_round_trip_and_outlive_the_handle() -> anyhow::Result<()> {
    round_trip(Layout::ShardedDurable, Config::default()).await?;
    round_trip(
        Layout::ShardedDurable,
        Config::default().with_inline_writes(true),
    )
    .await
}

#[test]
fn an_inline_put_has_written_its_file_at_its_first_poll() -> anyhow::Result<()> {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};

    let dir = tempfile::tempdir()?;
    let cid = raw(b"block")?;
    let config = Config::default().with_inline_writes(true);
    assert!(config.inline_writes());
    let store = Store::open(dir.path(), Layout::Sharded, config)?;
    let mut put = std::pin::pin!(store.put_keyed(&cid, b"block"));
    // Ready at once: graphsync's driver then answers it without a task or a wake-up.
    let polled = put.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(polled, Poll::Ready(Ok(()))), "{polled:?}");
    assert_eq!(std::fs::read(store.path(&cid))?, b"block");
    assert_eq!(store.puts(), 1);
    Ok(())
}

#[tokio::test]
async fn durable_files_are_named_by_the_cid_in_the_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cid = raw(b"block")?;
    let store = Store::open(dir.path(), Layout::Durable, Config::default())?;
    store.put_keyed(&cid, b"block").await?;
    assert_eq!(store.path(&cid), dir.path().join(cid.to_string()));
    // Nothing but the block: no temporary file is left.
    assert_eq!(names(dir.path())?, [OsString::from(cid.to_string())]);
    Ok(())
}

async fn sharded_files_use_the_flatfs_next_to_last_2_layout_in(
    layout: Layout,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cid = raw(b"block")?;
    let key = cid.to_string();
    let store = Store::open(dir.path(), layout, Config::default())?;
    store.put_keyed(&cid, b"block").await?;
    let shard = &key[key.len() - 3..key.len() - 1];
    assert_eq!(store.path(&cid), dir.path().join(shard).join(&key));
    assert_eq!(names(dir.path())?, [OsString::from(shard)]);
    assert_eq!(names(&dir.path().join(shard))?, [OsString::from(&key)]);
    Ok(())
}

#[tokio::test]
async fn sharded_files_use_the_flatfs_next_to_last_2_layout() -> anyhow::Result<()> {
    sharded_files_use_the_flatfs_next_to_last_2_layout_in(Layout::Sharded).await?;
    sharded_files_use_the_flatfs_next_to_last_2_layout_in(Layout::ShardedDurable).await
}

#[test]
fn shards_are_the_next_to_last_two_characters() {
    assert_eq!(shard("bafkreiabcdefgxy"), "gx");
    assert_eq!(shard("abc"), "ab");
    assert_eq!(shard("ab"), "__");
    assert_eq!(shard(""), "__");
}

async fn existing_block_is_not_rewritten(layout: Layout) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cid = raw(b"block")?;
    let store = Store::open(dir.path(), layout, Config::default())?;
    store.put_keyed(&cid, b"block").await?;
    // Change the stored bytes behind the store's back: a second put must leave them.
    std::fs::write(store.path(&cid), b"kept")?;
    store.put_keyed(&cid, b"block").await?;
    assert_eq!(store.get(&cid).await?, Some(b"kept".to_vec()));
    assert_eq!(
        store.puts(),
        2,
        "a put that finds the block counts as finished"
    );
    Ok(())
}

#[tokio::test]
async fn durable_block_already_stored_is_not_written_again() -> anyhow::Result<()> {
    existing_block_is_not_rewritten(Layout::Durable).await
}

#[tokio::test]
async fn sharded_block_already_stored_is_not_written_again() -> anyhow::Result<()> {
    existing_block_is_not_rewritten(Layout::Sharded).await
}

#[tokio::test]
async fn sharded_durable_block_already_stored_is_not_written_again() -> anyhow::Result<()> {
    existing_block_is_not_rewritten(Layout::ShardedDurable).await
}

async fn concurrent_puts_of_one_block(layout: Layout) -> anyhow::Result<()> {
    const PUTS: u64 = 32;
    let dir = tempfile::tempdir()?;
    let cid = raw(b"the same block")?;
    let store = Arc::new(Store::open(
        dir.path(),
        layout,
        Config::default().with_writers(4).with_write_queue(2),
    )?);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PUTS {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.put_keyed(&cid, b"the same block").await });
    }
    while let Some(put) = tasks.join_next().await {
        put??;
    }
    assert_eq!(store.puts(), PUTS);
    assert_eq!(store.get(&cid).await?, Some(b"the same block".to_vec()));
    // Exactly the block's file: every temporary file was renamed away.
    let parent = store.path(&cid);
    let parent = parent.parent().unwrap_or(dir.path());
    assert_eq!(names(parent)?, [OsString::from(cid.to_string())]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_concurrent_puts_of_one_block_all_succeed_and_leave_one_file() -> anyhow::Result<()>
{
    concurrent_puts_of_one_block(Layout::Durable).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_concurrent_puts_of_one_block_all_succeed_and_leave_one_file() -> anyhow::Result<()>
{
    concurrent_puts_of_one_block(Layout::Sharded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_durable_concurrent_puts_of_one_block_all_succeed_and_leave_one_file()
-> anyhow::Result<()> {
    concurrent_puts_of_one_block(Layout::ShardedDurable).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_blocks_through_a_small_queue_are_all_stored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(
        dir.path(),
        Layout::Sharded,
        Config::default().with_writers(2).with_write_queue(1),
    )?);
    let mut tasks = tokio::task::JoinSet::new();
    let mut cids = Vec::new();
    for i in 0..200u32 {
        let data = i.to_be_bytes().to_vec();
        let cid = raw(&data)?;
        cids.push((cid, data.clone()));
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.put_keyed(&cid, &data).await });
    }
    while let Some(put) = tasks.join_next().await {
        put??;
    }
    assert_eq!(store.puts(), 200);
    for (cid, data) in cids {
        assert_eq!(store.get(&cid).await?, Some(data));
    }
    Ok(())
}

async fn write_error_is_an_error(layout: Layout) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let blocks = dir.path().join("blocks");
    let cid = raw(b"block")?;
    let store = Store::open(&blocks, layout, Config::default())?;
    // The directory becomes a plain file: no block file can be created under it (whatever the
    // user's permissions).
    std::fs::remove_dir(&blocks)?;
    std::fs::write(&blocks, b"not a directory")?;
    let put = store.put_keyed(&cid, b"block").await;
    let Err(blockstore::Error::FatalDatabaseError(message)) = put else {
        anyhow::bail!("expected a database error, got {put:?}");
    };
    assert!(
        message.contains(&blocks.display().to_string()),
        "the message names the path: {message}"
    );
    assert_eq!(store.puts(), 0);
    assert!(
        store.get(&cid).await.is_err(),
        "a read that fails is an error"
    );
    assert!(store.has(&cid).await.is_err(), "so is a lookup");
    // The writer threads survive the failure: with the directory back, puts work again.
    std::fs::remove_file(&blocks)?;
    std::fs::create_dir(&blocks)?;
    store.put_keyed(&cid, b"block").await?;
    assert_eq!(store.get(&cid).await?, Some(b"block".to_vec()));
    Ok(())
}

#[tokio::test]
async fn durable_write_error_is_reported_as_an_error() -> anyhow::Result<()> {
    write_error_is_an_error(Layout::Durable).await
}

#[tokio::test]
async fn sharded_write_error_is_reported_as_an_error() -> anyhow::Result<()> {
    write_error_is_an_error(Layout::Sharded).await
}

#[tokio::test]
async fn sharded_durable_write_error_is_reported_as_an_error() -> anyhow::Result<()> {
    write_error_is_an_error(Layout::ShardedDurable).await
}

#[test]
fn opening_under_a_file_is_a_typed_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file");
    std::fs::write(&file, b"")?;
    let opened = Store::open(file.join("blocks"), Layout::Sharded, Config::default());
    let Err(OpenError::CreateDir { dir: failed, .. }) = opened else {
        anyhow::bail!("expected CreateDir, got {opened:?}");
    };
    assert_eq!(failed, file.join("blocks"));
    Ok(())
}

#[test]
fn config_defaults_and_bounds() {
    let config = Config::default();
    assert_eq!(
        (config.writers(), config.write_queue()),
        (DEFAULT_WRITERS, DEFAULT_WRITE_QUEUE)
    );
    let config = config.with_writers(0).with_write_queue(0);
    assert_eq!((config.writers(), config.write_queue()), (1, 1));
}

/// Two raw blocks whose files share a shard directory.
fn two_blocks_in_one_shard() -> anyhow::Result<[(Cid, Vec<u8>); 2]> {
    let mut by_shard = std::collections::HashMap::new();
    for i in 0u32.. {
        let data = i.to_be_bytes().to_vec();
        let cid = raw(&data)?;
        let key = cid.to_string();
        if let Some(first) = by_shard.insert(shard(&key).to_owned(), (cid, data.clone())) {
            return Ok([first, (cid, data)]);
        }
    }
    unreachable!("two of 2^32 blocks share a shard")
}

async fn a_removed_shard_directory_is_made_again(config: Config) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Layout::Sharded, config)?;
    let [(first, first_data), (second, second_data)] = two_blocks_in_one_shard()?;
    store.put_keyed(&first, &first_data).await?;
    let shard_dir = store.path(&first).parent().map(Path::to_path_buf);
    let shard_dir = shard_dir.ok_or_else(|| anyhow::anyhow!("a block file has a directory"))?;
    // The store remembers the shard it made; removing it behind the store's back must not
    // make the next put into that shard fail.
    std::fs::remove_dir_all(&shard_dir)?;
    store.put_keyed(&second, &second_data).await?;
    assert_eq!(store.get(&second).await?, Some(second_data));
    assert_eq!(store.get(&first).await?, None);
    assert_eq!(store.puts(), 2);
    Ok(())
}

#[tokio::test]
async fn a_removed_shard_directory_is_made_again_by_a_writer_thread() -> anyhow::Result<()> {
    a_removed_shard_directory_is_made_again(Config::default()).await
}

#[tokio::test]
async fn a_removed_shard_directory_is_made_again_inline() -> anyhow::Result<()> {
    a_removed_shard_directory_is_made_again(Config::default().with_inline_writes(true)).await
}

/// A sharded store that names its temporary files, as it does where the system has no
/// unnamed files (or refuses their link).
fn with_named_temporary_files(store: Store) -> Store {
    store.shards.refuse_unnamed_files();
    store
}

async fn sharded_puts_with_named_temporary_files_keep_every_guarantee_in(
    layout: Layout,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = with_named_temporary_files(Store::open(
        dir.path(),
        layout,
        Config::default().with_inline_writes(true),
    )?);
    let [(first, first_data), (second, second_data)] = two_blocks_in_one_shard()?;
    store.put_keyed(&first, &first_data).await?;
    assert_eq!(store.get(&first).await?, Some(first_data.clone()));
    // A stored block is not written again.
    std::fs::write(store.path(&first), b"kept")?;
    store.put_keyed(&first, &first_data).await?;
    assert_eq!(store.get(&first).await?, Some(b"kept".to_vec()));
    // A shard removed behind the store's back is made again.
    let shard_dir = dir.path().join(shard(&first.to_string()));
    std::fs::remove_dir_all(&shard_dir)?;
    store.put_keyed(&second, &second_data).await?;
    assert_eq!(store.get(&second).await?, Some(second_data));
    // Only the block's file is left: the temporary one was renamed.
    assert_eq!(names(&shard_dir)?, [OsString::from(second.to_string())]);
    assert_eq!(store.puts(), 3);
    assert!(!store.shards.unnamed_files());
    assert_eq!(store.shards.unnamed_links.load(Ordering::Relaxed), 0);
    Ok(())
}

#[tokio::test]
async fn sharded_puts_with_named_temporary_files_keep_every_guarantee() -> anyhow::Result<()> {
    sharded_puts_with_named_temporary_files_keep_every_guarantee_in(Layout::Sharded).await?;
    sharded_puts_with_named_temporary_files_keep_every_guarantee_in(Layout::ShardedDurable).await
}

/// On Linux's tmpfs, which has unnamed files, a sharded put writes one and links it in: the
/// store never falls back to named temporary files, and leaves only the block's file.
#[cfg(target_os = "linux")]
async fn sharded_puts_on_tmpfs_link_in_unnamed_files_in(layout: Layout) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in("/dev/shm").context("a tmpfs at /dev/shm, as Linux has")?;
    let store = Store::open(dir.path(), layout, Config::default())?;
    let [(first, first_data), (second, second_data)] = two_blocks_in_one_shard()?;
    store.put_keyed(&first, &first_data).await?;
    store.put_keyed(&second, &second_data).await?;
    store
        .put_keyed(&first, b"not written: the block is there")
        .await?;
    assert!(store.shards.unnamed_files(), "tmpfs refused unnamed files");
    assert_eq!(store.shards.unnamed_links.load(Ordering::Relaxed), 3);
    assert_eq!(store.get(&first).await?, Some(first_data));
    assert_eq!(store.get(&second).await?, Some(second_data));
    let mut expected = vec![
        OsString::from(first.to_string()),
        OsString::from(second.to_string()),
    ];
    expected.sort();
    assert_eq!(
        names(&dir.path().join(shard(&first.to_string())))?,
        expected
    );
    assert_eq!(store.puts(), 3);
    Ok(())
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn sharded_puts_on_tmpfs_link_in_unnamed_files() -> anyhow::Result<()> {
    sharded_puts_on_tmpfs_link_in_unnamed_files_in(Layout::Sharded).await?;
    sharded_puts_on_tmpfs_link_in_unnamed_files_in(Layout::ShardedDurable).await
}
