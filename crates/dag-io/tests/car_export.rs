//! CAR export: a DAG selected by a selector, written as CARv1 in traversal order.

mod common;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use dag_io::car::{self, ExportError, Reader};
use dag_io::unixfs::{self, ImportOptions};
use ipld_selector::{Config, Selector, dagpb};

fn unlimited() -> Config {
    Config::default().with_max_recursion_depth(None)
}

fn export_all(store: &InMemoryBlockstore<64>, root: &Cid) -> Result<Vec<u8>, ExportError> {
    let selector = Selector::explore_all_recursively();
    pollster::block_on(car::export(store, root, &selector, unlimited(), Vec::new()))
        .map(|(bytes, _)| bytes)
}

fn section_cids(bytes: &[u8]) -> Vec<Cid> {
    Reader::new(bytes)
        .unwrap()
        .map(|s| s.unwrap().cid)
        .collect()
}

#[test]
fn complete_fixtures_export_byte_identically_in_traversal_order() {
    for name in [
        "dag-cbor-traversal.car",
        "dag-pb.car",
        "dir-with-files.car",
        "simple-unixfs.car",
    ] {
        let original = std::fs::read(common::fixtures_dir().join(name)).unwrap();
        let (store, summary) = common::load_fixture(name);
        let root = summary.header.roots[0];
        let bytes = export_all(&store, &root).expect(name);
        let exported = section_cids(&bytes);
        // The same set of blocks, each once, starting with the root.
        let mut want = section_cids(&original);
        want.sort();
        want.dedup();
        let mut got = exported.clone();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), exported.len(), "{name}: no block written twice");
        assert_eq!(got, want, "{name}");
        assert_eq!(exported[0], root, "{name}");
        // These fixtures were written in traversal order by go-car / kubo: byte for byte the same.
        assert_eq!(
            exported,
            section_cids(&original),
            "{name}: same order as the fixture"
        );
        assert!(bytes == original, "{name}: same bytes as the fixture");
        // Re-import gives the same root.
        let fresh = InMemoryBlockstore::<64>::new();
        let reimported = pollster::block_on(car::import(&bytes[..], &fresh)).unwrap();
        assert_eq!(reimported.header.roots, [root], "{name}");
    }
}

#[test]
fn unixfs_order_is_depth_first_with_links_in_order() {
    // A file of 6 chunks with at most 2 links per node: root -> [n1 -> [n11 -> [l1, l2],
    // n12 -> [l3, l4]], n2 -> [n21 -> [l5, l6]]]: a pre-order walk in link order.
    let options = ImportOptions {
        chunk_size: 1,
        max_links: 2,
        ..ImportOptions::default()
    };
    let store = InMemoryBlockstore::<64>::new();
    let file = pollster::block_on(unixfs::import_file(&b"abcdef"[..], &store, &options)).unwrap();
    let bytes = export_all(&store, &file.root).unwrap();
    let mut expected = Vec::new();
    let mut stack = vec![file.root];
    while let Some(cid) = stack.pop() {
        expected.push(cid);
        if cid.codec() == dagpb::CODEC {
            let block = pollster::block_on(store.get(&cid)).unwrap().unwrap();
            let node = dagpb::decode(&block).unwrap();
            stack.extend(node.links.iter().rev().map(|l| l.hash));
        }
    }
    assert_eq!(expected.len(), 6 + 3 + 2 + 1);
    assert_eq!(section_cids(&bytes), expected);
}

#[test]
fn car_export_round_trips_a_directory_tree() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("nested")).unwrap();
    std::fs::write(src.join("one"), vec![1u8; 2 * 262_144 + 5]).unwrap();
    std::fs::write(src.join("nested/two"), b"two").unwrap();
    let store = InMemoryBlockstore::<64>::new();
    let imported =
        pollster::block_on(unixfs::import_path(&src, &store, &ImportOptions::default())).unwrap();
    let bytes = export_all(&store, &imported.root).unwrap();

    let fresh = InMemoryBlockstore::<64>::new();
    let summary = pollster::block_on(car::import(&bytes[..], &fresh)).unwrap();
    // Identical 262144-byte chunks of ones collapse into one block in the CAR.
    assert_eq!(summary.blocks, imported.blocks - 1);
    let dest = dir.path().join("dest");
    pollster::block_on(unixfs::export_path(&fresh, &imported.root, &dest)).unwrap();
    assert_eq!(
        std::fs::read(dest.join("one")).unwrap(),
        vec![1u8; 2 * 262_144 + 5]
    );
    assert_eq!(std::fs::read(dest.join("nested/two")).unwrap(), b"two");
}

#[test]
fn match_point_selector_exports_only_the_root() {
    let (store, summary) = common::load_fixture("dir-with-files.car");
    let root = summary.header.roots[0];
    let (bytes, exported) = pollster::block_on(car::export(
        &store,
        &root,
        &Selector::match_point(),
        Config::default(),
        Vec::new(),
    ))
    .unwrap();
    assert_eq!(exported.blocks, 1);
    assert_eq!(section_cids(&bytes), [root]);
}

#[test]
fn missing_block_fails_the_export_naming_cid_and_path() {
    let (store, summary) = common::load_fixture("file-3k-and-3-blocks-missing-block.car");
    let root = summary.header.roots[0];
    match export_all(&store, &root) {
        Err(ExportError::MissingBlock { cid, path }) => {
            assert!(!pollster::block_on(store.has(&*cid)).unwrap());
            assert!(path.starts_with("Links/"), "{path}");
        }
        other => panic!("expected a missing block, got {other:?}"),
    }
}
