//! `dtx pull` and `dtx push`: one channel to a peer, followed to its end with a progress bar.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blockstore::Blockstore;
use datatransfer::{
    ChannelId, ChannelState, ChannelStatus, Cid, Event, Subscription, SubscriptionError,
    decode_result,
};
use indicatif::ProgressBar;
use ipld_selector::Selector;
use tracing::Instrument;

use crate::cli::{PullArgs, PushArgs, Settings};
use crate::dagfiles::{self, Reach};
use crate::error::{CliError, chain};
use crate::node::{DataDir, DtxVoucher, Node, NodeOptions, Refusal, Roots, split_peer};
use crate::output::{EventLines, Output, blocks_and_bytes, channel_line, ordered, set_total};

/// `dtx pull`.
pub(crate) async fn pull(settings: &Settings, out: Output, args: PullArgs) -> Result<(), CliError> {
    let (peer, address) = split_peer(&args.peer)?;
    let root = parse_cid(&args.cid)?;
    let selector = match &args.selector {
        Some(json) => {
            Selector::from_dag_json(json.as_bytes()).map_err(|error| CliError::BadSelector {
                reason: chain(&error),
            })?
        }
        None => Selector::explore_all_recursively(),
    };
    if let Some(output) = &args.output {
        dagfiles::check_output(output)?;
    }
    let data_dir = DataDir::open(&settings.data_dir)?;
    let blocks = data_dir.blocks().await?;
    let node = Node::start(&data_dir, blocks, NodeOptions::client()).await?;
    let outcome = async {
        let _metrics = match args.metrics {
            Some(addr) => Some(node.metrics(addr, out).await?),
            None => None,
        };
        node.connect(peer, address).await?;
        let wire_peer = Node::wire_peer(&peer);
        // Subscribed before the channel opens, so that its first event is seen too.
        let events = node.manager.subscribe();
        let channel = node
            .manager
            .open_pull(
                wire_peer,
                &DtxVoucher("pull".into()),
                root,
                selector.to_node(),
            )
            .map_err(|error| CliError::internal("opening the pull", &error))?;
        let span = tracing::info_span!("channel", id = %channel);
        let bar = out.progress(&format!("pull {root}"));
        let state = follow(
            &node,
            &channel,
            events,
            (&bar, out),
            Direction::Receive,
            root,
        )
        .instrument(span)
        .await;
        bar.finish_and_clear();
        let state = state?;
        finished(&state, "pull", &peer.to_string())?;
        // The graphsync node reports a request's outcome only after its last block put, so
        // every block of a completed pull is already in the store: one that is not is an error.
        let verified = match &args.output {
            None => dagfiles::verify(node.blocks.as_ref(), &root, &selector).await?,
            Some(output) => {
                let reach = match args.selector {
                    Some(_) => Reach::Selected(&selector),
                    None => Reach::WholeDag,
                };
                write_pulled(node.blocks.as_ref(), &root, reach, output, &out).await?
            }
        };
        out.event(
            ordered!({
                "event": "pulled",
                "channel": channel.to_string(),
                "peer": peer.to_string(),
                "root": root.to_string(),
                "blocks": verified.blocks,
                "bytes": verified.bytes,
                "output": args.output.as_deref().map(|path| path.display().to_string()),
            }),
            || match &args.output {
                Some(path) => format!(
                    "pulled {root}: {}, written to {}",
                    blocks_and_bytes(verified.blocks, verified.bytes),
                    path.display()
                ),
                None => format!(
                    "pulled {root}: {}, kept in the block store",
                    blocks_and_bytes(verified.blocks, verified.bytes)
                ),
            },
        );
        Ok(())
    }
    .await;
    node.stop().await;
    outcome?;
    Ok(())
}

