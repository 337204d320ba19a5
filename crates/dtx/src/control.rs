//! The local control socket of a running `dtx serve`, and the client side of `dtx channels
//! [--watch]` and `dtx cancel|pause|resume|restart <CHANNEL>`.
//!
//! `dtx serve` listens on a Unix-domain socket at `<data-dir>/control.sock` ([`socket_path`]),
//! readable and writable by its owner only (0600). Each connection carries one request, a JSON
//! object on one line, and gets JSON lines back:
//!
//! | request | answers |
//! | --- | --- |
//! | `{"op":"channels"}` | one `{"answer":"channels","channels":[…]}` |
//! | `{"op":"watch"}` | `{"answer":"channels",…}`, then `{"answer":"update","channel":{…}}` per change until the client hangs up (a fresh `channels` answer after the server fell behind) |
//! | `{"op":"pause","channel":"…"}` (also `cancel`, `resume`, `restart`) | one `{"answer":"done","op":"pause","channel":{…}}` or `{"answer":"error","message":"…"}` |
//!
//! A channel is a [`ChannelView`]. On the command line and in requests a channel is named by its
//! full id `<initiator-peer>-<responder-peer>-<transfer-id>`, by its transfer id alone, or by
//! a prefix or a suffix (`-42`) of the full id that fits exactly one known channel; [`resolve`]
//! says which. A name that fits several channels is refused.
//!
//! Server: [`serve`] binds the socket (a stale socket left by a crashed serve is replaced; a
//! live one is an [`ControlError::AlreadyRunning`] error) and answers for a [`ControlTarget`],
//! implemented here for [`datatransfer::Manager`]. Client: [`channels`] and
//! [`channel_command`] print to standard output; their `_to` forms write to any writer.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use datatransfer::{
    ChannelId, ChannelState, ChannelStatus, Event, Manager, Network, Subscription,
    SubscriptionError, Transport,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The longest request line the server reads, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The most connections the server answers at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 32;

/// How long the server waits for a client's request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a watch sends the progress (bytes, blocks) of channels whose status did not
/// change; status changes go out at once.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// The path of the control socket of the data directory `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// What the control socket acts on: a node's channels. [`serve`] answers requests with it.
///
/// Implemented for [`datatransfer::Manager`]; tests may implement it over anything.
pub trait ControlTarget: Send + Sync + 'static {
    /// Every channel the node knows, finished ones included.
    ///
    /// # Errors
    /// When the channel store cannot be read.
    fn channels(&self) -> Result<Vec<ChannelState>, datatransfer::Error>;

    /// One channel's state.
    ///
    /// # Errors
    /// For an unknown channel.
    fn channel(&self, channel: &ChannelId) -> Result<ChannelState, datatransfer::Error>;

    /// A subscription to every event of the node.
    fn subscribe(&self) -> Subscription;

    /// Runs `op` on `channel`.
    ///
    /// # Errors
    /// When the node refuses the command (unknown or finished channel, a transport that
    /// cannot pause…).
    fn apply(&self, op: Op, channel: &ChannelId) -> Result<(), datatransfer::Error>;
}

impl<T, N> ControlTarget for Manager<T, N>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    fn channels(&self) -> Result<Vec<ChannelState>, datatransfer::Error> {
        Ok(self.in_progress_channels()?.into_values().collect())
    }

    fn channel(&self, channel: &ChannelId) -> Result<ChannelState, datatransfer::Error> {
        self.channel_state(channel)
    }

    fn subscribe(&self) -> Subscription {
        Manager::subscribe(self)
    }

    fn apply(&self, op: Op, channel: &ChannelId) -> Result<(), datatransfer::Error> {
        match op {
            Op::Cancel => self.close(channel),
            Op::Pause => self.pause(channel),
            Op::Resume => self.resume(channel),
            Op::Restart => self.restart_channel(channel),
        }
    }
}

/// A command on one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Cancel the channel (both ends end `Cancelled`).
    Cancel,
    /// Pause the local side.
    Pause,
    /// Resume the local side.
    Resume,
    /// Restart the channel (after a disconnection or a restart of either node).
    Restart,
}

impl Op {
    /// Every command.
    pub const ALL: [Op; 4] = [Op::Cancel, Op::Pause, Op::Resume, Op::Restart];

