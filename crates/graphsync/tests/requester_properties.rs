//! Properties of the requester: any split of a correct response into messages completes with
//! exactly the DAG's blocks; arbitrary metadata and blocks never panic, never store an
//! unverified block, and end a request at most once.

mod requester_support;

use graphsync::requester::{Config, Outcome};
use graphsync::{Block, LinkAction, Metadatum, ResponseStatus};
use proptest::prelude::*;
use requester_support::{Fixture, Harness, PEER, response};

proptest! {
    #[test]
    fn any_split_of_the_correct_response_completes(cuts in proptest::collection::btree_set(1usize..6, 0..5)) {
        let fixture = Fixture::load();
        let metadata = fixture.full_metadata();
        let mut harness = Harness::new(Config::default());
        let id = harness.request_all(fixture.root.0);
        let mut bounds: Vec<usize> = vec![0];
        bounds.extend(cuts.iter().copied());
        bounds.push(metadata.len());
        let mut sent = std::collections::HashSet::new();
        for (index, window) in bounds.windows(2).enumerate() {
            let part: Vec<Metadatum> = metadata[window[0]..window[1]].to_vec();
            // Each block travels once, with the first entry that names it (Go's dedup).
            let blocks: Vec<Block> = part
                .iter()
                .filter(|entry| sent.insert(entry.link))
                .map(|entry| Block::from_cid(&entry.link, fixture.data(&entry.link)))
                .collect();
            let last = index + 2 == bounds.len();
            let status = if last { ResponseStatus::RequestCompletedFull } else { ResponseStatus::PartialResponse };
            harness.receive(PEER, response(id, status, part, blocks));
        }
        let completed = matches!(harness.outcome(id), Some(Outcome::Completed(c)) if c.missing.is_empty());
        prop_assert!(completed);
        prop_assert_eq!(harness.stored.len(), 4);
        prop_assert_eq!(harness.sent_kinds(id), vec!["n"]);
    }

    #[test]
    fn arbitrary_responses_never_store_unverified_blocks(
        messages in proptest::collection::vec(
            (
                proptest::collection::vec((0usize..5, 0usize..4), 0..8),
                proptest::collection::vec((0usize..5, any::<bool>()), 0..5),
                0usize..14,
            ),
            1..6,
        )
    ) {
        let fixture = Fixture::load();
        let stranger = requester_support::raw(b"stranger");
        let cids = [fixture.root.0, fixture.mid.0, fixture.leaf1.0, fixture.leaf2.0, stranger.0];
        let datas = [&fixture.root.1, &fixture.mid.1, &fixture.leaf1.1, &fixture.leaf2.1, &stranger.1];
        let mut harness = Harness::new(Config::default());
        let id = harness.request_all(fixture.root.0);
        for (entries, blocks, status) in messages {
            let metadata = entries
                .into_iter()
                .map(|(cid, action)| Metadatum::new(cids[cid], LinkAction::ALL[action]))
                .collect();
            // A block either holds its own bytes or another block's bytes under its prefix.
            let blocks = blocks
                .into_iter()
                .map(|(index, honest)| {
                    let data = if honest { datas[index].clone() } else { datas[(index + 1) % 5].clone() };
                    Block::from_cid(&cids[index], data)
                })
                .collect();
            // The harness asserts that every stored block hashes to its CID.
            harness.receive(PEER, response(id, ResponseStatus::ALL[status], metadata, blocks));
        }
        prop_assert!(harness.outcomes.len() <= 1);
        prop_assert!(harness.stored.iter().all(|(_, cid, _)| *cid != stranger.0));
        prop_assert!(harness.requester.in_progress() + harness.outcomes.len() == 1);
    }
}
