//! [`Manager`]: one node's data transfers, driving the `datatransfer-fsm` engine with a
//! [`Transport`], a [`Network`] and a [`ChannelStore`] (Go's `Manager`).

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cid::Cid;
use datatransfer_fsm::{
    ChannelEvent, ChannelState, ChannelStatus, CommandError, Engine, Event as EngineEvent,
    EventCode, ProtocolError, Transmit, TransportInput, UnixNanos, Validation, ValidationKind,
    ValidationRequest, Verdict,
};
use datatransfer_message::{
    ChannelId, Message, PeerId, Request, Response, cancel_request, cancel_response,
};
use datatransfer_store::ChannelStore;
use datatransfer_transport::{
    BlockInfo, DataError, EventsHandler, Flow, HandlerError, Network, NetworkError, OpenChannel,
    QueuedAnswer, Receiver, RequestAnswer, StoreName, Transport, TransportError,
};
use ipld_dagcbor::Node;
use tokio::sync::{Notify, broadcast, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::Error;
use crate::event::{Event, QueueScope, Subscription};
use crate::monitor::{Action, Monitor, MonitorConfig, MonitorEvent, MonitorFailure};
use crate::registry::Registry;
use crate::voucher::{
    RequestValidator, Revalidator, TransportConfigurer, Voucher, VoucherResult, encode_voucher,
};

/// How often a transport resume refused with `NotPaused` is tried in all.
const RESUME_ATTEMPTS: u32 = 20;

/// The wait between two resume attempts.
const RESUME_RETRY: Duration = Duration::from_millis(5);

/// Manager configuration. Every field has a documented default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The engine's configuration. Default: [`datatransfer_fsm::Config::default`] with the
    /// transfer-id seed taken from the system clock (Unix nanoseconds, as Go does) when the
    /// configuration is made, and revalidation hooks on (they answer "accept" while no
    /// revalidator handles them).
    pub engine: datatransfer_fsm::Config,
    /// How many events a subscriber's queue holds before its oldest are dropped (see
    /// [`Subscription`]). Default 1024.
    pub subscriber_capacity: usize,
    /// The most transmits (messages and transport commands) waiting to go out; commands are
    /// refused with [`Error::QueueFull`] beyond it. Transport reports are never dropped, and
    /// peer messages only under their own bounds ([`Config::max_queued_per_peer`],
    /// [`Config::max_queued_for_peers`]), so what they queue (at most 32 transmits each) can
    /// pass this bound while the outbound task catches up. Default 1024.
    pub max_outbound: usize,
    /// The channel monitor (spec §7.4): accept and complete timeouts, automatic restarts
    /// after transport errors, the no-progress window. Default `None`: off, as Go's monitor
    /// is without `ChannelRestartConfig`; [`MonitorConfig::default`] holds the suggested
    /// production values.
    pub monitor: Option<MonitorConfig>,
    /// The most unfinished channels one peer may have opened here: a new push or pull
    /// request from a peer that has this many is rejected (`Acpt = false` on the wire,
    /// [`Event::Rejected`] here) before the validators are asked, so that one peer cannot
    /// take every channel slot of the engine (`engine.max_channels`). Go has no such bound.
    /// Default 256.
    pub max_channels_per_peer: usize,
    /// The most transmits waiting to go out that one peer's data-transfer messages caused
    /// (its requests' answers and rejections, and the transport commands they lead to). A
    /// message from a peer that has this many waiting is dropped unprocessed, with an
    /// [`Event::MessageDropped`] (the sender may retry later; a peer that floods requests
    /// while never reading its answers cannot grow the queue). The bound is checked before a
    /// message is processed, so the transmits of one message (at most 32) can pass it.
    /// Default 64.
    pub max_queued_per_peer: usize,
    /// The most transmits waiting to go out that peers' messages caused, all peers together;
    /// beyond it messages from every peer are dropped as above. Default 512.
    pub max_queued_for_peers: usize,
    /// How many peers the manager sends to at once. One peer's transmits (its channels'
    /// messages and transport commands) go out in order, one at a time; another peer's wait
    /// for neither, so a dial to a peer that is down (up to the network's open attempts and
    /// timeouts) holds back only that peer's. Default 32.
    pub max_parallel_sends: usize,
}

impl Default for Config {
    fn default() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0);
        Config {
            engine: datatransfer_fsm::Config::default()
                .with_transfer_id_seed(seed)
                .with_revalidation(true),
            subscriber_capacity: 1024,
            max_outbound: 1024,
            monitor: None,
            max_channels_per_peer: 256,
            max_queued_per_peer: 64,
            max_queued_for_peers: 512,
            max_parallel_sends: 32,
        }
    }
}

impl Config {
    /// This configuration with another subscriber queue capacity.
    pub fn with_subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity;
        self
    }

    /// This configuration with the channel monitor on (`Some`) or off.
    pub fn with_monitor(mut self, monitor: Option<MonitorConfig>) -> Self {
        self.monitor = monitor;
        self
    }

    /// This configuration with another engine configuration.
    pub fn with_engine(mut self, engine: datatransfer_fsm::Config) -> Self {
        self.engine = engine;
        self
    }

    /// This configuration with another bound on the unfinished channels one peer opens here.
    pub fn with_max_channels_per_peer(mut self, limit: usize) -> Self {
        self.max_channels_per_peer = limit;
        self
    }

    /// This configuration with another bound on the peers sent to at once (at least one).
    pub fn with_max_parallel_sends(mut self, peers: usize) -> Self {
        self.max_parallel_sends = peers.max(1);
        self
    }

    /// This configuration with other bounds on the transmits peers' messages queue: per peer
    /// ([`Config::max_queued_per_peer`]) and in all ([`Config::max_queued_for_peers`]).
    pub fn with_peer_queue_limits(mut self, per_peer: usize, in_all: usize) -> Self {
        self.max_queued_per_peer = per_peer;
        self.max_queued_for_peers = in_all;
        self
    }
}

/// The state of a manager's outbound queue, from [`Manager::outbound_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboundStats {
    /// Transmits (messages and transport commands) waiting to go out.
    pub queued: usize,
    /// Of those, the ones peers' data-transfer messages caused.
    pub caused_by_peers: usize,
    /// The most of those that one peer's messages caused.
    pub most_by_one_peer: usize,
    /// Peer messages dropped unprocessed since the start because their peer (or all peers)
    /// had as many transmits waiting as the configuration allows.
    pub dropped_messages: u64,
}

/// One node's data transfers over a transport `T` and a network `N` (Go's `Manager`).
///
/// Build it with [`Manager::new`], register voucher types, [`start`](Manager::start) it
/// (channels saved in the store come back), then open, pause, resume, cancel and restart
/// channels and subscribe to their events. Cloning gives another handle to the same node.
///
/// Inside, the engine of `datatransfer-fsm` sits behind a mutex: every command, network
/// message and transport report runs it, persists the snapshots it emits to the store, answers
/// its validation questions from the registered validators and publishes its events, all
/// before the transmits of that input are handed to the manager's outbound task. So a state
/// change is in the store before any message that depends on it is sent. Validators,
/// revalidators and configurers run under that mutex: they must be quick and must not call
/// the manager.
///
/// Finished channels stay in the engine until it holds three quarters of
/// `engine.max_channels`; then they are released from it and read back from the store
/// (`status`, `channel_state`, `in_progress_channels`), so a long-running node never runs out
/// of channel slots. Start loads only the unfinished channels into the engine.
pub struct Manager<T, N> {
    shared: Arc<Shared<T, N>>,
}

struct Shared<T, N> {
    self_peer: PeerId,
    config: Config,
    transport: T,
    network: N,
    store: Arc<dyn ChannelStore + Send + Sync>,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
    wake: Notify,
    /// Wakes the timer task: an earlier deadline was set, or the manager stops.
    timer_wake: Notify,
}

