//! The real `dtx` binary end to end on loopback TCP: `serve` prints its JSON events and serves a
//! file and a directory, `pull` writes them (and a CAR), `push` lands on a server that accepts
//! pushes, `import`/`export` round-trip, every bad input exits non-zero with one line, the peer id
//! persists in the data directory, and the config precedence is flags > env > file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// How long any one `dtx` run or awaited event may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A `dtx` command on `data_dir`, with no `DTX_*` variable inherited.
fn dtx(data_dir: &Path) -> Command {
    let mut command = installed(Command::new(env!("CARGO_BIN_EXE_dtx")));
    command.arg("--data-dir").arg(data_dir);
    command
}

/// `command` run as an installed `dtx` would be by a user: found on the `PATH`, no `DTX_*`
/// variable, no `RUST_LOG`, no `CARGO_MANIFEST_DIR` (which `cargo test` sets, as `cargo run`
/// does), no stdin.
fn installed(mut command: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DTX_") {
            command.env_remove(key);
        }
    }
    command.env("PATH", path_with_dtx());
    command.env_remove("RUST_LOG");
    command.env_remove("CARGO_MANIFEST_DIR");
    command.stdin(Stdio::null());
    command
}

/// This process's `PATH` with the directory of the `dtx` under test first.
fn path_with_dtx() -> std::ffi::OsString {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_dtx"))
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&inherited)))
        .expect("a PATH")
}

/// Runs `command` to its end within [`PATIENCE`].
fn run(command: &mut Command) -> anyhow::Result<Output> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning dtx")?;
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output()?;
            bail!(
                "dtx ran longer than {PATIENCE:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// Runs `command` and expects success; returns its stdout.
fn succeed(command: &mut Command) -> anyhow::Result<String> {
    let output = run(command)?;
    ensure!(
        output.status.success(),
        "dtx failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs `command` and expects a failure with exactly one line on stderr; returns that line.
fn fail(command: &mut Command) -> anyhow::Result<String> {
    let output = run(command)?;
    ensure!(
        !output.status.success(),
        "dtx succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr)?;
    let lines: Vec<&str> = stderr.lines().collect();
    ensure!(lines.len() == 1, "not one line on stderr: {stderr:?}");
    ensure!(lines[0].starts_with("dtx: "), "{stderr:?}");
    Ok(lines[0].to_owned())
}

/// The JSON objects of `stdout`, one a line.
fn events(stdout: &str) -> anyhow::Result<Vec<Value>> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line}")))
        .collect()
}

/// The one event named `name` in `events`.
fn find<'a>(events: &'a [Value], name: &str) -> anyhow::Result<&'a Value> {
    events
        .iter()
        .find(|event| event["event"] == name)
        .with_context(|| format!("no {name} event in {events:?}"))
}

/// A running `dtx --json serve`, killed when dropped.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Its `listening` event.
    listening: Value,
}

impl Server {
    /// Starts `dtx --json serve --listen /ip4/127.0.0.1/tcp/0 <extra>` on `data_dir` and waits
    /// for its `listening` event.
    fn start(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(dtx(data_dir), extra)
    }

    /// [`Server::start`] with `command` as the program and its global options.
    fn start_with(mut command: Command, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = command
            .args(["--json", "serve", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning dtx serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            listening: Value::Null,
        };
        let first = server.next_line()?;
        // The documented first line, keys in this order.
        ensure!(
            first.starts_with(r#"{"event":"listening","peer_id":""#),
            "first line: {first}"
        );
        server.listening = serde_json::from_str(&first)?;
        ensure!(
            server.listening.as_object().map(|o| o.len()) == Some(3),
            "{first}"
        );
        Ok(server)
    }

    /// The next line, within [`PATIENCE`].
    fn next_line(&mut self) -> anyhow::Result<String> {
        self.lines
            .recv_timeout(PATIENCE)
            .context("no event from dtx serve")
    }

    /// The next event, within [`PATIENCE`].
    fn next(&mut self) -> anyhow::Result<Value> {
        let line = self.next_line()?;
        serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))
    }

    /// Events until one named `name`, which is returned.
    fn until(&mut self, name: &str) -> anyhow::Result<Value> {
        loop {
            let event = self.next()?;
            if event["event"] == name {
                return Ok(event);
            }
        }
    }

