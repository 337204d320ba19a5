//! `cargo xtask bench`: data-transfer pulls and Graphsync pulls between our stack and the Go
//! reference, each side a separate process with its blocks on disk, over loopback TCP, against
//! the plain loopback TCP ceiling measured in the same run.
//!
//! Builds, in release mode, two pairs of peers: for the **data-transfer** rows the Go
//! data-transfer peer of the interop suite (`interop/go-dt-v2`, go-data-transfer v2.0.0 on
//! go-graphsync v0.18.1: `go-dt-v2 bench-serve|bench-pull`) and the Rust one
//! (`datatransfer-testkit`'s `dt_interop_peer bench-serve|bench-pull`, on the facade's
//! `datatransfer::libp2p::Node`); for the **graphsync** rows the Go graphsync peer
//! (`interop/go-peer`, go-graphsync v0.18.1) and graphsync's `examples/bench_peer.rs`. Setup (not measured, kept between runs under
//! `<target>/bench/data-<size>-<blocks>/` once complete): `bench_peer gen-unixfs` imports
//! `--size` bytes (default 1 GiB) of seeded pseudo-random data as a kubo-compatible UnixFS file
//! (CIDv1, 256 KiB raw leaves) and `bench_peer gen-cbor` writes a tree of `--blocks` (default
//! 100 000) small dag-cbor blocks, both into the Rust peer's file-per-block store; each DAG is
//! exported as a CAR and loaded into the Go peer's file-per-block store (`go-peer bench-load`),
//! so every pair moves the same blocks. Both stores keep one file per block in go-ds-flatfs's
//! `next-to-last/2` layout, unsynced.
//!
//! Then, per run and per DAG, both prepared stores are read once (not measured, so that no
//! transfer starts with its responder's files reclaimed from the page cache), and per stack
//! (data-transfer, then graphsync) the four pairs requester ← responder: rust ← rust, go ← go,
//! rust ← go and go ← rust. A data-transfer pull opens a pull channel with an `InteropVoucher`
//! the responder accepts and the explore-all selector, and
//! counts only once the channel is Completed on both sides (the requester's `done`, the
//! responder's `finished`, each with the DAG's bytes); a graphsync pull is one explore-all
//! request (`bench_peer serve --store` / `request --store`, `go-peer bench-serve` /
//! `bench-request`). The data-transfer peers serve and store in the same file-per-block layout
//! as the graphsync ones, from the same prepared stores. Each requester writes into a fresh
//! store directory, which is counted (every block must be there) and removed afterwards.
//! Measured per transfer:
//!
//! - time from the requester's `connected` line to its `done` line (process start excluded);
//!   MB/s are 10^6 bytes of block data per second, blocks/s the DAG's blocks per second;
//! - CPU seconds (user + system, from `/proc`): the requester's whole-life total once it is
//!   reaped (this process's `cutime + cstime` grow by it) minus its total at `connected`; the
//!   responder's total after `done` (data-transfer: after both `done` and its own `finished`)
//!   minus its total at `connected`;
//! - peak RSS (`VmHWM` of `/proc/<pid>/status`): the requester's sampled every [`SAMPLE_EVERY`]
//!   while it runs (a lower bound by at most the last sample interval's growth), the
//!   responder's read once after `done` (it still runs, so exact).
//!
//! The ceiling is one TCP connection on 127.0.0.1 between two threads of this process moving
//! `--size` bytes in 256 KiB writes (no encryption, no multiplexing, no storage).
//!
//! Prints every transfer, then a table (per DAG, stack and pair: the median-throughput run of
//! `--runs`, with the largest peaks) and the issue's targets for each stack; with the default sizes it also
//! writes the table, the load average and the command into `docs/benchmarks.md` between
//! [`BEGIN_MARKER`] and [`END_MARKER`]. Not part of `cargo xtask ci`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd;

mod dtx;

/// Default size of the UnixFS file: 1 GiB.
const DEFAULT_SIZE: u64 = 1 << 30;

/// Default number of blocks of the dag-cbor DAG.
const DEFAULT_BLOCKS: u64 = 100_000;

/// Seed of the dag-cbor payloads.
const CBOR_SEED: u64 = 20_240_601;

/// Write size of the loopback TCP ceiling.
const TCP_CHUNK: usize = 256 * 1024;

/// How often the requester's `VmHWM` is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// How long a responder may take to print its listening address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one transfer may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// How long a data-transfer responder may take, after the requester's `done`, to report its
/// side of the channel finished.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Marks the start of the generated part of `docs/benchmarks.md`.
const BEGIN_MARKER: &str = "<!-- cargo xtask bench: begin -->";

/// Marks the end of the generated part of `docs/benchmarks.md`.
const END_MARKER: &str = "<!-- cargo xtask bench: end -->";

/// Peak RSS target for a 1 GiB transfer, per side (issue 9, §3).
const RSS_TARGET: u64 = 128 << 20;

/// Usage of `cargo xtask bench`.
pub(crate) const USAGE: &str = "cargo xtask bench [--size BYTES] [--blocks N] [--runs N] [--no-docs] [--only TEXT] \
     [--receive-dir DIR]";

/// Where requesters write when `--receive-dir` is not given and this exists: a tmpfs, so that
/// the figures measure the stacks rather than the disk's file creation (both sides write one
/// file per block).
const TMPFS: &str = "/dev/shm";

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Bytes of the UnixFS file.
    size: u64,
    /// Blocks of the dag-cbor DAG.
    blocks: u64,
    /// Transfers per DAG and pair.
    runs: usize,
    /// Write `docs/benchmarks.md` (only with the default sizes and no `--only`).
    docs: bool,
    /// Run only the transfers whose description (`"data-transfer rust <- go on dag-cbor
    /// 100000"`) contains this text, or one of its `|`-separated parts.
    only: Option<String>,
    /// The parent of the requesters' store directories (default: [`TMPFS`] when it exists,
    /// else the bench's work directory).
    receive_dir: Option<PathBuf>,
}

impl Options {
    /// Parses the arguments after `bench`.
    ///
    /// # Errors
    /// On an unknown flag, a missing value or a value that is not a positive whole number.
    pub(crate) fn parse(args: &[&str]) -> anyhow::Result<Self> {
        let mut options = Options {
            size: DEFAULT_SIZE,
            blocks: DEFAULT_BLOCKS,
            runs: 1,
            docs: true,
            only: None,
            receive_dir: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> anyhow::Result<u64> {
                let value = args
                    .next()
                    .with_context(|| format!("{name} needs a value ({USAGE})"))?;
                match value.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("{name} must be a positive whole number, got {value:?}"),
                }
            };
            match *arg {
                "--size" => options.size = value("--size")?,
                "--blocks" => options.blocks = value("--blocks")?,
                "--runs" => {
                    options.runs = usize::try_from(value("--runs")?).context("--runs too large")?;
                }
                "--no-docs" => options.docs = false,
                "--only" => options.only = Some(text(args.next(), "--only")?),
                "--receive-dir" => {
                    options.receive_dir = Some(text(args.next(), "--receive-dir")?.into());
                }
                other => bail!("unknown argument {other:?} ({USAGE})"),
            }
        }
        Ok(options)
    }

    /// Whether this is the whole run of issue 9 (the only one written into the docs).
    fn full(&self) -> bool {
        self.size == DEFAULT_SIZE && self.blocks == DEFAULT_BLOCKS && self.only.is_none()
    }

    /// Whether the transfer described by `what` is to run.
    fn selects(&self, what: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split('|').any(|part| what.contains(part)))
    }

    /// The directory the requesters' stores are made in.
    fn receive_parent(&self, work: &Path) -> PathBuf {
        match &self.receive_dir {
            Some(dir) => dir.clone(),
            None if Path::new(TMPFS).is_dir() => PathBuf::from(TMPFS),
            None => work.to_path_buf(),
        }
    }
}

