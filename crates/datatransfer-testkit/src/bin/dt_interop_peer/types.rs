//! The interop voucher and voucher-result types (`interop/dt-protocol.md`, "Types"), the
//! validator and revalidator, and the JSON forms of channels, vouchers and results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use datatransfer::libp2p::{from_libp2p, to_libp2p};
use datatransfer::{
    ChannelId, Decision, Node, PeerId, Request, RequestValidator, Revalidator, TransferId, Voucher,
    VoucherError, VoucherResult,
};
use ipld_dagcbor::Map;
use serde_json::{Value, json};

/// `InteropVoucher`: DAG-CBOR `{"ID": text, "Amount": uint}` in that (canonical) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InteropVoucher {
    pub(crate) id: String,
    pub(crate) amount: u64,
}

/// The same bytes under the type identifier `UnknownVoucher`, which no node registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnknownVoucher(pub(crate) InteropVoucher);

/// `InteropVoucherResult`: DAG-CBOR `{"Owed": uint, "Outcome": text}` in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InteropResult {
    pub(crate) owed: u64,
    pub(crate) outcome: String,
}

fn text_field(map: &Map, key: &str) -> Result<String, VoucherError> {
    map.get(key)
        .and_then(Node::as_text)
        .and_then(|text| text.as_str())
        .map(str::to_owned)
        .ok_or_else(|| VoucherError::Invalid {
            reason: format!("{key} is not a text string"),
        })
}

fn uint_field(map: &Map, key: &str) -> Result<u64, VoucherError> {
    map.get(key)
        .and_then(Node::as_integer)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| VoucherError::Invalid {
            reason: format!("{key} is not an unsigned integer"),
        })
}

fn as_map(node: &Node) -> Result<&Map, VoucherError> {
    node.as_map().ok_or_else(|| VoucherError::Invalid {
        reason: "expected a map".into(),
    })
}

impl InteropVoucher {
    fn node(&self) -> Node {
        Node::Map(
            Map::new()
                .with("ID", Node::text(self.id.as_str()))
                .with("Amount", Node::Integer(i128::from(self.amount))),
        )
    }

    fn read(node: &Node) -> Result<Self, VoucherError> {
        let map = as_map(node)?;
        Ok(InteropVoucher {
            id: text_field(map, "ID")?,
            amount: uint_field(map, "Amount")?,
        })
    }

    /// The voucher of a command's `"voucher"` field (`{"ID":…,"Amount":…}`, both optional).
    pub(crate) fn from_json(value: &Value) -> anyhow::Result<Self> {
        if value.is_null() {
            return Ok(InteropVoucher {
                id: String::new(),
                amount: 0,
            });
        }
        let id = match &value["ID"] {
            Value::Null => String::new(),
            other => other
                .as_str()
                .context("voucher ID is not a string")?
                .to_owned(),
        };
        let amount = match &value["Amount"] {
            Value::Null => 0,
            other => other
                .as_u64()
                .context("voucher Amount is not a whole number")?,
        };
        Ok(InteropVoucher { id, amount })
    }
}

impl Voucher for InteropVoucher {
    const TYPE: &'static str = "InteropVoucher";

    fn to_node(&self) -> Node {
        self.node()
    }

    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        InteropVoucher::read(node)
    }
}

impl Voucher for UnknownVoucher {
    const TYPE: &'static str = "UnknownVoucher";

    fn to_node(&self) -> Node {
        self.0.node()
    }

    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        InteropVoucher::read(node).map(UnknownVoucher)
    }
}

impl InteropResult {
    pub(crate) fn new(owed: u64, outcome: &str) -> Self {
        InteropResult {
            owed,
            outcome: outcome.to_owned(),
        }
    }

    /// The JSON form of the `dt` and `state` events.
    pub(crate) fn to_json(&self) -> Value {
        json!({"Owed": self.owed, "Outcome": self.outcome})
    }
}

impl VoucherResult for InteropResult {
    const TYPE: &'static str = "InteropVoucherResult";

    fn to_node(&self) -> Node {
        Node::Map(
            Map::new()
                .with("Owed", Node::Integer(i128::from(self.owed)))
                .with("Outcome", Node::text(self.outcome.as_str())),
        )
    }

    fn from_node(node: &Node) -> Result<Self, VoucherError> {
        let map = as_map(node)?;
        Ok(InteropResult {
            owed: uint_field(map, "Owed")?,
            outcome: text_field(map, "Outcome")?,
        })
    }
}