    /// The peer id.
    fn peer_id(&self) -> String {
        self.listening["peer_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The address to pull from: the first listen address with `/p2p/<peer>`.
    fn address(&self) -> String {
        format!(
            "{}/p2p/{}",
            self.listening["addrs"][0].as_str().unwrap_or_default(),
            self.peer_id()
        )
    }

    /// Stops it with SIGINT (as Ctrl-C) and returns its exit status success.
    fn interrupt(mut self) -> anyhow::Result<bool> {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -INT failed");
        self.until("stopped")?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            ensure!(Instant::now() < deadline, "dtx serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `len` bytes of a repeatable pattern.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|n| ((n % 251) as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect()
}

/// A temporary directory with a file of 600 000 bytes (three 256 KiB chunks) and a small
/// directory tree.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("file.bin"), content(600_000, 3))?;
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub"))?;
        std::fs::write(tree.join("a.txt"), b"alpha\n")?;
        std::fs::write(tree.join("sub/b.bin"), content(70_000, 5))?;
        Ok(Fixture { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fresh data directory.
    fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("data-{name}"))
    }
}

/// Names of entries of `dir` that look like unfinished outputs.
fn partials(dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("dtx-partial"))
        .collect())
}

#[test]
fn serve_prints_its_events_and_a_pull_fetches_the_same_bytes() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let file = fx.path("file.bin");
    let mut server = Server::start(&fx.data_dir("server"), &[file.to_str().context("utf-8")?])?;
    ensure!(
        server.listening["addrs"]
            .as_array()
            .is_some_and(|addrs| !addrs.is_empty()),
        "{}",
        server.listening
    );
    let line = server.next_line()?;
    ensure!(
        line.starts_with(r#"{"event":"imported","path":"#),
        "second line: {line}"
    );
    let imported: Value = serde_json::from_str(&line)?;
    ensure!(imported.as_object().map(|o| o.len()) == Some(5), "{line}");
    ensure!(imported["path"] == file.display().to_string());
    ensure!(imported["blocks"] == 4, "{imported}"); // three leaves and the root
    let root = imported["root"].as_str().context("root")?.to_owned();
    let command = server.until("pull_command")?;
    let expected = format!("dtx pull {} {root} -o file.bin", server.address());
    ensure!(command["command"] == expected, "{command}");

    let out = fx.path("pulled.bin");
    let stdout = succeed(
        dtx(&fx.data_dir("client"))
            .args(["--json", "pull", &server.address(), &root, "-o"])
            .arg(&out),
    )?;
    let events = events(&stdout)?;
    let pulled = find(&events, "pulled")?;
    ensure!(
        pulled["bytes"] == imported["bytes"],
        "{pulled} vs {imported}"
    );
    ensure!(
        std::fs::read(&out)? == std::fs::read(&file)?,
        "bytes differ"
    );
    ensure!(partials(fx.dir.path())?.is_empty());
    Ok(())
}

/// Checks the `--json` lines of a pull or push: every line is JSON; all but the last are
/// `channel` lines of one channel, from its `Open` event on, whose `counter` (`received` or
/// `sent`) and block counter never go down, the last of them `Completed` with `bytes` and
/// `blocks`; the last line is the result `result`, with the same totals. Returns the lines.
fn check_transfer_lines(
    stdout: &str,
    result: &str,
    counter: &str,
    bytes: &Value,
    blocks: &Value,
) -> anyhow::Result<Vec<Value>> {
    let lines = events(stdout)?;
    let (last, channel_lines) = lines.split_last().context("no output")?;
    ensure!(
        last["event"] == result,
        "the last line is not the result: {last}"
    );
    ensure!(
        last["bytes"] == *bytes && last["blocks"] == *blocks,
        "{last}"
    );
    ensure!(channel_lines.len() >= 3, "{stdout}");
    ensure!(channel_lines[0]["code"] == "Open", "{}", channel_lines[0]);
    let block_counter = format!("{counter}_blocks");
    let (mut amount, mut count) = (0, 0);
    for line in channel_lines {
        ensure!(line["event"] == "channel", "{line}");
        ensure!(line["channel"] == last["channel"], "{line} vs {last}");
        ensure!(line["root"] == last["root"], "{line}");
        ensure!(
            line["code"].is_string() && line["status"].is_string(),
            "{line}"
        );
        let now = (
            line[counter].as_u64().context("a byte counter")?,
            line[&block_counter].as_u64().context("a block counter")?,
        );
        ensure!(
            now.0 >= amount && now.1 >= count,
            "a counter went down: {line}"
        );
        (amount, count) = now;
    }
    let end = channel_lines.last().context("no channel line")?;
    ensure!(end["status"] == "Completed", "{end}");
    ensure!(
        end[counter] == *bytes && end[&block_counter] == *blocks,
        "{end}"
    );
    Ok(lines)
}

/// `dtx --json pull` prints one JSON object per line: one `channel` line per event of its
/// channel (data events at most once per 200 ms), in order, then the `pulled` result, with the
/// exact totals.
#[test]
fn pull_json_prints_each_channel_event_then_the_result() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let file = fx.path("file.bin");
    let mut server = Server::start(&fx.data_dir("server"), &[file.to_str().context("utf-8")?])?;
    let imported = server.until("imported")?;
    let root = imported["root"].as_str().context("root")?.to_owned();
    server.until("ready")?;
    let stdout = succeed(
        dtx(&fx.data_dir("client"))
            .args(["--json", "pull", &server.address(), &root, "-o"])
            .arg(fx.path("pulled.bin")),
    )?;
    let lines = check_transfer_lines(
        &stdout,
        "pulled",
        "received",
        &imported["bytes"],
        &imported["blocks"],
    )?;
    let codes: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["code"].as_str())
        .collect();
    ensure!(
        codes.iter().any(|code| code.starts_with("DataReceived")),
        "no data event: {codes:?}"
    );
    ensure!(codes.contains(&"Accept"), "{codes:?}");
    ensure!(lines[0]["peer"] == server.peer_id(), "{}", lines[0]);

    // The serve prints its side of the same channel, ending Completed with the bytes sent.
    let served = loop {
        let line = server.until("channel")?;
        ensure!(line.as_object().map(|o| o.len()) == Some(11), "{line}");
        if line["status"] == "Completed" {
            break line;
        }
    };
    ensure!(served["channel"] == lines[0]["channel"], "{served}");
    ensure!(served["sent_blocks"] == imported["blocks"], "{served}");
    ensure!(served["sent"] == imported["bytes"], "{served}");
    Ok(())
}

