//! CAR import over every file in the shared fixtures folder, plus malformed-input properties.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use blockstore::{Blockstore, InMemoryBlockstore};
use cid::Cid;
use dag_io::blocks::{self, BlockError};
use dag_io::car::{self, CarError, Reader, Writer};
use proptest::prelude::*;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/car"
    ))
}

/// What a fixture must do.
enum Expect {
    /// Imports with these roots and this many sections.
    Ok {
        version: u64,
        roots: &'static [&'static str],
        blocks: u64,
    },
    /// Fails with this error at this byte offset, after storing `stored` blocks.
    Err {
        offset: u64,
        stored: u64,
        check: fn(&CarError) -> bool,
    },
}

/// Expected results. The roots and section counts were obtained once with a small Python
/// script using only the standard library (walk the length-prefixed sections, count them, pull
/// the tag-42 CIDs out of the header); the failure offsets are where that script's walk stops.
fn expectations() -> BTreeMap<&'static str, Expect> {
    use Expect::{Err, Ok};
    BTreeMap::from([
        // Header length varint e0 e0 e0 e0 a7 06 = 216830324832 bytes.
        (
            "badheaderlength.car",
            Err {
                offset: 0,
                stored: 0,
                check: |e| {
                    matches!(
                        e,
                        CarError::BadHeaderLength {
                            length: 216830324832,
                            ..
                        }
                    )
                },
            },
        ),
        // Valid header (no roots), then a section length of 216830324832 bytes at offset 18.
        (
            "badsectionlength.car",
            Err {
                offset: 18,
                stored: 0,
                check: |e| {
                    matches!(
                        e,
                        CarError::BadSectionLength {
                            length: 216830324832,
                            ..
                        }
                    )
                },
            },
        ),
        (
            "dag-cbor-traversal.car",
            Ok {
                version: 1,
                roots: &["bafyreibs4utpgbn7uqegmd2goqz4bkyflre2ek2iwv743fhvylwi4zeeim"],
                blocks: 3,
            },
        ),
        (
            "dag-pb.car",
            Ok {
                version: 1,
                roots: &["bafybeiegxwlgmoh2cny7qlolykdf7aq7g6dlommarldrbm7c4hbckhfcke"],
                blocks: 4,
            },
        ),
        (
            "dir-with-files.car",
            Ok {
                version: 1,
                roots: &["bafybeihchr7vmgjaasntayyatmp5sv6xza57iy2h4xj7g46bpjij6yhrmy"],
                blocks: 9,
            },
        ),
        // A partial DAG is still a valid CAR: every block present is imported.
        (
            "file-3k-and-3-blocks-missing-block.car",
            Ok {
                version: 1,
                roots: &["QmYhmPjhFjYFyaoiuNzYv8WGavpSRDwdHWe5B4M5du5Rtk"],
                blocks: 3,
            },
        ),
        // The header claims 18 bytes but only 15 follow.
        (
            "sample-corrupt-pragma.car",
            Err {
                offset: 0,
                stored: 0,
                check: |e| matches!(e, CarError::Truncated { what: "header", .. }),
            },
        ),
        (
            "sample-unixfs-v2.car",
            Ok {
                version: 2,
                roots: &["bafybeiakgrehdxxgy5kca72znt6jllrj2sqkehtqeojfuxlbeuqg3vfkwq"],
                blocks: 3,
            },
        ),
        // sample-v1.car cut 13 bytes short: 1048 good sections, then a section whose body
        // runs past the end. go-car fails here too ("failed to read next block", unexpected
        // EOF); we fail with the section's offset, keeping the 1048 verified blocks stored.
        (
            "sample-v1-tailing-corrupt-section.car",
            Err {
                offset: 479518,
                stored: 1048,
                check: |e| {
                    matches!(
                        e,
                        CarError::Truncated {
                            what: "section",
                            ..
                        }
                    )
                },
            },
        ),
        (
            "sample-v1.car",
            Ok {
                version: 1,
                roots: &["bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"],
                blocks: 1049,
            },
        ),
        (
            "simple-unixfs-missing-blocks.car",
            Ok {
                version: 1,
                roots: &["QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"],
                blocks: 17,
            },
        ),
        (
            "simple-unixfs.car",
            Ok {
                version: 1,
                roots: &["QmPLPpnptHc1DMhJAWNYMTqBTqqRQNy5WsY7F9pZgsBfMT"],
                blocks: 22,
            },
        ),
        (
            "wikipedia-cryptographic-hash-function.car",
            Ok {
                version: 1,
                roots: &["bafybeiaysi4s6lnjev27ln5icwm6tueaw2vdykrtjkwiphwekaywqhcjze"],
                blocks: 5,
            },
        ),
    ])
}

