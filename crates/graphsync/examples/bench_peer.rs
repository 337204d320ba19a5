//! The Rust side of `cargo xtask bench`: generates the benchmark DAGs into an on-disk
//! file-per-block store, exports them as CARs, loads a CAR into a store, serves a store, or pulls
//! a whole DAG into a store, on [`graphsync::network::Node`] over TCP + noise + yamux.
//!
//! ```text
//! bench_peer gen-unixfs --store DIR --size BYTES
//! bench_peer gen-cbor --store DIR --blocks N --seed N
//! bench_peer export --store DIR --root CID --out FILE.car
//! bench_peer load --store DIR --car FILE.car
//! bench_peer serve --store DIR [--tcp-read-buffer BYTES]
//! bench_peer request --peer MULTIADDR/p2p/ID --root CID --store DIR [--tcp-read-buffer BYTES]
//! ```
//!
//! Every line on stdout is one JSON object, in the shapes of `interop/go-peer` so that xtask
//! reads both peers alike.
//!
//! - `gen-unixfs` imports `size` bytes of xorshift64* output seeded with `size` (the bytes of
//!   `go-peer genfile SIZE`) as a kubo-compatible UnixFS file (CIDv1, 256 KiB raw leaves, 174
//!   links per node); `gen-cbor` writes a tree of `blocks` small dag-cbor blocks (node `i` is
//!   `{"d": 96 pseudo-random bytes, "i": i, "l": [links to nodes 10i+1 ..= 10i+10]}`). Each prints
//!   `{"root":..,"blocks":..,"bytes":..}`.
//! - `export` writes the DAG under `root` (explore-all order, each block once) as a CARv1;
//!   `load` stores every block of a CAR (each one verified).
//! - `serve` prints `listening`, validates every request and runs until its standard input
//!   closes. `request` dials the peer, prints `connected`, asks for the whole DAG with the
//!   explore-all selector, stores the blocks (the node hands out the outcome after the last
//!   put) and prints `{"event":"done","status":..,"blocks":..,"bytes":..,"missing":..}`; it
//!   exits 0 only on a completed traversal with no missing block and every block written. It
//!   prints nothing per block and reads no progress event, so that only the transfer is
//!   measured. Both read their TCP sockets up to `--tcp-read-buffer` bytes at a time below
//!   noise (default 64 KiB, as datatransfer's swarm; `0` leaves noise's 8 KiB reads).
//!
//! The on-disk store is [`block_files::Store`] in its sharded layout (the store of
//! `dt_interop_peer`'s bench commands too): one file per block, named by the CID's string form
//! under a directory named by the string's next-to-last two characters (go-ds-flatfs's
//! `next-to-last/2` layout), written as an unnamed file and linked in (a temporary name and a
//! rename where the system has no unnamed files), never synced: the same layout and write path
//! as the Go peer's bench store (`interop/go-peer/filestore.go`). Reads
//! run inline on the node's thread, as Go's traversal goroutine reads (a page-cache read is
//! cheaper than two thread hand-offs per block), and so do puts (`--writes inline`, the
//! default), as Go's `FileBlockstore.Put` writes in the caller's goroutine: on the bench's tmpfs
//! a file costs microseconds, less than the hand-off to a writer thread and back.
//! `--writes threads` sends them through a bounded queue (`--write-queue N`, default
//! [`block_files::DEFAULT_WRITE_QUEUE`]) to a pool of writer threads (`--writers N`, default
//! [`block_files::DEFAULT_WRITERS`]) instead, for a disk whose files wait for the device. The runtime has two threads, as Go runs
//! with `GOMAXPROCS` = 2 on the bench's 2-core machine. Like `dtx`, it first calls
//! [`graphsync::network::reuse_freed_buffers`].

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use block_files::{Layout, Store};
use blockstore::Blockstore;
use cid::Cid;
use futures::StreamExt;
use futures::io::BufReader;
use graphsync::network::{Behaviour, Config, Node, RequestHook};
use graphsync::requester::Outcome;
use graphsync::responder::RequestDecision;
use graphsync::{CidPrefix, Extensions};
use ipld_selector::Selector;
use libp2p::core::upgrade::Version;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, Transport as _, identity, noise, tcp, yamux};
use serde_json::json;

