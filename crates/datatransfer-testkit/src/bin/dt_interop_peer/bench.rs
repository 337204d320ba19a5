//! `bench-serve` and `bench-pull`: the Rust side of the data-transfer rows of `cargo xtask
//! bench`, on the facade's whole node ([`datatransfer::libp2p::Node`]: swarm over TCP + noise +
//! yamux, graphsync node, transport, network, in-memory channel store, started manager), the
//! interop voucher and validator, and the bench block store ([`Backend::sharded`]: one file per
//! block in go-ds-flatfs's `next-to-last/2` layout, as the Go bench peer's). Nothing is printed
//! per event, so that only the transfer is measured.
//!
//! ```text
//! dt_interop_peer bench-serve --blocks DIR
//! dt_interop_peer bench-pull --blocks DIR --peer MULTIADDR/p2p/ID --root CID [--timeout SECS]
//! ```
//!
//! `bench-serve` prints `listening` (`peer_id`, `addrs` without `/p2p/`), then `finished`
//! (`channel`, `status`, `sent`, `received`, `message`) once per channel that reaches a
//! terminal status, and runs until its standard input ends. `bench-pull` dials the peer
//! (`connected`), opens a pull of the whole DAG (explore-all) with the voucher
//! `InteropVoucher{ID: "bench", Amount: 0}`, waits for the channel to finish and prints `done`
//! (the same fields, `blocks` counting the blocks received, a block the traversal meets twice
//! twice, and `messages`, the channel's distinct event messages: a failure's causes); it fails
//! unless the channel is Completed. The Go peer's
//! `go-dt-v2 bench-serve|bench-pull` (`interop/go-dt-v2/dtbench.go`) print the same lines.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cid::Cid;
use datatransfer::libp2p::Node;
use datatransfer::{ChannelId, ChannelState, ChannelStatus, Config, Event, SubscriptionError};
use ipld_selector::Selector;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::blocks::{Backend, Blocks};
use crate::types::{InteropResult, InteropVoucher, Validator, channel_json};
use crate::{Flags, emit};

/// How long a pull may take unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

/// How often a waiting loop looks at the channel's status besides its events (events may be
/// dropped for a subscriber that falls behind).
const POLL: Duration = Duration::from_millis(100);

/// A started node on `--blocks DIR` that accepts `InteropVoucher` pushes and pulls.
async fn start(flags: &Flags<'_>) -> anyhow::Result<Node> {
    let dir = flags.get("--blocks").context("missing --blocks DIR")?;
    let backend = Backend::sharded(PathBuf::from(dir))
        .with_context(|| format!("opening the block files in {dir}"))?;
    // The default event queue (1 024): the bench waits for one channel's end and polls its
    // status besides (a subscriber that falls behind loses events, not the transfer); a
    // deeper queue only holds more unread channel snapshots in memory.
    let node = Node::builder(Arc::new(Blocks::new(backend, None)))
        .config(Config::default())
        .build()
        .await
        .context("starting the node")?;
    node.manager().register_voucher_type(Validator {
        refuse: false,
        accept_push: true,
    })?;
    node.manager()
        .register_voucher_result_type::<InteropResult>()?;
    Ok(node)
}

/// The fields of `finished` and `done`.
fn report(state: &ChannelState) -> Value {
    json!({
        "channel": channel_json(&state.channel_id),
        "status": state.status.name(),
        "sent": state.sent,
        "received": state.received,
        "blocks": state.received_blocks_total,
        "message": state.message,
    })
}

fn with_event(mut fields: Value, event: &str) -> Value {
    if let Some(map) = fields.as_object_mut() {
        map.insert("event".to_owned(), Value::from(event));
    }
    fields
}