    /// The command's name on the command line and in requests.
    pub fn name(self) -> &'static str {
        match self {
            Op::Cancel => "cancel",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Restart => "restart",
        }
    }

    /// The past tense, for what the client prints.
    pub fn done(self) -> &'static str {
        match self {
            Op::Cancel => "cancelled",
            Op::Pause => "paused",
            Op::Resume => "resumed",
            Op::Restart => "restarted",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = ControlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == text)
            .ok_or_else(|| ControlError::UnknownOp {
                op: text.to_owned(),
            })
    }
}

/// Which way the data of a channel flows, seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// This node receives the data.
    In,
    /// This node sends the data.
    Out,
}

/// What the control socket tells about one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    /// The full id, `<initiator>-<responder>-<transfer id>`.
    pub id: String,
    /// The transfer id alone.
    pub transfer_id: u64,
    /// `true` for a pull (the initiator receives), `false` for a push.
    pub pull: bool,
    /// Whether this node opened the channel.
    pub initiator: bool,
    /// Which way the data flows for this node.
    pub direction: Direction,
    /// The other peer (base58).
    pub peer: String,
    /// Go's status name (`Ongoing`, `Completed`, …).
    pub status: String,
    /// Whether the status is final (`Completed`, `Failed`, `Cancelled`).
    pub finished: bool,
    /// The channel's last message (an error's text, mostly); empty when none.
    pub message: String,
    /// The root of the DAG.
    pub root: String,
    /// Bytes of new blocks moved in this node's direction: received when `direction` is
    /// `in`, sent when `out`.
    pub bytes: u64,
    /// Blocks moved in this node's direction (the highest block index, as Go counts them).
    pub blocks: u64,
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
    /// The DAG's size when known (Go's `TotalSize`; 0, unknown, for every channel today).
    pub total: u64,
}

impl ChannelView {
    /// The view of `state`.
    pub fn of(state: &ChannelState) -> Self {
        let direction = if state.is_sender() {
            Direction::Out
        } else {
            Direction::In
        };
        let (bytes, blocks) = match direction {
            Direction::In => (state.received, state.received_blocks_total),
            Direction::Out => (state.sent, state.sent_blocks_total),
        };
        ChannelView {
            id: state.channel_id.to_string(),
            transfer_id: state.channel_id.id.value(),
            pull: state.is_pull(),
            initiator: state.is_initiator(),
            direction,
            peer: state.other_peer().to_string(),
            status: state.status.to_string(),
            finished: state.status.is_terminal(),
            message: state.message.clone(),
            root: state.base_cid.to_string(),
            bytes,
            blocks,
            sent: state.sent,
            received: state.received,
            total: state.total_size,
        }
    }

    /// `pull in`, `pull out`, `push in` or `push out`.
    pub fn direction_label(&self) -> &'static str {
        match (self.pull, self.direction) {
            (true, Direction::In) => "pull in",
            (true, Direction::Out) => "pull out",
            (false, Direction::In) => "push in",
            (false, Direction::Out) => "push out",
        }
    }

    /// The progress column: a percentage when the DAG's size is known, else the block count.
    pub fn progress(&self) -> String {
        if self.total > 0 {
            let percent = (self.bytes.min(self.total) as f64) * 100.0 / (self.total as f64);
            format!("{percent:.1}%")
        } else if self.blocks == 1 {
            "1 block".to_owned()
        } else {
            format!("{} blocks", self.blocks)
        }
    }
}

/// Why the control socket could not be served or reached, or refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Nothing answers on the data directory's socket.
    #[error("no dtx serve is running on {}: start one with `dtx serve`", dir.display())]
    NoServe {
        /// The data directory.
        dir: PathBuf,
    },
    /// Another `dtx serve` answers on the socket.
    #[error(
        "another dtx serve is already running on {}: stop it first or use another --data-dir",
        dir.display()
    )]
    AlreadyRunning {
        /// The data directory.
        dir: PathBuf,
    },
    /// The socket's path holds something that is not a socket; it is left alone.
    #[error("{} exists and is not a socket: move it away", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket could not be created, read or written.
    #[error("control socket {} failed", path.display())]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The other side sent something that is not the control protocol.
    #[error("control socket protocol error: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The serve refused the request.
    #[error("{message}")]
    Refused {
        /// The serve's reason.
        message: String,
    },
    /// The serve stopped while the client was waiting.
    #[error("the dtx serve stopped")]
    Closed,
    /// A command name that is not one of cancel, pause, resume, restart.
    #[error("unknown command {op:?}: expected cancel, pause, resume or restart")]
    UnknownOp {
        /// The name given.
        op: String,
    },
}

