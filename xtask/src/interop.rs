//! `cargo xtask interop`: Graphsync round trips between our Rust node and the Go reference peer.
//!
//! Builds the Go peer (`interop/go-peer`) and the Rust example `interop_peer` (graphsync's
//! `examples/interop_peer.rs`, on `graphsync::network::Node` over TCP + noise + yamux), then, for
//! each complete CAR fixture and in both directions, starts a responder serving the CAR on
//! 127.0.0.1 (port 0), runs a requester that asks for the root with the explore-all selector and
//! writes what it received as a CARv1, and checks that the requester ended with status 20
//! (RequestCompletedFull) and that the CAR it wrote is byte-identical to the fixture (both
//! peers write the received blocks once each, in traversal order, as go-car lays out the
//! fixtures). Prints a scenario × direction matrix and fails if any cell fails.
//!
//! Every child process is killed and reaped on every path, and every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cmd;

/// The complete CAR fixtures (under `shared/fixtures/car/`) that every direction transfers.
const FIXTURES: [&str; 4] = [
    "dag-cbor-traversal.car",
    "dag-pb.car",
    "dir-with-files.car",
    "simple-unixfs.car",
];

/// How long a responder may take to print its listening address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one requester may run.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// Which side is which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Rust requester, Go responder.
    RustToGo,
    /// Go requester, Rust responder.
    GoToRust,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::RustToGo => "rust requester → go responder",
            Direction::GoToRust => "go requester → rust responder",
        }
    }
}

/// The two peer binaries.
struct Peers {
    go: PathBuf,
    rust: PathBuf,
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

/// Runs every scenario and prints the matrix.
///
/// # Errors
/// When a peer cannot be built, a fixture is missing, or any scenario fails.
pub(crate) fn run() -> anyhow::Result<()> {
    let root = cmd::root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let work = target.join("interop");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let fixtures = root.join("../shared/fixtures/car");
    if !fixtures.is_dir() {
        bail!("the CAR fixtures are missing: {}", fixtures.display());
    }
    let peers = build(&root, &target, &work)?;

    let mut results = Vec::new();
    for fixture in FIXTURES {
        let car = fixtures.join(fixture);
        for direction in [Direction::RustToGo, Direction::GoToRust] {
            let result = scenario(&peers, &work, &car, direction);
            match &result {
                Ok(()) => println!("interop: {fixture} ({}): pass", direction.label()),
                Err(error) => {
                    println!(
                        "interop: {fixture} ({}): FAIL: {error:#}",
                        direction.label()
                    );
                }
            }
            results.push((fixture, direction, result));
        }
    }

    println!();
    println!(
        "{:<26} {:<32} {:<32}",
        "fixture",
        Direction::RustToGo.label(),
        Direction::GoToRust.label()
    );
    let mut failures = 0usize;
    for fixture in FIXTURES {
        let cell = |direction| {
            results
                .iter()
                .find(|(f, d, _)| *f == fixture && *d == direction)
                .map_or(
                    "missing",
                    |(_, _, r)| if r.is_ok() { "pass" } else { "FAIL" },
                )
        };
        println!(
            "{fixture:<26} {:<32} {:<32}",
            cell(Direction::RustToGo),
            cell(Direction::GoToRust)
        );
    }
    for (fixture, direction, result) in &results {
        if let Err(error) = result {
            failures += 1;
            println!("  {fixture} ({}): {error:#}", direction.label());
        }
    }
    let passed = results.len() - failures;
    println!("interop: {passed} passed, {failures} failed");
    if failures > 0 {
        bail!("{failures} interop scenario(s) failed");
    }
    Ok(())
}

/// Builds the Go peer and the Rust example.
fn build(root: &Path, target: &Path, work: &Path) -> anyhow::Result<Peers> {
    let go = work.join("go-peer");
    cmd::run(
        Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&go)
            .arg(".")
            .current_dir(root.join("interop/go-peer")),
    )?;
    cmd::run(cmd::cargo().args(["build", "-p", "graphsync", "--example", "interop_peer"]))?;
    let rust = target.join("debug/examples/interop_peer");
    if !rust.is_file() {
        bail!("the Rust interop peer was not built at {}", rust.display());
    }
    Ok(Peers { go, rust })
}

