//! Reopening a sled database whose last handle is still being dropped elsewhere.

use std::time::{Duration, Instant};

use datatransfer_store::{ChannelStore, Config, SledStore, StoreError};

#[test]
fn open_waits_for_a_handle_that_another_thread_is_about_to_drop()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let first = SledStore::open(dir.path(), Config::default())?;
    let lingering = first.clone();
    drop(first);
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(lingering);
    });
    let again = SledStore::open(dir.path(), Config::default())?;
    assert!(again.list()?.is_empty());
    assert!(dropper.join().is_ok(), "the dropping thread panicked");
    Ok(())
}

#[test]
fn open_fails_once_the_lock_wait_has_passed() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let _held = SledStore::open(dir.path(), Config::default())?;
    let wait = Duration::from_millis(150);
    let started = Instant::now();
    let refused = SledStore::open(dir.path(), Config::default().with_lock_wait(wait));
    assert!(
        matches!(
            refused,
            Err(StoreError::Backend {
                operation: "open",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        started.elapsed() >= wait,
        "gave up after {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn without_a_lock_wait_a_held_directory_fails_at_once() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let held = SledStore::open(dir.path(), Config::default())?;
    let lingering = held.clone();
    drop(held);
    let refused = SledStore::open(dir.path(), Config::default().with_lock_wait(Duration::ZERO));
    assert!(
        refused.is_err(),
        "the lingering handle still holds the lock"
    );
    drop(lingering);
    Ok(())
}
