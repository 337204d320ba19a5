//! The conformance suite every [`Transport`] must pass (feature `conformance`).
//!
//! A transport crate runs it from its tests with a [`Factory`] that makes two connected
//! transports over two block stores the suite fills. Each check is an `async fn` taking the
//! factory and returning `Err(`[`Failure`]`)` with what went wrong and the events seen; [`run_all`]
//! runs them in order. The checks that need pause and resume are skipped when
//! [`Capabilities::pause`](crate::Capabilities::pause) is false (they return `Ok`), since Go
//! transports without `PauseableTransport` exist too.
//!
//! The suite drives the transports the way the data-transfer manager does: the data receiver
//! opens the exchange carrying a pull request (or a push accept), the sender's handler answers
//! it, and pauses come from handler answers ([`Flow::Pause`]) so that they land on a known
//! block. The recording handler, [`Recorder`], is public for transports' own tests.
//!
//! What every check also verifies on the events of each side ([`check_order`]): data indexes
//! strictly increase per kind within an exchange, senders report only unique blocks, and no
//! call follows a completion or a cancellation.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer_message::{
    ChannelId, Message, MessageType, PeerId, Request, Response, TransferId, new_request,
    new_response, restart_request, restart_response, update_request, voucher_result_response,
};
use futures::future::{Either, select};
use futures_timer::Delay;
use ipld_dagcbor::{Map, Node};
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};

use crate::error::{DataError, HandlerError, TransportError};
use crate::events::{BlockInfo, EventsHandler, Flow, QueuedAnswer, RequestAnswer};
use crate::transport::{OpenChannel, Transport};

/// How long a check waits for an expected event before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a check watches for events that must not come (data during a pause, reports
/// after a close).
pub const QUIET: Duration = Duration::from_millis(50);

/// Makes the transports under test.
pub trait Factory: Send + Sync {
    /// The transport under test.
    type Transport: Transport + 'static;

    /// Two transports that can reach each other, with no events handler set: the data sender
    /// reads `sender_store` (its default store), the data receiver writes `receiver_store`.
    fn pair(
        &self,
        sender_store: Arc<InMemoryBlockstore<64>>,
        receiver_store: Arc<InMemoryBlockstore<64>>,
    ) -> impl Future<Output = Pair<Self::Transport>> + Send;

    /// Cuts the connection between the pair's peers, as a network failure would, and keeps
    /// them apart (a partition): a later `open_channel` between them must report
    /// [`EventsHandler::on_request_disconnected`].
    fn disconnect(&self, pair: &Pair<Self::Transport>) -> impl Future<Output = ()> + Send;
}

/// Two transports made by a [`Factory`].
pub struct Pair<T> {
    /// The data sender's transport.
    pub sender: T,
    /// The data sender's peer id.
    pub sender_peer: PeerId,
    /// The data receiver's transport.
    pub receiver: T,
    /// The data receiver's peer id.
    pub receiver_peer: PeerId,
}

/// A failed conformance check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("conformance check {check} failed: {detail}")]
pub struct Failure {
    /// The check.
    pub check: &'static str,
    /// What went wrong, with the events seen.
    pub detail: String,
}

/// Runs every check in order, stopping at the first failure.
///
/// # Errors
/// The first [`Failure`].
pub async fn run_all<F: Factory>(factory: &F) -> Result<(), Failure> {
    pull_completes_on_both_sides(factory).await?;
    push_accept_opens_the_exchange(factory).await?;
    hold_then_attach_accept_starts_data(factory).await?;
    hold_then_resume_starts_data(factory).await?;
    reject_fails_without_data(factory).await?;
    receiver_refusal_fails_the_exchange(factory).await?;
    receiver_pause_and_resume(factory).await?;
    sender_pause_with_message_and_resume(factory).await?;
    attach_from_receiver_reaches_sender(factory).await?;
    close_from_receiver_reports_cancelled(factory).await?;
    close_from_sender_stops_data(factory).await?;
    cleanup_forgets_the_channel(factory).await?;
    disconnect_is_reported(factory).await?;
    reopen_skips_first_blocks(factory).await?;
    Ok(())
}

/// A pull: open, accept, every block in traversal order on both sides, both complete `Ok`,
/// and the receiver's store holds the DAG.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn pull_completes_on_both_sides<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "pull_completes_on_both_sides";
    let setup = Setup::new(factory, CHECK, Script::default()).await?;
    setup.open_pull(None).await?;
    setup.wait_completed_both().await?;
    let expected = setup.dag.indexes();
    let received = setup.receiver_log.data(Kind::Received);
    setup.expect(
        received
            .iter()
            .map(|b| (b.index, b.link))
            .collect::<Vec<_>>()
            == expected,
        "receiver's blocks are the traversal order",
    )?;
    let unique: Vec<bool> = received.iter().map(|b| b.unique).collect();
    setup.expect(
        unique == setup.dag.unique_flags(0),
        "receiver marks repeated blocks not unique",
    )?;
    for kind in [Kind::Queued, Kind::Sent] {
        let blocks = setup.sender_log.data(kind);
        setup.expect(
            blocks.iter().map(|b| (b.index, b.link)).collect::<Vec<_>>()
                == setup.dag.unique_indexes(0),
            "sender reports each unique block once, in order",
        )?;
    }
    let first = setup.receiver_log.events().first().cloned();
    setup.expect(
        matches!(first, Some(Recorded::Opened(_))),
        "the receiver's first call is on_channel_opened",
    )?;
    let sender_events = setup.sender_log.events();
    setup.expect(
        matches!(sender_events.first(), Some(Recorded::TransferQueued(_)))
            && matches!(sender_events.get(1), Some(Recorded::RequestReceived(_, r)) if r.is_new()),
        "the sender sees the transfer queued, then the pull request",
    )?;
    setup.expect(
        setup
            .receiver_log
            .events()
            .iter()
            .any(|e| matches!(e, Recorded::ResponseReceived(_, r) if r.accepted())),
        "the receiver gets the accept",
    )?;
    setup.expect(
        setup.dag.all_present(&setup.receiver_store).await,
        "the receiver's store holds every block",
    )?;
    setup.check_orders()
}

