//! The Rust data-transfer peer of `cargo xtask interop`: a [`Manager`] with a
//! [`GraphsyncTransport`] and a [`Libp2pNetwork`] on `build_swarm` over TCP + noise + yamux,
//! driven exactly as `interop/dt-protocol.md` says (the Go peers implement the same page).
//!
//! ```text
//! dt_interop_peer dt [--listen MULTIADDR] [--store DIR] [--car FILE]... [--file FILE]...
//!     [--refuse] [--pay-every BYTES] [--finalize] [--accept-push=true|false]
//!     [--read-delay-after N:MS] [--monitor]
//! dt_interop_peer bench-serve|bench-pull ...   (cargo xtask bench, see bench.rs)
//! ```
//!
//! Commands arrive on stdin, one JSON object a line; events leave on stdout, one JSON object a
//! line (see the protocol page for both). With `--store DIR` the node key (`DIR/key`), the
//! blocks (`DIR/blocks`, a file per block), the channels (`DIR/channels`, `SledStore`) and the addresses
//! of the peers it opened channels to (`DIR/peers`) survive the process, so that a process
//! started again on DIR can `restart` its channels.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod blocks;
mod types;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use blockstore::InMemoryBlockstore;
use cid::Cid;
use datatransfer::libp2p::{
    Libp2pNetwork, NetworkConfig, NodeBehaviour, SwarmConfig, build_swarm, from_libp2p,
};
use datatransfer::{
    ChannelState, ChannelStatus, Config, Event, EventCode, Manager, MemStore, MonitorConfig,
    SledStore, SubscriptionError, Voucher, decode_result, decode_voucher,
};
use datatransfer_graphsync::GraphsyncTransport;
use futures::StreamExt;
use ipld_selector::Selector;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, identity};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

use blocks::{Backend, Blocks};
use types::{
    InteropResult, InteropVoucher, Pricing, UnknownVoucher, Validator, channel_from_json,
    channel_json,
};

type Mgr = Manager<GraphsyncTransport, Libp2pNetwork>;

/// How long the swarm may take to report its listening address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `quit` waits for the manager to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    datatransfer::libp2p::reuse_freed_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    if !matches!(command, Some("dt" | "bench-serve" | "bench-pull")) {
        eprintln!(
            "usage: dt_interop_peer dt [flags] (see interop/dt-protocol.md) | bench-serve | bench-pull"
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            emit(&json!({"event": "fatal", "error": format!("starting tokio: {error}")}));
            return ExitCode::FAILURE;
        }
    };
    let rest = &args[1..];
    let outcome = match command {
        Some("bench-serve") => runtime.block_on(bench::serve(rest)).map(|()| true),
        Some("bench-pull") => runtime.block_on(bench::pull(rest)),
        _ => runtime.block_on(run(rest)).map(|()| true),
    };
    let code = match outcome {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(error) => {
            emit(&json!({"event": "fatal", "error": format!("{error:#}")}));
            1
        }
    };
    // The stdin reader may still sit in a blocking read: leave without waiting for it.
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

fn emit(value: &Value) {
    println!("{value}");
}

/// Command-line flags: `--name value` pairs, `--name=value` and `--name` switches.
struct Flags<'a> {
    args: &'a [String],
}

impl<'a> Flags<'a> {
    fn all(&self, name: &str) -> Vec<&'a str> {
        self.args
            .windows(2)
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str())
            .collect()
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        let prefix = format!("{name}=");
        let equals = self
            .args
            .iter()
            .rev()
            .find_map(|arg| arg.strip_prefix(prefix.as_str()));
        equals.or_else(|| self.all(name).pop())
    }

    fn switch(&self, name: &str) -> bool {
        self.args.iter().any(|arg| arg == name)
    }
}

/// A command to the task that drives the swarm.
enum SwarmCommand {
    Disconnect(libp2p::PeerId, oneshot::Sender<bool>),
}

