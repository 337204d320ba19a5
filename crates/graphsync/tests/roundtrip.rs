//! Properties of both codecs and the framer: every message comes back from its encoding, and no
//! input makes a decoder panic.

use bytes::BytesMut;
use graphsync::codec::frame::{self, Frame, FrameConfig, FrameDecoder};
use graphsync::codec::v1::{self, PeerIds};
use graphsync::codec::v2;
use graphsync::testing::{FixedIds, arb_message, arb_message_v1, arb_message_v1_fixed_ids};
use proptest::prelude::*;

/// `message` with a block of `large` bytes first (the strategies' blocks are all small).
fn with_large_block(mut message: graphsync::Message, large: Vec<u8>) -> graphsync::Message {
    let prefix = graphsync::CidPrefix::v1(0x55, 0x12, 32);
    message
        .blocks
        .insert(0, graphsync::Block::new(prefix, large));
    message
}

proptest! {
    #[test]
    fn v2_pieces_and_shared_decoding_agree_with_the_plain_codec(
        message in arb_message(),
        large in prop::collection::vec(any::<u8>(), 1000..3000),
    ) {
        let message = with_large_block(message, large);
        let body = v2::to_vec(&message).expect("encodable");
        prop_assert_eq!(v2::encode_pieces(&message).expect("encodable").concat(), body.clone());
        let body = bytes::Bytes::from(body);
        prop_assert_eq!(v2::decode_shared(&body).expect("decodes"), message);
    }

    #[test]
    fn v1_pieces_and_shared_decoding_agree_with_the_plain_codec(
        message in arb_message_v1_fixed_ids(),
        large in prop::collection::vec(any::<u8>(), 1000..3000),
    ) {
        let message = with_large_block(message, large);
        let mut body = BytesMut::new();
        v1::encode(&message, &mut FixedIds, &mut body).expect("encodable");
        let pieces = v1::encode_pieces(&message, &mut FixedIds).expect("encodable");
        prop_assert_eq!(pieces.concat(), body.to_vec());
        prop_assert_eq!(v1::decode_shared(&body.freeze(), &mut FixedIds).expect("decodes"), message);
    }

    #[test]
    fn v2_decode_inverts_encode(message in arb_message()) {
        let bytes = v2::to_vec(&message).expect("strategy messages are encodable");
        prop_assert_eq!(v2::decode(&bytes).expect("own encoding decodes"), message);
    }

    #[test]
    fn v2_encoding_is_canonical_dag_cbor(message in arb_message()) {
        let bytes = v2::to_vec(&message).expect("encodable");
        let node = ipld_dagcbor::decode(&bytes).expect("dag-cbor");
        prop_assert_eq!(ipld_dagcbor::to_vec(&node).expect("re-encodable"), bytes);
    }

    #[test]
    fn v1_decode_inverts_encode_with_fixed_ids(message in arb_message_v1_fixed_ids()) {
        let mut body = BytesMut::new();
        v1::encode(&message, &mut FixedIds, &mut body).expect("encodable");
        prop_assert_eq!(v1::decode(&body, &mut FixedIds).expect("decodes"), message);
    }

    #[test]
    fn v1_requests_map_back_to_their_ids_between_two_peers(message in arb_message_v1()) {
        // A requester sends the requests, the responder answers each, and the requester
        // sees the answers under its own ids.
        let requests = graphsync::Message { requests: message.requests.clone(), ..Default::default() };
        let mut requester = PeerIds::new(1);
        let mut responder = PeerIds::new(2);
        let mut body = BytesMut::new();
        v1::encode(&requests, &mut requester, &mut body).expect("encodable");
        let received = v1::decode(&body, &mut responder).expect("decodes");
        prop_assert_eq!(received.requests.len(), requests.requests.len());
        for (sent, got) in requests.requests.iter().zip(&received.requests) {
            prop_assert_eq!(&sent.kind, &got.kind);
            prop_assert_eq!(&sent.extensions, &got.extensions);
        }
        let answers = graphsync::Message {
            responses: received
                .requests
                .iter()
                .zip(&message.responses)
                .map(|(request, response)| graphsync::Response { id: request.id, ..response.clone() })
                .collect(),
            ..Default::default()
        };
        let mut body = BytesMut::new();
        v1::encode(&answers, &mut responder, &mut body).expect("answers map back");
        let answered = v1::decode(&body, &mut requester).expect("decodes");
        for ((request, response), got) in
            requests.requests.iter().zip(&message.responses).zip(&answered.responses)
        {
            prop_assert_eq!(got.id, request.id);
            prop_assert_eq!(&got.metadata, &response.metadata);
            prop_assert_eq!(got.status, response.status);
        }
    }

    #[test]
    fn frames_come_back_whole_when_split_anywhere(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let config = FrameConfig::default();
        let mut stream = BytesMut::new();
        for body in &bodies {
            frame::write_frame(body, &config, &mut stream).expect("frameable");
        }
        let cut = cut.index(stream.len() + 1);
        let mut decoder = FrameDecoder::new(config);
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut read = Vec::new();
        while let Some(body) = decoder.decode(&mut buf).expect("valid frames") {
            read.push(body.to_vec());
        }
        buf.extend_from_slice(&stream[cut..]);
        while let Some(body) = decoder.decode(&mut buf).expect("valid frames") {
            read.push(body.to_vec());
        }
        prop_assert_eq!(read, bodies);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn v2_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = v2::decode(&bytes);
    }

    #[test]
    fn v2_decode_never_panics_on_mutated_messages(
        message in arb_message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = v2::to_vec(&message).expect("encodable");
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        let _ = v2::decode(&bytes);
    }

    #[test]
    fn v1_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = v1::decode(&bytes, &mut PeerIds::new(0));
    }

    #[test]
    fn v1_decode_never_panics_on_mutated_messages(
        message in arb_message_v1_fixed_ids(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut body = BytesMut::new();
        v1::encode(&message, &mut FixedIds, &mut body).expect("encodable");
        let mut bytes = body.to_vec();
        for (index, value) in flips {
            if !bytes.is_empty() {
                let at = index.index(bytes.len());
                bytes[at] = value;
            }
        }
        let _ = v1::decode(&bytes, &mut PeerIds::new(0));
    }

    #[test]
    fn framer_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let config = FrameConfig::default().with_max_message_size(32);
        if let Ok(Frame::Complete { body, consumed }) = frame::decode_frame(&bytes, &config) {
            prop_assert!(consumed <= bytes.len());
            prop_assert!(!body.is_empty() && body.len() <= 32);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = FrameDecoder::new(config);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}