/// The channel of `channels` that `name` names: its full id; else the one channel with that
/// transfer id; else the one channel whose full id starts or ends with `name`.
///
/// # Errors
/// [`ControlError::Refused`] when no channel or several fit.
pub fn resolve<'a>(
    name: &str,
    channels: impl IntoIterator<Item = &'a ChannelId>,
) -> Result<ChannelId, ControlError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ControlError::Refused {
            message: "empty channel name".to_owned(),
        });
    }
    let mut by_id = Vec::new();
    let mut by_part = Vec::new();
    for channel in channels {
        let full = channel.to_string();
        if full == name {
            return Ok(channel.clone());
        }
        if channel.id.value().to_string() == name {
            by_id.push(channel.clone());
        } else if full.starts_with(name) || full.ends_with(name) {
            by_part.push(channel.clone());
        }
    }
    let fits = if by_id.is_empty() { by_part } else { by_id };
    let mut fits = fits.into_iter();
    match (fits.next(), fits.len()) {
        (Some(channel), 0) => Ok(channel),
        (None, _) => Err(ControlError::Refused {
            message: format!("no channel matches {name:?}: see `dtx channels`"),
        }),
        (Some(_), more) => Err(ControlError::Refused {
            message: format!("{} channels match {name:?}: give more of the id", more + 1),
        }),
    }
}

/// A running control socket server; dropping it stops the server and removes the socket.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    inode: (u64, u64),
    task: JoinHandle<()>,
}

impl ControlServer {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        // Remove the socket only if it is still ours: a later serve may have replaced it.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.inode
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Serves the control socket at `path` for `target`, in a task of the current runtime, until
/// the returned handle is dropped.
///
/// The socket is made under a temporary name, restricted to its owner (0600) and then renamed
/// into place, so it is never reachable by others. A socket at `path` that nobody answers on
/// (left by a serve that crashed) is replaced.
///
/// # Errors
/// [`ControlError::AlreadyRunning`] when a serve answers on `path`;
/// [`ControlError::NotASocket`] when `path` is another kind of file; [`ControlError::Io`] when
/// the socket cannot be made.
pub async fn serve(
    path: &Path,
    target: Arc<dyn ControlTarget>,
) -> Result<ControlServer, ControlError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let io_error = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ControlError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match UnixStream::connect(path).await {
            Ok(_) => return Err(ControlError::AlreadyRunning { dir }),
            Err(error) if is_nobody_there(&error) => {
                tracing::info!(path = %path.display(), "replacing a stale control socket");
            }
            Err(error) => return Err(io_error(error)),
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(error)),
    }
    let temporary = dir.join(format!(".{SOCKET_NAME}.{}", std::process::id()));
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(error)),
    }
    let listener = UnixListener::bind(&temporary).map_err(io_error)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path))
        .and_then(|()| std::fs::symlink_metadata(path));
    let meta = match placed {
        Ok(meta) => meta,
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            return Err(io_error(error));
        }
    };
    let task = tokio::spawn(accept_loop(listener, target));
    Ok(ControlServer {
        path: path.to_path_buf(),
        inode: (meta.dev(), meta.ino()),
        task,
    })
}