/// Children per node of the `gen-cbor` tree.
const CBOR_FANOUT: u64 = 10;

/// Payload bytes per node of the `gen-cbor` tree.
const CBOR_PAYLOAD: usize = 96;

/// Opens the sharded block store of `--store DIR`, writing inline unless `--writes threads`,
/// then on a pool sized by `--writers` and `--write-queue` (defaults
/// [`block_files::DEFAULT_WRITERS`] and [`block_files::DEFAULT_WRITE_QUEUE`]).
fn open_store(args: &[String]) -> anyhow::Result<Store> {
    let dir = flag(args, "--store")?;
    let inline = match optional_flag(args, "--writes") {
        None | Some("inline") => true,
        Some("threads") => false,
        Some(other) => bail!("--writes must be inline or threads, not {other:?}"),
    };
    let config = block_files::Config::default()
        .with_inline_writes(inline)
        .with_writers(optional_number(
            args,
            "--writers",
            block_files::DEFAULT_WRITERS,
        )?)
        .with_write_queue(optional_number(
            args,
            "--write-queue",
            block_files::DEFAULT_WRITE_QUEUE,
        )?);
    Store::open(dir, Layout::Sharded, config).with_context(|| format!("opening the store in {dir}"))
}

/// xorshift64*: the byte stream of `go-peer genfile` (byte `i` is byte `i % 8`, little-endian,
/// of output `i / 8`).
struct PseudoRandom {
    state: u64,
    left: u64,
    word: [u8; 8],
    used: usize,
}

impl PseudoRandom {
    fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed.max(1),
            left: len,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used == 8 {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            self.used = 0;
        }
        let byte = self.word[self.used];
        self.used += 1;
        byte
    }
}

impl Read for PseudoRandom {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        for byte in &mut buf[..n] {
            *byte = self.next_byte();
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The default `--tcp-read-buffer`: datatransfer's `DEFAULT_TCP_READ_BUFFER`, so that both
/// Rust rows of the bench read their sockets alike.
const DEFAULT_TCP_READ_BUFFER: usize = 64 * 1024;

/// A swarm on TCP + noise + yamux whose sockets are read `read_buffer` bytes at a time below
/// noise (as datatransfer's `build_swarm` does; `0`: noise's own 8 KiB reads).
fn new_swarm(read_buffer: usize) -> anyhow::Result<Swarm<Behaviour>> {
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_other_transport(|key| {
                let noise = noise::Config::new(key)?;
                Ok(
                    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                        .map(move |socket, _| BufReader::with_capacity(read_buffer, socket))
                        .upgrade(Version::V1Lazy)
                        .authenticate(noise)
                        .multiplex(yamux::Config::default()),
                )
            })
            .context("building the tcp transport")?
            .with_behaviour(|_| Behaviour::new())
            .context("building the behaviour")?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build(),
    )
}

fn flag<'a>(args: &'a [String], name: &str) -> anyhow::Result<&'a str> {
    optional_flag(args, name).with_context(|| format!("missing {name}"))
}

fn optional_flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
}

/// The value of an optional flag, or `default` when it is absent.
fn tcp_read_buffer(args: &[String]) -> anyhow::Result<usize> {
    optional_number(args, "--tcp-read-buffer", DEFAULT_TCP_READ_BUFFER)
}

fn optional_number(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.windows(2).find(|pair| pair[0] == name) {
        Some(pair) => pair[1]
            .parse()
            .with_context(|| format!("{name} must be a whole number")),
        None => Ok(default),
    }
}

fn number(args: &[String], name: &str) -> anyhow::Result<u64> {
    flag(args, name)?
        .parse()
        .with_context(|| format!("{name} must be a whole number"))
}