/// `arg` as one word of a POSIX shell, quoted as `dtx serve` quotes it.
fn sh_word(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The pull command a serve on the default data directory prints works when pasted into a
/// shell on the same machine: for an installed `dtx`, for a serve started by `cargo run`, and
/// for a `dtx` run by its path that the `PATH` does not find.
#[test]
fn the_printed_pull_command_works_when_pasted_on_the_same_machine() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let file = fx.path("file.bin");
    // The platform data directory, under this test's own directory.
    let xdg = fx.path("xdg");
    let default_dir = xdg.join("dtx");
    let without_dtx = std::env::var_os("PATH").unwrap_or_default();
    let cargo_launcher = format!(
        "cargo run --release --manifest-path {} -- ",
        sh_word(&format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR")))
    );
    let by_path = format!("{} ", sh_word(env!("CARGO_BIN_EXE_dtx")));
    for (round, launcher) in ["dtx ", cargo_launcher.as_str(), by_path.as_str()]
        .iter()
        .enumerate()
    {
        let mut command = installed(Command::new(env!("CARGO_BIN_EXE_dtx")));
        command.env("XDG_DATA_HOME", &xdg);
        if round == 1 {
            command.env("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));
        }
        if round == 2 {
            command.env("PATH", &without_dtx);
        }
        let mut server = Server::start_with(command, &[file.to_str().context("utf-8")?])?;
        let imported = server.until("imported")?;
        let root = imported["root"].as_str().context("root")?.to_owned();
        let printed = server.until("pull_command")?["command"]
            .as_str()
            .context("command")?
            .to_owned();
        let expected = format!(
            "{launcher}--data-dir {}-client pull {} {root} -o file.bin",
            default_dir.display(),
            server.address()
        );
        ensure!(printed == expected, "{printed:?} vs {expected:?}");
        ensure!(default_dir.join("node.key").exists(), "serve ran elsewhere");

        // Pasted into a shell in another directory, with the same environment (building a
        // release binary here is too slow for a test, so the cargo launcher is swapped for the
        // binary it builds; the program named by its path is pasted as printed).
        let (pasted, search_path) = if round == 2 {
            (printed.clone(), without_dtx.clone())
        } else {
            (printed.replacen(launcher, "dtx ", 1), path_with_dtx())
        };
        let cwd = fx.path(&format!("terminal-{round}"));
        std::fs::create_dir_all(&cwd)?;
        let mut shell = installed(Command::new("sh"));
        shell
            .arg("-c")
            .arg(&pasted)
            .current_dir(&cwd)
            .env("PATH", &search_path)
            .env("XDG_DATA_HOME", &xdg);
        succeed(&mut shell).with_context(|| format!("pasted {pasted:?}"))?;
        ensure!(
            std::fs::read(cwd.join("file.bin"))? == std::fs::read(&file)?,
            "bytes differ"
        );
        ensure!(partials(&cwd)?.is_empty());
        drop(server);
    }
    Ok(())
}

/// The README's quick start, as written there: its serve command (run in a directory holding
/// `./some-file`, on the default data directory, as `cargo run` starts it) prints the pull
/// command in the form the README shows, and that command, pasted into a shell in the same
/// directory and in another one, pulls the file and says so in the README's words.
#[test]
fn the_readme_quick_start_works_as_written() -> anyhow::Result<()> {
    const CARGO_RUN: &str = "cargo run --release -p dtx -- ";
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))?;
    let quick = readme
        .split("## Quick start")
        .nth(1)
        .context("README.md has no Quick start section")?;
    let mut blocks = quick.split("```").skip(1).step_by(2);
    let commands = blocks.next().context("no command block")?;
    let printed_example = blocks.next().context("no example of the printed line")?;
    let serve = commands
        .lines()
        .nth(1)
        .and_then(|line| line.split('#').next())
        .map(str::trim)
        .context("no serve command")?;
    let serve_args = serve
        .strip_prefix(CARGO_RUN)
        .with_context(|| format!("{serve:?} does not start with {CARGO_RUN:?}"))?;
    ensure!(
        commands.contains("cargo xtask ci"),
        "no test command: {commands}"
    );
    let example = printed_example.trim();
    // What the README says the pull prints, with `N` for each number.
    let flat = quick.split_whitespace().collect::<Vec<_>>().join(" ");
    let said = "pulled bafybei…: N blocks, N bytes, written to pulled-some-file";
    ensure!(
        flat.contains(&format!("(`{said}`)")),
        "the README no longer says that the pull prints {said:?}"
    );

    let fx = Fixture::new()?;
    let checkout = fx.path("checkout");
    std::fs::create_dir_all(&checkout)?;
    std::fs::copy(fx.path("file.bin"), checkout.join("some-file"))?;
    let xdg = fx.path("xdg");
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let mut command = installed(Command::new(env!("CARGO_BIN_EXE_dtx")));
    command
        .args(serve_args.split_whitespace())
        .current_dir(&checkout)
        .env("XDG_DATA_HOME", &xdg)
        .env("CARGO_MANIFEST_DIR", manifest_dir)
        // Loopback only: the README's serve listens on every interface by default.
        .env("DTX_LISTEN", "/ip4/127.0.0.1/tcp/0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().context("spawning dtx serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut server = Server {
        child,
        lines: {
            let (send, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            lines
        },
        listening: Value::Null,
    };
    let printed = loop {
        let line = server.next_line()?;
        if line.starts_with("fetch ") {
            break line;
        }
    };
    // The printed line in the README's words: its example's paths, port, peer id and CID.
    let manifest = format!("{manifest_dir}/Cargo.toml");
    let command = printed
        .split_once(" with: ")
        .map(|(_, command)| command.to_owned())
        .context("no command")?;
    let words: Vec<&str> = command.split(' ').collect();
    let pull_at = words
        .iter()
        .position(|word| *word == "pull")
        .context("no pull")?;
    let (peer_address, root) = (words[pull_at + 1], words[pull_at + 2]);
    let (address, peer) = peer_address.split_once("/p2p/").context("no /p2p/")?;
    let port = address.rsplit('/').next().context("no port")?;
    let normalized = printed
        .replace(
            &sh_word(&manifest),
            "/home/you/datatransfer-rs/crates/dtx/Cargo.toml",
        )
        .replace(
            &sh_word(&xdg.join("dtx-client").display().to_string()),
            "/home/you/.local/share/dtx-client",
        )
        .replace(&format!("/tcp/{port}/"), "/tcp/41563/")
        .replace(peer, "12D3KooW…")
        .replace(root, "bafybei…");
    ensure!(
        normalized == example,
        "printed {printed:?}\nas README {normalized:?}\nREADME     {example:?}"
    );

    // Pasted into a shell in the serve's directory and in another one (the cargo launcher is
    // swapped for the binary it builds: a release build is too slow for a test).
    let launcher = format!(
        "cargo run --release --manifest-path {} -- ",
        sh_word(&manifest)
    );
    ensure!(command.starts_with(&launcher), "{command}");
    ensure!(Path::new(&manifest).is_file(), "{manifest}");
    let pasted = command.replacen(
        &launcher,
        &format!("{} ", sh_word(env!("CARGO_BIN_EXE_dtx"))),
        1,
    );
    let elsewhere = fx.path("another-terminal");
    std::fs::create_dir_all(&elsewhere)?;
    for cwd in [&checkout, &elsewhere] {
        let mut shell = installed(Command::new("sh"));
        shell
            .arg("-c")
            .arg(&pasted)
            .current_dir(cwd)
            .env("XDG_DATA_HOME", &xdg);
        let out = succeed(&mut shell)
            .with_context(|| format!("pasted {pasted:?} in {}", cwd.display()))?;
        let bytes = std::fs::read(cwd.join("pulled-some-file"))?;
        ensure!(
            bytes == std::fs::read(checkout.join("some-file"))?,
            "bytes differ"
        );
        ensure!(
            out.contains(&format!("pulled {root}: 4 blocks, ")), // three leaves and the root
            "{out:?}"
        );
        let line: Vec<String> = out
            .trim()
            .replace(root, "bafybei…")
            .split(' ')
            .map(|word| match word.parse::<u64>() {
                Ok(_) => "N".to_owned(),
                Err(_) => word.to_owned(),
            })
            .collect();
        ensure!(line.join(" ") == said, "{out:?}");
        ensure!(partials(cwd)?.is_empty());
    }
    Ok(())
}

#[test]
fn a_directory_pulls_as_a_tree_and_as_a_car() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let tree = fx.path("tree");
    let mut server = Server::start(&fx.data_dir("server"), &[tree.to_str().context("utf-8")?])?;
    let imported = server.next()?;
    let root = imported["root"].as_str().context("root")?.to_owned();

    let client = fx.data_dir("client");
    let out = fx.path("copy");
    succeed(
        dtx(&client)
            .args(["--quiet", "pull", &server.address(), &root, "-o"])
            .arg(&out),
    )?;
    ensure!(std::fs::read(out.join("a.txt"))? == b"alpha\n");
    ensure!(std::fs::read(out.join("sub/b.bin"))? == content(70_000, 5));

    let car = fx.path("copy.car");
    succeed(
        dtx(&fx.data_dir("car-client"))
            .args(["--quiet", "pull", &server.address(), &root, "-o"])
            .arg(&car),
    )?;
    let stdout = succeed(
        dtx(&fx.data_dir("reader"))
            .args(["--json", "import"])
            .arg(&car),
    )?;
    let events = events(&stdout)?;
    ensure!(find(&events, "imported")?["root"] == root.as_str());
    ensure!(partials(fx.dir.path())?.is_empty());
    Ok(())
}

#[test]
fn a_selector_pulls_only_what_it_selects() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let file = fx.path("file.bin");
    let mut server = Server::start(&fx.data_dir("server"), &[file.to_str().context("utf-8")?])?;
    let root = server.next()?["root"].as_str().context("root")?.to_owned();
    // Matches the root node only: one block, no output written.
    let stdout = succeed(dtx(&fx.data_dir("client")).args([
        "--json",
        "pull",
        &server.address(),
        &root,
        "--selector",
        r#"{".":{}}"#,
    ]))?;
    let events = events(&stdout)?;
    let pulled = find(&events, "pulled")?;
    ensure!(pulled["blocks"] == 1, "{pulled}");
    ensure!(pulled["output"].is_null(), "{pulled}");

    // Part of a file cannot be written as the file: the remedy is a CAR, which works.
    let partial = fx.path("partial.bin");
    let line = fail(
        dtx(&fx.data_dir("file-client"))
            .args([
                "pull",
                &server.address(),
                &root,
                "--selector",
                r#"{".":{}}"#,
                "-o",
            ])
            .arg(&partial),
    )?;
    ensure!(line.contains("the selector fetched part of it"), "{line}");
    ensure!(line.contains(".car"), "{line}");
    ensure!(!partial.exists());
    let car = fx.path("partial.car");
    succeed(
        dtx(&fx.data_dir("car-client"))
            .args([
                "--quiet",
                "pull",
                &server.address(),
                &root,
                "--selector",
                r#"{".":{}}"#,
                "-o",
            ])
            .arg(&car),
    )?;
    ensure!(car.is_file());
    ensure!(partials(fx.dir.path())?.is_empty());
    Ok(())
}

