//! Cancel during an in-flight block, over real swarms (issue 7 §4): two Managers on
//! `build_swarm` swarms (memory transport) with `GraphsyncTransport` and `Libp2pNetwork`; the
//! data receiver closes a pull and a push while one block's put is held in its block store and
//! two more blocks are on the wire behind it. After `close` returns no put starts, those two
//! blocks are never stored, and blocks the sender offers later are never stored either.
//!
//! Determinism: nothing here depends on timing. The sender's block store holds its reads from
//! a fixed index (a gated sender), so exactly the blocks before it are on the wire; the
//! receiver's store holds its puts from a fixed index (a gated store) and its graphsync node
//! runs one store call at a time, so the later blocks' puts wait in the node. The test opens
//! the gates only after observing the state it needs.

#![cfg(feature = "libp2p")]
// The managers here are over graphsync and libp2p, so the hub-backed scenarios do not apply.
#[allow(unused_macros)]
mod common;
#[path = "common/libp2p.rs"]
mod net;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use blockstore::Blockstore;
use cid::CidGeneric;
use common::{Blocks, Dag, PATIENCE, TestVoucher, everything, until_state};
use datatransfer::{ChannelId, ChannelStatus};
use net::{Layers, Mgr, accept_all, manager_on, run, swarm_pair};
use tokio::sync::watch;

/// Index of the first put the receiver's store holds: the root and two leaves are stored, the
/// third leaf's put is the in-flight one.
const HOLD_PUT_FROM: u64 = 3;

/// Index of the first read the sender's store holds: the root and five leaves go out, so two
/// verified leaves (4 and 5) wait behind the held put.
const HOLD_READ_FROM: u64 = 6;

/// How long the test watches for late puts after it has opened every gate.
const QUIET: Duration = Duration::from_millis(400);

/// A gate on one kind of block-store call: calls before `hold_from` pass, later ones wait
/// until the gate opens. It counts the calls that entered, and those that entered after the
/// test marked the close as returned.
struct Valve {
    hold_from: u64,
    entered: watch::Sender<u64>,
    open: watch::Sender<bool>,
    closed: AtomicBool,
    late: AtomicU64,
}

impl Valve {
    fn new(hold_from: u64) -> Arc<Self> {
        Arc::new(Valve {
            hold_from,
            entered: watch::channel(0).0,
            open: watch::channel(false).0,
            closed: AtomicBool::new(false),
            late: AtomicU64::new(0),
        })
    }

    async fn pass(&self) {
        if self.closed.load(Ordering::SeqCst) {
            self.late.fetch_add(1, Ordering::SeqCst);
        }
        let mut index = 0;
        self.entered.send_modify(|entered| {
            index = *entered;
            *entered += 1;
        });
        if index >= self.hold_from {
            let mut open = self.open.subscribe();
            // The sender lives in the valve, which outlives this call.
            let _ = open.wait_for(|open| *open).await;
        }
    }

    /// Waits, at most [`PATIENCE`], until `count` calls have entered.
    async fn until_entered(&self, count: u64, what: &str) -> anyhow::Result<()> {
        let mut entered = self.entered.subscribe();
        tokio::time::timeout(PATIENCE, entered.wait_for(|n| *n >= count))
            .await
            .with_context(|| format!("waiting for {count} {what}"))??;
        Ok(())
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.open.send_replace(true);
    }

    fn entered(&self) -> u64 {
        *self.entered.borrow()
    }

    fn late(&self) -> u64 {
        self.late.load(Ordering::SeqCst)
    }
}

/// A block store whose reads and puts may pass through a [`Valve`].
struct Gated {
    inner: Arc<Blocks>,
    reads: Option<Arc<Valve>>,
    puts: Option<Arc<Valve>>,
}

impl Blockstore for Gated {
    async fn get<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
    ) -> blockstore::Result<Option<Vec<u8>>> {
        if let Some(valve) = &self.reads {
            valve.pass().await;
        }
        self.inner.get(cid).await
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> blockstore::Result<()> {
        if let Some(valve) = &self.puts {
            valve.pass().await;
        }
        self.inner.put_keyed(cid, data).await
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> blockstore::Result<()> {
        self.inner.remove(cid).await
    }

    async fn close(self) -> blockstore::Result<()> {
        Ok(())
    }
}

/// One node: its manager and the plain store under its gated one.
struct Side {
    manager: Mgr,
    blocks: Arc<Blocks>,
}

/// Two started managers (client first, provider second); dropping it stops their swarms.
struct Pair {
    sides: Vec<Side>,
    swarms: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for swarm in &self.swarms {
            swarm.abort();
        }
    }
}

/// How one side's graphsync node stores blocks.
struct Storage {
    reads: Option<Arc<Valve>>,
    puts: Option<Arc<Valve>>,
    /// Graphsync's store calls at once (`max_store_tasks`).
    store_tasks: usize,
}

async fn pair(storage: [Storage; 2]) -> anyhow::Result<Pair> {
    let mut pair = Pair {
        sides: Vec::new(),
        swarms: Vec::new(),
    };
    for (swarm, storage) in swarm_pair().await?.into_iter().zip(storage) {
        let blocks = Arc::new(Blocks::new());
        let served = Gated {
            inner: Arc::clone(&blocks),
            reads: storage.reads,
            puts: storage.puts,
        };
        // The configuration is `#[non_exhaustive]`: no struct update syntax outside its crate.
        let mut layers = Layers::default();
        layers.graphsync.max_store_tasks = storage.store_tasks;
        let manager = manager_on(&swarm, served, layers, accept_all).await?;
        pair.sides.push(Side { manager, blocks });
        pair.swarms.push(run(swarm));
    }
    Ok(pair)
}

