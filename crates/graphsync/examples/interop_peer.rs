//! The Rust side of `cargo xtask interop`: a Graphsync peer on [`graphsync::network::Node`] over
//! TCP + noise + yamux, driven like the Go peer in `interop/go-peer` (same flags where the
//! node has the feature, same JSON lines).
//!
//! ```text
//! interop_peer serve [--car FILE]... [--file FILE]... [--cid-version 0|1] [--reject]
//!     [--pause-after-blocks N] [--unpause-on-update] [--cancel-after-blocks N]
//!     [--protocol 1.0.0|2.0.0]
//! interop_peer request --peer MULTIADDR/p2p/ID --root CID [--selector DAGJSON]
//!     [--ext NAME=DAGJSON]... [--have CAR [--have-first N]] [--parallel N]
//!     [--cancel-after-blocks N] [--pause-after-blocks N [--unpause-after 200ms]]
//!     [--update-on-pause NAME=DAGJSON]... [--dedup-key-per-request]
//!     [--protocol 1.0.0|2.0.0] [--out OUT.car]
//! interop_peer import [--cid-version 0|1] FILE
//! interop_peer car-cids FILE
//! ```
//!
//! Every line on stdout is one JSON object.
//!
//! - `serve` loads the CARs (every block verified) and imports the files with dag-io's UnixFS
//!   importer (kubo defaults for the CID version, default 1), prints `loaded` per root and
//!   `listening`, answers every request with validate (explore-all included) or, with
//!   `--reject`, with reject (status 30), prints `request_received`, and runs until its
//!   standard input closes. On cue, through the node's hooks: `--pause-after-blocks N` pauses
//!   each response after N blocks (`paused`), `--unpause-on-update` unpauses it when the
//!   requester sends an update (`request_updated`), `--cancel-after-blocks N` cancels it after
//!   N blocks (status 35, `cancelled_response`). It prints `completed` (status) and
//!   `cancelled_by_requester` from the node's listeners.
//! - `request` dials the peer and sends `--parallel` identical requests (default 1). Per request
//!   it prints `response` (status), `block` (`index`, `cid`, `size`, `on_wire`, `blocks`),
//!   `missing`, and at the end `done` with `status` (the terminal status the responder sent,
//!   or the one a failure stands for; null when none), `outcome` (`completed`,
//!   `no_terminal_status`, `failed`, `cancelled`), `blocks`, `missing` and `cancelled`. With
//!   `--cancel-after-blocks N` each request cancels itself once N blocks arrived; with
//!   `--pause-after-blocks N` it pauses after N blocks and unpauses `--unpause-after` later;
//!   with `--update-on-pause` it sends those extensions as an update when a response says 15;
//!   with `--dedup-key-per-request` request i carries `graphsync/dedup-by-key` = `interop-i`.
//!   `--out` writes the blocks that arrived over the network as a CARv1 (root = `--root`,
//!   each block once, in arrival order), as the Go peer does. Exits 0 only if every request
//!   completed with status 20.
//! - `--protocol` makes the node speak only that Graphsync version (default: both, 2.0.0
//!   first).
//! - `import` prints `{"root":..,"blocks":..}` like `go-peer import`.
//! - `car-cids` prints `{"roots":[..],"cids":[..]}`: the CIDs of a CAR's sections in order.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use futures::StreamExt;
use graphsync::network::{Behaviour, Config, Node, RequestEvent, RequestHook, Version};
use graphsync::requester::{Failure, Outcome};
use graphsync::responder::RequestDecision;
use graphsync::{Extensions, RequestId, ResponseStatus};
use ipld_selector::Selector;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identity, noise, tcp, yamux};
use serde_json::json;

type Store = InMemoryBlockstore<64>;

fn new_swarm() -> anyhow::Result<Swarm<Behaviour>> {
    Ok(
        libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .context("building the tcp transport")?
            .with_behaviour(|_| Behaviour::new())
            .context("building the behaviour")?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(60))
            })
            .build(),
    )
}

/// Command-line flags: `--name value` pairs, `--name` switches, and positional arguments.
struct Flags<'a> {
    args: &'a [String],
}

