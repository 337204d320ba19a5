//! Helpers shared by the integration tests: the shared vectors, a block map and a tiny
//! executor for the async driver.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::task::{Context, Poll, Waker};

use ipld_dagcbor::Node;
use ipld_selector::{Cid, Config, Step, Traversal, TraversalError};
use multihash::Multihash;

/// `shared/` beside the repository; a missing folder fails the test.
pub(crate) fn shared(relative: &str) -> PathBuf {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).join(relative);
    assert!(
        path.exists(),
        "shared fixture {} is missing",
        path.display()
    );
    path
}

/// A JSON vector from `shared/spec/vectors/graphsync/`.
pub(crate) fn vector(name: &str) -> serde_json::Value {
    let path = shared(&format!("spec/vectors/graphsync/{name}"));
    let text = std::fs::read_to_string(&path).expect("vector readable");
    serde_json::from_str(&text).expect("vector is json")
}

/// The `blocks` of a fixture vector: CID and bytes, by name.
pub(crate) fn fixture_blocks(fixture: &serde_json::Value) -> HashMap<String, (Cid, Vec<u8>)> {
    fixture["blocks"]
        .as_object()
        .expect("blocks")
        .iter()
        .map(|(name, block)| {
            let cid: Cid = block["cid"]
                .as_str()
                .expect("cid")
                .parse()
                .expect("valid cid");
            let bytes = hex::decode(block["data_hex"].as_str().expect("data_hex")).expect("hex");
            (name.clone(), (cid, bytes))
        })
        .collect()
}

/// A CID for generated test blocks: `codec` with a made-up sha2-256 digest from `seed`. The
/// traversal does not verify hashes, so any unique digest will do.
pub(crate) fn fake_cid(codec: u64, seed: u64) -> Cid {
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&seed.to_be_bytes());
    Cid::new_v1(
        codec,
        Multihash::wrap(0x12, &digest).expect("32-byte digest fits"),
    )
}

/// A config that accepts every selector (as go-data-transfer's validation does).
pub(crate) fn permissive() -> Config {
    Config::default().with_max_recursion_depth(None)
}

/// Everything one traversal reported, as owned values.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// `(path, cid, found)` per load.
    pub(crate) loads: Vec<(String, Cid, bool)>,
    /// `(path, node, matched)` per visit.
    pub(crate) visits: Vec<(String, Node, bool)>,
}

/// Drives a traversal to its end (or first error) over a block map.
pub(crate) fn run(
    root: Cid,
    selector: &ipld_selector::Selector,
    config: Config,
    blocks: &HashMap<Cid, Vec<u8>>,
) -> (Record, Result<(), TraversalError>) {
    let mut record = Record::default();
    let mut traversal = match Traversal::new(root, selector, config) {
        Ok(traversal) => traversal,
        Err(error) => return (record, Err(error)),
    };
    loop {
        let cid = match traversal.next() {
            Err(error) => return (record, Err(error)),
            Ok(Step::Done) => return (record, Ok(())),
            Ok(Step::Visit(visit)) => {
                record.visits.push((
                    visit.path.to_string(),
                    visit.node.into_owned(),
                    visit.matched,
                ));
                continue;
            }
            Ok(Step::Load(load)) => {
                let found = blocks.contains_key(&load.cid);
                record.loads.push((load.path.to_string(), load.cid, found));
                load.cid
            }
        };
        let answered = match blocks.get(&cid) {
            Some(bytes) => traversal.provide(bytes),
            None => traversal.missing(),
        };
        if let Err(error) = answered {
            return (record, Err(error));
        }
    }
}

/// The paths of the loads.
pub(crate) fn load_paths(record: &Record) -> Vec<String> {
    record
        .loads
        .iter()
        .map(|(path, _, _)| path.clone())
        .collect()
}

/// Polls a future to completion on the current thread; enough for loaders that never pend.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}