/// The validator of the node's flags: `--refuse`, `--accept-push`.
pub(crate) struct Validator {
    pub(crate) refuse: bool,
    pub(crate) accept_push: bool,
}

impl Validator {
    fn decide(&self, allowed: bool) -> Decision {
        if self.refuse || !allowed {
            Decision::reject("refused").with_result(&InteropResult::new(0, "refused"))
        } else {
            Decision::accept().with_result(&InteropResult::new(0, "accepted"))
        }
    }
}

impl RequestValidator<InteropVoucher> for Validator {
    fn validate_push(&self, _: &Request<'_, InteropVoucher>) -> Decision {
        self.decide(self.accept_push)
    }

    fn validate_pull(&self, _: &Request<'_, InteropVoucher>) -> Decision {
        self.decide(true)
    }
}

#[derive(Debug, Default)]
struct Account {
    unpaid: u64,
    /// What the open payment request asked for (0: none open). Blocks queued while it is
    /// open add to `unpaid` but ask nothing more until it is paid.
    asked: u64,
    finalizing: bool,
}

/// The paid-retrieval revalidator of `--pay-every BYTES [--finalize]`: as the data sender of a
/// pull it pauses whenever BYTES or more are unpaid and asks for them; a voucher whose Amount
/// covers the debt resumes it. With `--finalize` it asks for the rest at completion, if only
/// for 0.
pub(crate) struct Pricing {
    pub(crate) pay_every: u64,
    pub(crate) finalize: bool,
    accounts: Arc<Mutex<BTreeMap<ChannelId, Account>>>,
}

impl Pricing {
    pub(crate) fn new(pay_every: u64, finalize: bool) -> Self {
        Pricing {
            pay_every,
            finalize,
            accounts: Arc::default(),
        }
    }

    fn with<R>(&self, channel: &ChannelId, f: impl FnOnce(&mut Account) -> R) -> R {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        f(accounts.entry(channel.clone()).or_default())
    }
}

impl Revalidator<InteropVoucher> for Pricing {
    fn revalidate(&self, channel: &ChannelId, voucher: &InteropVoucher) -> Decision {
        if self.pay_every == 0 {
            return Decision::accept();
        }
        self.with(channel, |account| {
            if voucher.amount < account.asked {
                // Not enough: stay paused and ask again for what the request asked.
                return Decision::pause()
                    .with_result(&InteropResult::new(account.asked, "payment-required"));
            }
            account.unpaid = account.unpaid.saturating_sub(voucher.amount);
            account.asked = 0;
            let outcome = if account.finalizing {
                "settled"
            } else {
                "paid"
            };
            Decision::resume().with_result(&InteropResult::new(0, outcome))
        })
    }

    fn on_pull_data_sent(&self, channel: &ChannelId, bytes: u64) -> Option<Decision> {
        if self.pay_every == 0 {
            return None;
        }
        self.with(channel, |account| {
            account.unpaid += bytes;
            (account.asked == 0 && account.unpaid >= self.pay_every).then(|| {
                account.asked = account.unpaid;
                Decision::pause()
                    .with_result(&InteropResult::new(account.asked, "payment-required"))
            })
        })
    }

    fn on_complete(&self, channel: &ChannelId) -> Option<Decision> {
        if self.pay_every == 0 || !self.finalize {
            return None;
        }
        // As the Go peers do: the final request is made even when nothing is owed (Owed 0),
        // and the initiator's voucher settles it.
        self.with(channel, |account| {
            account.finalizing = true;
            account.asked = account.unpaid;
            Some(
                Decision::pause()
                    .with_result(&InteropResult::new(account.asked, "payment-required")),
            )
        })
    }
}

/// The peer id as text (`12D3Koo…`), or its base58 bytes when it is not a libp2p id.
pub(crate) fn peer_text(peer: &PeerId) -> String {
    to_libp2p(peer).map_or_else(|_| peer.to_base58(), |peer| peer.to_string())
}

/// `{"initiator":…, "responder":…, "id":…}`.
pub(crate) fn channel_json(channel: &ChannelId) -> Value {
    json!({
        "initiator": peer_text(&channel.initiator),
        "responder": peer_text(&channel.responder),
        "id": channel.id.0,
    })
}

