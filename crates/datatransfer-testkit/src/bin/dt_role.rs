//! `dt_role`: one data-transfer node in a process of its own, driven over stdin and reporting on
//! stdout, for the SIGKILL scenarios of `tests/sigkill.rs`.
//!
//! The node is the whole stack: a [`Manager`] over a [`GraphsyncTransport`] and a
//! [`Libp2pNetwork`] on [`build_swarm`]'s swarm, listening on loopback TCP at a fixed port, with
//! everything it keeps in one data directory: the node key (`node.key`, so that the node comes
//! back with the same peer id), the channel store (`channels/`, a `SledStore` that flushes
//! every write) and the block store (`blocks/`, the `blockstore` crate's `SledBlockstore`, its
//! database flushed after every write, so that a block graphsync stored survives a SIGKILL that
//! follows; see `DiskBlocks`).
//!
//! Usage: `dt_role <data dir> <tcp port> [<read delay in ms>]`. The delay slows every block
//! read of the node's store, so that a transfer it serves takes long enough to be killed in
//! the middle.
//!
//! Commands, one a line on stdin (an end of input is `quit`):
//! - `seed <leaves> <size> <seed>`: stores a DAG (a DAG-CBOR root listing `leaves` raw leaves of
//!   `size` bytes, distinct per `seed`);
//! - `connect <peer id> <multiaddr>`: remembers a peer's address;
//! - `pull <peer id> <root>` and `push <peer id> <root>`: opens a channel over the whole DAG;
//! - `restart`: `restart_channel` on every channel that is not finished;
//! - `check <root>`: walks the DAG in the local store, verifying every block against its CID;
//! - `quit`: stops the manager and exits.
//!
//! Reports, one JSON object a line on stdout, each with one key: `ready` (peer id, address and
//! the channels restored from the store, with the DAG blocks held), `seeded`, `connected`,
//! `opened`, `restarted`, `check`, `event` (every channel event: code, status and counters
//! after it), `other` (the manager's other events), `error` (a command that failed) and `bye`.

#![allow(clippy::print_stdout)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use blockstore::{Blockstore, SledBlockstore};
use cid::{Cid, CidGeneric};
use dag_io::blocks;
use datatransfer::libp2p::{
    Libp2pNetwork, NetworkConfig, NodeBehaviour, SwarmConfig, build_swarm, from_libp2p,
};
use datatransfer::{
    ChannelState, Config, Decision, Event, Manager, Node, Request, RequestValidator, SledStore,
    SubscriptionError, Voucher, VoucherError,
};
use datatransfer_graphsync::GraphsyncTransport;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

type Mgr = Manager<GraphsyncTransport, Libp2pNetwork>;

/// DAG-CBOR's multicodec.
const DAG_CBOR: u64 = 0x71;
/// The raw multicodec.
const RAW: u64 = 0x55;
/// How long the node waits for its listener.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The command line.
struct Args {
    dir: PathBuf,
    port: u16,
    read_delay: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: dt_role <data dir> <tcp port> [<read delay in ms>]";
    let dir = PathBuf::from(args.next().context(usage)?);
    let port = args.next().context(usage)?.parse().context(usage)?;
    let read_delay = match args.next() {
        Some(ms) => Duration::from_millis(ms.parse().context(usage)?),
        None => Duration::ZERO,
    };
    Ok(Args {
        dir,
        port,
        read_delay,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    std::fs::create_dir_all(&args.dir)?;
    let keypair = node_key(&args.dir)?;
    let blocks = Arc::new(DiskBlocks::open(&args.dir.join("blocks"), args.read_delay).await?);
    let channels = SledStore::open(args.dir.join("channels"), Default::default())?;

    let mut swarm = build_swarm(keypair, SwarmConfig::default())?;
    let address = listen(&mut swarm, args.port).await?;
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
    let manager: Mgr = Manager::new(transport, network, channels, Config::default());
    manager.register_voucher_type(AcceptAll)?;
    let mut events = manager.subscribe();
    manager.start().await?;
    let peer = *swarm.local_peer_id();
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let printer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => report(event_json(&event)),
                Err(SubscriptionError::Lagged { missed }) => {
                    report(json!({ "error": format!("lagged by {missed} events") }));
                }
                Err(_) => break,
            }
        }
    });

    let mut restored = Vec::new();
    for state in manager.in_progress_channels()?.values() {
        let held = walk(&blocks, &state.base_cid).await;
        let mut json = state_json(state);
        json["held_blocks"] = json!(held.blocks);
        restored.push(json);
    }
    let ready = json!({
        "peer": peer.to_string(),
        "addr": address.to_string(),
        "channels": restored,
    });
    report(json!({ "ready": ready }));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"quit") {
            break;
        }
        match command(&manager, &blocks, &words).await {
            Ok(answer) => report(answer),
            Err(error) => report(json!({ "error": format!("{line}: {error:#}") })),
        }
    }
    manager.stop().await?;
    blocks.db.flush_async().await?;
    printer.abort();
    driver.abort();
    report(json!({ "bye": {} }));
    Ok(())
}