/// Everything the command loop needs.
struct Peer {
    manager: Mgr,
    blocks: Arc<Blocks>,
    swarm: mpsc::Sender<SwarmCommand>,
    /// `DIR/peers` under `--store`.
    peers_file: Option<PathBuf>,
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let flags = Flags { args };
    let store_dir = flags.get("--store").map(PathBuf::from);
    if let Some(dir) = &store_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let keypair = match &store_dir {
        Some(dir) => load_or_make_key(&dir.join("key"))?,
        None => identity::Keypair::generate_ed25519(),
    };
    let delay = flags
        .get("--read-delay-after")
        .map(Blocks::parse_delay)
        .transpose()?;
    let backend = match &store_dir {
        Some(dir) => Backend::files(dir.join("blocks")).context("opening the block files")?,
        None => Backend::Memory(InMemoryBlockstore::new()),
    };
    let blocks = Arc::new(Blocks::new(backend, delay));
    load(&flags, &blocks).await?;

    let mut swarm = build_swarm(keypair, SwarmConfig::default())?;
    let listen: Multiaddr = flags
        .get("--listen")
        .unwrap_or("/ip4/127.0.0.1/tcp/0")
        .parse()
        .context("parsing --listen")?;
    swarm.listen_on(listen).context("listening")?;
    let addrs = listen_addresses(&mut swarm).await?;

    let node = graphsync::network::Node::spawn(
        &swarm.behaviour().graphsync,
        Arc::clone(&blocks),
        graphsync::network::Config::default(),
    )?;
    let transport = GraphsyncTransport::new(
        node,
        *swarm.local_peer_id(),
        datatransfer_graphsync::Config::default(),
    );
    let network = Libp2pNetwork::for_swarm(&swarm, NetworkConfig::default())?;
    let mut config = Config::default().with_subscriber_capacity(1 << 16);
    if flags.switch("--monitor") {
        config = config.with_monitor(Some(
            MonitorConfig::default()
                .with_accept_timeout(Some(Duration::from_secs(10)))
                .with_complete_timeout(Some(Duration::from_secs(30)))
                .with_restart_timing(Duration::from_secs(1), Duration::from_millis(500))
                .with_max_consecutive_restarts(5)
                .with_no_progress_window(None),
        ));
    }
    let manager = match &store_dir {
        Some(dir) => {
            let channels = SledStore::open(dir.join("channels"), Default::default())
                .context("opening the channel store")?;
            Manager::new(transport, network, channels, config)
        }
        None => Manager::new(transport, network, MemStore::new(), config),
    };
    let accept_push = match flags.get("--accept-push") {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => bail!("--accept-push must be true or false, got {other:?}"),
    };
    manager.register_voucher_type(Validator {
        refuse: flags.switch("--refuse"),
        accept_push,
    })?;
    let pay_every = match flags.get("--pay-every") {
        None => 0,
        Some(text) => text.parse().context("--pay-every is not a whole number")?,
    };
    manager.register_revalidator(Pricing::new(pay_every, flags.switch("--finalize")))?;
    manager.register_voucher_result_type::<InteropResult>()?;
    let events = manager.subscribe();
    manager.start().await?;

    let peers_file = store_dir.as_ref().map(|dir| dir.join("peers"));
    if let Some(file) = &peers_file {
        for (peer, address) in read_peers(file)? {
            manager.network().add_address(peer, address);
        }
    }

    let (swarm_tx, swarm_rx) = mpsc::channel(16);
    emit(&json!({
        "event": "listening",
        "peer_id": swarm.local_peer_id().to_string(),
        "addrs": addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }));
    tokio::spawn(drive_swarm(swarm, swarm_rx));
    let skip_copies = flags.switch("--skip-request-copies");
    tokio::spawn(report(manager.clone(), events, skip_copies));

    let peer = Peer {
        manager,
        blocks,
        swarm: swarm_tx,
        peers_file,
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        if line.trim().is_empty() {
            continue;
        }
        let command: Value = match serde_json::from_str(&line) {
            Ok(command) => command,
            Err(error) => {
                emit(&json!({"event": "command_failed", "cmd": null, "tag": null,
                    "error": format!("not JSON: {error}")}));
                continue;
            }
        };
        if command["cmd"] == "quit" {
            break;
        }
        peer.handle(&command).await;
    }
    // Whatever the stop says, the process ends: stores are flushed on every write.
    let _ = tokio::time::timeout(STOP_TIMEOUT, peer.manager.stop()).await;
    emit(&json!({"event": "stopped"}));
    Ok(())
}

