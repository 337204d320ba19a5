//! The versioned record format of a [`ChannelState`]: one DAG-CBOR map per channel, with an
//! explicit `Version` field.
//!
//! Field names follow Go's cbor-gen `ChannelState` (`spec/data-transfer.md` §8), so a record is
//! easy to compare with a Go datastore by eye; the bytes are not Go's (Go keeps the version
//! in a separate `/versions/current` key and writes fields in struct order). The `Stages`
//! value has Go's cbor-gen tuple layout exactly.
//!
//! | key | kind | version |
//! | --- | --- | --- |
//! | `Version` | integer: 1, 2 or 3 | 1, 2, 3 |
//! | `SelfPeer`, `Initiator`, `Responder`, `Sender`, `Recipient` | text (raw peer-id bytes) | 1, 2, 3 |
//! | `TransferID`, `TotalSize`, `Status` (Go code), `Queued`, `Sent`, `Received` | integer ≥ 0 | 1, 2, 3 |
//! | `BaseCid` | link | 1, 2, 3 |
//! | `Selector` | any value | 1, 2, 3 |
//! | `Message` | UTF-8 text | 1, 2, 3 |
//! | `Vouchers` | list of `{Type: text, Voucher: any}` | 1, 2, 3 |
//! | `VoucherResults` | list of `{Type: text, VoucherResult: any}` | 1, 2, 3 |
//! | `ReceivedBlocksTotal`, `QueuedBlocksTotal`, `SentBlocksTotal` | integer ≥ 0 | 2, 3 |
//! | `Stages` | `[[stage…]]`; stage = `[Name, Description, CreatedTime, UpdatedTime, [log…]]`; log = `[Log, UpdatedTime]`; names and lines UTF-8 text, times integers (Unix nanoseconds, `i64`) | 3 |
//!
//! Version 1 lacks the three block totals (as Go's records before v1.13.0 lacked two of
//! them); decoding it sets them to 0, so a restart after reading a version 1 record asks the
//! sender for the whole DAG again. Versions 1 and 2 lack the trace; decoding them gives an
//! empty [`ChannelStages`]. [`encode`] always writes [`CURRENT_VERSION`]. Decoding is
//! strict: a missing field, a field of the wrong kind or a field the version does not define
//! is an error, never a default.

use datatransfer_fsm::{
    ChannelStage, ChannelStages, ChannelState, ChannelStatus, StageLog, UnixNanos, Voucher,
    VoucherResult,
};
use datatransfer_message::{ChannelId, PeerId, TransferId, TypeIdentifier};
use ipld_dagcbor::{EncodeError, Limits, Map, Node, Text, write_head};

use crate::error::RecordError;

/// The version [`encode`] writes.
pub const CURRENT_VERSION: u64 = 3;

/// Every version [`decode`] reads, oldest first.
pub const SUPPORTED_VERSIONS: [u64; 3] = [1, 2, 3];

const VERSION: &str = "Version";
const SELF_PEER: &str = "SelfPeer";
const TRANSFER_ID: &str = "TransferID";
const INITIATOR: &str = "Initiator";
const RESPONDER: &str = "Responder";
const BASE_CID: &str = "BaseCid";
const SELECTOR: &str = "Selector";
const SENDER: &str = "Sender";
const RECIPIENT: &str = "Recipient";
const TOTAL_SIZE: &str = "TotalSize";
const STATUS: &str = "Status";
const QUEUED: &str = "Queued";
const SENT: &str = "Sent";
const RECEIVED: &str = "Received";
const MESSAGE: &str = "Message";
const VOUCHERS: &str = "Vouchers";
const VOUCHER_RESULTS: &str = "VoucherResults";
const RECEIVED_BLOCKS_TOTAL: &str = "ReceivedBlocksTotal";
const QUEUED_BLOCKS_TOTAL: &str = "QueuedBlocksTotal";
const SENT_BLOCKS_TOTAL: &str = "SentBlocksTotal";
const STAGES: &str = "Stages";
const TYPE: &str = "Type";
const VOUCHER: &str = "Voucher";
const VOUCHER_RESULT: &str = "VoucherResult";

