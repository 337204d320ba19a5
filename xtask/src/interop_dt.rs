//! The data-transfer part of `cargo xtask interop` (issue 8 §2): go-data-transfer against our
//! Manager, both peers driven through `interop/dt-protocol.md`.
//!
//! Builds the Rust peer (`datatransfer-testkit`'s `dt_interop_peer`) and every Go
//! data-transfer build of [`GO_BUILDS`] whose module is in the tree. Every scenario runs Go
//! initiator → Go responder first, the reference, whose expectations are checked too; then
//! Rust initiator → Go responder and Go initiator → Rust responder, each with fresh processes
//! over loopback TCP. A direction passes when the scenario's checks hold (final statuses on
//! both sides, byte totals, the DAG the receiver exports) and its outcome is the reference's:
//! the same final statuses and, where data arrived whole, a byte-identical exported CAR (and,
//! for the complete fixtures, the fixture itself). A scenario that cannot run is
//! `not run: <why>`, never a pass.
//!
//! `INTEROP_JOBS` (default 3) scenarios run at once; `INTEROP_ONLY=text` keeps the scenarios
//! whose name contains it (or one of its `|`-separated parts). For developing without a Go peer, `INTEROP_DT_GO=rust` puts the
//! Rust peer on the "Go" side (the matrix then says so). Every child is killed and reaped on
//! every path and every wait is bounded.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::cmd;
use crate::interop_common::{
    self, Cell, GoBuild, Guard, car_sections, print_summary, strings, target_dir, varint,
    write_report,
};

/// The Go data-transfer builds: their label, module directory, and whether their responder
/// sends each data-limit payment request twice (go-data-transfer v1.15 does, under both
/// extension names, as the Rust peer does; v2 does not).
const GO_BUILDS: &[(&str, &str, bool)] = &[
    ("go-data-transfer v2", "interop/go-dt-v2", false),
    ("go-data-transfer v1.15.1", "interop/go-dt-v115", true),
];

/// The complete CAR fixtures, transferred whole.
const COMPLETE: [&str; 4] = [
    "dag-cbor-traversal.car",
    "dag-pb.car",
    "dir-with-files.car",
    "simple-unixfs.car",
];

/// The generated file transferred whole.
const BIG_FILE: u64 = 64 << 20;

/// The generated file of the mid-transfer scenarios: 32 chunks of 256 KiB and a root.
const MID_FILE: u64 = 8 << 20;

/// The UnixFS chunk size of the generated files (the root of the [`MID_FILE`] is smaller).
const CHUNK: u64 = 256 << 10;

/// The read delay of the mid-transfer scenarios: after 4 blocks, 60 ms a block (about 2 s for
/// the [`MID_FILE`]).
const SLOW_READS: &str = "4:60";

/// How long a peer may take to print its listening address (it may import 64 MiB first).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a command may take to be answered (an export of 64 MiB included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a channel may take to finish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a responder must print nothing about a channel whose initiator was killed before
/// the initiator comes back (go-data-transfer's own kill test waits as long).
const QUIET: Duration = Duration::from_millis(500);

/// Marker comments around the data-transfer matrix in `docs/interop.md`.
const MATRIX_START: &str = "<!-- dt-matrix:start -->";
const MATRIX_END: &str = "<!-- dt-matrix:end -->";

/// Runs the data-transfer scenarios alone (`cargo xtask interop dt`), fails on any failure.
///
/// # Errors
/// When a peer cannot be built or a scenario fails.
pub(crate) fn run_alone(report: bool) -> anyhow::Result<()> {
    let root = cmd::root();
    let target = target_dir(&root);
    let work = target.join("interop");
    let failures = run(&root, &target, &work, report)?;
    if !failures.is_empty() {
        bail!("{} data-transfer interop check(s) failed", failures.len());
    }
    Ok(())
}

/// Builds the peers, runs every scenario, prints the matrix (and writes it with `report`);
/// returns the failures.
///
/// # Errors
/// When a peer cannot be built or a fixture is missing.
pub(crate) fn run(
    root: &Path,
    target: &Path,
    work: &Path,
    report: bool,
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let work = work.join("dt");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let fixtures = root.join("../shared/fixtures/car");
    for name in COMPLETE {
        let path = fixtures.join(name);
        ensure!(path.is_file(), "fixture missing: {}", path.display());
    }
    let builds = build(root, target, &work)?;
    println!("interop dt: peers built in {:.0?}", started.elapsed());
    let files = work.join("files");
    std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
    let rust = &builds.first().context("no build")?.rust;
    let big = file_car(rust, &generate(&files, BIG_FILE)?)?;
    let mid = file_car(rust, &generate(&files, MID_FILE)?)?;
    let mid_car = std::fs::read(&mid).context("reading the file's CAR")?;
    let mid_bytes = block_bytes(&mid_car)?;
    let inputs = Inputs {
        fixtures,
        mid,
        mid_car,
        mid_bytes,
    };
    let mut scenarios = scenarios(&inputs.fixtures, &big);
    if let Ok(only) = std::env::var("INTEROP_ONLY") {
        scenarios.retain(|scenario| only.split('|').any(|part| scenario.name.contains(part)));
    }

    let mut items = Vec::new();
    for build in &builds {
        for scenario in &scenarios {
            items.push((build, scenario));
        }
    }
    let jobs = std::env::var("INTEROP_JOBS")
        .ok()
        .and_then(|jobs| jobs.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let queue = Arc::new(Mutex::new(items.into_iter().enumerate()));
    let rows = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let queue = Arc::clone(&queue);
            let rows = Arc::clone(&rows);
            let work = &work;
            let inputs = &inputs;
            scope.spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                    let Some((order, (build, scenario))) = next else {
                        return;
                    };
                    let row = run_row(build, scenario, inputs, work);
                    for (label, cell) in row.labelled() {
                        println!(
                            "interop dt: {} [{}] ({label}): {}",
                            row.scenario,
                            row.build,
                            cell.long()
                        );
                    }
                    rows.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((order, row));
                }
            });
        }
    });
    let mut rows = std::mem::take(&mut *rows.lock().unwrap_or_else(PoisonError::into_inner));
    rows.sort_by_key(|(order, _)| *order);
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();

    let matrix = render(&builds, &rows);
    println!("\n{matrix}");
    let mut failures = Vec::new();
    let mut cells = 0;
    let mut not_run = 0;
    for row in &rows {
        for (label, cell) in row.labelled() {
            cells += 1;
            match cell {
                Cell::Fail(why) => {
                    failures.push(format!("{} [{}] ({label}): {why}", row.scenario, row.build));
                }
                Cell::NotRun(_) => not_run += 1,
                Cell::Pass => {}
            }
        }
    }
    print_summary("interop dt", cells, not_run, &failures, started.elapsed());
    if report {
        write_report(
            &root.join("docs/interop.md"),
            MATRIX_START,
            MATRIX_END,
            &matrix,
        )?;
        println!("interop dt: matrix written to docs/interop.md");
    }
    Ok(failures)
}