/// The channel of a command's `"channel"` field.
pub(crate) fn channel_from_json(value: &Value) -> anyhow::Result<ChannelId> {
    let peer = |key: &str| -> anyhow::Result<PeerId> {
        let text = value[key]
            .as_str()
            .with_context(|| format!("channel {key} is not a string"))?;
        let peer: libp2p::PeerId = text
            .parse()
            .with_context(|| format!("channel {key} {text:?} is not a peer id"))?;
        Ok(from_libp2p(&peer))
    };
    let id = value["id"]
        .as_u64()
        .context("channel id is not a whole number")?;
    Ok(ChannelId::new(
        peer("initiator")?,
        peer("responder")?,
        TransferId(id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voucher_has_the_bytes_of_the_protocol_page() -> anyhow::Result<()> {
        let voucher = InteropVoucher {
            id: "a".into(),
            amount: 5,
        };
        let bytes = ipld_dagcbor::to_vec(&voucher.to_node())?;
        // {"ID": "a", "Amount": 5}
        let mut want = vec![0xa2, 0x62, b'I', b'D', 0x61, b'a', 0x66];
        want.extend_from_slice(b"Amount");
        want.push(0x05);
        assert_eq!(bytes, want);
        assert_eq!(InteropVoucher::from_node(&voucher.to_node())?, voucher);
        Ok(())
    }

    #[test]
    fn the_result_has_the_bytes_of_the_protocol_page() -> anyhow::Result<()> {
        let result = InteropResult::new(1000, "paid");
        let bytes = ipld_dagcbor::to_vec(&result.to_node())?;
        // {"Owed": 1000, "Outcome": "paid"}
        let mut want = vec![0xa2, 0x64];
        want.extend_from_slice(b"Owed");
        want.extend_from_slice(&[0x19, 0x03, 0xe8, 0x67]);
        want.extend_from_slice(b"Outcome");
        want.push(0x64);
        want.extend_from_slice(b"paid");
        assert_eq!(bytes, want);
        assert_eq!(InteropResult::from_node(&result.to_node())?, result);
        Ok(())
    }

    #[test]
    fn pricing_asks_every_interval_and_settles_at_the_end() {
        let peer = from_libp2p(&libp2p::PeerId::random());
        let channel = ChannelId::new(peer.clone(), peer, TransferId(1));
        let pricing = Pricing::new(100, true);
        assert_eq!(pricing.on_pull_data_sent(&channel, 60), None);
        let ask = pricing.on_pull_data_sent(&channel, 60);
        assert_eq!(
            ask,
            Some(Decision::pause().with_result(&InteropResult::new(120, "payment-required")))
        );
        // A block queued while the request is open asks nothing more.
        assert_eq!(pricing.on_pull_data_sent(&channel, 10), None);
        let short = InteropVoucher {
            id: "x".into(),
            amount: 10,
        };
        assert_eq!(
            pricing.revalidate(&channel, &short),
            Decision::pause().with_result(&InteropResult::new(120, "payment-required"))
        );
        let paid = InteropVoucher {
            id: "x".into(),
            amount: 120,
        };
        assert_eq!(
            pricing.revalidate(&channel, &paid),
            Decision::resume().with_result(&InteropResult::new(0, "paid"))
        );
        assert_eq!(pricing.on_pull_data_sent(&channel, 30), None);
        assert_eq!(
            pricing.on_complete(&channel),
            Some(Decision::pause().with_result(&InteropResult::new(40, "payment-required")))
        );
        let last = InteropVoucher {
            id: "x".into(),
            amount: 40,
        };
        assert_eq!(
            pricing.revalidate(&channel, &last),
            Decision::resume().with_result(&InteropResult::new(0, "settled"))
        );

        // Everything paid: the final request asks for 0, and a voucher of 0 settles.
        let other = ChannelId::new(channel.initiator.clone(), channel.responder, TransferId(2));
        assert_eq!(
            pricing.on_complete(&other),
            Some(Decision::pause().with_result(&InteropResult::new(0, "payment-required")))
        );
        let nothing = InteropVoucher {
            id: "x".into(),
            amount: 0,
        };
        assert_eq!(
            pricing.revalidate(&other, &nothing),
            Decision::resume().with_result(&InteropResult::new(0, "settled"))
        );
    }

    #[test]
    fn channels_read_back_from_their_json() -> anyhow::Result<()> {
        let a = from_libp2p(&libp2p::PeerId::random());
        let b = from_libp2p(&libp2p::PeerId::random());
        let channel = ChannelId::new(a, b, TransferId(42));
        assert_eq!(channel_from_json(&channel_json(&channel))?, channel);
        assert!(channel_from_json(&json!({"initiator": "x"})).is_err());
        Ok(())
    }
}
