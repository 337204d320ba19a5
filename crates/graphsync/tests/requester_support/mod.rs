//! Helpers for the requester tests: the shared fixture DAG, hand-built responses, and a
//! harness that drains the core, answers its loads from an in-memory store, keeps what it
//! asks to store, and encodes every transmitted message with the 2.0.0 codec.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use graphsync::codec::v2;
use graphsync::requester::{Config, Event, Outcome, Requester};
use graphsync::{
    Block, CidPrefix, Extensions, LinkAction, Message, Metadatum, Request, RequestId, RequestKind,
    Response, ResponseStatus,
};
use ipld_dagcbor::{Cid, Map, Node};
use ipld_selector::Selector;

/// The peer type of the tests.
pub type Peer = &'static str;

/// The peer every test asks.
pub const PEER: Peer = "responder";

/// The four-block DAG of `fixture_dag.json`.
pub struct Fixture {
    pub root: (Cid, Bytes),
    pub mid: (Cid, Bytes),
    pub leaf1: (Cid, Bytes),
    pub leaf2: (Cid, Bytes),
    /// The explore-all load order: CIDs and paths.
    pub loads: Vec<(Cid, String)>,
}

impl Fixture {
    /// Reads the vector; a missing shared folder fails the test.
    pub fn load() -> Fixture {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/spec/vectors/graphsync/fixture_dag.json"
        ));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let json: serde_json::Value = serde_json::from_str(&text).expect("fixture is json");
        let block = |name: &str| {
            let entry = &json["blocks"][name];
            let cid: Cid = entry["cid"].as_str().expect("cid").parse().expect("a cid");
            let data = hex::decode(entry["data_hex"].as_str().expect("data_hex")).expect("hex");
            assert_eq!(
                CidPrefix::of(&cid).to_cid(&data).expect("hashable"),
                cid,
                "fixture block {name} hashes to its cid"
            );
            (cid, Bytes::from(data))
        };
        let loads = json["traversal_explore_all_recursively"]["loads"]
            .as_array()
            .expect("loads")
            .iter()
            .map(|load| {
                (
                    load["cid"].as_str().expect("cid").parse().expect("a cid"),
                    load["path"].as_str().expect("path").to_owned(),
                )
            })
            .collect();
        Fixture {
            root: block("root"),
            mid: block("mid"),
            leaf1: block("leaf1"),
            leaf2: block("leaf2"),
            loads,
        }
    }

    /// Every block, keyed by CID.
    pub fn store(&self) -> HashMap<Cid, Bytes> {
        [&self.root, &self.mid, &self.leaf1, &self.leaf2]
            .into_iter()
            .map(|(cid, data)| (*cid, data.clone()))
            .collect()
    }

    /// The bytes of a fixture block.
    pub fn data(&self, cid: &Cid) -> Bytes {
        self.store().remove(cid).expect("a fixture block")
    }

    /// The metadata Go sends for the whole DAG (explore-all), every entry "p".
    pub fn full_metadata(&self) -> Vec<Metadatum> {
        self.loads
            .iter()
            .map(|(cid, _)| Metadatum::new(*cid, LinkAction::Present))
            .collect()
    }

    /// The blocks Go sends with that metadata: each distinct block once.
    pub fn full_blocks(&self) -> Vec<Block> {
        [&self.root, &self.leaf1, &self.leaf2, &self.mid]
            .into_iter()
            .map(|(cid, data)| Block::from_cid(cid, data.clone()))
            .collect()
    }
}

/// A raw block and its CID.
pub fn raw(data: &[u8]) -> (Cid, Bytes) {
    let cid = CidPrefix::v1(0x55, 0x12, 32)
        .to_cid(data)
        .expect("sha2-256");
    (cid, Bytes::copy_from_slice(data))
}

/// A dag-cbor block of `node` and its CID.
pub fn cbor(node: &Node) -> (Cid, Bytes) {
    let data = ipld_dagcbor::to_vec(node).expect("encodable");
    let cid = CidPrefix::v1(0x71, 0x12, 32)
        .to_cid(&data)
        .expect("sha2-256");
    (cid, Bytes::from(data))
}

/// A dag-cbor map node with links.
pub fn links(entries: &[(&str, Cid)]) -> Node {
    let mut map = Map::new();
    for (name, cid) in entries {
        map.insert(*name, Node::from(*cid));
    }
    Node::Map(map)
}

/// A message with one response and blocks.
pub fn response(
    id: RequestId,
    status: ResponseStatus,
    metadata: Vec<Metadatum>,
    blocks: Vec<Block>,
) -> Message {
    let mut message =
        Message::new().with_response(Response::new(id, status).with_metadata(metadata));
    message.blocks = blocks;
    message
}

