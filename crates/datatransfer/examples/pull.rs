//! A client pulls a DAG from a provider over the in-memory transport and prints every event.

#![allow(clippy::print_stdout)]

mod common;

use std::sync::Arc;

use datatransfer::Event;
use datatransfer_fsm::ChannelStatus;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let hub = common::hub();
    let client_blocks = Arc::new(common::Blocks::new());
    let provider_blocks = Arc::new(common::Blocks::new());
    let (root, size) = common::make_dag(&provider_blocks, 8, 512).await?;
    let client = common::node(&hub, 1, Arc::clone(&client_blocks)).await?;
    let provider = common::node(&hub, 2, provider_blocks).await?;

    let mut events = client.subscribe();
    let voucher = common::Deal("deal-1".into());
    let channel = client.open_pull(
        provider.self_peer().clone(),
        &voucher,
        root,
        common::everything()?,
    )?;
    println!("client opened pull {channel} for {root} ({size} bytes)");
    loop {
        let Event::Channel { event, state } = events.recv().await? else {
            continue;
        };
        println!(
            "client: {:<22} -> {:<12} received {} bytes",
            event.code.name(),
            event.status.name(),
            state.received
        );
        if event.status.is_terminal() {
            anyhow::ensure!(
                event.status == ChannelStatus::Completed,
                "pull ended {}",
                event.status
            );
            anyhow::ensure!(
                state.received == size,
                "received {} of {size}",
                state.received
            );
            break;
        }
    }
    println!(
        "provider sees the channel as {}",
        provider.status(&channel).name()
    );
    client.stop().await?;
    provider.stop().await?;
    Ok(())
}