#[test]
fn a_push_lands_on_a_server_that_accepts_pushes_and_is_served_from_then_on() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let mut server = Server::start(&fx.data_dir("server"), &["--accept-push", "all"])?;
    let file = fx.path("file.bin");
    let stdout = succeed(
        dtx(&fx.data_dir("pusher"))
            .args(["--json", "push", &server.address()])
            .arg(&file),
    )?;
    let imported = succeed(
        dtx(&fx.data_dir("counter"))
            .args(["--json", "import"])
            .arg(&file),
    )?;
    let imported = find(&events(&imported)?, "imported")?.clone();
    let lines = check_transfer_lines(
        &stdout,
        "pushed",
        "sent",
        &imported["bytes"],
        &imported["blocks"],
    )?;
    let pushed = lines.last().context("no result")?;
    let root = pushed["root"].as_str().context("root")?.to_owned();
    let received = server.until("received")?;
    ensure!(received["root"] == root.as_str(), "{received}");
    ensure!(received["bytes"] == imported["bytes"], "{received}");

    let out = fx.path("back.bin");
    succeed(
        dtx(&fx.data_dir("puller"))
            .args(["--quiet", "pull", &server.address(), &root, "-o"])
            .arg(&out),
    )?;
    ensure!(
        std::fs::read(&out)? == std::fs::read(&file)?,
        "bytes differ"
    );
    Ok(())
}

#[test]
fn a_push_to_a_default_server_is_refused_with_the_remedy() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let server = Server::start(&fx.data_dir("server"), &[])?;
    let line = fail(
        dtx(&fx.data_dir("pusher"))
            .args(["push", &server.address()])
            .arg(fx.path("file.bin")),
    )?;
    ensure!(line.contains("refused the push"), "{line}");
    ensure!(line.contains("--accept-push all"), "{line}");
    Ok(())
}

#[test]
fn a_pull_of_a_cid_the_peer_does_not_serve_is_refused() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let server = Server::start(&fx.data_dir("server"), &[])?;
    let root = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    let out = fx.path("never.bin");
    let line = fail(
        dtx(&fx.data_dir("client"))
            .args(["pull", &server.address(), root, "-o"])
            .arg(&out),
    )?;
    ensure!(line.contains("refused the pull"), "{line}");
    ensure!(line.contains("not served"), "{line}");
    ensure!(!out.exists());
    ensure!(partials(fx.dir.path())?.is_empty());
    Ok(())
}

#[test]
fn an_unreachable_peer_fails_with_one_line() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let peer = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp";
    let address = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}");
    let root = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";
    let line = fail(dtx(&fx.data_dir("client")).args(["pull", &address, root]))?;
    ensure!(line.contains("cannot reach peer"), "{line}");
    Ok(())
}

