//! The `dtx` rows of `cargo xtask bench`: the program users run, on its own block stores (one
//! synced file per block, decision 0009), with the bench's UnixFS file. Rust only (Go has no
//! such program), so these rows check the memory target of a 1 GiB transfer, not a ratio.
//!
//! The prepared UnixFS DAG is exported as a CAR (not measured), then measured: `dtx import` of
//! the CAR into a fresh data directory; `dtx serve` of that directory and `dtx pull -o FILE`
//! from a fresh one under the requesters' directory, from the pull's start to its exit (so with
//! the dial, the check that the DAG is complete and the writing of the file). Peak RSS is
//! sampled as for the other requesters; the serve's is read once the pull has exited.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{
    Dataset, Guard, RSS_TARGET, RUN_TIMEOUT, SAMPLE_EVERY, children_cpu, mib, process_cpu,
    remove_if_there, vm_hwm, wait_for_event, wait_listening,
};
use crate::cmd;

/// How long `dtx serve` may take, after it listens, to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One measured `dtx` process (and, for the pull, the serve it pulled from).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Measured {
    pub(super) seconds: f64,
    pub(super) cpu: f64,
    pub(super) hwm: u64,
}

/// The `dtx` figures of one bench run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct DtxRun {
    pub(super) import: Measured,
    pub(super) pull: Measured,
    /// The serve's CPU during the pull and its peak RSS over its whole life.
    pub(super) serve: Measured,
}

/// Builds `dtx` in release mode and returns its path.
pub(super) fn build(target: &Path) -> anyhow::Result<PathBuf> {
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "dtx", "--bin", "dtx"]))?;
    let binary = target.join("release/dtx");
    if !binary.is_file() {
        bail!("dtx was not built at {}", binary.display());
    }
    Ok(binary)
}

/// Where one run keeps its files.
pub(super) struct Places<'a> {
    /// The bench's work directory (the CAR and the serve's data directory).
    pub(super) work: &'a Path,
    /// The requesters' directory (the pull's data directory and file).
    pub(super) receive: &'a Path,
}

/// Exports `dataset` (a UnixFS file of `file_bytes`) with `bench_peer` and measures
/// `dtx import`, `dtx serve` and `dtx pull`.
pub(super) fn run(
    dtx: &Path,
    bench_peer: &Path,
    (dataset, file_bytes): (&Dataset, u64),
    places: &Places<'_>,
    clock_ticks: f64,
) -> anyhow::Result<DtxRun> {
    let car = places.work.join("dtx-unixfs.car");
    let serve_dir = places.work.join("dtx-serve");
    let pull_dir = places.receive.join("dtx-pull");
    let output = places.receive.join("dtx-pulled.bin");
    for dir in [&serve_dir, &pull_dir] {
        remove_if_there(dir)?;
    }
    std::fs::create_dir_all(places.receive)
        .with_context(|| format!("creating {}", places.receive.display()))?;
    cmd::run(
        Command::new(bench_peer)
            .arg("export")
            .arg("--store")
            .arg(&dataset.rust_store)
            .args(["--root", &dataset.root, "--out"])
            .arg(&car),
    )?;
    let import = measure_import(dtx, &serve_dir, &car, dataset, clock_ticks);
    std::fs::remove_file(&car).with_context(|| format!("removing {}", car.display()))?;
    let import = import?;
    let pull_places = PullPlaces {
        serve_dir: &serve_dir,
        pull_dir: &pull_dir,
        output: &output,
    };
    let (pull, serve) = measure_pull(dtx, &pull_places, (dataset, file_bytes), clock_ticks)?;
    remove_if_there(&serve_dir)?;
    remove_if_there(places.receive)?;
    Ok(DtxRun {
        import,
        pull,
        serve,
    })
}

/// `dtx` on `data_dir` with JSON output.
fn dtx_command(dtx: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(dtx);
    command
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// `dtx import CAR` into `data_dir`, which must then hold the whole DAG.
fn measure_import(
    dtx: &Path,
    data_dir: &Path,
    car: &Path,
    dataset: &Dataset,
    clock_ticks: f64,
) -> anyhow::Result<Measured> {
    let mut command = dtx_command(dtx, data_dir);
    command.arg("import").arg(car);
    let (measured, status, lines) = sample_until_exit(&mut command, clock_ticks)?;
    let imported = last_event(&lines, "imported")
        .with_context(|| format!("dtx import exited with {status}: {lines:?}"))?;
    if !status.success()
        || imported["root"].as_str() != Some(dataset.root.as_str())
        || imported["blocks"].as_u64() != Some(dataset.blocks)
    {
        bail!("dtx import exited with {status} and said {imported}");
    }
    Ok(measured)
}

/// The directories and the file of one pull.
struct PullPlaces<'a> {
    serve_dir: &'a Path,
    pull_dir: &'a Path,
    output: &'a Path,
}