/// One peer program.
#[derive(Clone, Debug)]
struct Build {
    /// What the matrix calls it.
    label: String,
    /// The "Go" binary, or why there is none.
    go: Result<PathBuf, String>,
    /// Whether the Go responder sends each payment request twice.
    go_copies_requests: bool,
    /// The Rust peer.
    rust: PathBuf,
}

/// Builds the Rust peer and the Go builds whose modules exist, at once.
fn build(root: &Path, target: &Path, work: &Path) -> anyhow::Result<Vec<Build>> {
    let dev = std::env::var("INTEROP_DT_GO").is_ok_and(|value| value == "rust");
    let mut go_builds = Vec::new();
    for &(label, dir, copies) in GO_BUILDS {
        if dev {
            break;
        }
        if !root.join(dir).join("go.mod").is_file() {
            go_builds.push((label, copies, Err(format!("no Go module at {dir}"))));
            continue;
        }
        go_builds.push((label, copies, Ok(GoBuild::start(root, work, dir)?)));
    }
    cmd::run(cmd::cargo().args([
        "build",
        "--locked",
        "-p",
        "datatransfer-testkit",
        "--bin",
        "dt_interop_peer",
    ]))?;
    let rust = target.join("debug/dt_interop_peer");
    ensure!(
        rust.is_file(),
        "the Rust data-transfer peer was not built at {}",
        rust.display()
    );
    if dev {
        return Ok(vec![Build {
            label: "rust as go (INTEROP_DT_GO=rust)".to_owned(),
            go: Ok(rust.clone()),
            go_copies_requests: true,
            rust,
        }]);
    }
    let mut builds = Vec::new();
    for (label, go_copies_requests, go) in go_builds {
        let go = match go {
            Err(why) => Err(why),
            Ok(build) => Ok(build.finish()?),
        };
        builds.push(Build {
            label: label.to_owned(),
            go,
            go_copies_requests,
            rust: rust.clone(),
        });
    }
    Ok(builds)
}

/// A seeded pseudo-random file of `size` bytes in `dir` (kept between runs).
fn generate(dir: &Path, size: u64) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("dt-random-{size}.bin"));
    if std::fs::metadata(&path).is_ok_and(|meta| meta.len() == size) {
        return Ok(path);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ size;
    let mut bytes = Vec::with_capacity(size as usize);
    while (bytes.len() as u64) < size {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(size as usize);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The files the scenarios read.
struct Inputs {
    /// `shared/fixtures/car`.
    fixtures: PathBuf,
    /// The CAR of the generated file of the mid-transfer scenarios.
    mid: PathBuf,
    /// Its bytes: what a receiver of the whole file must export.
    mid_car: Vec<u8>,
    /// The sum of its block sizes.
    mid_bytes: u64,
}

/// The UnixFS import of `file` (kubo's settings, by the Rust peer) as a CARv1 in traversal
/// order beside it (kept between runs): the v1.15 Go build has no importer, so every peer
/// serves the same CAR (the Graphsync part of the suite checks the CIDs against boxo's).
fn file_car(rust: &Path, file: &Path) -> anyhow::Result<PathBuf> {
    let car = file.with_extension("car");
    if car.is_file() {
        return Ok(car);
    }
    let partial = file.with_extension("car.partial");
    let mut peer = Peer::start(
        rust,
        &["--file".to_owned(), file.display().to_string()],
        &file.with_extension("import.log"),
    )?;
    let root = peer
        .roots
        .first()
        .cloned()
        .context("the import printed no root")?;
    export(&mut peer, &root, None, &partial)?;
    drop(peer);
    std::fs::rename(&partial, &car).with_context(|| format!("writing {}", car.display()))?;
    Ok(car)
}

/// Who does something in a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Initiator,
    Responder,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Initiator => "initiator",
            Side::Responder => "responder",
        }
    }
}