/// A push's data receiver opens the exchange with its accept: the sender gets the response and
/// sends everything.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn push_accept_opens_the_exchange<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "push_accept_opens_the_exchange";
    let setup = Setup::new(factory, CHECK, Script::default()).await?;
    let accept = new_response(setup.channel.id, true, false, "".into(), None);
    setup.open(Message::from(accept), None).await?;
    setup.wait_completed_both().await?;
    let sender_events = setup.sender_log.events();
    setup.expect(
        sender_events
            .iter()
            .any(|e| matches!(e, Recorded::ResponseReceived(_, r) if r.is_new() && r.accepted())),
        "the sender gets the push accept",
    )?;
    setup.expect(
        setup.sender_log.data(Kind::Sent).len() == setup.dag.unique_indexes(0).len(),
        "every unique block is sent",
    )?;
    setup.check_orders()
}

/// The sender's handler holds the opening request; nothing flows until the sender attaches
/// its accept, then the receiver gets it and all data.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn hold_then_attach_accept_starts_data<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "hold_then_attach_accept_starts_data";
    let script = Script {
        opening: Opening::Hold,
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .sender_log
        .wait(CHECK, "the pull request", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestReceived(..)))
        })
        .await?;
    Delay::new(QUIET).await;
    setup.expect(
        setup.receiver_log.data(Kind::Received).is_empty()
            && setup.sender_log.data(Kind::Queued).is_empty(),
        "no data flows while the request is held",
    )?;
    let accept = new_response(setup.channel.id, true, false, "".into(), None);
    setup
        .pair
        .sender
        .attach(setup.channel.clone(), Message::from(accept))
        .await
        .map_err(|e| setup.fail(format!("attach failed: {e}")))?;
    setup.wait_completed_both().await?;
    setup.expect(
        setup
            .receiver_log
            .events()
            .iter()
            .any(|e| matches!(e, Recorded::ResponseReceived(_, r) if r.accepted())),
        "the receiver gets the attached accept",
    )?;
    setup.check_orders()
}

/// The sender's handler holds the opening request and releases it with `resume_channel`
/// (skipped without the pause capability).
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn hold_then_resume_starts_data<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "hold_then_resume_starts_data";
    let script = Script {
        opening: Opening::Hold,
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    if !setup.pausable {
        return Ok(());
    }
    setup.open_pull(None).await?;
    setup
        .sender_log
        .wait(CHECK, "the pull request", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestReceived(..)))
        })
        .await?;
    let accept = new_response(setup.channel.id, true, false, "".into(), None);
    setup
        .pair
        .sender
        .resume_channel(setup.channel.clone(), Message::from(accept))
        .await
        .map_err(|e| setup.fail(format!("resume failed: {e}")))?;
    setup.wait_completed_both().await?;
    setup.check_orders()
}

/// The sender's handler rejects: the receiver gets the rejection and fails; no data moves.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn reject_fails_without_data<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "reject_fails_without_data";
    let script = Script {
        opening: Opening::Reject,
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .receiver_log
        .wait(CHECK, "a failed completion", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(_, Err(_))))
        })
        .await?;
    let events = setup.receiver_log.events();
    setup.expect(
        events
            .iter()
            .any(|e| matches!(e, Recorded::ResponseReceived(_, r) if !r.accepted())),
        "the receiver gets the rejecting response",
    )?;
    setup.expect(
        setup.receiver_log.data(Kind::Received).is_empty()
            && setup.sender_log.data(Kind::Sent).is_empty(),
        "no data moves",
    )?;
    setup.check_orders()
}

/// The receiver's handler answers an error at block 2: the receiver's exchange fails and no
/// further block arrives (Go: the incoming-block hook's error terminates the request).
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn receiver_refusal_fails_the_exchange<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "receiver_refusal_fails_the_exchange";
    let script = Script {
        refuse_received_at: Some(2),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .receiver_log
        .wait(CHECK, "a failed completion", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::Completed(_, Err(_))))
        })
        .await?;
    Delay::new(QUIET).await;
    setup.expect(
        setup
            .receiver_log
            .data(Kind::Received)
            .iter()
            .all(|b| b.index <= 2),
        "no block arrives after the refusal",
    )?;
    // The sender is not checked: a graphsync responder may have sent every block before the
    // requester's refusal, and then completes.
    setup.check_orders()
}

