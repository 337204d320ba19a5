//! Per-peer message builders: go-graphsync's batching of responder transactions (spec §1.5).
//!
//! A peer's outbox is an ordered list of builders. Transactions join the last builder; a new
//! one is started when the transaction's block would push the last builder over the block-byte
//! limit (Go's rule), when its metadata would push it over the metadata limit (our cap on
//! metadata-only growth), or when the last builder already holds a response entry for the same
//! request id that belongs to an earlier request instance (a reused id). A transaction never
//! straddles two builders, so a block always travels with the metadata entry that names it.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use cid::Cid;

use super::{BlockRecord, TaskKey};
use crate::extension::Extensions;
use crate::message::{Block, Message, Metadatum, RequestId, Response, ResponseStatus};

/// Rough encoded size of one response entry without its metadata and extensions.
const ENTRY_OVERHEAD: usize = 40;
/// Rough encoded size of one metadata entry beyond its CID.
const METADATUM_OVERHEAD: usize = 8;
/// Rough encoded size of one block entry beyond its data.
const BLOCK_OVERHEAD: usize = 12;
/// What a queued metadata entry costs in memory beyond its block's bytes (its CID in the
/// entry, the block list and the block record, the allocations' overhead), counted in the
/// responder's memory bounds so that they bound a DAG of many small blocks too, not only its
/// bytes.
pub(super) const ENTRY_MEMORY: u64 = 512;

/// One unit of work for one request: Go's responder transaction.
#[derive(Debug)]
pub(super) struct Transaction {
    pub(super) key: TaskKey,
    pub(super) id: RequestId,
    pub(super) metadata: Option<Metadatum>,
    pub(super) block: Option<(Cid, Bytes)>,
    pub(super) extensions: Extensions,
    pub(super) status: Option<ResponseStatus>,
    pub(super) record: Option<BlockRecord>,
}

impl Transaction {
    pub(super) fn new(key: TaskKey, id: RequestId) -> Self {
        Transaction {
            key,
            id,
            metadata: None,
            block: None,
            extensions: Extensions::new(),
            status: None,
            record: None,
        }
    }

    pub(super) fn with_status(mut self, status: ResponseStatus) -> Self {
        self.status = Some(status);
        self
    }

    pub(super) fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }

    pub(super) fn block_bytes(&self) -> u64 {
        self.block.as_ref().map_or(0, |(_, data)| data.len() as u64)
    }

    /// What this transaction holds in memory while queued or in flight, as the responder's
    /// memory bounds count it: its block bytes plus [`ENTRY_MEMORY`] for a metadata entry.
    pub(super) fn memory(&self) -> u64 {
        let entry = if self.metadata.is_some() {
            ENTRY_MEMORY
        } else {
            0
        };
        self.block_bytes() + entry
    }

    fn metadata_estimate(&self) -> usize {
        let metadata = self
            .metadata
            .as_ref()
            .map_or(0, |entry| entry.link.encoded_len() + METADATUM_OVERHEAD);
        let block = self
            .block
            .as_ref()
            .map_or(0, |(cid, _)| cid.encoded_len().min(16) + BLOCK_OVERHEAD);
        metadata + block + extensions_estimate(&self.extensions)
    }
}

/// The limits a builder obeys.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_block_bytes: u64,
    pub(super) max_metadata_bytes: usize,
}

/// A finished message with what must happen once it is sent or fails.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) message: Message,
    pub(super) memory: u64,
    pub(super) entries: Vec<SentEntry>,
}

/// What one response entry of a built message carried, for the notifications.
#[derive(Debug)]
pub(super) struct SentEntry {
    pub(super) key: TaskKey,
    pub(super) id: RequestId,
    pub(super) status: ResponseStatus,
    pub(super) records: Vec<BlockRecord>,
}

#[derive(Debug)]
struct Entry {
    key: TaskKey,
    id: RequestId,
    status: Option<ResponseStatus>,
    metadata: Vec<Metadatum>,
    extensions: Extensions,
    blocks: Vec<(Cid, Bytes)>,
    block_bytes: u64,
    metadata_bytes: usize,
    /// The sum of its transactions' [`Transaction::memory`].
    memory: u64,
    records: Vec<BlockRecord>,
}

impl Entry {
    fn new(key: TaskKey, id: RequestId) -> Self {
        Entry {
            key,
            id,
            status: None,
            metadata: Vec::new(),
            extensions: Extensions::new(),
            blocks: Vec::new(),
            block_bytes: 0,
            memory: 0,
            metadata_bytes: ENTRY_OVERHEAD,
            records: Vec::new(),
        }
    }

    fn add(&mut self, txn: Transaction, metadata_bytes: usize) {
        let carries_data = txn.metadata.is_some() || txn.block.is_some();
        self.metadata_bytes += metadata_bytes;
        self.block_bytes += txn.block_bytes();
        self.memory += txn.memory();
        if let Some(entry) = txn.metadata {
            self.metadata.push(entry);
        }
        if let Some(block) = txn.block {
            self.blocks.push(block);
        }
        for (name, value) in txn.extensions {
            self.extensions.insert(name, value);
        }
        if let Some(record) = txn.record {
            self.records.push(record);
        }
        match txn.status {
            Some(status) => self.status = Some(status),
            // Data after a pause in the same message means the response was resumed: the
            // entry must not claim to be paused any more.
            None if carries_data && self.status == Some(ResponseStatus::RequestPaused) => {
                self.status = None;
            }
            None => {}
        }
    }
}

