//! `cargo xtask bench graphsync`: Graphsync throughput and memory of our node against the Go
//! reference, each side a separate process, over loopback TCP.
//!
//! Builds the Go peer (`interop/go-peer`, like `cargo xtask interop`) and graphsync's
//! `examples/bench_peer.rs` in release mode, generates a 256 MiB DAG of 256 KiB raw blocks under
//! a dag-cbor root (deterministic: xorshift64* with a fixed seed) as a CAR with `bench_peer gen`,
//! then runs [`RUNS`] transfers of each pair, alternating: Rust requester ← Rust responder and
//! Go requester ← Go responder. The responder serves the CAR from memory (`serve --car`); the
//! requester asks for the whole DAG with the explore-all selector and keeps it in memory
//! (`request`, no CAR written). A run's time goes from the requester's `connected` line to its
//! `done` line, so process start-up and loading the CAR are not counted. Peak RSS is `VmHWM` of
//! `/proc/<pid>/status`: the requester's is sampled every [`SAMPLE_EVERY`] while it runs (its
//! last sample before exit, so a lower bound by at most the last few milliseconds' growth), the
//! responder's is read once the requester has exited (the responder is still running, so it
//! is exact). Prints every run, then one table with the median MB/s (10^6 bytes per second),
//! the largest peaks, and the Rust/Go ratios. Not part of `cargo xtask ci`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd;

/// DAG size: 256 MiB of leaves.
const DAG_BYTES: u64 = 256 * 1024 * 1024;

/// Leaf size: 256 KiB (kubo's default chunk size).
const BLOCK_BYTES: u64 = 256 * 1024;

/// Seed of the leaves' xorshift64* stream.
const SEED: u64 = 20_240_601;

/// Transfers per pair.
const RUNS: usize = 5;

/// How often the requester's `VmHWM` is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// How long a responder may take to load the CAR and print its listening address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(180);

/// How long one transfer may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Which implementation runs both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pair {
    Rust,
    Go,
}

impl Pair {
    fn label(self) -> &'static str {
        match self {
            Pair::Rust => "rust requester <- rust responder",
            Pair::Go => "go requester <- go responder",
        }
    }
}

/// One transfer's measurements.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    requester_hwm: u64,
    responder_hwm: u64,
}

impl Run {
    fn megabytes_per_second(&self) -> f64 {
        DAG_BYTES as f64 / 1e6 / self.seconds
    }
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

/// Runs the graphsync benchmark and prints the table.
///
/// # Errors
/// When a peer cannot be built, the DAG cannot be generated, or a transfer fails or times out.
pub(crate) fn graphsync() -> anyhow::Result<()> {
    let root = cmd::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let work = target.join("bench");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let go = work.join("go-peer");
    cmd::run(
        Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&go)
            .arg(".")
            .current_dir(root.join("interop/go-peer")),
    )?;
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "graphsync",
        "--example",
        "bench_peer",
    ]))?;
    let rust = target.join("release/examples/bench_peer");
    if !rust.is_file() {
        bail!("the Rust bench peer was not built at {}", rust.display());
    }

    let car = work.join("dag-256mib-256kib.car");
    let generated = cmd::output(
        Command::new(&rust)
            .arg("gen")
            .arg("--out")
            .arg(&car)
            .arg("--size")
            .arg(DAG_BYTES.to_string())
            .arg("--block")
            .arg(BLOCK_BYTES.to_string())
            .arg("--seed")
            .arg(SEED.to_string()),
    )?;
    let generated: serde_json::Value =
        serde_json::from_str(generated.trim()).context("bench_peer gen printed non-JSON")?;
    let dag_root = generated["root"]
        .as_str()
        .context("bench_peer gen printed no root")?
        .to_owned();
    let blocks = generated["blocks"].as_u64().unwrap_or(0);
    println!(
        "bench: DAG {dag_root}: {blocks} blocks ({} MiB of {} KiB raw leaves under a dag-cbor list), {}",
        DAG_BYTES >> 20,
        BLOCK_BYTES >> 10,
        car.display()
    );

    let mut runs: Vec<(Pair, Run)> = Vec::new();
    for index in 0..RUNS {
        for pair in [Pair::Rust, Pair::Go] {
            let binary = match pair {
                Pair::Rust => &rust,
                Pair::Go => &go,
            };
            let run = transfer(binary, &car, &dag_root)
                .with_context(|| format!("{} (run {})", pair.label(), index + 1))?;
            println!(
                "bench: {:<34} run {}: {:>8.1} MB/s in {:>6.2} s, peak RSS requester {:>6} MiB, responder {:>6} MiB",
                pair.label(),
                index + 1,
                run.megabytes_per_second(),
                run.seconds,
                run.requester_hwm >> 20,
                run.responder_hwm >> 20
            );
            runs.push((pair, run));
        }
    }

    let summary = |pair: Pair| {
        let mut speeds: Vec<f64> = runs
            .iter()
            .filter(|(p, _)| *p == pair)
            .map(|(_, run)| run.megabytes_per_second())
            .collect();
        speeds.sort_by(f64::total_cmp);
        let median = speeds.get(speeds.len() / 2).copied().unwrap_or(0.0);
        let peak = |f: fn(&Run) -> u64| {
            runs.iter()
                .filter(|(p, _)| *p == pair)
                .map(|(_, run)| f(run))
                .max()
                .unwrap_or(0)
        };
        (
            median,
            peak(|run| run.requester_hwm),
            peak(|run| run.responder_hwm),
        )
    };
    let (rust_speed, rust_req, rust_resp) = summary(Pair::Rust);
    let (go_speed, go_req, go_resp) = summary(Pair::Go);
    let mib = |bytes: u64| bytes as f64 / f64::from(1u32 << 20);
    println!();
    println!(
        "graphsync bench: {} MiB DAG of {} KiB raw blocks, loopback TCP, median of {RUNS} runs",
        DAG_BYTES >> 20,
        BLOCK_BYTES >> 10
    );
    println!(
        "| pair | MB/s | requester peak RSS (MiB) | responder peak RSS (MiB) |\n| --- | ---: | ---: | ---: |"
    );
    println!(
        "| {} | {rust_speed:.1} | {:.0} | {:.0} |",
        Pair::Rust.label(),
        mib(rust_req),
        mib(rust_resp)
    );
    println!(
        "| {} | {go_speed:.1} | {:.0} | {:.0} |",
        Pair::Go.label(),
        mib(go_req),
        mib(go_resp)
    );
    println!(
        "| rust / go | {:.2} | {:.2} | {:.2} |",
        rust_speed / go_speed,
        rust_req as f64 / go_req as f64,
        rust_resp as f64 / go_resp as f64
    );
    Ok(())
}

