//! Project automation for the data-transfer workspace: `cargo xtask <subcommand>`.
//!
//! The logic of CI lives here rather than in shell or YAML, so that `cargo xtask ci` on a laptop
//! and `.ci/run` on a CI machine do exactly the same thing. See `cargo xtask --help` for the
//! subcommands, and `ARCHITECTURE.md` for the dependency rules that `cargo xtask deps` enforces
//! (they are the table in `deps.rs`).

// A command-line tool reports to its user on the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod cmd;
mod deps;
mod fuzz;
mod interop;
mod interop_common;
mod interop_dt;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask: automation for the data-transfer workspace

USAGE:
    cargo xtask <SUBCOMMAND> [ARGS]

SUBCOMMANDS:
    ci                        run every check CI runs, in order, stopping at the first failure:
                              fmt --check, clippy, test, doc, deps, fuzz type-check, examples,
                              interop (needs go and the Go module proxy)
    deps                      check the dependency rules between the workspace crates
                              (layers and forbidden packages, see ARCHITECTURE.md)
    fuzz <TARGET> [SECONDS]   run a cargo-fuzz target on the stable toolchain (default 60 s),
                              installing cargo-fuzz first if it is missing
    fmt                       format the workspace (cargo fmt --all)
    interop [--report]        build the Go peer(s) and the Rust interop example, run the
                              Graphsync scenarios of issue 5 in both directions over loopback
                              TCP, the UnixFS CID comparison and the data-transfer scenarios of
                              issue 8 (`interop dt` runs those alone), print the matrices
                              (--report: also write them into docs/interop.md)
    bench [--size BYTES] [--blocks N] [--runs N] [--no-docs]
                              build release peers, prepare a UnixFS file (default 1 GiB, 256 KiB
                              raw leaves) and a DAG of small dag-cbor blocks (default 100 000) in
                              on-disk stores, pull each over loopback TCP for rust <- rust,
                              go <- go, rust <- go and go <- rust, and print MB/s, blocks/s, CPU
                              seconds and peak RSS per side against the plain loopback TCP
                              ceiling; with the default sizes also write docs/benchmarks.md
                              (not part of ci)
    help, --help, -h          print this help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] => {
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
        ["help" | "--help" | "-h", ..] => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        ["ci"] => ci::run(),
        ["bench", rest @ ..] => {
            bench::Options::parse(rest).and_then(|options| bench::run(&options))
        }
        ["deps"] => deps::run(),
        ["interop"] => interop::run(false),
        ["interop", "--report"] => interop::run(true),
        ["interop", "dt"] => interop_dt::run_alone(false),
        ["interop", "dt", "--report"] => interop_dt::run_alone(true),
        ["fmt"] => cmd::run(cmd::cargo().args(["fmt", "--all"])),
        ["fuzz", target] => fuzz::run(target, fuzz::DEFAULT_SECONDS),
        ["fuzz", target, seconds] => match seconds.parse::<u64>() {
            Ok(seconds) => fuzz::run(target, seconds),
            Err(_) => Err(anyhow::anyhow!(
                "fuzz: SECONDS must be a whole number, got {seconds:?}"
            )),
        },
        [_, ..] => {
            eprintln!(
                "xtask: unknown or malformed subcommand `{}`\n",
                args.join(" ")
            );
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