/// The receiver's handler pauses at block 3; nothing more arrives until the receiver resumes
/// with an update, which the sender gets; then everything completes. A second resume fails
/// (skipped without the pause capability).
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn receiver_pause_and_resume<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "receiver_pause_and_resume";
    let script = Script {
        pause_received_at: Some(3),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    if !setup.pausable {
        return Ok(());
    }
    setup.open_pull(None).await?;
    setup
        .wait_block(&setup.receiver_log, Kind::Received, 3)
        .await?;
    setup
        .pair
        .receiver
        .pause_channel(setup.channel.clone())
        .await
        .map_err(|e| setup.fail(format!("pause of a paused channel failed: {e}")))?;
    Delay::new(QUIET).await;
    setup.expect(
        setup
            .receiver_log
            .data(Kind::Received)
            .iter()
            .all(|b| b.index <= 3),
        "no block arrives while the receiver is paused",
    )?;
    let resume = update_request(setup.channel.id, false);
    setup.receiver_log.mark("resume");
    setup
        .pair
        .receiver
        .resume_channel(setup.channel.clone(), Message::from(resume))
        .await
        .map_err(|e| setup.fail(format!("resume failed: {e}")))?;
    setup.wait_completed_both().await?;
    setup.expect(
        setup.sender_log.events().iter().any(
            |e| matches!(e, Recorded::RequestReceived(_, r) if r.is_update() && !r.is_paused()),
        ),
        "the sender gets the resume update",
    )?;
    let again = setup
        .pair
        .receiver
        .resume_channel(
            setup.channel.clone(),
            Message::from(update_request(setup.channel.id, false)),
        )
        .await;
    setup.expect(again.is_err(), "resuming a finished exchange fails")?;
    setup.check_orders()
}

/// The sender's handler asks for a pause at block 2 with a voucher result: the receiver gets
/// the message before the block and nothing after it until the sender resumes with another
/// message (skipped without the pause capability).
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn sender_pause_with_message_and_resume<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "sender_pause_with_message_and_resume";
    let script = Script {
        pause_queued_at: Some(2),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    if !setup.pausable {
        return Ok(());
    }
    setup.open_pull(None).await?;
    setup
        .wait_block(&setup.receiver_log, Kind::Received, 2)
        .await?;
    Delay::new(QUIET).await;
    setup.expect(
        setup
            .receiver_log
            .data(Kind::Received)
            .iter()
            .all(|b| b.index <= 2),
        "no block arrives while the sender is paused",
    )?;
    let events = setup.receiver_log.events();
    let payment = events
        .iter()
        .position(|e| matches!(e, Recorded::ResponseReceived(_, r) if r.message_type() == MessageType::VoucherResult));
    let second = events
        .iter()
        .position(|e| matches!(e, Recorded::DataReceived(_, b) if b.index == 2));
    setup.expect(
        matches!((payment, second), (Some(p), Some(s)) if p < s),
        "the queued block's message arrives before the block",
    )?;
    let resume = voucher_result_response(setup.channel.id, true, false, "".into(), None);
    setup
        .pair
        .sender
        .resume_channel(setup.channel.clone(), Message::from(resume))
        .await
        .map_err(|e| setup.fail(format!("resume failed: {e}")))?;
    setup.wait_completed_both().await?;
    // Go delivers an outgoing-block message twice (spec §4.2 item 8, a quirk): count kinds,
    // not copies.
    let results: HashSet<bool> = setup
        .receiver_log
        .events()
        .iter()
        .filter_map(|e| match e {
            Recorded::ResponseReceived(_, r) if r.message_type() == MessageType::VoucherResult => {
                Some(r.is_paused())
            }
            _ => None,
        })
        .collect();
    setup.expect(
        results == HashSet::from([true, false]),
        "the receiver gets the pausing and the resuming voucher result",
    )?;
    setup.check_orders()
}

/// While paused, the receiver attaches an update; the sender's handler gets it.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn attach_from_receiver_reaches_sender<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "attach_from_receiver_reaches_sender";
    let script = Script {
        opening: Opening::Hold,
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .sender_log
        .wait(CHECK, "the pull request", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestReceived(..)))
        })
        .await?;
    let update = update_request(setup.channel.id, true);
    setup
        .pair
        .receiver
        .attach(setup.channel.clone(), Message::from(update))
        .await
        .map_err(|e| setup.fail(format!("attach failed: {e}")))?;
    setup
        .sender_log
        .wait(CHECK, "the attached update", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestReceived(_, r) if r.is_update()))
        })
        .await?;
    setup.close(&setup.pair.receiver).await?;
    setup.check_orders()
}

/// The receiver closes mid-transfer: it gets `on_request_cancelled` as its last call, neither
/// side completes, and data stops.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn close_from_receiver_reports_cancelled<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "close_from_receiver_reports_cancelled";
    let script = Script {
        pause_received_at: Some(2),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .wait_block(&setup.receiver_log, Kind::Received, 2)
        .await?;
    setup.close(&setup.pair.receiver).await?;
    setup
        .receiver_log
        .wait(CHECK, "on_request_cancelled", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestCancelled(..)))
        })
        .await?;
    Delay::new(QUIET).await;
    setup.expect(
        matches!(
            setup.receiver_log.events().last(),
            Some(Recorded::RequestCancelled(..))
        ),
        "on_request_cancelled is the receiver's last call",
    )?;
    setup.expect(
        !setup.sender_log.has_completion() && !setup.receiver_log.has_completion(),
        "neither side completes",
    )?;
    setup.check_orders()
}

