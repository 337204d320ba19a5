//! Each of the four roles (the initiator and the responder, of a pull and of a push), in a
//! process of its own (`dt_role`: Manager, graphsync, libp2p over loopback TCP, sled channel
//! and block stores), killed with SIGKILL mid-transfer and started again on the same data
//! directory and port; `restart` on the initiator then completes the transfer:
//! - both ends reach `Completed`;
//! - the receiver holds every block of the DAG, each matching its CID;
//! - the received and sent byte and block totals equal the DAG's size exactly (nothing counted
//!   twice);
//! - the blocks the sender sends after the restart are at most the DAG's blocks less those the
//!   receiver had stored, plus those that were in flight (stored by the receiver, not yet
//!   counted when it was killed).
//!
//! The data sender reads every block with a delay, so that the kill lands mid-transfer: after
//! [`KILL_AFTER`] blocks have been received, well before the DAG's [`LEAVES`] + 1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// The node program.
const DT_ROLE: &str = env!("CARGO_BIN_EXE_dt_role");
/// The DAG's leaves (the DAG has one more block, its root).
const LEAVES: u64 = 40;
/// The size of a leaf.
const LEAF_SIZE: u64 = 1024;
/// The data sender's delay per block read: the whole DAG takes about 41 × 25 ms to send.
const READ_DELAY_MS: u64 = 25;
/// The receiver has counted this many blocks when the chosen process is killed.
const KILL_AFTER: u64 = 10;
/// The most blocks a killed receiver may hold without having counted them: the blocks in flight
/// between graphsync storing a block and the channel store recording its count.
const MAX_IN_FLIGHT: u64 = 4;
/// How long a test waits for one report.
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn pull_initiator_killed_mid_transfer_restarts_and_completes() -> anyhow::Result<()> {
    scenario(Kind::Pull, Killed::Initiator)
}

#[test]
fn pull_responder_killed_mid_transfer_restarts_and_completes() -> anyhow::Result<()> {
    scenario(Kind::Pull, Killed::Responder)
}

#[test]
fn push_initiator_killed_mid_transfer_restarts_and_completes() -> anyhow::Result<()> {
    scenario(Kind::Push, Killed::Initiator)
}