/// The DAG of these tests: a root and twelve leaves of 1 KiB.
fn dag() -> anyhow::Result<Dag> {
    Dag::new(12, 1024, 23)
}

/// Waits, at most [`PATIENCE`], until the graphsync node under `manager` runs no request of
/// its own: a cancel has reached its driver, and every put of the request not yet started was
/// withdrawn.
async fn until_no_outgoing_request(manager: &Mgr) -> anyhow::Result<()> {
    let node = manager.transport().node();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let stats = node.stats().await?;
            if stats.outgoing_requests.active == 0 && stats.outgoing_requests.pending == 0 {
                return Ok::<(), anyhow::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .context("waiting for the graphsync request to end")?
}

/// Which blocks of `dag` are in `blocks`, by index.
async fn stored(dag: &Dag, blocks: &Blocks) -> anyhow::Result<Vec<usize>> {
    let mut present = Vec::new();
    for (index, (cid, _)) in dag.blocks.iter().enumerate() {
        if blocks.get(cid).await?.is_some() {
            present.push(index);
        }
    }
    Ok(present)
}

/// The scenario for a data receiver `receiver` and a data sender `sender` of `channel`: waits
/// for the held put and the held read, closes at the receiver, opens the gates in order and
/// checks that no put started after `close` returned.
async fn close_during_a_held_put(
    receiver: &Side,
    sender: &Side,
    channel: &ChannelId,
    puts: &Valve,
    reads: &Valve,
    dag: &Dag,
) -> anyhow::Result<()> {
    // The sender has read the root and five leaves and waits on the sixth; the receiver has
    // stored the root and two leaves and holds the third leaf's put. The fourth and fifth
    // leaves are on the wire: a graphsync node that verifies blocks ahead of their puts has
    // their puts waiting for its one store slot; one that reports a block only once it is
    // stored holds the traversal at the third. Neither may store them after the close.
    reads
        .until_entered(HOLD_READ_FROM + 1, "block reads")
        .await?;
    puts.until_entered(HOLD_PUT_FROM + 1, "block puts").await?;
    until_state(&receiver.manager, channel, |state| {
        state.received_blocks_total >= HOLD_PUT_FROM
    })
    .await
    .context("the receiver did not report the stored blocks")?;
    ensure!(
        puts.entered() == HOLD_PUT_FROM + 1,
        "{} puts entered before the close",
        puts.entered()
    );

    receiver.manager.close(channel)?;
    puts.mark_closed();
    ensure!(receiver.manager.status(channel) == ChannelStatus::Cancelled);

    // The cancel reaches the receiver's graphsync node; only then does the held put finish.
    until_no_outgoing_request(&receiver.manager).await?;
    puts.release();
    until_state(&sender.manager, channel, |state| {
        state.status == ChannelStatus::Cancelled
    })
    .await
    .context("the sender never learned of the cancel")?;
    // Whatever the sender would still send is offered now, and must not be stored.
    reads.release();
    tokio::time::sleep(QUIET).await;

    ensure!(puts.late() == 0, "{} puts started after close", puts.late());
    ensure!(
        puts.entered() == HOLD_PUT_FROM + 1,
        "{} puts in all",
        puts.entered()
    );
    let present = stored(dag, &receiver.blocks).await?;
    let expected: Vec<usize> = (0..=HOLD_PUT_FROM as usize).collect();
    ensure!(
        present == expected,
        "the receiver holds blocks {present:?}; only {expected:?} (the last one in flight at \
         the close) may be there"
    );
    ensure!(receiver.manager.status(channel) == ChannelStatus::Cancelled);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_block_is_stored_after_the_receiver_of_a_pull_closes_it() -> anyhow::Result<()> {
    let (puts, reads) = (Valve::new(HOLD_PUT_FROM), Valve::new(HOLD_READ_FROM));
    let pair = pair([
        Storage {
            reads: None,
            puts: Some(Arc::clone(&puts)),
            store_tasks: 1,
        },
        Storage {
            reads: Some(Arc::clone(&reads)),
            puts: None,
            store_tasks: 32,
        },
    ])
    .await?;
    let (client, provider) = (&pair.sides[0], &pair.sides[1]);
    let dag = dag()?;
    dag.load_into(&provider.blocks).await?;

    let channel = client.manager.open_pull(
        provider.manager.self_peer().clone(),
        &TestVoucher("cancel mid-block".into()),
        dag.root,
        everything(),
    )?;
    close_during_a_held_put(client, provider, &channel, &puts, &reads, &dag).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_block_is_stored_after_the_receiver_of_a_push_closes_it() -> anyhow::Result<()> {
    let (puts, reads) = (Valve::new(HOLD_PUT_FROM), Valve::new(HOLD_READ_FROM));
    let pair = pair([
        Storage {
            reads: Some(Arc::clone(&reads)),
            puts: None,
            store_tasks: 32,
        },
        Storage {
            reads: None,
            puts: Some(Arc::clone(&puts)),
            store_tasks: 1,
        },
    ])
    .await?;
    let (client, provider) = (&pair.sides[0], &pair.sides[1]);
    let dag = dag()?;
    dag.load_into(&client.blocks).await?;

    let channel = client.manager.open_push(
        provider.manager.self_peer().clone(),
        &TestVoucher("cancel mid-block".into()),
        dag.root,
        everything(),
    )?;
    close_during_a_held_put(provider, client, &channel, &puts, &reads, &dag).await
}
