//! [`reuse_freed_buffers`] under glibc: a buffer freed and allocated again lands on pages the
//! process already has, so filling it again takes (almost) no page faults. Without the call,
//! glibc serves the first 2 MiB buffer by `mmap` and returns it on free, and the second from a
//! heap that has just grown onto fresh pages: 512 faults each time. Its own test binary, so
//! that no other test's allocations have raised the thresholds before.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use graphsync::network::{REUSE_FREED_BUFFERS_UP_TO, reuse_freed_buffers};

/// Above glibc's initial 128 KiB mmap threshold, below [`REUSE_FREED_BUFFERS_UP_TO`].
const BUFFER: usize = 2 << 20;

/// Minor page faults of this process so far (field 10 of `/proc/self/stat`).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    after_name
        .split(' ')
        .nth(7)
        .and_then(|field| field.parse().ok())
        .expect("a minor fault count")
}

fn fill_and_free(len: usize) {
    drop(std::hint::black_box(vec![0x5a_u8; len]));
}

#[test]
fn a_freed_buffer_is_filled_again_without_page_faults() {
    const { assert!(BUFFER < REUSE_FREED_BUFFERS_UP_TO) };
    reuse_freed_buffers();
    fill_and_free(BUFFER);

    let before = minor_faults();
    fill_and_free(BUFFER);
    let faults = minor_faults() - before;

    let pages = (BUFFER / 4096) as u64;
    assert!(
        faults < pages / 8,
        "filling a freed {BUFFER}-byte buffer again took {faults} page faults ({pages} pages)"
    );
}
