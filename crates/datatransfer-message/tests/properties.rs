//! Property tests: round trips, and no panics on arbitrary or mutated input.

use bytes::BytesMut;
use datatransfer_message::testing::arb_message;
use datatransfer_message::{Limits, Message, decode, decode_prefix, encode, to_vec};
use proptest::prelude::*;

proptest! {
    #[test]
    fn decode_inverts_encode(message in arb_message()) {
        let mut out = BytesMut::new();
        encode(&message, &mut out).expect("arbitrary messages stay within the wire's ranges");
        prop_assert_eq!(decode(&out).expect("our own encoding decodes"), message.clone());
        prop_assert_eq!(to_vec(&message).expect("encodable"), out.to_vec());
    }

    #[test]
    fn node_conversion_round_trips(message in arb_message()) {
        let node = message.to_node().expect("encodable");
        prop_assert_eq!(Message::from_node(&node).expect("decodable"), message);
    }

    #[test]
    fn encoding_is_canonical(message in arb_message()) {
        let bytes = to_vec(&message).expect("encodable");
        let node = ipld_dagcbor::decode(&bytes).expect("dag-cbor");
        prop_assert_eq!(ipld_dagcbor::to_vec(&node).expect("re-encodable"), bytes);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_prefix(&bytes, &Limits::default().with_max_bytes(64).with_max_depth(8));
    }

    #[test]
    fn decode_never_panics_on_mutated_encodings(
        message in arb_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = to_vec(&message).expect("encodable");
        for (index, byte) in edits {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(decoded) = decode(&bytes) {
            // Whatever a mutation turns into, if it decodes it must re-encode, and re-encoding
            // what that decodes to must give the same bytes.
            let again = to_vec(&decoded).expect("decoded messages are encodable");
            let redecoded = decode(&again).expect("re-decodes");
            prop_assert_eq!(to_vec(&redecoded).expect("encodable"), again);
        }
        let short = &bytes[..cut.index(bytes.len())];
        let _ = decode(short);
        let _ = decode_prefix(short, &Limits::default());
    }
}