#[test]
fn bad_arguments_fail_before_any_network_with_one_line() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let data = fx.data_dir("client");
    let peer = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp";
    let address = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}");
    let root = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

    let line = fail(dtx(&data).args(["pull", &address, "not-a-cid"]))?;
    ensure!(line.contains("is not a valid CID"), "{line}");

    let line = fail(dtx(&data).args(["pull", "/ip4/127.0.0.1/tcp/1", root]))?;
    ensure!(line.contains("/p2p/<peer id>"), "{line}");

    let line = fail(
        dtx(&data)
            .args(["pull", &address, root, "-o"])
            .arg(fx.path("no/such/dir/out.bin")),
    )?;
    ensure!(line.contains("cannot write"), "{line}");

    let line = fail(
        dtx(&data)
            .args(["pull", &address, root, "-o"])
            .arg(fx.path("file.bin")),
    )?;
    ensure!(line.contains("already exists"), "{line}");

    let line = fail(dtx(&data).args(["pull", &address, root, "--selector", "{nope"]))?;
    ensure!(line.contains("invalid --selector"), "{line}");

    let line = fail(
        dtx(&data)
            .args(["export", root, "-o"])
            .arg(fx.path("x.bin")),
    )?;
    ensure!(line.contains("is not in the block store"), "{line}");

    let line = fail(dtx(&data).arg("import").arg(fx.path("missing")))?;
    ensure!(line.contains("cannot import"), "{line}");
    Ok(())
}

#[test]
fn a_corrupted_data_directory_fails_with_one_line() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let data = fx.data_dir("broken");
    succeed(dtx(&data).arg("import").arg(fx.path("file.bin")))?;
    std::fs::write(data.join("node.key"), b"this is not a key")?;
    let line = fail(dtx(&data).args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0"]))?;
    ensure!(line.contains("is corrupted (node key"), "{line}");

    // A block file overwritten behind dtx's back: an export checks every block's hash.
    let blocks = fx.data_dir("bad-blocks");
    let root = succeed(dtx(&blocks).arg("import").arg(fx.path("file.bin")))?;
    let stored = stored_file_blocks(&blocks, root.trim())?;
    let (leaf, _) = stored.last().context("the file has leaves")?;
    let leaf_file = block_file(&blocks, leaf);
    ensure!(leaf_file.is_file(), "{} is not a file", leaf_file.display());
    std::fs::write(&leaf_file, b"damaged")?;
    let out = fx.path("from-bad-blocks.bin");
    let line = fail(dtx(&blocks).args(["export", root.trim(), "-o"]).arg(&out))?;
    ensure!(
        line.contains(leaf.as_str()) && line.contains("do not match"),
        "{line}"
    );
    ensure!(
        !out.exists(),
        "a partial file was left at {}",
        out.display()
    );

    let roots = fx.data_dir("bad-roots");
    std::fs::create_dir_all(&roots)?;
    std::fs::write(roots.join("roots"), "garbage\n")?;
    let line = fail(dtx(&roots).arg("import").arg(fx.path("file.bin")))?;
    ensure!(line.contains("is corrupted (roots file"), "{line}");
    Ok(())
}