#[derive(Debug, Default)]
struct Builder {
    entries: Vec<Entry>,
    /// Position of each request id's entry in `entries`.
    index: HashMap<RequestId, usize>,
    block_bytes: u64,
    metadata_bytes: usize,
    /// The sum of its entries' memory.
    memory: u64,
}

impl Builder {
    fn build(self) -> Built {
        let mut message = Message::new();
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(self.entries.len());
        for entry in self.entries {
            for (cid, data) in entry.blocks {
                if seen.insert(cid) {
                    message.blocks.push(Block::from_cid(&cid, data));
                }
            }
            let status = entry.status.unwrap_or(ResponseStatus::PartialResponse);
            message.responses.push(
                Response::new(entry.id, status)
                    .with_metadata(entry.metadata)
                    .with_extensions(entry.extensions),
            );
            entries.push(SentEntry {
                key: entry.key,
                id: entry.id,
                status,
                records: entry.records,
            });
        }
        Built {
            message,
            memory: self.memory,
            entries,
        }
    }
}

/// The builders of one peer, oldest first.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    builders: VecDeque<Builder>,
}

impl Outbox {
    /// Adds a transaction, starting a new builder where §1.5 (or our metadata cap) says so.
    pub(super) fn push(&mut self, txn: Transaction, limits: Limits) {
        let block_bytes = txn.block_bytes();
        let metadata_bytes = txn.metadata_estimate();
        let start_new = match self.builders.back() {
            None => true,
            Some(last) => {
                (block_bytes > 0 && last.block_bytes + block_bytes > limits.max_block_bytes)
                    || (!last.entries.is_empty()
                        && last.metadata_bytes + metadata_bytes + ENTRY_OVERHEAD
                            > limits.max_metadata_bytes)
                    || last
                        .index
                        .get(&txn.id)
                        .is_some_and(|position| last.entries[*position].key != txn.key)
            }
        };
        if start_new {
            self.builders.push_back(Builder::default());
        }
        let last = self
            .builders
            .back_mut()
            .expect("a builder was just ensured");
        last.block_bytes += block_bytes;
        last.metadata_bytes += metadata_bytes;
        last.memory += txn.memory();
        match last.index.get(&txn.id) {
            Some(position) => last.entries[*position].add(txn, metadata_bytes),
            None => {
                last.metadata_bytes += ENTRY_OVERHEAD;
                last.index.insert(txn.id, last.entries.len());
                let mut entry = Entry::new(txn.key, txn.id);
                entry.add(txn, metadata_bytes);
                last.entries.push(entry);
            }
        }
    }

    /// Takes the oldest non-empty builder as a finished message.
    pub(super) fn pop(&mut self) -> Option<Built> {
        while let Some(builder) = self.builders.pop_front() {
            if !builder.entries.is_empty() {
                return Some(builder.build());
            }
        }
        None
    }

    /// Whether a message is waiting.
    pub(super) fn has_message(&self) -> bool {
        self.builders
            .iter()
            .any(|builder| !builder.entries.is_empty())
    }

    /// The number of non-empty builders.
    pub(super) fn len(&self) -> usize {
        self.builders
            .iter()
            .filter(|builder| !builder.entries.is_empty())
            .count()
    }

    /// Removes everything queued for one request instance; returns the memory freed (as
    /// [`Transaction::memory`] counts it).
    pub(super) fn purge(&mut self, key: TaskKey) -> u64 {
        let mut freed = 0;
        for builder in &mut self.builders {
            builder.entries.retain(|entry| {
                if entry.key == key {
                    freed += entry.memory;
                    false
                } else {
                    true
                }
            });
            builder.index = builder
                .entries
                .iter()
                .enumerate()
                .map(|(position, entry)| (entry.id, position))
                .collect();
            builder.block_bytes = builder.entries.iter().map(|entry| entry.block_bytes).sum();
            builder.memory = builder.entries.iter().map(|entry| entry.memory).sum();
            builder.metadata_bytes = builder
                .entries
                .iter()
                .map(|entry| entry.metadata_bytes)
                .sum();
        }
        freed
    }

    /// Empties the outbox, returning what it held (for network-error notifications).
    pub(super) fn drain(&mut self) -> Vec<Built> {
        let mut built = Vec::new();
        while let Some(message) = self.pop() {
            built.push(message);
        }
        built
    }
}

fn extensions_estimate(extensions: &Extensions) -> usize {
    extensions
        .iter()
        .map(|(name, value)| {
            let value_len = value
                .and_then(|node| ipld_dagcbor::to_vec(node).ok())
                .map_or(1, |bytes| bytes.len());
            name.as_bytes().len() + value_len + 4
        })
        .sum()
}
