//! CAR (content addressable archive) reading and writing: a streaming CARv1 reader and writer,
//! a CARv2 pragma and header reader, and import into a [`Blockstore`].
//!
//! Why this crate has its own codec rather than a CAR crate: `docs/decisions/0002-car-codec.md`.
//!
//! Every error carries the byte offset (from the start of the file, CARv2 wrapper included) of
//! the item that failed, and what was wrong with it.

use std::io::{self, Read, Write};

use blockstore::Blockstore;
use cid::Cid;
use ipld_dagcbor::{Limits, Node};

use crate::blocks::{self, BlockError};

/// The 11 bytes that open every CARv2 file: a varint length 10 and the DAG-CBOR map
/// `{"version": 2}`.
pub const V2_PRAGMA: [u8; 11] = [
    0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02,
];

/// Length of the fixed CARv2 header that follows the pragma.
const V2_HEADER_LEN: u64 = 40;

/// Limits and choices for reading a CAR stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest header accepted, in bytes. Default 32 MiB, go-car's `DefaultMaxAllowedHeaderSize`.
    pub max_header_len: u64,
    /// Largest section (CID plus block) accepted, in bytes. Default 8 MiB, go-car's
    /// `DefaultMaxAllowedSectionSize`.
    pub max_section_len: u64,
    /// Treat a section of length zero as the end of the data (go-car's `ZeroLengthSectionAsEOF`).
    /// Default `false`: a zero-length section is an error.
    pub zero_length_section_as_eof: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_header_len: 32 << 20,
            max_section_len: 8 << 20,
            zero_length_section_as_eof: false,
        }
    }
}

/// Errors from reading or importing a CAR stream. Each names the byte offset where the
/// offending item starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    /// The underlying reader or writer failed.
    #[error("i/o error at offset {offset}")]
    Io {
        /// Offset reached when the error happened.
        offset: u64,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The stream ended inside an item.
    #[error("stream ends inside the {what} at offset {offset}")]
    Truncated {
        /// Offset where the cut item starts.
        offset: u64,
        /// Which item was cut ("header", "section", "section length", ...).
        what: &'static str,
    },
    /// A varint is longer than the 9 bytes a `u64` length may take.
    #[error("invalid varint at offset {offset}")]
    InvalidVarint {
        /// Offset of the varint.
        offset: u64,
    },
    /// The header length is over [`Config::max_header_len`] (or zero).
    #[error("invalid header length {length} at offset {offset} (max {max})")]
    BadHeaderLength {
        /// Offset of the length varint.
        offset: u64,
        /// The length read.
        length: u64,
        /// The limit in force.
        max: u64,
    },
    /// A section length is over [`Config::max_section_len`].
    #[error("invalid section length {length} at offset {offset} (max {max})")]
    BadSectionLength {
        /// Offset of the length varint.
        offset: u64,
        /// The length read.
        length: u64,
        /// The limit in force.
        max: u64,
    },
    /// A section of length zero (see [`Config::zero_length_section_as_eof`]).
    #[error("zero-length section at offset {offset}")]
    ZeroLengthSection {
        /// Offset of the length varint.
        offset: u64,
    },
    /// The header is not valid DAG-CBOR or lacks the fields a CAR header must have.
    #[error("invalid header at offset {offset}: {reason}")]
    InvalidHeader {
        /// Offset of the header (its length varint).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The header's version is not 1 (or 2 as a pragma).
    #[error("unsupported car version {version} at offset {offset}")]
    UnsupportedVersion {
        /// Offset of the header.
        offset: u64,
        /// The version found.
        version: i128,
    },
    /// The CARv2 fixed header is inconsistent.
    #[error("invalid carv2 header at offset {offset}: {reason}")]
    InvalidV2Header {
        /// Offset of the CARv2 header.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A section does not start with a valid CID.
    #[error("invalid cid in section at offset {offset}")]
    InvalidCid {
        /// Offset of the section.
        offset: u64,
        /// Why the CID did not parse.
        #[source]
        source: cid::Error,
    },
    /// A block failed verification or could not be stored.
    #[error("bad block in section at offset {offset}")]
    Block {
        /// Offset of the section.
        offset: u64,
        /// The verification or store error (it names the CIDs).
        #[source]
        source: BlockError,
    },
}

/// A parsed CAR header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The CAR version of the file: 1, or 2 for a CARv2 wrapper.
    pub version: u64,
    /// The root CIDs from the (inner) CARv1 header.
    pub roots: Vec<Cid>,
    /// For CARv2: the fixed header fields.
    pub v2: Option<V2Header>,
}

/// The fixed 40-byte CARv2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Header {
    /// Characteristics bitfield (bit 0 of the first byte: "fully indexed").
    pub characteristics: [u8; 16],
    /// Offset of the inner CARv1 payload from the start of the file.
    pub data_offset: u64,
    /// Length of the inner CARv1 payload.
    pub data_size: u64,
    /// Offset of the index, or 0 if there is none.
    pub index_offset: u64,
}