/// Writes a pulled DAG to `output`, checking every block on the way (with a progress bar). A
/// UnixFS output that needs blocks a selector did not fetch fails saying so.
async fn write_pulled<B: Blockstore>(
    blocks: &B,
    root: &Cid,
    reach: Reach<'_>,
    output: &Path,
    out: &Output,
) -> Result<dagfiles::Verified, CliError> {
    let bar = out.progress(&format!("write {}", output.display()));
    if let Some(total) = dagfiles::dag_total(blocks, root).await {
        set_total(&bar, total);
    }
    let written = dagfiles::write_output(blocks, root, reach, output, &bar).await;
    bar.finish_and_clear();
    written.map_err(|error| match error {
        // The selector fetched part of the DAG: a file needs all of it, a CAR not.
        CliError::Incomplete { cid, reason }
            if matches!(reach, Reach::Selected(_)) && !dagfiles::is_car(output) =>
        {
            CliError::Export {
                cid,
                form: "a UnixFS file or directory (the selector fetched part of it)",
                reason,
            }
        }
        other => other,
    })
}

/// `dtx push`.
pub(crate) async fn push(settings: &Settings, out: Output, args: PushArgs) -> Result<(), CliError> {
    let (peer, address) = split_peer(&args.peer)?;
    let data_dir = DataDir::open(&settings.data_dir)?;
    let blocks = data_dir.blocks().await?;
    let everything = Selector::explore_all_recursively();
    let path = Path::new(&args.source);
    let root = if path.exists() {
        let imported = dagfiles::import(path, blocks.as_ref()).await?;
        Roots::load(&data_dir.path)?
            .add(imported.root())
            .map_err(|source| CliError::DataDir {
                path: data_dir.path.clone(),
                source,
            })?;
        imported.root()
    } else {
        let root = parse_cid(&args.source).map_err(|_| CliError::Import {
            path: path.to_path_buf(),
            reason: "no such file or directory, and not a CID".into(),
        })?;
        let present = blocks
            .has(&root)
            .await
            .map_err(|error| data_dir.corrupt("block store", &error))?;
        if !present {
            return Err(CliError::NotStored {
                cid: root.to_string(),
                data_dir: data_dir.path.clone(),
            });
        }
        root
    };
    let verified = dagfiles::verify(blocks.as_ref(), &root, &everything).await?;
    let node = Node::start(&data_dir, blocks, NodeOptions::client()).await?;
    let outcome = async {
        let _metrics = match args.metrics {
            Some(addr) => Some(node.metrics(addr, out).await?),
            None => None,
        };
        node.connect(peer, address).await?;
        // Subscribed before the channel opens, so that its first event is seen too.
        let events = node.manager.subscribe();
        let channel = node
            .manager
            .open_push(
                Node::wire_peer(&peer),
                &DtxVoucher("push".into()),
                root,
                everything.to_node(),
            )
            .map_err(|error| CliError::internal("opening the push", &error))?;
        let span = tracing::info_span!("channel", id = %channel);
        let bar = out.progress(&format!("push {root}"));
        let state = follow(&node, &channel, events, (&bar, out), Direction::Send, root)
            .instrument(span)
            .await;
        bar.finish_and_clear();
        let state = state?;
        finished(&state, "push", &peer.to_string())?;
        // The DAG that was pushed, as checked before sending (the peer completed the channel);
        // the channel's own counters are on its `channel` lines.
        out.event(
            ordered!({
                "event": "pushed",
                "channel": channel.to_string(),
                "peer": peer.to_string(),
                "root": root.to_string(),
                "blocks": verified.blocks,
                "bytes": verified.bytes,
            }),
            || {
                format!(
                    "pushed {root} to {peer}: {}",
                    blocks_and_bytes(verified.blocks, verified.bytes)
                )
            },
        );
        Ok(())
    }
    .await;
    node.stop().await;
    outcome?;
    Ok(())
}

/// Parses a CID argument.
pub(crate) fn parse_cid(text: &str) -> Result<Cid, CliError> {
    Cid::try_from(text.trim()).map_err(|_| CliError::BadCid {
        text: text.to_owned(),
    })
}

