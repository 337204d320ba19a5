//! Helpers shared by the integration tests: the vector folder and hex.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The shared vector folder, beside the repository. A missing folder fails the test.
pub fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/vectors"
    ));
    assert!(dir.is_dir(), "vector folder {} is missing", dir.display());
    dir
}

/// Reads `<dir>/<name>.hex` as bytes.
pub fn read_hex_file(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    from_hex(text.trim())
}

/// Bytes from lowercase or uppercase hex; panics on malformed test data.
pub fn from_hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex is valid"))
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