fn emit(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout only means nobody reads the report any more.
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// Imports `size` pseudo-random bytes as a UnixFS file into the store.
async fn generate_unixfs(args: &[String]) -> anyhow::Result<()> {
    let store = open_store(args)?;
    let size = number(args, "--size")?;
    let options = dag_io::unixfs::ImportOptions::default();
    let imported = dag_io::unixfs::import_file(
        std::io::BufReader::with_capacity(1 << 20, PseudoRandom::new(size, size)),
        &store,
        &options,
    )
    .await
    .context("importing the file")?;
    emit(&json!({
        "root": imported.root.to_string(),
        "blocks": imported.blocks,
        "bytes": imported.dag_size,
        "file_bytes": imported.size,
    }));
    Ok(())
}

/// Writes a tree of small dag-cbor blocks into the store, leaves first.
async fn generate_cbor(args: &[String]) -> anyhow::Result<()> {
    let store = open_store(args)?;
    let count = number(args, "--blocks")?;
    let seed = number(args, "--seed")?;
    if count == 0 {
        bail!("--blocks must be positive");
    }
    let prefix = CidPrefix::v1(0x71, 0x12, 32);
    let mut bytes = PseudoRandom::new(seed, u64::MAX);
    // Node i's children are CBOR_FANOUT * i + 1 ..= CBOR_FANOUT * i + CBOR_FANOUT, so every child
    // has a larger index than its parent: building from the last index down finds every child
    // already hashed.
    let mut cids: Vec<Option<Cid>> = vec![None; usize::try_from(count).context("--blocks")?];
    let mut total = 0u64;
    for index in (0..count).rev() {
        let mut payload = vec![0; CBOR_PAYLOAD];
        bytes
            .read_exact(&mut payload)
            .context("generating a payload")?;
        let first = index * CBOR_FANOUT + 1;
        let links: Vec<ipld_dagcbor::Node> = (first..(first + CBOR_FANOUT).min(count))
            .filter_map(|child| cids[child as usize].map(ipld_dagcbor::Node::from))
            .collect();
        let node = ipld_dagcbor::Map::new()
            .with("d", ipld_dagcbor::Node::Bytes(payload.into()))
            .with("i", index)
            .with("l", links);
        let data = ipld_dagcbor::to_vec(&ipld_dagcbor::Node::from(node)).context("encoding")?;
        let cid = prefix.to_cid(&data).context("hashing")?;
        store.put_keyed(&cid, &data).await.context("storing")?;
        total += data.len() as u64;
        cids[index as usize] = Some(cid);
    }
    let root = cids[0].context("the tree has no root")?;
    emit(&json!({"root": root.to_string(), "blocks": count, "bytes": total}));
    Ok(())
}

/// Writes the DAG under `--root` from the store as a CARv1.
async fn export(args: &[String]) -> anyhow::Result<()> {
    let store = open_store(args)?;
    let root: Cid = flag(args, "--root")?.parse().context("parsing --root")?;
    let out = flag(args, "--out")?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
    let config = ipld_selector::Config::default().with_max_recursion_depth(None);
    let (writer, summary) = dag_io::car::export(
        &store,
        &root,
        &Selector::explore_all_recursively(),
        config,
        std::io::BufWriter::new(file),
    )
    .await
    .context("exporting")?;
    writer
        .into_inner()
        .map_err(|error| error.into_error())
        .context("flushing the car")?;
    emit(
        &json!({"root": root.to_string(), "blocks": summary.blocks, "bytes": summary.block_bytes, "car": out}),
    );
    Ok(())
}

/// Stores every block of a CAR.
async fn load(args: &[String]) -> anyhow::Result<()> {
    let store = open_store(args)?;
    let car = flag(args, "--car")?;
    let file = std::fs::File::open(car).with_context(|| format!("opening {car}"))?;
    let summary = dag_io::car::import(std::io::BufReader::new(file), &store)
        .await
        .with_context(|| format!("importing {car}"))?;
    let roots: Vec<String> = summary.header.roots.iter().map(Cid::to_string).collect();
    emit(&json!({"roots": roots, "blocks": summary.blocks, "bytes": summary.block_bytes}));
    Ok(())
}

async fn serve(args: &[String]) -> anyhow::Result<()> {
    let store = Arc::new(open_store(args)?);
    let mut swarm = new_swarm(tcp_read_buffer(args)?)?;
    let config = Config::default()
        .with_request_hook(RequestHook::new(|_, _, _| RequestDecision::validate()));
    let _node = Node::spawn(swarm.behaviour(), store, config).context("starting the node")?;
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>()?)
        .context("listening")?;
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    emit(&json!({
        "event": "listening",
        "peer_id": swarm.local_peer_id().to_string(),
        "addrs": [address.to_string()],
    }));
    // Standard input closing (or any byte on it) stops the server.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = std::io::stdin().read(&mut byte);
        let _ = stop_tx.send(());
    });
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = &mut stop_rx => break,
        }
    }
    emit(&json!({"event": "stopped"}));
    Ok(())
}