impl<'a> Flags<'a> {
    /// Every value of `--name`.
    fn all(&self, name: &str) -> Vec<&'a str> {
        self.args
            .windows(2)
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
            .collect()
    }

    /// The last value of `--name`, if given.
    fn get(&self, name: &str) -> Option<&'a str> {
        self.all(name).pop()
    }

    /// The value of `--name`, which must be given.
    fn required(&self, name: &str) -> anyhow::Result<&'a str> {
        self.get(name).with_context(|| format!("missing {name}"))
    }

    /// A number flag with a default.
    fn number(&self, name: &str, default: u64) -> anyhow::Result<u64> {
        self.get(name).map_or(Ok(default), |value| {
            value
                .parse()
                .with_context(|| format!("{name} {value:?} is not a whole number"))
        })
    }

    /// A duration flag (`250ms`, `2s`) with a default.
    fn duration(&self, name: &str, default: Duration) -> anyhow::Result<Duration> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let parsed = if let Some(ms) = value.strip_suffix("ms") {
            ms.parse().map(Duration::from_millis)
        } else if let Some(s) = value.strip_suffix('s') {
            s.parse().map(Duration::from_secs)
        } else {
            bail!("{name} {value:?} is not a duration like 250ms or 2s")
        };
        parsed.with_context(|| format!("{name} {value:?} is not a duration like 250ms or 2s"))
    }

    /// Whether the switch `--name` is present.
    fn switch(&self, name: &str) -> bool {
        self.args.iter().any(|arg| arg == name)
    }

    /// The last argument, if it is not a flag or a flag's value.
    fn last_positional(&self) -> Option<&'a str> {
        let last = self.args.last()?;
        let before = self.args.len().checked_sub(2).map(|i| &self.args[i]);
        let is_value = before.is_some_and(|flag| flag.starts_with("--") && !is_switch(flag));
        (!last.starts_with("--") && !is_value).then_some(last.as_str())
    }
}

fn is_switch(flag: &str) -> bool {
    matches!(
        flag,
        "--reject" | "--dedup-key-per-request" | "--unpause-on-update"
    )
}

fn emit(value: &serde_json::Value) {
    println!("{value}");
}

/// The node settings: `--protocol 1.0.0|2.0.0` speaks only that version (default: both, 2.0.0
/// first).
fn node_config(flags: &Flags<'_>) -> anyhow::Result<Config> {
    let config = Config::default();
    Ok(match flags.get("--protocol") {
        None => config,
        Some("2.0.0") => config.with_protocols(vec![Version::V2]),
        Some("1.0.0") => config.with_protocols(vec![Version::V1]),
        Some(other) => bail!("--protocol must be 1.0.0 or 2.0.0, got {other:?}"),
    })
}

/// kubo's import settings for a CID version.
fn import_options(flags: &Flags<'_>) -> anyhow::Result<dag_io::unixfs::ImportOptions> {
    match flags.number("--cid-version", 1)? {
        0 => Ok(dag_io::unixfs::ImportOptions::cid_v0()),
        1 => Ok(dag_io::unixfs::ImportOptions::default()),
        other => bail!("--cid-version must be 0 or 1, got {other}"),
    }
}

