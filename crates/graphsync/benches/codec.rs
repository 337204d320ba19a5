//! Encode and decode throughput of both codecs (2.0.0 DAG-CBOR, 1.0.0 protobuf) on the
//! messages a responder sends: a Go-sized batch carrying 512 KiB of blocks, and a
//! metadata-heavy message (no blocks, tens of thousands of metadata entries, as a long run of
//! do-not-send-first-blocks produces).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use graphsync::codec::v1::{self, IdMap, PeerIds};
use graphsync::codec::v2;
use graphsync::{
    Block, CidPrefix, LinkAction, Message, Metadatum, RequestId, Response, ResponseStatus,
};

/// The 1.0.0 id tables of the sending side: the request with integer id 1 came from the peer,
/// so its response may be encoded.
fn sender_ids() -> (PeerIds, RequestId) {
    let mut ids = PeerIds::new(1);
    let id = ids.incoming_request(1);
    (ids, id)
}

/// One response carrying 512 KiB of blocks (Go's per-message block budget) as eight raw
/// blocks of 64 KiB, each named by a `"p"` metadata entry.
fn blocks_512k(id: RequestId) -> Message {
    let mut message = Message::new();
    let mut metadata = Vec::new();
    for index in 0..8u32 {
        let data: Vec<u8> = (0..64 * 1024u32).map(|i| (i ^ index) as u8).collect();
        let block = Block::new(CidPrefix::v1(0x55, 0x12, 32), data);
        let cid = block.cid().expect("sha2-256 block");
        metadata.push(Metadatum::new(cid, LinkAction::Present));
        message.blocks.push(block);
    }
    message
        .with_response(Response::new(id, ResponseStatus::PartialResponse).with_metadata(metadata))
}

/// One response with 20 000 metadata entries over distinct CIDs and no blocks (about 900 KB
/// encoded, under the 1 MiB metadata budget of our responder).
fn metadata_heavy(id: RequestId) -> Message {
    let metadata = (0..20_000u32)
        .map(|index| {
            let cid = CidPrefix::v1(0x55, 0x12, 32)
                .to_cid(&index.to_be_bytes())
                .expect("sha2-256 is supported");
            Metadatum::new(cid, LinkAction::Present)
        })
        .collect();
    Message::new()
        .with_response(Response::new(id, ResponseStatus::PartialResponse).with_metadata(metadata))
}

fn bench_message(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, message: &Message) {
    let v2_body = v2::to_vec(message).expect("encodable");
    let (mut sender, _) = sender_ids();
    let mut v1_body = BytesMut::new();
    v1::encode(message, &mut sender, &mut v1_body).expect("encodable");
    // The receiving side's tables, kept across iterations like a stream's.
    let mut receiver = PeerIds::new(2);
    assert_eq!(&v2::decode(&v2_body).expect("decodable"), message);

    group.throughput(Throughput::Bytes(v2_body.len() as u64));
    group.bench_function(format!("{name}/v2_encode"), |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(v2_body.len());
            v2::encode(black_box(message), &mut out).expect("encodable");
            out
        })
    });
    group.bench_function(format!("{name}/v2_decode"), |b| {
        b.iter(|| v2::decode(black_box(&v2_body)))
    });
    group.throughput(Throughput::Bytes(v1_body.len() as u64));
    group.bench_function(format!("{name}/v1_encode"), |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(v1_body.len());
            v1::encode(black_box(message), &mut sender, &mut out).expect("encodable");
            out
        })
    });
    group.bench_function(format!("{name}/v1_decode"), |b| {
        b.iter(|| v1::decode(black_box(&v1_body), &mut receiver))
    });
}

fn codec(c: &mut Criterion) {
    // Both messages answer the same request; `bench_message` rebuilds the tables that map it.
    let (_, id) = sender_ids();
    let mut group = c.benchmark_group("codec");
    bench_message(&mut group, "blocks_512k", &blocks_512k(id));
    bench_message(&mut group, "metadata_20k", &metadata_heavy(id));
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    codec(&mut criterion);
    criterion.final_summary();
}
