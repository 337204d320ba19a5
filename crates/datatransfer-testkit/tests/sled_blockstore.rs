//! dag-io over the `blockstore` crate's sled backend: what a node keeps on disk survives a
//! restart, and nothing unverified ever reaches it.

use blockstore::{Blockstore, SledBlockstore};
use cid::Cid;
use dag_io::{blocks, car};
use ipld_selector::{Config, Selector};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/car");

async fn open(dir: &std::path::Path) -> anyhow::Result<SledBlockstore> {
    let path = dir.to_path_buf();
    let db = tokio::task::spawn_blocking(move || sled::open(path)).await??;
    Ok(SledBlockstore::new(db).await?)
}

#[tokio::test]
async fn car_imported_into_sled_exports_identically_after_reopening() -> anyhow::Result<()> {
    let fixture = std::fs::read(format!("{FIXTURES}/dir-with-files.car"))?;
    let dir = tempfile::tempdir()?;

    let store = open(dir.path()).await?;
    let summary = car::import(&fixture[..], &store).await?;
    let root = summary.header.roots[0];
    assert!(summary.blocks > 1, "the fixture is a DAG of several blocks");
    drop(store);

    let reopened = open(dir.path()).await?;
    let config = Config::default().with_max_recursion_depth(None);
    let (exported, _) = car::export(
        &reopened,
        &root,
        &Selector::explore_all_recursively(),
        config,
        Vec::new(),
    )
    .await?;
    assert_eq!(
        exported, fixture,
        "the DAG read back from sled is the DAG imported"
    );
    Ok(())
}

#[tokio::test]
async fn a_block_that_does_not_match_its_cid_never_reaches_sled() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path()).await?;
    let good = b"the block that was announced";
    let cid: Cid = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, good)?;

    let error = blocks::put_verified(&store, &cid, b"some other bytes").await;
    assert!(
        matches!(error, Err(blocks::BlockError::Mismatch { .. })),
        "{error:?}"
    );
    assert!(
        !store.has(&cid).await?,
        "the mismatching bytes were not stored"
    );

    blocks::put_verified(&store, &cid, good).await?;
    assert_eq!(store.get(&cid).await?.as_deref(), Some(&good[..]));
    Ok(())
}