struct State {
    engine: Engine,
    registry: Registry,
    /// Transmits waiting for the outbound task, each with the peer whose message caused it.
    outbound: VecDeque<(Transmit, Option<PeerId>)>,
    /// The peers whose transmits a lane task is sending.
    busy_lanes: HashSet<PeerId>,
    /// Whether a transmit was queued for a peer without a lane task: the outbound task must
    /// start one.
    wake_outbound: bool,
    /// Per peer, the waiting transmits its messages caused (peers with none are absent).
    caused: HashMap<PeerId, usize>,
    /// The sum of `caused`.
    caused_total: usize,
    /// Peer messages dropped because of `caused` bounds.
    dropped_messages: u64,
    /// Block stores chosen by transport configurers, for channels that are not finished.
    stores: BTreeMap<ChannelId, StoreName>,
    phase: Phase,
    ready: Vec<ReadyCallback>,
    task: Option<JoinHandle<()>>,
    /// The timer task (engine timeouts and the monitor).
    timer: Option<JoinHandle<()>>,
    /// The channel monitor, when configured.
    monitor: Option<Monitor>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
    /// Per unfinished channel, one sender per [`Manager::wait_for_end`] call still waiting
    /// (abandoned ones are pruned when another call waits on the channel): all are answered
    /// when the channel ends, and dropped when the manager stops.
    end_waiters: HashMap<ChannelId, Vec<oneshot::Sender<Arc<ChannelState>>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    Running,
    Stopped,
}

/// The manager's clock: tokio's, so that a runtime with paused time (tests) moves the
/// engine's and the monitor's deadlines with it; the system's monotonic clock otherwise.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The engine input for a block the transport reports.
fn data_input(kind: datatransfer_fsm::DataKind, block: &BlockInfo) -> TransportInput {
    TransportInput::Data {
        kind,
        index: block.index,
        size: block.size,
        unique: block.unique,
    }
}

/// The wall clock for the engine's stage trace (Go's Unix-nanosecond times); a clock before
/// 1970 reads as 0, one past 2262 as the largest time.
fn unix_now() -> UnixNanos {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixNanos(i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX))
}

/// A callback for [`Manager::on_ready`].
type ReadyCallback = Box<dyn FnOnce(Result<(), &Error>) + Send>;