/// What a scenario does.
#[derive(Clone, Debug)]
enum Kind {
    /// A whole transfer: push or pull of the data loaded by `data` (`--car X` / `--file X`),
    /// with a selector; `fixture` is the CAR the export must equal.
    Transfer {
        pull: bool,
        data: Vec<String>,
        selector: Option<String>,
        fixture: Option<PathBuf>,
    },
    /// A pull the responder turns down: with the unregistered voucher type, or `--refuse`.
    Rejected { unknown_voucher: bool },
    /// A slow pull paused and resumed by `by`.
    Pause { by: Side },
    /// A slow pull cancelled by `by`.
    Cancel { by: Side },
    /// A paid pull with finalization.
    Paid,
    /// A slow pull whose initiator drops the connection; the monitors restart it.
    Disconnect,
    /// A slow pull whose `killed` process is SIGKILLed and started again on its store, then
    /// restarts the channel.
    Kill { killed: Side },
    /// Four pulls at once between the same two peers.
    Parallel,
}

#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    kind: Kind,
}

fn scenarios(fixtures: &Path, big: &Path) -> Vec<Scenario> {
    let arg = |flag: &str, path: &Path| vec![flag.to_owned(), path.display().to_string()];
    let mut list = Vec::new();
    for pull in [true, false] {
        let verb = if pull { "pull" } else { "push" };
        for name in COMPLETE {
            let car = fixtures.join(name);
            list.push(Scenario {
                name: format!("{verb} {name}"),
                kind: Kind::Transfer {
                    pull,
                    data: arg("--car", &car),
                    selector: None,
                    fixture: Some(car),
                },
            });
        }
        list.push(Scenario {
            name: format!("{verb} 64 MiB UnixFS file"),
            kind: Kind::Transfer {
                pull,
                data: arg("--car", big),
                selector: None,
                fixture: None,
            },
        });
        list.push(Scenario {
            name: format!("{verb} sub-DAG (ExploreFields into dag-cbor)"),
            kind: Kind::Transfer {
                pull,
                data: arg("--car", &fixtures.join("dag-cbor-traversal.car")),
                selector: Some(
                    r#"{"f":{"f>":{"a":{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}}}}"#
                        .to_owned(),
                ),
                fixture: None,
            },
        });
    }
    list.push(Scenario {
        name: "unregistered voucher type".to_owned(),
        kind: Kind::Rejected {
            unknown_voucher: true,
        },
    });
    list.push(Scenario {
        name: "refusing validator".to_owned(),
        kind: Kind::Rejected {
            unknown_voucher: false,
        },
    });
    for by in [Side::Initiator, Side::Responder] {
        list.push(Scenario {
            name: format!("pause and resume by the {}", by.name()),
            kind: Kind::Pause { by },
        });
        list.push(Scenario {
            name: format!("cancel by the {}", by.name()),
            kind: Kind::Cancel { by },
        });
    }
    list.push(Scenario {
        name: "paid retrieval with finalization".to_owned(),
        kind: Kind::Paid,
    });
    list.push(Scenario {
        name: "disconnect mid-transfer, automatic restart".to_owned(),
        kind: Kind::Disconnect,
    });
    for killed in [Side::Initiator, Side::Responder] {
        list.push(Scenario {
            name: format!(
                "SIGKILL of the {}, started again on its store, restart by the initiator",
                killed.name()
            ),
            kind: Kind::Kill { killed },
        });
    }
    list.push(Scenario {
        name: "4 parallel pulls".to_owned(),
        kind: Kind::Parallel,
    });
    list
}

/// One scenario against one build: the reference and both directions.
struct Row {
    scenario: String,
    build: String,
    reference: Cell,
    rust_to_go: Cell,
    go_to_rust: Cell,
}

