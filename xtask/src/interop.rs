//! `cargo xtask interop [--report]`: the Graphsync scenarios of issue 5 between our Rust node and
//! the Go reference peer, in both directions, and the UnixFS CID comparison.
//!
//! Builds the Go peers (`interop/go-peer` on go-graphsync v0.18.1, `interop/go-peer-v013` on
//! v0.13.2) and the Rust example
//! `interop_peer` (graphsync's `examples/interop_peer.rs`, on `graphsync::network::Node` over
//! TCP + noise + yamux). Every scenario first runs Go requester → Go responder as the reference
//! (its expectations are checked too: the Go stack must behave as the scenario says), then Rust
//! requester → Go responder and Go requester → Rust responder, each over loopback TCP with fresh
//! processes. A direction passes when its requester's final status is the expected one, the
//! blocks it loaded are the reference's one by one (CID, and whether it came over the network),
//! the CAR of the blocks that arrived is byte-identical to the reference's (and, for full
//! transfers of a fixture, to the fixture), plus scenario-specific checks (cancel, parallel).
//! A scenario a Go build cannot run (Graphsync 1.0.0 against go-graphsync v0.18) is reported as
//! `not run: <why>`, never as a pass, and does not fail the run.
//!
//! The UnixFS part imports the same seeded pseudo-random files (0 B to 50 MiB and the 64 MiB
//! transfer file, `go-peer genfile`) with boxo's importer (`go-peer import`) and with dag-io
//! (`interop_peer import`), CIDv1 and CIDv0 settings, and requires identical root CIDs.
//!
//! Scenarios run a few at a time (`INTEROP_JOBS`, default 3). Every child process is killed and
//! reaped on every path, and every wait is bounded. `--report` rewrites the matrix in
//! `docs/interop.md` between its marker comments.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cmd;
use crate::interop_common::{
    self, Cell, GoBuild, Guard, car_sections, print_summary, strings, target_dir, write_report,
};

/// The complete CAR fixtures (under `shared/fixtures/car/`): every block of the DAG, once each,
/// in explore-all traversal order.
const COMPLETE: [&str; 4] = [
    "dag-cbor-traversal.car",
    "dag-pb.car",
    "dir-with-files.car",
    "simple-unixfs.car",
];

/// The Go peer builds: the go-graphsync version they carry and their module directory.
const GO_BUILDS: &[(&str, &str)] = &[
    ("v0.18.1", "interop/go-peer"),
    ("v0.13.2", "interop/go-peer-v013"),
];

/// Size of the generated UnixFS file transferred whole.
const BIG_FILE: u64 = 64 << 20;

/// Sizes of the seeded random files whose root CIDs are compared (0 B to 50 MiB): empty, one
/// byte, around one chunk, around a full first level (174 chunks), 50 MiB, and the 64 MiB file
/// the transfers use.
const UNIXFS_SIZES: [u64; 10] = [
    0,
    1,
    262_143,
    262_144,
    262_145,
    3_000_000,
    174 * 262_144,
    174 * 262_144 + 1,
    50 << 20,
    BIG_FILE,
];

/// How long a responder may take to print its listening address (it may import 64 MiB first).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one requester may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Marker comments around the matrix in `docs/interop.md`.
const MATRIX_START: &str = "<!-- interop-matrix:start -->";
const MATRIX_END: &str = "<!-- interop-matrix:end -->";

/// Which side is which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Rust requester, Go responder.
    RustToGo,
    /// Go requester, Rust responder.
    GoToRust,
}

impl Direction {
    const BOTH: [Direction; 2] = [Direction::RustToGo, Direction::GoToRust];

    fn label(self) -> &'static str {
        match self {
            Direction::RustToGo => "rust → go",
            Direction::GoToRust => "go → rust",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Direction::RustToGo => "rust-from-go",
            Direction::GoToRust => "go-from-rust",
        }
    }
}

/// The peer binaries of one run.
struct Peers {
    /// The Go peer builds: (go-graphsync version label, binary).
    go: Vec<(String, PathBuf)>,
    rust: PathBuf,
}

/// Which root a requester asks for.
#[derive(Clone, Debug)]
enum Root {
    /// The first root the responder printed as `loaded`.
    Loaded,
    /// The first root of this CAR (not served: a missing root).
    OfCar(PathBuf),
}