/// Runs one command line.
async fn command(manager: &Mgr, blocks: &DiskBlocks, words: &[&str]) -> anyhow::Result<Value> {
    match words {
        ["seed", leaves, size, seed] => {
            let dag = dag(leaves.parse()?, size.parse()?, seed.parse()?)?;
            for (cid, block) in &dag {
                blocks.put_keyed(cid, block).await?;
            }
            let root = dag.first().map(|(cid, _)| cid.to_string());
            let listed: Vec<Value> = dag
                .iter()
                .map(|(cid, block)| json!([cid.to_string(), block.len()]))
                .collect();
            Ok(json!({ "seeded": { "root": root, "blocks": listed } }))
        }
        ["connect", peer, address] => {
            let peer: libp2p::PeerId = peer.parse()?;
            let address: Multiaddr = address.parse()?;
            manager.network().add_address(peer, address);
            Ok(json!({ "connected": peer.to_string() }))
        }
        [verb @ ("pull" | "push"), peer, root] => {
            let peer = from_libp2p(&peer.parse::<libp2p::PeerId>()?);
            let root: Cid = root.parse()?;
            let voucher = Ticket("sigkill".to_owned());
            let channel = if *verb == "pull" {
                manager.open_pull(peer, &voucher, root, everything()?)?
            } else {
                manager.open_push(peer, &voucher, root, everything()?)?
            };
            Ok(json!({ "opened": channel.to_string() }))
        }
        ["restart"] => {
            let mut restarted = Vec::new();
            for (channel, state) in manager.in_progress_channels()? {
                if !state.status.is_terminal() {
                    manager.restart_channel(&channel)?;
                    restarted.push(channel.to_string());
                }
            }
            Ok(json!({ "restarted": restarted }))
        }
        ["check", root] => {
            let walked = walk(blocks, &root.parse()?).await;
            Ok(json!({ "check": {
                "blocks": walked.blocks,
                "bytes": walked.bytes,
                "missing": walked.missing,
                "bad": walked.bad,
            } }))
        }
        _ => bail!("unknown command"),
    }
}

/// Prints one report line (stdout is line-buffered: the line goes out whole).
fn report(value: Value) {
    println!("{value}");
}

fn event_json(event: &Event) -> Value {
    match event {
        Event::Channel { event, state } => {
            let mut json = state_json(state);
            json["code"] = json!(format!("{:?}", event.code));
            json!({ "event": json })
        }
        other => json!({ "other": format!("{other:?}") }),
    }
}

fn state_json(state: &ChannelState) -> Value {
    json!({
        "channel": state.channel_id.to_string(),
        "status": state.status.to_string(),
        "message": state.message,
        "received": state.received,
        "received_blocks": state.received_blocks_total,
        "sent": state.sent,
        "sent_blocks": state.sent_blocks_total,
        "queued_blocks": state.queued_blocks_total,
    })
}

/// The node key in `dir`, made and saved on the first start.
fn node_key(dir: &Path) -> anyhow::Result<Keypair> {
    let path = dir.join("node.key");
    if let Ok(bytes) = std::fs::read(&path) {
        return Keypair::from_protobuf_encoding(&bytes).context("reading node.key");
    }
    let keypair = Keypair::generate_ed25519();
    let temporary = dir.join("node.key.new");
    std::fs::write(&temporary, keypair.to_protobuf_encoding()?)?;
    std::fs::rename(&temporary, &path)?;
    Ok(keypair)
}

/// Listens on loopback TCP at `port` and waits for the listener.
async fn listen(swarm: &mut Swarm<NodeBehaviour>, port: u16) -> anyhow::Result<Multiaddr> {
    swarm.listen_on(format!("/ip4/127.0.0.1/tcp/{port}").parse()?)?;
    tokio::time::timeout(LISTEN_TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => return Err(error.into()),
                SwarmEvent::ListenerClosed { reason, .. } => {
                    bail!("the listener closed: {reason:?}")
                }
                _ => {}
            }
        }
    })
    .await
    .context("no listen address")?
}

/// The DAG of `seed`: a DAG-CBOR root listing `leaves` raw blocks of `size` bytes, root first.
fn dag(leaves: usize, size: usize, seed: u8) -> anyhow::Result<Vec<(Cid, Vec<u8>)>> {
    let mut dag = Vec::with_capacity(leaves + 1);
    let mut links = Vec::with_capacity(leaves);
    for leaf in 0..leaves {
        let mut block = format!("sigkill {seed} {leaf}:").into_bytes();
        block.extend((0..size.saturating_sub(block.len())).map(|j| (j as u8) ^ seed));
        let cid = blocks::cid_of(cid::Version::V1, RAW, blocks::SHA2_256, &block)?;
        links.push(Node::Link(cid));
        dag.push((cid, block));
    }
    let root = ipld_dagcbor::to_vec(&Node::List(links))?;
    let cid = blocks::cid_of(cid::Version::V1, DAG_CBOR, blocks::SHA2_256, &root)?;
    dag.insert(0, (cid, root));
    Ok(dag)
}