/// One transfer of the DAG in `car` between two processes of `binary`.
fn transfer(binary: &Path, car: &Path, dag_root: &str) -> anyhow::Result<Run> {
    let mut server = Guard(
        Command::new(binary)
            .arg("serve")
            .arg("--car")
            .arg(car)
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
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let address = wait_listening(&lines, dag_root)?;
    let responder_pid = server.0.id();

    let mut client = Guard(
        Command::new(binary)
            .arg("request")
            .arg("--peer")
            .arg(&address)
            .arg("--root")
            .arg(dag_root)
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
    let status = loop {
        if let Some(hwm) = vm_hwm(requester_pid) {
            requester_hwm = requester_hwm.max(hwm);
        }
        while let Ok((at, value)) = events.try_recv() {
            match value["event"].as_str() {
                Some("connected") => connected = Some(at),
                Some("fatal") => bail!("requester fatal error: {}", value["error"]),
                _ => done = Some((at, value)),
            }
        }
        if let Some(status) = client.0.try_wait().context("waiting for the requester")? {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            bail!("the transfer did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    // Lines printed just before the exit may still be on their way.
    while done.is_none() {
        let (at, value) = events
            .recv_timeout(Duration::from_secs(5))
            .context("the requester printed no done event")?;
        match value["event"].as_str() {
            Some("connected") => connected = Some(at),
            Some("fatal") => bail!("requester fatal error: {}", value["error"]),
            _ => done = Some((at, value)),
        }
    }
    let responder_hwm =
        vm_hwm(responder_pid).context("the responder exited before it could be measured")?;
    drop(server);

    let (finished, done) = done.context("the requester printed no done event")?;
    let connected = connected.context("the requester printed no connected event")?;
    if !status.success() {
        bail!("the requester exited with {status}; it said {done}");
    }
    if done["status"].as_i64().is_some_and(|code| code != 20) {
        bail!(
            "final status {} (expected 20); requester said {done}",
            done["status"]
        );
    }
    let seconds = finished.duration_since(connected).as_secs_f64();
    if seconds <= 0.0 {
        bail!("the requester reported done before connected");
    }
    Ok(Run {
        seconds,
        requester_hwm,
        responder_hwm,
    })
}

/// Reads the responder's lines until it has printed its root and listening address, and returns
/// the address to dial (`addrs[0]/p2p/peer_id`).
fn wait_listening(lines: &mpsc::Receiver<String>, dag_root: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .context("the responder did not print its listening address in time")?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the responder printed non-JSON: {line}"))?;
        match value["event"].as_str() {
            Some("loaded") if value["root"].as_str() != Some(dag_root) => {
                bail!(
                    "the responder loaded root {} instead of {dag_root}",
                    value["root"]
                );
            }
            Some("listening") => {
                let peer = value["peer_id"]
                    .as_str()
                    .context("listening without peer_id")?;
                let addr = value["addrs"][0]
                    .as_str()
                    .context("listening without addrs")?;
                return Ok(format!("{addr}/p2p/{peer}"));
            }
            Some("fatal") => bail!("the responder failed: {}", value["error"]),
            _ => {}
        }
    }
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

    #[test]
    fn parse_kib_reads_a_status_line_in_bytes() {
        let status =
            "Name:\tbench_peer\nVmPeak:\t  900 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(1234 * 1024));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_a_peak_rss() {
        let hwm = vm_hwm(std::process::id()).expect("a running process has VmHWM");
        assert!(hwm > 0);
    }

    #[test]
    fn throughput_is_dag_bytes_per_second_in_megabytes() {
        let run = Run {
            seconds: 2.0,
            requester_hwm: 0,
            responder_hwm: 0,
        };
        assert!((run.megabytes_per_second() - DAG_BYTES as f64 / 2e6).abs() < 1e-9);
    }
}
