//! The Rust side of `cargo xtask bench graphsync`: generates the benchmark DAG as a CAR, serves
//! a CAR, or pulls a whole DAG, on [`graphsync::network::Node`] over TCP + noise + yamux.
//!
//! ```text
//! bench_peer gen --out FILE.car --size BYTES --block BYTES --seed N
//! bench_peer serve --car FILE.car
//! bench_peer request --peer MULTIADDR/p2p/ID --root CID
//! ```
//!
//! Every line on stdout is one JSON object, in the shapes of `interop/go-peer` so that xtask
//! reads both peers alike. `gen` writes a dag-cbor list (the root) over `size / block` raw
//! blocks of `block` bytes of xorshift64* output seeded with `seed`, root first, and prints
//! `{"root":..,"blocks":..,"bytes":..}`. `serve` loads the CAR (every block verified), prints
//! `loaded` and `listening`, validates every request and runs until its standard input closes.
//! `request` dials the peer, prints `connected`, asks for the whole DAG with the explore-all
//! selector, keeps the blocks in memory and prints
//! `{"event":"done","status":..,"blocks":..,"bytes":..,"missing":..}`; it exits 0 only on a
//! completed traversal with no missing block. Unlike `interop_peer` it prints nothing per
//! block and writes no CAR, so that only the transfer is measured.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use blockstore::InMemoryBlockstore;
use cid::Cid;
use futures::StreamExt;
use graphsync::network::{Behaviour, Config, Node, RequestEvent, RequestHook};
use graphsync::requester::Outcome;
use graphsync::responder::RequestDecision;
use graphsync::{CidPrefix, Extensions};
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

fn flag<'a>(args: &'a [String], name: &str) -> anyhow::Result<&'a str> {
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str())
        .with_context(|| format!("missing {name}"))
}

fn number(args: &[String], name: &str) -> anyhow::Result<u64> {
    flag(args, name)?
        .parse()
        .with_context(|| format!("{name} must be a whole number"))
}

fn emit(value: &serde_json::Value) {
    println!("{value}");
}

/// Writes the benchmark DAG as a CARv1, root first.
fn generate(args: &[String]) -> anyhow::Result<()> {
    let out = flag(args, "--out")?;
    let size = number(args, "--size")?;
    let block = number(args, "--block")?;
    let mut state = number(args, "--seed")?.max(1);
    if block == 0 || size % block != 0 {
        bail!("--size must be a positive multiple of --block");
    }
    let block_len = usize::try_from(block).context("--block too large")?;
    let raw = CidPrefix::v1(0x55, 0x12, 32);
    let mut leaves = Vec::new();
    let mut links = Vec::new();
    for _ in 0..size / block {
        let mut data = Vec::with_capacity(block_len + 8);
        while data.len() < block_len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            data.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        data.truncate(block_len);
        let cid = raw.to_cid(&data).context("hashing a leaf")?;
        links.push(ipld_dagcbor::Node::from(cid));
        leaves.push((cid, data));
    }
    let root_data =
        ipld_dagcbor::to_vec(&ipld_dagcbor::Node::from(links)).context("encoding the root list")?;
    let root = CidPrefix::v1(0x71, 0x12, 32)
        .to_cid(&root_data)
        .context("hashing the root")?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
    let mut writer = dag_io::car::Writer::new(std::io::BufWriter::new(file), &[root])
        .context("writing the car header")?;
    writer
        .write_block(&root, &root_data)
        .context("writing the root")?;
    for (cid, data) in &leaves {
        writer.write_block(cid, data).context("writing a leaf")?;
    }
    writer.finish().context("flushing the car")?;
    emit(&json!({"root": root.to_string(), "blocks": leaves.len() + 1, "bytes": size, "car": out}));
    Ok(())
}

async fn serve(args: &[String]) -> anyhow::Result<()> {
    let car = flag(args, "--car")?;
    let file = std::fs::File::open(car).with_context(|| format!("opening {car}"))?;
    let store = Arc::new(Store::new());
    let summary = dag_io::car::import(std::io::BufReader::new(file), store.as_ref())
        .await
        .with_context(|| format!("importing {car}"))?;
    for root in &summary.header.roots {
        emit(
            &json!({"event": "loaded", "root": root.to_string(), "blocks": summary.blocks, "car": car}),
        );
    }
    let mut swarm = new_swarm()?;
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
    let Some(Protocol::P2p(peer)) = peer_addr.pop() else {
        bail!("--peer must end in /p2p/ID");
    };
    let peer: PeerId = peer;
    let mut swarm = new_swarm()?;
    let store = Arc::new(Store::new());
    let node =
        Node::spawn(swarm.behaviour(), store, Config::default()).context("starting the node")?;
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
    let mut handle = node
        .request(
            peer,
            root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .context("starting the request")?;
    let (mut blocks, mut bytes) = (0u64, 0u64);
    while let Some(event) = handle.next_event().await {
        if let RequestEvent::BlockReceived { size, .. } = event {
            blocks += 1;
            bytes += size;
        }
    }
    let outcome = handle.outcome().await.context("waiting for the outcome")?;
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => generate(&args[1..]).map(|()| true),
        Some("serve") => serve(&args[1..]).await.map(|()| true),
        Some("request") => request(&args[1..]).await,
        _ => Err(anyhow::anyhow!(
            "usage: bench_peer gen --out FILE --size BYTES --block BYTES --seed N | serve --car FILE | request --peer ADDR/p2p/ID --root CID"
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