impl Row {
    fn labelled(&self) -> [(&'static str, &Cell); 3] {
        [
            ("go → go", &self.reference),
            ("rust → go", &self.rust_to_go),
            ("go → rust", &self.go_to_rust),
        ]
    }
}

/// What a run left to compare with the reference.
#[derive(Debug, Default)]
struct Outcome {
    /// Final statuses: initiator's, responder's (per channel for the parallel scenario).
    statuses: Vec<String>,
    /// The receivers' exports.
    cars: Vec<Vec<u8>>,
}

fn run_row(build: &Build, scenario: &Scenario, inputs: &Inputs, work: &Path) -> Row {
    let mut row = Row {
        scenario: scenario.name.clone(),
        build: build.label.clone(),
        reference: Cell::NotRun(String::new()),
        rust_to_go: Cell::NotRun(String::new()),
        go_to_rust: Cell::NotRun(String::new()),
    };
    let go = match &build.go {
        Ok(go) => go,
        Err(why) => {
            row.reference = Cell::NotRun(why.clone());
            row.rust_to_go = Cell::NotRun(why.clone());
            row.go_to_rust = Cell::NotRun(why.clone());
            return row;
        }
    };
    let slug: String = format!("{}-{}", build.label, scenario.name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = work.join("runs").join(slug);
    let run = |tag: &str, initiator: &Path, responder: &Path| -> anyhow::Result<Outcome> {
        let dir = dir.join(tag);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let responder_copies = responder == build.rust || build.go_copies_requests;
        let outcome = run_case(
            &scenario.kind,
            inputs,
            (initiator, responder, responder_copies),
            &dir,
        );
        if outcome.is_err() {
            print_last_events(
                &dir,
                &format!("{} [{}] ({tag})", scenario.name, build.label),
            );
        }
        outcome
    };
    // Go's own run is the reference; go-data-transfer's disconnect restart is flaky under load
    // (docs/interop.md), so a failed reference gets one more try. The Rust directions get one.
    let reference = run("go-go", go, go).or_else(|first| {
        println!(
            "interop dt: {} [{}]: the Go → Go reference failed ({first:#}); once more",
            scenario.name, build.label
        );
        run("go-go-again", go, go)
    });
    row.reference = match &reference {
        Ok(_) => Cell::Pass,
        Err(error) => Cell::Fail(format!("{error:#}")),
    };
    // The reference is a control, not a gate: when Go's own run failed twice, a Rust direction
    // is judged by the scenario's own checks alone (final statuses, byte totals, the export
    // against the fixture or the file's CAR), and the log says so.
    let compare = |direction: &str, outcome: anyhow::Result<Outcome>| -> Cell {
        let checked = outcome.and_then(|outcome| match &reference {
            Ok(reference) => same_outcome(&outcome, reference),
            Err(_) => {
                println!(
                    "interop dt: {} [{}] ({direction}): judged by its own checks only, the Go → Go \
                     reference failed",
                    scenario.name, build.label
                );
                Ok(())
            }
        });
        match checked {
            Ok(()) => Cell::Pass,
            Err(error) => Cell::Fail(format!("{error:#}")),
        }
    };
    row.rust_to_go = compare("rust → go", run("rust-go", &build.rust, go));
    row.go_to_rust = compare("go → rust", run("go-rust", go, &build.rust));
    row
}

/// How many of each side's last events a failed run prints.
const EVENTS_ON_FAILURE: usize = 12;

/// Prints the last events of both sides of a failed run, one short line each, so that a CI
/// log (where the run directory is gone) shows how the channel ended.
fn print_last_events(dir: &Path, run: &str) {
    for side in ["initiator", "responder"] {
        let Ok(log) = std::fs::read_to_string(dir.join(format!("{side}.log"))) else {
            continue;
        };
        let events: Vec<String> = log
            .lines()
            .filter_map(|line| line.strip_prefix("< "))
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|event| short_event(&event))
            .collect();
        let from = events.len().saturating_sub(EVENTS_ON_FAILURE);
        println!(
            "interop dt: {run}: the {side}'s last {} of {} events: {}",
            events.len() - from,
            events.len(),
            events[from..].join(" | ")
        );
    }
}

/// `event name status {voucher result} received/sent`, leaving out what is absent.
fn short_event(event: &Value) -> String {
    let mut text = event["event"].as_str().unwrap_or("?").to_owned();
    for key in ["name", "status"] {
        if let Some(value) = event[key].as_str() {
            text.push(' ');
            text.push_str(value);
        }
    }
    for key in ["voucher_result", "amount", "error"] {
        if !event[key].is_null() {
            text.push_str(&format!(" {key}={}", event[key]));
        }
    }
    if let (Some(received), Some(sent)) = (event["received"].as_u64(), event["sent"].as_u64()) {
        text.push_str(&format!(" {received}/{sent}"));
    }
    text
}

fn same_outcome(got: &Outcome, reference: &Outcome) -> anyhow::Result<()> {
    ensure!(
        got.statuses == reference.statuses,
        "final statuses {:?}, the reference ended {:?}",
        got.statuses,
        reference.statuses
    );
    ensure!(
        got.cars.len() == reference.cars.len(),
        "{} exports, the reference has {}",
        got.cars.len(),
        reference.cars.len()
    );
    for (got, want) in got.cars.iter().zip(&reference.cars) {
        same_car(got, want, "the reference's")?;
    }
    Ok(())
}

fn same_car(got: &[u8], want: &[u8], what: &str) -> anyhow::Result<()> {
    interop_common::same_car("exported", got, want, what)
}

/// A free loopback TCP port (for processes that must come back on the same address).
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs one scenario with these two programs in `dir`; `responder_copies`: the responder sends
/// each payment request twice (so the initiator is told to skip the copies).
fn run_case(
    kind: &Kind,
    inputs: &Inputs,
    (initiator, responder, responder_copies): (&Path, &Path, bool),
    dir: &Path,
) -> anyhow::Result<Outcome> {
    let mid = &inputs.mid;
    let mid_data = vec!["--car".to_owned(), mid.display().to_string()];
    let slow = |extra: &[&str]| -> Vec<String> {
        [
            mid_data.clone(),
            strings(&["--read-delay-after", SLOW_READS]),
            strings(extra),
        ]
        .concat()
    };
    match kind {
        Kind::Transfer {
            pull,
            data,
            selector,
            fixture,
        } => {
            let (sender_args, receiver_args) = (data.clone(), Vec::new());
            let (init_args, resp_args) = if *pull {
                (receiver_args, sender_args)
            } else {
                (sender_args, receiver_args)
            };
            let mut pair = Pair::start(initiator, &init_args, responder, &resp_args, dir)?;
            let root = pair.root()?;
            let channel = pair.open(*pull, &root, selector.as_deref(), None)?;
            let (init, resp) = pair.finish_both(&channel)?;
            let (sender, receiver) = if *pull {
                (&resp, &init)
            } else {
                (&init, &resp)
            };
            ensure_status(&init, "Completed")?;
            ensure_status(&resp, "Completed")?;
            let receiving = if *pull {
                &mut pair.initiator
            } else {
                &mut pair.responder
            };
            let car = export(receiving, &root, selector.as_deref(), &dir.join("out.car"))?;
            let bytes = block_bytes(&car)?;
            ensure!(
                receiver["received"] == bytes && sender["sent"] == bytes,
                "byte totals: receiver got {}, sender sent {}, the DAG has {bytes}",
                receiver["received"],
                sender["sent"]
            );
            if let Some(fixture) = fixture {
                let want = std::fs::read(fixture)
                    .with_context(|| format!("reading {}", fixture.display()))?;
                same_car(&car, &want, "the fixture")?;
            }
            Ok(Outcome {
                statuses: statuses(&init, &resp),
                cars: vec![car],
            })
        }
        Kind::Rejected { unknown_voucher } => {
            let resp_args = if *unknown_voucher {
                mid_data.clone()
            } else {
                [mid_data.clone(), strings(&["--refuse"])].concat()
            };
            let mut pair = Pair::start(initiator, &[], responder, &resp_args, dir)?;
            let root = pair.root()?;
            let voucher_type = unknown_voucher.then_some("UnknownVoucher");
            let channel = pair.open(true, &root, None, voucher_type)?;
            let init = pair.initiator.finished(&channel, FINISH_TIMEOUT)?;
            ensure!(
                init["status"] != "Completed",
                "the rejected pull completed: {init}"
            );
            ensure!(
                init["received"] == 0,
                "data arrived for a rejected pull: {init}"
            );
            // The responder may keep no channel at all; if it reports one, it did not complete.
            pair.responder.poll();
            let completed = pair
                .responder
                .events
                .iter()
                .any(|event| event["event"] == "finished" && event["status"] == "Completed");
            ensure!(!completed, "the responder completed a channel it rejected");
            Ok(Outcome {
                statuses: vec![text(&init["status"])],
                cars: Vec::new(),
            })
        }
        Kind::Pause { by } => {
            let mut pair = Pair::start(initiator, &[], responder, &slow(&[]), dir)?;
            let root = pair.root()?;
            let channel = pair.open(true, &root, None, None)?;
            pair.initiator.until_received(&channel)?;
            let pauser = pair.side(*by);
            pauser.command(json!({"cmd": "pause", "channel": channel}))?;
            // v1.15 (and our stack) move to a …Paused status; v2 keeps Ongoing and reports the
            // PauseInitiator / PauseResponder event.
            pauser.wait(COMMAND_TIMEOUT, "the pause", |event| {
                event["event"] == "dt"
                    && event["channel"] == channel
                    && (text(&event["status"]).contains("Paused")
                        || text(&event["name"]).starts_with("Pause"))
            })?;
            std::thread::sleep(Duration::from_millis(800));
            let before = pair.initiator.state(&channel)?["received"].clone();
            std::thread::sleep(Duration::from_millis(800));
            let after = pair.initiator.state(&channel)?["received"].clone();
            ensure!(
                before == after,
                "data arrived while paused: {before} then {after}"
            );
            pair.side(*by)
                .command(json!({"cmd": "resume", "channel": channel}))?;
            let (init, resp) = pair.finish_both(&channel)?;
            ensure_status(&init, "Completed")?;
            ensure_status(&resp, "Completed")?;
            let car = export(&mut pair.initiator, &root, None, &dir.join("out.car"))?;
            same_car(&car, &inputs.mid_car, "the file's CAR")?;
            let bytes = block_bytes(&car)?;
            ensure!(
                init["received"] == bytes && resp["sent"] == bytes,
                "byte totals: initiator got {}, responder sent {}, the DAG has {bytes}",
                init["received"],
                resp["sent"]
            );
            Ok(Outcome {
                statuses: statuses(&init, &resp),
                cars: vec![car],
            })
        }
        Kind::Cancel { by } => {
            let mut pair = Pair::start(initiator, &[], responder, &slow(&[]), dir)?;
            let root = pair.root()?;
            let channel = pair.open(true, &root, None, None)?;
            pair.initiator.until_received(&channel)?;
            pair.side(*by)
                .command(json!({"cmd": "cancel", "channel": channel}))?;
            let (init, resp) = pair.finish_both(&channel)?;
            ensure_status(&init, "Cancelled")?;
            ensure_status(&resp, "Cancelled")?;
            ensure!(
                init["received"].as_u64().unwrap_or(u64::MAX) < inputs.mid_bytes,
                "the cancel landed after the whole file: {init}"
            );
            Ok(Outcome {
                statuses: statuses(&init, &resp),
                cars: Vec::new(),
            })
        }
        Kind::Paid => {
            let resp_args = [
                mid_data.clone(),
                strings(&["--pay-every", "1048576", "--finalize"]),
            ]
            .concat();
            let init_args = if responder_copies {
                strings(&["--skip-request-copies"])
            } else {
                Vec::new()
            };
            let mut pair = Pair::start(initiator, &init_args, responder, &resp_args, dir)?;
            let root = pair.root()?;
            let channel = pair.open(true, &root, None, None)?;
            let (init, resp) = pair.finish_both(&channel)?;
            ensure_status(&init, "Completed")?;
            ensure_status(&resp, "Completed")?;
            let car = export(&mut pair.initiator, &root, None, &dir.join("out.car"))?;
            same_car(&car, &inputs.mid_car, "the file's CAR")?;
            let bytes = block_bytes(&car)?;
            let payments: Vec<u64> = pair
                .initiator
                .events
                .iter()
                .filter(|event| event["event"] == "paid" && event["channel"] == channel)
                .filter_map(|event| event["amount"].as_u64())
                .collect();
            ensure!(
                payments.len() >= 2,
                "expected several payments, got {payments:?}"
            );
            // The initiator pays every request it takes for one (a v1.15-style responder's
            // copies are skipped, --skip-request-copies), and a responder may ask again for a
            // step: at least the bytes sent, and the last result settles.
            ensure!(
                payments.iter().sum::<u64>() >= bytes,
                "payments {payments:?} do not cover the {bytes} bytes sent"
            );
            let settled = pair.initiator.events.iter().any(|event| {
                event["event"] == "dt"
                    && event["channel"] == channel
                    && event["voucher_result"]["Outcome"] == "settled"
            });
            ensure!(settled, "the initiator never saw the settlement");
            ensure!(
                init["received"] == bytes && resp["sent"] == bytes,
                "byte totals: initiator got {}, responder sent {}, the DAG has {bytes}",
                init["received"],
                resp["sent"]
            );
            Ok(Outcome {
                statuses: statuses(&init, &resp),
                cars: vec![car],
            })
        }
        Kind::Disconnect => {
            let mut pair = Pair::start(
                initiator,
                &strings(&["--monitor"]),
                responder,
                &slow(&["--monitor"]),
                dir,
            )?;
            let root = pair.root()?;
            let channel = pair.open(true, &root, None, None)?;
            // Cut the connection right after the first block the responder read slowly (the
            // root and three chunks come at full speed, then one every 60 ms: more than four
            // chunks' bytes means the fifth block arrived), so that no block is on the wire:
            // go-graphsync's responder goes on with the response on the next connection and
            // does not send again what the closed one lost, so the requester sees a gap and
            // fails the request (Go's and ours alike; docs/interop.md).
            pair.initiator.until_received_over(&channel, 4 * CHUNK)?;
            let remote = pair.responder.peer_id.clone();
            pair.initiator
                .command(json!({"cmd": "disconnect", "peer": remote}))?;
            let (init, resp) = pair.finish_both(&channel)?;
            ensure_status(&init, "Completed")?;
            ensure_status(&resp, "Completed")?;
            let car = export(&mut pair.initiator, &root, None, &dir.join("out.car"))?;
            same_car(&car, &inputs.mid_car, "the file's CAR")?;
            Ok(Outcome {
                statuses: statuses(&init, &resp),
                cars: vec![car],
            })
        }
        Kind::Kill { killed } => {
            let store = |name: &str| -> anyhow::Result<Vec<String>> {
                let port = free_port()?;
                Ok(vec![
                    "--store".to_owned(),
                    dir.join(name).display().to_string(),
                    "--listen".to_owned(),
                    format!("/ip4/127.0.0.1/tcp/{port}"),
                ])
            };
            let init_args = store("initiator-store")?;
            let resp_args = [store("responder-store")?, slow(&[])].concat();
            let mut pair = Pair::start(initiator, &init_args, responder, &resp_args, dir)?;
            let root = pair.root()?;
            let channel = pair.open(true, &root, None, None)?;
            pair.initiator.until_received(&channel)?;
            let (program, args) = match killed {
                Side::Initiator => (initiator, &init_args),
                Side::Responder => (responder, &resp_args),
            };
            pair.side(*killed).kill();
            if *killed == Side::Initiator {
                // As go-data-transfer's own kill test does (interop/go-dt-v2/dt_test.go): wait
                // until the responder has stopped working on the old response. go-graphsync's
                // responder keeps it sending, re-dials a peer that is back on its address and
                // de-duplicates blocks across the responses of one peer, so a restart that
                // comes earlier gets blocks announced without their data (docs/interop.md).
                pair.responder.quiet(&channel, QUIET)?;
            }
            let victim = pair.side(*killed);
            let log = dir.join(format!("{}-after-kill.log", killed.name()));
            *victim = Peer::start(program, args, &log)?;
            // The initiator restarts the channel, as Go's clients do: a restarted responder
            // would have to dial an initiator whose address it never stored.
            pair.initiator
                .command(json!({"cmd": "restart", "channel": channel}))?;
            let (init, resp) = pair.finish_both(&channel)?;
            ensure_status(&init, "Completed")?;
            ensure_status(&resp, "Completed")?;
            let car = export(&mut pair.initiator, &root, None, &dir.join("out.car"))?;
            same_car(&car, &inputs.mid_car, "the file's CAR")?;
            Ok(Outcome {
                statuses: statuses(&init, &resp),
                cars: vec![car],
            })
        }
        Kind::Parallel => {
            let resp_args: Vec<String> = COMPLETE
                .iter()
                .flat_map(|name| {
                    [
                        "--car".to_owned(),
                        inputs.fixtures.join(name).display().to_string(),
                    ]
                })
                .collect();
            let mut pair = Pair::start(initiator, &[], responder, &resp_args, dir)?;
            let roots = pair.roots.clone();
            ensure!(roots.len() == COMPLETE.len(), "roots loaded: {roots:?}");
            let mut channels = Vec::new();
            for root in &roots {
                channels.push(pair.open(true, root, None, None)?);
            }
            let mut outcome = Outcome::default();
            for (n, (channel, root)) in channels.iter().zip(&roots).enumerate() {
                let (init, resp) = pair.finish_both(channel)?;
                ensure_status(&init, "Completed")?;
                ensure_status(&resp, "Completed")?;
                let car = export(
                    &mut pair.initiator,
                    root,
                    None,
                    &dir.join(format!("out-{n}.car")),
                )?;
                let fixture = inputs.fixtures.join(COMPLETE[n]);
                same_car(&car, &std::fs::read(&fixture)?, "the fixture")?;
                outcome.statuses.extend(statuses(&init, &resp));
                outcome.cars.push(car);
            }
            Ok(outcome)
        }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn statuses(init: &Value, resp: &Value) -> Vec<String> {
    vec![text(&init["status"]), text(&resp["status"])]
}

fn ensure_status(finished: &Value, status: &str) -> anyhow::Result<()> {
    ensure!(
        finished["status"] == status,
        "expected {status}, the channel ended {finished}"
    );
    Ok(())
}

/// Exports `root` (with `selector`) from `peer` into `out` and reads the CAR back.
fn export(
    peer: &mut Peer,
    root: &str,
    selector: Option<&str>,
    out: &Path,
) -> anyhow::Result<Vec<u8>> {
    let mut command = json!({"cmd": "export", "root": root, "out": out.display().to_string()});
    if let Some(selector) = selector {
        command["selector"] = selector_value(selector)?;
    }
    peer.command(command)?;
    std::fs::read(out).with_context(|| format!("reading {}", out.display()))
}

/// A DAG-JSON selector as the JSON value the commands carry (dt-protocol.md: the selector is
/// DAG-JSON inside the command, not a string holding it).
fn selector_value(selector: &str) -> anyhow::Result<Value> {
    serde_json::from_str(selector).context("the scenario's selector is not JSON")
}

/// The sum of the block sizes of a CARv1 (what the data-transfer counters count).
fn block_bytes(car: &[u8]) -> anyhow::Result<u64> {
    let sections = car_sections(car)?;
    ensure!(!sections.is_empty(), "the exported CAR holds no block");
    let mut total = 0u64;
    for section in sections {
        let cid_len = if section.starts_with(&[0x12, 0x20]) {
            34
        } else {
            let mut cursor = 0;
            for _ in 0..3 {
                varint(section, &mut cursor)?;
            }
            let digest = varint(section, &mut cursor)?;
            cursor + digest
        };
        ensure!(cid_len <= section.len(), "car section shorter than its CID");
        total += (section.len() - cid_len) as u64;
    }
    Ok(total)
}

/// One running peer: its stdin, its event lines (all kept) and its log.
struct Peer {
    child: Option<Guard>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    events: Vec<Value>,
    peer_id: String,
    addr: String,
    roots: Vec<String>,
    next_tag: u64,
    log: Option<std::fs::File>,
}

impl Peer {
    /// Starts `program dt ARGS` and waits for its `listening` line.
    fn start(program: &Path, args: &[String], log: &Path) -> anyhow::Result<Peer> {
        // What the peer writes on stderr (Go's logs, a panic) goes beside its event log.
        let stderr_log = log.with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let mut child = Guard(
            Command::new(program)
                .arg("dt")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("starting {}", program.display()))?,
        );
        let stdout = child.0.stdout.take().context("the child has no stdout")?;
        let stdin = child.0.stdin.take();
        let lines = cmd::forward_lines(stdout);
        let log =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut peer = Peer {
            child: Some(child),
            stdin,
            lines,
            events: Vec::new(),
            peer_id: String::new(),
            addr: String::new(),
            roots: Vec::new(),
            next_tag: 0,
            log: Some(log),
        };
        let listening = peer.wait(LISTEN_TIMEOUT, "listening", |event| {
            event["event"] == "listening" || event["event"] == "fatal"
        })?;
        ensure!(
            listening["event"] == "listening",
            "{} failed: {listening}",
            program.display()
        );
        peer.peer_id = text(&listening["peer_id"]);
        peer.addr = text(&listening["addrs"][0]);
        peer.roots = peer
            .events
            .iter()
            .filter(|event| event["event"] == "loaded")
            .map(|event| text(&event["root"]))
            .collect();
        Ok(peer)
    }

    /// Reads every line printed so far.
    fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.record(&line);
        }
    }