async fn serve(flags: &Flags<'_>) -> anyhow::Result<()> {
    let store = Arc::new(Store::new());
    for car in flags.all("--car") {
        let file = std::fs::File::open(car).with_context(|| format!("opening {car}"))?;
        let summary = dag_io::car::import(std::io::BufReader::new(file), store.as_ref())
            .await
            .with_context(|| format!("importing {car}"))?;
        for root in &summary.header.roots {
            emit(
                &json!({"event": "loaded", "root": root.to_string(), "blocks": summary.blocks, "car": car}),
            );
        }
    }
    let options = import_options(flags)?;
    for path in flags.all("--file") {
        let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
        let imported =
            dag_io::unixfs::import_file(std::io::BufReader::new(file), store.as_ref(), &options)
                .await
                .with_context(|| format!("importing {path}"))?;
        emit(&json!({
            "event": "loaded",
            "root": imported.root.to_string(),
            "blocks": imported.blocks,
            "file": path,
        }));
    }
    let reject = flags.switch("--reject");
    let pause_after = flags.number("--pause-after-blocks", 0)?;
    let cancel_after = flags.number("--cancel-after-blocks", 0)?;
    let unpause_on_update = flags.switch("--unpause-on-update");
    let mut swarm = new_swarm()?;
    let config = node_config(flags)?.with_request_hook(RequestHook::new(move |peer, request, _| {
        emit(&json!({
            "event": "request_received",
            "request": request.id.to_string(),
            "peer": peer.to_string(),
            "extensions": request.extensions.iter().map(|(name, _)| name.to_string()).collect::<Vec<_>>(),
            "accepted": !reject,
        }));
        if reject {
            RequestDecision::reject()
        } else {
            RequestDecision::validate()
        }
    }));
    let node = Node::spawn(swarm.behaviour(), store, config).context("starting the node")?;
    // Hooks run in the driver and must not block: a cancel goes through a task.
    let (cancels_tx, mut cancels) = tokio::sync::mpsc::channel::<(PeerId, RequestId)>(64);
    let canceller = node.clone();
    tokio::spawn(async move {
        while let Some((peer, request)) = cancels.recv().await {
            let result = canceller.cancel_response(peer, request).await;
            emit(&json!({
                "event": "cancelled_response",
                "request": request.to_string(),
                "blocks": cancel_after,
                "error": result.err().map(|error| error.to_string()),
            }));
        }
    });
    let counts: Mutex<HashMap<RequestId, u64>> = Mutex::new(HashMap::new());
    let _block_hook = node.register_outgoing_block_hook(move |peer, request, _, actions| {
        let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(request.id).or_insert(0);
        *n += 1;
        if *n == pause_after {
            actions.pause();
            emit(&json!({"event": "paused", "request": request.id.to_string(), "blocks": *n}));
        }
        if *n == cancel_after {
            // A hook must not block: a full queue (64 cancels waiting) loses the cue, said so.
            if cancels_tx.try_send((*peer, request.id)).is_err() {
                emit(&json!({"event": "error", "error": "cancel cue lost", "request": request.id.to_string()}));
            }
        }
    });
    let _updated_hook = node.register_request_updated_hook(move |_, request, _, actions| {
        emit(&json!({"event": "request_updated", "request": request.id.to_string()}));
        if unpause_on_update {
            actions.unpause();
        }
    });
    let _completed = node.register_completed_response_listener(|_, request, status| {
        emit(&json!({
            "event": "completed", "request": request.to_string(),
            "status": status.code(), "status_name": status.to_string(),
        }));
    });
    let _cancelled = node.register_requestor_cancelled_listener(|_, request| {
        emit(&json!({"event": "cancelled_by_requester", "request": request.to_string()}));
    });
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

/// Parses the `NAME=DAGJSON` values of the extension flag `name`.
fn parse_extensions(flags: &Flags<'_>, name: &str) -> anyhow::Result<Extensions> {
    let mut extensions = Extensions::new();
    for flag in flags.all(name) {
        let (name, value) = flag
            .split_once('=')
            .with_context(|| format!("--ext {flag:?} is not NAME=DAGJSON"))?;
        let node = ipld_selector::dagjson::decode(value.as_bytes())
            .with_context(|| format!("extension {name}"))?;
        extensions.insert(name, Some(node));
    }
    Ok(extensions)
}

/// The wire status a failure stands for, if any.
fn failure_status(failure: &Failure) -> Option<ResponseStatus> {
    Some(match failure {
        Failure::Rejected => ResponseStatus::RequestRejected,
        Failure::Busy => ResponseStatus::RequestFailedBusy,
        Failure::FailedUnknown => ResponseStatus::RequestFailedUnknown,
        Failure::Legal => ResponseStatus::RequestFailedLegal,
        Failure::ContentNotFound => ResponseStatus::RequestFailedContentNotFound,
        Failure::ResponderCancelled => ResponseStatus::RequestCancelled,
        _ => return None,
    })
}

/// What one request ended with.
struct Ended {
    ok: bool,
    /// Blocks that arrived over the network, in order, each once.
    arrived: Vec<Cid>,
}

/// What a request does on its own, on cue.
#[derive(Clone)]
struct Cues {
    cancel_after: u64,
    pause_after: u64,
    unpause_after: Duration,
    update_on_pause: Extensions,
}

/// Runs one request to its end, printing its events.
async fn run_one(
    node: Node,
    index: u64,
    peer: PeerId,
    root: Cid,
    selector: Selector,
    extensions: Extensions,
    cues: Cues,
) -> anyhow::Result<Ended> {
    let mut handle = node
        .request(peer, root, selector, extensions)
        .await
        .context("starting the request")?;
    let id = handle.id();
    emit(
        &json!({"event": "request_sent", "request": id.to_string(), "index": index, "root": root.to_string()}),
    );
    let mut blocks = 0u64;
    let mut arrived = Vec::new();
    let mut seen = HashSet::new();
    let mut cancelled = false;
    while let Some(event) = handle.next_event().await {
        match event {
            RequestEvent::BlockReceived {
                cid,
                size,
                wire_size,
            } => {
                blocks += 1;
                if wire_size > 0 && seen.insert(cid) {
                    arrived.push(cid);
                }
                emit(&json!({
                    "event": "block", "request": id.to_string(), "index": index,
                    "cid": cid.to_string(), "size": size, "on_wire": wire_size, "blocks": blocks,
                }));
                if blocks == cues.pause_after {
                    let result = node.pause(id).await;
                    emit(&json!({
                        "event": if result.is_ok() { "paused" } else { "command_failed" },
                        "cmd": "pause", "request": id.to_string(), "index": index, "blocks": blocks,
                    }));
                    let node = node.clone();
                    let wait = cues.unpause_after;
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let result = node.unpause(id, Extensions::new()).await;
                        emit(&json!({
                            "event": if result.is_ok() { "command_done" } else { "command_failed" },
                            "cmd": "unpause", "request": id.to_string(), "index": index,
                        }));
                    });
                }
                if blocks == cues.cancel_after && !cancelled {
                    cancelled = true;
                    let result = node.cancel(id).await;
                    emit(&json!({
                        "event": if result.is_ok() { "command_done" } else { "command_failed" },
                        "cmd": "cancel", "request": id.to_string(), "index": index,
                    }));
                }
            }
            RequestEvent::ResponseReceived { status } => {
                emit(&json!({
                    "event": "response", "request": id.to_string(), "index": index,
                    "status": status.code(), "status_name": status.to_string(),
                }));
                if status == ResponseStatus::RequestPaused && !cues.update_on_pause.is_empty() {
                    let result = node.send_update(id, cues.update_on_pause.clone()).await;
                    emit(&json!({
                        "event": if result.is_ok() { "update_sent" } else { "command_failed" },
                        "cmd": "update", "request": id.to_string(), "index": index,
                    }));
                }
            }
            RequestEvent::BlockMissing { cid } => {
                emit(
                    &json!({"event": "missing", "request": id.to_string(), "index": index, "cid": cid.to_string()}),
                );
            }
            RequestEvent::Paused => {
                emit(
                    &json!({"event": "pause_effective", "request": id.to_string(), "index": index}),
                );
            }
            RequestEvent::PeerDisconnected => {
                emit(&json!({"event": "disconnected", "request": id.to_string(), "index": index}));
            }
            _ => {}
        }
    }
    let outcome = handle.outcome().await.context("waiting for the outcome")?;
    let (kind, status, missing, error) = match &outcome {
        Outcome::Completed(completion) => (
            "completed",
            completion.status,
            completion.missing.len(),
            None,
        ),
        Outcome::NoTerminalStatus(completion) => {
            ("no_terminal_status", None, completion.missing.len(), None)
        }
        Outcome::Failed(failure) => (
            "failed",
            failure_status(failure),
            0,
            Some(failure.to_string()),
        ),
        Outcome::Cancelled => ("cancelled", None, 0, None),
        _ => ("other", None, 0, Some(format!("{outcome:?}"))),
    };
    emit(&json!({
        "event": "done",
        "request": id.to_string(),
        "index": index,
        "outcome": kind,
        "status": status.map(|s| s.code()),
        "status_name": status.map(|s| s.to_string()),
        "blocks": blocks,
        "missing": missing,
        "cancelled": cancelled,
        "error": error,
    }));
    let ok = kind == "completed" && status == Some(ResponseStatus::RequestCompletedFull);
    Ok(Ended { ok, arrived })
}

