//! One `dtx` node: the data directory (node key, channel database, block store, served roots),
//! the libp2p swarm with Graphsync and data-transfer, and the [`Manager`] over them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use block_files::{Config as BlockFilesConfig, Layout};
use blockstore::Blockstore;
use datatransfer::libp2p::{
    Libp2pNetwork, NetworkConfig, NodeBehaviour, SwarmConfig, build_swarm, from_libp2p,
};
use datatransfer::{
    Cid, Config, Decision, Manager, Node as Ipld, Request, RequestValidator, SledStore, StoreError,
    Voucher, VoucherError, VoucherResult,
};
use datatransfer_graphsync::GraphsyncTransport;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::cli::AcceptPush;
use crate::error::{CliError, chain};
use crate::output::ordered;

/// The manager type of a node.
pub(crate) type Mgr = Manager<GraphsyncTransport, Libp2pNetwork>;

/// How long a dial may take before the peer counts as unreachable.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The file whose lock a process holds while it uses the data directory.
const LOCK_FILE: &str = "lock";

/// The block store's directory in the data directory.
const BLOCKS_DIR: &str = "block-files";

/// The sled database directory in which `dtx` kept its blocks before it kept block files.
const SLED_BLOCKS_DIR: &str = "blocks";

/// The tree of that database that holds the blocks (`blockstore::SledBlockstore`'s).
const SLED_BLOCKS_TREE: &[u8] = b"BLOCKSTORE.BLOCKS";

/// sled's cache while the blocks of its database move to block files.
const SLED_MOVE_CACHE: u64 = 16 << 20;

/// The tree of the channel database that holds dtx's marker record.
const MARKER_TREE: &str = "dtx";

/// The key of the marker record.
const MARKER_KEY: &[u8] = b"format";

/// The marker record: a channel database made by dtx, in the format of this version.
const MARKER_VALUE: &[u8] = b"dtx channel database v1";

/// How long to wait for a listener to report its addresses.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The voucher every `dtx` request carries: the command that made it (`pull` or `push`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DtxVoucher(pub(crate) String);

impl Voucher for DtxVoucher {
    const TYPE: &'static str = "dtx/request/v1";

    fn to_node(&self) -> Ipld {
        Ipld::text(self.0.as_str())
    }

    fn from_node(node: &Ipld) -> Result<Self, VoucherError> {
        node.as_text()
            .and_then(|text| text.as_str())
            .map(|text| DtxVoucher(text.to_owned()))
            .ok_or_else(|| VoucherError::Invalid {
                reason: "expected a text string".into(),
            })
    }
}

/// The voucher result a `dtx serve` sends with a refusal: its reason, for the initiator to
/// print (the wire's `Acpt = false` carries none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal(pub(crate) String);

impl VoucherResult for Refusal {
    const TYPE: &'static str = "dtx/refusal/v1";

    fn to_node(&self) -> Ipld {
        Ipld::text(self.0.as_str())
    }

    fn from_node(node: &Ipld) -> Result<Self, VoucherError> {
        DtxVoucher::from_node(node).map(|voucher| Refusal(voucher.0))
    }
}

/// The addresses of the peers this data directory dialed, kept in `<data-dir>/peers` (one
/// `PEER-ID MULTIADDR` a line, the last dialed address per peer), loaded into the network's
/// address book on start so that `dtx serve` can restart an interrupted pull or push.
#[derive(Clone, Debug)]
pub(crate) struct Peers {
    path: PathBuf,
    map: Arc<Mutex<std::collections::BTreeMap<PeerId, Multiaddr>>>,
}

impl Peers {
    /// Reads the peers file of `data_dir` (absent: no peers).
    pub(crate) fn load(data_dir: &Path) -> Result<Self, CliError> {
        let path = data_dir.join("peers");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CliError::DataDir {
                    path: data_dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut map = std::collections::BTreeMap::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let parsed = line.trim().split_once(' ').and_then(|(peer, address)| {
                Some((
                    peer.parse::<PeerId>().ok()?,
                    address.parse::<Multiaddr>().ok()?,
                ))
            });
            let (peer, address) = parsed.ok_or_else(|| CliError::DataDirCorrupt {
                path: data_dir.to_path_buf(),
                what: "peers file",
                reason: format!("{line:?} is not a peer id and an address"),
            })?;
            map.insert(peer, address);
        }
        Ok(Peers {
            path,
            map: Arc::new(Mutex::new(map)),
        })
    }

