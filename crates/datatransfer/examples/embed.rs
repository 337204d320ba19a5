//! Embedding the library: two nodes on loopback TCP in one process, built with
//! `datatransfer::libp2p::Node`; one pulls a small DAG from the other and prints the totals.

#![allow(clippy::print_stdout)]

// The in-memory hub of the other examples is not used here: these nodes are on TCP.
#[allow(dead_code)]
mod common;

use std::sync::Arc;

use datatransfer::ChannelStatus;
use datatransfer::libp2p::Node;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let (blocks, store) = (
        Arc::new(common::Blocks::new()),
        Arc::new(common::Blocks::new()),
    );
    let (root, size) = common::make_dag(&store, 8, 512).await?;
    let (voucher, selector) = (common::Deal("deal-1".into()), common::everything()?);

    // The core: a provider and a client, a pull, its totals.
    let provider = Node::builder(store).build().await?;
    provider
        .manager()
        .register_voucher_type(common::AcceptDeals)?;
    let client = Node::builder(blocks).build().await?;
    let peer = client.dial(provider.listen_addrs()[0].clone()).await?;
    let channel = client.manager().open_pull(peer, &voucher, root, selector)?;
    let ended = client.manager().wait_for_end(&channel);
    let state = tokio::time::timeout(std::time::Duration::from_secs(10), ended).await??;
    println!("{}: received {} bytes", state.status.name(), state.received);

    anyhow::ensure!(
        state.status == ChannelStatus::Completed,
        "the pull did not complete"
    );
    anyhow::ensure!(
        state.received == size,
        "received {} of {size} bytes",
        state.received
    );
    client.shutdown().await?;
    provider.shutdown().await?;
    Ok(())
}