/// The node key of `--store`: read back, or made and written.
fn load_or_make_key(path: &Path) -> anyhow::Result<identity::Keypair> {
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return identity::Keypair::from_protobuf_encoding(&bytes)
            .with_context(|| format!("decoding the key in {}", path.display()));
    }
    let keypair = identity::Keypair::generate_ed25519();
    let bytes = keypair.to_protobuf_encoding()?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(keypair)
}

/// The `PEER_ID MULTIADDR` lines of `DIR/peers`.
fn read_peers(path: &Path) -> anyhow::Result<Vec<(libp2p::PeerId, Multiaddr)>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut peers = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (peer, address) = line
            .split_once(' ')
            .with_context(|| format!("bad line in {}: {line}", path.display()))?;
        peers.push((peer.parse()?, address.parse()?));
    }
    Ok(peers)
}

/// Imports `--car` and `--file` into the store, printing `loaded` per root.
async fn load(flags: &Flags<'_>, blocks: &Blocks) -> anyhow::Result<()> {
    for car in flags.all("--car") {
        let file = std::fs::File::open(car).with_context(|| format!("opening {car}"))?;
        let summary = dag_io::car::import(std::io::BufReader::new(file), blocks.backend())
            .await
            .with_context(|| format!("importing {car}"))?;
        for root in &summary.header.roots {
            emit(&json!({"event": "loaded", "root": root.to_string(),
                "blocks": summary.blocks, "car": car}));
        }
    }
    let options = dag_io::unixfs::ImportOptions::default();
    for path in flags.all("--file") {
        let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
        let imported =
            dag_io::unixfs::import_file(std::io::BufReader::new(file), blocks.backend(), &options)
                .await
                .with_context(|| format!("importing {path}"))?;
        emit(
            &json!({"event": "loaded", "root": imported.root.to_string(),
            "blocks": imported.blocks, "file": path}),
        );
    }
    Ok(())
}

/// Drives the swarm until its first listening address, which it returns (with any other that
/// comes at once).
async fn listen_addresses(swarm: &mut Swarm<NodeBehaviour>) -> anyhow::Result<Vec<Multiaddr>> {
    let first = tokio::time::timeout(LISTEN_TIMEOUT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .context("no listening address")?;
    Ok(vec![first])
}

async fn drive_swarm(mut swarm: Swarm<NodeBehaviour>, mut commands: mpsc::Receiver<SwarmCommand>) {
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            command = commands.recv() => match command {
                Some(SwarmCommand::Disconnect(peer, done)) => {
                    let was = swarm.disconnect_peer_id(peer).is_ok();
                    let _ = done.send(was);
                }
                None => return,
            },
        }
    }
}

/// Prints a `dt` line per data-transfer event and `finished` once per channel, and pays what
/// responders ask for on the channels this node opened: each payment request that arrives
/// (Go's `NewVoucherResult`) is paid once, and with `skip_copies` (`--skip-request-copies`)
/// the copy of a request is not (see [`Requests`]).
async fn report(manager: Mgr, mut events: datatransfer::Subscription, skip_copies: bool) {
    let mut finished = BTreeSet::new();
    let mut requests = Requests::default();
    loop {
        let (event, state) = match events.recv().await {
            Ok(Event::Channel { event, state }) => (event, state),
            Ok(_) | Err(SubscriptionError::Lagged { .. }) => continue,
            Err(_) => return,
        };
        let result = (event.code == EventCode::NewVoucherResult)
            .then(|| state.last_voucher_result())
            .flatten()
            .and_then(|result| decode_result::<InteropResult>(result).ok());
        emit(&json!({
            "event": "dt",
            "channel": channel_json(&event.channel),
            "name": event.code.name(),
            "status": event.status.name(),
            "sent": state.sent,
            "received": state.received,
            "message": event.message,
            "voucher_result": result.as_ref().map(InteropResult::to_json),
        }));
        if event.status.is_terminal() && finished.insert(event.channel.clone()) {
            emit(&json!({
                "event": "finished",
                "channel": channel_json(&event.channel),
                "status": event.status.name(),
                "sent": state.sent,
                "received": state.received,
                "message": event.message,
            }));
        }
        if let Some(result) = result
            && state.is_initiator()
            && !event.status.is_terminal()
            && (!skip_copies || requests.fresh(&event.channel, event.status, &result))
        {
            pay(&manager, &state, &result);
        }
    }
}