/// Prints the channels of the serve on `data_dir` to standard output: a table, or one JSON
/// object per line with `json`; with `watch`, then every change until Ctrl-C.
///
/// The table has the columns ID, DIRECTION (`pull in`, `pull out`, `push in`, `push out`),
/// PEER, STATUS, BYTES (moved in this node's direction) and PROGRESS (a percentage when the
/// DAG's size is known, else the block count), each as wide as its widest cell; "no channels"
/// when there are none. A JSON line is a [`ChannelView`] with `"event":"channel"` for the
/// listed channels and `"event":"update"` for a watch's changes. A watch's changes are printed as table rows
/// without a header, lined up under the table (a longer cell widens its column from then
/// on); after the serve fell behind, the whole list again.
///
/// # Errors
/// [`ControlError::NoServe`] (in the `anyhow` error) when no serve runs on `data_dir`; I/O
/// and protocol errors.
pub async fn channels(data_dir: &Path, watch: bool, json: bool) -> anyhow::Result<()> {
    let stop = async {
        // Without a signal handler the watch runs until the serve stops.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    channels_to(data_dir, watch, json, &mut io::stdout(), stop).await
}

/// As [`channels`], writing to `out` and stopping a watch when `stop` completes.
///
/// # Errors
/// As [`channels`].
pub async fn channels_to(
    data_dir: &Path,
    watch: bool,
    json: bool,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let request = if watch {
        Request::Watch
    } else {
        Request::Channels
    };
    let mut connection = Connection::open(data_dir, &request).await?;
    let first = connection.next().await?.ok_or(ControlError::Closed)?;
    let Answer::Channels { channels } = first else {
        return Err(unexpected(&first).into());
    };
    let mut columns = Columns::default();
    if json {
        for view in &channels {
            write_json(out, "channel", view)?;
        }
    } else {
        write_table(out, &channels, &mut columns)?;
    }
    out.flush()?;
    if !watch {
        return Ok(());
    }
    tokio::pin!(stop);
    loop {
        let answer = tokio::select! {
            () = &mut stop => return Ok(()),
            answer = connection.next() => answer?.ok_or(ControlError::Closed)?,
        };
        match answer {
            Answer::Update { channel } if json => write_json(out, "update", &channel)?,
            Answer::Update { channel } => write_row(out, &channel, &mut columns)?,
            Answer::Channels { channels } if json => {
                for view in &channels {
                    write_json(out, "channel", view)?;
                }
            }
            Answer::Channels { channels } => write_table(out, &channels, &mut columns)?,
            other => return Err(unexpected(&other).into()),
        }
        out.flush()?;
    }
}

/// Runs `op` on the channel named `channel` on the serve of `data_dir` and prints the result
/// to standard output (one line, or a JSON object with `json`).
///
/// # Errors
/// [`ControlError::NoServe`] when no serve runs; [`ControlError::Refused`] with the serve's
/// reason when the channel is unknown, ambiguous or the command is refused.
pub async fn channel_command(
    data_dir: &Path,
    op: Op,
    channel: &str,
    json: bool,
) -> anyhow::Result<()> {
    channel_command_to(data_dir, op, channel, json, &mut io::stdout()).await?;
    Ok(())
}

/// As [`channel_command`], writing to `out`; returns the channel after the command.
///
/// # Errors
/// As [`channel_command`].
pub async fn channel_command_to(
    data_dir: &Path,
    op: Op,
    channel: &str,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ChannelView> {
    let request = Request::Command {
        op,
        channel: channel.to_owned(),
    };
    let mut connection = Connection::open(data_dir, &request).await?;
    match connection.next().await?.ok_or(ControlError::Closed)? {
        Answer::Done { op: done, channel } if done == op => {
            if json {
                write_json(out, op.done(), &channel)?;
            } else {
                writeln!(out, "{} {} (now {})", op.done(), channel.id, channel.status)?;
            }
            out.flush()?;
            Ok(channel)
        }
        Answer::Error { message } => Err(ControlError::Refused { message }.into()),
        other => Err(unexpected(&other).into()),
    }
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Request {
    Channels,
    Watch,
    Command { op: Op, channel: String },
}

/// A request line: `{"op":"channels"}`, `{"op":"watch"}` or `{"op":"pause","channel":"…"}`.
#[derive(Serialize, Deserialize)]
struct RequestLine {
    op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
}

impl Request {
    fn to_line(&self) -> RequestLine {
        match self {
            Request::Channels => RequestLine {
                op: "channels".to_owned(),
                channel: None,
            },
            Request::Watch => RequestLine {
                op: "watch".to_owned(),
                channel: None,
            },
            Request::Command { op, channel } => RequestLine {
                op: op.name().to_owned(),
                channel: Some(channel.clone()),
            },
        }
    }

    fn parse(line: &[u8]) -> Result<Self, String> {
        let line: RequestLine = serde_json::from_slice(line).map_err(|error| error.to_string())?;
        match (line.op.as_str(), line.channel) {
            ("channels", None) => Ok(Request::Channels),
            ("watch", None) => Ok(Request::Watch),
            (name, Some(channel)) => match name.parse::<Op>() {
                Ok(op) => Ok(Request::Command { op, channel }),
                Err(error) => Err(error.to_string()),
            },
            (name, None) => Err(format!("op {name:?} without a channel")),
        }
    }
}

/// An answer line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "lowercase")]
enum Answer {
    Channels { channels: Vec<ChannelView> },
    Update { channel: ChannelView },
    Done { op: Op, channel: ChannelView },
    Error { message: String },
}

fn unexpected(answer: &Answer) -> ControlError {
    ControlError::Protocol {
        reason: format!("unexpected answer {answer:?}"),
    }
}

/// Whether a connect error means that no server listens on the socket.
fn is_nobody_there(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// The client side of one request.
struct Connection {
    path: PathBuf,
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    // Kept open: a watch ends when the client closes its side.
    _writer: tokio::net::unix::OwnedWriteHalf,
}

impl Connection {
    async fn open(data_dir: &Path, request: &Request) -> Result<Self, ControlError> {
        let path = socket_path(data_dir);
        let stream = match UnixStream::connect(&path).await {
            Ok(stream) => stream,
            Err(error) if is_nobody_there(&error) => {
                return Err(ControlError::NoServe {
                    dir: data_dir.to_path_buf(),
                });
            }
            Err(source) => return Err(ControlError::Io { path, source }),
        };
        let (reader, mut writer) = stream.into_split();
        let mut line =
            serde_json::to_vec(&request.to_line()).map_err(|error| ControlError::Protocol {
                reason: error.to_string(),
            })?;
        line.push(b'\n');
        if let Err(source) = writer.write_all(&line).await {
            return Err(ControlError::Io { path, source });
        }
        Ok(Connection {
            path,
            lines: BufReader::new(reader).lines(),
            _writer: writer,
        })
    }

    async fn next(&mut self) -> Result<Option<Answer>, ControlError> {
        let line = match self.lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(source) => {
                return Err(ControlError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|error| ControlError::Protocol {
                reason: format!("bad answer: {error}"),
            })
    }
}

fn write_json(out: &mut impl Write, event: &str, view: &ChannelView) -> io::Result<()> {
    #[derive(Serialize)]
    struct Line<'a> {
        event: &'a str,
        #[serde(flatten)]
        view: &'a ChannelView,
    }
    serde_json::to_writer(&mut *out, &Line { event, view })?;
    writeln!(out)
}

const HEADER: [&str; 6] = ["ID", "DIRECTION", "PEER", "STATUS", "BYTES", "PROGRESS"];

/// The BYTES column, aligned to the right as numbers are.
const BYTES_COLUMN: usize = 4;

/// The widths of the channel table's columns: wide enough for the header and every row
/// printed so far, so that a watch's rows line up under the table they follow.
#[derive(Debug, Default)]
struct Columns([usize; HEADER.len()]);

impl Columns {
    /// Widens the columns to hold `cells`.
    fn fit(&mut self, cells: &[String; HEADER.len()]) {
        for (width, cell) in self.0.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }

    /// Writes `cells` as one line, two spaces between columns, no trailing spaces.
    fn write(&self, out: &mut impl Write, cells: &[String; HEADER.len()]) -> io::Result<()> {
        let mut line = String::new();
        for (column, (cell, width)) in cells.iter().zip(self.0).enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            let cell = if column == BYTES_COLUMN {
                format!("{cell:>width$}")
            } else {
                format!("{cell:<width$}")
            };
            line.push_str(&cell);
        }
        writeln!(out, "{}", line.trim_end())
    }
}

fn header_cells() -> [String; HEADER.len()] {
    HEADER.map(str::to_owned)
}

fn row_cells(view: &ChannelView) -> [String; HEADER.len()] {
    [
        view.id.clone(),
        view.direction_label().to_owned(),
        view.peer.clone(),
        view.status.clone(),
        view.bytes.to_string(),
        view.progress(),
    ]
}

/// Writes the header and a row per channel ("no channels" when there are none), its columns
/// widened to fit them.
fn write_table(
    out: &mut impl Write,
    channels: &[ChannelView],
    columns: &mut Columns,
) -> io::Result<()> {
    if channels.is_empty() {
        return writeln!(out, "no channels");
    }
    let rows: Vec<_> = channels.iter().map(row_cells).collect();
    columns.fit(&header_cells());
    rows.iter().for_each(|row| columns.fit(row));
    columns.write(out, &header_cells())?;
    rows.iter().try_for_each(|row| columns.write(out, row))
}

/// Writes one channel's row under a table printed before, widening the columns if it needs.
fn write_row(out: &mut impl Write, view: &ChannelView, columns: &mut Columns) -> io::Result<()> {
    let row = row_cells(view);
    columns.fit(&row);
    columns.write(out, &row)
}

async fn accept_loop(listener: UnixListener, target: Arc<dyn ControlTarget>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let target = Arc::clone(&target);
                connections.spawn(async move {
                    if let Err(error) = answer(stream, target.as_ref()).await {
                        tracing::debug!(%error, "control connection ended");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers one connection.
async fn answer(stream: UnixStream, target: &dyn ControlTarget) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let line = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut reader))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    let request = match Request::parse(&line) {
        Ok(request) => request,
        Err(error) => {
            let message = format!("malformed request: {error}");
            return send(&mut writer, &Answer::Error { message }).await;
        }
    };
    match request {
        Request::Channels => {
            let answer = match list(target) {
                Ok(channels) => Answer::Channels { channels },
                Err(message) => Answer::Error { message },
            };
            send(&mut writer, &answer).await
        }
        Request::Watch => watch(reader.into_inner(), writer, target).await,
        Request::Command { op, channel } => {
            let answer = command(target, op, &channel);
            send(&mut writer, &answer).await
        }
    }
}

/// Reads one line of at most [`MAX_REQUEST`] bytes.
async fn read_request(reader: &mut (impl AsyncBufReadExt + Unpin)) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut limited = reader.take(MAX_REQUEST as u64 + 1);
    limited.read_until(b'\n', &mut line).await?;
    if line.len() > MAX_REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request too long",
        ));
    }
    Ok(line)
}

