//! What the Graphsync part (`interop.rs`) and the data-transfer part (`interop_dt.rs`) of
//! `cargo xtask interop` share: the cells of the matrices and how a matrix is written into
//! `docs/interop.md`, child processes that are always reaped, and reading a CARv1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cmd;

/// Where the peers are built and the suites keep their work: `CARGO_TARGET_DIR`, else the
/// workspace's `target/`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// The outcome of one cell of a matrix.
#[derive(Clone, Debug)]
pub(crate) enum Cell {
    Pass,
    Fail(String),
    NotRun(String),
}

impl Cell {
    /// The cell as the Markdown matrix shows it.
    pub(crate) fn short(&self) -> String {
        match self {
            Cell::Pass => "pass".to_owned(),
            Cell::Fail(_) => "**FAIL**".to_owned(),
            Cell::NotRun(why) => format!("not run: {why}"),
        }
    }

    /// The cell with the reason of a failure, for the console.
    pub(crate) fn long(&self) -> String {
        match self {
            Cell::Fail(why) => format!("FAIL: {why}"),
            other => other.short(),
        }
    }
}

/// A child process that is killed and reaped when dropped.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // Either fails only when the child has already gone: nothing left to clean up.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `go build` of one Go peer's module, running in the background while the Rust peer builds.
pub(crate) struct GoBuild {
    /// The module directory, relative to the workspace root.
    dir: String,
    /// Where the binary goes.
    binary: PathBuf,
    /// The running `go build`.
    child: Guard,
}

impl GoBuild {
    /// Starts `go build` in `root/dir`, the binary going to `work/<dir with - for />`.
    ///
    /// # Errors
    /// When go cannot be started.
    pub(crate) fn start(root: &Path, work: &Path, dir: &str) -> anyhow::Result<GoBuild> {
        let binary = work.join(dir.replace('/', "-"));
        let mut command = Command::new("go");
        command
            .arg("build")
            .arg("-o")
            .arg(&binary)
            .arg(".")
            .current_dir(root.join(dir));
        let line = cmd::render(&command);
        println!("$ {line} &");
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{line}` (is go installed?)"))?;
        Ok(GoBuild {
            dir: dir.to_owned(),
            binary,
            child: Guard(child),
        })
    }

    /// Waits for the build to end; the binary.
    ///
    /// # Errors
    /// When the build fails.
    pub(crate) fn finish(mut self) -> anyhow::Result<PathBuf> {
        let status = self
            .child
            .0
            .wait()
            .with_context(|| format!("waiting for go build in {}", self.dir))?;
        if !status.success() {
            bail!("go build in {} failed ({status})", self.dir);
        }
        Ok(self.binary)
    }
}

/// Prints the closing lines of a suite: how many cells passed, failed and were not run, and
/// each failure.
pub(crate) fn print_summary(
    suite: &str,
    cells: usize,
    not_run: usize,
    failures: &[String],
    elapsed: Duration,
) {
    println!(
        "{suite}: {cells} cells, {} passed, {} failed, {not_run} not run, in {elapsed:.0?}",
        cells.saturating_sub(failures.len() + not_run),
        failures.len(),
    );
    for failure in failures {
        println!("  FAIL {failure}");
    }
}

/// Owned copies of `args`.
pub(crate) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// Replaces the text between the marker comments `start` and `end` of `path` with `matrix`.
///
/// # Errors
/// When the file cannot be read or written, or lacks the markers in this order.
pub(crate) fn write_report(
    path: &Path,
    start: &str,
    end: &str,
    matrix: &str,
) -> anyhow::Result<()> {
    let doc =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(from), Some(to)) = (doc.find(start), doc.find(end)) else {
        bail!("{} lacks the markers {start} and {end}", path.display());
    };
    if to < from {
        bail!(
            "{}: the markers {start} and {end} are out of order",
            path.display()
        );
    }
    let updated = format!("{}{start}\n{matrix}{}", &doc[..from], &doc[to..]);
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

/// Fails unless the `kind` CAR (`received`, `exported`) `got` is byte for byte `want`, the CAR
/// of `what`; says where they first differ.
///
/// # Errors
/// When they differ.
pub(crate) fn same_car(kind: &str, got: &[u8], want: &[u8], what: &str) -> anyhow::Result<()> {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        bail!(
            "the {kind} CAR differs from {what}: {} bytes vs {} (first difference at byte {at})",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

/// The sections (CID bytes + data) of a CARv1, as raw byte strings.
///
/// # Errors
/// When the CAR ends inside a varint or a section.
pub(crate) fn car_sections(car: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut at = 0;
    let header = varint(car, &mut at)?;
    at = at.checked_add(header).context("car header too long")?;
    let mut sections = Vec::new();
    while at < car.len() {
        let len = varint(car, &mut at)?;
        let end = at.checked_add(len).context("car section too long")?;
        sections.push(car.get(at..end).context("car ends inside a section")?);
        at = end;
    }
    Ok(sections)
}

/// The unsigned varint at `at` of `bytes`; moves `at` past it.
///
/// # Errors
/// When the bytes end inside the varint or it is longer than 9 bytes.
pub(crate) fn varint(bytes: &[u8], at: &mut usize) -> anyhow::Result<usize> {
    let mut value = 0usize;
    for shift in (0..63).step_by(7) {
        let byte = *bytes.get(*at).context("car ends inside a varint")?;
        *at += 1;
        value |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("car varint too long")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn car_sections_reads_each_section() -> anyhow::Result<()> {
        // Header of 2 bytes, then sections of 3 and 1 bytes.
        let car = [2, 0xa0, 0xa0, 3, 1, 2, 3, 1, 9];
        assert_eq!(car_sections(&car)?, [&[1, 2, 3][..], &[9][..]]);
        assert!(car_sections(&[2, 0xa0, 0xa0, 3, 1]).is_err());
        assert!(car_sections(&[2, 0xa0, 0xa0, 0x80]).is_err());
        Ok(())
    }

    #[test]
    fn same_car_says_where_the_cars_differ() {
        assert!(same_car("exported", b"abc", b"abc", "the fixture").is_ok());
        let error = same_car("exported", b"abd", b"abc", "the fixture")
            .err()
            .map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "the exported CAR differs from the fixture: 3 bytes vs 3 (first difference at \
                 byte 2)"
            )
        );
        let error = same_car("received", b"ab", b"abc", "the reference's")
            .err()
            .map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "the received CAR differs from the reference's: 2 bytes vs 3 (first difference \
                 at byte 2)"
            )
        );
    }

    #[test]
    fn write_report_replaces_only_between_the_markers() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-interop-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("interop.md");
        let (start, end) = ("<!-- m:start -->", "<!-- m:end -->");
        std::fs::write(&path, format!("before\n{start}\nold\n{end}\nafter\n"))?;
        write_report(&path, start, end, "new\n")?;
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, format!("{end}\n{start}\n"))?;
        let out_of_order = write_report(&path, start, end, "new\n");
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(text, format!("before\n{start}\nnew\n{end}\nafter\n"));
        assert!(out_of_order.is_err());
        Ok(())
    }
}