/// What a scenario must show beyond "same as the reference".
#[derive(Clone, Debug)]
enum Check {
    /// One request: this final status, the reference's blocks and CAR; and, if set, the CAR
    /// is byte-identical to this file.
    Same {
        status: i64,
        car_equals: Option<PathBuf>,
    },
    /// One side cancels after `after` blocks: the requester ends cancelled (`by_requester`,
    /// with at least `after` blocks) or with status 35, and the blocks it loaded agree with the
    /// reference's as far as both got (how many arrive before a responder's cancel lands is
    /// timing-dependent).
    Cancel { after: usize, by_requester: bool },
    /// `count` parallel requests all end with 20, each loads what the reference's first request
    /// loaded, and the CAR holds exactly this CAR's blocks.
    Parallel { count: usize, blocks_of: PathBuf },
}

/// One scenario of the matrix.
#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    /// Arguments after `serve`.
    serve: Vec<String>,
    /// Arguments after `request --peer … --root … --out …`.
    request: Vec<String>,
    root: Root,
    check: Check,
    /// Arguments only the Rust peer gets (after `serve` or `request`).
    rust_args: Vec<String>,
    /// Why the scenario cannot run against a Go build at all, by version label prefix.
    not_run_go: Vec<(&'static str, String)>,
}

impl Scenario {
    fn new(name: impl Into<String>, serve: Vec<String>, check: Check) -> Self {
        Scenario {
            name: name.into(),
            serve,
            request: Vec::new(),
            root: Root::Loaded,
            check,
            rust_args: Vec::new(),
            not_run_go: Vec::new(),
        }
    }

    fn request(mut self, args: &[&str]) -> Self {
        self.request
            .extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }
}

/// One row of the matrix: a scenario against one Go build, both directions.
struct Row {
    scenario: String,
    go: String,
    cells: Vec<(Direction, Cell)>,
}

/// What one requester/responder pair produced.
#[derive(Debug, Default)]
struct PairRun {
    requester: Vec<Value>,
    responder: Vec<Value>,
    car: Option<Vec<u8>>,
}

impl PairRun {
    /// The events named `event`.
    fn events<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.requester
            .iter()
            .filter(move |value| value["event"] == event)
    }

    /// The `done` events, by request index.
    fn dones(&self) -> Vec<&Value> {
        let mut dones: Vec<&Value> = self.events("done").collect();
        dones.sort_by_key(|done| done["index"].as_u64().unwrap_or(0));
        dones
    }

    /// The loads of request 0: CID and whether the block came over the network.
    fn loads(&self) -> Vec<(String, bool)> {
        self.loads_of(0)
    }

    /// The loads of request `index`.
    fn loads_of(&self, index: u64) -> Vec<(String, bool)> {
        self.events("block")
            .filter(|block| block["index"].as_u64().unwrap_or(0) == index)
            .map(|block| {
                (
                    block["cid"].as_str().unwrap_or_default().to_owned(),
                    block["on_wire"].as_u64().unwrap_or(0) > 0,
                )
            })
            .collect()
    }

    /// The final status of request 0 (null when there was none).
    fn status(&self) -> Option<i64> {
        self.dones()
            .first()
            .and_then(|done| done["status"].as_i64())
    }

    /// A fatal error of the responder, or of the requester before it finished (the Go peer's
    /// requester also exits with a fatal line after `done` when the status is not 20).
    fn fatal(&self) -> Option<String> {
        let requester = self.dones().is_empty().then_some(&self.requester);
        requester
            .into_iter()
            .flatten()
            .chain(&self.responder)
            .find(|value| value["event"] == "fatal")
            .map(|value| value["error"].to_string())
    }
}