    fn record(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            // The log is for a person reading a failure; losing a line is not a failure.
            let _ = writeln!(log, "< {line}");
        }
        let value = serde_json::from_str(line)
            .unwrap_or_else(|_| json!({"event": "non-json", "line": line}));
        self.events.push(value);
    }

    /// The first event (since start) that satisfies `accept`, waiting at most `timeout`.
    fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(found) = self.events[seen..].iter().find(|event| accept(event)) {
                return Ok(found.clone());
            }
            seen = self.events.len();
            if let Some(fatal) = self.events.iter().find(|event| event["event"] == "fatal") {
                bail!("the peer failed while waiting for {what}: {fatal}");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => self.record(&line),
                Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => {
                    bail!("timed out after {timeout:?} waiting for {what}")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the peer exited while waiting for {what}")
                }
            }
        }
    }

    /// Sends `command` with a fresh tag and returns its answer; fails on `command_failed`.
    fn command(&mut self, mut command: Value) -> anyhow::Result<Value> {
        self.next_tag += 1;
        let tag = format!("t{}", self.next_tag);
        command["tag"] = Value::String(tag.clone());
        let line = command.to_string();
        if let Some(log) = &mut self.log {
            let _ = writeln!(log, "> {line}");
        }
        let stdin = self.stdin.as_mut().context("the peer has no stdin")?;
        writeln!(stdin, "{line}").context("writing a command")?;
        stdin.flush().context("writing a command")?;
        let answer = self.wait(COMMAND_TIMEOUT, &format!("an answer to {line}"), |event| {
            event["tag"] == tag.as_str() && event["event"] != "dt"
        })?;
        ensure!(
            answer["event"] != "command_failed",
            "{line} failed: {answer}"
        );
        Ok(answer)
    }

    fn state(&mut self, channel: &Value) -> anyhow::Result<Value> {
        self.command(json!({"cmd": "state", "channel": channel}))
    }

    /// The channel's `finished` event.
    fn finished(&mut self, channel: &Value, timeout: Duration) -> anyhow::Result<Value> {
        self.wait(timeout, &format!("the end of channel {channel}"), |event| {
            event["event"] == "finished" && event["channel"] == *channel
        })
    }

    /// Waits until some data of the channel arrived here.
    fn until_received(&mut self, channel: &Value) -> anyhow::Result<()> {
        self.until_received_over(channel, 0)
    }

    /// Waits until more than `bytes` of the channel arrived here.
    fn until_received_over(&mut self, channel: &Value, bytes: u64) -> anyhow::Result<()> {
        self.wait(
            COMMAND_TIMEOUT,
            &format!("more than {bytes} bytes"),
            |event| {
                event["event"] == "dt"
                    && event["channel"] == *channel
                    && event["received"].as_u64().is_some_and(|n| n > bytes)
            },
        )?;
        Ok(())
    }

    /// Waits until the peer has printed no event of `channel` for `quiet` (at most
    /// [`FINISH_TIMEOUT`]).
    fn quiet(&mut self, channel: &Value, quiet: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let mut since = Instant::now();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "channel {channel} still busy after {FINISH_TIMEOUT:?}"
            );
            let rest = quiet.saturating_sub(since.elapsed());
            if rest.is_zero() {
                return Ok(());
            }
            match self.lines.recv_timeout(rest.min(left)) {
                Ok(line) => {
                    self.record(&line);
                    let event = self.events.last().cloned().unwrap_or_default();
                    if event["channel"] == *channel {
                        since = Instant::now();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("the peer exited while its channel {channel} was to go quiet")
                }
            }
        }
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        self.stdin = None;
        self.child = None;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Keep what the peer printed last in its log.
        self.poll();
    }
}