/// The initiator's last payment request per channel, to tell a request from its copy.
///
/// A go-data-transfer v1.15 responder, and ours, sends each data-limit request under both
/// extension names and the initiator decodes both, so a request arrives twice, back to back;
/// such a responder sends the answer to a payment and the next request on the same graphsync
/// response, so a request equal to the one before is its copy. Paying the copy would overpay,
/// and an overpaid responder settles at once on a payment still in flight, racing its own
/// finalization request. A go-data-transfer v2 responder sends no copies, but its next request
/// may overtake the answer to the payment (both go on the data-transfer network), so against
/// it this must stay off. go-graphsync may also carry the copy on the response's next message,
/// after the final request (data-transfer network) has overtaken it and the responder has
/// begun finalizing: a request then equal to the one paid before the final one is that late
/// copy (no data-limit request follows the final one, and this initiator pays every request in
/// full, so none is asked again).
#[derive(Default)]
struct Requests {
    /// The `Owed` of the channel's last voucher result, when it was a payment request.
    last: std::collections::HashMap<datatransfer::ChannelId, u64>,
    /// The `Owed` of the channel's last two payment requests that were paid, latest last.
    paid: std::collections::HashMap<datatransfer::ChannelId, Vec<u64>>,
}

impl Requests {
    /// Records `result`, which arrived while the channel was in `status`; true when it is a
    /// payment request that is not a copy of an earlier one.
    fn fresh(
        &mut self,
        channel: &datatransfer::ChannelId,
        status: ChannelStatus,
        result: &InteropResult,
    ) -> bool {
        if result.outcome != "payment-required" {
            self.last.remove(channel);
            return false;
        }
        let back_to_back = self.last.insert(channel.clone(), result.owed) == Some(result.owed);
        let paid = self.paid.entry(channel.clone()).or_default();
        let late = responder_finalizing(status) && paid.len() == 2 && paid[0] == result.owed;
        if back_to_back || late {
            return false;
        }
        if paid.len() == 2 {
            paid.remove(0);
        }
        paid.push(result.owed);
        true
    }
}

/// Whether an initiator's channel has seen its responder begin finalizing (or complete).
fn responder_finalizing(status: ChannelStatus) -> bool {
    matches!(
        status,
        ChannelStatus::ResponderFinalizing
            | ChannelStatus::ResponderFinalizingTransferFinished
            | ChannelStatus::ResponderCompleted
            | ChannelStatus::Completing
            | ChannelStatus::Completed
    )
}

/// Pays a payment request of the responder with the opening voucher's ID.
fn pay(manager: &Mgr, state: &ChannelState, result: &InteropResult) {
    // A request for 0 (a final request with everything paid) is answered too, with 0.
    if result.outcome != "payment-required" {
        return;
    }
    let id = state
        .voucher()
        .and_then(|voucher| decode_voucher::<InteropVoucher>(voucher).ok())
        .map(|voucher| voucher.id)
        .unwrap_or_default();
    let payment = InteropVoucher {
        id,
        amount: result.owed,
    };
    match manager.send_voucher(&state.channel_id, &payment) {
        Ok(()) => emit(&json!({"event": "paid",
            "channel": channel_json(&state.channel_id), "amount": result.owed})),
        Err(error) => emit(
            &json!({"event": "command_failed", "cmd": "pay", "tag": null,
            "error": error.to_string()}),
        ),
    }
}