/// The sender closes mid-transfer: data stops and neither side completes.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn close_from_sender_stops_data<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "close_from_sender_stops_data";
    let script = Script {
        pause_queued_at: Some(2),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .wait_block(&setup.receiver_log, Kind::Received, 2)
        .await?;
    setup.close(&setup.pair.sender).await?;
    Delay::new(QUIET).await;
    setup.expect(
        setup
            .receiver_log
            .data(Kind::Received)
            .iter()
            .all(|b| b.index <= 2),
        "no block arrives after the sender closed",
    )?;
    setup.expect(
        !setup.sender_log.has_completion() && !setup.receiver_log.has_completion(),
        "neither side completes",
    )?;
    setup.check_orders()
}

/// After completion and cleanup on both sides, the channel is unknown to both transports.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn cleanup_forgets_the_channel<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "cleanup_forgets_the_channel";
    let setup = Setup::new(factory, CHECK, Script::default()).await?;
    setup.open_pull(None).await?;
    setup.wait_completed_both().await?;
    setup
        .pair
        .receiver
        .cleanup_channel(setup.channel.clone())
        .await;
    setup
        .pair
        .sender
        .cleanup_channel(setup.channel.clone())
        .await;
    for (side, transport) in [
        ("receiver", &setup.pair.receiver),
        ("sender", &setup.pair.sender),
    ] {
        let closed = transport.close_channel(setup.channel.clone()).await;
        setup.expect(
            matches!(closed, Err(TransportError::UnknownChannel { .. })),
            &format!("close after cleanup on the {side} is an unknown channel"),
        )?;
        let update = Message::from(update_request(setup.channel.id, false));
        let attached = transport.attach(setup.channel.clone(), update).await;
        setup.expect(
            matches!(attached, Err(TransportError::UnknownChannel { .. })),
            &format!("attach after cleanup on the {side} is an unknown channel"),
        )?;
    }
    setup.check_orders()
}

/// A disconnection during a transfer is reported by the receiver as a failure, and opening
/// towards the unreachable sender reports `on_request_disconnected`.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn disconnect_is_reported<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "disconnect_is_reported";
    let script = Script {
        pause_received_at: Some(2),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .wait_block(&setup.receiver_log, Kind::Received, 2)
        .await?;
    factory.disconnect(&setup.pair).await;
    setup
        .receiver_log
        .wait(CHECK, "a receive error or failed completion", |events| {
            events.iter().any(|e| {
                matches!(
                    e,
                    Recorded::ReceiveDataError(..) | Recorded::Completed(_, Err(_))
                )
            })
        })
        .await?;
    setup.expect(
        !setup
            .receiver_log
            .events()
            .iter()
            .any(|e| matches!(e, Recorded::Completed(_, Ok(())))),
        "the receiver does not complete successfully",
    )?;
    setup.receiver_log.mark("reopen");
    setup.open_pull(Some(2)).await?;
    setup
        .receiver_log
        .wait(CHECK, "on_request_disconnected", |events| {
            events
                .iter()
                .any(|e| matches!(e, Recorded::RequestDisconnected(..)))
        })
        .await?;
    setup.check_orders()
}

/// The receiver pauses at block 5 and reopens the channel skipping 5 blocks: the new exchange
/// reports blocks 1–5 as not unique on the receiver, and also the later repeats of a skipped
/// block (graphsync counts a skipped load as sent, spec `graphsync.md` §7.5); the sender sends
/// only the rest, and both complete. The replaced exchange ends without reports.
///
/// # Errors
/// A [`Failure`] naming what differed.
pub async fn reopen_skips_first_blocks<F: Factory>(factory: &F) -> Result<(), Failure> {
    const CHECK: &str = "reopen_skips_first_blocks";
    const SKIP: u64 = 5;
    let script = Script {
        pause_received_at: Some(SKIP),
        ..Script::default()
    };
    let setup = Setup::new(factory, CHECK, script).await?;
    setup.open_pull(None).await?;
    setup
        .wait_block(&setup.receiver_log, Kind::Received, SKIP)
        .await?;
    setup.receiver_log.mark("reopen");
    setup.sender_log.mark("reopen");
    let restart = setup.pull_request(true);
    setup.open(restart, Some(SKIP)).await?;
    setup.wait_completed_both().await?;
    let after = |log: &Recorder, kind: Kind| -> Vec<BlockInfo> {
        let events = log.events();
        let start = events
            .iter()
            .position(|e| matches!(e, Recorded::Mark("reopen")))
            .unwrap_or(events.len());
        events[start..]
            .iter()
            .filter_map(|e| e.block(kind))
            .collect()
    };
    let received = after(&setup.receiver_log, Kind::Received);
    setup.expect(
        received
            .iter()
            .map(|b| (b.index, b.link))
            .collect::<Vec<_>>()
            == setup.dag.indexes(),
        "the reopened exchange reports every block in order",
    )?;
    setup.expect(
        received.iter().map(|b| b.unique).collect::<Vec<_>>() == setup.dag.unique_flags(SKIP),
        "the skipped blocks are not unique, the rest are",
    )?;
    let sent = after(&setup.sender_log, Kind::Sent);
    setup.expect(
        sent.iter().map(|b| (b.index, b.link)).collect::<Vec<_>>()
            == setup.dag.unique_indexes(SKIP),
        "the sender sends only the blocks after the skipped ones",
    )?;
    setup.expect(
        setup.dag.all_present(&setup.receiver_store).await,
        "the receiver's store holds every block",
    )?;
    let replaced_reported = setup.receiver_log.events().iter().any(|e| {
        matches!(
            e,
            Recorded::RequestCancelled(..) | Recorded::Completed(_, Err(_))
        )
    });
    setup.expect(
        !replaced_reported,
        "the replaced exchange ends without reports",
    )?;
    setup.check_orders()
}

