//! Explore-all traversal of a generated 100k-block dag-cbor DAG, in blocks per second.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use ipld_dagcbor::{Map, Node, to_vec};
use ipld_selector::{Cid, Config, Selector, codec, traverse};
use multihash::Multihash;

const BLOCKS: u64 = 100_000;
const FAN_OUT: u64 = 10;

fn cid_for(index: u64) -> Cid {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&index.to_be_bytes());
    Cid::new_v1(
        codec::DAG_CBOR,
        Multihash::wrap(0x12, &digest).expect("32-byte digest"),
    )
}

/// A complete 10-ary tree of dag-cbor blocks `{"data": i, "name": "...", "links": [...]}`:
/// block `i` links to blocks `10i+1 ..= 10i+10`. Block 0 is the root.
fn dag() -> HashMap<Cid, Vec<u8>> {
    (0..BLOCKS)
        .map(|index| {
            let links: Vec<Node> = (1..=FAN_OUT)
                .map(|k| index * FAN_OUT + k)
                .filter(|child| *child < BLOCKS)
                .map(|child| Node::Link(cid_for(child)))
                .collect();
            let node = Map::new()
                .with("data", index)
                .with("name", Node::text(format!("block-{index}").as_str()))
                .with("links", Node::List(links));
            (cid_for(index), to_vec(&Node::Map(node)).expect("encodes"))
        })
        .collect()
}

fn explore_all(c: &mut Criterion) {
    let blocks = dag();
    let root = cid_for(0);
    let selector = Selector::explore_all_recursively();
    let config = Config::default().with_max_recursion_depth(None);
    let mut group = c.benchmark_group("traversal");
    group.throughput(Throughput::Elements(BLOCKS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("explore_all_100k_blocks", |b| {
        b.iter(|| {
            let outcome = traverse(root, &selector, config.clone(), |cid| blocks.get(cid))
                .expect("traversal completes");
            assert_eq!(outcome.loads.len() as u64, BLOCKS);
            black_box(outcome)
        })
    });
    group.finish();
}

// The macro generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::explore_all);
}
criterion_main!(group::benches);