impl<T, N> Clone for Manager<T, N> {
    fn clone(&self) -> Self {
        Manager {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T, N> fmt::Debug for Manager<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("self_peer", &self.shared.self_peer)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<T, N> Manager<T, N>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    /// A manager for the node of `network`, moving data with `transport` and keeping channel
    /// snapshots in `store`. Nothing runs until [`start`](Self::start).
    pub fn new(
        transport: T,
        network: N,
        store: impl ChannelStore + Send + Sync + 'static,
        config: Config,
    ) -> Self {
        let self_peer = network.self_peer();
        let mut engine = Engine::new(self_peer.clone(), config.engine.clone());
        engine.handle_wall_clock(now(), unix_now());
        let (events, _) = broadcast::channel(config.subscriber_capacity.max(1));
        let state = State {
            engine,
            registry: Registry::new(),
            outbound: VecDeque::new(),
            busy_lanes: HashSet::new(),
            wake_outbound: false,
            caused: HashMap::new(),
            caused_total: 0,
            dropped_messages: 0,
            stores: BTreeMap::new(),
            phase: Phase::New,
            ready: Vec::new(),
            task: None,
            timer: None,
            monitor: config.monitor.clone().map(Monitor::new),
            armed: None,
            end_waiters: HashMap::new(),
        };
        Manager {
            shared: Arc::new(Shared {
                self_peer,
                config,
                transport,
                network,
                store: Arc::new(store),
                state: Mutex::new(state),
                events,
                wake: Notify::new(),
                timer_wake: Notify::new(),
            }),
        }
    }

    /// The local peer.
    pub fn self_peer(&self) -> &PeerId {
        &self.shared.self_peer
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.shared.transport
    }

    /// The network.
    pub fn network(&self) -> &N {
        &self.shared.network
    }

    /// Starts the node (Go's `Start`): loads every channel saved in the store back into the
    /// engine, installs itself as the transport's events handler and the network's receiver,
    /// and starts the outbound task. Channels that were running are not restarted
    /// automatically: call [`restart_channel`](Self::restart_channel). Runs the
    /// [`on_ready`](Self::on_ready) callbacks with the outcome.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`]; [`Error::Store`] when the store cannot be read;
    /// [`Error::Command`] when a stored channel does not belong to this node;
    /// [`Error::Transport`] or [`Error::Network`] when a handler was set by someone else.
    ///
    /// # Panics
    /// When polled outside a tokio runtime: it spawns the outbound task with `tokio::spawn`.
    pub async fn start(&self) -> Result<(), Error> {
        let outcome = self.start_inner();
        let callbacks = std::mem::take(&mut self.shared.lock().ready);
        for callback in callbacks {
            callback(outcome.as_ref().map(|_| ()));
        }
        outcome
    }

    fn start_inner(&self) -> Result<(), Error> {
        let mut state = self.shared.lock();
        if state.phase != Phase::New {
            return Err(Error::AlreadyStarted);
        }
        // Finished channels stay in the store only; reads find them there.
        let stored = self.shared.store.list()?;
        let live = stored.into_iter().filter(|s| !s.status.is_terminal());
        state.engine.restore(live)?;
        let handler = Arc::new(Handler {
            shared: Arc::downgrade(&self.shared),
        });
        self.shared
            .transport
            .set_events_handler(Arc::clone(&handler) as Arc<dyn EventsHandler>)?;
        self.shared
            .network
            .set_receiver(handler as Arc<dyn Receiver>)?;
        let now = now();
        let restored = &mut *state;
        if let Some(monitor) = restored.monitor.as_mut() {
            for channel in restored.engine.channels() {
                monitor.watch(channel, now);
            }
        }
        let shared = Arc::clone(&self.shared);
        state.task = Some(tokio::spawn(outbound(shared)));
        state.timer = Some(tokio::spawn(timer(Arc::clone(&self.shared))));
        state.phase = Phase::Running;
        Ok(())
    }

    /// Runs `callback` once the manager has started (Go's `OnReady`), with the outcome of
    /// [`start`](Self::start); at once if it has started already.
    pub fn on_ready(&self, callback: impl FnOnce(Result<(), &Error>) + Send + 'static) {
        let mut state = self.shared.lock();
        if state.phase == Phase::New {
            state.ready.push(Box::new(callback));
        } else {
            drop(state);
            callback(Ok(()));
        }
    }

    /// Stops the node (Go's `Stop`): shuts the transport down, ends the outbound and timer
    /// tasks (and with them the channel monitor) and refuses later commands. Channel
    /// snapshots stay in the store for the next start.
    ///
    /// # Errors
    /// [`Error::Transport`] when the transport does not shut down cleanly.
    pub async fn stop(&self) -> Result<(), Error> {
        let (task, timer) = {
            let mut state = self.shared.lock();
            state.phase = Phase::Stopped;
            state.end_waiters.clear();
            (state.task.take(), state.timer.take())
        };
        self.shared.wake.notify_one();
        self.shared.timer_wake.notify_one();
        // The tasks end at their next wake-up; a panic inside one is not ours to re-raise.
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Some(timer) = timer {
            let _ = timer.await;
        }
        self.shared.transport.shutdown().await?;
        Ok(())
    }

    /// Registers the voucher type `V` with its validator (Go's `RegisterVoucherType`).
    ///
    /// # Errors
    /// [`Error::Registry`] when `V::TYPE` has a validator already.
    pub fn register_voucher_type<V: Voucher>(
        &self,
        validator: impl RequestValidator<V>,
    ) -> Result<(), Error> {
        Ok(self
            .shared
            .lock()
            .registry
            .register_voucher_type(validator)?)
    }

    /// Registers a revalidator for vouchers of type `V` (Go's `RegisterRevalidator`).
    ///
    /// # Errors
    /// [`Error::Registry`] when `V::TYPE` has a revalidator already.
    pub fn register_revalidator<V: Voucher>(
        &self,
        revalidator: impl Revalidator<V>,
    ) -> Result<(), Error> {
        Ok(self
            .shared
            .lock()
            .registry
            .register_revalidator(revalidator)?)
    }

    /// Registers the voucher-result type `R` (Go's `RegisterVoucherResultType`).
    ///
    /// # Errors
    /// [`Error::Registry`] when `R::TYPE` is registered already.
    pub fn register_voucher_result_type<R: VoucherResult>(&self) -> Result<(), Error> {
        Ok(self
            .shared
            .lock()
            .registry
            .register_voucher_result_type::<R>()?)
    }

    /// Registers a transport configurer for channels whose voucher has type `V` (Go's
    /// `RegisterTransportConfigurer`); it runs when such a channel is created here, with the
    /// transport `T` as `&dyn Any`.
    ///
    /// # Errors
    /// [`Error::Registry`] when `V::TYPE` has a configurer already.
    pub fn register_transport_configurer<V: Voucher>(
        &self,
        configurer: impl TransportConfigurer<V>,
    ) -> Result<(), Error> {
        Ok(self
            .shared
            .lock()
            .registry
            .register_transport_configurer(configurer)?)
    }

    /// Opens a channel that pushes the DAG under `base_cid` selected by `selector` to `to`
    /// (Go's `OpenPushDataChannel`).
    ///
    /// # Errors
    /// [`Error::NotRunning`], [`Error::QueueFull`], [`Error::Command`] (too many channels).
    pub fn open_push<V: Voucher>(
        &self,
        to: PeerId,
        voucher: &V,
        base_cid: Cid,
        selector: Node,
    ) -> Result<ChannelId, Error> {
        let voucher = encode_voucher(voucher);
        self.command(|shared, state, now| {
            let channel = state
                .engine
                .open_push(to, voucher.clone(), base_cid, selector, now)?;
            shared.configure(state, &channel, &voucher);
            Ok(channel)
        })
    }

    /// Opens a channel that pulls the DAG under `base_cid` selected by `selector` from
    /// `from` (Go's `OpenPullDataChannel`).
    ///
    /// # Errors
    /// [`Error::NotRunning`], [`Error::QueueFull`], [`Error::Command`] (too many channels).
    pub fn open_pull<V: Voucher>(
        &self,
        from: PeerId,
        voucher: &V,
        base_cid: Cid,
        selector: Node,
    ) -> Result<ChannelId, Error> {
        let voucher = encode_voucher(voucher);
        self.command(|shared, state, now| {
            let channel = state
                .engine
                .open_pull(from, voucher.clone(), base_cid, selector, now)?;
            shared.configure(state, &channel, &voucher);
            Ok(channel)
        })
    }

    /// Sends another voucher on a channel this node opened (Go's `SendVoucher`), for example
    /// a payment the responder asked for.
    ///
    /// # Errors
    /// [`Error::NotRunning`], [`Error::QueueFull`], [`Error::Command`] (unknown channel, not
    /// the initiator, finished channel, too many vouchers).
    pub fn send_voucher<V: Voucher>(&self, channel: &ChannelId, voucher: &V) -> Result<(), Error> {
        self.refuse_if_archived(channel)?;
        let voucher = encode_voucher(voucher);
        self.command(|_, state, now| Ok(state.engine.send_voucher(channel, voucher, now)?))
    }

    /// Cancels a channel (Go's `CloseDataTransferChannel`): the transport stops, the peer is
    /// told, the channel ends `Cancelled`. A finished channel is left as it is.
    ///
    /// # Errors
    /// [`Error::NotRunning`], [`Error::QueueFull`], [`Error::Command`] (unknown channel).
    pub fn close(&self, channel: &ChannelId) -> Result<(), Error> {
        if self.shared.archived(channel).is_some() {
            return Ok(());
        }
        self.command(|_, state, now| Ok(state.engine.cancel(channel, now)?))
    }

    /// Pauses the local side of a channel (Go's `PauseDataTransferChannel`).
    ///
    /// # Errors
    /// [`Error::PauseUnsupported`] when the transport cannot pause; [`Error::NotRunning`],
    /// [`Error::QueueFull`], [`Error::Command`] (unknown or finished channel).
    pub fn pause(&self, channel: &ChannelId) -> Result<(), Error> {
        self.check_pause(channel)?;
        self.refuse_if_archived(channel)?;
        self.command(|_, state, now| Ok(state.engine.pause(channel, now)?))
    }

    /// Resumes the local side of a channel (Go's `ResumeDataTransferChannel`).
    ///
    /// # Errors
    /// As [`pause`](Self::pause).
    pub fn resume(&self, channel: &ChannelId) -> Result<(), Error> {
        self.check_pause(channel)?;
        self.refuse_if_archived(channel)?;
        self.command(|_, state, now| Ok(state.engine.resume(channel, now)?))
    }

    /// Restarts a channel after a disconnection or a process restart (Go's
    /// `RestartDataTransferChannel`, spec §7.1): the initiator repeats its request as a
    /// restart (a pull asks the sender to skip the blocks already received), the responder
    /// asks the initiator to do so. Finished channels are left as they are.
    ///
    /// # Errors
    /// [`Error::NotRunning`], [`Error::QueueFull`], [`Error::Command`] (unknown channel).
    pub fn restart_channel(&self, channel: &ChannelId) -> Result<(), Error> {
        if self.shared.archived(channel).is_some() {
            return Ok(());
        }
        self.command(|shared, state, now| {
            state.engine.restart(channel, now)?;
            if let Some(restarted) = state.engine.channel(channel)
                && !restarted.status.is_terminal()
            {
                let tag = channel.to_string();
                shared.network.protect(restarted.other_peer(), &tag);
                if let Some(voucher) = restarted.voucher().cloned() {
                    shared.configure(state, channel, &voucher);
                }
            }
            Ok(())
        })
    }

    /// The channel's status (Go's `TransferChannelStatus`), `ChannelNotFoundError` for an
    /// unknown channel.
    pub fn status(&self, channel: &ChannelId) -> ChannelStatus {
        self.channel_state(channel)
            .map_or(ChannelStatus::ChannelNotFoundError, |state| state.status)
    }

    /// The channel's whole state (Go's `ChannelState`).
    ///
    /// # Errors
    /// [`Error::Command`] with [`CommandError::UnknownChannel`].
    pub fn channel_state(&self, channel: &ChannelId) -> Result<ChannelState, Error> {
        let live = self.shared.lock().engine.channel(channel).cloned();
        live.or_else(|| self.shared.archived(channel))
            .ok_or_else(|| {
                Error::Command(CommandError::UnknownChannel {
                    channel: channel.clone(),
                })
            })
    }

    /// Waits until the channel ends (a terminal status: completed, failed, cancelled…) and
    /// returns its final state, at once for a channel that has already ended. Unlike a
    /// [`Manager::subscribe_channel`] loop it is not woken by the channel's other events and
    /// cannot lag behind them.
    ///
    /// # Errors
    /// [`Error::Command`] with [`CommandError::UnknownChannel`]; [`Error::NotRunning`] when
    /// the manager is stopped, or stops before the channel ends.
    pub async fn wait_for_end(&self, channel: &ChannelId) -> Result<Arc<ChannelState>, Error> {
        let ended = {
            let mut state = self.shared.lock();
            let Some(live) = state.engine.channel_snapshot(channel) else {
                drop(state);
                return self.shared.archived(channel).map(Arc::new).ok_or_else(|| {
                    Error::Command(CommandError::UnknownChannel {
                        channel: channel.clone(),
                    })
                });
            };
            if live.status.is_terminal() {
                return Ok(live);
            }
            if state.phase == Phase::Stopped {
                return Err(Error::NotRunning);
            }
            let (answer, ended) = oneshot::channel();
            let waiters = state.end_waiters.entry(channel.clone()).or_default();
            waiters.retain(|waiter| !waiter.is_closed());
            waiters.push(answer);
            ended
        };
        ended.await.map_err(|_| Error::NotRunning)
    }

    /// Every channel this node knows, finished ones included (from the store), as Go's
    /// `InProgressChannels` returns them.
    ///
    /// # Errors
    /// [`Error::Store`] when the store cannot be read.
    pub fn in_progress_channels(&self) -> Result<BTreeMap<ChannelId, ChannelState>, Error> {
        let mut all: BTreeMap<ChannelId, ChannelState> = self
            .shared
            .store
            .list()?
            .into_iter()
            .map(|state| (state.channel_id.clone(), state))
            .collect();
        let state = self.shared.lock();
        for live in state.engine.channels() {
            all.insert(live.channel_id.clone(), live.clone());
        }
        Ok(all)
    }

    /// The outbound queue now: transmits waiting, those peers' messages caused, and the peer
    /// messages dropped so far because those were at their bounds
    /// ([`Config::max_queued_per_peer`], [`Config::max_queued_for_peers`]).
    pub fn outbound_stats(&self) -> OutboundStats {
        let state = self.shared.lock();
        OutboundStats {
            queued: state.outbound.len(),
            caused_by_peers: state.caused_total,
            most_by_one_peer: state.caused.values().copied().max().unwrap_or(0),
            dropped_messages: state.dropped_messages,
        }
    }

    /// Subscribes to every event of this node (Go's `SubscribeToEvents`); drop the
    /// subscription to unsubscribe.
    pub fn subscribe(&self) -> Subscription {
        Subscription::new(self.shared.events.subscribe(), None)
    }

    /// Subscribes to the events of one channel.
    pub fn subscribe_channel(&self, channel: ChannelId) -> Subscription {
        Subscription::new(self.shared.events.subscribe(), Some(channel))
    }

    /// Refuses a command on a finished channel the engine let go of, as the engine refuses it
    /// on one it still holds.
    fn refuse_if_archived(&self, channel: &ChannelId) -> Result<(), Error> {
        match self.shared.archived(channel) {
            Some(state) => Err(Error::Command(CommandError::Terminated {
                channel: channel.clone(),
                status: state.status,
            })),
            None => Ok(()),
        }
    }

    fn check_pause(&self, channel: &ChannelId) -> Result<(), Error> {
        if self.shared.transport.capabilities().pause {
            Ok(())
        } else {
            Err(Error::PauseUnsupported {
                channel: channel.clone(),
            })
        }
    }

    /// Runs a command on the engine, then processes its outputs.
    fn command<R>(
        &self,
        f: impl FnOnce(&Shared<T, N>, &mut State, Instant) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.phase != Phase::Running {
            return Err(Error::NotRunning);
        }
        if state.outbound.len() >= shared.config.max_outbound {
            return Err(Error::QueueFull {
                limit: shared.config.max_outbound,
            });
        }
        shared.evict_finished(&mut state);
        let now = now();
        let outcome = f(shared, &mut state, now);
        let transmits = shared.drain(&mut state, now);
        shared.enqueue(&mut state, transmits);
        shared.unlock_and_wake(state);
        outcome
    }
}

impl<T, N> Shared<T, N>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a panic in user code while
        // holding the lock does not leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A finished channel the engine no longer holds, read from the store.
    fn archived(&self, channel: &ChannelId) -> Option<ChannelState> {
        if self.lock().engine.channel(channel).is_some() {
            return None;
        }
        match self.store.get(channel) {
            Ok(stored) => stored.filter(|state| state.status.is_terminal()),
            Err(error) => {
                tracing::warn!(%channel, %error, "store read failed");
                None
            }
        }
    }

    /// Whether the store holds `channel` as finished (the caller holds the lock and has seen
    /// that the engine does not).
    fn is_archived(&self, channel: &ChannelId) -> bool {
        matches!(self.store.get(channel), Ok(Some(state)) if state.status.is_terminal())
    }

    /// Once the engine holds three quarters of its channel limit, lets go of its finished
    /// channels: they stay in the store, where reads find them, and the slots are free for
    /// new channels.
    fn evict_finished(&self, state: &mut State) {
        let limit = self.config.engine.max_channels;
        if state.engine.channels().count() < limit - limit / 4 {
            return;
        }
        let finished: Vec<ChannelId> = state
            .engine
            .channels()
            .filter(|channel| channel.status.is_terminal())
            .map(|channel| channel.channel_id.clone())
            .collect();
        for channel in finished {
            if let Err(error) = state.engine.remove(&channel) {
                tracing::warn!(%channel, %error, "finished channel not released");
            }
        }
    }

    fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// Runs the configurer of the voucher's type and remembers the block store it chose for
    /// the channel.
    fn configure(
        &self,
        state: &mut State,
        channel: &ChannelId,
        voucher: &datatransfer_fsm::Voucher,
    ) {
        let chosen = state
            .registry
            .configure(channel, voucher, &self.transport as &dyn Any);
        if let Some(store) = chosen {
            state.stores.insert(channel.clone(), store);
        }
    }

    /// Drains the engine after an input: persists snapshots, answers validation questions,
    /// publishes events; returns the transmits, which the caller sends only afterwards.
    ///
    /// A channel event is published once the snapshot its step took is stored (as Go stores a
    /// channel's state before it notifies), carrying that snapshot rather than another copy of
    /// the state; events are published in the engine's order.
    fn drain(&self, state: &mut State, now: Instant) -> Vec<Transmit> {
        let mut transmits = Vec::new();
        let mut unpublished: Vec<ChannelEvent> = Vec::new();
        loop {
            let mut moved = false;
            while let Some(event) = state.engine.poll_event() {
                moved = true;
                match event {
                    EngineEvent::Snapshot(snapshot) => {
                        if let Err(error) = self.store.put(&snapshot) {
                            tracing::error!(channel = %snapshot.channel_id, %error, "store failed");
                            self.publish(Event::StoreFailed {
                                channel: snapshot.channel_id.clone(),
                                reason: error.to_string(),
                            });
                        }
                        self.publish_waiting(state, &mut unpublished, Some(&snapshot));
                    }
                    EngineEvent::ValidationRequested(question) => {
                        let answer = match self.peer_over_limit(state, &question) {
                            Some(reason) => Validation::new(Verdict::Reject(reason)),
                            None => state.registry.answer(&question.channel, &question.kind),
                        };
                        if let Verdict::Reject(reason) = &answer.verdict {
                            self.publish(Event::Rejected {
                                channel: question.channel.clone(),
                                reason: reason.clone(),
                            });
                        }
                        let created = matches!(question.kind, ValidationKind::Open { .. })
                            && !matches!(answer.verdict, Verdict::Reject(_));
                        if let Err(error) =
                            state
                                .engine
                                .handle_validation(&question.channel, answer, now)
                        {
                            tracing::warn!(channel = %question.channel, %error, "validation answer refused");
                        }
                        if let (true, ValidationKind::Open { voucher, .. }) =
                            (created, &question.kind)
                        {
                            self.configure(state, &question.channel, voucher);
                        }
                    }
                    EngineEvent::Channel(event) => {
                        let Some(channel_state) = state.engine.channel(&event.channel) else {
                            continue;
                        };
                        self.protection(&event, channel_state);
                        if let Some(monitor) = state.monitor.as_mut() {
                            monitor.observe(&event, channel_state, now);
                        }
                        if event.status.is_terminal() {
                            state.stores.remove(&event.channel);
                        }
                        unpublished.push(event);
                    }
                }
            }
            while let Some(transmit) = state.engine.poll_transmit() {
                moved = true;
                transmits.push(transmit);
            }
            if !moved {
                self.publish_waiting(state, &mut unpublished, None);
                self.rearm(state);
                return transmits;
            }
        }
    }

    /// Publishes the waiting channel events in order: those of `snapshot`'s channel with that
    /// stored snapshot, the others with their channel's current state (both shared, not
    /// copied).
    /// The [`Manager::wait_for_end`] calls of a channel that ended are answered with the
    /// state its ending event carries.
    fn publish_waiting(
        &self,
        state: &mut State,
        unpublished: &mut Vec<ChannelEvent>,
        snapshot: Option<&Arc<ChannelState>>,
    ) {
        for event in std::mem::take(unpublished) {
            let channel_state = match snapshot {
                Some(taken) if taken.channel_id == event.channel => Some(Arc::clone(taken)),
                _ => state.engine.channel_snapshot(&event.channel),
            };
            let Some(channel_state) = channel_state else {
                continue;
            };
            if channel_state.status.is_terminal()
                && let Some(waiters) = state.end_waiters.remove(&event.channel)
            {
                for waiter in waiters {
                    let _ = waiter.send(Arc::clone(&channel_state));
                }
            }
            self.publish(Event::Channel {
                event,
                state: channel_state,
            });
        }
    }

    /// Why a new channel that `question` asks about is refused before validation: its
    /// initiator already has [`Config::max_channels_per_peer`] unfinished channels here.
    fn peer_over_limit(&self, state: &State, question: &ValidationRequest) -> Option<String> {
        if !matches!(question.kind, ValidationKind::Open { .. }) {
            return None;
        }
        let peer = &question.channel.initiator;
        let limit = self.config.max_channels_per_peer;
        let live = state
            .engine
            .channels()
            .filter(|channel| !channel.status.is_terminal() && channel.other_peer() == peer)
            .take(limit)
            .count();
        (live >= limit).then(|| format!("too many channels with peer {peer} (limit {limit})"))
    }

    /// Keeps the connection to the other peer protected while a channel lives, under the
    /// channel id's text (Go's `Protect` / `Unprotect`).
    fn protection(&self, event: &ChannelEvent, state: &ChannelState) {
        // The tag is formatted only when used: it base58-encodes two peer ids, and most
        // events (one or two per block) neither protect nor unprotect.
        if event.status.is_terminal() {
            self.network
                .unprotect(state.other_peer(), &event.channel.to_string());
        } else if matches!(event.code, EventCode::Open | EventCode::Restart) {
            self.network
                .protect(state.other_peer(), &event.channel.to_string());
        }
    }

    /// Wakes the timer task when a deadline earlier than the one it sleeps until was set.
    fn rearm(&self, state: &mut State) {
        let monitor = state.monitor.as_mut().and_then(Monitor::take_new_deadline);
        let engine = state.engine.poll_timeout();
        let Some(earliest) = monitor.into_iter().chain(engine).min() else {
            return;
        };
        if state.armed.is_none_or(|armed| earliest < armed) {
            state.armed = Some(earliest);
            self.timer_wake.notify_one();
        }
    }

    /// Tells the monitor that the transport lost `channel`'s connection.
    fn connection_lost(&self, state: &mut State, channel: &ChannelId, reason: String) {
        if let Some(monitor) = state.monitor.as_mut() {
            monitor.transport_error(channel, reason, now());
            self.rearm(state);
        }
    }

    /// Fails `channel` for the monitor (Go's `CloseDataTransferChannelWithError`): closes
    /// its transport, tells the peer (Cancel; a failure to send it is only reported) and
    /// applies `Error` with the failure as the channel's message.
    fn fail_channel(
        &self,
        state: &mut State,
        channel: &ChannelId,
        failure: &MonitorFailure,
    ) -> Vec<Transmit> {
        let Some(current) = state.engine.channel(channel) else {
            return Vec::new();
        };
        if current.status.is_terminal() {
            return Vec::new();
        }
        let message = if current.is_initiator() {
            Message::from(cancel_request(channel.id))
        } else {
            Message::from(cancel_response(channel.id))
        };
        let mut transmits = vec![
            Transmit::CloseChannel {
                channel: channel.clone(),
            },
            Transmit::Message {
                peer: current.other_peer().clone(),
                channel: channel.clone(),
                message,
            },
        ];
        let input = TransportInput::Completed(Err(failure.to_string()));
        transmits.extend(self.input_transport(state, channel, input));
        transmits
    }

    fn enqueue(&self, state: &mut State, transmits: Vec<Transmit>) {
        self.note_lanes(state, &transmits);
        state
            .outbound
            .extend(transmits.into_iter().map(|transmit| (transmit, None)));
    }

    /// Marks the outbound task to be woken when one of `transmits` is for a peer that has no
    /// lane task (a busy lane takes its peer's new transmits itself).
    fn note_lanes(&self, state: &mut State, transmits: &[Transmit]) {
        if transmits
            .iter()
            .any(|transmit| !state.busy_lanes.contains(self.lane(transmit)))
        {
            state.wake_outbound = true;
        }
    }

    /// Releases the state and wakes the outbound task if a transmit needs a new lane.
    fn unlock_and_wake(&self, mut state: MutexGuard<'_, State>) {
        let wake = std::mem::take(&mut state.wake_outbound);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Queues the transmits a message from `peer` caused, counted against the peer's bounds.
    fn enqueue_caused(&self, state: &mut State, peer: &PeerId, transmits: Vec<Transmit>) {
        if transmits.is_empty() {
            return;
        }
        *state.caused.entry(peer.clone()).or_default() += transmits.len();
        state.caused_total += transmits.len();
        self.note_lanes(state, &transmits);
        state.outbound.extend(
            transmits
                .into_iter()
                .map(|transmit| (transmit, Some(peer.clone()))),
        );
    }

    /// Feeds a peer's message to the engine.
    fn input_message(&self, state: &mut State, from: PeerId, message: Message) -> Vec<Transmit> {
        let now = now();
        if let Err(error) = state.engine.handle_message(from.clone(), message, now) {
            tracing::debug!(peer = %from, %error, "message refused");
            let late = match &error {
                // A late message for a finished channel the engine let go of is dropped, as
                // the engine drops messages for the finished channels it holds.
                ProtocolError::UnknownChannel { channel, .. } => self.is_archived(channel),
                _ => false,
            };
            if !late {
                self.publish(Event::ProtocolViolated { peer: from, error });
            }
        }
        self.drain(state, now)
    }

    /// Feeds a transport report to the engine.
    fn input_transport(
        &self,
        state: &mut State,
        channel: &ChannelId,
        input: TransportInput,
    ) -> Vec<Transmit> {
        let now = now();
        if let Err(error) = state.engine.handle_transport_event(channel, input, now) {
            tracing::debug!(%channel, %error, "transport report refused");
        }
        self.drain(state, now)
    }

    /// Runs `f` on the state if the manager runs, then queues the transmits it leaves.
    fn with_running(&self, f: impl FnOnce(&Self, &mut State) -> Vec<Transmit>) {
        let mut state = self.lock();
        if state.phase != Phase::Running {
            return;
        }
        let transmits = f(self, &mut state);
        self.enqueue(&mut state, transmits);
        self.unlock_and_wake(state);
    }

    /// The peer whose lane `transmit` goes out in: the receiver of a message, the other party
    /// of a transport command's channel.
    fn lane<'a>(&self, transmit: &'a Transmit) -> &'a PeerId {
        match transmit {
            Transmit::Message { peer, .. } => peer,
            Transmit::OpenChannel { channel, .. }
            | Transmit::Attach { channel, .. }
            | Transmit::PauseChannel { channel }
            | Transmit::ResumeChannel { channel, .. }
            | Transmit::CloseChannel { channel }
            | Transmit::CleanupChannel { channel } => channel.other_party(&self.self_peer),
        }
    }

