//! Helpers for the responder tests: blocks built in the test, an in-memory block map, the
//! shared fixture DAGs, and a harness that drives a [`Responder`] the way a driver would.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;

use bytes::Bytes;
use graphsync::codec::v2;
use graphsync::responder::{Config, Event, Responder, Transmit};
use graphsync::{
    Extensions, LinkAction, Message, Metadatum, Request, RequestId, Response, ResponseStatus,
};
use ipld_dagcbor::{Cid, Node};
use ipld_selector::Selector;
use multihash_codetable::{Code, MultihashDigest};

/// Peers are plain names here.
pub type Peer = &'static str;

/// A raw (0x55) block.
pub fn raw_block(data: &[u8]) -> (Cid, Bytes) {
    (
        Cid::new_v1(0x55, Code::Sha2_256.digest(data)),
        Bytes::copy_from_slice(data),
    )
}

/// A dag-cbor (0x71) block.
pub fn cbor_block(node: &Node) -> (Cid, Bytes) {
    let bytes = ipld_dagcbor::to_vec(node).expect("test nodes encode");
    (
        Cid::new_v1(0x71, Code::Sha2_256.digest(&bytes)),
        Bytes::from(bytes),
    )
}

/// A request id from one byte.
pub fn rid(n: u8) -> RequestId {
    RequestId::new([n; 16])
}

/// A request id from a number.
pub fn rid_n(n: u32) -> RequestId {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    RequestId::new(bytes)
}

/// The explore-all selector node.
pub fn explore_all() -> Node {
    Selector::explore_all_recursively().to_node()
}

/// `{"R": {"l": {"depth": depth}, ":>": {"a": {">": {"@": {}}}}}}`.
pub fn explore_depth(depth: i64) -> Node {
    let text = format!(r#"{{"R":{{"l":{{"depth":{depth}}},":>":{{"a":{{">":{{"@":{{}}}}}}}}}}}}"#);
    Selector::from_dag_json(text.as_bytes())
        .expect("a valid selector")
        .to_node()
}

/// A New request for `root` by explore-all.
pub fn new_request(id: RequestId, root: Cid) -> Request {
    Request::new(id, root, explore_all())
}

/// A message with one request.
pub fn msg(request: Request) -> Message {
    Message::new().with_request(request)
}

/// The four-block fixture DAG of `fixture_dag.json`: the store, the root, and the expected
/// load order. A missing shared folder fails the test.
pub struct Fixture {
    pub blocks: HashMap<Cid, Bytes>,
    pub names: HashMap<String, Cid>,
    pub root: Cid,
    pub loads: Vec<Cid>,
}

/// Reads a fixture file of the shared vectors.
pub fn fixture(name: &str) -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/vectors/graphsync/"
    )
    .to_owned()
        + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("fixture is json");
    let mut blocks = HashMap::new();
    let mut names = HashMap::new();
    for (name, block) in json["blocks"].as_object().expect("blocks") {
        let cid: Cid = block["cid"].as_str().expect("cid").parse().expect("a cid");
        let data = hex::decode(block["data_hex"].as_str().expect("data_hex")).expect("hex");
        blocks.insert(cid, Bytes::from(data));
        names.insert(name.clone(), cid);
    }
    let loads_json = json
        .get("traversal_explore_all_recursively")
        .or_else(|| json["traversals"].get("explore_all_recursively"))
        .expect("an explore-all load order");
    let loads = loads_json["loads"]
        .as_array()
        .expect("loads")
        .iter()
        .map(|load| load["cid"].as_str().expect("cid").parse().expect("a cid"))
        .collect();
    let root = names["root"];
    Fixture {
        blocks,
        names,
        root,
        loads,
    }
}

/// Drives a responder: answers block loads from `store`, takes every message, checks it
/// encodes with the 2.0.0 codec (and decodes back equal), and reports it sent.
pub struct Harness {
    pub responder: Responder<Peer>,
    pub store: HashMap<Cid, Bytes>,
    /// Every message taken, in order.
    pub sent: Vec<Transmit<Peer>>,
    /// Every event other than `LoadBlock`, in order.
    pub events: Vec<Event<Peer>>,
    /// Loads not answered yet (when `answer_loads` is off).
    pub pending_loads: Vec<(Peer, RequestId, Cid)>,
    pub answer_loads: bool,
    pub ack: bool,
}

impl Harness {
    pub fn new(config: Config) -> Self {
        Harness {
            responder: Responder::new(config),
            store: HashMap::new(),
            sent: Vec::new(),
            events: Vec::new(),
            pending_loads: Vec::new(),
            answer_loads: true,
            ack: true,
        }
    }

    /// A responder whose default validator accepts explore-all (as an application would).
    pub fn open() -> Self {
        Harness::new(Config {
            default_validator: None,
            hooks: graphsync::responder::Hooks {
                request: true,
                ..Default::default()
            },
            ..Config::default()
        })
    }

    pub fn with_blocks(mut self, blocks: impl IntoIterator<Item = (Cid, Bytes)>) -> Self {
        self.store.extend(blocks);
        self
    }