/// The text value of a flag.
fn text(value: Option<&&str>, name: &str) -> anyhow::Result<String> {
    match value {
        Some(value) if !value.is_empty() => Ok((*value).to_owned()),
        _ => bail!("{name} needs a value ({USAGE})"),
    }
}

/// Which program runs one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Rust,
    Go,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Rust => "rust",
            Side::Go => "go",
        }
    }
}

/// Which protocol stack a transfer runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    /// A data-transfer pull channel (go-data-transfer v2 / our `datatransfer` facade).
    DataTransfer,
    /// A bare graphsync request (go-graphsync / our `graphsync` node).
    Graphsync,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::DataTransfer => "data-transfer",
            Stack::Graphsync => "graphsync",
        }
    }
}

/// The stacks, in the order they are measured and shown.
const STACKS: [Stack; 2] = [Stack::DataTransfer, Stack::Graphsync];

/// The pairs, requester first.
const PAIRS: [(Side, Side); 4] = [
    (Side::Rust, Side::Rust),
    (Side::Go, Side::Go),
    (Side::Rust, Side::Go),
    (Side::Go, Side::Rust),
];

/// One benchmark DAG, prepared in both stores.
#[derive(Clone, Debug)]
struct Dataset {
    /// Short name for the table.
    label: String,
    root: String,
    blocks: u64,
    bytes: u64,
    rust_store: PathBuf,
    go_store: PathBuf,
}

/// One transfer's measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    seconds: f64,
    requester_cpu: f64,
    responder_cpu: f64,
    requester_hwm: u64,
    responder_hwm: u64,
}

impl Run {
    fn megabytes_per_second(&self, bytes: u64) -> f64 {
        bytes as f64 / 1e6 / self.seconds
    }
}

/// What one row of the table is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    /// Index into the datasets.
    dataset: usize,
    stack: Stack,
    /// Requester, responder.
    pair: (Side, Side),
}

/// The programs, built.
struct Peers {
    /// graphsync's `bench_peer` (also generates, exports and loads the DAGs).
    rust: PathBuf,
    /// `interop/go-peer` (also loads the DAGs into the Go store).
    go: PathBuf,
    /// `datatransfer-testkit`'s `dt_interop_peer`.
    rust_dt: PathBuf,
    /// `interop/go-dt-v2`.
    go_dt: PathBuf,
    /// The `dtx` program.
    dtx: PathBuf,
}

impl Peers {
    fn binary(&self, stack: Stack, side: Side) -> &Path {
        match (stack, side) {
            (Stack::Graphsync, Side::Rust) => &self.rust,
            (Stack::Graphsync, Side::Go) => &self.go,
            (Stack::DataTransfer, Side::Rust) => &self.rust_dt,
            (Stack::DataTransfer, Side::Go) => &self.go_dt,
        }
    }
}

/// The responder's command line: serve `store` until standard input closes.
fn serve_args(stack: Stack, side: Side, store: &Path) -> Vec<std::ffi::OsString> {
    let (command, flag) = match (stack, side) {
        (Stack::Graphsync, Side::Rust) => ("serve", "--store"),
        (Stack::Graphsync, Side::Go) => ("bench-serve", "--store"),
        (Stack::DataTransfer, _) => ("bench-serve", "--blocks"),
    };
    vec![command.into(), flag.into(), store.into()]
}

/// The requester's command line: pull the DAG under `root` from `address` into `store`.
fn request_args(
    stack: Stack,
    side: Side,
    address: &str,
    root: &str,
    store: &Path,
) -> Vec<std::ffi::OsString> {
    let (command, flag) = match (stack, side) {
        (Stack::Graphsync, Side::Rust) => ("request", "--store"),
        (Stack::Graphsync, Side::Go) => ("bench-request", "--store"),
        (Stack::DataTransfer, _) => ("bench-pull", "--blocks"),
    };
    vec![
        command.into(),
        "--peer".into(),
        address.into(),
        "--root".into(),
        root.into(),
        flag.into(),
        store.into(),
    ]
}

