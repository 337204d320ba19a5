//! The whole stack end to end: two Managers, each on its own swarm from `build_swarm` (libp2p's
//! memory transport), with their messages on `/fil/datatransfer/1.2.0` (`Libp2pNetwork`) and
//! their data over graphsync (`GraphsyncTransport` on the swarm's graphsync node): a pull and a
//! push of a multi-block DAG, a pull and a push paused and resumed by their responder, and a pull
//! and a push cancelled by their initiator.

// The managers here are over graphsync and libp2p, so the hub-backed scenarios do not apply.
#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Dag, PATIENCE, until_status};
use datatransfer::{ChannelId, ChannelStatus, SubscriptionError};
use net::{Mgr, Net, Node, Spec, accept_all, ensure_completed, open};

/// Two started nodes on the memory transport that know each other, `AcceptAll` registered on
/// both, whose graphsync nodes read their blocks at full speed.
async fn pair() -> anyhow::Result<(Node, Node)> {
    net::pair(Net::Memory).await
}

/// As [`pair`], with graphsync nodes whose every block read takes `read_delay`.
async fn pair_reading_in(read_delay: Duration) -> anyhow::Result<(Node, Node)> {
    let spec = || Spec {
        read_delay,
        ..Spec::new(Net::Memory)
    };
    let a = Node::start(spec(), accept_all).await?;
    let b = Node::start(spec(), accept_all).await?;
    a.learn(&b);
    b.learn(&a);
    Ok((a, b))
}

/// The multi-block DAG of these tests: a root and eight leaves of 4 KiB.
fn dag() -> anyhow::Result<Dag> {
    Dag::new(8, 4096, 7)
}

/// A transfer of `dag` that `client` opened: a pull from `provider` or a push to it.
struct Transfer {
    client: Node,
    provider: Node,
    dag: Dag,
    channel: ChannelId,
    pull: bool,
}

impl Transfer {
    /// Puts `dag` into the data sender's blocks and opens the channel at the client, with a
    /// `TestVoucher` of `voucher`.
    async fn open(
        (client, provider): (Node, Node),
        dag: Dag,
        pull: bool,
        voucher: &str,
    ) -> anyhow::Result<Self> {
        let sender = if pull { &provider } else { &client };
        dag.load_into(&sender.blocks).await?;
        let channel = open(&client, &provider, pull, voucher, &dag)?;
        Ok(Transfer {
            client,
            provider,
            dag,
            channel,
            pull,
        })
    }

    /// The data sender: the provider of a pull, the client of a push.
    fn sender(&self) -> &Node {
        if self.pull {
            &self.provider
        } else {
            &self.client
        }
    }

    /// The data receiver: the client of a pull, the provider of a push.
    fn receiver(&self) -> &Node {
        if self.pull {
            &self.client
        } else {
            &self.provider
        }
    }