    /// A lane task: carries out the queued transmits for `peer` in order, until none is left
    /// (then the lane is free again, in the same critical section, so that a transmit queued
    /// later wakes the outbound task) or the manager stops.
    async fn send_lane(&self, peer: &PeerId) {
        loop {
            let next = {
                let mut state = self.lock();
                let position = (state.phase != Phase::Stopped)
                    .then(|| {
                        state
                            .outbound
                            .iter()
                            .position(|(transmit, _)| self.lane(transmit) == peer)
                    })
                    .flatten();
                match position.and_then(|position| state.outbound.remove(position)) {
                    Some((transmit, caused)) => {
                        if let Some(cause) = caused {
                            state.release_caused(&cause);
                        }
                        transmit
                    }
                    None => {
                        state.busy_lanes.remove(peer);
                        return;
                    }
                }
            };
            self.execute(next).await;
        }
    }

    /// Carries out one transmit.
    async fn execute(&self, transmit: Transmit) {
        match transmit {
            Transmit::Message {
                peer,
                channel,
                message,
            } => {
                // Only a push's new request goes over the network from its initiator (a
                // pull's rides in the graphsync request); a restart's failure goes back to
                // whoever restarted.
                let push_request = message.as_request().is_some_and(|request| request.is_new());
                if let Err(error) = self.send(&channel, peer, message).await {
                    self.transmit_failed(&channel, &error);
                    if push_request {
                        // Spec §4.5 step 1: the push fails at once (Go's `Error`: Failing,
                        // then Failed, with the send error as the message).
                        let input = TransportInput::Completed(Err(error_chain(&error)));
                        self.with_running(|shared, state| {
                            shared.input_transport(state, &channel, input)
                        });
                    }
                }
            }
            Transmit::OpenChannel {
                data_sender,
                channel,
                base_cid,
                selector,
                message,
                skip_blocks,
            } => {
                let mut open =
                    OpenChannel::new(data_sender, channel.clone(), base_cid, selector, message);
                if let Some(skip) = skip_blocks {
                    open = open.with_skip_blocks(skip);
                }
                if let Some(store) = self.lock().stores.get(&channel).cloned() {
                    open = open.with_store(store);
                }
                if let Err(error) = self.transport.open_channel(open).await {
                    self.transmit_failed(&channel, &error);
                    let input = TransportInput::Completed(Err(error.to_string()));
                    self.with_running(|shared, state| {
                        shared.input_transport(state, &channel, input)
                    });
                }
            }
            Transmit::Attach { channel, message } => {
                let attached = self
                    .transport
                    .attach(channel.clone(), message.clone())
                    .await;
                if attached.is_err() {
                    // No exchange to ride on (it ended, or never started): the network
                    // carries the message instead.
                    self.send_to_other(&channel, message).await;
                }
            }
            Transmit::PauseChannel { channel } => {
                if let Err(error) = self.transport.pause_channel(channel.clone()).await {
                    tracing::debug!(%channel, %error, "transport pause refused");
                }
            }
            Transmit::ResumeChannel { channel, message } => {
                if let Err(error) = self.resume_transport(&channel, &message).await {
                    // The local side was not paused in the transport (or has no exchange):
                    // the message still has to reach the peer.
                    tracing::debug!(%channel, %error, "transport resume refused");
                    self.send_to_other(&channel, message).await;
                }
            }
            Transmit::CloseChannel { channel } => {
                if let Err(error) = self.transport.close_channel(channel.clone()).await {
                    tracing::debug!(%channel, %error, "transport close refused");
                }
            }
            Transmit::CleanupChannel { channel } => {
                self.transport.cleanup_channel(channel).await;
            }
        }
    }

