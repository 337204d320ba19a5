//! Helpers of the control and metrics tests: a DAG, nodes with real Managers on one in-memory
//! hub, and waiting on channel statuses with a bound.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use datatransfer::{
    ChannelId, ChannelState, ChannelStatus, Config, Decision, Manager, MemStore, PeerId, Request,
    RequestValidator, SubscriptionError, Voucher, VoucherError,
};
use datatransfer_transport::mem::{MemHub, MemNetwork, MemTransport};
use ipld_dagcbor::Node;
use multihash_codetable::{Code, MultihashDigest};
use tokio::sync::mpsc;

/// The block store of every test node.
pub(crate) type Blocks = InMemoryBlockstore<64>;

/// A manager over the in-memory transport.
pub(crate) type Mgr = Manager<MemTransport<Blocks>, MemNetwork<Blocks>>;

/// How long a test waits for something before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// A DAG: a root linking `leaves` leaves.
pub(crate) struct Dag {
    pub(crate) root: Cid,
    pub(crate) blocks: Vec<(Cid, Vec<u8>)>,
}

impl Dag {
    /// A DAG of `leaves` leaves of `size` bytes, distinct per `seed`.
    pub(crate) fn new(leaves: usize, size: usize, seed: u8) -> anyhow::Result<Self> {
        let mut blocks = Vec::new();
        let mut links = Vec::new();
        for i in 0..leaves {
            let mut content = vec![seed, i as u8];
            content.extend((0..size).map(|j| seed ^ (j as u8)));
            let block = ipld_dagcbor::to_vec(&Node::Bytes(content.into()))?;
            let cid = Cid::new_v1(0x71, Code::Sha2_256.digest(&block));
            links.push(Node::Link(cid));
            blocks.push((cid, block));
        }
        let root_block = ipld_dagcbor::to_vec(&Node::List(links))?;
        let root = Cid::new_v1(0x71, Code::Sha2_256.digest(&root_block));
        blocks.insert(0, (root, root_block));
        Ok(Dag { root, blocks })
    }

    /// The bytes of all blocks.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.blocks
            .iter()
            .map(|(_, block)| block.len() as u64)
            .sum()
    }

    /// The number of blocks.
    pub(crate) fn block_count(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Puts the blocks into `store`.
    pub(crate) async fn load_into(&self, store: &Blocks) -> anyhow::Result<()> {
        for (cid, block) in &self.blocks {
            store.put_keyed(cid, block).await?;
        }
        Ok(())
    }
}

/// The whole-DAG selector.
pub(crate) fn everything() -> anyhow::Result<Node> {
    Ok(ipld_selector::Selector::from_dag_json(
        br#"{"R":{"l":{"depth":10},":>":{"a":{">":{"@":{}}}}}}"#,
    )?
    .to_node())
}

/// A voucher: a text; "no" is refused.
pub(crate) struct Ticket(pub(crate) String);

impl Voucher for Ticket {
    const TYPE: &'static str = "dtx-test/ticket";
    fn to_node(&self) -> Node {
        Node::text(self.0.as_str())
    }
    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        node.as_text()
            .and_then(|text| text.as_str())
            .map(|text| Ticket(text.to_owned()))
            .ok_or_else(|| VoucherError::Invalid {
                reason: "expected text".to_owned(),
            })
    }
}

struct AcceptAll;

impl RequestValidator<Ticket> for AcceptAll {
    fn validate_push(&self, request: &Request<'_, Ticket>) -> Decision {
        decide(request.voucher)
    }
    fn validate_pull(&self, request: &Request<'_, Ticket>) -> Decision {
        decide(request.voucher)
    }
}

fn decide(voucher: &Ticket) -> Decision {
    if voucher.0 == "no" {
        Decision::reject("the voucher says no")
    } else {
        Decision::accept()
    }
}

/// A hub on the current runtime.
pub(crate) fn hub() -> MemHub<Blocks> {
    MemHub::new(datatransfer_transport::mem::Config::default(), |task| {
        tokio::spawn(task);
    })
}

/// A started node.
pub(crate) struct TestNode {
    pub(crate) id: PeerId,
    pub(crate) manager: Mgr,
    pub(crate) blocks: Arc<Blocks>,
}

/// Node `n` on `hub`, accepting every voucher but "no", started.
pub(crate) async fn node(hub: &MemHub<Blocks>, n: u8) -> anyhow::Result<TestNode> {
    let id = PeerId::from_bytes(vec![0, 0x24, 8, 1, n]);
    let blocks = Arc::new(Blocks::new());
    let (transport, network) = hub
        .add_peer(id.clone(), Arc::clone(&blocks))
        .context("add peer")?;
    let manager = Manager::new(transport, network, MemStore::new(), Config::default());
    manager.register_voucher_type(AcceptAll)?;
    manager.start().await?;
    Ok(TestNode {
        id,
        manager,
        blocks,
    })
}

/// Waits until `channel` has `status` at `manager`.
pub(crate) async fn until_status(
    manager: &Mgr,
    channel: &ChannelId,
    status: ChannelStatus,
) -> anyhow::Result<ChannelState> {
    let mut events = manager.subscribe_channel(channel.clone());
    let wait = async {
        loop {
            if let Ok(state) = manager.channel_state(channel) {
                if state.status == status {
                    return Ok(state);
                }
                if state.status.is_terminal() {
                    bail!(
                        "{channel} ended {} ({:?}), not {status}",
                        state.status,
                        state.message
                    );
                }
            }
            match events.recv().await {
                Ok(_) | Err(SubscriptionError::Lagged { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .with_context(|| format!("waiting for {channel} to be {status}"))?
}

/// A writer that hands every complete line it is given to a queue.
pub(crate) struct LineSink {
    partial: Vec<u8>,
    lines: mpsc::Sender<String>,
}

impl LineSink {
    /// The sink and the queue of its lines.
    pub(crate) fn new() -> (Self, mpsc::Receiver<String>) {
        let (lines, receiver) = mpsc::channel(4096);
        (
            LineSink {
                partial: Vec::new(),
                lines,
            },
            receiver,
        )
    }
}

impl Write for LineSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            self.lines
                .try_send(line)
                .map_err(|error| io::Error::other(error.to_string()))?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The next line of `lines` that `pick` accepts, within [`PATIENCE`].
pub(crate) async fn until_line(
    lines: &mut mpsc::Receiver<String>,
    mut pick: impl FnMut(&str) -> bool,
) -> anyhow::Result<String> {
    let wait = async {
        while let Some(line) = lines.recv().await {
            if pick(&line) {
                return Ok(line);
            }
        }
        bail!("the output ended")
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .context("waiting for an output line")?
}
