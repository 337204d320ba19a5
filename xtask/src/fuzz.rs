//! `cargo xtask fuzz <target> [seconds]`: one cargo-fuzz target on the stable toolchain.

use std::path::Path;

use anyhow::bail;

use crate::cmd::{self, cargo};

/// How long a target runs when no duration is given, in seconds.
pub(crate) const DEFAULT_SECONDS: u64 = 60;

/// Runs `target` for `seconds`, installing cargo-fuzz first if `cargo fuzz` is missing.
///
/// cargo-fuzz passes nightly-only flags to rustc (`-Z sanitizer=…`, sanitizer-coverage
/// options), so the run sets `RUSTC_BOOTSTRAP=1` to let the stable compiler accept them.
///
/// # Errors
/// When the target does not exist, cargo-fuzz cannot be installed, or the run fails (a crash
/// found is a failure; its input is left in `fuzz/artifacts/<target>/`).
pub(crate) fn run(target: &str, seconds: u64) -> anyhow::Result<()> {
    let fuzz_dir = cmd::root().join("fuzz");
    let targets = target_names(&fuzz_dir.join("fuzz_targets"))?;
    if !targets.iter().any(|name| name == target) {
        bail!(
            "no fuzz target `{target}`; the targets are: {}",
            targets.join(", ")
        );
    }
    if cmd::output(cargo().args(["fuzz", "--version"])).is_err() {
        println!("cargo fuzz is not installed; installing it");
        cmd::run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let mut command = cargo();
    command
        .current_dir(&fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "fuzz",
            "run",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
        ]);
    cmd::run(&mut command)
}

/// The fuzz targets: the stems of the `*.rs` files in `fuzz/fuzz_targets/`, sorted.
fn target_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs")
            && let Some(stem) = path.file_stem().and_then(|stem| stem.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dagcbor_decode_target_is_found() -> anyhow::Result<()> {
        let names = target_names(&cmd::root().join("fuzz/fuzz_targets"))?;
        assert!(
            names.iter().any(|name| name == "dagcbor_decode"),
            "{names:?}"
        );
        Ok(())
    }
}