/// Runs every scenario (and the UnixFS CID comparison), prints the matrix and, with `report`,
/// writes it into `docs/interop.md`.
///
/// # Errors
/// When a peer cannot be built, a fixture is missing, or any scenario that runs fails.
pub(crate) fn run(report: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = cmd::root();
    let target = target_dir(&root);
    let work = target.join("interop");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let fixtures = root.join("../shared/fixtures/car");
    if !fixtures.is_dir() {
        bail!("the CAR fixtures are missing: {}", fixtures.display());
    }
    let peers = build(&root, &target, &work)?;
    println!("interop: peers built in {:.0?}", started.elapsed());

    let files = work.join("files");
    std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
    let big = big_car(&peers.go[0].1, &files)?;
    let mut scenarios = scenarios(&fixtures, &big)?;
    // INTEROP_ONLY=text runs only the scenarios whose name contains it (for debugging).
    if let Ok(only) = std::env::var("INTEROP_ONLY") {
        scenarios.retain(|scenario| scenario.name.contains(&only));
    }

    let jobs = std::env::var("INTEROP_JOBS")
        .ok()
        .and_then(|jobs| jobs.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let mut work_items = Vec::new();
    for (go_label, go) in &peers.go {
        for scenario in &scenarios {
            work_items.push((go_label.clone(), go.clone(), scenario.clone()));
        }
    }
    let queue = Arc::new(Mutex::new(work_items.into_iter().enumerate()));
    let rows = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let queue = Arc::clone(&queue);
            let rows = Arc::clone(&rows);
            let rust = &peers.rust;
            let work = &work;
            scope.spawn(move || {
                loop {
                    let next = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .next();
                    let Some((order, (go_label, go, scenario))) = next else {
                        return;
                    };
                    let row = run_scenario(&go_label, &go, rust, work, &scenario);
                    for (direction, cell) in &row.cells {
                        println!(
                            "interop: {} [{}] ({}): {}",
                            row.scenario,
                            row.go,
                            direction.label(),
                            match cell {
                                Cell::Fail(why) => format!("FAIL: {why}"),
                                other => other.short(),
                            }
                        );
                    }
                    rows.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((order, row));
                }
            });
        }
    });
    let mut rows = std::mem::take(
        &mut *rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    rows.sort_by_key(|(order, _)| *order);
    let rows: Vec<Row> = rows.into_iter().map(|(_, row)| row).collect();

    let unixfs_started = Instant::now();
    let unixfs = unixfs_cids(&peers, &files);
    println!(
        "interop: unixfs cid comparison in {:.0?}",
        unixfs_started.elapsed()
    );

    let matrix = render_matrix(&peers, &rows, &unixfs);
    println!("\n{matrix}");
    let mut failures = Vec::new();
    for row in &rows {
        for (direction, cell) in &row.cells {
            if let Cell::Fail(why) = cell {
                failures.push(format!(
                    "{} [{}] ({}): {why}",
                    row.scenario,
                    row.go,
                    direction.label()
                ));
            }
        }
    }
    for (size, version, cell) in &unixfs {
        if let Cell::Fail(why) = cell {
            failures.push(format!("unixfs {size} B cidv{version}: {why}"));
        }
    }
    let cells = rows.iter().map(|row| row.cells.len()).sum::<usize>() + unixfs.len();
    let not_run = rows
        .iter()
        .flat_map(|row| &row.cells)
        .filter(|(_, cell)| matches!(cell, Cell::NotRun(_)))
        .count();
    print_summary("interop", cells, not_run, &failures, started.elapsed());
    if report {
        write_report(
            &root.join("docs/interop.md"),
            MATRIX_START,
            MATRIX_END,
            &matrix,
        )?;
        println!("interop: matrix written to docs/interop.md");
    }
    failures.extend(crate::interop_dt::run(&root, &target, &work, report)?);
    if !failures.is_empty() {
        bail!("{} interop check(s) failed", failures.len());
    }
    Ok(())
}

/// Builds the Go peers and the Rust example, all at once: with a cold Go module cache the Go
/// builds spend much of their time downloading, which the Rust build overlaps.
fn build(root: &Path, target: &Path, work: &Path) -> anyhow::Result<Peers> {
    let mut go_builds = Vec::new();
    for &(label, dir) in GO_BUILDS {
        go_builds.push((label, GoBuild::start(root, work, dir)?));
    }
    cmd::run(cmd::cargo().args([
        "build",
        "--locked",
        "-p",
        "graphsync",
        "--example",
        "interop_peer",
    ]))?;
    let rust = target.join("debug/examples/interop_peer");
    if !rust.is_file() {
        bail!("the Rust interop peer was not built at {}", rust.display());
    }
    let mut go = Vec::new();
    for (label, build) in go_builds {
        go.push((label.to_owned(), build.finish()?));
    }
    Ok(Peers { go, rust })
}

/// `go-peer genfile SIZE` into `dir` (kept between runs: same size, same bytes).
fn genfile(go: &Path, dir: &Path, size: u64) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("random-{size}.bin"));
    let fresh = std::fs::metadata(&path).is_ok_and(|meta| meta.len() == size);
    if !fresh {
        cmd::output(
            Command::new(go)
                .arg("genfile")
                .arg(size.to_string())
                .arg(&path),
        )?;
    }
    Ok(path)
}

