//! Fuzz target: `ipld_dagcbor::decode_with` on arbitrary bytes, under small limits.
//!
//! Decoding must never panic, and `decode_shared` must decode exactly what `decode_with` does.
//! When the bytes decode, the canonical re-encoding must decode to the same node (NaN floats
//! compare equal to each other here), and encoding that node again must give the same bytes:
//! the canonical form is a fixed point.

#![no_main]

use ipld_dagcbor::{Limits, Node, decode_shared, decode_with, to_vec};
use libfuzzer_sys::fuzz_target;

/// Small bounds, so the fuzzer explores structure rather than size.
const LIMITS: Limits = Limits {
    max_bytes: 64 * 1024,
    max_depth: 32,
};

fuzz_target!(|data: &[u8]| {
    let decoded = decode_with(data, &LIMITS);
    let shared = decode_shared(&bytes::Bytes::copy_from_slice(data), &LIMITS);
    assert_eq!(decoded.is_ok(), shared.is_ok(), "decode_shared disagrees");
    let Ok(node) = decoded else {
        return;
    };
    assert!(
        same(&node, &shared.expect("checked above")),
        "decode_shared gives another node"
    );
    let canonical = to_vec(&node).expect("a decoded node holds only encodable integers");
    // The canonical form can be longer than the input (floats widen to 64 bits), so decode it
    // with room to spare but the same depth bound.
    let again = decode_with(
        &canonical,
        &Limits {
            max_bytes: usize::MAX,
            ..LIMITS
        },
    )
    .expect("the canonical encoding of a decoded node decodes");
    assert!(
        same(&node, &again),
        "re-decoded node differs:\n{node:?}\n{again:?}"
    );
    let twice = to_vec(&again).expect("a decoded node holds only encodable integers");
    assert_eq!(canonical, twice, "canonical encoding is not a fixed point");
});

/// Structural equality in which any two NaNs are equal.
fn same(a: &Node, b: &Node) -> bool {
    match (a, b) {
        (Node::Float(x), Node::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Node::List(xs), Node::List(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (Node::Map(xs), Node::Map(ys)) => {
            // The canonical re-encoding sorts keys, so compare entry by entry in canonical order.
            let (xs, ys) = (xs.canonical_entries(), ys.canonical_entries());
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(&ys)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}