/// A child process that is killed and reaped when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // Either may fail only because the child already exited: nothing left to clean up.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the benchmark, prints the table and (full sizes) writes `docs/benchmarks.md`.
///
/// # Errors
/// When a peer cannot be built, the data cannot be prepared, or a transfer fails or times out.
pub(crate) fn run(options: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_before = load_average();
    let root = cmd::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let work = target.join("bench");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let clock_ticks = clock_ticks();

    let peers = build(&root, &target, &work)?;
    let build_done = Instant::now();
    let datasets = prepare(&peers, &work, options)?;
    let setup_done = Instant::now();

    let ceiling = tcp_ceiling(options.size).context("measuring the loopback TCP ceiling")?;
    println!(
        "bench: loopback TCP ceiling: {:.1} MB/s ({} MiB in {:.2} s)",
        options.size as f64 / 1e6 / ceiling,
        options.size >> 20,
        ceiling
    );

    let receive_parent = options.receive_parent(&work);
    let receive = receive_parent.join(format!("dtx-bench-receive-{}", std::process::id()));
    let receive_fs = cmd::output(
        Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(&receive_parent),
    )
    .map(|out| out.trim().to_owned())
    .unwrap_or_else(|_| "unknown".to_owned());
    println!(
        "bench: requesters write into {} ({receive_fs})",
        receive.display()
    );
    let mut results: Vec<(Key, Run)> = Vec::new();
    // A failed transfer is reported (printed, and as a line under the table) and the run goes
    // on, so that one failing pair does not cost the figures of all the others.
    let mut failures: Vec<String> = Vec::new();
    for index in 0..options.runs {
        for (number, dataset) in datasets.iter().enumerate() {
            let selected = STACKS.iter().any(|stack| {
                PAIRS.iter().any(|pair| {
                    options.selects(&transfer_name(*stack, *pair, &dataset.label, index + 1))
                })
            });
            if selected {
                for store in [&dataset.rust_store, &dataset.go_store] {
                    warm_store(store).with_context(|| format!("warming up {}", store.display()))?;
                }
            }
            for stack in STACKS {
                for pair in PAIRS {
                    let what = transfer_name(stack, pair, &dataset.label, index + 1);
                    if !options.selects(&what) {
                        continue;
                    }
                    let run = match transfer(&peers, stack, pair, dataset, &receive, clock_ticks) {
                        Ok(run) => run,
                        Err(error) => {
                            println!("bench: {what} FAILED: {error:#}");
                            failures.push(format!("{what}: {error:#}"));
                            continue;
                        }
                    };
                    println!(
                        "bench: {:<16} {:<13} {:>4} <- {:<4} run {}: {:>8.1} MB/s {:>9.0} blocks/s in {:>7.2} s, CPU {:.2} s / {:.2} s, peak RSS {} / {} MiB",
                        dataset.label,
                        stack.name(),
                        pair.0.name(),
                        pair.1.name(),
                        index + 1,
                        run.megabytes_per_second(dataset.bytes),
                        dataset.blocks as f64 / run.seconds,
                        run.seconds,
                        run.requester_cpu,
                        run.responder_cpu,
                        run.requester_hwm >> 20,
                        run.responder_hwm >> 20,
                    );
                    results.push((
                        Key {
                            dataset: number,
                            stack,
                            pair,
                        },
                        run,
                    ));
                }
            }
        }
    }
    let dtx_section = match measure_dtx(&peers, &datasets[0], &work, &receive, options, clock_ticks)
    {
        Ok(section) => section,
        Err(error) => {
            println!("bench: dtx FAILED: {error:#}");
            failures.push(format!("dtx: {error:#}"));
            None
        }
    };
    let finished = Instant::now();
    let load_after = load_average();

    let rows: Vec<(Key, Run)> = (0..datasets.len())
        .flat_map(|dataset| {
            STACKS.iter().flat_map(move |stack| {
                PAIRS.iter().map(move |pair| Key {
                    dataset,
                    stack: *stack,
                    pair: *pair,
                })
            })
        })
        .filter_map(|key| {
            let runs: Vec<(Run, u64)> = results
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, run)| (*run, datasets[key.dataset].bytes))
                .collect();
            summarise(&runs).map(|run| (key, run))
        })
        .collect();
    let table = render_table(&datasets, &rows, options.size, ceiling, options.runs);
    let mut targets = render_targets(&datasets, &rows, options);
    if let Some(section) = &dtx_section {
        targets.push('\n');
        targets.push_str(section);
    }
    if !failures.is_empty() {
        targets.push_str(&render_failures(&failures));
    }
    let timing = format!(
        "The whole bench took {:.0} s: {:.0} s building the peers, {:.0} s preparing the data \
         (reused when already there), {:.0} s measuring.",
        finished.duration_since(started).as_secs_f64(),
        build_done.duration_since(started).as_secs_f64(),
        setup_done.duration_since(build_done).as_secs_f64(),
        finished.duration_since(setup_done).as_secs_f64(),
    );
    println!();
    println!("{table}");
    println!("{targets}");
    println!("{timing}");

    if options.docs && options.full() {
        let commit = cmd::output(
            Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(&root),
        )
        .map(|out| out.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
        let dirty = cmd::output(
            Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .current_dir(&root),
        )
        .map(|out| !out.trim().is_empty())
        .unwrap_or(true);
        let date = cmd::output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
            .map(|out| out.trim().to_owned())
            .unwrap_or_else(|_| "unknown date".to_owned());
        let section = format!(
            "{BEGIN_MARKER}\nMeasured {date} at commit {commit}{} with `cargo xtask bench` \
             (median of {} run(s) per row; on a {}-core machine, load average {} before and {} \
             after the run; other engineers' builds were running unless the load says \
             otherwise). The requesters wrote their blocks under {} ({receive_fs}).\n\n{table}\n\
             {targets}\n{timing}\n{END_MARKER}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            },
            options.runs,
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            load_before,
            load_after,
            receive_parent.display(),
        );
        let path = root.join("docs/benchmarks.md");
        let old = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let new = replace_section(&old, &section).with_context(|| {
            format!(
                "{} has no {BEGIN_MARKER} … {END_MARKER} section",
                path.display()
            )
        })?;
        std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
        println!("bench: wrote the table into {}", path.display());
    } else if options.docs {
        println!(
            "bench: not the whole run (default sizes, every transfer), so docs/benchmarks.md is left as it is"
        );
    }
    if !failures.is_empty() {
        bail!(
            "{} transfer(s) failed (listed above); the table holds the others",
            failures.len()
        );
    }
    Ok(())
}

/// How the `dtx` rows are named in the output and matched by `--only`.
const DTX_NAME: &str = "dtx import, serve and pull";

/// Measures `dtx` on the UnixFS DAG once (whatever `--runs`), when `--only` selects it:
/// the rendered rows, `None` when not selected.
fn measure_dtx(
    peers: &Peers,
    unixfs: &Dataset,
    work: &Path,
    receive: &Path,
    options: &Options,
    clock_ticks: f64,
) -> anyhow::Result<Option<String>> {
    let what = format!("{DTX_NAME} on {}", unixfs.label);
    if !options.selects(&what) {
        return Ok(None);
    }
    warm_store(&unixfs.rust_store)
        .with_context(|| format!("warming up {}", unixfs.rust_store.display()))?;
    let places = dtx::Places { work, receive };
    let run = dtx::run(
        &peers.dtx,
        &peers.rust,
        (unixfs, options.size),
        &places,
        clock_ticks,
    )?;
    println!(
        "bench: {what}: import {:.2} s, pull {:.2} s, CPU import {:.2} s, pull {:.2} s / serve {:.2} s, peak RSS import {} MiB, pull {} / serve {} MiB",
        run.import.seconds,
        run.pull.seconds,
        run.import.cpu,
        run.pull.cpu,
        run.serve.cpu,
        run.import.hwm >> 20,
        run.pull.hwm >> 20,
        run.serve.hwm >> 20,
    );
    Ok(Some(dtx::render(&run, unixfs)))
}

/// The failed transfers, one line each (what, then why), for under the table.
fn render_failures(failures: &[String]) -> String {
    let mut out = format!(
        "\nFailed transfers ({}; their pairs have no row, and a target that needs one is not \
         evaluated):\n\n",
        failures.len()
    );
    for failure in failures {
        // One line each, whatever the error's text holds.
        out.push_str(&format!("- {}\n", failure.replace('\n', " ")));
    }
    out
}

/// Builds the Go peers and the Rust bench peers.
fn build(root: &Path, target: &Path, work: &Path) -> anyhow::Result<Peers> {
    let go = work.join("go-peer");
    let go_dt = work.join("go-dt-v2");
    for (binary, module) in [(&go, "interop/go-peer"), (&go_dt, "interop/go-dt-v2")] {
        cmd::run(
            Command::new("go")
                .arg("build")
                .arg("-o")
                .arg(binary)
                .arg(".")
                .current_dir(root.join(module)),
        )?;
    }
    // Two builds, not one: one cargo build of both packages would unify their dependencies'
    // features, and each peer is measured as it builds on its own.
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "graphsync",
        "--example",
        "bench_peer",
    ]))?;
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "datatransfer-testkit",
        "--bin",
        "dt_interop_peer",
    ]))?;
    let dtx = dtx::build(target)?;
    let rust = target.join("release/examples/bench_peer");
    let rust_dt = target.join("release/dt_interop_peer");
    for binary in [&rust, &rust_dt] {
        if !binary.is_file() {
            bail!("the Rust bench peer was not built at {}", binary.display());
        }
    }
    Ok(Peers {
        rust,
        go,
        rust_dt,
        go_dt,
        dtx,
    })
}