/// Random bytes over the channel database's log fail with one line: sled itself sees them
/// while it has a snapshot; without one it opens the database as empty, and the missing marker
/// record tells it is damaged.
#[test]
fn a_damaged_channel_database_fails_with_one_line() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    for without_snapshot in [false, true] {
        let data = fx.data_dir(&format!("damaged-{without_snapshot}"));
        let server = Server::start(&data, &[])?;
        ensure!(server.interrupt()?, "serve did not stop cleanly");
        let channels = data.join("channels");
        let log = channels.join("db");
        let len = std::fs::metadata(&log)?.len().max(4096);
        let noise: Vec<u8> = (0..len)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&log, noise)?;
        if without_snapshot {
            for entry in std::fs::read_dir(&channels)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with("snap.") {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        let line = fail(dtx(&data).args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0"]))?;
        ensure!(line.contains("is corrupted (channel database"), "{line}");
        ensure!(
            line.contains("marker record") == without_snapshot,
            "{without_snapshot}: {line}"
        );
    }
    Ok(())
}

/// Sends `signal` (`STOP`, `CONT`, `INT`) to the process `pid`.
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// A pull interrupted mid-transfer (the server is stopped with SIGSTOP as soon as it reports
/// the channel, so the pull cannot finish, then the pull gets Ctrl-C) is resumed by `dtx
/// serve` on the puller's data directory, which dials the provider at the address the pull
/// recorded; the exported file is the served one.
#[test]
fn serve_resumes_a_pull_interrupted_mid_transfer() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let big = fx.path("big.bin");
    std::fs::write(&big, content(16 << 20, 7))?;
    let mut provider = Server::start(&fx.data_dir("provider"), &[big.to_str().context("utf-8")?])?;
    let imported = provider.until("imported")?;
    let root = imported["root"].as_str().context("root")?.to_owned();
    provider.until("ready")?;

    let client_dir = fx.data_dir("client");
    let mut pull = dtx(&client_dir)
        .args(["--json", "pull", &provider.address(), &root])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning dtx pull")?;
    provider.until("channel")?;
    signal(provider.child.id(), "STOP")?;
    let interrupted = signal(pull.id(), "INT").and_then(|()| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = pull.try_wait()? {
                return Ok(status);
            }
            ensure!(Instant::now() < deadline, "dtx pull did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    signal(provider.child.id(), "CONT")?;
    let status = match interrupted {
        Ok(status) => status,
        Err(error) => {
            let _ = pull.kill();
            let _ = pull.wait();
            return Err(error);
        }
    };
    ensure!(
        status.code() == Some(130),
        "the pull was not interrupted: {status}"
    );

    let mut resumer = Server::start(&client_dir, &[])?;
    let restarting = resumer.until("restarting")?;
    ensure!(restarting["root"] == root.as_str(), "{restarting}");
    loop {
        let channel = resumer.until("channel")?;
        match channel["status"].as_str() {
            Some("Completed") => {
                ensure!(channel["received"] == imported["bytes"], "{channel}");
                break;
            }
            Some("Failed" | "Cancelled") => bail!("the resumed pull ended: {channel}"),
            _ => {}
        }
    }
    ensure!(
        resumer.interrupt()?,
        "the resuming serve did not stop cleanly"
    );
    let out = fx.path("resumed.bin");
    succeed(dtx(&client_dir).args(["export", &root, "-o"]).arg(&out))?;
    ensure!(std::fs::read(&out)? == std::fs::read(&big)?, "bytes differ");
    Ok(())
}

/// A pull killed with SIGKILL mid-transfer (the server stopped with SIGSTOP as soon as it
/// reports the channel) is resumed by `dtx serve` on the puller's data directory: every block
/// the killed pull counted was on disk, so the restart completes with the exact byte total.
#[test]
fn serve_resumes_a_pull_killed_mid_transfer() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let big = fx.path("big.bin");
    std::fs::write(&big, content(16 << 20, 9))?;
    let mut provider = Server::start(&fx.data_dir("provider"), &[big.to_str().context("utf-8")?])?;
    let imported = provider.until("imported")?;
    let root = imported["root"].as_str().context("root")?.to_owned();
    provider.until("ready")?;

    let client_dir = fx.data_dir("client");
    let mut pull = dtx(&client_dir)
        .args(["--json", "pull", &provider.address(), &root])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning dtx pull")?;
    provider.until("channel")?;
    signal(provider.child.id(), "STOP")?;
    let killed = pull.kill().and_then(|()| pull.wait());
    signal(provider.child.id(), "CONT")?;
    let status = killed.context("killing dtx pull")?;
    ensure!(status.code().is_none(), "the pull was not killed: {status}");

    let mut resumer = Server::start(&client_dir, &[])?;
    let restarting = resumer.until("restarting")?;
    ensure!(restarting["root"] == root.as_str(), "{restarting}");
    loop {
        let channel = resumer.until("channel")?;
        match channel["status"].as_str() {
            Some("Completed") => {
                ensure!(channel["received"] == imported["bytes"], "{channel}");
                break;
            }
            Some("Failed" | "Cancelled") => bail!("the resumed pull ended: {channel}"),
            _ => {}
        }
    }
    ensure!(
        resumer.interrupt()?,
        "the resuming serve did not stop cleanly"
    );
    let out = fx.path("resumed.bin");
    succeed(dtx(&client_dir).args(["export", &root, "-o"]).arg(&out))?;
    ensure!(std::fs::read(&out)? == std::fs::read(&big)?, "bytes differ");
    Ok(())
}

/// The blocks of the UnixFS file under `root` in the block store of `data_dir` (no process may
/// hold it), in the order the pull's traversal visits them: the root, then its links (a file of
/// up to 174 leaves is one level). `None` for each block the store lacks; the root must be there.
fn stored_file_blocks(data_dir: &Path, root: &str) -> anyhow::Result<Vec<(String, Option<usize>)>> {
    use blockstore::Blockstore;
    let root = cid::Cid::try_from(root)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let blocks = block_files::Store::open(
            data_dir.join("block-files"),
            block_files::Layout::ShardedDurable,
            block_files::Config::default(),
        )?;
        let root_block = blocks
            .get(&root)
            .await?
            .context("the root block is not in the block store")?;
        let node = ipld_selector::dagpb::decode(&root_block)?;
        let mut found = vec![(root.to_string(), Some(root_block.len()))];
        for link in &node.links {
            let block = blocks.get(&link.hash).await?;
            found.push((link.hash.to_string(), block.map(|block| block.len())));
        }
        Ok(found)
    })
}

/// The file of the block `cid` in the block store of `data_dir` (go-ds-flatfs's
/// `next-to-last/2` shards).
fn block_file(data_dir: &Path, cid: &str) -> PathBuf {
    let shard = &cid[cid.len() - 3..cid.len() - 1];
    data_dir.join("block-files").join(shard).join(cid)
}

/// The channels stored in the channel database of `data_dir` (no process may hold it).
fn stored_channels(data_dir: &Path) -> anyhow::Result<Vec<datatransfer::ChannelState>> {
    use datatransfer::ChannelStore;
    let store = datatransfer::SledStore::open(
        data_dir.join("channels"),
        datatransfer_store::Config::default(),
    )?;
    Ok(store.list()?)
}

/// Starts `dtx --json pull` of `root` from `provider` on `client_dir` and, as soon as it
/// reports a received block, stops the provider (SIGSTOP) and kills the pull (SIGKILL); then
/// resumes the provider. Returns the line that reported the block.
fn kill_pull_while_receiving(
    provider: &Server,
    client_dir: &Path,
    root: &str,
) -> anyhow::Result<Value> {
    let mut pull = dtx(client_dir)
        .args(["--json", "pull", &provider.address(), root])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning dtx pull")?;
    let stdout = pull.stdout.take().context("no stdout")?;
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let receiving = loop {
        let line = match lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = pull.kill();
                let _ = pull.wait();
                bail!("the pull reported no received block");
            }
        };
        let event: Value = serde_json::from_str(&line).with_context(|| line.clone())?;
        if event["event"] == "channel" && event["received_blocks"].as_u64() > Some(0) {
            break event;
        }
    };
    let stopped = signal(provider.child.id(), "STOP");
    let killed = pull.kill().and_then(|()| pull.wait());
    signal(provider.child.id(), "CONT")?;
    stopped?;
    let status = killed.context("killing dtx pull")?;
    ensure!(
        status.code().is_none(),
        "the pull ended before it was killed ({status}); it reported {receiving}"
    );
    Ok(receiving)
}

