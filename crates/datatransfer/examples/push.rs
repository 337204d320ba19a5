//! A client pushes a DAG to a provider over the in-memory transport and prints every event.

#![allow(clippy::print_stdout)]

mod common;

use std::sync::Arc;

use datatransfer::Event;
use datatransfer_fsm::ChannelStatus;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let hub = common::hub();
    let client_blocks = Arc::new(common::Blocks::new());
    let (root, size) = common::make_dag(&client_blocks, 8, 512).await?;
    let client = common::node(&hub, 1, client_blocks).await?;
    let provider = common::node(&hub, 2, Arc::new(common::Blocks::new())).await?;

    let channel = client.open_push(
        provider.self_peer().clone(),
        &common::Deal("storage-deal".into()),
        root,
        common::everything()?,
    )?;
    println!("client opened push {channel} of {root} ({size} bytes)");
    let mut events = provider.subscribe_channel(channel.clone());
    loop {
        if provider.status(&channel) == ChannelStatus::Completed {
            break;
        }
        let Event::Channel { event, state } = events.recv().await? else {
            continue;
        };
        println!(
            "provider: {:<22} -> {:<12} received {} bytes",
            event.code.name(),
            event.status.name(),
            state.received
        );
        anyhow::ensure!(
            !event.status.is_terminal() || event.status == ChannelStatus::Completed,
            "push ended {}",
            event.status
        );
    }
    let received = provider.channel_state(&channel)?.received;
    anyhow::ensure!(received == size, "received {received} of {size}");
    println!("provider received all {received} bytes");
    client.stop().await?;
    provider.stop().await?;
    Ok(())
}
