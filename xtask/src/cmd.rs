//! Running commands: where the workspace is, which cargo to call, and echoing each command.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ always sits inside the workspace root")
        .to_path_buf()
}

/// The cargo that runs xtask (from the `CARGO` variable cargo sets), working in the root.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Prints `command` as a shell line, runs it and fails if it does not exit successfully.
///
/// # Errors
/// When the command cannot be started or exits unsuccessfully.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let line = render(command);
    println!("$ {line}");
    let status = command
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `command` quietly and returns its standard output.
///
/// # Errors
/// When the command cannot be started, exits unsuccessfully (its standard error is included) or
/// prints something that is not UTF-8.
pub(crate) fn output(command: &mut Command) -> anyhow::Result<String> {
    let line = render(command);
    let output = command
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// The command as one would type it: explicit variables first, then the program's file name
/// (`cargo`, not the full path of the toolchain's cargo), then the arguments, quoted as needed.
pub(crate) fn render(command: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    let program = Path::new(command.get_program());
    words.push(
        program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned(),
    );
    words.extend(command.get_args().map(quote));
    if let Some(dir) = command.get_current_dir()
        && dir != root()
    {
        return format!("(cd {} && {})", quote(dir.as_os_str()), words.join(" "));
    }
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("\"{}\"", word.replace('"', "\\\""))
    }
}

/// Sends the lines of `stdout` (a child's, say) to the returned receiver from a thread of its
/// own, until it ends or the receiver is dropped.
pub(crate) fn forward_lines(
    stdout: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_variables_program_name_and_quoted_arguments() {
        let mut command = Command::new("/opt/toolchain/bin/cargo");
        command
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--workspace"])
            .current_dir(root());
        assert_eq!(
            render(&command),
            "RUSTDOCFLAGS=\"-D warnings\" cargo doc --workspace"
        );
    }

    #[test]
    fn render_shows_a_directory_other_than_the_root() {
        let mut command = Command::new("cargo");
        command
            .args(["fuzz", "run", "x"])
            .current_dir(root().join("fuzz"));
        let expected = format!(
            "(cd {} && cargo fuzz run x)",
            quote(root().join("fuzz").as_os_str())
        );
        assert_eq!(render(&command), expected);
    }
}