/// Generates both DAGs into the Rust store, exports them and loads them into the Go store, or
/// reuses what a previous complete setup left.
fn prepare(peers: &Peers, work: &Path, options: &Options) -> anyhow::Result<Vec<Dataset>> {
    let dir = work.join(format!("data-{}-{}", options.size, options.blocks));
    let done = dir.join("datasets.json");
    let specs: [(&str, Vec<String>); 2] = [
        (
            "unixfs",
            vec![
                "gen-unixfs".into(),
                "--size".into(),
                options.size.to_string(),
            ],
        ),
        (
            "dag-cbor",
            vec![
                "gen-cbor".into(),
                "--blocks".into(),
                options.blocks.to_string(),
                "--seed".into(),
                CBOR_SEED.to_string(),
            ],
        ),
    ];
    let labels = [
        format!("unixfs {} MiB", options.size >> 20),
        format!("dag-cbor {}", options.blocks),
    ];
    let mut datasets = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&done) {
        let saved: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", done.display()))?;
        for ((name, _), label) in specs.iter().zip(&labels) {
            let entry = &saved[*name];
            datasets.push(Dataset {
                label: label.clone(),
                root: entry["root"].as_str().context("saved root")?.to_owned(),
                blocks: entry["blocks"].as_u64().context("saved blocks")?,
                bytes: entry["bytes"].as_u64().context("saved bytes")?,
                rust_store: dir.join(format!("{name}-rust")),
                go_store: dir.join(format!("{name}-go")),
            });
        }
        println!("bench: reusing the data prepared in {}", dir.display());
        return Ok(datasets);
    }
    remove_if_there(&dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut saved = serde_json::Map::new();
    for ((name, generate), label) in specs.iter().zip(&labels) {
        let rust_store = dir.join(format!("{name}-rust"));
        let go_store = dir.join(format!("{name}-go"));
        let car = dir.join(format!("{name}.car"));
        let setup = Instant::now();
        let generated = json_line(
            Command::new(&peers.rust)
                .args(generate)
                .arg("--store")
                .arg(&rust_store),
        )?;
        let root = generated["root"]
            .as_str()
            .context("bench_peer printed no root")?
            .to_owned();
        let blocks = generated["blocks"].as_u64().context("no block count")?;
        let bytes = generated["bytes"].as_u64().context("no byte count")?;
        let exported = json_line(
            Command::new(&peers.rust)
                .arg("export")
                .arg("--store")
                .arg(&rust_store)
                .arg("--root")
                .arg(&root)
                .arg("--out")
                .arg(&car),
        )?;
        if exported["blocks"].as_u64() != Some(blocks) {
            bail!(
                "{name}: generated {blocks} blocks but exported {}",
                exported["blocks"]
            );
        }
        let loaded = json_line(
            Command::new(&peers.go)
                .arg("bench-load")
                .arg("--store")
                .arg(&go_store)
                .arg("--car")
                .arg(&car),
        )?;
        if loaded["blocks"].as_u64() != Some(blocks) {
            bail!(
                "{name}: exported {blocks} blocks but the Go peer loaded {}",
                loaded["blocks"]
            );
        }
        std::fs::remove_file(&car).with_context(|| format!("removing {}", car.display()))?;
        println!(
            "bench: prepared {label}: root {root}, {blocks} blocks, {bytes} bytes, in {:.1} s",
            setup.elapsed().as_secs_f64()
        );
        saved.insert(
            (*name).to_owned(),
            serde_json::json!({"root": root, "blocks": blocks, "bytes": bytes}),
        );
        datasets.push(Dataset {
            label: label.clone(),
            root,
            blocks,
            bytes,
            rust_store,
            go_store,
        });
    }
    std::fs::write(&done, serde_json::Value::Object(saved).to_string())
        .with_context(|| format!("writing {}", done.display()))?;
    Ok(datasets)
}

/// Runs `command` and parses the last line it printed as JSON.
fn json_line(command: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = cmd::output(command)?;
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("expected a JSON line, got {line:?}"))
}

/// Seconds to move `size` bytes over one loopback TCP connection between two threads.
fn tcp_ceiling(size: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding")?;
    let address = listener.local_addr().context("local address")?;
    let receiver = std::thread::spawn(move || -> anyhow::Result<(u64, Instant)> {
        let (mut stream, _) = listener.accept().context("accepting")?;
        let mut buffer = vec![0u8; TCP_CHUNK];
        let mut total = 0u64;
        loop {
            let n = stream.read(&mut buffer).context("reading")?;
            if n == 0 {
                return Ok((total, Instant::now()));
            }
            total += n as u64;
        }
    });
    let mut stream = TcpStream::connect(address).context("connecting")?;
    stream.set_nodelay(true).context("setting nodelay")?;
    let chunk = vec![0xa5u8; TCP_CHUNK];
    let started = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(TCP_CHUNK).min(TCP_CHUNK);
        stream.write_all(&chunk[..n]).context("writing")?;
        left -= n as u64;
    }
    drop(stream);
    let (received, finished) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
    if received != size {
        bail!("sent {size} bytes but {received} arrived");
    }
    Ok(finished.duration_since(started).as_secs_f64())
}

