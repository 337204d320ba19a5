//! What the examples share: a small DAG, a voucher type with an accepting validator, and a
//! started manager on an in-memory hub.

use std::sync::Arc;

use anyhow::Context;
use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer::{Config, Decision, Manager, Request, RequestValidator, Voucher, VoucherError};
use datatransfer_message::PeerId;
use datatransfer_store::MemStore;
use datatransfer_transport::mem::{MemHub, MemNetwork, MemTransport};
use ipld_dagcbor::Node;
use multihash_codetable::{Code, MultihashDigest};

/// The block store of the example peers.
pub(crate) type Blocks = InMemoryBlockstore<64>;
/// A manager over the in-memory transport.
pub(crate) type Node0 = Manager<MemTransport<Blocks>, MemNetwork<Blocks>>;

/// A voucher naming a deal.
#[derive(Debug)]
pub(crate) struct Deal(pub(crate) String);

impl Voucher for Deal {
    const TYPE: &'static str = "example/deal";
    fn to_node(&self) -> Node {
        Node::text(self.0.as_str())
    }
    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        let text =
            node.as_text()
                .and_then(|t| t.as_str())
                .ok_or_else(|| VoucherError::Invalid {
                    reason: "expected a text string".into(),
                })?;
        Ok(Deal(text.to_owned()))
    }
}

/// Accepts every deal.
pub(crate) struct AcceptDeals;

impl RequestValidator<Deal> for AcceptDeals {
    fn validate_push(&self, _: &Request<'_, Deal>) -> Decision {
        Decision::accept()
    }
    fn validate_pull(&self, _: &Request<'_, Deal>) -> Decision {
        Decision::accept()
    }
}

/// Puts a DAG of `leaves` leaves of `size` bytes under one root into `store`; returns the
/// root and the DAG's size in bytes.
pub(crate) async fn make_dag(
    store: &Blocks,
    leaves: usize,
    size: usize,
) -> anyhow::Result<(Cid, u64)> {
    let mut links = Vec::new();
    let mut total = 0;
    for i in 0..leaves {
        let block = ipld_dagcbor::to_vec(&Node::Bytes(vec![i as u8; size].into()))?;
        let cid = Cid::new_v1(0x71, Code::Sha2_256.digest(&block));
        store.put_keyed(&cid, &block).await?;
        total += block.len() as u64;
        links.push(Node::Link(cid));
    }
    let root_block = ipld_dagcbor::to_vec(&Node::List(links))?;
    let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_block));
    store.put_keyed(&root, &root_block).await?;
    Ok((root, total + root_block.len() as u64))
}

/// The selector of the whole DAG.
pub(crate) fn everything() -> anyhow::Result<Node> {
    let json = br#"{"R":{"l":{"depth":10},":>":{"a":{">":{"@":{}}}}}}"#;
    Ok(ipld_selector::Selector::from_dag_json(json)?.to_node())
}

/// A started manager for peer `n` on `hub`, holding its blocks in `blocks`.
pub(crate) async fn node(
    hub: &MemHub<Blocks>,
    n: u8,
    blocks: Arc<Blocks>,
) -> anyhow::Result<Node0> {
    let peer = PeerId::from_bytes(vec![0, 0x24, 8, 1, n]);
    let (transport, network) = hub.add_peer(peer, blocks).context("join the hub")?;
    let manager = Manager::new(transport, network, MemStore::new(), Config::default());
    manager.register_voucher_type(AcceptDeals)?;
    manager.start().await?;
    Ok(manager)
}

/// An in-memory hub on the current tokio runtime.
pub(crate) fn hub() -> MemHub<Blocks> {
    MemHub::new(datatransfer_transport::mem::Config::default(), |task| {
        tokio::spawn(task);
    })
}