/// Checks the order rules on one side's calls: per data kind, indexes strictly increase
/// between [`Recorded::Mark`]s and exchange starts; senders report only unique blocks; nothing
/// follows a completion or a cancellation except a new exchange after a mark.
///
/// # Errors
/// What broke the rules, as text.
pub fn check_order(events: &[Recorded]) -> Result<(), String> {
    let mut last: HashMap<Kind, u64> = HashMap::new();
    let mut ended = false;
    for (position, event) in events.iter().enumerate() {
        match event {
            Recorded::Mark(_) => {
                last.clear();
                ended = false;
                continue;
            }
            Recorded::Opened(_) | Recorded::TransferQueued(_) => {
                last.clear();
                ended = false;
                continue;
            }
            _ => {}
        }
        if ended {
            return Err(format!(
                "call #{position} {event:?} after the exchange ended"
            ));
        }
        for kind in [Kind::Received, Kind::Queued, Kind::Sent] {
            if let Some(block) = event.block(kind) {
                if let Some(previous) = last.insert(kind, block.index)
                    && previous >= block.index
                {
                    return Err(format!(
                        "call #{position}: {kind:?} index {} after {previous}",
                        block.index
                    ));
                }
                if kind != Kind::Received && !block.unique {
                    return Err(format!("call #{position}: sender reports a repeated block"));
                }
            }
        }
        if matches!(
            event,
            Recorded::Completed(..) | Recorded::RequestCancelled(..)
        ) {
            ended = true;
        }
    }
    Ok(())
}

/// One call a [`Recorder`] saw (errors kept as their text).
// Messages dominate the size; records are test data, built once and cloned rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// `on_channel_opened`.
    Opened(ChannelId),
    /// `on_response_received`.
    ResponseReceived(ChannelId, Response),
    /// `on_request_received`.
    RequestReceived(ChannelId, Request),
    /// `on_data_received`.
    DataReceived(ChannelId, BlockInfo),
    /// `on_data_queued`.
    DataQueued(ChannelId, BlockInfo),
    /// `on_data_sent`.
    DataSent(ChannelId, BlockInfo),
    /// `on_transfer_queued`.
    TransferQueued(ChannelId),
    /// `on_channel_completed`.
    Completed(ChannelId, Result<(), String>),
    /// `on_request_cancelled`.
    RequestCancelled(ChannelId, String),
    /// `on_request_disconnected`.
    RequestDisconnected(ChannelId, String),
    /// `on_send_data_error`.
    SendDataError(ChannelId, String),
    /// `on_receive_data_error`.
    ReceiveDataError(ChannelId, String),
    /// A marker the test put in ([`Recorder::mark`]).
    Mark(&'static str),
}

impl Recorded {
    /// The block of a data call of this kind.
    pub fn block(&self, kind: Kind) -> Option<BlockInfo> {
        match (self, kind) {
            (Recorded::DataReceived(_, block), Kind::Received)
            | (Recorded::DataQueued(_, block), Kind::Queued)
            | (Recorded::DataSent(_, block), Kind::Sent) => Some(*block),
            _ => None,
        }
    }
}

/// The three data callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `on_data_received`.
    Received,
    /// `on_data_queued`.
    Queued,
    /// `on_data_sent`.
    Sent,
}

/// How a [`Recorder`] answers an opening (new or restart) request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Opening {
    /// `Proceed` with an accepting response.
    #[default]
    Accept,
    /// `Hold` with no reply.
    Hold,
    /// `Reject` with a rejecting response.
    Reject,
}

/// A [`Recorder`]'s answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    /// The answer to opening requests; other requests get `Proceed(None)`.
    pub opening: Opening,
    /// Answer [`Flow::Pause`] to the unique received block with this index (once).
    pub pause_received_at: Option<u64>,
    /// Answer a pause with a voucher-result message to the queued block with this index
    /// (once).
    pub pause_queued_at: Option<u64>,
    /// Answer an error to the unique received block with this index (once).
    pub refuse_received_at: Option<u64>,
}

/// An [`EventsHandler`] that records every call and answers from a [`Script`].
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<RecorderState>,
}

#[derive(Debug, Default)]
struct RecorderState {
    events: Vec<Recorded>,
    script: Script,
    wakers: Vec<Waker>,
}

impl Recorder {
    /// A recorder answering from `script`.
    pub fn new(script: Script) -> Self {
        Recorder {
            state: Mutex::new(RecorderState {
                script,
                ..RecorderState::default()
            }),
        }
    }

    /// Every call so far.
    pub fn events(&self) -> Vec<Recorded> {
        self.lock().events.clone()
    }

    /// The blocks of the data calls of one kind so far.
    pub fn data(&self, kind: Kind) -> Vec<BlockInfo> {
        self.lock()
            .events
            .iter()
            .filter_map(|event| event.block(kind))
            .collect()
    }

    /// Whether a completion was reported.
    pub fn has_completion(&self) -> bool {
        self.lock()
            .events
            .iter()
            .any(|event| matches!(event, Recorded::Completed(..)))
    }

    /// Records a marker.
    pub fn mark(&self, label: &'static str) {
        self.push(Recorded::Mark(label));
    }

