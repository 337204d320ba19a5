//! Helpers shared by the integration tests: reading the shared specification.

#![allow(dead_code)]

use std::path::PathBuf;

/// The shared reference folder beside the repository; a missing folder fails the test.
pub(crate) fn shared_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    assert!(
        dir.is_dir(),
        "the shared reference folder must exist beside the repository: {}",
        dir.display()
    );
    dir
}

/// The text of `shared/spec/data-transfer.md`.
pub(crate) fn spec_text() -> String {
    let path = shared_dir().join("spec/data-transfer.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// The lines of the section whose heading starts with `heading` (up to the next heading).
pub(crate) fn section(text: &str, heading: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|line| !line.starts_with(heading));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("section {heading:?} is missing from the spec"));
    assert!(first.starts_with(heading));
    lines
        .take_while(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The cells of the markdown table rows of a section, header and separator rows excluded.
pub(crate) fn table_rows(lines: &[String]) -> Vec<Vec<String>> {
    lines
        .iter()
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// A name in backticks, `` `Name` `` → `Name`.
pub(crate) fn unquote(cell: &str) -> String {
    cell.trim().trim_matches('`').to_owned()
}