/// Runs `bench-serve`.
pub(crate) async fn serve(args: &[String]) -> anyhow::Result<()> {
    let flags = Flags { args };
    let node = start(&flags).await?;
    let mut events = node.manager().subscribe();
    let addrs: Vec<String> = node
        .listen_addrs()
        .iter()
        .map(|address| {
            address
                .iter()
                .filter(|part| !matches!(part, Protocol::P2p(_)))
                .collect::<Multiaddr>()
                .to_string()
        })
        .collect();
    emit(&json!({
        "event": "listening",
        "peer_id": node.peer_id().to_string(),
        "addrs": addrs,
    }));
    let mut stdin_closed = tokio::spawn(async {
        // Any end of standard input (closed, or an error reading it) stops the server.
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    });
    // Channels seen and not yet reported finished: checked by status when events were dropped.
    let mut open: BTreeSet<ChannelId> = BTreeSet::new();
    let mut reported: BTreeSet<ChannelId> = BTreeSet::new();
    let mut finish = |state: &ChannelState, open: &mut BTreeSet<ChannelId>| {
        open.remove(&state.channel_id);
        if reported.insert(state.channel_id.clone()) {
            emit(&with_event(report(state), "finished"));
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Channel { state, .. }) => {
                    if state.status.is_terminal() {
                        finish(&state, &mut open);
                    } else if !open.contains(&state.channel_id) {
                        open.insert(state.channel_id.clone());
                    }
                }
                Ok(_) => {}
                Err(SubscriptionError::Lagged { .. }) => {
                    let channels: Vec<ChannelId> = open.iter().cloned().collect();
                    for channel in channels {
                        if let Ok(state) = node.manager().channel_state(&channel)
                            && state.status.is_terminal()
                        {
                            finish(&state, &mut open);
                        }
                    }
                }
                Err(error) => bail!("the manager's events ended: {error}"),
            },
            _ = &mut stdin_closed => break,
        }
    }
    // The process ends right after: a stop that does not finish in time changes nothing.
    let _ = tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await;
    emit(&json!({"event": "stopped"}));
    Ok(())
}

/// Runs `bench-pull`; `Ok(false)` when the channel ended otherwise than Completed.
pub(crate) async fn pull(args: &[String]) -> anyhow::Result<bool> {
    let flags = Flags { args };
    let address: Multiaddr = flags
        .get("--peer")
        .context("missing --peer MULTIADDR/p2p/ID")?
        .parse()
        .context("parsing --peer")?;
    let root: Cid = flags
        .get("--root")
        .context("missing --root CID")?
        .parse()
        .context("parsing --root")?;
    let timeout = match flags.get("--timeout") {
        Some(text) => Duration::from_secs(text.parse().context("--timeout is not whole seconds")?),
        None => DEFAULT_TIMEOUT,
    };
    let node = start(&flags).await?;
    let peer = node.dial(address).await.context("dialing the responder")?;
    emit(&json!({"event": "connected", "peer": peer.to_string()}));
    let mut events = node.manager().subscribe();
    let voucher = InteropVoucher {
        id: "bench".to_owned(),
        amount: 0,
    };
    let channel = node.manager().open_pull(
        peer,
        &voucher,
        root,
        Selector::explore_all_recursively().to_node(),
    )?;
    let deadline = tokio::time::Instant::now() + timeout;
    // The channel's distinct event messages, in order: a failure's causes (the final
    // message of a failed channel may name only the last of them).
    let mut messages: Vec<String> = Vec::new();
    loop {
        if tokio::time::Instant::now() >= deadline {
            bail!("the pull did not finish within {timeout:?}");
        }
        match tokio::time::timeout(POLL, events.recv()).await {
            Ok(Ok(Event::Channel { event, state })) => {
                if event.channel == channel
                    && !event.message.is_empty()
                    && !messages.contains(&event.message)
                {
                    messages.push(event.message.clone());
                }
                if state.channel_id == channel && state.status.is_terminal() {
                    break;
                }
                continue;
            }
            Ok(Ok(_)) => continue,
            Ok(Err(SubscriptionError::Lagged { .. })) | Err(_) => {}
            Ok(Err(error)) => bail!("the manager's events ended: {error}"),
        }
        if node.manager().status(&channel).is_terminal() {
            break;
        }
    }
    let state = node.manager().channel_state(&channel)?;
    let mut done = with_event(report(&state), "done");
    if let Some(map) = done.as_object_mut() {
        map.insert("messages".to_owned(), Value::from(messages));
    }
    emit(&done);
    let _ = tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await;
    Ok(state.status == ChannelStatus::Completed)
}