/// One section of a CAR: a CID and the block bytes it names (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Offset of the section (its length varint) in the file.
    pub offset: u64,
    /// The block's CID.
    pub cid: Cid,
    /// The block's bytes.
    pub data: Vec<u8>,
}

/// What [`import`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The CAR header.
    pub header: Header,
    /// Number of blocks stored (every section, duplicates included).
    pub blocks: u64,
    /// Sum of the block bytes stored.
    pub block_bytes: u64,
    /// Bytes read from the stream.
    pub bytes_read: u64,
}

/// A streaming CAR reader over any [`Read`]: holds one section at a time.
///
/// # Examples
///
/// ```
/// use dag_io::car::{Reader, Writer};
///
/// let cid = dag_io::blocks::cid_of(cid::Version::V1, 0x55, dag_io::blocks::SHA2_256, b"hi")?;
/// let mut writer = Writer::new(Vec::new(), &[cid])?;
/// writer.write_block(&cid, b"hi")?;
/// let bytes = writer.finish()?;
///
/// let mut reader = Reader::new(&bytes[..])?;
/// assert_eq!(reader.header().roots, [cid]);
/// let section = reader.next_section()?.expect("one section");
/// assert_eq!(section.data, b"hi");
/// assert!(reader.next_section()?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Reader<R> {
    inner: Counting<R>,
    header: Header,
    /// Where the CARv1 payload ends (CARv2), or `None` to read to the end of the stream.
    end: Option<u64>,
    config: Config,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Reads the header (CARv1, or CARv2 pragma, header and inner CARv1 header) with the
    /// default [`Config`].
    ///
    /// # Errors
    ///
    /// A [`CarError`] naming the offset and the problem.
    pub fn new(reader: R) -> Result<Self, CarError> {
        Self::with_config(reader, Config::default())
    }

    /// Like [`Reader::new`] with explicit limits.
    ///
    /// # Errors
    ///
    /// A [`CarError`] naming the offset and the problem.
    pub fn with_config(reader: R, config: Config) -> Result<Self, CarError> {
        let mut inner = Counting {
            inner: reader,
            offset: 0,
        };
        let (version, roots) = read_v1_header(&mut inner, &config, true)?;
        if version == 1 {
            return Ok(Self {
                inner,
                header: Header {
                    version: 1,
                    roots,
                    v2: None,
                },
                end: None,
                config,
                done: false,
            });
        }
        // CARv2: the fixed header, then skip to the payload and read its CARv1 header.
        let v2_offset = inner.offset;
        let mut fixed = [0u8; V2_HEADER_LEN as usize];
        read_exact(&mut inner, &mut fixed, v2_offset, "carv2 header")?;
        let field = |i: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&fixed[16 + 8 * i..24 + 8 * i]);
            u64::from_le_bytes(word)
        };
        let mut characteristics = [0u8; 16];
        characteristics.copy_from_slice(&fixed[..16]);
        let v2 = V2Header {
            characteristics,
            data_offset: field(0),
            data_size: field(1),
            index_offset: field(2),
        };
        let header_end = v2_offset + V2_HEADER_LEN;
        if v2.data_offset < header_end {
            return Err(CarError::InvalidV2Header {
                offset: v2_offset,
                reason: "data offset points inside the header",
            });
        }
        let end = v2
            .data_offset
            .checked_add(v2.data_size)
            .ok_or(CarError::InvalidV2Header {
                offset: v2_offset,
                reason: "data offset plus data size overflows",
            })?;
        if v2.index_offset != 0 && v2.index_offset < end {
            return Err(CarError::InvalidV2Header {
                offset: v2_offset,
                reason: "index offset points inside the data payload",
            });
        }
        let skip = v2.data_offset - header_end;
        let skipped =
            io::copy(&mut (&mut inner).take(skip), &mut io::sink()).map_err(|source| {
                CarError::Io {
                    offset: header_end,
                    source,
                }
            })?;
        if skipped != skip {
            return Err(CarError::Truncated {
                offset: header_end,
                what: "padding before the carv2 data payload",
            });
        }
        let mut limited = Counting {
            inner: (&mut inner).take(v2.data_size),
            offset: v2.data_offset,
        };
        let (inner_version, roots) = read_v1_header(&mut limited, &config, false)?;
        debug_assert_eq!(inner_version, 1, "read_v1_header only accepts 1 here");
        Ok(Self {
            inner,
            header: Header {
                version: 2,
                roots,
                v2: Some(v2),
            },
            end: Some(end),
            config,
            done: false,
        })
    }

    /// The header read by [`Reader::new`].
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.inner.offset
    }

    /// Reads the next section, or `None` at the clean end of the data. The block is not
    /// verified here: [`import`] verifies every block, and [`blocks::verify`] does it by hand.
    ///
    /// # Errors
    ///
    /// A [`CarError`] naming the section's offset and the problem. After an error the reader
    /// returns `None`.
    pub fn next_section(&mut self) -> Result<Option<Section>, CarError> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_section();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn read_section(&mut self) -> Result<Option<Section>, CarError> {
        let offset = self.inner.offset;
        let remaining = match self.end {
            Some(end) if offset >= end => return Ok(None),
            Some(end) => end - offset,
            None => u64::MAX,
        };
        let mut limited = Counting {
            inner: (&mut self.inner).take(remaining),
            offset,
        };
        let Some(length) = read_varint(&mut limited, "section length")? else {
            return Ok(None);
        };
        if length == 0 {
            if self.config.zero_length_section_as_eof {
                return Ok(None);
            }
            return Err(CarError::ZeroLengthSection { offset });
        }
        if length > self.config.max_section_len {
            return Err(CarError::BadSectionLength {
                offset,
                length,
                max: self.config.max_section_len,
            });
        }
        let body = read_body(&mut limited, length, offset, "section")?;
        let mut cursor = &body[..];
        let cid = Cid::read_bytes(&mut cursor)
            .map_err(|source| CarError::InvalidCid { offset, source })?;
        let data = cursor.to_vec();
        Ok(Some(Section { offset, cid, data }))
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Section, CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_section().transpose()
    }
}