impl Peer {
    async fn handle(&self, command: &Value) {
        let cmd = command["cmd"].as_str().unwrap_or_default();
        let tag = command["tag"].clone();
        match self.execute(cmd, command).await {
            Ok(Some(mut answer)) => {
                answer["tag"] = tag;
                emit(&answer);
            }
            Ok(None) => emit(&json!({"event": "command_done", "cmd": cmd, "tag": tag})),
            Err(error) => emit(&json!({"event": "command_failed", "cmd": cmd, "tag": tag,
                "error": format!("{error:#}")})),
        }
    }

    /// Runs one command: `Some(answer)` for commands with their own answer, `None` for
    /// `command_done`.
    async fn execute(&self, cmd: &str, command: &Value) -> anyhow::Result<Option<Value>> {
        match cmd {
            "pull" | "push" => self.open(cmd == "pull", command).map(Some),
            "pause" => {
                self.manager
                    .pause(&channel_from_json(&command["channel"])?)?;
                Ok(None)
            }
            "resume" => {
                self.manager
                    .resume(&channel_from_json(&command["channel"])?)?;
                Ok(None)
            }
            "cancel" => {
                self.manager
                    .close(&channel_from_json(&command["channel"])?)?;
                Ok(None)
            }
            "restart" => {
                self.manager
                    .restart_channel(&channel_from_json(&command["channel"])?)?;
                Ok(None)
            }
            "send_voucher" => {
                let channel = channel_from_json(&command["channel"])?;
                let voucher = InteropVoucher::from_json(&command["voucher"])?;
                self.manager.send_voucher(&channel, &voucher)?;
                Ok(None)
            }
            "disconnect" => {
                let peer: libp2p::PeerId = command["peer"]
                    .as_str()
                    .context("peer is not a string")?
                    .parse()
                    .context("peer is not a peer id")?;
                let (done, was) = oneshot::channel();
                self.swarm
                    .send(SwarmCommand::Disconnect(peer, done))
                    .await
                    .ok()
                    .context("the swarm is gone")?;
                was.await.ok().context("the swarm is gone")?;
                Ok(None)
            }
            "state" => {
                let channel = channel_from_json(&command["channel"])?;
                let state = self.manager.channel_state(&channel)?;
                Ok(Some(state_json(&state)))
            }
            "export" => self.export(command).await.map(Some),
            other => bail!("unknown command {other:?}"),
        }
    }

    fn open(&self, pull: bool, command: &Value) -> anyhow::Result<Value> {
        let mut address: Multiaddr = command["peer"]
            .as_str()
            .context("peer is not a string")?
            .parse()
            .context("peer is not a multiaddr")?;
        let Some(Protocol::P2p(remote)) = address.pop() else {
            bail!("peer must end with /p2p/PEER_ID");
        };
        self.manager.network().add_address(remote, address.clone());
        if let Some(file) = &self.peers_file {
            let mut peers = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .with_context(|| format!("opening {}", file.display()))?;
            writeln!(peers, "{remote} {address}")?;
        }
        let root: Cid = command["root"]
            .as_str()
            .context("root is not a string")?
            .parse()
            .context("root is not a CID")?;
        let selector = selector(&command["selector"])?.to_node();
        let voucher = InteropVoucher::from_json(&command["voucher"])?;
        let to = from_libp2p(&remote);
        let voucher_type = command["voucher_type"]
            .as_str()
            .unwrap_or(InteropVoucher::TYPE);
        let channel = match (voucher_type, pull) {
            (InteropVoucher::TYPE, true) => self.manager.open_pull(to, &voucher, root, selector),
            (InteropVoucher::TYPE, false) => self.manager.open_push(to, &voucher, root, selector),
            (UnknownVoucher::TYPE, true) => {
                let voucher = UnknownVoucher(voucher);
                self.manager.open_pull(to, &voucher, root, selector)
            }
            (UnknownVoucher::TYPE, false) => {
                let voucher = UnknownVoucher(voucher);
                self.manager.open_push(to, &voucher, root, selector)
            }
            (other, _) => bail!(
                "voucher_type {other:?}: this peer sends only {} and {}",
                InteropVoucher::TYPE,
                UnknownVoucher::TYPE
            ),
        }?;
        Ok(json!({"event": "opened", "channel": channel_json(&channel)}))
    }

