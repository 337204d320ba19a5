//! Fuzz target: the graphsync codec on arbitrary bytes: the 2.0.0 and 1.0.0 body decoders and
//! the length-prefix framer.
//!
//! Nothing may panic. A body that decodes must encode, and the encoding must be a fixed point
//! (decode it and encode again: same bytes). A complete frame must lie inside the input and
//! respect the size limit.

#![no_main]

use bytes::BytesMut;
use graphsync::codec::frame::{self, Frame, FrameConfig, FrameDecoder};
use graphsync::codec::{v1, v2};
use graphsync::testing::FixedIds;
use libfuzzer_sys::fuzz_target;

/// A small frame limit, so the fuzzer reaches it.
const MAX_FRAME: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = v2::decode(data) {
        let first = v2::to_vec(&message).expect("a decoded 2.0.0 message is encodable");
        let again = v2::decode(&first).expect("the encoding decodes");
        let second = v2::to_vec(&again).expect("a decoded 2.0.0 message is encodable");
        assert_eq!(first, second, "2.0.0 encoding is not a fixed point");
    }

    if let Ok(message) = v1::decode(data, &mut FixedIds) {
        let mut first = BytesMut::new();
        v1::encode(&message, &mut FixedIds, &mut first)
            .expect("a decoded 1.0.0 message is encodable");
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