/// Streams a CARv1 or CARv2 into `store`, verifying every block before it is stored.
///
/// Blocks are stored as they are read; if a later section is bad, the blocks before it stay
/// in the store (each of them verified) and the error names the bad section's offset.
///
/// # Errors
///
/// A [`CarError`] naming the offset and the problem; [`CarError::Block`] wraps a
/// [`BlockError`] naming both CIDs when a block's bytes do not match.
pub async fn import<R: Read, B: Blockstore>(
    reader: R,
    store: &B,
) -> Result<ImportSummary, CarError> {
    import_with(reader, store, Config::default()).await
}

/// Like [`import`] with explicit limits.
///
/// # Errors
///
/// As [`import`].
pub async fn import_with<R: Read, B: Blockstore>(
    reader: R,
    store: &B,
    config: Config,
) -> Result<ImportSummary, CarError> {
    let mut reader = Reader::with_config(reader, config)?;
    let mut blocks_stored = 0u64;
    let mut block_bytes = 0u64;
    while let Some(section) = reader.next_section()? {
        blocks::put_verified(store, &section.cid, &section.data)
            .await
            .map_err(|source| CarError::Block {
                offset: section.offset,
                source,
            })?;
        blocks_stored += 1;
        block_bytes += section.data.len() as u64;
    }
    Ok(ImportSummary {
        header: reader.header.clone(),
        blocks: blocks_stored,
        block_bytes,
        bytes_read: reader.inner.offset,
    })
}

