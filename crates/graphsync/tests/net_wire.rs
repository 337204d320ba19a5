//! A Graphsync [`Node`] responder seen from a raw libp2p-stream peer on the memory transport:
//! which streams its responses use, how long it keeps them, and what an invalid stream does.

use std::sync::Arc;
use std::time::Duration;

use blockstore::{Blockstore, InMemoryBlockstore};
use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;
use graphsync::codec::frame::FrameConfig;
use graphsync::network::{Behaviour, Config, Node, RequestHook};
use graphsync::protocol::{MessageReader, PROTOCOL_V2, write_message};
use graphsync::responder::RequestDecision;
use graphsync::{CidPrefix, Message, Request, RequestId, ResponseStatus};
use ipld_selector::Selector;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Stream, Swarm, Transport, identity, noise, yamux};
use libp2p_stream::IncomingStreams;

/// Upper bound for waiting on the network; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn new_swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise keys from ed25519"))
                .multiplex(yamux::Config::default())
        })
        .expect("the memory transport builds")
        .with_behaviour(|_| behaviour)
        .expect("the behaviour builds")
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

fn drive<B: NetworkBehaviour + Send + 'static>(mut swarm: Swarm<B>)
where
    B::ToSwarm: Send,
{
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
}

/// The test's side: a raw stream-control handle connected to a responder node.
struct Raw {
    control: libp2p_stream::Control,
    incoming: IncomingStreams,
    responder: PeerId,
    _node: Node,
}

/// A block the responder serves, and a raw peer connected to it.
async fn setup(responder_config: Config) -> (Raw, Cid, Vec<u8>) {
    let data = b"a raw leaf served over the wire".to_vec();
    let root = CidPrefix::v1(0x55, 0x12, 32)
        .to_cid(&data)
        .expect("sha2-256 is supported");
    let store = Arc::new(InMemoryBlockstore::<64>::new());
    store.put_keyed(&root, &data).await.expect("in-memory put");

    let mut responder = new_swarm(Behaviour::new());
    let mut raw = new_swarm(libp2p_stream::Behaviour::new());
    responder
        .listen_on("/memory/0".parse::<Multiaddr>().expect("a memory address"))
        .expect("listening on memory");
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = responder.select_next_some().await {
            break address;
        }
    };
    raw.dial(address).expect("dialing the responder");
    let (mut raw_up, mut responder_up) = (false, false);
    while !(raw_up && responder_up) {
        tokio::select! {
            event = raw.select_next_some() => {
                raw_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
            event = responder.select_next_some() => {
                responder_up |= matches!(event, SwarmEvent::ConnectionEstablished { .. });
            }
        }
    }
    let node = Node::spawn(responder.behaviour(), store, responder_config)
        .expect("the responder node starts");
    let mut control = raw.behaviour().new_control();
    let incoming = control
        .accept(PROTOCOL_V2)
        .expect("the raw peer accepts graphsync streams");
    let responder_id = *responder.local_peer_id();
    drive(responder);
    drive(raw);
    (
        Raw {
            control,
            incoming,
            responder: responder_id,
            _node: node,
        },
        root,
        data,
    )
}

fn validating(config: Config) -> Config {
    config.with_request_hook(RequestHook::new(|_, _, _| RequestDecision::validate()))
}

fn explore_all(n: u8, root: Cid) -> Message {
    let selector = ipld_dagcbor::decode(&Selector::explore_all_recursively().to_dag_cbor())
        .expect("the selector's own encoding decodes");
    Message::new().with_request(Request::new(RequestId::new([n; 16]), root, selector))
}

impl Raw {
    async fn open(&mut self) -> Stream {
        self.control
            .open_stream(self.responder, PROTOCOL_V2)
            .await
            .expect("the responder speaks graphsync 2.0.0")
    }

    async fn next_inbound(&mut self) -> Stream {
        let (peer, stream) = tokio::time::timeout(PATIENCE, self.incoming.next())
            .await
            .expect("the responder opens a stream in time")
            .expect("the raw peer still accepts streams");
        assert_eq!(peer, self.responder);
        stream
    }
}

async fn read(reader: &mut MessageReader, stream: &mut Stream) -> Option<Message> {
    tokio::time::timeout(PATIENCE, reader.read(stream))
        .await
        .expect("the responder writes in time")
        .expect("the responder's framing is valid")
}

fn assert_full_response(message: &Message, n: u8, data: &[u8]) {
    assert_eq!(message.responses.len(), 1, "{message:?}");
    assert_eq!(message.responses[0].id, RequestId::new([n; 16]));
    assert_eq!(
        message.responses[0].status,
        ResponseStatus::RequestCompletedFull
    );
    let blocks: Vec<Bytes> = message.blocks.iter().map(|b| b.data.clone()).collect();
    assert_eq!(blocks, [Bytes::copy_from_slice(data)]);
}

#[tokio::test]
async fn invalid_stream_is_dropped_and_a_new_stream_is_served_on_a_responder_opened_stream() {
    let (mut raw, root, data) = setup(validating(Config::default())).await;
    let frame = FrameConfig::default();

    // A whole frame whose body is a CBOR integer, not a message.
    let mut bad = raw.open().await;
    futures::AsyncWriteExt::write_all(&mut bad, &[0x01, 0x01])
        .await
        .expect("the bad frame is written");
    let mut probe = [0u8; 1];
    let end = tokio::time::timeout(PATIENCE, futures::AsyncReadExt::read(&mut bad, &mut probe))
        .await
        .expect("the responder drops the invalid stream in time");
    assert!(
        matches!(end, Ok(0) | Err(_)),
        "the invalid stream ends: {end:?}"
    );

    let mut good = raw.open().await;
    write_message(&mut good, &explore_all(1, root), &frame)
        .await
        .expect("the request is written");
    let mut responses = raw.next_inbound().await;
    let mut reader = MessageReader::default();
    let message = read(&mut reader, &mut responses)
        .await
        .expect("a response message");
    assert_full_response(&message, 1, &data);
}

#[tokio::test]
async fn responses_share_one_stream_until_it_idles_then_a_new_one_is_opened() {
    let config = validating(Config {
        outbound_idle: Duration::from_millis(200),
        ..Config::default()
    });
    let (mut raw, root, data) = setup(config).await;
    let frame = FrameConfig::default();
    let mut requests = raw.open().await;

    write_message(&mut requests, &explore_all(1, root), &frame)
        .await
        .expect("the first request is written");
    let mut first = raw.next_inbound().await;
    let mut reader = MessageReader::default();
    let message = read(&mut reader, &mut first).await.expect("a response");
    assert_full_response(&message, 1, &data);

    // Two more requests right away: their responses follow on the same stream.
    for n in [2, 3] {
        write_message(&mut requests, &explore_all(n, root), &frame)
            .await
            .expect("the request is written");
        let message = read(&mut reader, &mut first).await.expect("a response");
        assert_full_response(&message, n, &data);
    }

    // Idle past `outbound_idle`: the responder closes its stream cleanly...
    assert_eq!(read(&mut reader, &mut first).await, None);
    // ...and opens a new one for the next response.
    write_message(&mut requests, &explore_all(4, root), &frame)
        .await
        .expect("the request is written");
    let mut second = raw.next_inbound().await;
    let mut reader = MessageReader::default();
    let message = read(&mut reader, &mut second).await.expect("a response");
    assert_full_response(&message, 4, &data);
}
