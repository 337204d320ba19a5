//! Every status and event code and name, checked against the tables of
//! `spec/data-transfer.md` §5.1–§5.2 and the name maps of the v1.15.1 API listing.

mod common;

use datatransfer_fsm::{ChannelStatus, EventCode};

#[test]
fn every_status_code_and_name_matches_the_spec_table() {
    let text = common::spec_text();
    let rows = common::table_rows(&common::section(&text, "### 5.1 Status codes"));
    assert_eq!(rows.len(), ChannelStatus::ALL.len(), "one row per status");
    for row in rows {
        let code: u64 = row[0].parse().expect("status codes are integers");
        let name = common::unquote(&row[1]);
        let status = ChannelStatus::from_code(code)
            .unwrap_or_else(|| panic!("no status for code {code} ({name})"));
        assert_eq!(status.name(), name, "code {code}");
        assert_eq!(status.to_string(), name);
    }
}

#[test]
fn every_event_code_and_name_matches_the_spec_table() {
    let text = common::spec_text();
    let rows = common::table_rows(&common::section(&text, "### 5.2 Event codes"));
    let mut seen = Vec::new();
    for row in rows {
        // Two (value, name) pairs per row; the second may be empty.
        for pair in row.chunks(2) {
            if pair[0].is_empty() {
                continue;
            }
            let code: u32 = pair[0].parse().expect("event codes are integers");
            let name = common::unquote(pair[1].split_whitespace().next().unwrap_or(""));
            let event = EventCode::from_code(code)
                .unwrap_or_else(|| panic!("no event for code {code} ({name})"));
            assert_eq!(event.name(), name, "code {code}");
            seen.push(code);
        }
    }
    seen.sort_unstable();
    let expected: Vec<u32> = (0..EventCode::ALL.len() as u32).collect();
    assert_eq!(seen, expected, "the spec lists every event exactly once");
}

/// The entries of a Go `var Name = map[K]string{ K: "V", … }` block in the API listing.
fn go_name_map(listing: &str, var: &str) -> Vec<(String, String)> {
    let start = listing
        .find(&format!("var {var} = map["))
        .unwrap_or_else(|| panic!("map {var} missing from the API listing"));
    listing[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.trim() != "}")
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(':')?;
            Some((
                key.trim().to_owned(),
                value
                    .trim()
                    .trim_end_matches(',')
                    .trim_matches('"')
                    .to_owned(),
            ))
        })
        .collect()
}

fn api_listing() -> String {
    let path = common::shared_dir().join("seed/go-data-transfer-v1.15.1-api.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[test]
fn status_names_match_the_go_statuses_map() {
    let entries = go_name_map(&api_listing(), "Statuses");
    assert_eq!(entries.len(), ChannelStatus::ALL.len());
    for (key, value) in entries {
        let status = ChannelStatus::ALL
            .into_iter()
            .find(|status| status.name() == key)
            .unwrap_or_else(|| panic!("no status named {key}"));
        assert_eq!(status.name(), value);
    }
}

#[test]
fn event_names_match_the_go_events_map_which_lacks_opened() {
    let entries = go_name_map(&api_listing(), "Events");
    assert_eq!(
        entries.len(),
        EventCode::ALL.len() - 1,
        "Opened has no entry"
    );
    for event in EventCode::ALL {
        let entry = entries.iter().find(|(key, _)| key == event.name());
        assert_eq!(
            entry.map(|(_, value)| value.as_str()),
            event.go_events_name(),
            "{event}"
        );
    }
}