async fn send(writer: &mut tokio::net::unix::OwnedWriteHalf, answer: &Answer) -> io::Result<()> {
    let mut line = serde_json::to_vec(answer)?;
    line.push(b'\n');
    writer.write_all(&line).await
}

fn list(target: &dyn ControlTarget) -> Result<Vec<ChannelView>, String> {
    let mut states = target.channels().map_err(|error| chain(&error))?;
    states.sort_by(|a, b| a.channel_id.cmp(&b.channel_id));
    Ok(states.iter().map(ChannelView::of).collect())
}

fn command(target: &dyn ControlTarget, op: Op, name: &str) -> Answer {
    let known = match target.channels() {
        Ok(states) => states,
        Err(error) => {
            return Answer::Error {
                message: chain(&error),
            };
        }
    };
    let channel = match resolve(name, known.iter().map(|state| &state.channel_id)) {
        Ok(channel) => channel,
        Err(error) => {
            return Answer::Error {
                message: error.to_string(),
            };
        }
    };
    tracing::info!(channel = %channel, %op, "control command");
    if let Err(error) = target.apply(op, &channel) {
        return Answer::Error {
            message: format!("cannot {op} {channel}: {}", chain(&error)),
        };
    }
    match target.channel(&channel) {
        Ok(state) => Answer::Done {
            op,
            channel: ChannelView::of(&state),
        },
        Err(error) => Answer::Error {
            message: chain(&error),
        },
    }
}