async fn request(args: &[String]) -> anyhow::Result<bool> {
    let mut peer_addr: Multiaddr = flag(args, "--peer")?.parse().context("parsing --peer")?;
    let root: Cid = flag(args, "--root")?.parse().context("parsing --root")?;
    let store = Arc::new(open_store(args)?);
    let Some(Protocol::P2p(peer)) = peer_addr.pop() else {
        bail!("--peer must end in /p2p/ID");
    };
    let peer: PeerId = peer;
    let mut swarm = new_swarm(tcp_read_buffer(args)?)?;
    let mut config = Config::default();
    if let Some(bytes) = optional_flag(args, "--pause-reading-above") {
        config.pause_reading_above = Some(bytes.parse().context("parsing --pause-reading-above")?);
    }
    let node =
        Node::spawn(swarm.behaviour(), Arc::clone(&store), config).context("starting the node")?;
    swarm
        .dial(peer_addr.with(Protocol::P2p(peer)))
        .context("dialing")?;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => bail!("dial failed: {error}"),
            _ => {}
        }
    }
    emit(&json!({"event": "connected", "peer": peer.to_string()}));
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let handle = node
        .request(
            peer,
            root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .context("starting the request")?;
    // Only the outcome is awaited: the handle's progress events are dropped with it, so the
    // node spends no wake-up per block on a reader that would discard them (the counts come
    // from the node's statistics). go-graphsync offers no such choice: its requester must
    // drain an unbuffered channel of one progress value per visited node, or its traversal
    // waits.
    let outcome = handle.outcome().await.context("waiting for the outcome")?;
    let stats = node
        .stats()
        .await
        .context("reading the node's statistics")?;
    let (blocks, bytes) = (stats.blocks_received, stats.bytes_received);
    // The node hands out the outcome only after the request's last put, so every received
    // block is on disk by now (`done` means the DAG is stored).
    let written = store.puts();
    if written < blocks {
        bail!("only {written} of the {blocks} received blocks were written at the outcome");
    }
    let (status, missing, ok) = match &outcome {
        Outcome::Completed(completion) => (
            completion.status.map(|s| s.code()),
            completion.missing.len(),
            completion.missing.is_empty(),
        ),
        Outcome::Failed(failure) => {
            emit(&json!({"event": "failed", "error": failure.to_string()}));
            (None, 0, false)
        }
        _ => (None, 0, false),
    };
    emit(&json!({
        "event": "done",
        "status": status,
        "blocks": blocks,
        "bytes": bytes,
        "missing": missing,
    }));
    Ok(ok)
}

// Two runtime threads, as Go runs with GOMAXPROCS = 2 on this 2-core machine: the swarm
// (decryption, yamux) and the graphsync driver (hashing, traversal) can run at once.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    graphsync::network::reuse_freed_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("gen-unixfs") => generate_unixfs(rest).await.map(|()| true),
        Some("gen-cbor") => generate_cbor(rest).await.map(|()| true),
        Some("export") => export(rest).await.map(|()| true),
        Some("load") => load(rest).await.map(|()| true),
        Some("serve") => serve(rest).await.map(|()| true),
        Some("request") => request(rest).await,
        _ => Err(anyhow::anyhow!(
            "usage: bench_peer gen-unixfs|gen-cbor|export|load|serve|request [flags] (see the file's docs)"
        )),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            emit(&json!({"event": "fatal", "error": format!("{error:#}")}));
            eprintln!("bench_peer: {error:#}");
            ExitCode::FAILURE
        }
    }
}