    async fn export(&self, command: &Value) -> anyhow::Result<Value> {
        let root: Cid = command["root"]
            .as_str()
            .context("root is not a string")?
            .parse()
            .context("root is not a CID")?;
        let selector = selector(&command["selector"])?;
        let out = command["out"].as_str().context("out is not a string")?;
        let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
        let config = ipld_selector::Config::default().with_max_recursion_depth(None);
        let (writer, summary) = dag_io::car::export(
            self.blocks.backend(),
            &root,
            &selector,
            config,
            std::io::BufWriter::new(file),
        )
        .await?;
        writer
            .into_inner()
            .map_err(|error| error.into_error())
            .and_then(|file| file.sync_all())
            .with_context(|| format!("writing {out}"))?;
        Ok(json!({"event": "exported", "blocks": summary.blocks,
            "bytes": summary.block_bytes, "out": out}))
    }
}

/// A command's selector: absent or null for explore-all, DAG-JSON as a string or as JSON.
fn selector(value: &Value) -> anyhow::Result<Selector> {
    match value {
        Value::Null => Ok(Selector::explore_all_recursively()),
        Value::String(text) => {
            Selector::from_dag_json(text.as_bytes()).context("parsing the selector")
        }
        other => {
            Selector::from_dag_json(other.to_string().as_bytes()).context("parsing the selector")
        }
    }
}

fn state_json(state: &ChannelState) -> Value {
    let results: Vec<Value> = state
        .voucher_results
        .iter()
        .map(|result| {
            decode_result::<InteropResult>(result).map_or(Value::Null, |result| result.to_json())
        })
        .collect();
    json!({
        "event": "state",
        "channel": channel_json(&state.channel_id),
        "status": state.status.name(),
        "sent": state.sent,
        "received": state.received,
        "message": state.message,
        "is_pull": state.is_pull(),
        "base_cid": state.base_cid.to_string(),
        "voucher_results": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(owed: u64) -> InteropResult {
        InteropResult {
            owed,
            outcome: "payment-required".to_owned(),
        }
    }

    fn answer(outcome: &str) -> InteropResult {
        InteropResult {
            owed: 0,
            outcome: outcome.to_owned(),
        }
    }

    #[test]
    fn copies_of_a_data_limit_request_are_not_paid_even_when_the_final_request_overtakes_one() {
        let channel = datatransfer::ChannelId {
            initiator: datatransfer::PeerId::from_bytes(vec![1]),
            responder: datatransfer::PeerId::from_bytes(vec![2]),
            id: datatransfer::TransferId(7),
        };
        let mut requests = Requests::default();
        let mut fresh = |status, result: InteropResult| requests.fresh(&channel, status, &result);
        // A data-limit round: the request, its copy back to back, the answer to the payment.
        assert!(fresh(ChannelStatus::Ongoing, request(25_000)));
        assert!(!fresh(ChannelStatus::ResponderPaused, request(25_000)));
        assert!(!fresh(ChannelStatus::ResponderPaused, answer("paid")));
        // The next round, whose copy the final request overtakes.
        assert!(fresh(ChannelStatus::Ongoing, request(25_000)));
        assert!(fresh(ChannelStatus::ResponderPaused, request(411)));
        assert!(!fresh(
            ChannelStatus::ResponderFinalizing,
            answer("settled")
        ));
        // The late copy, then the late answer to its payment.
        assert!(!fresh(ChannelStatus::ResponderCompleted, request(25_000)));
        assert!(!fresh(ChannelStatus::ResponderCompleted, answer("paid")));
    }

    #[test]
    fn a_request_equal_to_an_earlier_one_is_paid_before_the_responder_finalizes() {
        let channel = datatransfer::ChannelId::default();
        let mut requests = Requests::default();
        for _ in 0..3 {
            assert!(requests.fresh(&channel, ChannelStatus::Ongoing, &request(25_000)));
            assert!(!requests.fresh(&channel, ChannelStatus::Ongoing, &answer("paid")));
        }
    }
}