    /// Waits until the transfer completes at the client, then at the provider, and checks that
    /// the receiver holds the whole DAG and both ends count it exactly.
    async fn ensure_completed(&self) -> anyhow::Result<()> {
        let (client, provider) = (&self.client, &self.provider);
        ensure_completed(client, provider, &self.channel, self.pull, &self.dag).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_dag_over_graphsync_and_libp2p_completes_on_both_ends() -> anyhow::Result<()> {
    let transfer = Transfer::open(pair().await?, dag()?, true, "pull").await?;
    transfer.ensure_completed().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_a_dag_over_graphsync_and_libp2p_completes_on_both_ends() -> anyhow::Result<()> {
    let transfer = Transfer::open(pair().await?, dag()?, false, "push").await?;
    transfer.ensure_completed().await
}

/// The per-block read delay of the pause and cancel tests: the DAG of [`long_dag`] takes
/// about 20 × 30 ms to send.
const READ_DELAY: Duration = Duration::from_millis(30);

/// A DAG long enough, read at [`READ_DELAY`], for commands to land mid-transfer.
fn long_dag() -> anyhow::Result<Dag> {
    Dag::new(20, 1024, 9)
}

/// Waits, at most [`PATIENCE`], until some data of `channel` has reached `manager`.
async fn until_some_received(manager: &Mgr, channel: &ChannelId) -> anyhow::Result<()> {
    let mut events = manager.subscribe_channel(channel.clone());
    let wait = async {
        while manager.channel_state(channel)?.received == 0 {
            match events.recv().await {
                Ok(_) | Err(SubscriptionError::Lagged { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .with_context(|| format!("waiting for data of {channel}"))?
}

/// Checks that the data receiver `receiver` gets nothing more while `channel` is paused, and
/// that the pause landed before the whole `dag`. A block already on its way when the pause was
/// asked for may still land, so the check starts after about ten blocks' worth of reads.
async fn ensure_no_data_while_paused(
    receiver: &Mgr,
    channel: &ChannelId,
    dag: &Dag,
) -> anyhow::Result<()> {
    tokio::time::sleep(10 * READ_DELAY).await;
    let before = receiver.channel_state(channel)?.received;
    tokio::time::sleep(10 * READ_DELAY).await;
    let after = receiver.channel_state(channel)?.received;
    ensure!(before == after, "data while paused: {before} then {after}");
    ensure!(
        before < dag.total_bytes(),
        "the pause landed after the whole DAG ({before} bytes)"
    );
    Ok(())
}

/// A transfer of [`long_dag`] between nodes reading their blocks in [`READ_DELAY`], opened
/// with a `TestVoucher` of `voucher`, once the data sender has it `Ongoing` and some data has
/// reached the data receiver.
async fn under_way(pull: bool, voucher: &str) -> anyhow::Result<Transfer> {
    let pair = pair_reading_in(READ_DELAY).await?;
    let transfer = Transfer::open(pair, long_dag()?, pull, voucher).await?;
    let channel = &transfer.channel;
    until_status(&transfer.sender().manager, channel, ChannelStatus::Ongoing).await?;
    until_some_received(&transfer.receiver().manager, channel).await?;
    Ok(transfer)
}

/// The responder pauses a transfer under way: no data moves at either end until it resumes;
/// then the transfer completes with exact totals.
async fn responder_pauses_and_resumes(pull: bool) -> anyhow::Result<()> {
    let transfer = under_way(pull, "pause").await?;
    let (client, provider, channel) = (&transfer.client, &transfer.provider, &transfer.channel);
    // In a push the responder receives the data: its pause stops its own graphsync request.
    provider.manager.pause(channel)?;
    until_status(&provider.manager, channel, ChannelStatus::ResponderPaused).await?;
    until_status(&client.manager, channel, ChannelStatus::ResponderPaused).await?;
    ensure_no_data_while_paused(&transfer.receiver().manager, channel, &transfer.dag).await?;

    provider.manager.resume(channel)?;
    transfer.ensure_completed().await
}

/// The initiator closes a transfer under way: both ends are cancelled before the whole DAG
/// arrived.
async fn initiator_cancels(pull: bool) -> anyhow::Result<()> {
    let transfer = under_way(pull, "cancel").await?;
    let (client, provider, channel) = (&transfer.client, &transfer.provider, &transfer.channel);
    let (receiver, dag) = (transfer.receiver(), &transfer.dag);
    client.manager.close(channel)?;
    until_status(&client.manager, channel, ChannelStatus::Cancelled).await?;
    until_status(&provider.manager, channel, ChannelStatus::Cancelled).await?;
    let received = receiver.manager.channel_state(channel)?.received;
    ensure!(
        received < dag.total_bytes(),
        "the cancel landed after the whole DAG ({received} bytes)"
    );
    ensure!(
        !dag.is_in(&receiver.blocks).await?,
        "the transfer stopped early"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_pauses_and_resumes_a_pull_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    responder_pauses_and_resumes(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_cancels_a_pull_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    initiator_cancels(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_cancels_a_push_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    initiator_cancels(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_pauses_and_resumes_a_push_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    responder_pauses_and_resumes(false).await
}