    /// The recorded peers and addresses.
    pub(crate) fn entries(&self) -> Vec<(PeerId, Multiaddr)> {
        self.lock()
            .iter()
            .map(|(peer, address)| (*peer, address.clone()))
            .collect()
    }

    /// Records `address` for `peer` and rewrites the file (through a temporary name).
    pub(crate) fn record(&self, peer: PeerId, address: &Multiaddr) -> std::io::Result<()> {
        let mut map = self.lock();
        if map.get(&peer) == Some(address) {
            return Ok(());
        }
        map.insert(peer, address.clone());
        let text: String = map
            .iter()
            .map(|(peer, address)| format!("{peer} {address}\n"))
            .collect();
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<PeerId, Multiaddr>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The roots a node serves, kept in `<data-dir>/roots` (one CID a line) so that a later
/// `dtx serve` serves what was imported or pushed before.
#[derive(Clone, Debug)]
pub(crate) struct Roots {
    path: PathBuf,
    set: Arc<Mutex<BTreeSet<Cid>>>,
}

impl Roots {
    /// Reads the roots file of `data_dir` (absent: no roots).
    pub(crate) fn load(data_dir: &Path) -> Result<Self, CliError> {
        let path = data_dir.join("roots");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(CliError::DataDir {
                    path: data_dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut set = BTreeSet::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let cid = Cid::try_from(line.trim()).map_err(|_| CliError::DataDirCorrupt {
                path: data_dir.to_path_buf(),
                what: "roots file",
                reason: format!("{line:?} is not a CID"),
            })?;
            set.insert(cid);
        }
        Ok(Roots {
            path,
            set: Arc::new(Mutex::new(set)),
        })
    }

    /// Whether `cid` is served.
    pub(crate) fn contains(&self, cid: &Cid) -> bool {
        self.lock().contains(cid)
    }

    /// Serves `cid` from now on (appended to the file when new).
    pub(crate) fn add(&self, cid: Cid) -> std::io::Result<()> {
        let mut set = self.lock();
        if set.insert(cid) {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            writeln!(file, "{cid}")?;
            file.sync_all()?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Cid>> {
        // A panic while holding the lock leaves a set that is still a valid set.
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a node accepts from peers.
struct Policy {
    /// Pulls of these roots are served; `None`: no pull is served.
    roots: Option<Roots>,
    /// Pushes are accepted.
    accept_push: bool,
}

impl RequestValidator<DtxVoucher> for Policy {
    fn validate_push(&self, _request: &Request<'_, DtxVoucher>) -> Decision {
        if self.accept_push {
            Decision::accept()
        } else {
            refuse("this peer accepts no pushes (its serve runs with --accept-push none)")
        }
    }

    fn validate_pull(&self, request: &Request<'_, DtxVoucher>) -> Decision {
        match &self.roots {
            Some(roots) if roots.contains(request.base_cid) => Decision::accept(),
            Some(_) => refuse(&format!("{} is not served by this peer", request.base_cid)),
            None => refuse("this peer serves no pulls"),
        }
    }
}

fn refuse(reason: &str) -> Decision {
    Decision::reject(reason).with_result(&Refusal(reason.to_owned()))
}

/// The data directory, created on open and held by this process alone ([`DataDir::open`]).
#[derive(Debug)]
pub(crate) struct DataDir {
    /// The directory.
    pub(crate) path: PathBuf,
    /// `<data-dir>/lock`, locked while this value lives.
    _lock: std::fs::File,
}

impl DataDir {
    /// Creates `path` if needed and locks it (`<data-dir>/lock`), so that no other `dtx`
    /// process uses it at the same time.
    pub(crate) fn open(path: &Path) -> Result<Self, CliError> {
        let io_failure = |source| CliError::DataDir {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io_failure)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(io_failure)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CliError::DataDirInUse {
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_failure(source)),
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The node key, made and saved on first use.
    pub(crate) fn keypair(&self) -> Result<Keypair, CliError> {
        let path = self.path.join("node.key");
        match std::fs::read(&path) {
            Ok(bytes) => {
                Keypair::from_protobuf_encoding(&bytes).map_err(|error| CliError::DataDirCorrupt {
                    path: self.path.clone(),
                    what: "node key",
                    reason: error.to_string(),
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let keypair = Keypair::generate_ed25519();
                let bytes = keypair
                    .to_protobuf_encoding()
                    .map_err(|error| CliError::internal("encoding the new node key", &error))?;
                write_private(&path, &bytes).map_err(|source| CliError::DataDir {
                    path: self.path.clone(),
                    source,
                })?;
                Ok(keypair)
            }
            Err(source) => Err(CliError::DataDir {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The block store (`<data-dir>/block-files/`). The blocks of an older data directory's
    /// sled store (`<data-dir>/blocks/`) are moved into it first
    /// ([`DataDir::move_sled_blocks`]).
    pub(crate) async fn blocks(&self) -> Result<Arc<DiskBlocks>, CliError> {
        let dir = self.path.join(BLOCKS_DIR);
        let blocks =
            block_files::Store::open(&dir, Layout::ShardedDurable, BlockFilesConfig::default())
                .map_err(|error| match error {
                    block_files::OpenError::CreateDir { source, .. } => CliError::DataDir {
                        path: self.path.clone(),
                        source,
                    },
                    other => CliError::internal("opening the block store", &other),
                })?;
        self.move_sled_blocks(&blocks).await?;
        Ok(Arc::new(blocks))
    }

    /// Moves the blocks of the sled block store that `dtx` kept in `<data-dir>/blocks/` before
    /// it kept one file per block into `blocks`, then removes that directory. A move cut short
    /// is made again on the next open: a put of a block `blocks` holds writes nothing.
    async fn move_sled_blocks(&self, blocks: &DiskBlocks) -> Result<(), CliError> {
        let dir = self.path.join(SLED_BLOCKS_DIR);
        if !dir.is_dir() {
            return Ok(());
        }
        tracing::info!(dir = %dir.display(), "moving the blocks of the old sled block store");
        let sled_failure = |error: sled::Error| self.sled_error("old block store", &error);
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(SLED_MOVE_CACHE)
            .open()
            .map_err(sled_failure)?;
        let tree = db.open_tree(SLED_BLOCKS_TREE).map_err(sled_failure)?;
        let mut moved = 0u64;
        for entry in tree.iter() {
            let (key, value) = entry.map_err(sled_failure)?;
            let cid = Cid::try_from(key.as_ref())
                .map_err(|error| self.corrupt("old block store", &error))?;
            blocks
                .put_keyed(&cid, &value)
                .await
                .map_err(|error| self.corrupt("block store", &error))?;
            moved += 1;
        }
        drop(tree);
        drop(db);
        std::fs::remove_dir_all(&dir).map_err(|source| CliError::DataDir {
            path: self.path.clone(),
            source,
        })?;
        tracing::info!(
            blocks = moved,
            "moved the old sled block store into {BLOCKS_DIR}/"
        );
        Ok(())
    }

    /// The channel database (`<data-dir>/channels`), checked first by its marker
    /// ([`DataDir::check_channel_marker`]).
    pub(crate) fn channels(&self) -> Result<SledStore, CliError> {
        self.check_channel_marker()?;
        // The store's default lock wait covers a `dtx` process that is just exiting.
        SledStore::open(
            self.path.join("channels"),
            datatransfer_store::Config::default(),
        )
        .map_err(|error| match &error {
            StoreError::Backend { source, .. } => match source.downcast_ref::<sled::Error>() {
                Some(sled) => self.sled_error("channel database", sled),
                None => self.corrupt("channel database", &error),
            },
            _ => self.corrupt("channel database", &error),
        })
    }

    /// Checks the marker record of the channel database, writing it when the database is
    /// new.
    ///
    /// sled opens a database whose log is damaged (say, random bytes over `channels/db`) as an
    /// empty one, so a damaged database would silently lose its channels. A database made
    /// here holds [`MARKER_VALUE`] under [`MARKER_KEY`] in the tree [`MARKER_TREE`] from its
    /// creation on; one that lacks it is damaged. (One with channels but no marker was made
    /// before the marker existed: it gets the marker.)
    fn check_channel_marker(&self) -> Result<(), CliError> {
        let dir = self.path.join("channels");
        let fresh = !dir.exists();
        let db = sled::open(&dir).map_err(|error| self.sled_error("channel database", &error))?;
        let damaged = |reason: String| CliError::DataDirCorrupt {
            path: self.path.clone(),
            what: "channel database",
            reason,
        };
        let sled_failure = |error: sled::Error| self.sled_error("channel database", &error);
        let meta = db.open_tree(MARKER_TREE).map_err(sled_failure)?;
        match meta.get(MARKER_KEY).map_err(sled_failure)? {
            Some(value) if value.as_ref() == MARKER_VALUE => return Ok(()),
            Some(value) => {
                return Err(damaged(format!(
                    "its marker record holds {:?}, not {:?}",
                    String::from_utf8_lossy(&value),
                    String::from_utf8_lossy(MARKER_VALUE)
                )));
            }
            None => {}
        }
        let channels = db
            .open_tree(datatransfer_store::CHANNELS_TREE)
            .map_err(sled_failure)?;
        if !fresh && channels.is_empty() {
            return Err(damaged(
                "its marker record is missing (the database was damaged, or not made by dtx)"
                    .into(),
            ));
        }
        meta.insert(MARKER_KEY, MARKER_VALUE)
            .map_err(sled_failure)?;
        db.flush().map_err(sled_failure)?;
        Ok(())
    }

    /// The error of a sled database that does not open.
    fn sled_error(&self, what: &'static str, error: &sled::Error) -> CliError {
        match error {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                CliError::DataDirInUse {
                    path: self.path.clone(),
                }
            }
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                CliError::DataDir {
                    path: self.path.clone(),
                    source: std::io::Error::new(io.kind(), io.to_string()),
                }
            }
            other => self.corrupt(what, other),
        }
    }

    /// A damaged part of the directory.
    pub(crate) fn corrupt(&self, what: &'static str, error: &dyn std::error::Error) -> CliError {
        CliError::DataDirCorrupt {
            path: self.path.clone(),
            what,
            reason: chain(error),
        }
    }
}

/// The block store of a data directory: one file per block (`block-files`, decision 0009), in
/// go-ds-flatfs's `next-to-last/2` shards, each file synced before it gets its name.
///
/// graphsync reports a block (and the channel store persists it as received) once its put
/// returns, and a put returns once the block's file has its name, so a SIGKILL cannot lose a
/// block its channel counts, which the restart would ask the provider to skip. Puts are
/// written by [`block_files::DEFAULT_WRITERS`] threads behind a queue of
/// [`block_files::DEFAULT_WRITE_QUEUE`] blocks; a read holds nothing but the block it reads.
pub(crate) type DiskBlocks = block_files::Store;

/// Writes `bytes` to a new file readable by the owner only, through a temporary name.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

/// What a node is started for.
pub(crate) struct NodeOptions {
    /// Addresses to listen on (none for a client).
    pub(crate) listen: Vec<Multiaddr>,
    /// Roots whose pulls are served (`None`: no pull).
    pub(crate) serve: Option<Roots>,
    /// Whether pushes are accepted.
    pub(crate) accept_push: bool,
}

impl NodeOptions {
    /// A client: listens nowhere, serves nothing.
    pub(crate) fn client() -> Self {
        NodeOptions {
            listen: Vec::new(),
            serve: None,
            accept_push: false,
        }
    }

    /// A server of `roots` on `listen`.
    pub(crate) fn server(listen: Vec<Multiaddr>, roots: Roots, accept_push: AcceptPush) -> Self {
        NodeOptions {
            listen,
            serve: Some(roots),
            accept_push: accept_push == AcceptPush::All,
        }
    }
}

/// A running node.
pub(crate) struct Node {
    /// The manager.
    pub(crate) manager: Mgr,
    /// The addresses of the peers dialed from this data directory.
    peers: Peers,
    /// The block store.
    pub(crate) blocks: Arc<DiskBlocks>,
    /// The local peer id.
    pub(crate) peer_id: PeerId,
    /// The addresses it listens on.
    pub(crate) listen_addrs: Vec<Multiaddr>,
    commands: mpsc::Sender<SwarmCommand>,
    swarm_task: tokio::task::JoinHandle<()>,
}

enum SwarmCommand {
    Dial {
        peer: PeerId,
        address: Multiaddr,
        done: oneshot::Sender<Result<(), String>>,
    },
}

impl Node {
    /// Starts a node on `data_dir`: opens its key and databases, builds the swarm, listens,
    /// and starts the manager (which loads the stored channels).
    pub(crate) async fn start(
        data_dir: &DataDir,
        blocks: Arc<DiskBlocks>,
        options: NodeOptions,
    ) -> Result<Self, CliError> {
        let keypair = data_dir.keypair()?;
        let channels = data_dir.channels()?;
        let mut swarm = build_swarm(keypair, SwarmConfig::default())
            .map_err(|error| CliError::internal("building the libp2p swarm", &error))?;
        let listen_addrs = listen(&mut swarm, &options.listen).await?;
        let peer_id = *swarm.local_peer_id();

        let graphsync = graphsync::network::Node::spawn(
            &swarm.behaviour().graphsync,
            Arc::clone(&blocks),
            graphsync::network::Config::default(),
        )
        .map_err(|error| CliError::internal("starting graphsync", &error))?;
        let transport = GraphsyncTransport::new(
            graphsync,
            peer_id,
            datatransfer_graphsync::Config::default(),
        );
        // A command-line user waits for the answer: a few quick attempts, not Go's minutes.
        let network_config = NetworkConfig::default()
            .with_timeouts(Duration::from_secs(5), Duration::from_secs(10))
            .with_retries(Duration::from_millis(200), Duration::from_secs(2), 3, 2);
        let network = Libp2pNetwork::for_swarm(&swarm, network_config)
            .map_err(|error| CliError::internal("starting the data-transfer network", &error))?;
        let peers = Peers::load(&data_dir.path)?;
        for (peer, address) in peers.entries() {
            network.add_address(peer, address);
        }
        let manager = Manager::new(transport, network, channels, Config::default());
        manager
            .register_voucher_type(Policy {
                roots: options.serve,
                accept_push: options.accept_push,
            })
            .map_err(|error| CliError::internal("registering the voucher type", &error))?;
        manager
            .register_voucher_result_type::<Refusal>()
            .map_err(|error| CliError::internal("registering the voucher result", &error))?;

        let (commands, inbox) = mpsc::channel(16);
        let swarm_task = tokio::spawn(drive(swarm, inbox));
        manager.start().await.map_err(|error| match &error {
            datatransfer::Error::Store(store) => data_dir.corrupt("channel database", store),
            other => CliError::internal("starting the transfer manager", other),
        })?;
        Ok(Node {
            manager,
            peers,
            blocks,
            peer_id,
            listen_addrs,
            commands,
            swarm_task,
        })
    }

    /// The wire peer id.
    pub(crate) fn wire_peer(peer: &PeerId) -> datatransfer::PeerId {
        from_libp2p(peer)
    }

    /// Connects to `peer` at `address`, within [`DIAL_TIMEOUT`]; the address is kept for
    /// later dials by the data-transfer network.
    pub(crate) async fn connect(&self, peer: PeerId, address: Multiaddr) -> Result<(), CliError> {
        let unreachable = |reason: String| CliError::Unreachable {
            peer: peer.to_string(),
            address: address.to_string(),
            reason,
        };
        self.manager.network().add_address(peer, address.clone());
        let (done, answer) = oneshot::channel();
        self.commands
            .send(SwarmCommand::Dial {
                peer,
                address: address.clone(),
                done,
            })
            .await
            .map_err(|_| unreachable("the swarm stopped".into()))?;
        match tokio::time::timeout(DIAL_TIMEOUT, answer).await {
            Err(_) => Err(unreachable(format!("no answer within {DIAL_TIMEOUT:?}"))),
            Ok(Err(_)) => Err(unreachable("the swarm stopped".into())),
            Ok(Ok(Err(reason))) => Err(unreachable(reason)),
            Ok(Ok(Ok(()))) => {
                // Kept so that a channel with this peer restarts after a crash (`dtx serve`
                // on this data directory), when only the peer id is stored with the channel.
                if let Err(error) = self.peers.record(peer, &address) {
                    tracing::warn!(%peer, error = %error, "cannot record the peer's address");
                }
                Ok(())
            }
        }
    }

    /// Starts the Prometheus endpoint of `--metrics` on `addr` and tells the user where it is.
    pub(crate) async fn metrics(
        &self,
        addr: std::net::SocketAddr,
        out: crate::output::Output,
    ) -> Result<dtx::metrics::MetricsEndpoint, CliError> {
        let endpoint = dtx::metrics::start(addr, &self.manager, dtx::metrics::Config::default())
            .await
            .map_err(|error| CliError::Metrics {
                addr: addr.to_string(),
                reason: chain(&error),
            })?;
        let url = format!("http://{}/metrics", endpoint.local_addr());
        out.event(ordered!({"event": "metrics", "url": url}), || {
            format!("metrics at {url}")
        });
        Ok(endpoint)
    }

    /// Stops the manager and the swarm. Channels stay in the database.
    pub(crate) async fn stop(self) {
        if let Err(error) = self.manager.stop().await {
            tracing::warn!(error = %chain(&error), "the manager did not stop cleanly");
        }
        self.swarm_task.abort();
    }
}

/// Splits `/…/p2p/<peer>` into the peer id and the address before it.
pub(crate) fn split_peer(address: &Multiaddr) -> Result<(PeerId, Multiaddr), CliError> {
    let mut base = address.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) if !base.is_empty() => Ok((peer, base)),
        _ => Err(CliError::NoPeerId {
            address: address.to_string(),
        }),
    }
}

/// Starts listening on `addresses` and returns the addresses the listeners report: at least
/// one per listener, plus any more that arrive within a short quiet time (a wildcard address
/// reports one per interface).
async fn listen(
    swarm: &mut Swarm<NodeBehaviour>,
    addresses: &[Multiaddr],
) -> Result<Vec<Multiaddr>, CliError> {
    let mut pending = std::collections::HashSet::new();
    for address in addresses {
        let id = swarm
            .listen_on(address.clone())
            .map_err(|error| CliError::Listen {
                address: address.to_string(),
                reason: chain(&error),
            })?;
        pending.insert(id);
    }
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| CliError::Listen {
                address: format!("{addresses:?}"),
                reason: format!("no listen address within {LISTEN_TIMEOUT:?}"),
            })?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                pending.remove(&listener_id);
                found.push(address);
            }
            SwarmEvent::ListenerClosed {
                addresses: closed,
                reason,
                ..
            } => {
                return Err(CliError::Listen {
                    address: format!("{closed:?}"),
                    reason: match reason {
                        Ok(()) => "the listener closed".into(),
                        Err(error) => chain(&error),
                    },
                });
            }
            SwarmEvent::ListenerError { error, .. } => {
                return Err(CliError::Listen {
                    address: format!("{addresses:?}"),
                    reason: chain(&error),
                });
            }
            _ => {}
        }
    }
    // Wildcard listeners report one address per interface; take those that come at once.
    while let Ok(event) =
        tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await
    {
        if let SwarmEvent::NewListenAddr { address, .. } = event {
            found.push(address);
        }
    }
    Ok(found)
}

/// Drives the swarm until the node stops, answering dial commands.
async fn drive(mut swarm: Swarm<NodeBehaviour>, mut inbox: mpsc::Receiver<SwarmCommand>) {
    let mut dials: Vec<(ConnectionId, oneshot::Sender<Result<(), String>>)> = Vec::new();
    loop {
        tokio::select! {
            command = inbox.recv() => match command {
                Some(SwarmCommand::Dial { peer, address, done }) => {
                    let options = DialOpts::peer_id(peer).addresses(vec![address]).build();
                    let id = options.connection_id();
                    match swarm.dial(options) {
                        Ok(()) => dials.push((id, done)),
                        Err(error) => {
                            let _ = done.send(Err(chain(&error)));
                        }
                    }
                }
                // Every handle is gone: keep serving the connections until aborted.
                None => loop {
                    let event = swarm.select_next_some().await;
                    tracing::trace!(?event, "swarm event");
                },
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { connection_id, peer_id, .. } => {
                    tracing::debug!(peer = %peer_id, "connected");
                    answer(&mut dials, connection_id, Ok(()));
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    answer(&mut dials, connection_id, Err(chain(&error)));
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                    tracing::debug!(peer = %peer_id, ?cause, "disconnected");
                }
                other => tracing::trace!(event = ?other, "swarm event"),
            },
        }
    }
}

fn answer(
    dials: &mut Vec<(ConnectionId, oneshot::Sender<Result<(), String>>)>,
    id: ConnectionId,
    outcome: Result<(), String>,
) {
    if let Some(at) = dials.iter().position(|(dial, _)| *dial == id) {
        let (_, done) = dials.swap_remove(at);
        let _ = done.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_peer_takes_the_last_p2p_part() {
        let peer = PeerId::random();
        let address: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .expect("valid");
        let (found, base) = split_peer(&address).expect("has a peer");
        assert_eq!(found, peer);
        assert_eq!(base.to_string(), "/ip4/127.0.0.1/tcp/4001");
        let bare: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("valid");
        assert!(matches!(split_peer(&bare), Err(CliError::NoPeerId { .. })));
        let only_peer: Multiaddr = format!("/p2p/{peer}").parse().expect("valid");
        assert!(matches!(
            split_peer(&only_peer),
            Err(CliError::NoPeerId { .. })
        ));
    }

    #[test]
    fn roots_persist_in_the_data_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cid =
            dag_io::blocks::cid_of(cid::Version::V1, 0x55, dag_io::blocks::SHA2_256, b"hello")
                .expect("cid");
        let roots = Roots::load(dir.path()).expect("empty");
        assert!(!roots.contains(&cid));
        roots.add(cid).expect("added");
        roots.add(cid).expect("added twice");
        let again = Roots::load(dir.path()).expect("reloaded");
        assert!(again.contains(&cid));
        let text = std::fs::read_to_string(dir.path().join("roots")).expect("file");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn peer_addresses_persist_and_a_damaged_peers_file_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let first: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("valid");
        let second: Multiaddr = "/ip4/127.0.0.1/tcp/2".parse().expect("valid");
        let peers = Peers::load(dir.path()).expect("empty");
        assert!(peers.entries().is_empty());
        peers.record(peer, &first).expect("recorded");
        peers.record(peer, &second).expect("recorded again");
        assert_eq!(
            Peers::load(dir.path()).expect("reloaded").entries(),
            vec![(peer, second)]
        );
        std::fs::write(dir.path().join("peers"), "nonsense\n").expect("write");
        assert!(matches!(
            Peers::load(dir.path()),
            Err(CliError::DataDirCorrupt {
                what: "peers file",
                ..
            })
        ));
    }

    #[test]
    fn a_damaged_roots_file_is_a_corrupt_data_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("roots"), "not a cid\n").expect("write");
        assert!(matches!(
            Roots::load(dir.path()),
            Err(CliError::DataDirCorrupt { .. })
        ));
    }

    #[test]
    fn the_node_key_persists_and_a_damaged_one_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("opened");
        let first = data.keypair().expect("made").public().to_peer_id();
        let second = data.keypair().expect("read").public().to_peer_id();
        assert_eq!(first, second);
        std::fs::write(dir.path().join("node.key"), b"garbage").expect("write");
        assert!(matches!(
            data.keypair(),
            Err(CliError::DataDirCorrupt {
                what: "node key",
                ..
            })
        ));
    }

    /// A raw block and its CID.
    fn raw_block(seed: u8) -> (Cid, Vec<u8>) {
        use multihash_codetable::{Code, MultihashDigest};
        let data = vec![seed; 1000 + usize::from(seed)];
        (Cid::new_v1(0x55, Code::Sha2_256.digest(&data)), data)
    }

    #[tokio::test]
    async fn the_blocks_of_an_old_sled_block_store_move_into_block_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old: Vec<(Cid, Vec<u8>)> = (1..=3).map(raw_block).collect();
        {
            let db = sled::open(dir.path().join(SLED_BLOCKS_DIR)).expect("sled");
            let sled_blocks = blockstore::SledBlockstore::new(db.clone())
                .await
                .expect("sled block store");
            for (cid, data) in &old {
                sled_blocks.put_keyed(cid, data).await.expect("put");
            }
            db.flush_async().await.expect("flushed");
        }
        let data = DataDir::open(dir.path()).expect("opened");
        let blocks = data.blocks().await.expect("moved");
        assert_eq!(blocks.puts(), 3);
        for (cid, bytes) in &old {
            assert_eq!(blocks.get(cid).await.expect("read").as_ref(), Some(bytes));
        }
        assert!(!dir.path().join(SLED_BLOCKS_DIR).exists());
        assert!(dir.path().join(BLOCKS_DIR).is_dir());
        let (new_cid, new_data) = raw_block(4);
        blocks.put_keyed(&new_cid, &new_data).await.expect("put");
        drop(blocks);
        let reopened = data.blocks().await.expect("reopened");
        for (cid, bytes) in old.iter().chain([&(new_cid, new_data)]) {
            assert_eq!(reopened.get(cid).await.expect("read").as_ref(), Some(bytes));
        }
    }

    #[test]
    fn a_data_directory_is_held_by_one_open_at_a_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = DataDir::open(dir.path()).expect("opened");
        assert!(matches!(
            DataDir::open(dir.path()),
            Err(CliError::DataDirInUse { .. })
        ));
        drop(held);
        DataDir::open(dir.path()).expect("opened again once released");
    }

    #[tokio::test]
    async fn a_block_store_that_cannot_be_made_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(BLOCKS_DIR), b"not a directory").expect("write");
        let data = DataDir::open(dir.path()).expect("opened");
        assert!(matches!(data.blocks().await, Err(CliError::DataDir { .. })));
    }

    #[test]
    fn a_channel_database_without_its_marker_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("opened");
        drop(data.channels().expect("made with its marker"));
        drop(data.channels().expect("opened again"));
        {
            let db = sled::open(dir.path().join("channels")).expect("sled");
            let meta = db.open_tree(MARKER_TREE).expect("tree");
            meta.remove(MARKER_KEY).expect("removed");
            db.flush().expect("flushed");
        }
        assert!(matches!(
            data.channels(),
            Err(CliError::DataDirCorrupt {
                what: "channel database",
                ..
            })
        ));
    }

    #[test]
    fn vouchers_round_trip() {
        let voucher = DtxVoucher("pull".into());
        assert_eq!(
            DtxVoucher::from_node(&voucher.to_node()).expect("decodes"),
            voucher
        );
        let refusal = Refusal("no".into());
        assert_eq!(
            <Refusal as VoucherResult>::from_node(&VoucherResult::to_node(&refusal))
                .expect("decodes"),
            refusal
        );
        assert!(DtxVoucher::from_node(&Ipld::Null).is_err());
    }
}
