//! Fuzz target: `datatransfer_message::decode_with` and `decode_prefix` on arbitrary bytes,
//! under small limits.
//!
//! Decoding must never panic. When the bytes decode, the message must encode, its encoding must
//! decode to a message with the same kind, type and transfer id, and encoding that again must
//! give the same bytes (the canonical form is a fixed point). `decode_prefix` must agree with
//! `decode_with` on the prefix it reports.

#![no_main]

use datatransfer_message::{Limits, Message, decode_prefix, decode_with, to_vec};
use libfuzzer_sys::fuzz_target;

/// Small bounds, so the fuzzer explores structure rather than size.
const LIMITS: Limits = Limits {
    max_bytes: 64 * 1024,
    max_depth: 32,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode_with(data, &LIMITS) {
        check_round_trip(&message);
    }
    if let Ok((message, used)) = decode_prefix(data, &LIMITS) {
        assert!(
            used > 0 && used <= data.len(),
            "prefix length {used} of {}",
            data.len()
        );
        let whole = decode_with(&data[..used], &LIMITS).expect("the reported prefix decodes");
        assert_eq!(
            to_vec(&whole).expect("encodable"),
            to_vec(&message).expect("encodable"),
            "decode_prefix and decode_with disagree"
        );
    }
});

fn check_round_trip(message: &Message) {
    let canonical = to_vec(message).expect("a decoded message is encodable");
    // Floats widen to 64 bits, so the canonical form may be longer than the input.
    let roomy = Limits {
        max_bytes: usize::MAX,
        ..LIMITS
    };
    let again = decode_with(&canonical, &roomy).expect("the canonical encoding decodes");
    assert_eq!(again.is_request(), message.is_request());
    assert_eq!(again.message_type(), message.message_type());
    assert_eq!(again.transfer_id(), message.transfer_id());
    let twice = to_vec(&again).expect("a decoded message is encodable");
    assert_eq!(canonical, twice, "canonical encoding is not a fixed point");
}
