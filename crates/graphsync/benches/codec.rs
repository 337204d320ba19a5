//! Encode and decode throughput of both codecs on a response message carrying about 1 MiB of
//! blocks and many metadata entries.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use graphsync::codec::{v1, v2};
use graphsync::testing::FixedIds;
use graphsync::{Block, CidPrefix, LinkAction, Message, Metadatum, Response, ResponseStatus};

/// 256 raw blocks of 4 KiB (1 MiB) and 2,048 metadata entries.
fn large_response() -> Message {
    let mut message = Message::new();
    let mut metadata = Vec::new();
    for index in 0..256u32 {
        let data: Vec<u8> = (0..4096u32).map(|i| (i ^ index) as u8).collect();
        let block = Block::new(CidPrefix::v1(0x55, 0x12, 32), data);
        let cid = block.cid().expect("sha2-256 block");
        for _ in 0..8 {
            metadata.push(Metadatum::new(cid, LinkAction::Present));
        }
        message.blocks.push(block);
    }
    message.with_response(
        Response::new(FixedIds::id(1), ResponseStatus::PartialResponse).with_metadata(metadata),
    )
}

fn codec(c: &mut Criterion) {
    let message = large_response();
    let v2_body = v2::to_vec(&message).expect("encodable");
    let mut v1_body = BytesMut::new();
    v1::encode(&message, &mut FixedIds, &mut v1_body).expect("encodable");

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(v2_body.len() as u64));
    group.bench_function("v2_encode", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(v2_body.len());
            v2::encode(black_box(&message), &mut out).expect("encodable");
            out
        })
    });
    group.bench_function("v2_decode", |b| b.iter(|| v2::decode(black_box(&v2_body))));
    group.bench_function("v1_encode", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(v1_body.len());
            v1::encode(black_box(&message), &mut FixedIds, &mut out).expect("encodable");
            out
        })
    });
    group.bench_function("v1_decode", |b| {
        b.iter(|| v1::decode(black_box(&v1_body), &mut FixedIds))
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    codec(&mut criterion);
    criterion.final_summary();
}