/// The generated 64 MiB file imported by boxo (CIDv1, kubo defaults) as a CAR in traversal
/// order: every Go build serves it (the v0.13 build has no importer), and the UnixFS part
/// checks that dag-io gives the same root for the file.
fn big_car(go: &Path, files: &Path) -> anyhow::Result<PathBuf> {
    let file = genfile(go, files, BIG_FILE)?;
    let car = files.join(format!("random-{BIG_FILE}.car"));
    if !car.is_file() {
        cmd::output(
            Command::new(go)
                .args(["import", "--cid-version", "1", "--car"])
                .arg(&car)
                .arg(&file),
        )?;
    }
    Ok(car)
}

fn path_arg(flag: &str, path: &Path) -> Vec<String> {
    vec![flag.to_owned(), path.display().to_string()]
}

/// The scenario list of issue 5 §2.
fn scenarios(fixtures: &Path, big: &Path) -> anyhow::Result<Vec<Scenario>> {
    let car = |name: &str| fixtures.join(name);
    for name in COMPLETE.iter().chain(&[
        "simple-unixfs-missing-blocks.car",
        "file-3k-and-3-blocks-missing-block.car",
    ]) {
        if !car(name).is_file() {
            bail!("fixture missing: {}", car(name).display());
        }
    }

    let mut list = Vec::new();
    // Full traversals of every complete fixture: the CAR that arrives is the fixture.
    for name in COMPLETE {
        list.push(Scenario::new(
            format!("full {name}"),
            path_arg("--car", &car(name)),
            Check::Same {
                status: 20,
                car_equals: Some(car(name)),
            },
        ));
    }
    list.push(Scenario::new(
        "full 64 MiB UnixFS file",
        path_arg("--car", big),
        Check::Same {
            status: 20,
            car_equals: Some(big.to_path_buf()),
        },
    ));
    let same20 = Check::Same {
        status: 20,
        car_equals: None,
    };
    // Sub-DAGs.
    list.push(
        Scenario::new(
            "ExploreFields into a dag-cbor map",
            path_arg("--car", &car("dag-cbor-traversal.car")),
            same20.clone(),
        )
        .request(&[
            "--selector",
            r#"{"f":{"f>":{"a":{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}}}}"#,
        ]),
    );
    list.push(
        Scenario::new(
            "ExploreIndex into dag-pb links",
            path_arg("--car", &car("dir-with-files.car")),
            same20.clone(),
        )
        .request(&[
            "--selector",
            r#"{"f":{"f>":{"Links":{"i":{"i":1,">":{"f":{"f>":{"Hash":{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}}}}}}}}}"#,
        ]),
    );
    list.push(
        Scenario::new(
            "depth-limited recursion (depth 2)",
            path_arg("--car", &car("dir-with-files.car")),
            same20.clone(),
        )
        .request(&[
            "--selector",
            r#"{"R":{"l":{"depth":2},":>":{"a":{">":{"@":{}}}}}}"#,
        ]),
    );
    // Partial responses and a missing root.
    for name in [
        "simple-unixfs-missing-blocks.car",
        "file-3k-and-3-blocks-missing-block.car",
    ] {
        list.push(Scenario::new(
            format!("partial {name} (21)"),
            path_arg("--car", &car(name)),
            Check::Same {
                status: 21,
                car_equals: None,
            },
        ));
    }
    let mut missing_root = Scenario::new(
        "missing root (34)",
        path_arg("--car", &car("dag-pb.car")),
        Check::Same {
            status: 34,
            car_equals: None,
        },
    );
    missing_root.root = Root::OfCar(car("dag-cbor-traversal.car"));
    list.push(missing_root);
    // The requester already has the first blocks.
    let simple = car("simple-unixfs.car");
    let have = path_arg("--have", &simple);
    list.push(
        Scenario::new(
            "do-not-send-first-blocks 3",
            path_arg("--car", &simple),
            same20.clone(),
        )
        .request(&[&have[0], &have[1], "--have-first", "3"])
        .request(&["--ext", "graphsync/do-not-send-first-blocks=3"]),
    );
    list.push(
        Scenario::new(
            "do-not-send-cids (first 3 blocks)",
            path_arg("--car", &simple),
            same20.clone(),
        )
        .request(&[&have[0], &have[1], "--have-first", "3"])
        // Filled in by `resolve_cids` from the fixture.
        .request(&["--ext-cids-of-first", "3"]),
    );
    // Pause and unpause.
    list.push(
        Scenario::new(
            "responder pause, unpause through an update",
            [
                path_arg("--car", &simple),
                strings(&["--pause-after-blocks", "2", "--unpause-on-update"]),
            ]
            .concat(),
            same20.clone(),
        )
        .request(&["--update-on-pause", "interop/resume=true"]),
    );
    list.push(
        Scenario::new(
            "requester pause and unpause",
            path_arg("--car", &simple),
            same20.clone(),
        )
        .request(&["--pause-after-blocks", "2", "--unpause-after", "300ms"]),
    );
    // Cancels.
    // Cancels, mid-way through the 64 MiB file.
    list.push(
        Scenario::new(
            "requester cancels after 3 blocks of 64 MiB",
            path_arg("--car", big),
            Check::Cancel {
                after: 3,
                by_requester: true,
            },
        )
        .request(&["--cancel-after-blocks", "3"]),
    );
    list.push(Scenario::new(
        "responder cancels after 3 blocks of 64 MiB (35)",
        [
            path_arg("--car", big),
            strings(&["--cancel-after-blocks", "3"]),
        ]
        .concat(),
        Check::Cancel {
            after: 3,
            by_requester: false,
        },
    ));
    // Many at once, and a refusal.
    list.push(
        Scenario::new(
            "8 parallel requests",
            path_arg("--car", &car("dir-with-files.car")),
            Check::Parallel {
                count: 8,
                blocks_of: car("dir-with-files.car"),
            },
        )
        // Each request its own dedup pool: a Go responder otherwise withholds from one request
        // the blocks it sends to another, and the requester must race to find them locally
        // (spec §7.5), which makes the block order of each request timing-dependent.
        .request(&["--parallel", "8", "--dedup-key-per-request"]),
    );
    list.push(Scenario::new(
        "rejected request (30)",
        [path_arg("--car", &simple), strings(&["--reject"])].concat(),
        Check::Same {
            status: 30,
            car_equals: None,
        },
    ));
    // The Rust side speaks only 1.0.0, so every message of a passing direction went over it;
    // the Go → Go reference negotiates 2.0.0 (v0.13 prefers it), same behaviour.
    let mut v1 = Scenario::new(
        "protocol 1.0.0 (Rust side 1.0.0 only)",
        path_arg("--car", &car("dir-with-files.car")),
        Check::Same {
            status: 20,
            car_equals: Some(car("dir-with-files.car")),
        },
    );
    v1.rust_args = strings(&["--protocol", "1.0.0"]);
    v1.not_run_go.push((
        "v0.18",
        "go-graphsync v0.14+ speaks /ipfs/graphsync/2.0.0 only".to_owned(),
    ));
    list.push(v1);
    Ok(list)
}

