//! The pure responder core serving a 64 MiB DAG (a dag-cbor list over 256 raw blocks of
//! 256 KiB) from an in-memory store to completion, in block bytes per second: admission, the
//! explore-all traversal, Go's 512 KiB batching and the message bookkeeping, with no I/O. A
//! second case also encodes every message as 2.0.0, as the driver does before writing it.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cid::Cid;
use criterion::{Criterion, Throughput};
use graphsync::codec::v2;
use graphsync::responder::{Config, Event, Hooks, RequestDecision, Responder};
use graphsync::{CidPrefix, Message, Request, RequestId, ResponseStatus};
use ipld_dagcbor::Node;
use ipld_selector::Selector;

/// Raw leaves in the DAG.
const LEAVES: usize = 256;
/// Bytes per leaf.
const LEAF_SIZE: usize = 256 * 1024;

/// The DAG: root CID and every block by CID.
fn dag() -> (Cid, HashMap<Cid, Bytes>) {
    let mut blocks = HashMap::new();
    let mut links = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..LEAVES {
        let mut data = Vec::with_capacity(LEAF_SIZE);
        while data.len() < LEAF_SIZE {
            // xorshift64*: deterministic, incompressible enough for hashing costs to be real.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            data.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let cid = CidPrefix::v1(0x55, 0x12, 32)
            .to_cid(&data)
            .expect("sha2-256 is supported");
        links.push(Node::from(cid));
        blocks.insert(cid, Bytes::from(data));
    }
    let root_data = ipld_dagcbor::to_vec(&Node::from(links)).expect("a list of links encodes");
    let root = CidPrefix::v1(0x71, 0x12, 32)
        .to_cid(&root_data)
        .expect("sha2-256 is supported");
    blocks.insert(root, Bytes::from(root_data));
    (root, blocks)
}

/// Serves one explore-all request for `root` to completion; returns the block bytes sent.
/// With `encode`, every message is also encoded as 2.0.0 into a reused buffer.
fn serve(root: Cid, blocks: &HashMap<Cid, Bytes>, encode: bool) -> u64 {
    let mut responder = Responder::new(Config {
        hooks: Hooks {
            request: true,
            ..Hooks::default()
        },
        ..Config::default()
    });
    let peer = 1u8;
    let id = RequestId::new([7; 16]);
    let selector = Selector::explore_all_recursively().to_node();
    responder.handle_message(
        peer,
        Message::new().with_request(Request::new(id, root, selector)),
    );
    let mut sent = 0u64;
    let mut wire = BytesMut::new();
    loop {
        let mut progressed = false;
        while let Some(event) = responder.poll_event() {
            progressed = true;
            match event {
                Event::LoadBlock { peer, request, cid } => responder
                    .provide_block(&peer, request, cid, blocks.get(&cid).cloned())
                    .expect("the load is pending"),
                Event::RequestReceived { peer, request, .. } => responder
                    .handle_request_decision(&peer, request.id, RequestDecision::validate())
                    .expect("the request waits for its decision"),
                _ => {}
            }
        }
        let mut done = false;
        while let Some(transmit) = responder.poll_transmit() {
            progressed = true;
            sent += transmit
                .message
                .blocks
                .iter()
                .map(|block| block.data.len() as u64)
                .sum::<u64>();
            done |= transmit
                .message
                .responses
                .iter()
                .any(|response| response.status == ResponseStatus::RequestCompletedFull);
            if encode {
                wire.clear();
                v2::encode(&transmit.message, &mut wire).expect("the message encodes");
                black_box(&wire);
            }
            responder
                .handle_sent(&transmit.peer, transmit.id)
                .expect("the message is in flight");
        }
        if done {
            return sent;
        }
        assert!(progressed, "the responder stalled before completing");
    }
}

fn responder(c: &mut Criterion) {
    let (root, blocks) = dag();
    // 64 MiB of leaves plus the root list.
    let total: u64 = blocks.values().map(|data| data.len() as u64).sum();
    assert_eq!(
        serve(root, &blocks, false),
        total,
        "every block is sent once"
    );
    let mut group = c.benchmark_group("responder");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("serve_64mib_256kib_raw_blocks", |b| {
        b.iter(|| serve(root, black_box(&blocks), false))
    });
    group.bench_function("serve_and_encode_64mib_256kib_raw_blocks", |b| {
        b.iter(|| serve(root, black_box(&blocks), true))
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    responder(&mut criterion);
    criterion.final_summary();
}