async fn request(flags: &Flags<'_>) -> anyhow::Result<bool> {
    let mut peer_addr: Multiaddr = flags
        .required("--peer")?
        .parse()
        .context("parsing --peer")?;
    let root: Cid = flags
        .required("--root")?
        .parse()
        .context("parsing --root")?;
    let selector = match flags.get("--selector") {
        Some(text) => Selector::from_dag_json(text.as_bytes()).context("parsing --selector")?,
        None => Selector::explore_all_recursively(),
    };
    let extensions = parse_extensions(flags, "--ext")?;
    let parallel = flags.number("--parallel", 1)?.max(1);
    let cues = Cues {
        cancel_after: flags.number("--cancel-after-blocks", 0)?,
        pause_after: flags.number("--pause-after-blocks", 0)?,
        unpause_after: flags.duration("--unpause-after", Duration::from_millis(200))?,
        update_on_pause: parse_extensions(flags, "--update-on-pause")?,
    };
    let dedup_per_request = flags.switch("--dedup-key-per-request");
    let Some(Protocol::P2p(peer)) = peer_addr.pop() else {
        bail!("--peer must end in /p2p/ID");
    };
    let store = Arc::new(Store::new());
    if let Some(have) = flags.get("--have") {
        let limit = flags.number("--have-first", 0)?;
        let file = std::fs::File::open(have).with_context(|| format!("opening {have}"))?;
        let mut reader = dag_io::car::Reader::new(std::io::BufReader::new(file))
            .with_context(|| format!("reading {have}"))?;
        let mut count = 0u64;
        while limit == 0 || count < limit {
            let Some(section) = reader
                .next_section()
                .with_context(|| format!("reading {have}"))?
            else {
                break;
            };
            dag_io::blocks::put_verified(store.as_ref(), &section.cid, &section.data)
                .await
                .with_context(|| format!("storing a block of {have}"))?;
            count += 1;
        }
        emit(&json!({"event": "have", "blocks": count, "car": have}));
    }
    let mut swarm = new_swarm()?;
    let node = Node::spawn(swarm.behaviour(), store.clone(), node_config(flags)?)
        .context("starting the node")?;
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
    let mut tasks = Vec::new();
    for index in 0..parallel {
        let mut extensions = extensions.clone();
        if dedup_per_request {
            let key = format!("interop-{index}");
            extensions.insert(
                graphsync::extension::DEDUP_BY_KEY,
                Some(ipld_dagcbor::Node::from(key.as_str())),
            );
        }
        tasks.push(tokio::spawn(run_one(
            node.clone(),
            index,
            peer,
            root,
            selector.clone(),
            extensions,
            cues.clone(),
        )));
    }
    let mut ok = true;
    let mut arrived = Vec::new();
    let mut seen = HashSet::new();
    for task in tasks {
        let ended = task.await.context("a request task failed")??;
        ok &= ended.ok;
        for cid in ended.arrived {
            if seen.insert(cid) {
                arrived.push(cid);
            }
        }
    }
    if let Some(out) = flags.get("--out") {
        write_car(store.as_ref(), &root, &arrived, out).await?;
    }
    Ok(ok)
}