/// The fields of a version 1 record.
const V1_FIELDS: &[&str] = &[
    VERSION,
    SELF_PEER,
    TRANSFER_ID,
    INITIATOR,
    RESPONDER,
    BASE_CID,
    SELECTOR,
    SENDER,
    RECIPIENT,
    TOTAL_SIZE,
    STATUS,
    QUEUED,
    SENT,
    RECEIVED,
    MESSAGE,
    VOUCHERS,
    VOUCHER_RESULTS,
];

/// The fields version 2 adds to version 1.
const V2_EXTRA_FIELDS: &[&str] = &[
    RECEIVED_BLOCKS_TOTAL,
    QUEUED_BLOCKS_TOTAL,
    SENT_BLOCKS_TOTAL,
];

/// The field version 3 adds to version 2.
const V3_EXTRA_FIELDS: &[&str] = &[STAGES];

/// The key a channel's record is stored under: Go's `ChannelID.String()`,
/// `"<initiator base58>-<responder base58>-<transfer id>"`.
///
/// Distinct channel ids give distinct keys: base58 is injective on byte strings, its alphabet
/// has no `-`, and the transfer id is decimal.
///
/// # Examples
/// ```
/// use datatransfer_message::{ChannelId, PeerId, TransferId};
///
/// let id = ChannelId::new(PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]), TransferId(7));
/// assert_eq!(datatransfer_store::record::key(&id), "2-3-7");
/// ```
pub fn key(channel: &ChannelId) -> String {
    channel.to_string()
}

/// Writes one field's value.
type WriteField = fn(&ChannelState, &mut Vec<u8>) -> Result<(), EncodeError>;

/// The record's fields with their writers, keys in canonical DAG-CBOR order (by length, then
/// bytewise): the order [`encode`] writes them in.
const CANONICAL_FIELDS: [(&str, WriteField); 21] = [
    (SENT, |state, out| put_uint(state.sent, out)),
    (QUEUED, |state, out| put_uint(state.queued, out)),
    (SENDER, |state, out| put_text(state.sender.as_bytes(), out)),
    (STAGES, |state, out| {
        write_stages(&state.stages, out);
        Ok(())
    }),
    (STATUS, |state, out| put_uint(state.status.code(), out)),
    (BASE_CID, |state, out| {
        ipld_dagcbor::encode(&Node::Link(state.base_cid), out)
    }),
    (MESSAGE, |state, out| {
        put_text(state.message.as_bytes(), out)
    }),
    (VERSION, |_, out| put_uint(CURRENT_VERSION, out)),
    (RECEIVED, |state, out| put_uint(state.received, out)),
    (SELECTOR, |state, out| {
        ipld_dagcbor::encode(&state.selector, out)
    }),
    (SELF_PEER, |state, out| {
        put_text(state.self_peer.as_bytes(), out)
    }),
    (VOUCHERS, |state, out| {
        let entries = state.vouchers.iter().map(|v| (&v.voucher_type, &v.node));
        write_typed_list(entries, state.vouchers.len(), VOUCHER, out)
    }),
    (INITIATOR, |state, out| {
        put_text(state.channel_id.initiator.as_bytes(), out)
    }),
    (RECIPIENT, |state, out| {
        put_text(state.recipient.as_bytes(), out)
    }),
    (RESPONDER, |state, out| {
        put_text(state.channel_id.responder.as_bytes(), out)
    }),
    (TOTAL_SIZE, |state, out| put_uint(state.total_size, out)),
    (TRANSFER_ID, |state, out| {
        put_uint(state.channel_id.id.value(), out)
    }),
    (VOUCHER_RESULTS, |state, out| {
        let entries = state
            .voucher_results
            .iter()
            .map(|r| (&r.result_type, &r.node));
        write_typed_list(entries, state.voucher_results.len(), VOUCHER_RESULT, out)
    }),
    (SENT_BLOCKS_TOTAL, |state, out| {
        put_uint(state.sent_blocks_total, out)
    }),
    (QUEUED_BLOCKS_TOTAL, |state, out| {
        put_uint(state.queued_blocks_total, out)
    }),
    (RECEIVED_BLOCKS_TOTAL, |state, out| {
        put_uint(state.received_blocks_total, out)
    }),
];