fn error_offset(error: &CarError) -> Option<u64> {
    match error {
        CarError::Io { offset, .. }
        | CarError::Truncated { offset, .. }
        | CarError::InvalidVarint { offset }
        | CarError::BadHeaderLength { offset, .. }
        | CarError::BadSectionLength { offset, .. }
        | CarError::ZeroLengthSection { offset }
        | CarError::InvalidHeader { offset, .. }
        | CarError::UnsupportedVersion { offset, .. }
        | CarError::InvalidV2Header { offset, .. }
        | CarError::InvalidCid { offset, .. }
        | CarError::Block { offset, .. } => Some(*offset),
        _ => None,
    }
}

/// Counts the sections a plain `Reader` yields before it stops, and collects their CIDs.
fn read_all(path: &PathBuf) -> (Vec<Cid>, Option<CarError>) {
    let file = File::open(path).expect("fixture opens");
    let mut reader = match Reader::new(BufReader::new(file)) {
        Ok(reader) => reader,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut cids = Vec::new();
    loop {
        match reader.next_section() {
            Ok(Some(section)) => cids.push(section.cid),
            Ok(None) => return (cids, None),
            Err(e) => return (cids, Some(e)),
        }
    }
}

#[test]
fn every_fixture_imports_or_fails_with_offset_and_reason() {
    let dir = fixtures_dir();
    let mut expectations = expectations();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("shared/fixtures/car must exist beside the repo") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        let expect = expectations
            .remove(name.as_str())
            .unwrap_or_else(|| panic!("no expectation for new fixture {name}: add one"));
        seen += 1;
        let (cids, read_error) = read_all(&path);
        let store = InMemoryBlockstore::<64>::new();
        let file = File::open(&path).expect("fixture opens");
        let result = pollster::block_on(car::import(BufReader::new(file), &store));
        match expect {
            Expect::Ok {
                version,
                roots,
                blocks,
            } => {
                let summary = result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert!(read_error.is_none(), "{name}: {read_error:?}");
                assert_eq!(summary.header.version, version, "{name}");
                let want: Vec<Cid> = roots.iter().map(|r| r.parse().expect("root cid")).collect();
                assert_eq!(summary.header.roots, want, "{name}");
                assert_eq!(summary.blocks, blocks, "{name}");
                assert_eq!(cids.len() as u64, blocks, "{name}");
                let len = std::fs::metadata(&path).expect("metadata").len();
                if version == 1 {
                    assert_eq!(summary.bytes_read, len, "{name}: whole file read");
                }
                pollster::block_on(async {
                    for cid in &cids {
                        let block = blocks::get_verified(&store, cid).await.expect("verified");
                        assert!(block.is_some(), "{name}: {cid} stored");
                    }
                });
            }
            Expect::Err {
                offset,
                stored,
                check,
            } => {
                let error = result.expect_err(&name);
                assert!(check(&error), "{name}: unexpected error {error:?}");
                assert_eq!(error_offset(&error), Some(offset), "{name}: {error}");
                let message = error.to_string();
                assert!(
                    message.contains(&format!("offset {offset}")),
                    "{name}: {message}"
                );
                let read_error = read_error.expect("reader fails the same way");
                assert_eq!(error_offset(&read_error), Some(offset), "{name}");
                assert_eq!(cids.len() as u64, stored, "{name}");
                pollster::block_on(async {
                    for cid in &cids {
                        assert!(store.has(cid).await.expect("store"), "{name}: {cid} kept");
                    }
                });
            }
        }
    }
    assert!(
        expectations.is_empty(),
        "fixtures missing from the folder: {:?}",
        expectations.keys()
    );
    assert!(seen >= 13, "only {seen} fixtures found");
}