    /// Drains events, answering loads from the store.
    pub fn settle(&mut self) {
        while let Some(event) = self.responder.poll_event() {
            match event {
                Event::LoadBlock { peer, request, cid } if self.answer_loads => {
                    let bytes = self.store.get(&cid).cloned();
                    self.responder
                        .provide_block(&peer, request, cid, bytes)
                        .expect("the load is pending");
                }
                Event::LoadBlock { peer, request, cid } => {
                    self.pending_loads.push((peer, request, cid))
                }
                other => self.events.push(other),
            }
        }
    }

    /// Takes every waiting message (checking it encodes) and acknowledges it if `ack`.
    pub fn flush(&mut self) -> Vec<Transmit<Peer>> {
        let mut taken = Vec::new();
        while let Some(transmit) = self.responder.poll_transmit() {
            check_encodes(&transmit.message);
            taken.push(transmit);
        }
        if self.ack {
            for transmit in &taken {
                self.responder
                    .handle_sent(&transmit.peer, transmit.id)
                    .expect("in flight");
            }
        }
        self.sent.extend(taken.iter().cloned());
        taken
    }

    /// Settles and flushes until nothing moves.
    pub fn run(&mut self) {
        loop {
            self.settle();
            if self.flush().is_empty() {
                break;
            }
        }
    }

    pub fn receive(&mut self, peer: Peer, message: Message) {
        self.responder.handle_message(peer, message);
    }

    /// The response entries for `id` sent to `peer`, one per message, with the CIDs of the
    /// blocks in the same message.
    pub fn responses(&self, peer: Peer, id: RequestId) -> Vec<(Response, Vec<Cid>)> {
        self.sent
            .iter()
            .filter(|transmit| transmit.peer == peer)
            .filter_map(|transmit| {
                let response = transmit.message.responses.iter().find(|r| r.id == id)?;
                let cids = transmit
                    .message
                    .blocks
                    .iter()
                    .map(|block| block.cid().expect("blocks hash"))
                    .collect();
                Some((response.clone(), cids))
            })
            .collect()
    }

    /// All metadata for `id`, in order.
    pub fn metadata(&self, peer: Peer, id: RequestId) -> Vec<Metadatum> {
        self.responses(peer, id)
            .into_iter()
            .flat_map(|(response, _)| response.metadata)
            .collect()
    }

    /// The statuses for `id`, one per message.
    pub fn statuses(&self, peer: Peer, id: RequestId) -> Vec<ResponseStatus> {
        self.responses(peer, id)
            .into_iter()
            .map(|(response, _)| response.status)
            .collect()
    }

    /// The last status for `id`.
    pub fn last_status(&self, peer: Peer, id: RequestId) -> Option<ResponseStatus> {
        self.statuses(peer, id).last().copied()
    }

    /// For each metadata entry of `id`, in order: its CID and whether its block travelled in
    /// the same message (first entry for that CID in the message).
    pub fn loads_with_bytes(&self, peer: Peer, id: RequestId) -> Vec<(Cid, LinkAction, bool)> {
        let mut out = Vec::new();
        for (response, cids) in self.responses(peer, id) {
            let mut seen = std::collections::HashSet::new();
            for entry in response.metadata {
                let carried = cids.contains(&entry.link) && seen.insert(entry.link);
                out.push((entry.link, entry.action, carried));
            }
        }
        out
    }

    /// Every block CID sent to `peer`, with repeats across messages.
    pub fn blocks_sent(&self, peer: Peer) -> Vec<Cid> {
        self.sent
            .iter()
            .filter(|transmit| transmit.peer == peer)
            .flat_map(|transmit| transmit.message.blocks.iter())
            .map(|block| block.cid().expect("blocks hash"))
            .collect()
    }

    /// Answers every `RequestReceived` seen so far with `decision`.
    pub fn decide_all(&mut self, decision: &graphsync::responder::RequestDecision) {
        let asks: Vec<(Peer, RequestId)> = self
            .events
            .iter()
            .filter_map(|event| match event {
                Event::RequestReceived { peer, request, .. } => Some((*peer, request.id)),
                _ => None,
            })
            .collect();
        self.events
            .retain(|event| !matches!(event, Event::RequestReceived { .. }));
        for (peer, id) in asks {
            self.responder
                .handle_request_decision(&peer, id, decision.clone())
                .expect("request awaits a decision");
        }
    }

    /// Sends a request through a harness made with [`Harness::open`], validates it, and runs.
    pub fn serve(&mut self, peer: Peer, request: Request) {
        self.receive(peer, msg(request));
        self.settle();
        self.decide_all(&graphsync::responder::RequestDecision::validate());
        self.run();
    }
}

/// Encodes with the 2.0.0 codec and decodes back equal.
pub fn check_encodes(message: &Message) {
    assert!(!message.is_empty(), "empty messages are never sent");
    let bytes = v2::to_vec(message).expect("every produced message encodes");
    let back = v2::decode(&bytes).expect("and decodes");
    assert_eq!(&back, message);
}

/// Extensions with one name set to an integer.
pub fn ext(name: &str, value: i64) -> Extensions {
    Extensions::new().with(name, Some(Node::from(value)))
}