/// An error and its sources, joined with `: `.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Streams channel updates to a watching client until it hangs up or the node stops.
async fn watch(
    mut reader: impl AsyncRead + Unpin,
    mut writer: tokio::net::unix::OwnedWriteHalf,
    target: &dyn ControlTarget,
) -> io::Result<()> {
    // Subscribe before listing, so that no change falls between the two.
    let mut events = target.subscribe();
    let mut sent: BTreeMap<ChannelId, ChannelStatus> = BTreeMap::new();
    let snapshot = |sent: &mut BTreeMap<ChannelId, ChannelStatus>| match target.channels() {
        Ok(states) => {
            sent.clear();
            let mut views = Vec::with_capacity(states.len());
            for state in &states {
                sent.insert(state.channel_id.clone(), state.status);
                views.push(ChannelView::of(state));
            }
            views.sort_by(|a, b| a.id.cmp(&b.id));
            Answer::Channels { channels: views }
        }
        Err(error) => Answer::Error {
            message: chain(&error),
        },
    };
    send(&mut writer, &snapshot(&mut sent)).await?;
    let mut pending: BTreeMap<ChannelId, Arc<ChannelState>> = BTreeMap::new();
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = [0u8; 64];
    loop {
        tokio::select! {
            read = reader.read(&mut hangup) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
            event = events.recv() => match event {
                Ok(Event::Channel { state, .. }) => {
                    let id = state.channel_id.clone();
                    if sent.get(&id) == Some(&state.status) {
                        pending.insert(id, state);
                    } else {
                        pending.remove(&id);
                        sent.insert(id, state.status);
                        let channel = ChannelView::of(&state);
                        send(&mut writer, &Answer::Update { channel }).await?;
                    }
                }
                Ok(_) => {}
                Err(SubscriptionError::Lagged { .. }) => {
                    pending.clear();
                    send(&mut writer, &snapshot(&mut sent)).await?;
                }
                Err(_) => return Ok(()),
            },
            _ = tick.tick() => {
                for state in std::mem::take(&mut pending).into_values() {
                    let channel = ChannelView::of(&state);
                    send(&mut writer, &Answer::Update { channel }).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