#[test]
fn carv2_payload_matches_its_inner_header() {
    let path = fixtures_dir().join("sample-unixfs-v2.car");
    let reader = Reader::new(File::open(path).expect("fixture")).expect("v2 header");
    let v2 = reader.header().v2.expect("a v2 header");
    // data offset 51 = 11-byte pragma + 40-byte header; the index follows the payload.
    assert_eq!(v2.data_offset, 51);
    assert_eq!(v2.data_offset + v2.data_size, v2.index_offset);
    assert_eq!(
        reader.offset(),
        51 + 59,
        "inner header: 1-byte length + 58 bytes"
    );
}

#[test]
fn block_with_wrong_bytes_is_rejected_naming_both_cids_and_not_stored() {
    let good = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"first").unwrap();
    let lie = blocks::cid_of(cid::Version::V1, 0x55, blocks::BLAKE3, b"promised").unwrap();
    let mut writer = Writer::new(Vec::new(), &[good]).unwrap();
    writer.write_block(&good, b"first").unwrap();
    let second_offset = writer.offset();
    writer.write_block(&lie, b"delivered").unwrap();
    let bytes = writer.finish().unwrap();

    let store = InMemoryBlockstore::<64>::new();
    let error = pollster::block_on(car::import(&bytes[..], &store)).unwrap_err();
    match &error {
        CarError::Block {
            offset,
            source: BlockError::Mismatch { expected, actual },
        } => {
            assert_eq!(*offset, second_offset);
            assert_eq!(**expected, lie);
            let delivered =
                blocks::cid_of(cid::Version::V1, 0x55, blocks::BLAKE3, b"delivered").unwrap();
            assert_eq!(**actual, delivered);
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    pollster::block_on(async {
        assert!(store.has(&good).await.unwrap());
        assert!(!store.has(&lie).await.unwrap());
    });
}

#[test]
fn writer_output_reimports_with_same_roots_and_blocks() {
    let data: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i) * 7]).collect();
    let cids: Vec<Cid> = data
        .iter()
        .map(|d| blocks::cid_of(cid::Version::V1, 0x55, blocks::BLAKE2B_256, d).unwrap())
        .collect();
    let mut writer = Writer::new(Vec::new(), &cids[..2]).unwrap();
    for (cid, d) in cids.iter().zip(&data) {
        writer.write_block(cid, d).unwrap();
    }
    let bytes = writer.finish().unwrap();
    let store = InMemoryBlockstore::<64>::new();
    let summary = pollster::block_on(car::import(&bytes[..], &store)).unwrap();
    assert_eq!(summary.header.roots, cids[..2]);
    assert_eq!(summary.blocks, 50);
    assert_eq!(
        summary.block_bytes,
        data.iter().map(|d| d.len() as u64).sum::<u64>()
    );
    assert_eq!(summary.bytes_read, bytes.len() as u64);
}

#[test]
fn zero_length_section_is_an_error_unless_configured_as_end() {
    let root = blocks::cid_of(cid::Version::V1, 0x55, blocks::SHA2_256, b"x").unwrap();
    let mut bytes = Writer::new(Vec::new(), &[root]).unwrap().finish().unwrap();
    let at = bytes.len() as u64;
    bytes.push(0);
    let store = InMemoryBlockstore::<64>::new();
    let error = pollster::block_on(car::import(&bytes[..], &store)).unwrap_err();
    assert!(matches!(error, CarError::ZeroLengthSection { offset } if offset == at));
    let config = car::Config {
        zero_length_section_as_eof: true,
        ..car::Config::default()
    };
    let summary = pollster::block_on(car::import_with(&bytes[..], &store, config)).unwrap();
    assert_eq!(summary.blocks, 0);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(reader) = Reader::new(&bytes[..]) {
            for section in reader {
                if section.is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn mutated_fixture_never_panics_and_never_stores_a_bad_block(
        flips in proptest::collection::vec((0usize..1933, any::<u8>()), 1..4),
    ) {
        let mut bytes = std::fs::read(fixtures_dir().join("simple-unixfs.car")).expect("fixture");
        for (at, value) in flips {
            bytes[at] ^= value | 1;
        }
        let store = InMemoryBlockstore::<64>::new();
        let _outcome = pollster::block_on(car::import(&bytes[..], &store));
        // Whatever was stored must verify.
        if let Ok(reader) = Reader::new(&bytes[..]) {
            for section in reader.flatten() {
                if let Some(stored) = pollster::block_on(store.get(&section.cid)).expect("store") {
                    prop_assert!(blocks::verify(&section.cid, &stored).is_ok());
                }
            }
        }
    }
}
