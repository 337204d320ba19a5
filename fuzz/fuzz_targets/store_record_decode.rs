//! Fuzz target: `datatransfer_store::record::decode_with` on arbitrary bytes, under small
//! limits.
//!
//! Decoding must never panic. When the bytes decode, the channel state must encode, its
//! encoding must decode to the same channel id, status and counters, and encoding that again
//! must give the same bytes (the canonical form is a fixed point).

#![no_main]

use datatransfer_store::record::{decode_with, encode};
use ipld_dagcbor::Limits;
use libfuzzer_sys::fuzz_target;

/// Small bounds, so the fuzzer explores structure rather than size.
const LIMITS: Limits = Limits {
    max_bytes: 64 * 1024,
    max_depth: 32,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = decode_with(data, &LIMITS) {
        let canonical = encode(&state).expect("a decoded state is encodable");
        // Floats widen to 64 bits, so the canonical form may be longer than the input.
        let roomy = Limits {
            max_bytes: usize::MAX,
            ..LIMITS
        };
        let again = decode_with(&canonical, &roomy).expect("the canonical encoding decodes");
        assert_eq!(again.channel_id, state.channel_id);
        assert_eq!(again.status, state.status);
        assert_eq!(
            (again.queued, again.sent, again.received),
            (state.queued, state.sent, state.received)
        );
        assert_eq!(
            (
                again.received_blocks_total,
                again.queued_blocks_total,
                again.sent_blocks_total
            ),
            (
                state.received_blocks_total,
                state.queued_blocks_total,
                state.sent_blocks_total
            )
        );
        assert_eq!(again.message, state.message);
        let twice = encode(&again).expect("a decoded state is encodable");
        assert_eq!(twice, canonical, "the canonical form is a fixed point");
    }
});