/// Runs one scenario against one Go build: the Go → Go reference, then both directions.
fn run_scenario(go_label: &str, go: &Path, rust: &Path, work: &Path, scenario: &Scenario) -> Row {
    let mut row = Row {
        scenario: scenario.name.clone(),
        go: go_label.to_owned(),
        cells: Vec::new(),
    };
    if let Some((_, why)) = scenario
        .not_run_go
        .iter()
        .find(|(prefix, _)| go_label.starts_with(prefix))
    {
        for direction in Direction::BOTH {
            row.cells.push((direction, Cell::NotRun(why.clone())));
        }
        return row;
    }
    let slug: String = scenario
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = work.join("runs").join(go_label).join(slug);
    let reference = std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating {}", dir.display()))
        .and_then(|()| run_pair(go, go, &dir.join("go-from-go.car"), scenario, rust))
        .and_then(|run| {
            check(scenario, &run, None)
                .context("the Go → Go reference does not show the expected behaviour")?;
            Ok(run)
        });
    for direction in Direction::BOTH {
        let cell = match &reference {
            Err(error) => Cell::Fail(format!("{error:#}")),
            Ok(reference) => {
                let (requester, responder) = match direction {
                    Direction::RustToGo => (rust, go),
                    Direction::GoToRust => (go, rust),
                };
                let out = dir.join(format!("{}.car", direction.tag()));
                match run_pair(responder, requester, &out, scenario, rust)
                    .and_then(|run| check(scenario, &run, Some(reference)))
                {
                    Ok(()) => Cell::Pass,
                    Err(error) => Cell::Fail(format!("{error:#}")),
                }
            }
        };
        row.cells.push((direction, cell));
    }
    row
}

