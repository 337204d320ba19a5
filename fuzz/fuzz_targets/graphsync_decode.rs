//! Fuzz target: the graphsync codec on arbitrary bytes: the 2.0.0 and 1.0.0 body decoders and
//! the length-prefix framer.
//!
//! Nothing may panic. A body that decodes must encode, and the encoding must be a fixed point
//! (decode it and encode again: same bytes). The shared decoders (`decode_shared`) must decode
//! exactly what the plain ones decode, and the encoders' pieces (`encode_pieces`) must join to
//! the plain encoding. A complete frame must lie inside the input and respect the size limit.

#![no_main]

use bytes::{Bytes, BytesMut};
use graphsync::codec::frame::{self, Frame, FrameConfig, FrameDecoder};
use graphsync::codec::{v1, v2};
use graphsync::testing::FixedIds;
use libfuzzer_sys::fuzz_target;

/// A small frame limit, so the fuzzer reaches it.
const MAX_FRAME: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let shared = Bytes::copy_from_slice(data);
    let (plain, sharing) = (v2::decode(data), v2::decode_shared(&shared));
    assert_eq!(
        plain.is_ok(),
        sharing.is_ok(),
        "2.0.0 shared decoding disagrees"
    );
    if let (Ok(plain), Ok(sharing)) = (&plain, &sharing) {
        assert_eq!(
            plain, sharing,
            "2.0.0 shared decoding gives another message"
        );
    }
    let (plain, sharing) = (
        v1::decode(data, &mut FixedIds),
        v1::decode_shared(&shared, &mut FixedIds),
    );
    assert_eq!(
        plain.is_ok(),
        sharing.is_ok(),
        "1.0.0 shared decoding disagrees"
    );
    if let (Ok(plain), Ok(sharing)) = (&plain, &sharing) {
        assert_eq!(
            plain, sharing,
            "1.0.0 shared decoding gives another message"
        );
    }

    if let Ok(message) = v2::decode(data) {
        let first = v2::to_vec(&message).expect("a decoded 2.0.0 message is encodable");
        let pieces = v2::encode_pieces(&message).expect("a decoded 2.0.0 message is encodable");
        assert_eq!(
            pieces.concat(),
            first,
            "2.0.0 pieces differ from the encoding"
        );
        let again = v2::decode(&first).expect("the encoding decodes");
        let second = v2::to_vec(&again).expect("a decoded 2.0.0 message is encodable");
        assert_eq!(first, second, "2.0.0 encoding is not a fixed point");
    }

    if let Ok(message) = v1::decode(data, &mut FixedIds) {
        let mut first = BytesMut::new();
        v1::encode(&message, &mut FixedIds, &mut first)
            .expect("a decoded 1.0.0 message is encodable");
        let pieces = v1::encode_pieces(&message, &mut FixedIds)
            .expect("a decoded 1.0.0 message is encodable");
        assert_eq!(
            pieces.concat(),
            first,
            "1.0.0 pieces differ from the encoding"
        );
        let again = v1::decode(&first, &mut FixedIds).expect("the encoding decodes");
        let mut second = BytesMut::new();
        v1::encode(&again, &mut FixedIds, &mut second)
            .expect("a decoded 1.0.0 message is encodable");
        assert_eq!(first, second, "1.0.0 encoding is not a fixed point");
    }

    let config = FrameConfig::default().with_max_message_size(MAX_FRAME);
    if let Ok(Frame::Complete { body, consumed }) = frame::decode_frame(data, &config) {
        assert!(consumed <= data.len());
        assert!(!body.is_empty() && body.len() <= MAX_FRAME);
    }
    let mut buf = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(config);
    while let Ok(Some(body)) = decoder.decode(&mut buf) {
        assert!(!body.is_empty() && body.len() <= MAX_FRAME);
    }
});