/// The record of `state`, in [`CURRENT_VERSION`], as canonical DAG-CBOR.
///
/// The bytes are written straight from `state` (a channel's record is written on every block
/// it moves), the same bytes as the [`Node`] tree of the record would encode to.
///
/// # Errors
/// [`RecordError::Encode`] when the selector, a voucher or a result holds an integer DAG-CBOR
/// cannot carry.
///
/// # Examples
/// See [`decode`].
pub fn encode(state: &ChannelState) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(512);
    write_head(MAP, CANONICAL_FIELDS.len() as u64, &mut out);
    for (name, write) in CANONICAL_FIELDS {
        write_text(name.as_bytes(), &mut out);
        write(state, &mut out).map_err(RecordError::Encode)?;
    }
    Ok(out)
}

const TEXT: u8 = 3;
const LIST: u8 = 4;
const MAP: u8 = 5;

fn put_uint(value: u64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    write_head(0, value, out);
    Ok(())
}

fn put_text(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    write_text(bytes, out);
    Ok(())
}

fn write_text(bytes: &[u8], out: &mut Vec<u8>) {
    write_head(TEXT, bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A list of `{Type: text, <value_key>: value}` maps (`Type` sorts first: it is shorter).
fn write_typed_list<'a>(
    entries: impl Iterator<Item = (&'a TypeIdentifier, &'a Node)>,
    len: usize,
    value_key: &str,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    write_head(LIST, len as u64, out);
    for (kind, value) in entries {
        write_head(MAP, 2, out);
        write_text(TYPE.as_bytes(), out);
        write_text(kind.as_bytes(), out);
        write_text(value_key.as_bytes(), out);
        ipld_dagcbor::encode(value, out)?;
    }
    Ok(())
}

/// Go's cbor-gen tuple layout of `ChannelStages`: `[[stage…]]`, stage =
/// `[Name, Description, CreatedTime, UpdatedTime, [[Log, UpdatedTime]…]]`.
fn write_stages(stages: &ChannelStages, out: &mut Vec<u8>) {
    write_head(LIST, 1, out);
    write_head(LIST, stages.stages.len() as u64, out);
    for stage in &stages.stages {
        write_head(LIST, 5, out);
        write_text(stage.name.as_bytes(), out);
        write_text(stage.description.as_bytes(), out);
        write_time(stage.created_time, out);
        write_time(stage.updated_time, out);
        write_head(LIST, stage.logs.len() as u64, out);
        for line in &stage.logs {
            write_head(LIST, 2, out);
            write_text(line.log.as_bytes(), out);
            write_time(line.updated_time, out);
        }
    }
}

/// A time as a CBOR integer (major type 1 below the epoch).
fn write_time(time: UnixNanos, out: &mut Vec<u8>) {
    match u64::try_from(time.0) {
        Ok(after) => write_head(0, after, out),
        Err(_) => write_head(1, time.0.unsigned_abs() - 1, out),
    }
}

/// Decodes a record of any [supported version](SUPPORTED_VERSIONS), within the default
/// [`Limits`] (10 MiB, depth 128).
///
/// # Errors
/// [`RecordError::UnsupportedVersion`] for a well-formed record of another version; any other
/// [`RecordError`] for bytes that are not a well-formed record.
///
/// # Examples
/// ```
/// use datatransfer_fsm::{ChannelStages, ChannelState, ChannelStatus};
/// use datatransfer_message::{ChannelId, PeerId, TransferId};
/// use datatransfer_store::record;
/// use ipld_dagcbor::Node;
///
/// let (me, other) = (PeerId::from_bytes(vec![1]), PeerId::from_bytes(vec![2]));
/// let state = ChannelState {
///     self_peer: me.clone(),
///     channel_id: ChannelId::new(me.clone(), other.clone(), TransferId(1)),
///     base_cid: "QmTTA2daxGqo5denp6SwLzzkLJm3fuisYEi9CoWsuHpzfb".parse()?,
///     selector: Node::empty_map(),
///     sender: other,
///     recipient: me,
///     total_size: 0,
///     status: ChannelStatus::Ongoing,
///     queued: 0,
///     sent: 0,
///     received: 1024,
///     message: String::new(),
///     vouchers: Vec::new(),
///     voucher_results: Vec::new(),
///     received_blocks_total: 3,
///     queued_blocks_total: 0,
///     sent_blocks_total: 0,
///     stages: ChannelStages::default(),
/// };
/// let bytes = record::encode(&state)?;
/// assert_eq!(record::decode(&bytes)?, state);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<ChannelState, RecordError> {
    decode_with(bytes, &Limits::default())
}