    /// Resumes the transport's side of `channel`. A pause decided in a block handler takes
    /// effect in the transport a moment after the handler returns, and the peer's answer (a
    /// payment) can come back before that: `NotPaused` is retried a few times
    /// ([`RESUME_ATTEMPTS`], [`RESUME_RETRY`] apart) before giving up.
    async fn resume_transport(
        &self,
        channel: &ChannelId,
        message: &Message,
    ) -> Result<(), TransportError> {
        let mut attempt = 1;
        loop {
            match self
                .transport
                .resume_channel(channel.clone(), message.clone())
                .await
            {
                Err(TransportError::NotPaused { .. }) if attempt < RESUME_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(RESUME_RETRY).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn send_to_other(&self, channel: &ChannelId, message: Message) {
        let peer = channel.other_party(&self.self_peer).clone();
        if let Err(error) = self.send(channel, peer, message).await {
            self.transmit_failed(channel, &error);
        }
    }

    /// Sends a message of `channel` to `peer`. Only the channel's initiator may dial (issue 7
    /// §3: after a disconnect the initiator dials again and restarts the channel); the
    /// responder sends over an open connection or fails at once, and its side waits for the
    /// initiator's restart. One exception: the responder's request that the initiator restart
    /// the channel ([`Manager::restart_channel`] on the responder, a local command, never
    /// the monitor) may dial, as it exists to reach an initiator that is not connected.
    async fn send(
        &self,
        channel: &ChannelId,
        peer: PeerId,
        message: Message,
    ) -> Result<(), NetworkError> {
        let asks_restart = message
            .as_request()
            .is_some_and(|request| request.is_restart_existing_channel_request());
        if channel.initiator == self.self_peer || asks_restart {
            self.network.send_message(peer, message).await
        } else {
            self.network.send_message_connected(peer, message).await
        }
    }

    /// Carries out one decision of the monitor.
    fn carry_out(self: &Arc<Self>, action: Action) {
        match action {
            Action::Publish(channel, event) => {
                tracing::debug!(%channel, ?event, "channel monitor");
                self.publish(Event::Monitor { channel, event });
            }
            Action::Fail { channel, failure } => {
                tracing::warn!(%channel, %failure, "channel monitor fails the channel");
                self.publish(Event::Monitor {
                    channel: channel.clone(),
                    event: MonitorEvent::Failed {
                        failure: failure.clone(),
                    },
                });
                self.with_running(|shared, state| shared.fail_channel(state, &channel, &failure));
            }
            Action::Restart { channel, peer } => {
                let shared = Arc::clone(self);
                tokio::spawn(async move { shared.restart(channel, peer).await });
            }
        }
    }

    /// A restart the monitor decided: connect to the peer, then restart the channel as
    /// [`Manager::restart_channel`] does; the outcome goes back to the monitor.
    async fn restart(self: Arc<Self>, channel: ChannelId, peer: PeerId) {
        let outcome = match self.network.connect(peer).await {
            Ok(()) => Manager {
                shared: Arc::clone(&self),
            }
            .restart_channel(&channel)
            .map_err(|error| error_chain(&error)),
            Err(error) => Err(error_chain(&error)),
        };
        let publications = {
            let mut state = self.lock();
            if state.phase != Phase::Running {
                return;
            }
            let now = now();
            let actions = state
                .monitor
                .as_mut()
                .map(|monitor| monitor.restart_outcome(&channel, outcome, now))
                .unwrap_or_default();
            self.rearm(&mut state);
            actions
        };
        for action in publications {
            if let Action::Publish(channel, event) = action {
                self.publish(Event::Monitor { channel, event });
            }
        }
    }

    fn transmit_failed(&self, channel: &ChannelId, error: &dyn std::error::Error) {
        // With its causes: "network backend failed" alone does not say what failed.
        let reason = error_chain(error);
        tracing::warn!(%channel, %reason, "transmit failed");
        self.publish(Event::TransmitFailed {
            channel: channel.clone(),
            reason,
        });
    }
}

/// The timer task: answers the engine's expired validation questions
/// ([`Engine::handle_timeout`]) and carries out the monitor's decisions when their time comes,
/// until the manager stops.
async fn timer<T, N>(strong: Arc<Shared<T, N>>)
where
    T: Transport + 'static,
    N: Network + 'static,
{
    loop {
        let deadline = {
            let mut state = strong.lock();
            if state.phase == Phase::Stopped {
                return;
            }
            let monitor = state.monitor.as_ref().and_then(Monitor::next_deadline);
            let engine = state.engine.poll_timeout();
            let next = monitor.into_iter().chain(engine).min();
            // Deadlines set from here on wake the task only when earlier than this one.
            let _ = state.monitor.as_mut().map(Monitor::take_new_deadline);
            state.armed = next;
            next
        };
        let wake = strong.timer_wake.notified();
        let due = match deadline {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => true,
                    () = wake => false,
                }
            }
            None => {
                wake.await;
                false
            }
        };
        if !due {
            continue;
        }
        let actions = {
            let mut state = strong.lock();
            if state.phase != Phase::Running {
                continue;
            }
            let now = now();
            state.engine.handle_timeout(now);
            let transmits = strong.drain(&mut state, now);
            strong.enqueue(&mut state, transmits);
            state
                .monitor
                .as_mut()
                .map(|monitor| monitor.poll(now))
                .unwrap_or_default()
        };
        strong.wake.notify_one();
        for action in actions {
            strong.carry_out(action);
        }
    }
}

impl State {
    /// One transmit a message of `peer` caused has left the queue.
    fn release_caused(&mut self, peer: &PeerId) {
        self.caused_total = self.caused_total.saturating_sub(1);
        if let Some(count) = self.caused.get_mut(peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.caused.remove(peer);
            }
        }
    }
}