/// Which counter of the channel shows progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Send,
    Receive,
}

/// Follows `channel` through `events` (subscribed before it opened) until it ends (or fails
/// to send): each of its events updates `bar` and, with `--json`, is printed as a `channel`
/// line ([`EventLines`] decides which data events). Ctrl-C stops the wait and leaves the
/// channel in the database.
async fn follow(
    node: &Node,
    channel: &ChannelId,
    mut events: Subscription,
    (bar, out): (&ProgressBar, Output),
    direction: Direction,
    root: Cid,
) -> Result<ChannelState, CliError> {
    let mut lines = EventLines::default();
    let mut total_known = false;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            event = tokio::time::timeout(Duration::from_millis(500), events.recv()) => match event {
                Ok(Ok(Event::Channel { event, state })) if event.channel == *channel => {
                    bar.set_position(match direction {
                        Direction::Send => state.sent,
                        Direction::Receive => state.received,
                    });
                    if !total_known && let Some(total) = dagfiles::dag_total(node.blocks.as_ref(), &root).await {
                        set_total(bar, total);
                        total_known = true;
                    }
                    if lines.wants(&event, Instant::now()) {
                        out.json(channel_line(&event, &state));
                    }
                    tracing::debug!(code = event.code.name(), status = %event.status, "channel event");
                    if event.status.is_terminal() {
                        tracing::info!(status = %state.status, sent = state.sent, received = state.received, "channel ended");
                        return Ok(Arc::unwrap_or_clone(state));
                    }
                }
                Ok(Ok(Event::TransmitFailed { channel: failed, reason })) if failed == *channel => {
                    tracing::warn!(%reason, "transmit failed");
                    return Err(CliError::TransferFailed {
                        kind: match direction {
                            Direction::Send => "push",
                            Direction::Receive => "pull",
                        },
                        cid: root.to_string(),
                        peer: node.manager.channel_state(channel)
                            .map(|state| state.other_peer().to_string())
                            .unwrap_or_default(),
                        status: "unsent".into(),
                        message: reason,
                    });
                }
                Ok(Ok(_)) => {}
                Ok(Err(SubscriptionError::Lagged { missed })) => {
                    // The channel's state is still read below once no event comes for a while.
                    tracing::warn!(missed, "fell behind the channel's events");
                    out.json(ordered!({"event": "missed", "channel": channel.to_string(), "events": missed}));
                }
                Ok(Err(error)) => return Err(CliError::internal("following the channel", &error)),
                Err(_) => {
                    // No event for a while: the channel may have ended among missed events.
                    if let Ok(state) = node.manager.channel_state(channel)
                        && state.status.is_terminal()
                    {
                        return Ok(state);
                    }
                }
            },
            _ = &mut interrupt => {
                return Err(CliError::Interrupted { channel: channel.to_string() });
            }
        }
    }
}

/// `Ok` for a completed channel; the peer's refusal or the failure otherwise.
fn finished(state: &ChannelState, kind: &'static str, peer: &str) -> Result<(), CliError> {
    if state.status == ChannelStatus::Completed {
        return Ok(());
    }
    if let Some(refusal) = state
        .last_voucher_result()
        .and_then(|result| decode_result::<Refusal>(result).ok())
    {
        return Err(CliError::Refused {
            peer: peer.to_owned(),
            kind,
            reason: refusal.0,
            hint: if kind == "push" {
                "ask its owner to run `dtx serve --accept-push all`"
            } else {
                "check the CID against what its `dtx serve` printed"
            },
        });
    }
    Err(CliError::TransferFailed {
        kind,
        cid: state.base_cid.to_string(),
        peer: peer.to_owned(),
        status: state.status.to_string(),
        message: if state.message.is_empty() {
            "no reason given".into()
        } else {
            state.message.clone()
        },
    })
}
