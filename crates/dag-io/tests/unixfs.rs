//! UnixFS import (kubo-identical CIDs) and export, against known CIDs and the shared fixtures.

mod common;

use std::collections::VecDeque;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use dag_io::blocks::{self, BlockError};
use dag_io::car;
use dag_io::unixfs::{self, ImportOptions, UnixfsError};
use ipld_selector::dagpb;

fn import(bytes: &[u8], options: &ImportOptions) -> (InMemoryBlockstore<64>, unixfs::Imported) {
    let store = InMemoryBlockstore::new();
    let imported =
        pollster::block_on(unixfs::import_file(bytes, &store, options)).expect("import works");
    (store, imported)
}

fn export(store: &InMemoryBlockstore<64>, root: &Cid) -> Vec<u8> {
    let mut out = Vec::new();
    pollster::block_on(unixfs::export_file(store, root, &mut out)).expect("export works");
    out
}

fn small_chunks(chunk_size: usize) -> ImportOptions {
    ImportOptions {
        chunk_size,
        ..ImportOptions::default()
    }
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no data files.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn empty_file_matches_kubo_v0_and_v1() {
    let (_, v0) = import(b"", &ImportOptions::cid_v0());
    assert_eq!(
        v0.root.to_string(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
    let (store, v1) = import(b"", &ImportOptions::default());
    assert_eq!(
        v1.root.to_string(),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
    assert_eq!((v1.size, v1.blocks), (0, 1));
    assert!(export(&store, &v1.root).is_empty());
}

#[test]
fn hello_world_matches_kubo_v0_and_v1() {
    // kubo: `echo "hello world" | ipfs add` (with the newline) and `ipfs add --cid-version=1`
    // of "hello world" (without it); the other two were computed independently with Python's
    // hashlib and base58/base32 from the same leaf encodings.
    let cases: [(&[u8], ImportOptions, &str); 4] = [
        (
            b"hello world\n",
            ImportOptions::cid_v0(),
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        ),
        (
            b"hello world",
            ImportOptions::cid_v0(),
            "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD",
        ),
        (
            b"hello world",
            ImportOptions::default(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
        ),
        (
            b"hello world\n",
            ImportOptions::default(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
        ),
    ];
    for (bytes, options, want) in cases {
        let (store, imported) = import(bytes, &options);
        assert_eq!(
            imported.root.to_string(),
            want,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(export(&store, &imported.root), bytes);
    }
}

#[test]
fn fixture_multi_chunk_file_reimports_to_the_same_cid() {
    // dir-with-files.car holds a 1026-byte file made of raw leaves 256+256+256+256+2: kubo's
    // balanced layout with a 256-byte chunker (not the default), CIDv1.
    let (store, _) = common::load_fixture("dir-with-files.car");
    let root: Cid = "bafybeigcisqd7m5nf3qmuvjdbakl5bdnh4ocrmacaqkpuh77qjvggmt2sa"
        .parse()
        .unwrap();
    let bytes = export(&store, &root);
    assert_eq!(bytes.len(), 1026);
    let (_, imported) = import(&bytes, &small_chunks(256));
    assert_eq!(imported.root, root);
    assert_eq!(imported.blocks, 6);
}

#[test]
fn fixture_cidv0_leaves_and_root_match_our_encoding() {
    // file-3k-and-3-blocks-missing-block.car: a CIDv0 file of three 1024-byte dag-pb leaves
    // (kubo's CIDv0 layout with a 1024-byte chunker); one leaf is missing from the CAR.
    let (store, summary) = common::load_fixture("file-3k-and-3-blocks-missing-block.car");
    let root = summary.header.roots[0];
    let root_node = dagpb::decode(&pollster::block_on(store.get(&root)).unwrap().unwrap()).unwrap();
    let mut present = 0;
    for link in &root_node.links {
        assert_eq!(
            link.tsize,
            Some(1035),
            "1024 bytes + UnixFS and dag-pb framing"
        );
        let Some(block) = pollster::block_on(store.get(&link.hash)).unwrap() else {
            continue;
        };
        present += 1;
        let node = dagpb::decode(&block).unwrap();
        assert_eq!(dagpb::encode(&node), block);
        // Pull the chunk out of the leaf by exporting it, and re-import it as one chunk.
        let chunk = export(&store, &link.hash);
        assert_eq!(chunk.len(), 1024);
        let (_, leaf) = import(&chunk, &ImportOptions::cid_v0());
        assert_eq!(leaf.root, link.hash);
    }
    assert_eq!(present, 2);
    // The whole file cannot be exported: the error names the missing block.
    let mut out = Vec::new();
    match pollster::block_on(unixfs::export_file(&store, &root, &mut out)) {
        Err(UnixfsError::MissingBlock { cid }) => {
            assert!(root_node.links.iter().any(|l| l.hash == *cid));
        }
        other => panic!("expected a missing block, got {other:?}"),
    }
}

#[test]
fn every_fixture_dag_pb_block_reencodes_byte_identically() {
    let mut checked = 0;
    for entry in std::fs::read_dir(common::fixtures_dir()).expect("fixtures folder") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(reader) = car::Reader::new(&bytes[..]) else {
            continue;
        };
        for section in reader.map_while(Result::ok) {
            if section.cid.codec() == dagpb::CODEC {
                let node = dagpb::decode(&section.data).expect("fixture dag-pb decodes");
                assert_eq!(dagpb::encode(&node), section.data, "{}", section.cid);
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} dag-pb blocks found");
}

#[test]
fn fixture_directories_export_and_reimport_to_the_same_root() {
    // (fixture, options it was made with)
    let cases = [
        ("simple-unixfs.car", ImportOptions::cid_v0()),
        ("dag-pb.car", ImportOptions::default()),
        ("dir-with-files.car", small_chunks(256)),
    ];
    for (name, options) in cases {
        let (store, summary) = common::load_fixture(name);
        let root = summary.header.roots[0];
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        pollster::block_on(unixfs::export_path(&store, &root, &dest)).expect(name);
        let fresh = InMemoryBlockstore::<64>::new();
        let imported =
            pollster::block_on(unixfs::import_path(&dest, &fresh, &options)).expect(name);
        assert_eq!(imported.root, root, "{name}");
    }
}

#[test]
fn directory_round_trips_through_a_temp_dir_with_sorted_links() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("b.txt"), b"bee").unwrap();
    std::fs::write(src.join("a.txt"), b"ay").unwrap();
    std::fs::write(src.join("B-upper"), pseudo_random(700_000, 1)).unwrap();
    std::fs::write(src.join("sub/deeper/empty"), b"").unwrap();
    std::fs::write(src.join(".hidden"), b"skipped by default").unwrap();
    let store = InMemoryBlockstore::<64>::new();
    let imported =
        pollster::block_on(unixfs::import_path(&src, &store, &ImportOptions::default())).unwrap();
    assert_eq!(imported.root.version(), cid::Version::V1);
    assert_eq!(imported.root.codec(), dagpb::CODEC);
    let root = dagpb::decode(
        &pollster::block_on(store.get(&imported.root))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let names: Vec<_> = root
        .links
        .iter()
        .map(|l| String::from_utf8(l.name.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(
        names,
        ["B-upper", "a.txt", "b.txt", "sub"],
        "bytewise order, no dot-files"
    );
    assert_eq!(root.data.as_deref(), Some(&[0x08, 0x01][..]));

    let dest = dir.path().join("dest");
    pollster::block_on(unixfs::export_path(&store, &imported.root, &dest)).unwrap();
    for file in ["a.txt", "b.txt", "B-upper", "sub/deeper/empty"] {
        assert_eq!(
            std::fs::read(dest.join(file)).unwrap(),
            std::fs::read(src.join(file)).unwrap()
        );
    }
    assert!(!dest.join(".hidden").exists());
    let again = pollster::block_on(unixfs::import_path(
        &dest,
        &store,
        &ImportOptions::default(),
    ))
    .unwrap();
    assert_eq!(again.root, imported.root);
}

#[test]
fn default_chunking_cuts_256_kib_raw_leaves() {
    let bytes = pseudo_random(600_000, 7);
    let (store, imported) = import(&bytes, &ImportOptions::default());
    let root = dagpb::decode(
        &pollster::block_on(store.get(&imported.root))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(root.links.len(), 3);
    for link in &root.links {
        assert_eq!(link.hash.codec(), unixfs::RAW_CODEC);
        assert_eq!(link.name.as_deref(), Some(&b""[..]));
    }
    let tsizes: Vec<_> = root.links.iter().map(|l| l.tsize.unwrap()).collect();
    assert_eq!(tsizes, [262_144, 262_144, 75_712]);
    // Data: File, filesize 600000, blocksizes 262144, 262144, 75712 (unpacked).
    let mut want = vec![0x08, 0x02, 0x18, 0xc0, 0xcf, 0x24];
    for size in [[0x80, 0x80, 0x10], [0x80, 0x80, 0x10], [0xc0, 0xcf, 0x04]] {
        want.push(0x20);
        want.extend_from_slice(&size);
    }
    assert_eq!(root.data.as_deref(), Some(&want[..]));
    assert_eq!(export(&store, &imported.root), bytes);
    let (v0_store, v0) = import(&bytes, &ImportOptions::cid_v0());
    assert_eq!(v0.root.version(), cid::Version::V0);
    assert_eq!(export(&v0_store, &v0.root), bytes);
}

/// Walks a file DAG breadth-first and returns, per depth, the link count of each internal node,
/// checking every internal node's Tsizes and blocksizes against its children on the way.
fn tree_shape(store: &InMemoryBlockstore<64>, root: &Cid) -> Vec<Vec<usize>> {
    let mut shape: Vec<Vec<usize>> = Vec::new();
    let mut queue = VecDeque::from([(*root, 0usize)]);
    while let Some((cid, depth)) = queue.pop_front() {
        let block = pollster::block_on(store.get(&cid)).unwrap().unwrap();
        if cid.codec() == unixfs::RAW_CODEC {
            continue;
        }
        let node = dagpb::decode(&block).unwrap();
        if shape.len() <= depth {
            shape.push(Vec::new());
        }
        shape[depth].push(node.links.len());
        // Each link's Tsize is the child's block plus its own links' Tsizes; each blocksize is
        // the content bytes below that child.
        let data = node.data.clone().unwrap();
        let mut blocksizes = Vec::new();
        for link in &node.links {
            let child = pollster::block_on(store.get(&link.hash)).unwrap().unwrap();
            let (child_tsize, child_size) = if link.hash.codec() == unixfs::RAW_CODEC {
                (child.len() as u64, child.len() as u64)
            } else {
                let child_node = dagpb::decode(&child).unwrap();
                let tsizes: u64 = child_node.links.iter().map(|l| l.tsize.unwrap()).sum();
                let mut out = Vec::new();
                pollster::block_on(unixfs::export_file(store, &link.hash, &mut out)).unwrap();
                (child.len() as u64 + tsizes, out.len() as u64)
            };
            assert_eq!(link.tsize, Some(child_tsize));
            blocksizes.push(child_size);
            queue.push_back((link.hash, depth + 1));
        }
        let mut want = vec![0x08, 0x02, 0x18];
        push_varint(&mut want, blocksizes.iter().sum());
        for size in blocksizes {
            want.push(0x20);
            push_varint(&mut want, size);
        }
        assert_eq!(data, want, "{cid}");
    }
    shape
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[test]
fn balanced_layout_over_174_chunks_has_kubo_shape() {
    // 174 * 2 + 5 chunks: depth 2, the root holds two full nodes and one with 5 leaves.
    let bytes = pseudo_random(16 * (174 * 2 + 5), 3);
    let (store, imported) = import(&bytes, &small_chunks(16));
    assert_eq!(
        tree_shape(&store, &imported.root),
        [vec![3], vec![174, 174, 5]]
    );
    assert_eq!(export(&store, &imported.root), bytes);
    assert_eq!(imported.blocks, 353 + 3 + 1);

    // Exactly 174 chunks fill one node; one more chunk adds a level with a single-child node.
    let (store, imported) = import(&bytes[..16 * 174], &small_chunks(16));
    assert_eq!(tree_shape(&store, &imported.root), [vec![174]]);
    let (store, imported) = import(&bytes[..16 * 175], &small_chunks(16));
    assert_eq!(tree_shape(&store, &imported.root), [vec![2], vec![174, 1]]);
}

#[test]
fn balanced_layout_grows_a_third_level_after_174_squared_chunks() {
    let chunks = 174 * 174 + 1;
    let bytes = pseudo_random(4 * chunks, 5);
    let (store, imported) = import(&bytes, &small_chunks(4));
    let shape = tree_shape(&store, &imported.root);
    assert_eq!(shape.len(), 3);
    assert_eq!(shape[0], [2]);
    assert_eq!(shape[1], [174, 1]);
    assert_eq!(shape[2].len(), 175);
    assert!(shape[2][..174].iter().all(|&n| n == 174));
    assert_eq!(shape[2][174], 1);
    assert_eq!(export(&store, &imported.root), bytes);
}

#[test]
fn export_rejects_a_corrupted_block_naming_both_cids() {
    let (store, imported) = import(&pseudo_random(1000, 9), &small_chunks(100));
    let root = dagpb::decode(
        &pollster::block_on(store.get(&imported.root))
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let victim = root.links[3].hash;
    pollster::block_on(store.remove(&victim)).unwrap();
    pollster::block_on(store.put_keyed(&victim, b"tampered")).unwrap();
    let mut out = Vec::new();
    match pollster::block_on(unixfs::export_file(&store, &imported.root, &mut out)) {
        Err(UnixfsError::Block(BlockError::Mismatch { expected, actual })) => {
            assert_eq!(*expected, victim);
            assert_eq!(
                *actual,
                blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"tampered").unwrap()
            );
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn hamt_sharded_directory_exports_its_entries() {
    // A two-level HAMT (fanout 256, murmur3 0x22) built by hand: the root holds "0Ahello.txt" and a
    // sub-shard "1F" that holds "05world.txt". Export reads entries by stripping the two-digit
    // prefix; the bitfield is not needed to read.
    let store = InMemoryBlockstore::<64>::new();
    let put_raw = |bytes: &[u8]| {
        let cid = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, bytes).unwrap();
        pollster::block_on(blocks::put_verified(&store, &cid, bytes)).unwrap();
        cid
    };
    let hello = put_raw(b"hello");
    let world = put_raw(b"world");
    let shard_data = vec![0x08, 0x05, 0x28, 0x22, 0x30, 0x80, 0x02];
    let put_node = |links: Vec<(&str, Cid)>| {
        let node = dagpb::PbNode {
            links: links
                .into_iter()
                .map(|(name, hash)| dagpb::PbLink {
                    hash,
                    name: Some(name.into()),
                    tsize: Some(5),
                })
                .collect(),
            data: Some(shard_data.clone()),
        };
        let bytes = dagpb::encode(&node);
        let cid = blocks::cid_of(cid::Version::V1, 0x70, blocks::SHA2_256, &bytes).unwrap();
        pollster::block_on(blocks::put_verified(&store, &cid, &bytes)).unwrap();
        cid
    };
    let sub = put_node(vec![("05world.txt", world)]);
    let root = put_node(vec![("0Ahello.txt", hello), ("1F", sub)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("hamt");
    pollster::block_on(unixfs::export_path(&store, &root, &dest)).unwrap();
    assert_eq!(std::fs::read(dest.join("hello.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(dest.join("world.txt")).unwrap(), b"world");
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 2);
}

#[test]
fn export_refuses_entry_names_that_escape_the_directory() {
    let store = InMemoryBlockstore::<64>::new();
    let file = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"x").unwrap();
    pollster::block_on(blocks::put_verified(&store, &file, b"x")).unwrap();
    for bad in ["..", "a/b", ""] {
        let node = dagpb::PbNode {
            links: vec![dagpb::PbLink {
                hash: file,
                name: Some(bad.into()),
                tsize: Some(1),
            }],
            data: Some(vec![0x08, 0x01]),
        };
        let bytes = dagpb::encode(&node);
        let cid = blocks::cid_of(cid::Version::V1, 0x70, blocks::SHA2_256, &bytes).unwrap();
        pollster::block_on(blocks::put_verified(&store, &cid, &bytes)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let result = pollster::block_on(unixfs::export_path(&store, &cid, &dir.path().join("d")));
        assert!(
            matches!(&result, Err(UnixfsError::InvalidName { name, .. }) if name == bad),
            "{bad:?}: {result:?}"
        );
    }
}

#[test]
fn export_refuses_entry_names_that_are_not_utf8() {
    // go-codec-dagpb accepts any name bytes, so the block decodes; the exporter cannot make a
    // path component of them and says which name (shown lossily) in which directory.
    let store = InMemoryBlockstore::<64>::new();
    let file = put_raw(&store, b"x");
    let dir_cid = put_pb_node(
        &store,
        &dagpb::PbNode {
            links: vec![dagpb::PbLink {
                hash: file,
                name: Some(vec![b'a', 0xff]),
                tsize: Some(1),
            }],
            data: Some(vec![0x08, 0x01]),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let result = pollster::block_on(unixfs::export_path(&store, &dir_cid, &dir.path().join("d")));
    assert!(
        matches!(&result, Err(UnixfsError::InvalidName { cid, name }) if **cid == dir_cid && name == "a\u{fffd}"),
        "{result:?}"
    );
}

#[test]
fn invalid_dag_pb_is_reported_with_the_codec_error_as_source() {
    use std::error::Error as _;

    let store = InMemoryBlockstore::<64>::new();
    // Data twice: go-codec-dagpb rejects it; the second tag is at offset 3.
    let bytes = [0x0a, 0x01, 0x08, 0x0a, 0x00];
    let cid = blocks::cid_of(cid::Version::V1, 0x70, blocks::SHA2_256, &bytes).unwrap();
    pollster::block_on(blocks::put_verified(&store, &cid, &bytes)).unwrap();
    let mut out = Vec::new();
    let result = pollster::block_on(unixfs::export_file(&store, &cid, &mut out));
    let Err(error @ UnixfsError::DagPb { .. }) = &result else {
        panic!("expected a dag-pb error, got {result:?}");
    };
    let source = error
        .source()
        .and_then(|s| s.downcast_ref::<dagpb::DecodeError>());
    assert!(
        matches!(
            source,
            Some(dagpb::DecodeError::Duplicate {
                offset: 3,
                field: "Data"
            })
        ),
        "{source:?}"
    );
}

#[test]
fn file_node_with_data_before_links_exports_as_go_reads_it() {
    // Old IPFS data may put Data before Links; go-codec-dagpb reads it, so the exporter does.
    let store = InMemoryBlockstore::<64>::new();
    let leaf = put_raw(&store, b"abc");
    let node = dagpb::PbNode {
        links: vec![link(leaf, ""), link(leaf, "")],
        // File, filesize 6, blocksizes 3 and 3.
        data: Some(vec![0x08, 0x02, 0x18, 6, 0x20, 3, 0x20, 3]),
    };
    let go_order = dagpb::encode(&node);
    let data_len = 2 + 8;
    let mut data_first = go_order[go_order.len() - data_len..].to_vec();
    data_first.extend_from_slice(&go_order[..go_order.len() - data_len]);
    let root = blocks::cid_of(cid::Version::V1, 0x70, blocks::SHA2_256, &data_first).unwrap();
    pollster::block_on(blocks::put_verified(&store, &root, &data_first)).unwrap();
    assert_eq!(export(&store, &root), b"abcabc");
}

#[test]
fn imported_dag_pb_blocks_decode_with_the_selector_codec_into_go_field_order() {
    // The same blocks the importer writes are what the selector traversal reads.
    let options = ImportOptions {
        chunk_size: 256,
        ..ImportOptions::cid_v0()
    };
    let (store, imported) = import(&[7u8; 600], &options);
    let block = pollster::block_on(store.get(&imported.root))
        .unwrap()
        .unwrap();
    let node = ipld_selector::codec::decode_block(
        &imported.root,
        &block,
        &ipld_dagcbor::Limits::default(),
    )
    .expect("the importer's root decodes");
    let map = node.as_map().expect("a map");
    let keys: Vec<String> = map.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["Links", "Data"]);
    let typed = dagpb::decode(&block).unwrap();
    assert_eq!(typed.to_node(), node);
    assert_eq!(typed.links.len(), 3);
}

fn put_raw(store: &InMemoryBlockstore<64>, bytes: &[u8]) -> Cid {
    let cid = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, bytes).unwrap();
    pollster::block_on(blocks::put_verified(store, &cid, bytes)).unwrap();
    cid
}

fn put_pb_node(store: &InMemoryBlockstore<64>, node: &dagpb::PbNode) -> Cid {
    let bytes = dagpb::encode(node);
    let cid = blocks::cid_of(cid::Version::V1, 0x70, blocks::SHA2_256, &bytes).unwrap();
    pollster::block_on(blocks::put_verified(store, &cid, &bytes)).unwrap();
    cid
}

fn link(hash: Cid, name: &str) -> dagpb::PbLink {
    dagpb::PbLink {
        hash,
        name: Some(name.into()),
        tsize: Some(8),
    }
}

#[test]
fn file_that_grows_past_its_declared_size_stops_early() {
    let store = InMemoryBlockstore::<64>::new();
    let leaf = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"12345678").unwrap();
    pollster::block_on(blocks::put_verified(&store, &leaf, b"12345678")).unwrap();
    // File, filesize 10, three links to the same 8-byte leaf.
    let root = put_pb_node(
        &store,
        &dagpb::PbNode {
            links: vec![link(leaf, ""), link(leaf, ""), link(leaf, "")],
            data: Some(vec![0x08, 0x02, 0x18, 10]),
        },
    );
    let mut out = Vec::new();
    let result = pollster::block_on(unixfs::export_file(&store, &root, &mut out));
    assert!(
        matches!(
            result,
            Err(UnixfsError::SizeMismatch {
                declared: 10,
                actual: 16,
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        out, b"12345678",
        "nothing past the declared size is written"
    );
}

#[cfg(unix)]
#[test]
fn export_never_writes_through_a_symlink_it_created() {
    let store = InMemoryBlockstore::<64>::new();
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    let target = outside.to_str().unwrap().as_bytes();
    let mut symlink_data = vec![0x08, 0x04, 0x12, target.len() as u8];
    symlink_data.extend_from_slice(target);
    let symlink = put_pb_node(
        &store,
        &dagpb::PbNode {
            links: vec![],
            data: Some(symlink_data),
        },
    );
    let file = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"payload").unwrap();
    pollster::block_on(blocks::put_verified(&store, &file, b"payload")).unwrap();
    let root = put_pb_node(
        &store,
        &dagpb::PbNode {
            links: vec![link(symlink, "x"), link(file, "x")],
            data: Some(vec![0x08, 0x01]),
        },
    );
    let result = pollster::block_on(unixfs::export_path(&store, &root, &dir.path().join("d")));
    assert!(matches!(result, Err(UnixfsError::Io { .. })), "{result:?}");
    assert!(!outside.exists(), "the symlink's target was not created");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 32, ..Default::default() })]

    #[test]
    fn any_bytes_round_trip_through_import_and_export(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
        chunk_size in 1usize..300,
        max_links in 2usize..6,
        v0 in proptest::bool::ANY,
    ) {
        let base = if v0 { ImportOptions::cid_v0() } else { ImportOptions::default() };
        let options = ImportOptions { chunk_size, max_links, ..base };
        let (store, imported) = import(&bytes, &options);
        proptest::prop_assert_eq!(imported.size, bytes.len() as u64);
        proptest::prop_assert_eq!(export(&store, &imported.root), bytes);
    }
}