/// The outbound task: starts a lane task ([`Shared::send_lane`]) for each peer with queued
/// transmits and none running, up to [`Config::max_parallel_sends`] at once, until the manager
/// stops; then it waits for the lanes, which end after the transmit under way.
async fn outbound<T, N>(shared: Arc<Shared<T, N>>)
where
    T: Transport + 'static,
    N: Network + 'static,
{
    let limit = shared.config.max_parallel_sends.max(1);
    let mut sending: JoinSet<()> = JoinSet::new();
    let mut lanes: HashMap<tokio::task::Id, PeerId> = HashMap::new();
    loop {
        let stopped = {
            let mut state = shared.lock();
            state.wake_outbound = false;
            let stopped = state.phase == Phase::Stopped;
            while !stopped && state.busy_lanes.len() < limit {
                let idle = state.outbound.iter().find_map(|(transmit, _)| {
                    let lane = shared.lane(transmit);
                    (!state.busy_lanes.contains(lane)).then(|| lane.clone())
                });
                let Some(lane) = idle else {
                    break;
                };
                state.busy_lanes.insert(lane.clone());
                let sender = Arc::clone(&shared);
                let peer = lane.clone();
                let task = sending.spawn(async move { sender.send_lane(&peer).await });
                lanes.insert(task.id(), lane);
            }
            stopped
        };
        if stopped {
            while sending.join_next().await.is_some() {}
            return;
        }
        tokio::select! {
            Some(done) = sending.join_next_with_id(), if !sending.is_empty() => {
                match done {
                    Ok((id, ())) => {
                        lanes.remove(&id);
                    }
                    Err(error) => {
                        // The lane task did not free its lane: free it here.
                        tracing::error!(%error, "a transmit panicked");
                        if let Some(peer) = lanes.remove(&error.id()) {
                            shared.lock().busy_lanes.remove(&peer);
                        }
                    }
                }
            }
            () = shared.wake.notified() => {}
        }
    }
}

