//! Random sequences of peer messages, hook answers, local commands and send outcomes never
//! panic the responder, never pass its bounds, and always leave it empty once everything is
//! answered and sent.

mod responder_common;

use std::collections::VecDeque;

use graphsync::responder::{
    BlockDecision, Config, Event, Hooks, MessageId, RequestDecision, Responder, UpdateDecision,
};
use graphsync::{Extensions, Message, Request, RequestId};
use ipld_dagcbor::Cid;
use proptest::prelude::*;
use responder_common::*;

const PEERS: [Peer; 2] = ["alice", "bob"];

#[derive(Debug, Clone)]
enum Op {
    New {
        peer: usize,
        id: u8,
        depth_limited: bool,
        skip: Option<i64>,
    },
    Cancel {
        peer: usize,
        id: u8,
    },
    Update {
        peer: usize,
        id: u8,
    },
    Load {
        present: bool,
    },
    Decide(u8),
    AnswerUpdate(u8),
    AnswerBlock(u8),
    Pause {
        peer: usize,
        id: u8,
    },
    Unpause {
        peer: usize,
        id: u8,
    },
    LocalCancel {
        peer: usize,
        id: u8,
    },
    Transmit,
    Sent {
        ok: bool,
    },
    Disconnect {
        peer: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0..2usize;
    let id = 0..4u8;
    prop_oneof![
        1 => (peer.clone(), id.clone(), any::<bool>(), proptest::option::of(-1..5i64)).prop_map(
            |(peer, id, depth_limited, skip)| Op::New {
                peer,
                id,
                depth_limited,
                skip
            }
        ),
        1 => (peer.clone(), id.clone()).prop_map(|(peer, id)| Op::Cancel { peer, id }),
        1 => (peer.clone(), id.clone()).prop_map(|(peer, id)| Op::Update { peer, id }),
        3 => any::<bool>().prop_map(|present| Op::Load { present }),
        1 => (0..5u8).prop_map(Op::Decide),
        1 => (0..4u8).prop_map(Op::AnswerUpdate),
        1 => (0..4u8).prop_map(Op::AnswerBlock),
        1 => (peer.clone(), id.clone()).prop_map(|(peer, id)| Op::Pause { peer, id }),
        1 => (peer.clone(), id.clone()).prop_map(|(peer, id)| Op::Unpause { peer, id }),
        1 => (peer.clone(), id.clone()).prop_map(|(peer, id)| Op::LocalCancel { peer, id }),
        2 => Just(Op::Transmit),
        2 => any::<bool>().prop_map(|ok| Op::Sent { ok }),
        1 => peer.prop_map(|peer| Op::Disconnect { peer }),
    ]
}

#[derive(Default)]
struct Asks {
    loads: VecDeque<(Peer, RequestId, Cid)>,
    requests: VecDeque<(Peer, RequestId)>,
    updates: VecDeque<(Peer, RequestId)>,
    blocks: VecDeque<(Peer, RequestId)>,
    in_flight: VecDeque<(Peer, MessageId)>,
    /// Every message taken, in order.
    messages: Vec<(Peer, Message)>,
}

fn drain(responder: &mut Responder<Peer>, asks: &mut Asks) {
    while let Some(event) = responder.poll_event() {
        match event {
            Event::LoadBlock { peer, request, cid } => asks.loads.push_back((peer, request, cid)),
            Event::RequestReceived { peer, request, .. } => {
                asks.requests.push_back((peer, request.id))
            }
            Event::UpdateReceived { peer, request, .. } => asks.updates.push_back((peer, request)),
            Event::BlockLoaded { peer, request, .. } => asks.blocks.push_back((peer, request)),
            _ => {}
        }
    }
}

fn config() -> Config {
    Config {
        max_in_progress: 2,
        max_in_progress_per_peer: 2,
        max_requests: 5,
        max_requests_per_peer: 3,
        max_memory: 64,
        max_memory_per_peer: 40,
        max_unsent_messages_per_peer: 2,
        max_pending_updates: 2,
        default_validator: Some(100),
        hooks: Hooks {
            request: true,
            update: true,
            block: true,
        },
        ..Config::default()
    }
}

fn apply(responder: &mut Responder<Peer>, asks: &mut Asks, fixture: &Fixture, op: &Op) {
    // Command results are allowed to be errors (stale or misplaced answers); panics are not.
    match op {
        Op::New {
            peer,
            id,
            depth_limited,
            skip,
        } => {
            let selector = if *depth_limited {
                explore_depth(10)
            } else {
                explore_all()
            };
            let mut request = Request::new(rid(*id), fixture.root, selector);
            if let Some(skip) = skip {
                request = request
                    .with_extensions(ext(graphsync::extension::DO_NOT_SEND_FIRST_BLOCKS, *skip));
            }
            responder.handle_message(PEERS[*peer], msg(request));
        }
        Op::Cancel { peer, id } => {
            responder.handle_message(PEERS[*peer], msg(Request::cancel(rid(*id))))
        }
        Op::Update { peer, id } => responder.handle_message(
            PEERS[*peer],
            msg(Request::update(rid(*id), ext("u", i64::from(*id)))),
        ),
        Op::Load { present } => {
            if let Some((peer, id, cid)) = asks.loads.pop_front() {
                let bytes = present.then(|| fixture.blocks.get(&cid).cloned()).flatten();
                let _ = responder.provide_block(&peer, id, cid, bytes);
            }
        }
        Op::Decide(kind) => {
            if let Some((peer, id)) = asks.requests.pop_front() {
                let decision = match kind {
                    0 => RequestDecision::validate(),
                    1 => RequestDecision::validate().with_pause(),
                    2 => RequestDecision::terminate(),
                    3 => RequestDecision::validate().with_link_budget(3),
                    _ => RequestDecision::reject(),
                };
                let _ = responder.handle_request_decision(&peer, id, decision);
            }
        }
        Op::AnswerUpdate(kind) => {
            if let Some((peer, id)) = asks.updates.pop_front() {
                let decision = UpdateDecision {
                    unpause: kind & 1 == 1,
                    terminate: *kind == 2,
                    extensions: ext("r", 1),
                };
                let _ = responder.handle_update_decision(&peer, id, decision);
            }
        }
        Op::AnswerBlock(kind) => {
            if let Some((peer, id)) = asks.blocks.pop_front() {
                let decision = BlockDecision {
                    pause: *kind == 1,
                    terminate: *kind == 2,
                    extensions: Extensions::new(),
                };
                let _ = responder.handle_block_decision(&peer, id, decision);
            }
        }
        Op::Pause { peer, id } => {
            let _ = responder.pause(&PEERS[*peer], rid(*id));
        }
        Op::Unpause { peer, id } => {
            let _ = responder.unpause(&PEERS[*peer], rid(*id), ext("go", 1));
        }
        Op::LocalCancel { peer, id } => {
            let _ = responder.cancel(&PEERS[*peer], rid(*id));
        }
        Op::Transmit => {
            if let Some(transmit) = responder.poll_transmit() {
                check_encodes(&transmit.message);
                asks.in_flight.push_back((transmit.peer, transmit.id));
                asks.messages.push((transmit.peer, transmit.message));
            }
        }
        Op::Sent { ok } => {
            if let Some((peer, id)) = asks.in_flight.pop_front() {
                let result = if *ok {
                    responder.handle_sent(&peer, id)
                } else {
                    responder.handle_send_failed(&peer, id)
                };
                // A disconnect forgets in-flight messages; otherwise the id must be known.
                let _ = result;
            }
        }
        Op::Disconnect { peer } => responder.handle_peer_disconnected(&PEERS[*peer]),
    }
    drain(responder, asks);
}

/// Answers everything, unpauses everything and sends everything until nothing moves.
fn finish(responder: &mut Responder<Peer>, asks: &mut Asks, fixture: &Fixture) {
    // Answer everything, unpause everything, send everything.
    for _ in 0..2_000 {
        let before = (responder.tracked(), asks.loads.len(), asks.in_flight.len());
        for peer in PEERS {
            for id in 0..4 {
                let _ = responder.unpause(&peer, rid(id), Extensions::new());
            }
        }
        drain(responder, asks);
        while let Some((peer, id, cid)) = asks.loads.pop_front() {
            let _ = responder.provide_block(&peer, id, cid, fixture.blocks.get(&cid).cloned());
            drain(responder, asks);
        }
        while let Some((peer, id)) = asks.requests.pop_front() {
            let _ = responder.handle_request_decision(&peer, id, RequestDecision::validate());
            drain(responder, asks);
        }
        while let Some((peer, id)) = asks.updates.pop_front() {
            let _ = responder.handle_update_decision(&peer, id, UpdateDecision::default());
            drain(responder, asks);
        }
        while let Some((peer, id)) = asks.blocks.pop_front() {
            let _ = responder.handle_block_decision(&peer, id, BlockDecision::default());
            drain(responder, asks);
        }
        while let Some(transmit) = responder.poll_transmit() {
            check_encodes(&transmit.message);
            asks.in_flight.push_back((transmit.peer, transmit.id));
            asks.messages.push((transmit.peer, transmit.message));
        }
        while let Some((peer, id)) = asks.in_flight.pop_front() {
            let _ = responder.handle_sent(&peer, id);
            drain(responder, asks);
        }
        let after = (responder.tracked(), asks.loads.len(), asks.in_flight.len());
        if after == (0, 0, 0) && before == after {
            break;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_inputs_keep_bounds_and_end_empty(ops in proptest::collection::vec(op(), 1..120)) {
        let fixture = fixture("fixture_dag.json");
        let config = config();
        let mut responder = Responder::new(config.clone());
        let mut asks = Asks::default();
        for op in &ops {
            apply(&mut responder, &mut asks, &fixture, op);
            prop_assert!(responder.tracked() <= config.max_requests);
            prop_assert!(responder.running() <= config.max_in_progress);
        }
        finish(&mut responder, &mut asks, &fixture);
        prop_assert_eq!(responder.tracked(), 0);
        prop_assert_eq!(responder.running(), 0);
        for peer in PEERS {
            prop_assert_eq!(responder.memory(&peer), (0, 0));
        }
        prop_assert!(responder.poll_transmit().is_none());
    }
}

#[test]
fn the_random_driver_really_serves_requests() {
    let fixture = fixture("fixture_dag.json");
    let mut responder = Responder::new(config());
    let mut asks = Asks::default();
    let mut ops = vec![
        Op::New {
            peer: 0,
            id: 1,
            depth_limited: true,
            skip: None,
        },
        Op::Decide(0),
    ];
    for _ in 0..6 {
        ops.extend([Op::Load { present: true }, Op::AnswerBlock(0), Op::Transmit]);
        ops.push(Op::Sent { ok: true });
    }
    for op in &ops {
        apply(&mut responder, &mut asks, &fixture, op);
    }
    finish(&mut responder, &mut asks, &fixture);
    let responses: Vec<&graphsync::Response> = asks
        .messages
        .iter()
        .flat_map(|(_, message)| message.responses.iter())
        .filter(|response| response.id == rid(1))
        .collect();
    let links: Vec<Cid> = responses
        .iter()
        .flat_map(|response| response.metadata.iter().map(|entry| entry.link))
        .collect();
    assert_eq!(links, fixture.loads);
    assert_eq!(
        responses.last().map(|response| response.status),
        Some(graphsync::ResponseStatus::RequestCompletedFull)
    );
}

#[test]
fn an_empty_message_changes_nothing() {
    let mut responder: Responder<Peer> = Responder::new(config());
    responder.handle_message("alice", Message::new());
    assert!(responder.poll_event().is_none());
    assert!(responder.poll_transmit().is_none());
    assert_eq!(responder.tracked(), 0);
}
