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
use common::{Dag, PATIENCE, TestVoucher, everything, until_status};
use datatransfer::{ChannelId, ChannelStatus, SubscriptionError};
use net::{Mgr, Net, Node, Spec, accept_all};

/// Two started nodes on the memory transport that know each other, `AcceptAll` registered on
/// both, whose graphsync nodes read their blocks at full speed.
async fn pair() -> anyhow::Result<(Node, Node)> {
    net::pair(Net::Memory).await
}

/// As [`pair`], with graphsync nodes whose every block read takes `read_delay`.
async fn pair_reading_in(read_delay: Duration) -> anyhow::Result<(Node, Node)> {
    let a = Node::start(
        Spec {
            read_delay,
            ..Spec::new(Net::Memory)
        },
        accept_all,
    )
    .await?;
    let b = Node::start(
        Spec {
            read_delay,
            ..Spec::new(Net::Memory)
        },
        accept_all,
    )
    .await?;
    a.learn(&b);
    b.learn(&a);
    Ok((a, b))
}

/// The multi-block DAG of these tests: a root and eight leaves of 4 KiB.
fn dag() -> anyhow::Result<Dag> {
    Dag::new(8, 4096, 7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_dag_over_graphsync_and_libp2p_completes_on_both_ends() -> anyhow::Result<()> {
    let (client, provider) = pair().await?;
    let dag = dag()?;
    dag.load_into(&provider.blocks).await?;

    let channel = client.manager.open_pull(
        provider.manager.self_peer().clone(),
        &TestVoucher("pull".into()),
        dag.root,
        everything(),
    )?;
    let received = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let sent = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;

    assert!(dag.is_in(&client.blocks).await?, "a block is missing");
    assert_eq!(received.received, dag.total_bytes());
    assert_eq!(received.received_blocks_total, dag.block_count());
    assert_eq!(sent.sent, dag.total_bytes());
    assert_eq!(sent.sent_blocks_total, dag.block_count());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_a_dag_over_graphsync_and_libp2p_completes_on_both_ends() -> anyhow::Result<()> {
    let (client, provider) = pair().await?;
    let dag = dag()?;
    dag.load_into(&client.blocks).await?;

    let channel = client.manager.open_push(
        provider.manager.self_peer().clone(),
        &TestVoucher("push".into()),
        dag.root,
        everything(),
    )?;
    let sent = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let received = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;

    assert!(dag.is_in(&provider.blocks).await?, "a block is missing");
    assert_eq!(received.received, dag.total_bytes());
    assert_eq!(received.received_blocks_total, dag.block_count());
    assert_eq!(sent.sent, dag.total_bytes());
    assert_eq!(sent.sent_blocks_total, dag.block_count());
    Ok(())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_pauses_and_resumes_a_pull_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    let (client, provider) = pair_reading_in(READ_DELAY).await?;
    let dag = long_dag()?;
    dag.load_into(&provider.blocks).await?;

    let channel = client.manager.open_pull(
        provider.manager.self_peer().clone(),
        &TestVoucher("pause".into()),
        dag.root,
        everything(),
    )?;
    until_status(&provider.manager, &channel, ChannelStatus::Ongoing).await?;
    until_some_received(&client.manager, &channel).await?;

    provider.manager.pause(&channel)?;
    until_status(&provider.manager, &channel, ChannelStatus::ResponderPaused).await?;
    until_status(&client.manager, &channel, ChannelStatus::ResponderPaused).await?;
    ensure_no_data_while_paused(&client.manager, &channel, &dag).await?;

    provider.manager.resume(&channel)?;
    let received = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let sent = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;
    assert!(dag.is_in(&client.blocks).await?, "a block is missing");
    assert_eq!(received.received, dag.total_bytes());
    assert_eq!(received.received_blocks_total, dag.block_count());
    assert_eq!(sent.sent, dag.total_bytes());
    assert_eq!(sent.sent_blocks_total, dag.block_count());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_cancels_a_pull_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    let (client, provider) = pair_reading_in(READ_DELAY).await?;
    let dag = long_dag()?;
    dag.load_into(&provider.blocks).await?;

    let channel = client.manager.open_pull(
        provider.manager.self_peer().clone(),
        &TestVoucher("cancel".into()),
        dag.root,
        everything(),
    )?;
    until_status(&provider.manager, &channel, ChannelStatus::Ongoing).await?;
    until_some_received(&client.manager, &channel).await?;

    client.manager.close(&channel)?;
    until_status(&client.manager, &channel, ChannelStatus::Cancelled).await?;
    until_status(&provider.manager, &channel, ChannelStatus::Cancelled).await?;
    let received = client.manager.channel_state(&channel)?.received;
    ensure!(
        received < dag.total_bytes(),
        "the cancel landed after the whole DAG ({received} bytes)"
    );
    ensure!(
        !dag.is_in(&client.blocks).await?,
        "the transfer stopped early"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiator_cancels_a_push_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    let (client, provider) = pair_reading_in(READ_DELAY).await?;
    let dag = long_dag()?;
    dag.load_into(&client.blocks).await?;

    let channel = client.manager.open_push(
        provider.manager.self_peer().clone(),
        &TestVoucher("cancel".into()),
        dag.root,
        everything(),
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Ongoing).await?;
    until_some_received(&provider.manager, &channel).await?;

    client.manager.close(&channel)?;
    until_status(&client.manager, &channel, ChannelStatus::Cancelled).await?;
    until_status(&provider.manager, &channel, ChannelStatus::Cancelled).await?;
    let received = provider.manager.channel_state(&channel)?.received;
    ensure!(
        received < dag.total_bytes(),
        "the cancel landed after the whole DAG ({received} bytes)"
    );
    ensure!(
        !dag.is_in(&provider.blocks).await?,
        "the transfer stopped early"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responder_pauses_and_resumes_a_push_over_graphsync_and_libp2p() -> anyhow::Result<()> {
    let (client, provider) = pair_reading_in(READ_DELAY).await?;
    let dag = long_dag()?;
    dag.load_into(&client.blocks).await?;

    let channel = client.manager.open_push(
        provider.manager.self_peer().clone(),
        &TestVoucher("pause".into()),
        dag.root,
        everything(),
    )?;
    until_status(&client.manager, &channel, ChannelStatus::Ongoing).await?;
    until_some_received(&provider.manager, &channel).await?;

    // In a push the responder receives the data: its pause stops its own graphsync request.
    provider.manager.pause(&channel)?;
    until_status(&provider.manager, &channel, ChannelStatus::ResponderPaused).await?;
    until_status(&client.manager, &channel, ChannelStatus::ResponderPaused).await?;
    ensure_no_data_while_paused(&provider.manager, &channel, &dag).await?;

    provider.manager.resume(&channel)?;
    let sent = until_status(&client.manager, &channel, ChannelStatus::Completed).await?;
    let received = until_status(&provider.manager, &channel, ChannelStatus::Completed).await?;
    assert!(dag.is_in(&provider.blocks).await?, "a block is missing");
    assert_eq!(received.received, dag.total_bytes());
    assert_eq!(received.received_blocks_total, dag.block_count());
    assert_eq!(sent.sent, dag.total_bytes());
    assert_eq!(sent.sent_blocks_total, dag.block_count());
    Ok(())
}