    /// Waits until `done` holds for the calls so far, at most [`WAIT`].
    ///
    /// # Errors
    /// A [`Failure`] of `check` naming `what` and listing the calls, on timeout.
    pub async fn wait(
        &self,
        check: &'static str,
        what: &str,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Result<(), Failure> {
        let reached = poll_fn(|cx| {
            let mut state = self.lock();
            if done(&state.events) {
                Poll::Ready(())
            } else {
                state.wakers.push(cx.waker().clone());
                Poll::Pending
            }
        });
        match select(pin!(reached), pin!(Delay::new(WAIT))).await {
            Either::Left(((), _)) => Ok(()),
            Either::Right(((), _)) => Err(Failure {
                check,
                detail: format!("timed out waiting for {what}; calls: {:?}", self.events()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, event: Recorded) {
        let wakers = {
            let mut state = self.lock();
            state.events.push(event);
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl EventsHandler for Recorder {
    fn on_channel_opened(&self, channel: &ChannelId) -> Result<(), HandlerError> {
        self.push(Recorded::Opened(channel.clone()));
        Ok(())
    }

    fn on_response_received(
        &self,
        channel: &ChannelId,
        response: Response,
    ) -> Result<Flow, HandlerError> {
        self.push(Recorded::ResponseReceived(channel.clone(), response));
        Ok(Flow::Continue)
    }

    fn on_request_received(&self, channel: &ChannelId, request: Request) -> RequestAnswer {
        let opening = request.is_new() || request.is_restart();
        let restart = request.is_restart();
        let id = request.transfer_id();
        self.push(Recorded::RequestReceived(channel.clone(), request));
        if !opening {
            return RequestAnswer::Proceed(None);
        }
        let reply = |accepted| {
            Some(if restart {
                restart_response(id, accepted, false, "".into(), None)
            } else {
                new_response(id, accepted, false, "".into(), None)
            })
        };
        let answer = self.lock().script.opening;
        match answer {
            Opening::Accept => RequestAnswer::Proceed(reply(true)),
            Opening::Hold => RequestAnswer::Hold(None),
            Opening::Reject => RequestAnswer::Reject(reply(false)),
        }
    }

    fn on_data_received(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<Flow, HandlerError> {
        self.push(Recorded::DataReceived(channel.clone(), block));
        let mut state = self.lock();
        if block.unique && state.script.refuse_received_at == Some(block.index) {
            state.script.refuse_received_at = None;
            return Err(HandlerError::refused("scripted refusal"));
        }
        if block.unique && state.script.pause_received_at == Some(block.index) {
            state.script.pause_received_at = None;
            return Ok(Flow::Pause);
        }
        Ok(Flow::Continue)
    }

    fn on_data_queued(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<QueuedAnswer, HandlerError> {
        self.push(Recorded::DataQueued(channel.clone(), block));
        let mut state = self.lock();
        if state.script.pause_queued_at == Some(block.index) {
            state.script.pause_queued_at = None;
            let payment = voucher_result_response(channel.id, true, true, "".into(), None);
            return Ok(QueuedAnswer::pause().with_message(Message::from(payment)));
        }
        Ok(QueuedAnswer::proceed())
    }

    fn on_data_sent(&self, channel: &ChannelId, block: BlockInfo) {
        self.push(Recorded::DataSent(channel.clone(), block));
    }

    fn on_transfer_queued(&self, channel: &ChannelId) {
        self.push(Recorded::TransferQueued(channel.clone()));
    }

    fn on_channel_completed(&self, channel: &ChannelId, result: Result<(), DataError>) {
        let result = result.map_err(|error| error.to_string());
        self.push(Recorded::Completed(channel.clone(), result));
    }

    fn on_request_cancelled(&self, channel: &ChannelId, error: DataError) {
        self.push(Recorded::RequestCancelled(
            channel.clone(),
            error.to_string(),
        ));
    }

    fn on_request_disconnected(&self, channel: &ChannelId, error: DataError) {
        self.push(Recorded::RequestDisconnected(
            channel.clone(),
            error.to_string(),
        ));
    }

    fn on_send_data_error(&self, channel: &ChannelId, error: DataError) {
        self.push(Recorded::SendDataError(channel.clone(), error.to_string()));
    }

    fn on_receive_data_error(&self, channel: &ChannelId, error: DataError) {
        self.push(Recorded::ReceiveDataError(
            channel.clone(),
            error.to_string(),
        ));
    }
}

/// One check's world: the pair with recording handlers, the DAG and the channel.
struct Setup<T> {
    check: &'static str,
    pair: Pair<T>,
    sender_log: Arc<Recorder>,
    receiver_log: Arc<Recorder>,
    receiver_store: Arc<InMemoryBlockstore<64>>,
    dag: Dag,
    channel: ChannelId,
    pausable: bool,
}

impl<T: Transport + 'static> Setup<T> {
    /// Closes the channel on `side` (one of the pair), failing the check if it is refused.
    async fn close(&self, side: &T) -> Result<(), Failure> {
        side.close_channel(self.channel.clone())
            .await
            .map_err(|e| self.fail(format!("close failed: {e}")))
    }

    async fn new<F: Factory<Transport = T>>(
        factory: &F,
        check: &'static str,
        script: Script,
    ) -> Result<Self, Failure> {
        let fail = |detail: String| Failure { check, detail };
        let dag = Dag::build().map_err(fail)?;
        let sender_store: Arc<InMemoryBlockstore<64>> = Arc::new(InMemoryBlockstore::new());
        for (cid, bytes) in &dag.blocks {
            sender_store
                .put_keyed(cid, bytes)
                .await
                .map_err(|e| fail(format!("cannot fill the sender's store: {e}")))?;
        }
        let receiver_store: Arc<InMemoryBlockstore<64>> = Arc::new(InMemoryBlockstore::new());
        let pair = factory
            .pair(sender_store, Arc::clone(&receiver_store))
            .await;
        let sender_log = Arc::new(Recorder::new(script.clone()));
        let receiver_log = Arc::new(Recorder::new(script));
        pair.sender
            .set_events_handler(Arc::clone(&sender_log) as Arc<dyn EventsHandler>)
            .map_err(|e| fail(format!("set_events_handler on the sender: {e}")))?;
        pair.receiver
            .set_events_handler(Arc::clone(&receiver_log) as Arc<dyn EventsHandler>)
            .map_err(|e| fail(format!("set_events_handler on the receiver: {e}")))?;
        let channel = ChannelId::new(
            pair.receiver_peer.clone(),
            pair.sender_peer.clone(),
            TransferId(4242),
        );
        let pausable = pair.receiver.capabilities().pause && pair.sender.capabilities().pause;
        Ok(Setup {
            check,
            pair,
            sender_log,
            receiver_log,
            receiver_store,
            dag,
            channel,
            pausable,
        })
    }

    fn fail(&self, detail: String) -> Failure {
        let mut detail = detail;
        let _ = write!(
            detail,
            "\nreceiver calls: {:?}\nsender calls: {:?}",
            self.receiver_log.events(),
            self.sender_log.events()
        );
        Failure {
            check: self.check,
            detail,
        }
    }

    fn expect(&self, holds: bool, what: &str) -> Result<(), Failure> {
        if holds {
            Ok(())
        } else {
            Err(self.fail(format!("expected: {what}")))
        }
    }

    fn check_orders(&self) -> Result<(), Failure> {
        for (side, log) in [
            ("receiver", &self.receiver_log),
            ("sender", &self.sender_log),
        ] {
            check_order(&log.events()).map_err(|e| self.fail(format!("{side}: {e}")))?;
        }
        Ok(())
    }

    /// The initiator's pull (or pull restart) request for the whole DAG.
    fn pull_request(&self, restart: bool) -> Message {
        let voucher = Node::text("conformance");
        let selector = self.dag.selector.clone();
        let id = self.channel.id;
        let request = if restart {
            restart_request(
                id,
                true,
                "FakeDTType".into(),
                voucher,
                self.dag.root,
                selector,
            )
        } else {
            new_request(
                id,
                true,
                "FakeDTType".into(),
                voucher,
                self.dag.root,
                selector,
            )
        };
        Message::from(request)
    }

    async fn open_pull(&self, skip: Option<u64>) -> Result<(), Failure> {
        self.open(self.pull_request(skip.is_some()), skip).await
    }

    async fn open(&self, message: Message, skip: Option<u64>) -> Result<(), Failure> {
        let mut open = OpenChannel::new(
            self.pair.sender_peer.clone(),
            self.channel.clone(),
            self.dag.root,
            self.dag.selector.clone(),
            message,
        );
        if let Some(skip) = skip {
            open = open.with_skip_blocks(skip);
        }
        self.pair
            .receiver
            .open_channel(open)
            .await
            .map_err(|e| self.fail(format!("open_channel failed: {e}")))
    }

    async fn wait_completed_both(&self) -> Result<(), Failure> {
        for log in [&self.receiver_log, &self.sender_log] {
            log.wait(self.check, "a completion", |events| {
                events.iter().any(|e| matches!(e, Recorded::Completed(..)))
            })
            .await
            .map_err(|e| self.fail(e.detail))?;
        }
        for (side, log) in [
            ("receiver", &self.receiver_log),
            ("sender", &self.sender_log),
        ] {
            let ok = log
                .events()
                .iter()
                .any(|e| matches!(e, Recorded::Completed(_, Ok(()))));
            self.expect(ok, &format!("the {side} completes successfully"))?;
        }
        Ok(())
    }

    async fn wait_block(&self, log: &Recorder, kind: Kind, index: u64) -> Result<(), Failure> {
        log.wait(self.check, &format!("{kind:?} block {index}"), |events| {
            events
                .iter()
                .any(|e| e.block(kind).is_some_and(|b| b.index == index))
        })
        .await
        .map_err(|e| self.fail(e.detail))
    }
}

/// The test DAG: a dag-cbor root linking three dag-cbor children, each linking two raw leaves
/// of its own and a leaf all children share (so the traversal loads it three times).
struct Dag {
    root: Cid,
    selector: Node,
    blocks: Vec<(Cid, Vec<u8>)>,
    /// The traversal's load order.
    order: Vec<Cid>,
}

impl Dag {
    fn build() -> Result<Self, String> {
        const RAW: u64 = 0x55;
        const DAG_CBOR: u64 = 0x71;
        let mut blocks = Vec::new();
        let mut add = |codec: u64, bytes: Vec<u8>| {
            let cid = Cid::new_v1(codec, Code::Sha2_256.digest(&bytes));
            blocks.push((cid, bytes));
            cid
        };
        let shared = add(RAW, b"a leaf every child links".to_vec());
        let mut children = Vec::new();
        for child in 0..3u8 {
            let own: Vec<Node> = (0..2u8)
                .map(|leaf| Node::Link(add(RAW, vec![child, leaf, 0xaa, 0x55])))
                .collect();
            let links = Node::List([own, vec![Node::Link(shared)]].concat());
            let node = Node::Map(
                Map::new()
                    .with("leaves", links)
                    .with("name", Node::text(format!("child {child}"))),
            );
            let bytes = ipld_dagcbor::to_vec(&node).map_err(|e| e.to_string())?;
            children.push(Node::Link(add(DAG_CBOR, bytes)));
        }
        let root_node = Node::Map(Map::new().with("children", Node::List(children)));
        let root_bytes = ipld_dagcbor::to_vec(&root_node).map_err(|e| e.to_string())?;
        let root = add(DAG_CBOR, root_bytes);
        let selector = Selector::explore_all_recursively();
        let by_cid: HashMap<Cid, Vec<u8>> = blocks.iter().cloned().collect();
        let config = ipld_selector::Config::default().with_max_recursion_depth(None);
        let outcome =
            ipld_selector::traverse(root, &selector, config, |cid| by_cid.get(cid).cloned())
                .map_err(|e| e.to_string())?;
        let order = outcome.loads.iter().map(|load| load.cid).collect();
        Ok(Dag {
            root,
            selector: selector.to_node(),
            blocks,
            order,
        })
    }

    /// `(index, cid)` of every load.
    fn indexes(&self) -> Vec<(u64, Cid)> {
        (1..).zip(self.order.iter().copied()).collect()
    }

    /// Whether each load crosses the wire when the first `skip` are skipped: after the skip
    /// and the first load of its CID.
    fn unique_flags(&self, skip: u64) -> Vec<bool> {
        let mut seen = HashSet::new();
        self.indexes()
            .into_iter()
            .map(|(index, cid)| seen.insert(cid) && index > skip)
            .collect()
    }

    /// `(index, cid)` of the loads that cross the wire.
    fn unique_indexes(&self, skip: u64) -> Vec<(u64, Cid)> {
        self.indexes()
            .into_iter()
            .zip(self.unique_flags(skip))
            .filter_map(|(load, unique)| unique.then_some(load))
            .collect()
    }

    async fn all_present(&self, store: &Arc<InMemoryBlockstore<64>>) -> bool {
        for (cid, bytes) in &self.blocks {
            match store.get(cid).await {
                Ok(Some(stored)) if stored == *bytes => {}
                _ => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> ChannelId {
        ChannelId::new(
            PeerId::from_bytes(vec![1]),
            PeerId::from_bytes(vec![2]),
            TransferId(1),
        )
    }

    fn link() -> Cid {
        Cid::new_v1(0x55, Code::Sha2_256.digest(b"block"))
    }

    fn received(index: u64, unique: bool) -> Recorded {
        Recorded::DataReceived(channel(), BlockInfo::new(link(), 5, index, unique))
    }

    fn sent(index: u64, unique: bool) -> Recorded {
        Recorded::DataSent(channel(), BlockInfo::new(link(), 5, index, unique))
    }

    #[test]
    fn increasing_indexes_per_kind_pass() {
        let events = [
            Recorded::Opened(channel()),
            received(1, true),
            sent(1, true),
            received(2, false),
            sent(3, true),
            received(3, true),
            Recorded::Completed(channel(), Ok(())),
        ];
        assert_eq!(check_order(&events), Ok(()));
    }

    #[test]
    fn a_repeated_or_falling_index_fails() {
        let repeated = [received(1, true), received(1, true)];
        let error = check_order(&repeated).unwrap_err();
        assert!(error.contains("index 1 after 1"), "{error}");
        let falling = [sent(4, true), sent(2, true)];
        assert!(check_order(&falling).is_err());
    }

    #[test]
    fn a_sender_reporting_a_repeated_block_fails() {
        let error = check_order(&[sent(1, false)]).unwrap_err();
        assert!(error.contains("repeated block"), "{error}");
    }

    #[test]
    fn calls_after_the_end_fail_until_a_new_exchange() {
        let cancelled = Recorded::RequestCancelled(channel(), "cancelled".into());
        let late = [received(1, true), cancelled.clone(), received(2, true)];
        let error = check_order(&late).unwrap_err();
        assert!(error.contains("after the exchange ended"), "{error}");
        let reopened = [
            received(2, true),
            cancelled,
            Recorded::Mark("reopen"),
            received(1, false),
            received(2, true),
        ];
        assert_eq!(check_order(&reopened), Ok(()));
    }

    #[test]
    fn the_test_dag_repeats_its_shared_leaf() -> Result<(), String> {
        let dag = Dag::build()?;
        // Root, then per child: the child, its two leaves, the shared leaf.
        assert_eq!(dag.order.len(), 13);
        assert_eq!(dag.blocks.len(), 11);
        let flags = dag.unique_flags(0);
        let repeats: Vec<u64> = (1..)
            .zip(&flags)
            .filter(|(_, u)| !**u)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(repeats, [9, 13]);
        // Skipping 5 loads (the shared leaf is load 5) also makes its later repeats not
        // unique.
        let after: Vec<u64> = dag.unique_indexes(5).iter().map(|(i, _)| *i).collect();
        assert_eq!(after, [6, 7, 8, 10, 11, 12]);
        Ok(())
    }
}
