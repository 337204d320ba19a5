//! Durability under SIGKILL: every `put` that returned survives the writer being killed.
//!
//! The test re-executes its own test binary as a child with `STORE_SIGKILL_DIR` set. The child
//! runs a writer loop on a `SledStore` (default `Config`: flush on every write), printing
//! `store-ack <n>` on stdout after each `put` of `sample_state(n)` returns. The parent reads a few
//! acknowledgements, kills the child with SIGKILL (`Child::kill`), reopens the database and
//! checks every acknowledged record.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use datatransfer_message::{ChannelId, PeerId, TransferId};
use datatransfer_store::testing::sample_state;
use datatransfer_store::{ChannelStore, Config, SledStore};

/// The variable that turns the test into the child writer; its value is the database path.
const CHILD_ENV: &str = "STORE_SIGKILL_DIR";
/// The marker before each acknowledged transfer id on the child's stdout.
const ACK: &str = "store-ack ";
/// The child stops itself after this many writes, so the test is bounded even if the parent
/// never kills it.
const CHILD_WRITES: u64 = 5_000;
/// The parent kills the child after this many acknowledgements.
const ACKS_BEFORE_KILL: u64 = 200;

#[test]
fn acknowledged_puts_survive_sigkill() {
    match std::env::var_os(CHILD_ENV) {
        Some(dir) => writer(std::path::Path::new(&dir)),
        None => parent(),
    }
}

/// The child: writes until killed or done, acknowledging each write that returned.
fn writer(dir: &std::path::Path) {
    let store = SledStore::open(dir, Config::default()).expect("child opens the database");
    let mut out = std::io::stdout().lock();
    for n in 1..=CHILD_WRITES {
        store.put(&sample_state(n)).expect("child put");
        // The test harness may have printed the test name without a newline: start a line.
        writeln!(out, "\n{ACK}{n}").expect("stdout");
        out.flush().expect("stdout");
    }
}

fn parent() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "acknowledged_puts_survive_sigkill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child stdout");
        if let Some((_, n)) = line.split_once(ACK) {
            let n: u64 = n.parse().expect("ack carries a number");
            assert_eq!(n, acked + 1, "acks arrive in order");
            acked = n;
            if acked >= ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    // On Unix, `kill` sends SIGKILL: no destructor, no flush, no clean shutdown.
    child.kill().expect("kill the writer");
    let status = child.wait().expect("reap the writer");
    assert!(
        acked >= ACKS_BEFORE_KILL,
        "the writer stopped after {acked} acks: {status:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the writer died of SIGKILL");
    }

    let store = SledStore::open(dir.path(), Config::default()).expect("reopen after SIGKILL");
    for n in 1..=acked {
        let expected = sample_state(n);
        assert_eq!(
            store.get(&expected.channel_id).expect("read back"),
            Some(expected),
            "acknowledged record {n} is intact"
        );
    }
    // Records written after the last ack read back the parent saw may or may not be there, but
    // whatever is there reads cleanly and is one of the writer's records.
    let all = store.list().expect("every record decodes after SIGKILL");
    assert!(all.len() as u64 >= acked);
    for state in &all {
        assert_eq!(state, &sample_state(state.channel_id.id.value()));
    }
    let absent = ChannelId::new(
        PeerId::from_bytes(vec![9]),
        PeerId::from_bytes(vec![9]),
        TransferId(1),
    );
    assert_eq!(store.get(&absent).expect("get"), None);
}
