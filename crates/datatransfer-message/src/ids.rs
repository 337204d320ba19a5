//! Identifiers carried by data-transfer messages: [`PeerId`], [`TransferId`], [`ChannelId`]
//! and [`TypeIdentifier`].

use std::fmt;

/// A libp2p peer id as the data-transfer wire carries it: the raw multihash bytes.
///
/// Go writes these bytes into CBOR *text* strings although they are generally not UTF-8
/// (`00 24 08 01 12 20 …` for Ed25519 identity ids, `12 20 …` for sha2-256 ids), so the bytes
/// are kept as they are and never validated. [`Display`](fmt::Display) prints base58btc, the
/// form Go prints (`12D3KooW…`, `Qm…`).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(Vec<u8>);

impl PeerId {
    /// A peer id holding these raw multihash bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        PeerId(bytes.into())
    }

    /// The raw multihash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw multihash bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Whether this is the empty peer id that Go's zero `ChannelID` holds.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The base58btc form, as Go's `peer.ID.String()` prints it.
    pub fn to_base58(&self) -> String {
        bs58::encode(&self.0).into_string()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.to_base58())
    }
}

impl From<Vec<u8>> for PeerId {
    fn from(bytes: Vec<u8>) -> Self {
        PeerId(bytes)
    }
}

impl From<&[u8]> for PeerId {
    fn from(bytes: &[u8]) -> Self {
        PeerId(bytes.to_vec())
    }
}

/// The id an initiator gives a transfer; unique per initiator only.
///
/// Go holds it as a `uint64`, but the wire type is a signed 64-bit `Int`: only
/// `0 ..= TransferId::MAX_WIRE` can be sent or received (`spec/data-transfer.md` §1.2). A larger
/// value can exist in memory; [`encode`](crate::encode) refuses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferId(pub u64);

impl TransferId {
    /// The largest id the wire can carry: 2⁶³ − 1.
    pub const MAX_WIRE: u64 = i64::MAX as u64;

    /// The id as a number.
    pub fn value(self) -> u64 {
        self.0
    }

    /// Whether the wire can carry this id.
    pub fn fits_wire(self) -> bool {
        self.0 <= Self::MAX_WIRE
    }
}

impl From<u64> for TransferId {
    fn from(value: u64) -> Self {
        TransferId(value)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The identity of one channel: who opened it, who answers, and the initiator's transfer id.
///
/// On the wire (only in `RestartChannel`) it is the tuple `[initiator, responder, id]`.
/// [`Display`](fmt::Display) prints Go's `ChannelID.String()`:
/// `"<initiatorB58>-<responderB58>-<id>"`, used as datastore key and connection tag.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId {
    /// The peer that opened the channel and chose the transfer id.
    pub initiator: PeerId,
    /// The peer that validates the initiator's voucher.
    pub responder: PeerId,
    /// The initiator's transfer id.
    pub id: TransferId,
}

impl ChannelId {
    /// A channel id from its three parts.
    pub fn new(initiator: PeerId, responder: PeerId, id: TransferId) -> Self {
        ChannelId {
            initiator,
            responder,
            id,
        }
    }

    /// The peer on the other side from `this_peer`: the responder if `this_peer` is the
    /// initiator, else the initiator (Go's `OtherParty`).
    pub fn other_party(&self, this_peer: &PeerId) -> &PeerId {
        if *this_peer == self.initiator {
            &self.responder
        } else {
            &self.initiator
        }
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.initiator, self.responder, self.id)
    }
}

/// The name of a voucher or voucher-result type, such as `"FakeDTType"`.
///
/// The empty identifier means "no voucher" or "no result" (Go's `EmptyTypeIdentifier`). The
/// bytes are kept as received: Go's `string` need not be UTF-8.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeIdentifier(Vec<u8>);

impl TypeIdentifier {
    /// The empty identifier: no voucher or result.
    pub const EMPTY: TypeIdentifier = TypeIdentifier(Vec::new());

    /// An identifier from a name.
    pub fn new(name: impl Into<String>) -> Self {
        TypeIdentifier(name.into().into_bytes())
    }

    /// An identifier holding these bytes, UTF-8 or not.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        TypeIdentifier(bytes.into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The name, if its bytes are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Whether this is the empty identifier.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for TypeIdentifier {
    fn from(name: &str) -> Self {
        TypeIdentifier::new(name)
    }
}

impl From<String> for TypeIdentifier {
    fn from(name: String) -> Self {
        TypeIdentifier::new(name)
    }
}

impl fmt::Display for TypeIdentifier {
    /// Prints the name, with bytes that are not valid UTF-8 replaced by U+FFFD.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for TypeIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(name) => write!(f, "TypeIdentifier({name:?})"),
            None => write!(f, "TypeIdentifier(0x{})", hex_string(&self.0)),
        }
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("test hex is valid"))
            .collect()
    }

    #[test]
    fn peer_ids_print_as_base58btc() {
        let ed25519 = PeerId::from_bytes(hex(
            "00240801122099fb7749b4e3a4a29f965fa45303edf880f255286eb379e72ee58feef5f6c229",
        ));
        assert_eq!(
            ed25519.to_string(),
            "12D3KooWLBSwj2iHG5CZCKkY1WSh4AXnzFhKs7xXhBhDxPLdxvqW"
        );
        let sha256 = PeerId::from_bytes(hex(
            "1220cbbed28c9b4acbe27e0556bd875e3578b314915e3f337bf46414ac660542ef1a",
        ));
        assert_eq!(
            sha256.to_string(),
            "Qmc3zEfwzFNtU8d58gSy4PyXwQ5Q7b4kPz2UMHQy3du2NM"
        );
    }

    #[test]
    fn channel_ids_print_as_go_does() {
        let chid = ChannelId::new(
            PeerId::from_bytes(hex(
                "1220cbbed28c9b4acbe27e0556bd875e3578b314915e3f337bf46414ac660542ef1a",
            )),
            PeerId::from_bytes(vec![0x00, 0x01, 0x61]),
            TransferId(42),
        );
        assert_eq!(
            chid.to_string(),
            "Qmc3zEfwzFNtU8d58gSy4PyXwQ5Q7b4kPz2UMHQy3du2NM-176-42"
        );
    }

    #[test]
    fn other_party_is_the_peer_on_the_other_side() {
        let (a, b) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
        let chid = ChannelId::new(a.clone(), b.clone(), TransferId(1));
        assert_eq!(chid.other_party(&a), &b);
        assert_eq!(chid.other_party(&b), &a);
    }

    #[test]
    fn transfer_ids_fit_the_wire_up_to_i64_max() {
        assert!(TransferId(TransferId::MAX_WIRE).fits_wire());
        assert!(!TransferId(TransferId::MAX_WIRE + 1).fits_wire());
    }

    #[test]
    fn type_identifiers_keep_raw_bytes() {
        assert!(TypeIdentifier::EMPTY.is_empty());
        assert_eq!(
            TypeIdentifier::from("FakeDTType").as_str(),
            Some("FakeDTType")
        );
        let raw = TypeIdentifier::from_bytes(vec![0xff, 0x00]);
        assert_eq!(raw.as_str(), None);
        assert_eq!(format!("{raw:?}"), "TypeIdentifier(0xff00)");
    }
}
