//! `dt_interop_peer bench-serve` / `bench-pull`, the Rust side of the data-transfer rows of
//! `cargo xtask bench`, run as two processes over loopback TCP on block files in go-ds-flatfs's
//! `next-to-last/2` layout (the layout of the Go bench peers' `FileBlockstore`, written here
//! independently of the peer's code).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

const PEER: &str = env!("CARGO_BIN_EXE_dt_interop_peer");

/// Bounds every wait of these tests.
const LIMIT: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/car"
    ))
    .join(name)
}

/// Writes every block of the CAR as `dir/<next-to-last two characters>/<cid>`; returns the
/// root, the number of distinct blocks and their bytes.
fn write_flatfs(car: &Path, dir: &Path) -> anyhow::Result<(String, u64, u64)> {
    let file = std::fs::File::open(car).with_context(|| format!("opening {}", car.display()))?;
    let mut reader = dag_io::car::Reader::new(BufReader::new(file))?;
    let root = reader
        .header()
        .roots
        .first()
        .context("the fixture has no root")?
        .to_string();
    let mut seen = BTreeSet::new();
    let mut bytes = 0;
    while let Some(section) = reader.next_section()? {
        let key = section.cid.to_string();
        if !seen.insert(key.clone()) {
            continue;
        }
        let shard = dir.join(&key[key.len() - 3..key.len() - 1]);
        std::fs::create_dir_all(&shard)?;
        std::fs::write(shard.join(&key), &section.data)?;
        bytes += section.data.len() as u64;
    }
    Ok((root, seen.len() as u64, bytes))
}

/// The block files under `dir`, as paths relative to it (temporaries, dot files, excluded).
fn block_files(dir: &Path) -> anyhow::Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for shard in std::fs::read_dir(dir)? {
        let shard = shard?;
        ensure!(
            shard.file_type()?.is_dir(),
            "{} is not a shard",
            shard.path().display()
        );
        for block in std::fs::read_dir(shard.path())? {
            let block = block?;
            let name = block.file_name();
            if !name.to_string_lossy().starts_with('.') {
                files.insert(PathBuf::from(shard.file_name()).join(name));
            }
        }
    }
    Ok(files)
}

/// A peer process whose stdout lines arrive on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Proc {
    fn start(args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(PEER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dt_interop_peer")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| Value::String(format!("not JSON: {line}")));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, lines })
    }

    /// The next line whose `event` is `name`, within [`LIMIT`].
    fn wait(&self, name: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("no {name} line within {LIMIT:?}"))?;
            if line["event"] == "fatal" {
                bail!("the peer failed: {line}");
            }
            if line["event"] == name {
                return Ok(line);
            }
        }
    }

    /// Waits, within [`LIMIT`], for the process to exit.
    fn exit(&mut self) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(
                Instant::now() < deadline,
                "the peer did not exit within {LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Both fail only when the process has already exited and been reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bench-serve` on `blocks` and returns it with the address to dial.
fn serve(blocks: &Path) -> anyhow::Result<(Proc, String)> {
    let server = Proc::start(&["bench-serve", "--blocks", &blocks.to_string_lossy()])?;
    let listening = server.wait("listening")?;
    let addr = listening["addrs"][0]
        .as_str()
        .context("listening without addrs")?;
    ensure!(
        !addr.contains("/p2p/"),
        "the listening address {addr} names the peer"
    );
    let peer = listening["peer_id"]
        .as_str()
        .context("listening without peer_id")?;
    Ok((server, format!("{addr}/p2p/{peer}")))
}

#[test]
fn a_bench_pull_completes_on_both_sides_with_every_block_in_the_flatfs_layout() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let (root, blocks, bytes) = write_flatfs(&fixture("dir-with-files.car"), &src)?;
    let (mut server, address) = serve(&src)?;
    let mut client = Proc::start(&[
        "bench-pull",
        "--blocks",
        &dst.to_string_lossy(),
        "--peer",
        &address,
        "--root",
        &root,
        "--timeout",
        "20",
    ])?;
    client.wait("connected")?;
    let done = client.wait("done")?;
    let status = client.exit()?;
    ensure!(status.success(), "bench-pull exited with {status}: {done}");
    ensure!(done["status"] == "Completed", "done: {done}");
    ensure!(
        done["received"] == bytes,
        "done: {done}, the DAG has {bytes} bytes"
    );
    // The traversal's block count: the fixture's DAG links one block twice.
    ensure!(
        done["blocks"].as_u64() >= Some(blocks),
        "done: {done}, the DAG has {blocks} distinct blocks"
    );
    let finished = server.wait("finished")?;
    ensure!(finished["status"] == "Completed", "finished: {finished}");
    ensure!(
        finished["sent"] == bytes,
        "finished: {finished}, the DAG has {bytes} bytes"
    );
    ensure!(
        finished["channel"] == done["channel"],
        "{finished} / {done}"
    );
    assert_eq!(block_files(&dst)?, block_files(&src)?);
    // Nothing is printed per event: after `done` only the process's end.
    match client.lines.recv_timeout(LIMIT) {
        Err(mpsc::RecvTimeoutError::Disconnected) => {}
        Ok(line) => bail!("bench-pull printed after done: {line}"),
        Err(mpsc::RecvTimeoutError::Timeout) => bail!("bench-pull's stdout stayed open"),
    }
    // The end of its standard input stops the server.
    drop(server.child.stdin.take());
    server.wait("stopped")?;
    let status = server.exit()?;
    ensure!(status.success(), "bench-serve exited with {status}");
    Ok(())
}

#[test]
fn a_bench_pull_of_a_root_the_responder_lacks_fails() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    write_flatfs(&fixture("dir-with-files.car"), &src)?;
    let (root, _, _) = write_flatfs(&fixture("simple-unixfs.car"), &dir.path().join("other"))?;
    let (_server, address) = serve(&src)?;
    let mut client = Proc::start(&[
        "bench-pull",
        "--blocks",
        &dst.to_string_lossy(),
        "--peer",
        &address,
        "--root",
        &root,
        "--timeout",
        "15",
    ])?;
    let status = client.exit()?;
    ensure!(
        !status.success(),
        "a pull of a missing root exited successfully"
    );
    Ok(())
}
