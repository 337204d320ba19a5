//! `datatransfer::libp2p::Node`, the ready-made node: two nodes built with `NodeBuilder` on
//! loopback TCP pull and push a DAG with exact totals; `shutdown` ends the swarm task (its port
//! is free again and a dial to it fails); a bad listen address, a sled store path that cannot
//! be opened and an address without a peer id are typed errors; a sled store built with the same
//! identity again holds the channels of the node before.

#[allow(unused_macros)]
mod common;

use std::sync::Arc;

use anyhow::{Context, ensure};
use common::{AcceptAll, Blocks, Dag, PATIENCE, TestVoucher, everything, until_status};
use datatransfer::ChannelStatus;
use datatransfer::libp2p::{DialError, Node, NodeError};
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;

/// A node over `blocks` on loopback TCP with `AcceptAll` registered.
async fn node(blocks: Arc<Blocks>) -> anyhow::Result<Node> {
    let node = Node::builder(blocks)
        .listen_on("/ip4/127.0.0.1/tcp/0".parse()?)
        .dial_timeout(PATIENCE)
        .build()
        .await?;
    node.manager().register_voucher_type(AcceptAll)?;
    Ok(node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_pull_and_push_a_dag_with_exact_totals() -> anyhow::Result<()> {
    let pulled = Dag::new(12, 700, 1)?;
    let pushed = Dag::new(9, 900, 2)?;
    let (a_blocks, b_blocks) = (Arc::new(Blocks::new()), Arc::new(Blocks::new()));
    pulled.load_into(&b_blocks).await?;
    pushed.load_into(&a_blocks).await?;
    let a = node(Arc::clone(&a_blocks)).await?;
    let b = node(Arc::clone(&b_blocks)).await?;
    let listen = b.listen_addrs();
    ensure!(listen.len() == 1, "one listen address: {listen:?}");
    ensure!(
        listen[0]
            .iter()
            .any(|p| matches!(p, Protocol::Tcp(port) if port != 0)),
        "a bound port in {}",
        listen[0]
    );
    ensure!(listen[0].iter().last() == Some(Protocol::P2p(b.peer_id())));

    let b_id = a.dial(listen[0].clone()).await?;
    ensure!(&b_id == b.manager().self_peer());

    let voucher = TestVoucher("deal".into());
    let pull = a
        .manager()
        .open_pull(b_id.clone(), &voucher, pulled.root, everything())?;
    let done = until_status(a.manager(), &pull, ChannelStatus::Completed).await?;
    let served = until_status(b.manager(), &pull, ChannelStatus::Completed).await?;
    ensure!(
        done.received == pulled.total_bytes(),
        "pull received {}",
        done.received
    );
    ensure!(done.received_blocks_total == pulled.block_count());
    ensure!(
        served.sent == pulled.total_bytes(),
        "pull sent {}",
        served.sent
    );
    ensure!(
        pulled.is_in(&a_blocks).await?,
        "every pulled block is stored"
    );

    let push = a
        .manager()
        .open_push(b_id, &voucher, pushed.root, everything())?;
    let done = until_status(a.manager(), &push, ChannelStatus::Completed).await?;
    let taken = until_status(b.manager(), &push, ChannelStatus::Completed).await?;
    ensure!(done.sent == pushed.total_bytes(), "push sent {}", done.sent);
    ensure!(
        taken.received == pushed.total_bytes(),
        "push received {}",
        taken.received
    );
    ensure!(taken.received_blocks_total == pushed.block_count());
    ensure!(
        pushed.is_in(&b_blocks).await?,
        "every pushed block is stored"
    );

    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_swarm_task() -> anyhow::Result<()> {
    let a = node(Arc::new(Blocks::new())).await?;
    let b = node(Arc::new(Blocks::new())).await?;
    let address = b.listen_addrs()[0].clone();
    a.dial(address.clone()).await?;
    let Some(Protocol::Tcp(port)) = address.iter().find(|p| matches!(p, Protocol::Tcp(_))) else {
        anyhow::bail!("no tcp port in {address}");
    };

    tokio::time::timeout(PATIENCE, b.shutdown())
        .await
        .context("shutdown hangs")??;
    // The task, and with it the swarm and its listener, is gone: the port can be bound again.
    std::net::TcpListener::bind(("127.0.0.1", port)).context("the port is still bound")?;
    // A new connection to the shut-down node fails.
    let redial = a.dial(address).await;
    ensure!(
        matches!(redial, Err(DialError::Failed { .. })),
        "redial: {redial:?}"
    );
    a.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_and_stores_are_typed_errors() -> anyhow::Result<()> {
    // A transport the swarm does not have.
    let unsupported: Multiaddr = "/dns4/localhost/tcp/0".parse()?;
    let built = Node::builder(Arc::new(Blocks::new()))
        .listen_on(unsupported.clone())
        .build()
        .await;
    ensure!(
        matches!(&built, Err(NodeError::Listen { address, .. }) if *address == unsupported),
        "unsupported: {:?}",
        built.as_ref().err()
    );
    // An address this machine does not have (TEST-NET-1): the listener fails.
    let foreign: Multiaddr = "/ip4/192.0.2.1/tcp/0".parse()?;
    let built = Node::builder(Arc::new(Blocks::new()))
        .listen_on(foreign.clone())
        .listen_timeout(PATIENCE)
        .build()
        .await;
    ensure!(
        matches!(&built, Err(NodeError::Listen { address, .. }) if *address == foreign),
        "foreign: {:?}",
        built.as_ref().err()
    );
    // A sled store where a file stands.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory")?;
    let built = Node::builder(Arc::new(Blocks::new()))
        .sled_store(&file)
        .build()
        .await;
    ensure!(
        matches!(&built, Err(NodeError::Store { path, .. }) if *path == file),
        "store: {:?}",
        built.as_ref().err()
    );
    // A dial to an address without a peer id.
    let a = node(Arc::new(Blocks::new())).await?;
    let bare: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse()?;
    let dialed = a.dial(bare.clone()).await;
    ensure!(
        matches!(&dialed, Err(DialError::MissingPeerId { address }) if *address == bare),
        "bare: {dialed:?}"
    );
    a.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_store_keeps_channels_across_nodes() -> anyhow::Result<()> {
    let dag = Dag::new(3, 300, 3)?;
    let provider_blocks = Arc::new(Blocks::new());
    dag.load_into(&provider_blocks).await?;
    let provider = node(provider_blocks).await?;
    let dir = tempfile::tempdir()?;
    let keypair = Keypair::generate_ed25519();
    let client = Node::builder(Arc::new(Blocks::new()))
        .keypair(keypair.clone())
        .sled_store(dir.path().join("channels"))
        .build()
        .await?;
    let peer = client.dial(provider.listen_addrs()[0].clone()).await?;
    let channel =
        client
            .manager()
            .open_pull(peer, &TestVoucher("deal".into()), dag.root, everything())?;
    until_status(client.manager(), &channel, ChannelStatus::Completed).await?;
    client.shutdown().await?;

    // The same identity on the same store: the finished channel is there.
    let again = tokio::time::timeout(
        PATIENCE,
        Node::builder(Arc::new(Blocks::new()))
            .keypair(keypair)
            .sled_store(dir.path().join("channels"))
            .build(),
    )
    .await??;
    let state = again.manager().channel_state(&channel)?;
    ensure!(state.status == ChannelStatus::Completed && state.received == dag.total_bytes());
    again.shutdown().await?;
    provider.shutdown().await?;
    Ok(())
}