/// A pull killed with SIGKILL while blocks arrive keeps every block its channel counted: the
/// kill comes as soon as `--json` reports a received block (the provider stopped with SIGSTOP
/// just before), so a block store that keeps recent writes in memory loses blocks the stored
/// channel counts as received (this test failed 5 runs of 5 on the earlier sled store before
/// it flushed after every put). Then `dtx serve` on the puller's directory resumes the
/// channel and completes it with the exact byte and block totals.
#[test]
fn a_pull_killed_with_sigkill_keeps_every_block_its_channel_counted() -> anyhow::Result<()> {
    /// The manager publishes an event before it stores the snapshot of the same input, so a
    /// kill right after the first reported block may find none stored: such a run proves
    /// nothing and is made again on a fresh data directory, up to this many times.
    const ATTEMPTS: usize = 5;
    let fx = Fixture::new()?;
    let big = fx.path("big.bin");
    std::fs::write(&big, content(16 << 20, 11))?;
    let mut provider = Server::start(&fx.data_dir("provider"), &[big.to_str().context("utf-8")?])?;
    let imported = provider.until("imported")?;
    let root = imported["root"].as_str().context("root")?.to_owned();
    provider.until("ready")?;

    let mut stored = None;
    for attempt in 0..ATTEMPTS {
        let client_dir = fx.data_dir(&format!("client-{attempt}"));
        kill_pull_while_receiving(&provider, &client_dir, &root)?;
        let channels = stored_channels(&client_dir)?;
        ensure!(channels.len() == 1, "{channels:?}");
        let counted = usize::try_from(channels[0].received_blocks_total)?;
        if counted > 0 {
            stored = Some((client_dir, counted));
            break;
        }
    }
    let (client_dir, counted) =
        stored.with_context(|| format!("no killed pull of {ATTEMPTS} stored a received block"))?;
    let blocks = stored_file_blocks(&client_dir, &root)
        .with_context(|| format!("the killed pull counted {counted} blocks"))?;
    ensure!(
        counted <= blocks.len(),
        "{counted} blocks counted of {}",
        blocks.len()
    );
    // The restart asks the provider to skip the first `counted` blocks of the traversal.
    let lost: Vec<&String> = blocks[..counted]
        .iter()
        .filter(|(_, block)| block.is_none())
        .map(|(cid, _)| cid)
        .collect();
    ensure!(
        lost.is_empty(),
        "the killed pull counted {counted} blocks but {} of them are not in its block store: {lost:?}",
        lost.len()
    );

    let mut resumer = Server::start(&client_dir, &[])?;
    let restarting = resumer.until("restarting")?;
    ensure!(restarting["root"] == root.as_str(), "{restarting}");
    let completed = loop {
        let channel = resumer.until("channel")?;
        match channel["status"].as_str() {
            Some("Completed") => break channel,
            Some("Failed" | "Cancelled") => bail!("the resumed pull ended: {channel}"),
            _ => {}
        }
    };
    ensure!(completed["received"] == imported["bytes"], "{completed}");
    ensure!(
        completed["received_blocks"] == imported["blocks"],
        "{completed} vs {imported}"
    );
    ensure!(
        resumer.interrupt()?,
        "the resuming serve did not stop cleanly"
    );
    let out = fx.path("resumed.bin");
    succeed(dtx(&client_dir).args(["export", &root, "-o"]).arg(&out))?;
    ensure!(std::fs::read(&out)? == std::fs::read(&big)?, "bytes differ");
    Ok(())
}

#[test]
fn a_data_directory_in_use_is_reported() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let data = fx.data_dir("busy");
    let _server = Server::start(&data, &[])?;
    let line = fail(dtx(&data).arg("import").arg(fx.path("file.bin")))?;
    ensure!(line.contains("in use by another dtx process"), "{line}");
    Ok(())
}

#[test]
fn import_and_export_round_trip_as_unixfs_and_car() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let data = fx.data_dir("local");
    let root = succeed(dtx(&data).arg("import").arg(fx.path("tree")))?
        .trim()
        .to_owned();
    ensure!(root.starts_with("bafy"), "{root}");

    let out = fx.path("tree-out");
    succeed(dtx(&data).args(["export", &root, "-o"]).arg(&out))?;
    ensure!(std::fs::read(out.join("sub/b.bin"))? == content(70_000, 5));

    let car = fx.path("tree.car");
    succeed(
        dtx(&data)
            .args(["--quiet", "export", &root, "-o"])
            .arg(&car),
    )?;
    let other = fx.data_dir("other");
    let again = succeed(dtx(&other).arg("import").arg(&car))?;
    ensure!(again.trim() == root, "{again} vs {root}");
    let file_root = succeed(dtx(&other).arg("import").arg(fx.path("file.bin")))?;
    let copy = fx.path("file-copy.bin");
    succeed(
        dtx(&other)
            .args(["export", file_root.trim(), "-o"])
            .arg(&copy),
    )?;
    ensure!(std::fs::read(&copy)? == std::fs::read(fx.path("file.bin"))?);
    Ok(())
}