/// The transport's events handler and the network's receiver: turns reports and messages
/// into engine inputs. Holds the manager weakly, so that the transport holding it does not
/// keep the manager alive.
struct Handler<T, N> {
    shared: Weak<Shared<T, N>>,
}

impl<T, N> Handler<T, N>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    /// Runs `f` on a running manager; the transmits it returns are queued. `None` when the
    /// manager is gone or not running.
    fn run<R>(&self, f: impl FnOnce(&Shared<T, N>, &mut State) -> (R, Vec<Transmit>)) -> Option<R> {
        let shared = self.shared.upgrade()?;
        let mut state = shared.lock();
        if state.phase != Phase::Running {
            return None;
        }
        shared.evict_finished(&mut state);
        let (answer, transmits) = f(&shared, &mut state);
        shared.enqueue(&mut state, transmits);
        shared.unlock_and_wake(state);
        Some(answer)
    }

    fn report(&self, channel: &ChannelId, input: TransportInput) {
        self.run(|shared, state| ((), shared.input_transport(state, channel, input)));
    }

    fn peer_of(&self, channel: &ChannelId) -> Option<PeerId> {
        let shared = self.shared.upgrade()?;
        Some(channel.other_party(&shared.self_peer).clone())
    }
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Takes the first `Attach` of `channel` out of `transmits`.
fn take_attach(transmits: &mut Vec<Transmit>, channel: &ChannelId) -> Option<Message> {
    let position = transmits
        .iter()
        .position(|t| matches!(t, Transmit::Attach { channel: c, .. } if c == channel))?;
    match transmits.remove(position) {
        Transmit::Attach { message, .. } => Some(message),
        _ => None,
    }
}

/// Takes every `PauseChannel` of `channel` out of `transmits`; true if there was one.
fn take_pause(transmits: &mut Vec<Transmit>, channel: &ChannelId) -> bool {
    let before = transmits.len();
    transmits.retain(|t| !matches!(t, Transmit::PauseChannel { channel: c } if c == channel));
    transmits.len() != before
}

/// The text of a transport error with its causes: it becomes the channel's message or the
/// monitor's restart reason, which must say what failed ("transport backend failed" alone
/// does not).
fn data_text(error: &DataError) -> String {
    error_chain(error)
}