/// `dtx serve` on `serve_dir` and `dtx pull -o output` from it on `pull_dir`, which must write
/// the file's `file_bytes`: the pull, and the serve's CPU during it with its peak RSS.
fn measure_pull(
    dtx: &Path,
    &PullPlaces {
        serve_dir,
        pull_dir,
        output,
    }: &PullPlaces<'_>,
    (dataset, file_bytes): (&Dataset, u64),
    clock_ticks: f64,
) -> anyhow::Result<(Measured, Measured)> {
    let mut server = Guard(
        dtx_command(dtx, serve_dir)
            .args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting dtx serve")?,
    );
    let stdout = server.0.stdout.take().context("dtx serve has no stdout")?;
    let lines = cmd::forward_lines(stdout);
    let address = wait_listening(&lines)?;
    wait_for_event(&lines, "ready", READY_TIMEOUT)?;
    let serve_pid = server.0.id();
    let serve_cpu_before = process_cpu(serve_pid).context("dtx serve exited")?;

    let mut pull = dtx_command(dtx, pull_dir);
    pull.args(["pull", &address, &dataset.root, "-o"])
        .arg(output);
    let (measured, status, pull_lines) = sample_until_exit(&mut pull, clock_ticks)?;
    let serve_cpu_after = process_cpu(serve_pid).context("dtx serve exited during the pull")?;
    let serve_hwm = vm_hwm(serve_pid).context("dtx serve exited during the pull")?;
    drop(server);

    let pulled = last_event(&pull_lines, "pulled")
        .with_context(|| format!("dtx pull exited with {status}: {pull_lines:?}"))?;
    if !status.success() || pulled["bytes"].as_u64() != Some(dataset.bytes) {
        bail!("dtx pull exited with {status} and said {pulled}");
    }
    let written = std::fs::metadata(output)
        .with_context(|| format!("dtx pull wrote no {}", output.display()))?
        .len();
    if written != file_bytes {
        bail!("dtx pull wrote {written} bytes, the file has {file_bytes}");
    }
    let serve = Measured {
        seconds: measured.seconds,
        cpu: serve_cpu_after.saturating_sub(serve_cpu_before) as f64 / clock_ticks,
        hwm: serve_hwm,
    };
    Ok((measured, serve))
}

/// Runs `command` to its exit, sampling its peak RSS: its wall time, CPU and peak, its exit
/// status and the lines it printed.
fn sample_until_exit(
    command: &mut Command,
    clock_ticks: f64,
) -> anyhow::Result<(Measured, ExitStatus, Vec<String>)> {
    let children_before = children_cpu().context("reading this process's children's CPU")?;
    let started = Instant::now();
    let mut child = Guard(
        command
            .stdout(Stdio::piped())
            .spawn()
            .context("starting dtx")?,
    );
    let stdout = child.0.stdout.take().context("dtx has no stdout")?;
    let lines = cmd::forward_lines(stdout);
    let pid = child.0.id();
    let mut hwm = 0u64;
    let status = loop {
        if let Some(sample) = vm_hwm(pid) {
            hwm = hwm.max(sample);
        }
        if let Some(status) = child.0.try_wait().context("waiting for dtx")? {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            bail!("dtx did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let seconds = started.elapsed().as_secs_f64();
    let children_after = children_cpu().context("reading this process's children's CPU")?;
    let mut printed = Vec::new();
    // The reading thread ends once the exited process's stdout is drained.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        printed.push(line);
    }
    let measured = Measured {
        seconds,
        cpu: children_after.saturating_sub(children_before) as f64 / clock_ticks,
        hwm,
    };
    Ok((measured, status, printed))
}

/// The last JSON line of `lines` whose `event` is `event`.
fn last_event(lines: &[String], event: &str) -> Option<serde_json::Value> {
    lines
        .iter()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|value| value["event"].as_str() == Some(event))
}

/// The `dtx` rows as a markdown table, with the memory target.
pub(super) fn render(run: &DtxRun, dataset: &Dataset) -> String {
    let rate = |seconds: f64| dataset.bytes as f64 / 1e6 / seconds;
    let row = |what: &str, measured: &Measured| {
        format!(
            "| {what} | {:.1} | {:.2} | {:.2} | {:.0} |\n",
            rate(measured.seconds),
            measured.seconds,
            measured.cpu,
            mib(measured.hwm)
        )
    };
    let mut out = format!(
        "`dtx`, the program, on {} (its own block stores, one synced file per block; the \
         serve's data directory in the bench's work directory, the pull's under the \
         requesters' directory; the pull's time runs from its start to its exit, so it \
         includes the dial, the check that the DAG is complete and the writing of the \
         file):\n\n\
         | job | MB/s | seconds | CPU s | peak RSS (MiB) |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
        dataset.label
    );
    out.push_str(&row("`dtx import` of its CAR", &run.import));
    out.push_str(&row("`dtx pull -o FILE`, the pull", &run.pull));
    out.push_str(&row("`dtx pull -o FILE`, the serve", &run.serve));
    let peaks = [run.import.hwm, run.pull.hwm, run.serve.hwm];
    let met = peaks.iter().all(|peak| *peak < RSS_TARGET);
    out.push_str(&format!(
        "\n- dtx on {}: peak RSS import {:.0}, pull {:.0}, serve {:.0} MiB (target under 128 MiB \
         per side: {}).\n",
        dataset.label,
        mib(run.import.hwm),
        mib(run.pull.hwm),
        mib(run.serve.hwm),
        if met { "met" } else { "missed" },
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(hwm_mib: u64) -> Measured {
        Measured {
            seconds: 2.0,
            cpu: 1.5,
            hwm: hwm_mib << 20,
        }
    }

    #[test]
    fn the_rows_show_each_process_and_the_memory_target() {
        let dataset = super::super::tests::dataset();
        let under = DtxRun {
            import: measured(9),
            pull: measured(45),
            serve: measured(55),
        };
        let text = render(&under, &dataset);
        assert!(text.contains("| `dtx import` of its CAR | "), "{text}");
        assert!(text.contains("| 2.00 | 1.50 | 45 |"), "{text}");
        assert!(
            text.contains("serve 55 MiB (target under 128 MiB per side: met)"),
            "{text}"
        );
        let over = DtxRun {
            serve: measured(130),
            ..under
        };
        assert!(render(&over, &dataset).contains("per side: missed"));
    }
}