/// A streaming CARv1 writer.
#[derive(Debug)]
pub struct Writer<W> {
    inner: W,
    offset: u64,
}

impl<W: Write> Writer<W> {
    /// Writes a CARv1 header with `roots`.
    ///
    /// # Errors
    ///
    /// [`CarError::Io`] if writing fails.
    pub fn new(inner: W, roots: &[Cid]) -> Result<Self, CarError> {
        let mut writer = Self { inner, offset: 0 };
        let header = Node::Map(
            ipld_dagcbor::Map::new()
                .with(
                    "roots",
                    Node::List(roots.iter().copied().map(Node::Link).collect()),
                )
                .with("version", Node::Integer(1)),
        );
        let bytes = ipld_dagcbor::to_vec(&header).map_err(|e| CarError::InvalidHeader {
            offset: 0,
            reason: e.to_string(),
        })?;
        writer.write_frame(&[&bytes])?;
        Ok(writer)
    }

    /// Appends one section. The caller vouches that `data` matches `cid`.
    ///
    /// # Errors
    ///
    /// [`CarError::Io`] if writing fails.
    pub fn write_block(&mut self, cid: &Cid, data: &[u8]) -> Result<(), CarError> {
        let cid_bytes = cid.to_bytes();
        self.write_frame(&[&cid_bytes, data])
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Flushes and returns the inner writer.
    ///
    /// # Errors
    ///
    /// [`CarError::Io`] if flushing fails.
    pub fn finish(mut self) -> Result<W, CarError> {
        self.inner.flush().map_err(|source| CarError::Io {
            offset: self.offset,
            source,
        })?;
        Ok(self.inner)
    }

    fn write_frame(&mut self, parts: &[&[u8]]) -> Result<(), CarError> {
        let length: usize = parts.iter().map(|p| p.len()).sum();
        let mut varint = [0u8; 10];
        let varint = encode_varint(length as u64, &mut varint);
        let offset = self.offset;
        let io = |source| CarError::Io { offset, source };
        self.inner.write_all(varint).map_err(io)?;
        for part in parts {
            self.inner.write_all(part).map_err(io)?;
        }
        self.offset += (varint.len() + length) as u64;
        Ok(())
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Blocks written (each distinct block once).
    pub blocks: u64,
    /// Sum of the block bytes written.
    pub block_bytes: u64,
    /// Bytes written in all, header included.
    pub bytes_written: u64,
}

/// Errors from [`export`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing the CAR failed.
    #[error("writing the car failed")]
    Write(#[source] CarError),
    /// A block the selector reaches is not in the store.
    #[error("block {cid} at path `{path}` is missing from the store")]
    MissingBlock {
        /// The missing block.
        cid: Box<Cid>,
        /// Its path from the root.
        path: String,
    },
    /// A stored block failed verification, or the store failed.
    #[error("cannot read a block for export")]
    Block(#[source] BlockError),
    /// The selector traversal failed (a block that does not decode, a rejected selector, ...).
    #[error("selector traversal failed")]
    Traversal(#[source] Box<ipld_selector::TraversalError>),
}

/// Writes the DAG under `root` selected by `selector` as a CARv1 with `root` as its only root,
/// blocks in the order the traversal loads them (go-ipld-prime's order, the order graphsync
/// sends them), each distinct block once. Every block is verified as it is read from the store.
///
/// # Errors
///
/// [`ExportError::MissingBlock`] if the store lacks a block the selector reaches (the CAR
/// written so far is incomplete), and the other [`ExportError`] variants.
///
/// # Examples
///
/// ```
/// use blockstore::InMemoryBlockstore;
/// use dag_io::{car, unixfs};
/// use ipld_selector::{Config, Selector};
///
/// let store = InMemoryBlockstore::<64>::new();
/// let options = unixfs::ImportOptions { chunk_size: 4, ..Default::default() };
/// let file = pollster::block_on(unixfs::import_file(&b"hello world"[..], &store, &options))?;
/// let config = Config::default().with_max_recursion_depth(None);
/// let selector = Selector::explore_all_recursively();
/// let (bytes, summary) =
///     pollster::block_on(car::export(&store, &file.root, &selector, config, Vec::new()))?;
/// assert_eq!(summary.blocks, 4); // the root and three leaves
/// assert_eq!(summary.bytes_written, bytes.len() as u64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn export<B: Blockstore, W: Write>(
    store: &B,
    root: &Cid,
    selector: &ipld_selector::Selector,
    config: ipld_selector::Config,
    out: W,
) -> Result<(W, ExportSummary), ExportError> {
    use ipld_selector::{Step, Traversal};

    let mut traversal =
        Traversal::new(*root, selector, config).map_err(|e| ExportError::Traversal(Box::new(e)))?;
    let mut writer = Writer::new(out, &[*root]).map_err(ExportError::Write)?;
    let mut written = std::collections::HashSet::new();
    let mut summary = ExportSummary {
        blocks: 0,
        block_bytes: 0,
        bytes_written: 0,
    };
    loop {
        let (cid, path) = match traversal
            .next()
            .map_err(|e| ExportError::Traversal(Box::new(e)))?
        {
            Step::Load(load) => (load.cid, load.path.to_string()),
            Step::Visit(_) => continue,
            Step::Done => break,
        };
        let data = if cid.hash().code() == blocks::IDENTITY {
            Some(cid.hash().digest().to_vec())
        } else {
            blocks::get_verified(store, &cid)
                .await
                .map_err(ExportError::Block)?
        };
        let Some(data) = data else {
            return Err(ExportError::MissingBlock {
                cid: Box::new(cid),
                path,
            });
        };
        if written.insert(cid) {
            writer
                .write_block(&cid, &data)
                .map_err(ExportError::Write)?;
            summary.blocks += 1;
            summary.block_bytes += data.len() as u64;
        }
        traversal
            .provide(&data)
            .map_err(|e| ExportError::Traversal(Box::new(e)))?;
    }
    summary.bytes_written = writer.offset();
    let out = writer.finish().map_err(ExportError::Write)?;
    Ok((out, summary))
}

/// Writes `value` as an unsigned LEB128 varint into `buf` and returns the used part.
pub(crate) fn encode_varint(mut value: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buf[i] = byte;
            return &buf[..=i];
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
}

/// A reader that counts the bytes it hands out.
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Reads a varint; `None` if the stream ends before its first byte.
fn read_varint<R: Read>(
    reader: &mut Counting<R>,
    what: &'static str,
) -> Result<Option<u64>, CarError> {
    let offset = reader.offset;
    let mut value = 0u64;
    for i in 0..9 {
        let mut byte = [0u8; 1];
        let n = loop {
            match reader.read(&mut byte) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(CarError::Io { offset, source }),
            }
        };
        if n == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(CarError::Truncated { offset, what });
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if byte[0] == 0 && i > 0 {
                // Not minimally encoded.
                return Err(CarError::InvalidVarint { offset });
            }
            return Ok(Some(value));
        }
    }
    Err(CarError::InvalidVarint { offset })
}

fn read_exact<R: Read>(
    reader: &mut Counting<R>,
    buf: &mut [u8],
    offset: u64,
    what: &'static str,
) -> Result<(), CarError> {
    reader.read_exact(buf).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            CarError::Truncated { offset, what }
        } else {
            CarError::Io { offset, source }
        }
    })
}