/// The selector of the whole DAG (explore all, recursively, to depth 10: the traversal refuses
/// unlimited recursion by default).
fn everything() -> anyhow::Result<Node> {
    let json = br#"{"R":{"l":{"depth":10},":>":{"a":{">":{"@":{}}}}}}"#;
    Ok(ipld_selector::Selector::from_dag_json(json)?.to_node())
}

/// What [`walk`] found.
#[derive(Default)]
struct Walked {
    /// Blocks present and matching their CID.
    blocks: u64,
    /// Their bytes.
    bytes: u64,
    /// Links whose block is not in the store.
    missing: u64,
    /// Blocks whose bytes do not match their CID, or that cannot be read or decoded.
    bad: u64,
}

/// Walks the DAG under `root` in `store`, breadth first, verifying every block it finds.
async fn walk(store: &DiskBlocks, root: &Cid) -> Walked {
    let mut walked = Walked::default();
    let mut queue = VecDeque::from([*root]);
    while let Some(cid) = queue.pop_front() {
        let bytes = match store.blocks.get(&cid).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                walked.missing += 1;
                continue;
            }
            Err(_) => {
                walked.bad += 1;
                continue;
            }
        };
        if blocks::verify(&cid, &bytes).is_err() {
            walked.bad += 1;
            continue;
        }
        walked.blocks += 1;
        walked.bytes += bytes.len() as u64;
        if cid.codec() == DAG_CBOR {
            match ipld_dagcbor::decode(&bytes) {
                Ok(node) => links(&node, &mut queue),
                Err(_) => walked.bad += 1,
            }
        }
    }
    walked
}

fn links(node: &Node, into: &mut VecDeque<Cid>) {
    match node {
        Node::Link(cid) => into.push_back(*cid),
        Node::List(items) => items.iter().for_each(|item| links(item, into)),
        Node::Map(map) => map.iter().for_each(|(_, item)| links(item, into)),
        _ => {}
    }
}

/// The node's block store: the `blockstore` crate's `SledBlockstore` (its reads and writes run
/// on blocking tasks, so a put is not done at its first poll), every write followed by a flush
/// of the database (sled otherwise keeps recent writes in memory for up to half a second, and
/// a SIGKILL loses them), every read slowed by `read_delay`.
///
/// Graphsync reports a block to its hooks, and so to the data-transfer count that the channel
/// store persists, only once the block's put has returned: a block counted is on disk.
struct DiskBlocks {
    db: sled::Db,
    blocks: SledBlockstore,
    read_delay: Duration,
}

impl DiskBlocks {
    async fn open(dir: &Path, read_delay: Duration) -> anyhow::Result<DiskBlocks> {
        let dir = dir.to_owned();
        let db = tokio::task::spawn_blocking(move || sled::open(dir))
            .await?
            .context("opening the block store")?;
        let blocks = SledBlockstore::new(db.clone()).await?;
        Ok(DiskBlocks {
            db,
            blocks,
            read_delay,
        })
    }

    async fn flush(&self) -> blockstore::Result<()> {
        self.db
            .flush_async()
            .await
            .map_err(|error| blockstore::Error::StoredDataError(error.to_string()))?;
        Ok(())
    }
}

impl Blockstore for DiskBlocks {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        if !self.read_delay.is_zero() {
            tokio::time::sleep(self.read_delay).await;
        }
        self.blocks.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        self.blocks.put_keyed(cid, data).await?;
        self.flush().await
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        self.blocks.remove(cid).await?;
        self.flush().await
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<bool> {
        self.blocks.has(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        self.flush().await
    }
}

/// The voucher of the scenarios: a text.
struct Ticket(String);

impl Voucher for Ticket {
    const TYPE: &'static str = "testkit/ticket";

    fn to_node(&self) -> Node {
        Node::text(self.0.as_str())
    }

    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        let text = node
            .as_text()
            .and_then(|text| text.as_str())
            .ok_or_else(|| VoucherError::Invalid {
                reason: format!("expected text, found {}", node.kind()),
            })?;
        Ok(Ticket(text.to_owned()))
    }
}

/// Accepts every push and pull.
struct AcceptAll;

impl RequestValidator<Ticket> for AcceptAll {
    fn validate_push(&self, _: &Request<'_, Ticket>) -> Decision {
        Decision::accept()
    }

    fn validate_pull(&self, _: &Request<'_, Ticket>) -> Decision {
        Decision::accept()
    }
}