/// `(cid, action)` pairs as metadata.
pub fn meta(entries: &[(Cid, LinkAction)]) -> Vec<Metadatum> {
    entries
        .iter()
        .map(|(cid, action)| Metadatum::new(*cid, *action))
        .collect()
}

/// A block of the wire for `(cid, data)`.
pub fn block(entry: &(Cid, Bytes)) -> Block {
    Block::from_cid(&entry.0, entry.1.clone())
}

/// Drives a requester: answers loads from `local` (when `auto_load`), records everything.
pub struct Harness {
    pub requester: Requester<Peer>,
    pub local: HashMap<Cid, Bytes>,
    pub auto_load: bool,
    pub stored: Vec<(RequestId, Cid, Bytes)>,
    pub transmits: Vec<(Peer, Message)>,
    pub events: Vec<Event<Peer>>,
    pub outcomes: Vec<(RequestId, Outcome)>,
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        Harness {
            requester: Requester::new(config),
            local: HashMap::new(),
            auto_load: true,
            stored: Vec::new(),
            transmits: Vec::new(),
            events: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// A request for the whole DAG under `root`, drained.
    pub fn request_all(&mut self, root: Cid) -> RequestId {
        let id = self
            .requester
            .request(
                PEER,
                root,
                &Selector::explore_all_recursively(),
                Extensions::new(),
            )
            .expect("request accepted");
        self.drain();
        id
    }

    /// Feeds a message from `peer`, drained.
    pub fn receive(&mut self, peer: Peer, message: Message) {
        self.requester.handle_message(peer, message);
        self.drain();
    }

    /// Drains transmits and events until both are empty; answers loads when `auto_load`.
    pub fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some((peer, message)) = self.requester.poll_transmit() {
                let mut body = BytesMut::new();
                v2::encode(&message, &mut body).expect("every produced message encodes");
                assert_eq!(v2::decode(&body).expect("and decodes"), message);
                self.transmits.push((peer, message));
                progressed = true;
            }
            while let Some(event) = self.requester.poll_event() {
                progressed = true;
                match event {
                    Event::StoreBlock { request, cid, data } => {
                        assert_eq!(
                            CidPrefix::of(&cid).to_cid(&data).expect("hashable"),
                            cid,
                            "only verified blocks are stored"
                        );
                        self.local.insert(cid, data.clone());
                        self.stored.push((request, cid, data));
                    }
                    Event::Completed { request, outcome } => {
                        self.outcomes.push((request, outcome));
                    }
                    Event::LoadBlock { request, cid } if self.auto_load => {
                        let data = self.local.get(&cid).cloned();
                        self.events.push(Event::LoadBlock { request, cid });
                        self.requester
                            .provide_block(request, cid, data)
                            .expect("the core asked for this block");
                    }
                    other => self.events.push(other),
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// The outcome of `id`, if it ended.
    pub fn outcome(&self, id: RequestId) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(request, _)| *request == id)
            .map(|(_, outcome)| outcome)
    }

    /// The CIDs stored, in order.
    pub fn stored_cids(&self) -> Vec<Cid> {
        self.stored.iter().map(|(_, cid, _)| *cid).collect()
    }

    /// The kinds of requests transmitted for `id`: "n", "c" or "u".
    pub fn sent_kinds(&self, id: RequestId) -> Vec<&'static str> {
        self.transmits
            .iter()
            .flat_map(|(_, message)| message.requests.iter())
            .filter(|request| request.id == id)
            .map(|request| match request.kind {
                RequestKind::New { .. } => "n",
                RequestKind::Cancel => "c",
                RequestKind::Update => "u",
            })
            .collect()
    }

    /// The requests transmitted for `id`.
    pub fn sent(&self, id: RequestId) -> Vec<&Request> {
        self.transmits
            .iter()
            .flat_map(|(_, message)| message.requests.iter())
            .filter(|request| request.id == id)
            .collect()
    }

    /// The `BlockMissing` events: CID and path text.
    pub fn missing(&self) -> Vec<(Cid, String)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::BlockMissing { cid, path, .. } => Some((*cid, path.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The `BlockReceived` events: CID, path, wire size and index.
    pub fn received(&self) -> Vec<(Cid, String, u64, u64)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::BlockReceived {
                    cid,
                    path,
                    wire_size,
                    index,
                    ..
                } => Some((*cid, path.to_string(), *wire_size, *index)),
                _ => None,
            })
            .collect()
    }
}
