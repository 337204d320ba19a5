//! The `ChannelStore` suite against `MemStore` and a temporary `SledStore`, and sled's
//! durability settings.

use datatransfer_store::testing::{sample_state, suite};
use datatransfer_store::{ChannelStore, Config, MemStore, SledStore, StoreError};

#[test]
fn mem_store_passes_the_suite() {
    let store = MemStore::new();
    suite(|| store.clone());
}

#[test]
fn sled_store_passes_the_suite() {
    let dir = tempfile::tempdir().expect("temporary directory");
    suite(|| SledStore::open(dir.path(), Config::default()).expect("open sled"));
}

#[test]
fn sled_store_without_flush_per_write_passes_the_suite() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = Config::default().with_flush_every_write(false);
    suite(|| SledStore::open(dir.path(), config.clone()).expect("open sled"));
}

#[test]
fn flushing_every_write_is_the_default() {
    assert!(Config::default().flush_every_write);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(dir.path(), Config::default()).expect("open sled");
    assert_eq!(store.config(), &Config::default());
}

#[test]
fn a_second_open_of_the_same_directory_is_a_backend_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(dir.path(), Config::default()).expect("open sled");
    store.put(&sample_state(1)).expect("put");
    match SledStore::open(dir.path(), Config::default()) {
        Err(StoreError::Backend { operation, .. }) => assert_eq!(operation, "open"),
        Ok(_) => panic!("sled let two handles open one directory"),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn unencodable_states_are_refused_and_not_stored() {
    let store = MemStore::new();
    let mut state = sample_state(1);
    state.selector = ipld_dagcbor::Node::Integer(i128::MAX);
    assert!(matches!(
        store.put(&state),
        Err(StoreError::Unencodable { .. })
    ));
    assert_eq!(store.get(&state.channel_id).expect("get"), None);
}
