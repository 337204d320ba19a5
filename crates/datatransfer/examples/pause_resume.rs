//! A client pulls a DAG, pauses the transfer once data flows, then resumes it to completion.

#![allow(clippy::print_stdout)]

mod common;

use std::sync::Arc;

use datatransfer::Event;
use datatransfer_fsm::{ChannelStatus, EventCode};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let hub = common::hub();
    let provider_blocks = Arc::new(common::Blocks::new());
    let (root, size) = common::make_dag(&provider_blocks, 16, 256).await?;
    let client = common::node(&hub, 1, Arc::new(common::Blocks::new())).await?;
    let provider = common::node(&hub, 2, provider_blocks).await?;

    // Let three blocks through, then hold the data until the pause is in place.
    hub.limit_blocks(Some(3));
    let mut events = client.subscribe();
    let channel = client.open_pull(
        provider.self_peer().clone(),
        &common::Deal("pausable".into()),
        root,
        common::everything()?,
    )?;
    let mut paused = false;
    loop {
        let Event::Channel { event, state } = events.recv().await? else {
            continue;
        };
        println!(
            "client: {:<22} -> {:<16} received {} bytes",
            event.code.name(),
            event.status.name(),
            state.received
        );
        if event.code == EventCode::DataReceivedProgress
            && !paused
            && state.received_blocks_total >= 3
        {
            paused = true;
            client.pause(&channel)?;
            println!("client paused the channel");
        }
        if event.code == EventCode::PauseInitiator {
            hub.limit_blocks(None);
            println!("provider sees {}", provider.status(&channel).name());
            client.resume(&channel)?;
            println!("client resumed the channel");
        }
        if event.status.is_terminal() {
            anyhow::ensure!(
                event.status == ChannelStatus::Completed,
                "ended {}",
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
    client.stop().await?;
    provider.stop().await?;
    Ok(())
}
