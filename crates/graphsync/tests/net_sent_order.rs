//! The responder reports a response's blocks sent, and then its completion, in the order its
//! messages were written, whatever order their write reports reach the driver in.
//!
//! Before the fix, the driver took each message's write report from an unordered set, so a
//! later message's report (the one with the terminal status) could be handled first: the
//! completed-response listener ran before the block-sent listener of the last blocks, and a
//! data-transfer responder, already finished, dropped those blocks' bytes from its totals
//! (seen as a `dtx serve` that sent 13 of 13 blocks but 256 KiB short).

mod net_support;

use std::sync::{Arc, Mutex};

use graphsync::Extensions;
use graphsync::network::Config;
use graphsync::responder;
use net_support::{Dag, finish, pair_with, store_with};

fn all() -> ipld_selector::Selector {
    ipld_selector::Selector::explore_all_recursively()
}

/// Holds the driver's thread for a moment (in a listener): meanwhile the writer finishes the
/// next messages, whose reports may then wake the driver out of order. Without the fix this
/// test failed about one run in five.
fn busy() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}

/// What the responder's listeners saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    BlockSent(u64),
    Completed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_reported_sent_before_their_response_completes() {
    // One block per message, so that a response is many messages, each with its own report.
    let responder_config = Config {
        responder: responder::Config {
            max_block_bytes_per_message: 1,
            ..responder::Config::default()
        },
        ..Config::default()
    };
    for round in 0..30u8 {
        let dag = Dag::flat(40, 64, round);
        let pair = pair_with(
            store_with(&dag.blocks).await,
            responder_config.clone(),
            Config::default(),
        )
        .await;
        let _validate = pair
            .responder
            .register_incoming_request_hook(|_, _, actions| actions.validate());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let _sent = pair
            .responder
            .register_block_sent_listener(move |_, _, record| {
                if record.sent > 0 {
                    sink.lock()
                        .expect("not poisoned")
                        .push(Seen::BlockSent(record.index));
                }
                busy();
            });
        let sink = Arc::clone(&seen);
        let _completed = pair
            .responder
            .register_completed_response_listener(move |_, _, _| {
                sink.lock().expect("not poisoned").push(Seen::Completed);
            });
        let handle = pair
            .requester
            .request(pair.responder_id, dag.root, all(), Extensions::new())
            .await
            .expect("the request starts");
        let (_, outcome) = finish(handle).await;
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
        // The completion is reported once its message's write is; wait for it.
        let seen = net_support::bounded("the completion", async {
            loop {
                let now = seen.lock().expect("not poisoned").clone();
                if now.contains(&Seen::Completed) {
                    return now;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        let (last, blocks) = seen.split_last().expect("the completion was seen");
        assert_eq!(*last, Seen::Completed, "round {round}: {seen:?}");
        let indices: Vec<u64> = blocks
            .iter()
            .map(|seen| match seen {
                Seen::BlockSent(index) => *index,
                Seen::Completed => u64::MAX,
            })
            .collect();
        assert_eq!(indices.len(), dag.blocks.len(), "round {round}: {seen:?}");
        assert!(
            indices.windows(2).all(|pair| pair[0] < pair[1]),
            "round {round}: blocks reported out of order: {seen:?}"
        );
    }
}