#[test]
fn push_responder_killed_mid_transfer_restarts_and_completes() -> anyhow::Result<()> {
    scenario(Kind::Push, Killed::Responder)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pull,
    Push,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Killed {
    Initiator,
    Responder,
}

fn scenario(kind: Kind, killed: Killed) -> anyhow::Result<()> {
    let dirs = tempfile::tempdir()?;
    let seed = 1 + 2 * u8::from(kind == Kind::Push) + u8::from(killed == Killed::Responder);
    // The data sender is the pull's responder and the push's initiator.
    let initiator_sends = kind == Kind::Push;
    let mut initiator = Node::start(dirs.path().join("initiator"), free_port()?, initiator_sends)?;
    let mut responder = Node::start(
        dirs.path().join("responder"),
        free_port()?,
        !initiator_sends,
    )?;
    initiator.connect(&responder)?;
    responder.connect(&initiator)?;

    let sender = if initiator_sends {
        &mut initiator
    } else {
        &mut responder
    };
    let seeded = sender.ask(&format!("seed {LEAVES} {LEAF_SIZE} {seed}"), "seeded")?;
    let dag = Dag::from_report(&seeded)?;
    let verb = match kind {
        Kind::Pull => "pull",
        Kind::Push => "push",
    };
    let opened = initiator.ask(&format!("{verb} {} {}", responder.peer, dag.root), "opened")?;
    let channel = opened.as_str().context("channel id")?.to_owned();

    // Let some blocks through, then kill the chosen process.
    let receiver = if initiator_sends {
        &mut responder
    } else {
        &mut initiator
    };
    receiver.wait_event(&channel, "the first blocks", |event| {
        number(event, "received_blocks") >= KILL_AFTER
    })?;
    let victim = match killed {
        Killed::Initiator => &mut initiator,
        Killed::Responder => &mut responder,
    };
    victim.kill()?;
    let restored = victim.restart()?;
    let restored = restored["channels"]
        .as_array()
        .and_then(|channels| channels.iter().find(|c| c["channel"] == channel.as_str()))
        .with_context(|| format!("{channel} is not restored: {restored}"))?
        .clone();
    let status = restored["status"].as_str().unwrap_or_default();
    ensure!(
        !matches!(status, "Completed" | "Failed" | "Cancelled"),
        "restored as {status}"
    );
    let (victim_node, other) = match killed {
        Killed::Initiator => (&mut initiator, &responder),
        Killed::Responder => (&mut responder, &initiator),
    };
    victim_node.connect(other)?;

    // What the receiver holds and has counted when the transfer restarts.
    let receiver_killed = (killed == Killed::Initiator) != initiator_sends;
    let (held, counted) = if receiver_killed {
        (
            number(&restored, "held_blocks"),
            number(&restored, "received_blocks"),
        )
    } else {
        let receiver = if initiator_sends {
            &mut responder
        } else {
            &mut initiator
        };
        let check = receiver.ask(&format!("check {}", dag.root), "check")?;
        let counted = receiver
            .last_event(&channel)
            .map_or(0, |event| number(event, "received_blocks"));
        (number(&check, "blocks"), counted)
    };
    ensure!(
        held >= KILL_AFTER && held < dag.blocks,
        "the receiver held {held} of {} blocks at the restart",
        dag.blocks
    );
    ensure!(
        counted <= held && held - counted <= MAX_IN_FLIGHT,
        "the receiver held {held} blocks and had counted {counted}"
    );

    let restarted = initiator.ask("restart", "restarted")?;
    ensure!(
        restarted
            .as_array()
            .is_some_and(|channels| channels.iter().any(|c| c == channel.as_str())),
        "the initiator did not restart {channel}: {restarted}"
    );
    let at_initiator = initiator.wait_status(&channel, "Completed")?;
    let at_responder = responder.wait_status(&channel, "Completed")?;
    let (at_sender, at_receiver) = if initiator_sends {
        (at_initiator, at_responder)
    } else {
        (at_responder, at_initiator)
    };
    ensure!(
        number(&at_receiver, "received") == dag.bytes
            && number(&at_receiver, "received_blocks") == dag.blocks,
        "the receiver counted {at_receiver}, the DAG is {} blocks of {} bytes",
        dag.blocks,
        dag.bytes
    );
    ensure!(
        number(&at_sender, "sent") == dag.bytes && number(&at_sender, "sent_blocks") == dag.blocks,
        "the sender counted {at_sender}, the DAG is {} blocks of {} bytes",
        dag.blocks,
        dag.bytes
    );

    let (sender, receiver) = if initiator_sends {
        (&mut initiator, &mut responder)
    } else {
        (&mut responder, &mut initiator)
    };
    let check = receiver.ask(&format!("check {}", dag.root), "check")?;
    ensure!(
        number(&check, "blocks") == dag.blocks
            && number(&check, "bytes") == dag.bytes
            && number(&check, "missing") == 0
            && number(&check, "bad") == 0,
        "the receiver's store after the transfer: {check}"
    );
    let resent = sender.sent_since_restart(&channel)?;
    ensure!(
        resent <= dag.blocks - held + (held - counted),
        "the sender sent {resent} blocks after the restart; the receiver held {held} of {} and \
         had counted {counted}",
        dag.blocks
    );
    initiator.quit()?;
    responder.quit()?;
    Ok(())
}

/// The seeded DAG.
struct Dag {
    root: String,
    blocks: u64,
    bytes: u64,
}

impl Dag {
    fn from_report(seeded: &Value) -> anyhow::Result<Dag> {
        let root = seeded["root"].as_str().context("root")?.to_owned();
        let listed = seeded["blocks"].as_array().context("blocks")?;
        let bytes = listed.iter().map(|block| number(&block[1], "")).sum();
        Ok(Dag {
            root,
            blocks: listed.len() as u64,
            bytes,
        })
    }
}

/// A number in a report (`key` empty: the value itself); 0 when absent.
fn number(value: &Value, key: &str) -> u64 {
    let value = if key.is_empty() { value } else { &value[key] };
    value.as_u64().unwrap_or(0)
}

/// A loopback port nobody listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One `dt_role` process and everything it reported.
struct Node {
    dir: PathBuf,
    port: u16,
    sends: bool,
    peer: String,
    address: String,
    child: Child,
    stdin: ChildStdin,
    reports: mpsc::Receiver<Value>,
    /// Every report of the current process, in order.
    log: Vec<Value>,
}

impl Node {
    /// Starts a node on `dir` and `port`; a data sender reads its blocks slowly.
    fn start(dir: PathBuf, port: u16, sends: bool) -> anyhow::Result<Node> {
        let (child, stdin, reports) = spawn(&dir, port, sends)?;
        let mut node = Node {
            dir,
            port,
            sends,
            peer: String::new(),
            address: String::new(),
            child,
            stdin,
            reports,
            log: Vec::new(),
        };
        node.ready()?;
        Ok(node)
    }

    /// Waits for the `ready` report, remembers the peer id and address, returns the report.
    fn ready(&mut self) -> anyhow::Result<Value> {
        let ready = self.wait(0, |report| report.get("ready").cloned(), "ready")?;
        self.peer = ready["peer"].as_str().context("peer")?.to_owned();
        self.address = ready["addr"].as_str().context("addr")?.to_owned();
        Ok(ready)
    }

    /// Kills the process with SIGKILL and reaps it.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts the process again on the same directory and port; returns its `ready` report.
    fn restart(&mut self) -> anyhow::Result<Value> {
        let (child, stdin, reports) = spawn(&self.dir, self.port, self.sends)?;
        self.child = child;
        self.stdin = stdin;
        self.reports = reports;
        self.log.clear();
        let peer = self.peer.clone();
        let ready = self.ready()?;
        ensure!(self.peer == peer, "the node came back as another peer");
        Ok(ready)
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Sends a command and returns the payload of the report named `answer`.
    fn ask(&mut self, line: &str, answer: &str) -> anyhow::Result<Value> {
        let from = self.log.len();
        self.send(line)?;
        self.wait(
            from,
            |report| {
                report.get(answer).cloned().or_else(|| {
                    report
                        .get("error")
                        .map(|error| Value::String(format!("error: {error}")))
                })
            },
            answer,
        )
        .and_then(|value| match value.as_str() {
            Some(error) if error.starts_with("error: ") => bail!("{line}: {error}"),
            _ => Ok(value),
        })
    }

    fn connect(&mut self, other: &Node) -> anyhow::Result<()> {
        let line = format!("connect {} {}", other.peer, other.address);
        self.ask(&line, "connected").map(drop)
    }

    /// Waits for the first report from the `from`-th on, past or coming, that `pick` picks.
    fn wait<T>(
        &mut self,
        from: usize,
        pick: impl Fn(&Value) -> Option<T>,
        what: &str,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = from;
        loop {
            if let Some(found) = self.log.get(seen..).into_iter().flatten().find_map(&pick) {
                return Ok(found);
            }
            seen = self.log.len().max(from);
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(report) => self.log.push(report),
                Err(_) => bail!(
                    "{} (port {}) waiting for {what}; its last reports:\n{}",
                    self.dir.display(),
                    self.port,
                    self.tail()
                ),
            }
        }
    }

    /// Waits for an event of `channel` that `done` accepts; fails early if the channel fails.
    fn wait_event(
        &mut self,
        channel: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let found = self.wait(
            0,
            |report| {
                let event = report.get("event")?;
                if event["channel"] != channel {
                    return None;
                }
                let failed = matches!(event["status"].as_str(), Some("Failed" | "Cancelled"));
                (done(event) || failed).then(|| event.clone())
            },
            what,
        )?;
        let status = found["status"].as_str().unwrap_or_default();
        ensure!(
            !matches!(status, "Failed" | "Cancelled") || done(&found),
            "{channel} ended {status} while waiting for {what}: {found}; last reports: {}",
            self.tail()
        );
        Ok(found)
    }

    fn wait_status(&mut self, channel: &str, status: &str) -> anyhow::Result<Value> {
        self.wait_event(channel, status, |event| event["status"] == status)
    }

    /// The last event of `channel` reported.
    fn last_event(&self, channel: &str) -> Option<&Value> {
        self.log
            .iter()
            .rev()
            .filter_map(|report| report.get("event"))
            .find(|event| event["channel"] == channel)
    }

    /// The `DataSent` events of `channel` after its last `Restart` event.
    fn sent_since_restart(&self, channel: &str) -> anyhow::Result<u64> {
        let events: Vec<&Value> = self
            .log
            .iter()
            .filter_map(|report| report.get("event"))
            .filter(|event| event["channel"] == channel)
            .collect();
        let restart = events
            .iter()
            .rposition(|event| event["code"] == "Restart")
            .context("the sender saw no Restart event")?;
        Ok(events[restart..]
            .iter()
            .filter(|event| event["code"] == "DataSent")
            .count() as u64)
    }

    /// Asks the process to stop and waits for it to exit.
    fn quit(&mut self) -> anyhow::Result<()> {
        let from = self.log.len();
        self.send("quit")?;
        self.wait(from, |report| report.get("bye").map(drop), "bye")?;
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait()?.is_none() {
            ensure!(Instant::now() < deadline, "the node did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The last reports, for failure messages.
    fn tail(&self) -> String {
        let start = self.log.len().saturating_sub(8);
        self.log[start..]
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed test leaves no process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `dt_role` on `dir` and `port`; its stdout lines arrive parsed on the receiver.
fn spawn(
    dir: &Path,
    port: u16,
    sends: bool,
) -> anyhow::Result<(Child, ChildStdin, mpsc::Receiver<Value>)> {
    let delay = if sends { READ_DELAY_MS } else { 0 };
    let mut child = Command::new(DT_ROLE)
        .arg(dir)
        .arg(port.to_string())
        .arg(delay.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting dt_role")?;
    let stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    let (sender, reports) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let report =
                serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({ "raw": line }));
            if sender.send(report).is_err() {
                break;
            }
        }
    });
    Ok((child, stdin, reports))
}