/// An initiator and a responder.
struct Pair {
    initiator: Peer,
    responder: Peer,
    roots: Vec<String>,
}

impl Pair {
    fn start(
        initiator: &Path,
        init_args: &[String],
        responder: &Path,
        resp_args: &[String],
        dir: &Path,
    ) -> anyhow::Result<Pair> {
        let responder = Peer::start(responder, resp_args, &dir.join("responder.log"))?;
        let initiator = Peer::start(initiator, init_args, &dir.join("initiator.log"))?;
        let roots = if initiator.roots.is_empty() {
            responder.roots.clone()
        } else {
            initiator.roots.clone()
        };
        Ok(Pair {
            initiator,
            responder,
            roots,
        })
    }

    fn side(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Initiator => &mut self.initiator,
            Side::Responder => &mut self.responder,
        }
    }

    fn root(&self) -> anyhow::Result<String> {
        self.roots.first().cloned().context("no root was loaded")
    }

    /// Opens a pull or a push from the initiator to the responder; returns the channel.
    fn open(
        &mut self,
        pull: bool,
        root: &str,
        selector: Option<&str>,
        voucher_type: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut command = json!({
            "cmd": if pull { "pull" } else { "push" },
            "peer": format!("{}/p2p/{}", self.responder.addr, self.responder.peer_id),
            "root": root,
            "voucher": {"ID": "interop", "Amount": 0},
        });
        if let Some(selector) = selector {
            command["selector"] = selector_value(selector)?;
        }
        if let Some(voucher_type) = voucher_type {
            command["voucher_type"] = Value::String(voucher_type.to_owned());
        }
        let opened = self.initiator.command(command)?;
        Ok(opened["channel"].clone())
    }

    /// Both ends' `finished` events.
    fn finish_both(&mut self, channel: &Value) -> anyhow::Result<(Value, Value)> {
        let init = self
            .initiator
            .finished(channel, FINISH_TIMEOUT)
            .context("at the initiator")?;
        let resp = self
            .responder
            .finished(channel, FINISH_TIMEOUT)
            .context("at the responder")?;
        Ok((init, resp))
    }
}

