//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use blockstore::InMemoryBlockstore;
use dag_io::car;

/// The shared CAR fixtures folder (it must exist: CI puts `shared/` beside the repository).
pub(crate) fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/car"
    ))
}

/// Imports a fixture into a fresh in-memory store.
pub(crate) fn load_fixture(name: &str) -> (InMemoryBlockstore<64>, car::ImportSummary) {
    let bytes = std::fs::read(fixtures_dir().join(name)).expect("fixture is readable");
    let store = InMemoryBlockstore::new();
    let summary = pollster::block_on(car::import(&bytes[..], &store)).expect("fixture imports");
    (store, summary)
}