/// One transfer of `dataset` on `stack` from the responder of `pair.1` to the requester of
/// `pair.0`.
fn transfer(
    peers: &Peers,
    stack: Stack,
    (requester, responder): (Side, Side),
    dataset: &Dataset,
    receive: &Path,
    clock_ticks: f64,
) -> anyhow::Result<Run> {
    remove_if_there(receive)?;
    let store = match responder {
        Side::Rust => &dataset.rust_store,
        Side::Go => &dataset.go_store,
    };
    let binary = peers.binary(stack, responder);
    let mut server = Guard(
        Command::new(binary)
            .args(serve_args(stack, responder, store))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    let stdout = server
        .0
        .stdout
        .take()
        .context("the responder has no stdout")?;
    let lines = cmd::forward_lines(stdout);
    let address = wait_listening(&lines)?;
    let responder_pid = server.0.id();

    let binary = peers.binary(stack, requester);
    let children_before = children_cpu().context("reading this process's children's CPU")?;
    let mut client = Guard(
        Command::new(binary)
            .args(request_args(
                stack,
                requester,
                &address,
                &dataset.root,
                receive,
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    let requester_pid = client.0.id();
    let stdout = client
        .0
        .stdout
        .take()
        .context("the requester has no stdout")?;
    let (events_tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && matches!(
                    value["event"].as_str(),
                    Some("connected" | "done" | "fatal")
                )
                && events_tx.send((Instant::now(), value)).is_err()
            {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut requester_hwm = 0u64;
    let mut connected = None;
    let mut done = None;
    let handle = |at: Instant,
                  value: serde_json::Value,
                  connected: &mut Option<(Instant, f64, f64)>,
                  done: &mut Option<(Instant, serde_json::Value)>|
     -> anyhow::Result<()> {
        match value["event"].as_str() {
            Some("connected") => {
                *connected = Some((
                    at,
                    process_cpu(requester_pid).unwrap_or(0) as f64 / clock_ticks,
                    process_cpu(responder_pid).unwrap_or(0) as f64 / clock_ticks,
                ));
            }
            Some("fatal") => bail!("requester fatal error: {}", value["error"]),
            _ => *done = Some((at, value)),
        }
        Ok(())
    };
    // A data-transfer responder reports its side of the channel; a graphsync one has nothing
    // to report (its side ends with the response it sent).
    let mut finished: Option<serde_json::Value> = match stack {
        Stack::DataTransfer => None,
        Stack::Graphsync => Some(serde_json::Value::Null),
    };
    let mut responder_cpu_at_done = None;
    let status = loop {
        if let Some(hwm) = vm_hwm(requester_pid) {
            requester_hwm = requester_hwm.max(hwm);
        }
        while let Ok((at, value)) = events.try_recv() {
            handle(at, value, &mut connected, &mut done)?;
        }
        take_finished(&lines, &mut finished)?;
        if done.is_some() && finished.is_some() && responder_cpu_at_done.is_none() {
            responder_cpu_at_done = process_cpu(responder_pid);
        }
        if let Some(status) = client.0.try_wait().context("waiting for the requester")? {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            bail!("the transfer did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let children_after = children_cpu().context("reading this process's children's CPU")?;
    // Lines printed just before the exit may still be on their way.
    while done.is_none() {
        let (at, value) = events
            .recv_timeout(Duration::from_secs(5))
            .context("the requester printed no done event")?;
        handle(at, value, &mut connected, &mut done)?;
    }
    let finish_deadline = Instant::now() + FINISH_TIMEOUT;
    while finished.is_none() {
        if Instant::now() > finish_deadline {
            bail!(
                "the responder did not report its side of the channel finished within \
                 {FINISH_TIMEOUT:?} of the requester's done ({})",
                done.as_ref()
                    .map_or(serde_json::Value::Null, |(_, done)| done.clone())
            );
        }
        take_finished(&lines, &mut finished)?;
        std::thread::sleep(SAMPLE_EVERY);
    }
    let responder_cpu_at_done = match responder_cpu_at_done {
        Some(ticks) => ticks,
        None => process_cpu(responder_pid).context("the responder exited early")?,
    };
    let responder_hwm =
        vm_hwm(responder_pid).context("the responder exited before it could be measured")?;
    drop(server);

    let (finished_at, done) = done.context("the requester printed no done event")?;
    let (connected, requester_cpu_at_connected, responder_cpu_at_connected) =
        connected.context("the requester printed no connected event")?;
    if !status.success() {
        bail!("the requester exited with {status}; it said {done}");
    }
    check_outcome(stack, &done, finished.as_ref(), dataset)?;
    let stored = count_files(receive)?;
    if stored != dataset.blocks {
        bail!(
            "the requester's store holds {stored} blocks, the DAG has {}",
            dataset.blocks
        );
    }
    std::fs::remove_dir_all(receive).with_context(|| format!("removing {}", receive.display()))?;
    let seconds = finished_at.duration_since(connected).as_secs_f64();
    if seconds <= 0.0 {
        bail!("the requester reported done before connected");
    }
    let requester_total = children_after.saturating_sub(children_before) as f64 / clock_ticks;
    Ok(Run {
        seconds,
        requester_cpu: (requester_total - requester_cpu_at_connected).max(0.0),
        responder_cpu: (responder_cpu_at_done as f64 / clock_ticks - responder_cpu_at_connected)
            .max(0.0),
        requester_hwm,
        responder_hwm,
    })
}

/// Takes the responder's first `finished` line, if one has come, into `finished` (when that
/// is still empty); a `fatal` line is an error.
fn take_finished(
    lines: &mpsc::Receiver<String>,
    finished: &mut Option<serde_json::Value>,
) -> anyhow::Result<()> {
    while let Ok(line) = lines.try_recv() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match value["event"].as_str() {
            Some("finished") if finished.is_none() => *finished = Some(value),
            Some("fatal") => bail!("the responder failed: {}", value["error"]),
            _ => {}
        }
    }
    Ok(())
}

/// Checks what the requester's `done` (and, for data-transfer, the responder's `finished`)
/// say: the whole DAG arrived and the transfer ended as it should on both sides.
fn check_outcome(
    stack: Stack,
    done: &serde_json::Value,
    finished: Option<&serde_json::Value>,
    dataset: &Dataset,
) -> anyhow::Result<()> {
    match stack {
        Stack::Graphsync => {
            if done["status"].as_i64() != Some(20) {
                bail!(
                    "final status {} (expected 20); requester said {done}",
                    done["status"]
                );
            }
            if done["blocks"].as_u64() != Some(dataset.blocks) {
                bail!(
                    "the requester received {} blocks, the DAG has {}",
                    done["blocks"],
                    dataset.blocks
                );
            }
        }
        Stack::DataTransfer => {
            let finished = finished.context("the responder reported no finished channel")?;
            for (side, value, bytes) in [
                ("requester", done, "received"),
                ("responder", finished, "sent"),
            ] {
                if value["status"].as_str() != Some("Completed") {
                    bail!("the {side}'s channel ended {}: {value}", value["status"]);
                }
                if value[bytes].as_u64() != Some(dataset.bytes) {
                    bail!(
                        "the {side}'s channel {bytes} {} bytes, the DAG has {}",
                        value[bytes],
                        dataset.bytes
                    );
                }
            }
        }
    }
    Ok(())
}

/// Reads the JSON lines of a responder until one whose `event` is `event`, within `timeout`;
/// a `fatal` line (the bench peers') or an `error` line (`dtx`'s) is an error.
fn wait_for_event(
    lines: &mpsc::Receiver<String>,
    event: &str,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .with_context(|| format!("the responder did not print its {event} line in time"))?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the responder printed non-JSON: {line}"))?;
        match value["event"].as_str() {
            Some(found) if found == event => return Ok(value),
            Some("fatal") => bail!("the responder failed: {}", value["error"]),
            Some("error") => bail!("the responder failed: {}", value["message"]),
            _ => {}
        }
    }
}

/// Reads the responder's lines until it has printed its listening address, and returns the
/// address to dial (`addrs[0]/p2p/peer_id`).
fn wait_listening(lines: &mpsc::Receiver<String>) -> anyhow::Result<String> {
    let listening = wait_for_event(lines, "listening", LISTEN_TIMEOUT)?;
    let peer = listening["peer_id"]
        .as_str()
        .context("listening without peer_id")?;
    let addr = listening["addrs"][0]
        .as_str()
        .context("listening without addrs")?;
    Ok(format!("{addr}/p2p/{peer}"))
}

/// How a transfer is named in the output and matched by `--only`:
/// `"data-transfer rust <- go on dag-cbor 100000 (run 2)"`.
fn transfer_name(stack: Stack, pair: (Side, Side), dataset: &str, run: usize) -> String {
    format!(
        "{} {} <- {} on {dataset} (run {run})",
        stack.name(),
        pair.0.name(),
        pair.1.name(),
    )
}

/// Removes `dir` and everything in it, when it exists.
fn remove_if_there(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    Ok(())
}

/// Regular files under `dir` whose names do not start with a dot (blocks, not temporaries).
fn count_files(dir: &Path) -> anyhow::Result<u64> {
    let mut count = 0;
    for_each_block_file(dir, &mut |_| {
        count += 1;
        Ok(())
    })?;
    Ok(count)
}

/// Reads every block file under `dir` once, so that the transfers
/// that follow find the store in the page cache, whatever the machine reclaimed since the
/// previous round (its `kdamond` reclaims idle pages: a cold first run took up to twice as
/// long on both stacks).
fn warm_store(dir: &Path) -> anyhow::Result<()> {
    let mut sink = std::io::sink();
    for_each_block_file(dir, &mut |path| {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        std::io::copy(&mut file, &mut sink)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(())
    })
}

/// Calls `visit` with each regular file under `dir` whose name does not start with a dot.
fn for_each_block_file(
    dir: &Path,
    visit: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let kind = entry.file_type().context("file type")?;
        if kind.is_dir() {
            for_each_block_file(&entry.path(), visit)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().starts_with('.') {
            visit(&entry.path())?;
        }
    }
    Ok(())
}

/// The run of median throughput among `runs` (each with its DAG's bytes), with the largest
/// peaks of all of them; `None` when there is no run.
fn summarise(runs: &[(Run, u64)]) -> Option<Run> {
    let mut sorted: Vec<&(Run, u64)> = runs.iter().collect();
    sorted.sort_by(|a, b| {
        a.0.megabytes_per_second(a.1)
            .total_cmp(&b.0.megabytes_per_second(b.1))
    });
    let (median, _) = sorted.get(sorted.len() / 2)?;
    Some(Run {
        requester_hwm: runs.iter().map(|(run, _)| run.requester_hwm).max()?,
        responder_hwm: runs.iter().map(|(run, _)| run.responder_hwm).max()?,
        ..*median
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// The results as a markdown table.
fn render_table(
    datasets: &[Dataset],
    rows: &[(Key, Run)],
    size: u64,
    ceiling: f64,
    runs: usize,
) -> String {
    let mut out = String::new();
    out.push_str(
        "| DAG | stack | requester <- responder | MB/s | blocks/s | seconds | CPU s requester | CPU s responder | peak RSS requester (MiB) | peak RSS responder (MiB) |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    out.push_str(&format!(
        "| {} MiB of bytes | TCP | plain loopback TCP (ceiling) | {:.1} | | {:.2} | | | | |\n",
        size >> 20,
        size as f64 / 1e6 / ceiling,
        ceiling
    ));
    for (key, run) in rows {
        let dataset = &datasets[key.dataset];
        let (requester, responder) = key.pair;
        out.push_str(&format!(
            "| {} | {} | {} <- {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |\n",
            dataset.label,
            key.stack.name(),
            requester.name(),
            responder.name(),
            run.megabytes_per_second(dataset.bytes),
            dataset.blocks as f64 / run.seconds,
            run.seconds,
            run.requester_cpu,
            run.responder_cpu,
            mib(run.requester_hwm),
            mib(run.responder_hwm),
        ));
    }
    out.push_str(&format!(
        "\nDAGs: {}. MB/s are 10^6 bytes of block data per second; rows are the median-throughput \
         run of {runs} with the largest peaks.\n",
        datasets
            .iter()
            .map(|d| format!(
                "{} = {} blocks, {} bytes, root `{}`",
                d.label, d.blocks, d.bytes, d.root
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    out
}

/// The issue's targets, each with the measured figure and whether it is met, for each stack.
fn render_targets(datasets: &[Dataset], rows: &[(Key, Run)], options: &Options) -> String {
    let find = |dataset: usize, stack: Stack, pair: (Side, Side)| {
        rows.iter()
            .find(|(key, _)| {
                *key == Key {
                    dataset,
                    stack,
                    pair,
                }
            })
            .map(|(_, run)| *run)
    };
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let mut out = String::from("Targets (issue 9, §3):\n\n");
    for stack in STACKS {
        for (number, dataset) in datasets.iter().enumerate() {
            let (Some(rust), Some(go)) = (
                find(number, stack, (Side::Rust, Side::Rust)),
                find(number, stack, (Side::Go, Side::Go)),
            ) else {
                out.push_str(&format!(
                    "- {} on {}: not evaluated (no rust <- rust or go <- go row: failed or not run).\n",
                    stack.name(),
                    dataset.label
                ));
                continue;
            };
            let speed =
                rust.megabytes_per_second(dataset.bytes) / go.megabytes_per_second(dataset.bytes);
            let rust_peak = rust.requester_hwm.max(rust.responder_hwm);
            let go_peak = go.requester_hwm.max(go.responder_hwm);
            let memory = rust_peak as f64 / go_peak as f64;
            out.push_str(&format!(
                "- {} on {}: rust <- rust is {speed:.2}x the throughput of go <- go (target at \
                 least 3x: {}); its larger peak RSS is {memory:.2} of go <- go's (target at most \
                 0.5: {}).\n",
                stack.name(),
                dataset.label,
                verdict(speed >= 3.0),
                verdict(memory <= 0.5),
            ));
        }
    }
    if options.size >= DEFAULT_SIZE {
        for (key, run) in rows {
            if key.dataset != 0 {
                continue;
            }
            out.push_str(&format!(
                "- {} {} <- {} on {}: peak RSS {:.0} / {:.0} MiB (target under 128 MiB per side: {}).\n",
                key.stack.name(),
                key.pair.0.name(),
                key.pair.1.name(),
                datasets[0].label,
                mib(run.requester_hwm),
                mib(run.responder_hwm),
                verdict(run.requester_hwm < RSS_TARGET && run.responder_hwm < RSS_TARGET),
            ));
        }
    }
    out
}

/// Replaces the text between the markers (included) with `section`; `None` without them.
fn replace_section(document: &str, section: &str) -> Option<String> {
    let start = document.find(BEGIN_MARKER)?;
    let end = document[start..].find(END_MARKER)? + start + END_MARKER.len();
    Some(format!(
        "{}{section}{}",
        &document[..start],
        &document[end..]
    ))
}

/// `/proc/loadavg`'s three averages, or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 if that fails).
fn clock_ticks() -> f64 {
    cmd::output(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|out| out.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU of a running process, in clock ticks.
fn process_cpu(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = stat_fields(&stat)?;
    Some(fields.utime + fields.stime)
}

/// User + system CPU of this process's reaped children, in clock ticks.
fn children_cpu() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields = stat_fields(&stat)?;
    Some(fields.cutime + fields.cstime)
}

/// The CPU fields of a `/proc/<pid>/stat` line.
#[derive(Debug, PartialEq, Eq)]
struct StatTimes {
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

/// Parses fields 14–17 of `/proc/<pid>/stat` (after the parenthesised command name, which may
/// hold spaces and parentheses).
fn stat_fields(stat: &str) -> Option<StatTimes> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatTimes {
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// `VmHWM` (peak resident set size) of a running process, in bytes; `None` once it has exited.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib(&status, "VmHWM:")
}

/// The value of a `/proc/<pid>/status` line such as `VmHWM:     1234 kB`, in bytes.
fn parse_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seconds: f64, requester_hwm: u64, responder_hwm: u64) -> Run {
        Run {
            seconds,
            requester_cpu: 1.0,
            responder_cpu: 2.0,
            requester_hwm,
            responder_hwm,
        }
    }

    #[test]
    fn parse_kib_reads_a_status_line_in_bytes() {
        let status =
            "Name:\tbench_peer\nVmPeak:\t  900 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(1234 * 1024));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_a_peak_rss_and_cpu_times() {
        let hwm = vm_hwm(std::process::id()).expect("a running process has VmHWM");
        assert!(hwm > 0);
        assert!(process_cpu(std::process::id()).is_some());
        assert!(children_cpu().is_some());
    }

    #[test]
    fn stat_fields_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 111 222 333 444 20 0 1 0 99 1000 10";
        assert_eq!(
            stat_fields(stat),
            Some(StatTimes {
                utime: 111,
                stime: 222,
                cutime: 333,
                cstime: 444
            })
        );
        assert_eq!(stat_fields("4242 (x) S 1 2"), None);
    }

    #[test]
    fn throughput_is_dag_bytes_per_second_in_megabytes() {
        assert!((run(2.0, 0, 0).megabytes_per_second(4_000_000) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn summarise_takes_the_median_run_and_the_largest_peaks() {
        let runs = [
            (run(4.0, 10, 50), 1_000_000),
            (run(1.0, 30, 20), 1_000_000),
            (run(2.0, 20, 10), 1_000_000),
        ];
        let summary = summarise(&runs).expect("three runs");
        assert_eq!(summary.seconds, 2.0);
        assert_eq!(summary.requester_hwm, 30);
        assert_eq!(summary.responder_hwm, 50);
        assert_eq!(summarise(&[]), None);
    }

    #[test]
    fn options_default_to_the_issue_sizes_and_parse_flags() {
        let options = Options::parse(&[]).expect("no flags");
        assert!(options.full());
        assert_eq!(options.runs, 1);
        let options = Options::parse(&["--size", "1048576", "--blocks", "10", "--runs", "3"])
            .expect("valid flags");
        assert_eq!(
            (options.size, options.blocks, options.runs),
            (1 << 20, 10, 3)
        );
        assert!(!options.full());
        assert!(Options::parse(&["--size"]).is_err());
        assert!(Options::parse(&["--size", "0"]).is_err());
        let options = Options::parse(&["--only", "rust <- rust on dag", "--receive-dir", "/x"])
            .expect("valid flags");
        assert!(
            !options.full(),
            "a partial run is not written into the docs"
        );
        assert!(options.selects("data-transfer rust <- rust on dag-cbor 100000 (run 1)"));
        assert!(!options.selects("data-transfer go <- rust on dag-cbor 100000 (run 1)"));
        let either = Options::parse(&["--only", "rust <- rust on dag|go <- go on dag"])
            .expect("valid flags");
        assert!(either.selects("graphsync go <- go on dag-cbor 100000 (run 2)"));
        assert!(either.selects("graphsync rust <- rust on dag-cbor 100000 (run 2)"));
        assert!(!either.selects("graphsync go <- rust on dag-cbor 100000 (run 2)"));
        assert_eq!(options.receive_parent(Path::new("/w")), PathBuf::from("/x"));
        assert!(Options::parse(&["--only"]).is_err());
        assert!(Options::parse(&["--frobnicate"]).is_err());
        assert!(!Options::parse(&["--no-docs"]).expect("valid").docs);
    }

    #[test]
    fn replace_section_swaps_only_the_text_between_the_markers() {
        let document = format!("# T\n\nbefore\n{BEGIN_MARKER}\nold\n{END_MARKER}\nafter\n");
        let section = format!("{BEGIN_MARKER}\nnew\n{END_MARKER}");
        assert_eq!(
            replace_section(&document, &section),
            Some(format!(
                "# T\n\nbefore\n{BEGIN_MARKER}\nnew\n{END_MARKER}\nafter\n"
            ))
        );
        assert_eq!(replace_section("# T\n", &section), None);
    }

    #[test]
    fn count_files_counts_blocks_in_shards_and_skips_temporaries() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-count-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ab")).expect("create");
        std::fs::create_dir_all(dir.join("cd")).expect("create");
        std::fs::write(dir.join("ab/one"), b"1").expect("write");
        std::fs::write(dir.join("cd/two"), b"2").expect("write");
        std::fs::write(dir.join("cd/.tmp-1-2"), b"t").expect("write");
        let counted = count_files(&dir);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(counted.expect("readable"), 2);
    }

    pub(super) fn dataset() -> Dataset {
        Dataset {
            label: "dag-cbor 10".to_owned(),
            root: "bafyroot".to_owned(),
            blocks: 10,
            bytes: 1_500,
            rust_store: PathBuf::from("/r"),
            go_store: PathBuf::from("/g"),
        }
    }

    #[test]
    fn each_stack_and_side_gets_its_own_command_line() {
        let store = Path::new("/s");
        let strings = |args: Vec<std::ffi::OsString>| -> Vec<String> {
            args.into_iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            strings(serve_args(Stack::Graphsync, Side::Rust, store)),
            ["serve", "--store", "/s"]
        );
        assert_eq!(
            strings(serve_args(Stack::Graphsync, Side::Go, store)),
            ["bench-serve", "--store", "/s"]
        );
        for side in [Side::Rust, Side::Go] {
            assert_eq!(
                strings(serve_args(Stack::DataTransfer, side, store)),
                ["bench-serve", "--blocks", "/s"]
            );
            assert_eq!(
                strings(request_args(Stack::DataTransfer, side, "/a", "bafy", store)),
                [
                    "bench-pull",
                    "--peer",
                    "/a",
                    "--root",
                    "bafy",
                    "--blocks",
                    "/s"
                ]
            );
        }
        assert_eq!(
            strings(request_args(
                Stack::Graphsync,
                Side::Go,
                "/a",
                "bafy",
                store
            ))[0],
            "bench-request"
        );
        let peers = Peers {
            rust: PathBuf::from("gs-rust"),
            go: PathBuf::from("gs-go"),
            rust_dt: PathBuf::from("dt-rust"),
            go_dt: PathBuf::from("dt-go"),
            dtx: PathBuf::from("dtx"),
        };
        assert_eq!(
            peers.binary(Stack::DataTransfer, Side::Go),
            Path::new("dt-go")
        );
        assert_eq!(
            peers.binary(Stack::Graphsync, Side::Rust),
            Path::new("gs-rust")
        );
    }

    #[test]
    fn a_data_transfer_pull_must_complete_with_every_byte_on_both_sides() {
        let dataset = dataset();
        let done = serde_json::json!({"status": "Completed", "received": 1_500});
        let finished = serde_json::json!({"status": "Completed", "sent": 1_500});
        check_outcome(Stack::DataTransfer, &done, Some(&finished), &dataset)
            .expect("complete on both sides");
        let short = serde_json::json!({"status": "Completed", "sent": 1_499});
        let error = check_outcome(Stack::DataTransfer, &done, Some(&short), &dataset)
            .expect_err("the responder sent less");
        assert!(error.to_string().contains("responder"), "{error}");
        let failed = serde_json::json!({"status": "Failed", "received": 1_500});
        let error = check_outcome(Stack::DataTransfer, &failed, Some(&finished), &dataset)
            .expect_err("the requester failed");
        assert!(error.to_string().contains("requester"), "{error}");
        assert!(check_outcome(Stack::DataTransfer, &done, None, &dataset).is_err());
    }

    #[test]
    fn a_graphsync_pull_must_end_full_with_every_block() {
        let dataset = dataset();
        let done = serde_json::json!({"status": 20, "blocks": 10});
        check_outcome(Stack::Graphsync, &done, None, &dataset).expect("complete");
        let partial = serde_json::json!({"status": 21, "blocks": 10});
        assert!(check_outcome(Stack::Graphsync, &partial, None, &dataset).is_err());
        let missing = serde_json::json!({"status": 20, "blocks": 9});
        assert!(check_outcome(Stack::Graphsync, &missing, None, &dataset).is_err());
    }

    #[test]
    fn take_finished_keeps_the_first_finished_line_and_fails_on_fatal() {
        let (tx, rx) = mpsc::channel();
        let mut finished = None;
        tx.send("not json".to_owned()).expect("send");
        tx.send(r#"{"event":"listening"}"#.to_owned())
            .expect("send");
        take_finished(&rx, &mut finished).expect("nothing bad");
        assert_eq!(finished, None);
        tx.send(r#"{"event":"finished","status":"Completed"}"#.to_owned())
            .expect("send");
        tx.send(r#"{"event":"finished","status":"Failed"}"#.to_owned())
            .expect("send");
        take_finished(&rx, &mut finished).expect("nothing bad");
        assert_eq!(
            finished.as_ref().map(|value| value["status"].clone()),
            Some(serde_json::json!("Completed"))
        );
        tx.send(r#"{"event":"fatal","error":"boom"}"#.to_owned())
            .expect("send");
        assert!(take_finished(&rx, &mut finished).is_err());
    }

    #[test]
    fn wait_for_event_skips_other_lines_and_fails_on_a_failure_line() {
        let lines = cmd::forward_lines(std::io::Cursor::new(
            "{\"event\":\"listening\",\"peer_id\":\"12D3\",\"addrs\":[\"/ip4/127.0.0.1/tcp/1\"]}\n\
             {\"event\":\"control\"}\n{\"event\":\"ready\"}\n",
        ));
        assert_eq!(
            wait_listening(&lines).expect("listening"),
            "/ip4/127.0.0.1/tcp/1/p2p/12D3"
        );
        let ready = wait_for_event(&lines, "ready", Duration::from_secs(5)).expect("ready");
        assert_eq!(ready["event"], "ready");
        // The lines ended: no ready line comes.
        assert!(wait_for_event(&lines, "ready", Duration::from_millis(50)).is_err());
        for failure in [
            r#"{"event":"fatal","error":"boom"}"#,
            r#"{"event":"error","message":"boom"}"#,
        ] {
            let lines = cmd::forward_lines(std::io::Cursor::new(format!("{failure}\n")));
            let error = wait_for_event(&lines, "ready", Duration::from_secs(5))
                .expect_err("a failure line");
            assert!(format!("{error:#}").contains("boom"), "{error:#}");
        }
    }

    #[test]
    fn the_table_and_targets_show_each_stack() {
        let datasets = [dataset()];
        let key = |stack, pair| Key {
            dataset: 0,
            stack,
            pair,
        };
        let rows = [
            (
                key(Stack::DataTransfer, (Side::Rust, Side::Rust)),
                run(1.0, 10 << 20, 20 << 20),
            ),
            (
                key(Stack::DataTransfer, (Side::Go, Side::Go)),
                run(4.0, 100 << 20, 50 << 20),
            ),
            (
                key(Stack::Graphsync, (Side::Rust, Side::Rust)),
                run(2.0, 10 << 20, 10 << 20),
            ),
            (
                key(Stack::Graphsync, (Side::Go, Side::Go)),
                run(2.0, 10 << 20, 10 << 20),
            ),
        ];
        let table = render_table(&datasets, &rows, 1 << 20, 0.5, 1);
        assert!(
            table.contains("| dag-cbor 10 | data-transfer | rust <- rust | 0.0 | 10 | 1.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| dag-cbor 10 | graphsync | go <- go |"),
            "{table}"
        );
        let options = Options::parse(&["--size", "1048576", "--blocks", "10"]).expect("valid");
        let targets = render_targets(&datasets, &rows, &options);
        assert!(
            targets.contains(
                "- data-transfer on dag-cbor 10: rust <- rust is 4.00x the throughput of go <- go \
                 (target at least 3x: met); its larger peak RSS is 0.20 of go <- go's (target at \
                 most 0.5: met)."
            ),
            "{targets}"
        );
        assert!(
            targets.contains("- graphsync on dag-cbor 10: rust <- rust is 1.00x"),
            "{targets}"
        );
        // Below 1 GiB the per-side RSS target is not evaluated.
        assert!(!targets.contains("per side"), "{targets}");
    }

    #[test]
    fn failures_are_listed_one_line_each_and_leave_targets_unevaluated() {
        let failures = vec!["data-transfer rust <- rust on x (run 1): it\nbroke".to_owned()];
        let text = render_failures(&failures);
        assert!(
            text.contains("- data-transfer rust <- rust on x (run 1): it broke\n"),
            "{text}"
        );
        let datasets = [dataset()];
        let rows = [(
            Key {
                dataset: 0,
                stack: Stack::DataTransfer,
                pair: (Side::Go, Side::Go),
            },
            run(1.0, 1, 1),
        )];
        let options = Options::parse(&["--size", "1048576", "--blocks", "10"]).expect("valid");
        let targets = render_targets(&datasets, &rows, &options);
        assert!(
            targets.contains(
                "- data-transfer on dag-cbor 10: not evaluated (no rust <- rust or go <- go row: failed or not run)."
            ),
            "{targets}"
        );
    }

    #[test]
    fn the_loopback_ceiling_moves_every_byte() {
        let seconds = tcp_ceiling(4 << 20).expect("loopback works");
        assert!(seconds > 0.0);
    }
}