/// Checks one run against the scenario and, for the directions, against the reference.
fn check(scenario: &Scenario, run: &PairRun, reference: Option<&PairRun>) -> anyhow::Result<()> {
    if let Some(fatal) = run.fatal() {
        bail!("a peer failed: {fatal}");
    }
    let dones = run.dones();
    match &scenario.check {
        Check::Same { status, car_equals } => {
            if dones.len() != 1 {
                bail!("expected one done event, got {}", dones.len());
            }
            if run.status() != Some(*status) {
                bail!(
                    "final status {:?}, expected {status}; requester said {}",
                    run.status(),
                    dones[0]
                );
            }
            if let Some(reference) = reference {
                same_loads(run, reference)?;
                same_car(
                    run.car.as_deref(),
                    reference.car.as_deref(),
                    "the reference",
                )?;
            }
            if let Some(path) = car_equals {
                let fixture =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                same_car(run.car.as_deref(), Some(&fixture), "the fixture")?;
            }
        }
        Check::Cancel {
            after,
            by_requester,
        } => {
            if dones.len() != 1 {
                bail!("expected one done event, got {}", dones.len());
            }
            let done = dones[0];
            if *by_requester {
                if done["cancelled"] != true {
                    bail!("the requester did not cancel: {done}");
                }
                if done["outcome"].is_string() && done["outcome"] != "cancelled" {
                    bail!(
                        "the Rust requester's outcome is {}, not cancelled",
                        done["outcome"]
                    );
                }
                if matches!(run.status(), Some(20 | 21)) {
                    bail!("a cancelled request completed: {done}");
                }
            } else if run.status() != Some(35) {
                bail!(
                    "final status {:?}, expected 35 (RequestCancelled): {done}",
                    run.status()
                );
            }
            let loads = run.loads();
            if *by_requester && loads.len() < *after {
                bail!("{} blocks before the cancel, expected {after}", loads.len());
            }
            if let Some(reference) = reference {
                let expected = reference.loads();
                let common = loads.len().min(expected.len());
                if loads[..common] != expected[..common] {
                    bail!(
                        "blocks {:?}, reference {:?}",
                        &loads[..common],
                        &expected[..common]
                    );
                }
            }
            // A Go responder that completed would have sent the whole DAG: the cancel came late.
            if *by_requester
                && run
                    .responder
                    .iter()
                    .any(|value| value["event"] == "completed")
            {
                bail!("the Go responder completed the cancelled response");
            }
        }
        Check::Parallel { count, blocks_of } => {
            if dones.len() != *count {
                bail!("expected {count} done events, got {}", dones.len());
            }
            for (index, done) in dones.iter().enumerate() {
                let local_only = run.loads_of(index as u64).iter().all(|(_, wire)| !wire);
                // go-graphsync's requester runs 6 requests at once and loads locally until its
                // first miss before sending anything: the later ones find every block stored
                // by the earlier ones and never reach the responder (no status at all).
                let unsent = matches!(done["status"].as_i64(), None | Some(0)) && local_only;
                if done["status"].as_i64() != Some(20) && !unsent {
                    bail!("a parallel request ended with {done}");
                }
            }
            if let Some(reference) = reference {
                let cids = |loads: Vec<(String, bool)>| -> Vec<String> {
                    loads.into_iter().map(|(cid, _)| cid).collect()
                };
                let want = cids(reference.loads());
                for index in 0..*count as u64 {
                    let got = cids(run.loads_of(index));
                    if got != want {
                        bail!(
                            "request {index} loaded {} blocks differently from the reference ({})",
                            got.len(),
                            want.len()
                        );
                    }
                }
            }
            let fixture = std::fs::read(blocks_of)
                .with_context(|| format!("reading {}", blocks_of.display()))?;
            let mut want = car_sections(&fixture)?;
            let mut got = car_sections(run.car.as_deref().unwrap_or_default())?;
            want.sort();
            got.sort();
            if want != got {
                bail!(
                    "the blocks that arrived ({}) are not the fixture's ({})",
                    got.len(),
                    want.len()
                );
            }
        }
    }
    Ok(())
}

