//! The Rust side of `cargo xtask interop`: a Graphsync peer on [`graphsync::network::Node`] over
//! TCP + noise + yamux, driven like the Go peer in `interop/go-peer`.
//!
//! ```text
//! interop_peer serve --car FILE
//! interop_peer request --peer MULTIADDR/p2p/ID --root CID --out OUT.car
//! ```
//!
//! Every line on stdout is one JSON object. `serve` loads the CAR (every block verified), prints
//! `{"event":"loaded","root":..,"blocks":..}` and `{"event":"listening","peer_id":..,"addrs":[..]}`,
//! validates every request (explore-all included) and runs until its standard input closes.
//! `request` dials the peer, asks for the whole DAG under the root with the explore-all
//! selector, exports what arrived as a CARv1 in traversal order and prints
//! `{"event":"done","status":..,"last_status":..,"blocks":..,"missing":..}`; it exits 0 only on a
//! completed traversal that saw status 20 and no missing block.

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
use graphsync::{Extensions, ResponseStatus};
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

fn emit(value: &serde_json::Value) {
    println!("{value}");
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
    let out = flag(args, "--out")?;
    let Some(Protocol::P2p(peer)) = peer_addr.pop() else {
        bail!("--peer must end in /p2p/ID");
    };
    let peer: PeerId = peer;
    let mut swarm = new_swarm()?;
    let store = Arc::new(Store::new());
    let node = Node::spawn(swarm.behaviour(), store.clone(), Config::default())
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
    let mut handle = node
        .request(
            peer,
            root,
            Selector::explore_all_recursively(),
            Extensions::new(),
        )
        .await
        .context("starting the request")?;
    let mut blocks = 0u64;
    let mut statuses = Vec::new();
    while let Some(event) = handle.next_event().await {
        match event {
            RequestEvent::BlockReceived { cid, size, .. } => {
                blocks += 1;
                emit(
                    &json!({"event": "block", "cid": cid.to_string(), "size": size, "blocks": blocks}),
                );
            }
            RequestEvent::ResponseReceived { status } => {
                statuses.push(status);
                emit(&json!({"event": "response", "status": status.code()}));
            }
            RequestEvent::BlockMissing { cid } => {
                emit(&json!({"event": "missing", "cid": cid.to_string()}));
            }
            RequestEvent::PeerDisconnected => {
                emit(&json!({"event": "disconnected"}));
            }
            _ => {}
        }
    }
    let outcome = handle.outcome().await.context("waiting for the outcome")?;
    // `status` is the terminal status the node saw before the request ended (null when the
    // traversal completed first: the node then ignores a late terminal status, as Go's
    // requester does); `last_status` is the last status of any kind received.
    let (status, missing, ok) = match &outcome {
        Outcome::Completed(completion) => {
            let ok = completion.status == Some(ResponseStatus::RequestCompletedFull)
                && completion.missing.is_empty();
            (
                completion.status.map(|s| s.code()),
                completion.missing.len(),
                ok,
            )
        }
        Outcome::Failed(failure) => {
            emit(&json!({"event": "failed", "error": failure.to_string()}));
            (statuses.last().map(|s| s.code()), 0, false)
        }
        _ => (None, 0, false),
    };
    let config = ipld_selector::Config::default().with_max_recursion_depth(None);
    let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
    let export = dag_io::car::export(
        store.as_ref(),
        &root,
        &Selector::explore_all_recursively(),
        config,
        std::io::BufWriter::new(file),
    )
    .await;
    let exported = match export {
        Ok((mut writer, summary)) => {
            std::io::Write::flush(&mut writer).context("writing the car")?;
            Some(summary.blocks)
        }
        Err(error) => {
            emit(&json!({"event": "export_failed", "error": error.to_string()}));
            None
        }
    };
    emit(&json!({
        "event": "done",
        "status": status,
        "last_status": statuses.last().map(|s| s.code()),
        "blocks": blocks,
        "missing": missing,
        "exported": exported,
        "car": out,
    }));
    Ok(ok && exported.is_some())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]).await.map(|()| true),
        Some("request") => request(&args[1..]).await,
        _ => Err(anyhow::anyhow!(
            "usage: interop_peer serve --car FILE | request --peer ADDR/p2p/ID --root CID --out OUT.car"
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
