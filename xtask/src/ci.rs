//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::cmd::{self, cargo};

/// Where the facade's examples live; `ci` runs each `*.rs` file there.
const EXAMPLES_DIR: &str = "crates/datatransfer/examples";

/// Runs the CI steps of STYLE §8 in order.
///
/// # Errors
/// The first step that fails, named.
pub(crate) fn run() -> anyhow::Result<()> {
    let steps: [(&str, &dyn Fn() -> anyhow::Result<()>); 9] = [
        ("formatting", &|| {
            cmd::run(cargo().args(["fmt", "--all", "--", "--check"]))
        }),
        ("lints", &|| {
            cmd::run(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]))
        }),
        ("tests", &|| {
            // Every test binary runs even after one fails, so one CI run names every failure.
            cmd::run(cargo().args([
                "test",
                "--workspace",
                "--all-features",
                "--locked",
                "--no-fail-fast",
            ]))
        }),
        ("docs", &|| {
            cmd::run(cargo().env("RUSTDOCFLAGS", "-D warnings").args([
                "doc",
                "--workspace",
                "--no-deps",
                "--all-features",
                "--locked",
            ]))
        }),
        ("dependency rules", &|| {
            println!("$ cargo xtask deps");
            crate::deps::run()
        }),
        ("fuzz targets type-check", &|| {
            cmd::run(cargo().args(["check", "--manifest-path", "fuzz/Cargo.toml", "--locked"]))
        }),
        ("examples", &run_examples),
        // Needs `go` on the PATH and the Go module proxy, as the interop step.
        ("the Go peers' own tests", &run_go_tests),
        // Needs `go` on the PATH and the Go module proxy (a cold module cache is filled by the
        // first build); a scenario that fails fails the step, "not run" cells do not.
        ("interop with the Go peer", &|| {
            println!("$ cargo xtask interop");
            crate::interop::run(false)
        }),
    ];
    let count = steps.len();
    for (index, (name, step)) in steps.iter().enumerate() {
        println!("\n==> [{}/{count}] {name}", index + 1);
        step().with_context(|| format!("ci step {}/{count} ({name}) failed", index + 1))?;
    }
    println!("\n==> ci: all {count} steps passed");
    Ok(())
}

/// Where the Go peers live, one module per directory.
const GO_PEERS_DIR: &str = "interop";

/// Runs `go test` in each Go peer's module (their block store, drivers and bench commands).
fn run_go_tests() -> anyhow::Result<()> {
    for module in go_modules(&cmd::root().join(GO_PEERS_DIR))? {
        cmd::run(
            Command::new("go")
                .args(["test", "-count=1", "./..."])
                .current_dir(module),
        )?;
    }
    Ok(())
}

/// The directories directly in `dir` that hold a `go.mod`, sorted.
///
/// # Errors
/// When `dir` cannot be listed.
fn go_modules(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.join("go.mod").is_file() {
            modules.push(path);
        }
    }
    modules.sort();
    Ok(modules)
}

/// Runs every example of the facade, or says that there are none yet.
fn run_examples() -> anyhow::Result<()> {
    let names = example_names(&cmd::root().join(EXAMPLES_DIR))?;
    if names.is_empty() {
        println!("no examples in {EXAMPLES_DIR}/ yet: nothing to run");
    }
    for name in names {
        cmd::run(&mut example_command(&name))?;
    }
    Ok(())
}

fn example_command(name: &str) -> Command {
    let mut command = cargo();
    command.args(["run", "--locked", "-p", "datatransfer", "--example", name]);
    command
}

/// The file stems of the `*.rs` files directly in `dir`, sorted; none when `dir` does not exist.
///
/// # Errors
/// When `dir` exists but cannot be listed, or holds a file name that is not UTF-8.
fn example_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "rs") {
            let stem = path.file_stem().and_then(|stem| stem.to_str());
            let stem =
                stem.with_context(|| format!("non-UTF-8 example name {}", path.display()))?;
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
    fn example_names_lists_rust_files_sorted_and_nothing_else() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-examples-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("helper_dir"))?;
        for file in ["push.rs", "pause_resume.rs", "pull.rs", "notes.md"] {
            std::fs::write(dir.join(file), "")?;
        }
        let names = example_names(&dir);
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(names?, ["pause_resume", "pull", "push"]);
        Ok(())
    }

    #[test]
    fn go_modules_are_the_directories_with_a_go_mod_sorted() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("xtask-go-modules-{}", std::process::id()));
        for module in ["go-peer", "go-dt-v2", "not-a-module"] {
            std::fs::create_dir_all(dir.join(module))?;
        }
        std::fs::write(dir.join("go-peer").join("go.mod"), "module peer\n")?;
        std::fs::write(dir.join("go-dt-v2").join("go.mod"), "module dt\n")?;
        std::fs::write(dir.join("go.mod"), "not in a module directory\n")?;
        let modules = go_modules(&dir);
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(modules?, [dir.join("go-dt-v2"), dir.join("go-peer")]);
        Ok(())
    }

    #[test]
    fn the_workspace_has_the_four_go_peers() -> anyhow::Result<()> {
        let modules = go_modules(&cmd::root().join(GO_PEERS_DIR))?;
        let names: Vec<_> = modules.iter().filter_map(|m| m.file_name()).collect();
        assert_eq!(names, ["go-dt-v115", "go-dt-v2", "go-peer", "go-peer-v013"]);
        Ok(())
    }

    #[test]
    fn example_names_is_empty_when_the_directory_is_missing() -> anyhow::Result<()> {
        let names = example_names(Path::new("/nonexistent/xtask/examples"))?;
        assert!(names.is_empty(), "{names:?}");
        Ok(())
    }

    #[test]
    fn example_command_runs_the_example_of_the_facade_locked() {
        assert_eq!(
            cmd::render(&example_command("push")),
            "cargo run --locked -p datatransfer --example push"
        );
    }
}
