//! UnixFS import against root CIDs from the Go reference importer (boxo's balanced layout with
//! kubo's `ipfs add` defaults), on pseudo-random files both sides generate the same way.
//!
//! The expected values come from `interop/go-peer` (go-graphsync v0.18.1's boxo v0.41.0):
//!
//! ```text
//! go-peer genfile SIZE f && go-peer import --cid-version 1 f && go-peer import --cid-version 0 f
//! ```
//!
//! `--cid-version 1` implies raw leaves, as in kubo; `--cid-version 0` keeps dag-pb leaves.

use blockstore::InMemoryBlockstore;
use dag_io::unixfs::{self, ImportOptions};

/// One reference file: its size, then the Go importer's root and block count for kubo's CIDv1
/// (raw leaves) and CIDv0 defaults.
struct Reference {
    size: usize,
    v1: &'static str,
    v0: &'static str,
    blocks: u64,
}

/// Sizes: one byte, less than a chunk, exactly one chunk, one byte over, four chunks and a
/// short one, and 174 chunks plus one byte (the 175th leaf forces a second tree level).
const REFERENCES: &[Reference] = &[
    Reference {
        size: 1,
        v1: "bafkreia7ddlfbuqf24ozgtbwi37v7la4bfv2klv2jt3vrodfgzhucz6tzu",
        v0: "QmVpcc1GE2G1EivJqzdQJd9mu6WvD8NTcMRhUGUrSVyfrQ",
        blocks: 1,
    },
    Reference {
        size: 1000,
        v1: "bafkreigv2z5cbqsqwuqtipqklvvpjb3btxojkxx2np55dyjbfvfjlzqwwi",
        v0: "QmNpGnxYAtwifvx6cnNHMVWQbCY7s1Anfwo9m5RoDGuSiq",
        blocks: 1,
    },
    Reference {
        size: 262_144,
        v1: "bafkreich7bsogflrcy3cvrewa3onyc6mghj7xphhi63wbjywluk3chz6ea",
        v0: "QmNSkt7vXnHxbbR9g3kMb8qNj3BxxF81WpgFthZS4vSAsS",
        blocks: 1,
    },
    Reference {
        size: 262_145,
        v1: "bafybeie65g77jlrdqfn6mnv2jqzt3y5klhoksvo6io4hrouus26ztx7tmq",
        v0: "QmY4gqauiT8Z61rsZNqJmdd1Ecu4sRr3fxaa4QNav38xiR",
        blocks: 3,
    },
    Reference {
        size: 1_048_583,
        v1: "bafybeibgbydeqyy6krbzzs5lauisi2egu4uxxf7zgh3opszje6fojgitym",
        v0: "QmcVh5eq13vkPBwq5kt7f7uxoFZUmAwNXL7H7zsUFT7fo1",
        blocks: 6,
    },
    Reference {
        size: 174 * 262_144 + 1,
        v1: "bafybeihp7fjt4vtp4vsrg4r45c4msktn3hno5euelxg64vq6f7c4ecddfy",
        v0: "Qmc1pnX7WCBeaRxfv5Dr3aKGoP4ziqBnm61pxaGcVijypf",
        blocks: 178,
    },
];

/// `size` bytes of xorshift64* output seeded with `size` (1 for 0): byte `i` is byte `i % 8`,
/// little-endian, of output `i / 8`. Identical to `go-peer genfile`.
fn pseudo_random(size: usize) -> Vec<u8> {
    let mut state = u64::try_from(size).expect("sizes fit in u64").max(1);
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(size);
    out
}

fn import(bytes: &[u8], options: &ImportOptions) -> unixfs::Imported {
    let store = InMemoryBlockstore::<64>::new();
    pollster::block_on(unixfs::import_file(bytes, &store, options)).expect("import works")
}

#[test]
fn generator_matches_the_go_peer_bytes() {
    // The first 16 bytes for size 16, as `go-peer genfile 16` writes them.
    let expected = [
        0x44, 0x46, 0x81, 0xd4, 0xfd, 0xb6, 0x64, 0x13, 0x61, 0xa3, 0xb6, 0xac, 0x7b, 0xca, 0xdc,
        0xec,
    ];
    assert_eq!(pseudo_random(16), expected);
    assert_eq!(pseudo_random(1000).len(), 1000);
}

#[test]
fn cid_v1_raw_leaves_roots_match_the_go_importer() {
    for reference in REFERENCES {
        let imported = import(&pseudo_random(reference.size), &ImportOptions::default());
        assert_eq!(
            (
                imported.root.to_string().as_str(),
                imported.blocks,
                imported.size
            ),
            (reference.v1, reference.blocks, reference.size as u64),
            "cid v1, size {}",
            reference.size
        );
    }
}

#[test]
fn cid_v0_roots_match_the_go_importer() {
    for reference in REFERENCES {
        let imported = import(&pseudo_random(reference.size), &ImportOptions::cid_v0());
        assert_eq!(
            (
                imported.root.to_string().as_str(),
                imported.blocks,
                imported.size
            ),
            (reference.v0, reference.blocks, reference.size as u64),
            "cid v0, size {}",
            reference.size
        );
    }
}
