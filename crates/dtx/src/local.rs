//! `dtx import` and `dtx export`: the block store and the filesystem, no network; a progress
//! bar on stderr while they work (when it is a terminal, without `--quiet` or `--json`).

use crate::cli::{ExportArgs, ImportArgs, Settings};
use crate::dagfiles::{self, Count, Counting, Reach};
use crate::error::CliError;
use crate::node::{DataDir, Roots};
use crate::output::{Output, ordered, set_total};
use crate::transfer::parse_cid;

/// `dtx import PATH`: the DAG goes into the block store and its roots are served by later
/// `dtx serve` runs on the same data directory.
pub(crate) async fn import(
    settings: &Settings,
    out: Output,
    args: ImportArgs,
) -> Result<(), CliError> {
    let data_dir = DataDir::open(&settings.data_dir)?;
    let roots = Roots::load(&data_dir.path)?;
    let blocks = data_dir.blocks().await?;
    let bar = out.progress(&format!("import {}", args.path.display()));
    set_total(&bar, dagfiles::source_bytes(&args.path));
    let count = if dagfiles::is_car(&args.path) {
        Count::Puts
    } else {
        Count::RawPuts
    };
    let imported = dagfiles::import(&args.path, &Counting::new(blocks.as_ref(), &bar, count)).await;
    bar.finish_and_clear();
    let imported = imported?;
    for root in &imported.roots {
        roots.add(*root).map_err(|source| CliError::DataDir {
            path: data_dir.path.clone(),
            source,
        })?;
    }
    let root = imported.root();
    out.event(
        ordered!({
            "event": "imported",
            "path": args.path.display().to_string(),
            "root": root.to_string(),
            "blocks": imported.blocks,
            "bytes": imported.bytes,
        }),
        || root.to_string(),
    );
    Ok(())
}

/// `dtx export CID -o PATH`: a stored DAG, checked complete, written as UnixFS or CAR.
pub(crate) async fn export(
    settings: &Settings,
    out: Output,
    args: ExportArgs,
) -> Result<(), CliError> {
    let root = parse_cid(&args.cid)?;
    dagfiles::check_output(&args.output)?;
    let data_dir = DataDir::open(&settings.data_dir)?;
    let blocks = data_dir.blocks().await?;
    let has_root = blockstore::Blockstore::has(blocks.as_ref(), &root)
        .await
        .map_err(|error| data_dir.corrupt("block store", &error))?;
    if !has_root {
        return Err(CliError::NotStored {
            cid: root.to_string(),
            data_dir: data_dir.path.clone(),
        });
    }
    // One pass over the blocks: each is verified as it is written out.
    let bar = out.progress(&format!("export {root}"));
    if let Some(total) = dagfiles::dag_total(blocks.as_ref(), &root).await {
        set_total(&bar, total);
    }
    let written =
        dagfiles::write_output(blocks.as_ref(), &root, Reach::WholeDag, &args.output, &bar).await;
    bar.finish_and_clear();
    let verified = written?;
    out.event(
        ordered!({
            "event": "exported",
            "root": root.to_string(),
            "output": args.output.display().to_string(),
            "blocks": verified.blocks,
            "bytes": verified.bytes,
        }),
        || format!("exported {root} to {}", args.output.display()),
    );
    Ok(())
}