impl<T, N> EventsHandler for Handler<T, N>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    fn on_channel_opened(&self, channel: &ChannelId) -> Result<(), HandlerError> {
        let known = self.run(|shared, state| {
            let known = state.engine.channel(channel).is_some();
            let transmits = if known {
                shared.input_transport(state, channel, TransportInput::Opened)
            } else {
                Vec::new()
            };
            (known, transmits)
        });
        match known {
            Some(true) => Ok(()),
            _ => Err(HandlerError::UnknownChannel {
                channel: channel.clone(),
            }),
        }
    }

    fn on_response_received(
        &self,
        channel: &ChannelId,
        response: Response,
    ) -> Result<Flow, HandlerError> {
        let Some(peer) = self.peer_of(channel) else {
            return Err(HandlerError::UnknownChannel {
                channel: channel.clone(),
            });
        };
        self.run(|shared, state| {
            let transmits = shared.input_message(state, peer, Message::Response(response));
            ((), transmits)
        });
        Ok(Flow::Continue)
    }

    fn on_request_received(&self, channel: &ChannelId, request: Request) -> RequestAnswer {
        let Some(peer) = self.peer_of(channel) else {
            return RequestAnswer::Reject(None);
        };
        let answer = self.run(|shared, state| {
            let mut transmits = shared.input_message(state, peer, Message::Request(request));
            let answer = match take_attach(&mut transmits, channel) {
                Some(Message::Response(response))
                    if !response.accepted() || response.is_complete() =>
                {
                    // The rejection ends the exchange; no separate close is needed. So does
                    // the Complete that answers a restart of a channel this node completed
                    // already (the restart raced the completion): there is nothing to send.
                    transmits.retain(
                        |t| !matches!(t, Transmit::CloseChannel { channel: c } if c == channel),
                    );
                    RequestAnswer::Reject(Some(response))
                }
                Some(Message::Response(response)) if response.is_paused() => {
                    take_pause(&mut transmits, channel);
                    RequestAnswer::Hold(Some(response))
                }
                Some(Message::Response(response)) => RequestAnswer::Proceed(Some(response)),
                Some(other) => {
                    // A request cannot answer inside the exchange; send it on the network.
                    transmits.push(Transmit::Attach {
                        channel: channel.clone(),
                        message: other,
                    });
                    RequestAnswer::Proceed(None)
                }
                None => RequestAnswer::Proceed(None),
            };
            (answer, transmits)
        });
        answer.unwrap_or(RequestAnswer::Reject(None))
    }

    fn on_data_received(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<Flow, HandlerError> {
        let input = data_input(datatransfer_fsm::DataKind::Received, &block);
        let flow = self.run(|shared, state| {
            let mut transmits = shared.input_transport(state, channel, input);
            let flow = if take_pause(&mut transmits, channel) {
                Flow::Pause
            } else {
                Flow::Continue
            };
            (flow, transmits)
        });
        Ok(flow.unwrap_or_default())
    }

    fn on_data_queued(
        &self,
        channel: &ChannelId,
        block: BlockInfo,
    ) -> Result<QueuedAnswer, HandlerError> {
        let input = data_input(datatransfer_fsm::DataKind::Queued, &block);
        let answer = self.run(|shared, state| {
            let mut transmits = shared.input_transport(state, channel, input);
            let mut answer = QueuedAnswer::proceed();
            if let Some(message) = take_attach(&mut transmits, channel) {
                answer = answer.with_message(message);
            }
            if take_pause(&mut transmits, channel) {
                answer.flow = Flow::Pause;
            }
            // A channel that ended meanwhile is stopped by the close its end queued; the block
            // is not refused here, so that the peer does not see a failure racing the
            // Cancel message.
            (answer, transmits)
        });
        Ok(answer.unwrap_or_default())
    }

    fn on_data_sent(&self, channel: &ChannelId, block: BlockInfo) {
        if block.withheld {
            // A late confirmation of a block a restart skips (datatransfer-graphsync's "Sent
            // totals"): counted when its index is new, and otherwise nothing was sent, so no
            // `DataSent` either (a restarted sender's transport reports every skipped block).
            let fresh = self.run(|_, state| {
                let fresh = state
                    .engine
                    .channel(channel)
                    .is_some_and(|state| block.index > state.sent_blocks_total);
                (fresh, Vec::new())
            });
            if fresh != Some(true) {
                return;
            }
        }
        let input = data_input(datatransfer_fsm::DataKind::Sent, &block);
        self.report(channel, input);
    }

    fn on_transfer_queued(&self, channel: &ChannelId) {
        // A new channel is not known yet: its request follows. Only known channels count.
        self.run(|shared, state| {
            let transmits = if state.engine.channel(channel).is_some() {
                shared.input_transport(state, channel, TransportInput::RequestQueued)
            } else {
                Vec::new()
            };
            ((), transmits)
        });
    }

    fn on_channel_completed(&self, channel: &ChannelId, result: Result<(), DataError>) {
        // A lost connection ends the exchange, not the channel: the send or receive error
        // reported just before it is recorded (status unchanged), and the channel can be
        // restarted once the peer is back, as Go's channel monitor does. Every other failure
        // fails the channel.
        if let Err(error @ DataError::Disconnected { peer }) = &result {
            tracing::debug!(%channel, %peer, "exchange lost with the connection");
            let reason = data_text(error);
            self.run(|shared, state| {
                shared.connection_lost(state, channel, reason);
                ((), Vec::new())
            });
            return;
        }
        let input = TransportInput::Completed(result.map_err(|error| data_text(&error)));
        self.report(channel, input);
    }

    fn on_request_cancelled(&self, channel: &ChannelId, error: DataError) {
        self.report(channel, TransportInput::RequestCancelled(data_text(&error)));
    }

    fn on_request_disconnected(&self, channel: &ChannelId, error: DataError) {
        // The engine has no input for Go's `Disconnected` event (the status does not change
        // in Go either); subscribers learn it here and may restart the channel.
        if let Some(shared) = self.shared.upgrade() {
            shared.transmit_failed(channel, &error);
        }
        let reason = data_text(&error);
        self.run(|shared, state| {
            shared.connection_lost(state, channel, reason);
            ((), Vec::new())
        });
    }

    // With the causes: the monitor's restart reason is this text ("transport backend
    // failed" alone did not say what failed).
    fn on_send_data_error(&self, channel: &ChannelId, error: DataError) {
        self.report(channel, TransportInput::SendDataError(data_text(&error)));
    }

    fn on_receive_data_error(&self, channel: &ChannelId, error: DataError) {
        self.report(channel, TransportInput::ReceiveDataError(data_text(&error)));
    }
}

impl<T, N> Receiver for Handler<T, N>
where
    T: Transport + 'static,
    N: Network + 'static,
{
    fn receive_message(&self, from: PeerId, message: Message) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut state = shared.lock();
        if state.phase != Phase::Running {
            return;
        }
        // The peer's earlier messages still have this many transmits waiting: this one is
        // dropped before the engine sees it, so a peer that floods requests while never
        // reading the answers cannot grow the queue (nor make the engine work for nothing).
        let queued = state.caused.get(&from).copied().unwrap_or(0);
        let full = if queued >= shared.config.max_queued_per_peer {
            Some((queued, shared.config.max_queued_per_peer, QueueScope::Peer))
        } else if state.caused_total >= shared.config.max_queued_for_peers {
            Some((
                state.caused_total,
                shared.config.max_queued_for_peers,
                QueueScope::AllPeers,
            ))
        } else {
            None
        };
        if let Some((queued, limit, scope)) = full {
            state.dropped_messages += 1;
            drop(state);
            tracing::debug!(peer = %from, queued, limit, ?scope, "outbound queue full; message dropped");
            shared.publish(Event::MessageDropped {
                peer: from,
                scope,
                queued,
                limit,
            });
            return;
        }
        shared.evict_finished(&mut state);
        let transmits = shared.input_message(&mut state, from.clone(), message);
        shared.enqueue_caused(&mut state, &from, transmits);
        shared.unlock_and_wake(state);
    }

    fn receive_error(&self, error: NetworkError) {
        tracing::debug!(%error, "network receive error");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The bounds on what peers' messages queue have their documented defaults.
    #[test]
    fn peer_queue_bounds_default_to_64_per_peer_and_512_in_all() {
        let config = Config::default();
        assert_eq!(
            (config.max_queued_per_peer, config.max_queued_for_peers),
            (64, 512)
        );
        let config = config.with_peer_queue_limits(3, 5);
        assert_eq!(
            (config.max_queued_per_peer, config.max_queued_for_peers),
            (3, 5)
        );
    }

    /// A data error's text for the monitor names its cause, not only "backend failed".
    #[test]
    fn data_error_texts_carry_their_cause() {
        let error = DataError::Backend {
            source: Arc::new(std::io::Error::other("stream from peer x reset")),
        };
        assert_eq!(
            data_text(&error),
            "transport backend failed: stream from peer x reset"
        );
    }
}