/// [`decode`] within other DAG-CBOR limits.
///
/// # Errors
/// As [`decode`]; [`RecordError::Cbor`] also when `bytes` are over `limits`.
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<ChannelState, RecordError> {
    let node = ipld_dagcbor::decode_with(bytes, limits).map_err(RecordError::Cbor)?;
    let map = node.as_map().ok_or(RecordError::NotAMap)?;
    let version = map
        .get(VERSION)
        .and_then(Node::as_integer)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or(RecordError::MissingVersion)?;
    let (with_totals, with_stages) = match version {
        1 => (false, false),
        2 => (true, false),
        3 => (true, true),
        found => return Err(RecordError::UnsupportedVersion { found }),
    };
    let defines =
        |fields: &[&str], key: &Text| fields.iter().any(|f| f.as_bytes() == key.as_bytes());
    for key in map.keys() {
        let known = defines(V1_FIELDS, key)
            || (with_totals && defines(V2_EXTRA_FIELDS, key))
            || (with_stages && defines(V3_EXTRA_FIELDS, key));
        if !known {
            return Err(RecordError::UnknownField {
                field: String::from_utf8_lossy(key.as_bytes()).into_owned(),
                version,
            });
        }
    }
    let (received_blocks_total, queued_blocks_total, sent_blocks_total) = if with_totals {
        (
            uint(map, RECEIVED_BLOCKS_TOTAL)?,
            uint(map, QUEUED_BLOCKS_TOTAL)?,
            uint(map, SENT_BLOCKS_TOTAL)?,
        )
    } else {
        (0, 0, 0)
    };
    let stages = if with_stages {
        decode_stages(field(map, STAGES)?).ok_or(RecordError::InvalidField { field: STAGES })?
    } else {
        ChannelStages::default()
    };
    let status = ChannelStatus::from_code(uint(map, STATUS)?)
        .ok_or(RecordError::InvalidField { field: STATUS })?;
    let message = field(map, MESSAGE)?
        .as_text()
        .and_then(Text::as_str)
        .ok_or(RecordError::InvalidField { field: MESSAGE })?
        .to_owned();
    let vouchers = list(map, VOUCHERS)?
        .iter()
        .map(|entry| {
            let (voucher_type, node) = typed_entry(entry, VOUCHERS, VOUCHER)?;
            Ok(Voucher::new(voucher_type, node))
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    let voucher_results = list(map, VOUCHER_RESULTS)?
        .iter()
        .map(|entry| {
            let (result_type, node) = typed_entry(entry, VOUCHER_RESULTS, VOUCHER_RESULT)?;
            Ok(VoucherResult::new(result_type, node))
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    Ok(ChannelState {
        self_peer: peer(map, SELF_PEER)?,
        channel_id: ChannelId::new(
            peer(map, INITIATOR)?,
            peer(map, RESPONDER)?,
            TransferId(uint(map, TRANSFER_ID)?),
        ),
        base_cid: *field(map, BASE_CID)?
            .as_link()
            .ok_or(RecordError::InvalidField { field: BASE_CID })?,
        selector: field(map, SELECTOR)?.clone(),
        sender: peer(map, SENDER)?,
        recipient: peer(map, RECIPIENT)?,
        total_size: uint(map, TOTAL_SIZE)?,
        status,
        queued: uint(map, QUEUED)?,
        sent: uint(map, SENT)?,
        received: uint(map, RECEIVED)?,
        message,
        vouchers,
        voucher_results,
        received_blocks_total,
        queued_blocks_total,
        sent_blocks_total,
        stages,
    })
}

/// The trace in `node`, or `None` when it does not have the layout [`write_stages`] writes.
fn decode_stages(node: &Node) -> Option<ChannelStages> {
    let [stages] = node.as_list()? else {
        return None;
    };
    let stages = stages
        .as_list()?
        .iter()
        .map(|stage| {
            let [name, description, created, updated, logs] = stage.as_list()? else {
                return None;
            };
            let logs = logs
                .as_list()?
                .iter()
                .map(|line| {
                    let [log, at] = line.as_list()? else {
                        return None;
                    };
                    Some(StageLog {
                        log: utf8(log)?,
                        updated_time: time(at)?,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(ChannelStage {
                name: utf8(name)?,
                description: utf8(description)?,
                created_time: time(created)?,
                updated_time: time(updated)?,
                logs,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ChannelStages { stages })
}

fn utf8(node: &Node) -> Option<String> {
    node.as_text()?.as_str().map(str::to_owned)
}

fn time(node: &Node) -> Option<UnixNanos> {
    i64::try_from(node.as_integer()?).ok().map(UnixNanos)
}

fn field<'a>(map: &'a Map, name: &'static str) -> Result<&'a Node, RecordError> {
    map.get(name)
        .ok_or(RecordError::MissingField { field: name })
}

fn uint(map: &Map, name: &'static str) -> Result<u64, RecordError> {
    field(map, name)?
        .as_integer()
        .and_then(|value| u64::try_from(value).ok())
        .ok_or(RecordError::InvalidField { field: name })
}

fn peer(map: &Map, name: &'static str) -> Result<PeerId, RecordError> {
    field(map, name)?
        .as_text()
        .map(|text| PeerId::from_bytes(text.as_bytes()))
        .ok_or(RecordError::InvalidField { field: name })
}

fn list<'a>(map: &'a Map, name: &'static str) -> Result<&'a [Node], RecordError> {
    field(map, name)?
        .as_list()
        .ok_or(RecordError::InvalidField { field: name })
}

/// One `{Type, <value_key>}` entry of the list `list_name`.
fn typed_entry(
    entry: &Node,
    list_name: &'static str,
    value_key: &'static str,
) -> Result<(TypeIdentifier, Node), RecordError> {
    let invalid = RecordError::InvalidField { field: list_name };
    let Some(map) = entry.as_map() else {
        return Err(invalid);
    };
    if map.len() != 2 {
        return Err(invalid);
    }
    let (Some(kind), Some(value)) = (map.get(TYPE).and_then(Node::as_text), map.get(value_key))
    else {
        return Err(invalid);
    };
    Ok((TypeIdentifier::from_bytes(kind.as_bytes()), value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_adds_distinct_fields_and_version_3_has_gos_twenty_plus_version() {
        let all: Vec<&str> = V1_FIELDS
            .iter()
            .chain(V2_EXTRA_FIELDS)
            .chain(V3_EXTRA_FIELDS)
            .copied()
            .collect();
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert_eq!(all.len(), 21, "Go's 20 record keys and Version");
    }

    #[test]
    fn the_canonical_fields_are_every_field_in_canonical_order() {
        let mut all: Vec<&str> = V1_FIELDS
            .iter()
            .chain(V2_EXTRA_FIELDS)
            .chain(V3_EXTRA_FIELDS)
            .copied()
            .collect();
        all.sort_by(|a, b| ipld_dagcbor::canonical_key_order(a.as_bytes(), b.as_bytes()));
        let written: Vec<&str> = CANONICAL_FIELDS.iter().map(|(name, _)| *name).collect();
        assert_eq!(all, written);
    }

    #[test]
    fn a_record_that_is_not_a_map_is_rejected() {
        let bytes = ipld_dagcbor::to_vec(&Node::from(2u64)).expect("small integer encodes");
        assert!(matches!(decode(&bytes), Err(RecordError::NotAMap)));
        assert!(matches!(decode(&[0xff]), Err(RecordError::Cbor(_))));
        let no_version = ipld_dagcbor::to_vec(&Node::empty_map()).expect("empty map encodes");
        assert!(matches!(
            decode(&no_version),
            Err(RecordError::MissingVersion)
        ));
    }

    #[test]
    fn unknown_versions_are_reported_with_the_version_found() {
        let bytes = ipld_dagcbor::to_vec(&Node::Map(Map::new().with(VERSION, 4u64)))
            .expect("small map encodes");
        assert!(matches!(
            decode(&bytes),
            Err(RecordError::UnsupportedVersion { found: 4 })
        ));
    }
}