/// Reads `length` bytes (already checked against a limit) without trusting `length` for the
/// allocation: the buffer grows only as bytes arrive.
fn read_body<R: Read>(
    reader: &mut Counting<R>,
    length: u64,
    offset: u64,
    what: &'static str,
) -> Result<Vec<u8>, CarError> {
    let mut body = Vec::with_capacity(length.min(64 * 1024) as usize);
    let n = reader
        .take(length)
        .read_to_end(&mut body)
        .map_err(|source| CarError::Io { offset, source })?;
    if n as u64 != length {
        return Err(CarError::Truncated { offset, what });
    }
    Ok(body)
}

/// Reads a length-prefixed DAG-CBOR CAR header. With `allow_v2`, a `{"version": 2}` pragma is
/// accepted and returned as version 2 with no roots.
fn read_v1_header<R: Read>(
    reader: &mut Counting<R>,
    config: &Config,
    allow_v2: bool,
) -> Result<(u64, Vec<Cid>), CarError> {
    let offset = reader.offset;
    let length = read_varint(reader, "header length")?.ok_or(CarError::Truncated {
        offset,
        what: "header length",
    })?;
    if length == 0 || length > config.max_header_len {
        return Err(CarError::BadHeaderLength {
            offset,
            length,
            max: config.max_header_len,
        });
    }
    let body = read_body(reader, length, offset, "header")?;
    let invalid = |reason: String| CarError::InvalidHeader { offset, reason };
    let limits = Limits::default().with_max_bytes(body.len());
    let node = ipld_dagcbor::decode_with(&body, &limits).map_err(|e| invalid(e.to_string()))?;
    let map = node
        .as_map()
        .ok_or_else(|| invalid("header is not a map".into()))?;
    let version = map
        .get("version")
        .and_then(Node::as_integer)
        .ok_or_else(|| invalid("header has no integer version".into()))?;
    match version {
        1 => {}
        2 if allow_v2 => {
            if body[..] != V2_PRAGMA[1..] {
                return Err(invalid(
                    "carv2 pragma is not exactly {\"version\": 2}".into(),
                ));
            }
            return Ok((2, Vec::new()));
        }
        version => return Err(CarError::UnsupportedVersion { offset, version }),
    }
    let roots = map
        .get("roots")
        .and_then(Node::as_list)
        .ok_or_else(|| invalid("header has no roots list".into()))?;
    let roots = roots
        .iter()
        .map(|root| root.as_link().copied())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("a root is not a cid".into()))?;
    // An empty roots list is accepted (go-car's block reader accepts it too); a caller that
    // needs a root checks `Header::roots`.
    Ok((1, roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_and_rejects_overlong() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX >> 1] {
            let mut buf = [0u8; 10];
            let bytes = encode_varint(value, &mut buf).to_vec();
            let mut reader = Counting {
                inner: &bytes[..],
                offset: 0,
            };
            assert_eq!(read_varint(&mut reader, "test").unwrap(), Some(value));
            assert_eq!(reader.offset, bytes.len() as u64);
        }
        let overlong = [0xffu8; 10];
        let mut reader = Counting {
            inner: &overlong[..],
            offset: 0,
        };
        assert!(matches!(
            read_varint(&mut reader, "test"),
            Err(CarError::InvalidVarint { offset: 0 })
        ));
        let non_minimal = [0x80u8, 0x00];
        let mut reader = Counting {
            inner: &non_minimal[..],
            offset: 0,
        };
        assert!(matches!(
            read_varint(&mut reader, "test"),
            Err(CarError::InvalidVarint { offset: 0 })
        ));
    }

    #[test]
    fn pragma_constant_is_the_dagcbor_version_two_map() {
        let node = Node::Map(ipld_dagcbor::Map::new().with("version", Node::Integer(2)));
        assert_eq!(ipld_dagcbor::to_vec(&node).unwrap(), V2_PRAGMA[1..]);
        assert_eq!(usize::from(V2_PRAGMA[0]), V2_PRAGMA.len() - 1);
    }
}