fn same_loads(run: &PairRun, reference: &PairRun) -> anyhow::Result<()> {
    let (got, want) = (run.loads(), reference.loads());
    if let Some(at) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        bail!(
            "block {at} of {}: got {:?}, the reference loaded {:?} ({} blocks)",
            got.len(),
            got.get(at),
            want.get(at),
            want.len()
        );
    }
    Ok(())
}

fn same_car(got: Option<&[u8]>, want: Option<&[u8]>, what: &str) -> anyhow::Result<()> {
    let got = got.context("the requester wrote no CAR")?;
    let want = want.with_context(|| format!("{what} has no CAR"))?;
    interop_common::same_car("received", got, want, what)
}

/// Starts `responder serve`, then `requester request` against it, and collects both sides.
fn run_pair(
    responder: &Path,
    requester: &Path,
    out: &Path,
    scenario: &Scenario,
    rust: &Path,
) -> anyhow::Result<PairRun> {
    // A stale result must not pass for a fresh one.
    if out.exists() {
        std::fs::remove_file(out).with_context(|| format!("removing {}", out.display()))?;
    }
    let rust_args = |binary: &Path| {
        if binary == rust {
            scenario.rust_args.clone()
        } else {
            Vec::new()
        }
    };
    let mut server = Guard(
        Command::new(responder)
            .arg("serve")
            .args(&scenario.serve)
            .args(rust_args(responder))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", responder.display()))?,
    );
    let server_lines = lines_of(server.0.stdout.take())?;
    let (loaded, address, mut responder_events) = wait_listening(&server_lines)?;
    let root = match &scenario.root {
        Root::Loaded => loaded.context("the responder loaded no root")?,
        Root::OfCar(car) => car_listing(rust, car)?.0,
    };
    let mut args = vec![
        "request".to_owned(),
        "--peer".to_owned(),
        address,
        "--root".to_owned(),
        root,
        "--out".to_owned(),
        out.display().to_string(),
    ];
    let mut request = scenario.request.iter();
    while let Some(arg) = request.next() {
        if arg == "--ext-cids-of-first" {
            let count: usize = request
                .next()
                .context("--ext-cids-of-first needs a count")?
                .parse()?;
            let car = scenario
                .request
                .windows(2)
                .find(|pair| pair[0] == "--have")
                .map(|pair| PathBuf::from(&pair[1]))
                .context("--ext-cids-of-first needs --have")?;
            let (_, cids) = car_listing(rust, &car)?;
            let links: Vec<String> = cids
                .iter()
                .take(count)
                .map(|cid| format!(r#"{{"/":"{cid}"}}"#))
                .collect();
            args.push("--ext".to_owned());
            args.push(format!("graphsync/do-not-send-cids=[{}]", links.join(",")));
        } else {
            args.push(arg.clone());
        }
    }
    let started = Instant::now();
    let mut client = Guard(
        Command::new(requester)
            .args(&args)
            .args(rust_args(requester))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", requester.display()))?,
    );
    let client_lines = lines_of(client.0.stdout.take())?;
    let mut requester_events = Vec::new();
    loop {
        while let Ok(line) = client_lines.try_recv() {
            requester_events.push(parse(&line)?);
        }
        if client
            .0
            .try_wait()
            .context("waiting for the requester")?
            .is_some()
        {
            break;
        }
        if started.elapsed() > RUN_TIMEOUT {
            bail!("the requester did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The reader thread ends with the pipe: collect the rest.
    while let Ok(line) = client_lines.recv_timeout(Duration::from_secs(5)) {
        requester_events.push(parse(&line)?);
    }
    // Let the responder report what the end of the request did (a cancel, a completion).
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(line) = server_lines.try_recv() {
        responder_events.push(parse(&line)?);
    }
    drop(server);
    let car = if out.exists() {
        Some(std::fs::read(out).with_context(|| format!("reading {}", out.display()))?)
    } else {
        None
    };
    Ok(PairRun {
        requester: requester_events,
        responder: responder_events,
        car,
    })
}

fn parse(line: &str) -> anyhow::Result<Value> {
    serde_json::from_str(line).with_context(|| format!("a peer printed non-JSON: {line}"))
}

/// The lines of a child's `stdout`, forwarded by a thread.
fn lines_of(stdout: Option<std::process::ChildStdout>) -> anyhow::Result<mpsc::Receiver<String>> {
    Ok(cmd::forward_lines(
        stdout.context("the child has no stdout")?,
    ))
}

/// Reads the responder's lines until it listens; returns its first loaded root, the address to
/// dial (`addrs[0]/p2p/peer_id`) and the events so far.
fn wait_listening(
    lines: &mpsc::Receiver<String>,
) -> anyhow::Result<(Option<String>, String, Vec<Value>)> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    let mut root = None;
    let mut events = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .context("the responder did not print its listening address in time")?;
        let value = parse(&line)?;
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
                let address = format!("{addr}/p2p/{peer}");
                events.push(value);
                return Ok((root, address, events));
            }
            Some("fatal") => bail!("the responder failed: {}", value["error"]),
            _ => {}
        }
        events.push(value);
    }
}

/// The first root and the section CIDs of a CAR, from `interop_peer car-cids`.
fn car_listing(rust: &Path, car: &Path) -> anyhow::Result<(String, Vec<String>)> {
    let text = cmd::output(Command::new(rust).arg("car-cids").arg(car))?;
    let value = parse(text.trim())?;
    let root = value["roots"][0]
        .as_str()
        .context("a CAR without a root")?
        .to_owned();
    let cids = value["cids"]
        .as_array()
        .context("car-cids without cids")?
        .iter()
        .filter_map(|cid| cid.as_str().map(str::to_owned))
        .collect();
    Ok((root, cids))
}

/// Imports each seeded file with boxo (Go) and dag-io (Rust), CIDv1 and CIDv0 settings.
fn unixfs_cids(peers: &Peers, files: &Path) -> Vec<(u64, u8, Cell)> {
    let go = &peers.go[0].1;
    let mut cells = Vec::new();
    for size in UNIXFS_SIZES {
        let file = genfile(go, files, size);
        for version in [1u8, 0] {
            let cell = match &file {
                Err(error) => Cell::Fail(format!("{error:#}")),
                Ok(file) => compare_import(go, &peers.rust, file, version),
            };
            cells.push((size, version, cell));
        }
    }
    cells
}

fn compare_import(go: &Path, rust: &Path, file: &Path, version: u8) -> Cell {
    let import = |binary: &Path| -> anyhow::Result<String> {
        let text = cmd::output(
            Command::new(binary)
                .arg("import")
                .arg("--cid-version")
                .arg(version.to_string())
                .arg(file),
        )?;
        let value = parse(text.trim())?;
        Ok(value["root"]
            .as_str()
            .context("import printed no root")?
            .to_owned())
    };
    match (import(go), import(rust)) {
        (Ok(go_root), Ok(rust_root)) if go_root == rust_root => Cell::Pass,
        (Ok(go_root), Ok(rust_root)) => Cell::Fail(format!("boxo {go_root}, dag-io {rust_root}")),
        (Err(error), _) | (_, Err(error)) => Cell::Fail(format!("{error:#}")),
    }
}

/// The matrix as Markdown.
fn render_matrix(peers: &Peers, rows: &[Row], unixfs: &[(u64, u8, Cell)]) -> String {
    let mut text = String::new();
    let builds: Vec<&str> = peers.go.iter().map(|(label, _)| label.as_str()).collect();
    text.push_str(&format!(
        "Go builds: go-graphsync {}. Each cell: requester → responder.\n\n",
        builds.join(", ")
    ));
    text.push_str("| scenario | go-graphsync | rust → go | go → rust |\n");
    text.push_str("| --- | --- | --- | --- |\n");
    for row in rows {
        let cell = |direction| {
            row.cells
                .iter()
                .find(|(d, _)| *d == direction)
                .map_or_else(|| "missing".to_owned(), |(_, cell)| cell.short())
        };
        text.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.scenario,
            row.go,
            cell(Direction::RustToGo),
            cell(Direction::GoToRust)
        ));
    }
    text.push_str("\nUnixFS root CIDs, boxo importer (Go) vs dag-io (Rust), seeded files:\n\n");
    text.push_str("| size (bytes) | CIDv1, raw leaves | CIDv0 |\n| --- | --- | --- |\n");
    let sizes: Vec<u64> = {
        let mut seen = HashSet::new();
        unixfs
            .iter()
            .map(|(size, _, _)| *size)
            .filter(|size| seen.insert(*size))
            .collect()
    };
    for size in sizes {
        let cell = |version| {
            unixfs
                .iter()
                .find(|(s, v, _)| *s == size && *v == version)
                .map_or_else(|| "missing".to_owned(), |(_, _, cell)| cell.short())
        };
        text.push_str(&format!("| {size} | {} | {} |\n", cell(1), cell(0)));
    }
    text
}