/// Writes `cids` from `store` as a CARv1 with `root` as its root.
async fn write_car(store: &Store, root: &Cid, cids: &[Cid], out: &str) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
    let mut writer = dag_io::car::Writer::new(std::io::BufWriter::new(file), &[*root])
        .with_context(|| format!("writing {out}"))?;
    for cid in cids {
        let data = store
            .get(cid)
            .await
            .with_context(|| format!("reading {cid} back"))?
            .with_context(|| format!("{cid} arrived but is not in the store"))?;
        writer
            .write_block(cid, &data)
            .with_context(|| format!("writing {out}"))?;
    }
    writer.finish().with_context(|| format!("writing {out}"))?;
    Ok(())
}

async fn import(flags: &Flags<'_>) -> anyhow::Result<()> {
    let path = flags.last_positional().context("import needs a FILE")?;
    let options = import_options(flags)?;
    let store = Store::new();
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let imported = dag_io::unixfs::import_file(std::io::BufReader::new(file), &store, &options)
        .await
        .with_context(|| format!("importing {path}"))?;
    emit(&json!({"root": imported.root.to_string(), "blocks": imported.blocks}));
    Ok(())
}

fn car_cids(flags: &Flags<'_>) -> anyhow::Result<()> {
    let path = flags.last_positional().context("car-cids needs a FILE")?;
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let mut reader = dag_io::car::Reader::new(std::io::BufReader::new(file))
        .with_context(|| format!("reading {path}"))?;
    let roots: Vec<String> = reader
        .header()
        .roots
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut cids = Vec::new();
    while let Some(section) = reader
        .next_section()
        .with_context(|| format!("reading {path}"))?
    {
        cids.push(section.cid.to_string());
    }
    emit(&json!({"roots": roots, "cids": cids}));
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = Flags {
        args: args.get(1..).unwrap_or_default(),
    };
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&flags).await.map(|()| true),
        Some("request") => request(&flags).await,
        Some("import") => import(&flags).await.map(|()| true),
        Some("car-cids") => car_cids(&flags).map(|()| true),
        _ => Err(anyhow::anyhow!(
            "usage: interop_peer serve|request|import|car-cids [flags] (see the file's docs)"
        )),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            emit(&json!({"event": "fatal", "error": format!("{error:#}")}));
            eprintln!("interop_peer: {error:#}");
            ExitCode::FAILURE
        }
    }
}