/// The matrix as Markdown.
fn render(builds: &[Build], rows: &[Row]) -> String {
    let mut text = String::new();
    let labels: Vec<&str> = builds.iter().map(|build| build.label.as_str()).collect();
    text.push_str(&format!(
        "Data-transfer builds: {}. Each cell: initiator → responder.\n\n",
        labels.join(", ")
    ));
    text.push_str("| scenario | build | go → go (reference) | rust → go | go → rust |\n");
    text.push_str("| --- | --- | --- | --- | --- |\n");
    for row in rows {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.build,
            row.reference.short(),
            row.rust_to_go.short(),
            row.go_to_rust.short()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_prints_each_event_on_one_short_line() {
        let dt = json!({"event": "dt", "name": "NewVoucherResult", "status": "Ongoing",
            "received": 10, "sent": 0, "voucher_result": {"Outcome": "paid", "Owed": 0},
            "message": ""});
        assert_eq!(
            short_event(&dt),
            r#"dt NewVoucherResult Ongoing voucher_result={"Outcome":"paid","Owed":0} 10/0"#
        );
        let paid = json!({"event": "paid", "amount": 1024, "channel": {"id": 1}});
        assert_eq!(short_event(&paid), "paid amount=1024");
    }

    #[test]
    fn block_bytes_skips_the_cids() -> anyhow::Result<()> {
        // Header of 2 bytes; a CIDv1 raw section (1, 0x55, 0x12, 2, digest ab cd) with 3 data
        // bytes; a CIDv0 section with 1 data byte.
        let mut car = vec![2, 0xa0, 0xa0, 9, 1, 0x55, 0x12, 2, 0xab, 0xcd, 7, 8, 9];
        car.push(35);
        car.extend_from_slice(&[0x12, 0x20]);
        car.extend_from_slice(&[0; 32]);
        car.push(42);
        assert_eq!(block_bytes(&car)?, 4);
        assert!(block_bytes(&[2, 0xa0, 0xa0]).is_err());
        Ok(())
    }

    #[test]
    fn generated_files_are_seeded() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-dt-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let first = std::fs::read(generate(&dir, 1000)?)?;
        std::fs::remove_dir_all(&dir)?;
        std::fs::create_dir_all(&dir)?;
        let second = std::fs::read(generate(&dir, 1000)?)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(first.len(), 1000);
        assert_eq!(first, second);
        Ok(())
    }
}