/// Runs `dtx --data-dir DATA ARGS…` with stdin, stdout and stderr on a terminal (a pseudo
/// terminal of util-linux's `script`); returns everything the terminal showed.
fn on_a_terminal(data_dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let mut line = sh_word(env!("CARGO_BIN_EXE_dtx"));
    for arg in [&"--data-dir", &data_dir.to_str().context("utf-8")?]
        .into_iter()
        .chain(args)
    {
        line.push(' ');
        line.push_str(&sh_word(arg));
    }
    let mut script = installed(Command::new("script"));
    script.args(["-qec", &line, "/dev/null"]);
    let output = run(&mut script).context("running `script` (util-linux) for a terminal")?;
    ensure!(
        output.status.success(),
        "{line} failed on a terminal: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `dtx import` and `dtx export` of a large file draw a progress bar (indicatif, on stderr)
/// when stderr is a terminal, and none with `--quiet` or `--json` or when it is not one.
#[test]
fn import_and_export_show_progress_on_a_terminal_only() -> anyhow::Result<()> {
    /// What indicatif writes to clear the bar's line.
    const CLEAR_LINE: &str = "\x1b[2K";
    let fx = Fixture::new()?;
    let big = fx.path("big.bin");
    std::fs::write(&big, content(8 << 20, 13))?;
    let big_arg = big.to_str().context("utf-8")?;
    let data = fx.data_dir("local");

    let shown = on_a_terminal(&data, &["import", big_arg])?;
    ensure!(shown.contains(&format!("import {big_arg}")), "{shown:?}");
    ensure!(shown.contains(CLEAR_LINE), "{shown:?}");
    // The root is the last thing printed (after the bar's escape sequences).
    let root: String = shown[shown.rfind("bafy").context("no root printed")?..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    for quiet in ["--quiet", "--json"] {
        let shown = on_a_terminal(&data, &[quiet, "import", big_arg])?;
        ensure!(!shown.contains("import "), "{quiet}: {shown:?}");
        ensure!(!shown.contains(CLEAR_LINE), "{quiet}: {shown:?}");
    }

    let out = fx.path("out.bin");
    let out_arg = out.to_str().context("utf-8")?;
    let shown = on_a_terminal(&data, &["export", &root, "-o", out_arg])?;
    ensure!(shown.contains(&format!("export {root}")), "{shown:?}");
    ensure!(shown.contains(CLEAR_LINE), "{shown:?}");
    ensure!(
        shown.contains(&format!("exported {root} to {out_arg}")),
        "{shown:?}"
    );
    ensure!(std::fs::read(&out)? == std::fs::read(&big)?, "bytes differ");
    for quiet in ["--quiet", "--json"] {
        std::fs::remove_file(&out)?;
        let shown = on_a_terminal(&data, &[quiet, "export", &root, "-o", out_arg])?;
        ensure!(!shown.contains("export "), "{quiet}: {shown:?}");
        ensure!(!shown.contains(CLEAR_LINE), "{quiet}: {shown:?}");
    }

    // Not a terminal: nothing on stderr.
    std::fs::remove_file(&out)?;
    let output = run(dtx(&data).args(["export", &root, "-o", out_arg]))?;
    ensure!(
        output.status.success() && output.stderr.is_empty(),
        "{output:?}"
    );
    let output = run(dtx(&data).args(["import", big_arg]))?;
    ensure!(
        output.status.success() && output.stderr.is_empty(),
        "{output:?}"
    );
    Ok(())
}

#[test]
fn the_peer_id_persists_and_ctrl_c_stops_cleanly() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let data = fx.data_dir("server");
    let first = Server::start(&data, &[])?;
    let peer = first.peer_id();
    ensure!(peer.starts_with("12D3KooW"), "{peer}");
    ensure!(
        first.interrupt()?,
        "dtx serve did not exit cleanly on SIGINT"
    );
    let second = Server::start(&data, &[])?;
    ensure!(second.peer_id() == peer, "{} vs {peer}", second.peer_id());
    Ok(())
}

#[test]
fn settings_come_from_flags_then_env_then_the_config_file() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let data = fx.data_dir("config");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("config.toml"), "json = true\n")?;
    let file = fx.path("file.bin");

    // The file in the data directory turns JSON on.
    let stdout = succeed(dtx(&data).arg("import").arg(&file))?;
    ensure!(find(&events(&stdout)?, "imported").is_ok(), "{stdout}");
    // The environment beats the file.
    let stdout = succeed(dtx(&data).env("DTX_JSON", "false").arg("import").arg(&file))?;
    ensure!(stdout.trim().starts_with("bafy"), "{stdout}");
    // A flag beats the environment.
    let stdout = succeed(
        dtx(&data)
            .env("DTX_JSON", "false")
            .arg("--json")
            .arg("import")
            .arg(&file),
    )?;
    ensure!(find(&events(&stdout)?, "imported").is_ok(), "{stdout}");
    // --config names another file; a broken one is one clear line.
    let other = fx.path("other.toml");
    std::fs::write(&other, "json = \"maybe\"\n")?;
    let line = fail(
        dtx(&data)
            .arg("--config")
            .arg(&other)
            .arg("import")
            .arg(&file),
    )?;
    ensure!(line.contains("is invalid"), "{line}");
    // DTX_DATA_DIR names the data directory.
    let elsewhere = fx.data_dir("from-env");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dtx"));
    command
        .env("DTX_DATA_DIR", &elsewhere)
        .env_remove("DTX_JSON")
        .arg("import")
        .arg(&file);
    succeed(&mut command)?;
    ensure!(elsewhere.join("roots").is_file());
    Ok(())
}

/// `GET path` on `addr` (host:port) over plain HTTP/1.0; the response body.
fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    ensure!(response.starts_with("HTTP/1."), "{response}");
    ensure!(response.contains(" 200 "), "{response}");
    Ok(response)
}

#[test]
fn channels_commands_and_metrics_talk_to_the_running_serve() -> anyhow::Result<()> {
    let fx = Fixture::new()?;
    let server_dir = fx.data_dir("server");
    let file = fx.path("file.bin");
    let mut server = Server::start(
        &server_dir,
        &["--metrics", "127.0.0.1:0", file.to_str().context("utf-8")?],
    )?;
    let imported = server.next()?;
    let root = imported["root"].as_str().context("root")?.to_owned();
    let control = server.until("control")?;
    ensure!(
        control["socket"] == server_dir.join("control.sock").display().to_string(),
        "{control}"
    );
    let metrics = server.until("metrics")?;
    let url = metrics["url"].as_str().context("url")?.to_owned();
    server.until("ready")?;

    succeed(dtx(&fx.data_dir("client")).args(["--quiet", "pull", &server.address(), &root]))?;
    server.until("channel")?;

    // The serve lists the pull it served.
    let stdout = succeed(dtx(&server_dir).args(["--json", "channels"]))?;
    let listed = events(&stdout)?;
    let channel = find(&listed, "channel")?;
    ensure!(channel["root"] == root.as_str(), "{channel}");
    ensure!(
        channel["direction"] == "out" && channel["pull"] == true,
        "{channel}"
    );

    // A command on a channel the serve does not know is refused with one line.
    let line = fail(dtx(&server_dir).args(["pause", "no-such-channel"]))?;
    ensure!(line.contains("no-such-channel"), "{line}");

    // The metrics count the bytes sent to the puller.
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let deadline = Instant::now() + PATIENCE;
    let expected = format!("{}", imported["bytes"]);
    loop {
        let body = http_get(&addr, "/metrics")?;
        let sent = body
            .lines()
            .find(|line| line.starts_with("dtx_peer_sent_bytes_total{"))
            .map(|line| line.ends_with(&format!(" {expected}")));
        if sent == Some(true) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "no sent bytes of {expected} in {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Without a serve there is nobody to ask.
    let line = fail(dtx(&fx.data_dir("idle")).arg("channels"))?;
    ensure!(line.contains("no dtx serve is running"), "{line}");
    Ok(())
}