/// One transfer of `car` in `direction`.
fn scenario(peers: &Peers, work: &Path, car: &Path, direction: Direction) -> anyhow::Result<()> {
    let (responder, requester) = match direction {
        Direction::RustToGo => (&peers.go, &peers.rust),
        Direction::GoToRust => (&peers.rust, &peers.go),
    };
    let name = car
        .file_stem()
        .and_then(|s| s.to_str())
        .context("fixture without a name")?;
    let tag = match direction {
        Direction::RustToGo => "rust-from-go",
        Direction::GoToRust => "go-from-rust",
    };
    let out = work.join(format!("{name}.{tag}.car"));
    // A stale result must not pass for a fresh one.
    if out.exists() {
        std::fs::remove_file(&out).with_context(|| format!("removing {}", out.display()))?;
    }

    let mut server = Guard(
        Command::new(responder)
            .arg("serve")
            .arg("--car")
            .arg(car)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", responder.display()))?,
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
    let (root, address) = wait_listening(&lines)?;

    let started = Instant::now();
    let mut client = Guard(
        Command::new(requester)
            .arg("request")
            .arg("--peer")
            .arg(&address)
            .arg("--root")
            .arg(&root)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", requester.display()))?,
    );
    let stdout = client
        .0
        .stdout
        .take()
        .context("the requester has no stdout")?;
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut done = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && matches!(value["event"].as_str(), Some("done" | "fatal"))
            {
                done = Some(value);
            }
        }
        let _ = done_tx.send(done);
    });
    let status = loop {
        if let Some(status) = client.0.try_wait().context("waiting for the requester")? {
            break status;
        }
        if started.elapsed() > SCENARIO_TIMEOUT {
            bail!("the requester did not finish within {SCENARIO_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let done = done_rx
        .recv_timeout(Duration::from_secs(5))
        .ok()
        .flatten()
        .context("the requester printed no done event")?;
    drop(server);

    if done["event"] == "fatal" {
        bail!("requester fatal error: {}", done["error"]);
    }
    if done["status"].as_i64() != Some(20) {
        bail!(
            "final status {} (expected 20, RequestCompletedFull); requester said {done}",
            done["status"]
        );
    }
    if !status.success() {
        bail!("the requester exited with {status}; it said {done}");
    }
    let expected = std::fs::read(car).with_context(|| format!("reading {}", car.display()))?;
    let received = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    if expected != received {
        let at = expected
            .iter()
            .zip(&received)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(received.len()));
        bail!(
            "the received CAR differs from the fixture: {} bytes vs {} (first difference at byte {at}); see {}",
            received.len(),
            expected.len(),
            out.display()
        );
    }
    Ok(())
}

/// Reads the responder's lines until it has printed its root and listening address, and returns
/// the root and the address to dial (`addrs[0]/p2p/peer_id`).
fn wait_listening(lines: &mpsc::Receiver<String>) -> anyhow::Result<(String, String)> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    let mut root = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .context("the responder did not print its listening address in time")?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the responder printed non-JSON: {line}"))?;
        match value["event"].as_str() {
            Some("loaded") if root.is_none() => {
                root = value["root"].as_str().map(str::to_owned);
            }
            Some("listening") => {
                let peer = value["peer_id"]
                    .as_str()
                    .context("listening without peer_id")?;
                let addr = value["addrs"][0]
                    .as_str()
                    .context("listening without addrs")?;
                let root = root.context("the responder listened before loading a root")?;
                return Ok((root, format!("{addr}/p2p/{peer}")));
            }
            Some("fatal") => bail!("the responder failed: {}", value["error"]),
            _ => {}
        }
    }
}
