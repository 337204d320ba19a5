//! The Prometheus endpoint of `--metrics ADDR`: per-peer and per-channel bytes and blocks,
//! channels by status, restarts and errors, fed from a [`datatransfer::Manager`]'s events.
//!
//! [`start`] does it all for a node (a [`ControlTarget`], such as a
//! [`datatransfer::Manager`]). Its parts: [`Metrics::new`] registers the metrics in a
//! `prometheus-client` [`Registry`]; [`spawn_recorder`] feeds them from a [`Subscription`];
//! [`serve_metrics`] answers `GET /metrics` over HTTP/1 (hyper, see
//! `docs/decisions/0007-dtx-metrics-http.md`) with the OpenMetrics text of the registry.
//!
//! The metrics (`peer` is the other peer in base58, `channel` the full channel id):
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `dtx_peer_sent_bytes_total` | counter | peer | bytes of new blocks sent since start |
//! | `dtx_peer_received_bytes_total` | counter | peer | bytes of new blocks received |
//! | `dtx_peer_sent_blocks_total` | counter | peer | new blocks sent |
//! | `dtx_peer_received_blocks_total` | counter | peer | new blocks received |
//! | `dtx_peer_restarts_total` | counter | peer | channel restarts |
//! | `dtx_peer_errors_total` | counter | peer, kind | errors (kinds below) |
//! | `dtx_channel_sent_bytes` | gauge | channel, peer | the channel's bytes sent |
//! | `dtx_channel_received_bytes` | gauge | channel, peer | the channel's bytes received |
//! | `dtx_channel_sent_blocks` | gauge | channel, peer | the channel's blocks sent |
//! | `dtx_channel_received_blocks` | gauge | channel, peer | the channel's blocks received |
//! | `dtx_channel_restarts_total` | counter | channel, peer | the channel's restarts |
//! | `dtx_channel_errors_total` | counter | channel, peer | the channel's errors |
//! | `dtx_channels` | gauge | status | channels known to this process, by status |
//! | `dtx_events_lost_total` | counter | | events the recorder missed by falling behind |
//!
//! Error kinds: `channel` (the channel failed), `send_data` and `receive_data` (transport
//! errors), `transmit` (a message or transport command could not go out), `store` (a snapshot
//! could not be written), `protocol` (the peer broke the protocol), `rejected` (this node's
//! validator refused the peer), `restart_failed` (the monitor could not restart a channel).
//!
//! Per-peer counters count what happened while this process ran; per-channel gauges carry the
//! channel's totals (restored channels start from what the store holds). Per-channel series
//! are bounded: once a channel is finished it stays among the last
//! [`Config::max_finished_channels`] finished channels, and the oldest beyond that have their
//! series removed.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use datatransfer::{
    ChannelId, ChannelState, ChannelStatus, Event, EventCode, MonitorEvent, Subscription,
    SubscriptionError,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::control::ControlTarget;

/// The content type of the OpenMetrics text that `prometheus-client` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The most HTTP connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Recorder configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How many finished channels keep their per-channel series; older ones are removed.
    /// Default 256.
    pub max_finished_channels: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_finished_channels: 256,
        }
    }
}

impl Config {
    /// This configuration with another bound on finished channels' series.
    pub fn with_max_finished_channels(mut self, max: usize) -> Self {
        self.max_finished_channels = max;
        self
    }
}

/// Why the metrics endpoint could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The labels of a per-peer series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer, base58.
    pub peer: String,
}

/// The labels of an error series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The peer, base58.
    pub peer: String,
    /// The error's kind.
    pub kind: &'static str,
}

/// The labels of a per-channel series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// The full channel id.
    pub channel: String,
    /// The other peer, base58.
    pub peer: String,
}

/// The labels of the channels-by-status gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Go's status name.
    pub status: &'static str,
}

/// The peer label of channels and events whose peer is not known.
const UNKNOWN_PEER: &str = "unknown";

/// The data-transfer metrics of one node; see the module docs for the list.
#[derive(Debug)]
pub struct Metrics {
    peer_sent_bytes: Family<PeerLabels, Counter>,
    peer_received_bytes: Family<PeerLabels, Counter>,
    peer_sent_blocks: Family<PeerLabels, Counter>,
    peer_received_blocks: Family<PeerLabels, Counter>,
    peer_restarts: Family<PeerLabels, Counter>,
    peer_errors: Family<ErrorLabels, Counter>,
    channel_sent_bytes: Family<ChannelLabels, Gauge<u64, AtomicU64>>,
    channel_received_bytes: Family<ChannelLabels, Gauge<u64, AtomicU64>>,
    channel_sent_blocks: Family<ChannelLabels, Gauge<u64, AtomicU64>>,
    channel_received_blocks: Family<ChannelLabels, Gauge<u64, AtomicU64>>,
    channel_restarts: Family<ChannelLabels, Counter>,
    channel_errors: Family<ChannelLabels, Counter>,
    channels: Family<StatusLabels, Gauge>,
    events_lost: Counter,
    config: Config,
    tracker: Mutex<Tracker>,
    recorded: watch::Sender<u64>,
}

/// What the recorder remembers about channels.
#[derive(Debug, Default)]
struct Tracker {
    channels: HashMap<ChannelId, Tracked>,
    /// Finished channels whose series are still there, oldest first.
    finished: VecDeque<ChannelId>,
}

#[derive(Debug)]
struct Tracked {
    labels: ChannelLabels,
    status: ChannelStatus,
    sent: u64,
    received: u64,
    sent_blocks: u64,
    received_blocks: u64,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub fn new(config: Config, registry: &mut Registry) -> Self {
        let metrics = Metrics {
            peer_sent_bytes: Family::default(),
            peer_received_bytes: Family::default(),
            peer_sent_blocks: Family::default(),
            peer_received_blocks: Family::default(),
            peer_restarts: Family::default(),
            peer_errors: Family::default(),
            channel_sent_bytes: Family::default(),
            channel_received_bytes: Family::default(),
            channel_sent_blocks: Family::default(),
            channel_received_blocks: Family::default(),
            channel_restarts: Family::default(),
            channel_errors: Family::default(),
            channels: Family::default(),
            events_lost: Counter::default(),
            config,
            tracker: Mutex::new(Tracker::default()),
            recorded: watch::Sender::new(0),
        };
        let peer = [
            (
                "dtx_peer_sent_bytes",
                "Bytes of new blocks sent to the peer",
                &metrics.peer_sent_bytes,
            ),
            (
                "dtx_peer_received_bytes",
                "Bytes of new blocks received from the peer",
                &metrics.peer_received_bytes,
            ),
            (
                "dtx_peer_sent_blocks",
                "New blocks sent to the peer",
                &metrics.peer_sent_blocks,
            ),
            (
                "dtx_peer_received_blocks",
                "New blocks received from the peer",
                &metrics.peer_received_blocks,
            ),
            (
                "dtx_peer_restarts",
                "Restarts of channels with the peer",
                &metrics.peer_restarts,
            ),
        ];
        for (name, help, family) in peer {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "dtx_peer_errors",
            "Errors on channels with the peer, by kind",
            metrics.peer_errors.clone(),
        );
        let channel = [
            (
                "dtx_channel_sent_bytes",
                "Bytes of new blocks the channel sent",
                &metrics.channel_sent_bytes,
            ),
            (
                "dtx_channel_received_bytes",
                "Bytes of new blocks the channel received",
                &metrics.channel_received_bytes,
            ),
            (
                "dtx_channel_sent_blocks",
                "Blocks the channel sent",
                &metrics.channel_sent_blocks,
            ),
            (
                "dtx_channel_received_blocks",
                "Blocks the channel received",
                &metrics.channel_received_blocks,
            ),
        ];
        for (name, help, family) in channel {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "dtx_channel_restarts",
            "Restarts of the channel",
            metrics.channel_restarts.clone(),
        );
        registry.register(
            "dtx_channel_errors",
            "Errors on the channel",
            metrics.channel_errors.clone(),
        );
        registry.register(
            "dtx_channels",
            "Channels known to this process, by status",
            metrics.channels.clone(),
        );
        registry.register(
            "dtx_events_lost",
            "Events the metrics recorder missed by falling behind",
            metrics.events_lost.clone(),
        );
        metrics
    }

    /// Takes in channels that existed before the recording started (those a serve restored
    /// from its store): their totals become the per-channel gauges and the baseline of the
    /// per-peer counters, so that nothing moved by an earlier process is counted again.
    pub fn seed<'a>(&self, states: impl IntoIterator<Item = &'a ChannelState>) {
        let mut tracker = self.lock();
        for state in states {
            self.observe(&mut tracker, state, false);
        }
        drop(tracker);
        self.recorded.send_modify(|n| *n += 1);
    }

    /// Records one event of the node.
    pub fn record(&self, event: &Event) {
        let mut tracker = self.lock();
        match event {
            Event::Channel { event, state } => {
                self.observe(&mut tracker, state, true);
                let kind = match event.code {
                    EventCode::Restart => {
                        if let Some(tracked) = tracker.channels.get(&event.channel) {
                            self.channel_restarts.get_or_create(&tracked.labels).inc();
                            self.peer_restarts
                                .get_or_create(&peer(&tracked.labels))
                                .inc();
                        }
                        None
                    }
                    EventCode::Error => Some("channel"),
                    EventCode::SendDataError => Some("send_data"),
                    EventCode::ReceiveDataError => Some("receive_data"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    self.error(&tracker, &event.channel, None, kind);
                }
            }
            Event::Rejected { channel, .. } => {
                // The validators of this node answer the initiator's requests and vouchers.
                let initiator = channel.initiator.to_string();
                self.error(&tracker, channel, Some(initiator), "rejected");
            }
            Event::ProtocolViolated { peer: from, .. } => {
                let from = from.to_string();
                match event.channel() {
                    Some(channel) => self.error(&tracker, channel, Some(from), "protocol"),
                    None => {
                        self.peer_errors
                            .get_or_create(&ErrorLabels {
                                peer: from,
                                kind: "protocol",
                            })
                            .inc();
                    }
                }
            }
            Event::TransmitFailed { channel, .. } => {
                self.error(&tracker, channel, None, "transmit")
            }
            Event::StoreFailed { channel, .. } => self.error(&tracker, channel, None, "store"),
            Event::Monitor {
                channel,
                event: MonitorEvent::RestartFailed { .. },
            } => self.error(&tracker, channel, None, "restart_failed"),
            _ => {}
        }
        drop(tracker);
        self.recorded.send_modify(|n| *n += 1);
    }

    /// Records that the recorder missed `missed` events.
    pub fn record_lost(&self, missed: u64) {
        self.events_lost.inc_by(missed);
        self.recorded.send_modify(|n| *n += 1);
    }

    /// A receiver whose value counts the calls of [`record`](Self::record), [`seed`](Self::seed)
    /// and [`record_lost`](Self::record_lost): it changes after each, for whoever waits on the
    /// recorder.
    pub fn recorded(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// The OpenMetrics text of `registry` (which holds these metrics), encoded while no event
    /// is half recorded: a scrape shows all the series one event changed, or none of them, so
    /// per-peer counters and per-channel gauges always agree.
    ///
    /// # Errors
    /// When a metric of the registry fails to encode.
    pub fn encode(&self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let _recording = self.lock();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry)?;
        Ok(text)
    }

    /// How many channels have per-channel series now.
    pub fn tracked_channels(&self) -> usize {
        self.lock().channels.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings a channel's series up to `state`; `count` adds its progress to the per-peer
    /// counters.
    fn observe(&self, tracker: &mut Tracker, state: &ChannelState, count: bool) {
        let id = &state.channel_id;
        let status = state.status;
        let known = tracker.channels.get(id).map(|tracked| tracked.status);
        if known.is_none() {
            let labels = ChannelLabels {
                channel: id.to_string(),
                peer: state.other_peer().to_string(),
            };
            tracker.channels.insert(
                id.clone(),
                Tracked {
                    labels,
                    status,
                    sent: 0,
                    received: 0,
                    sent_blocks: 0,
                    received_blocks: 0,
                },
            );
            if !count {
                // The baseline: what an earlier process moved.
                if let Some(tracked) = tracker.channels.get_mut(id) {
                    tracked.sent = state.sent;
                    tracked.received = state.received;
                    tracked.sent_blocks = state.sent_blocks_total;
                    tracked.received_blocks = state.received_blocks_total;
                }
            }
            self.status_gauge(status).inc();
        }
        let Some(tracked) = tracker.channels.get_mut(id) else {
            return;
        };
        if count {
            let peer = peer(&tracked.labels);
            let deltas = [
                (&self.peer_sent_bytes, &mut tracked.sent, state.sent),
                (
                    &self.peer_received_bytes,
                    &mut tracked.received,
                    state.received,
                ),
                (
                    &self.peer_sent_blocks,
                    &mut tracked.sent_blocks,
                    state.sent_blocks_total,
                ),
                (
                    &self.peer_received_blocks,
                    &mut tracked.received_blocks,
                    state.received_blocks_total,
                ),
            ];
            for (family, last, now) in deltas {
                if now > *last {
                    family.get_or_create(&peer).inc_by(now - *last);
                    *last = now;
                }
            }
        }
        let labels = &tracked.labels;
        self.channel_sent_bytes
            .get_or_create(labels)
            .set(state.sent);
        self.channel_received_bytes
            .get_or_create(labels)
            .set(state.received);
        self.channel_sent_blocks
            .get_or_create(labels)
            .set(state.sent_blocks_total);
        self.channel_received_blocks
            .get_or_create(labels)
            .set(state.received_blocks_total);
        if let Some(before) = known
            && before != status
        {
            self.status_gauge(before).dec();
            self.status_gauge(status).inc();
        }
        tracked.status = status;
        let newly_finished = status.is_terminal() && known.is_none_or(|b| !b.is_terminal());
        if newly_finished {
            tracker.finished.push_back(id.clone());
            while tracker.finished.len() > self.config.max_finished_channels {
                if let Some(oldest) = tracker.finished.pop_front() {
                    self.forget(tracker, &oldest);
                }
            }
        }
    }

    /// Removes a channel's series.
    fn forget(&self, tracker: &mut Tracker, channel: &ChannelId) {
        if let Some(tracked) = tracker.channels.remove(channel) {
            let labels = &tracked.labels;
            self.channel_sent_bytes.remove(labels);
            self.channel_received_bytes.remove(labels);
            self.channel_sent_blocks.remove(labels);
            self.channel_received_blocks.remove(labels);
            self.channel_restarts.remove(labels);
            self.channel_errors.remove(labels);
        }
    }

    fn status_gauge(&self, status: ChannelStatus) -> Gauge {
        self.channels.get_or_create_owned(&StatusLabels {
            status: status.name(),
        })
    }

    /// Counts an error of `kind` on `channel`, for its peer (or `peer` when the channel is
    /// not tracked).
    fn error(
        &self,
        tracker: &Tracker,
        channel: &ChannelId,
        peer: Option<String>,
        kind: &'static str,
    ) {
        let tracked = tracker.channels.get(channel);
        if let Some(tracked) = tracked {
            self.channel_errors.get_or_create(&tracked.labels).inc();
        }
        let peer = tracked
            .map(|tracked| tracked.labels.peer.clone())
            .or(peer)
            .unwrap_or_else(|| UNKNOWN_PEER.to_owned());
        self.peer_errors
            .get_or_create(&ErrorLabels { peer, kind })
            .inc();
    }
}

fn peer(labels: &ChannelLabels) -> PeerLabels {
    PeerLabels {
        peer: labels.peer.clone(),
    }
}

/// Spawns, on the current runtime, the task that records every event of `events` into
/// `metrics` until the node stops. Subscribe before listing the channels given to
/// [`Metrics::seed`], so that no event falls between.
pub fn spawn_recorder(mut events: Subscription, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => metrics.record(&event),
                Err(SubscriptionError::Lagged { missed }) => metrics.record_lost(missed),
                Err(_) => return,
            }
        }
    })
}

/// The whole `--metrics ADDR` endpoint of a node: its metrics, their recorder and the HTTP
/// server; dropping it stops them.
#[derive(Debug)]
pub struct MetricsEndpoint {
    metrics: Arc<Metrics>,
    server: MetricsServer,
    recorder: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.recorder.abort();
    }
}

/// Starts the metrics of `node` on `addr`: registers [`Metrics`] in a new registry, subscribes
/// to the node's events, seeds the metrics with the channels it already has, spawns the
/// recorder and serves `GET /metrics` (in tasks of the current runtime).
///
/// # Errors
/// [`MetricsError::Bind`] when `addr` cannot be bound.
pub async fn start(
    addr: SocketAddr,
    node: &dyn ControlTarget,
    config: Config,
) -> Result<MetricsEndpoint, MetricsError> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(config, &mut registry));
    let server = serve_metrics(addr, Arc::new(registry), Arc::clone(&metrics)).await?;
    // Subscribe before listing, so that no event falls between the two.
    let events = node.subscribe();
    match node.channels() {
        Ok(states) => metrics.seed(&states),
        Err(error) => tracing::warn!(%error, "metrics start without the existing channels"),
    }
    let recorder = spawn_recorder(events, Arc::clone(&metrics));
    Ok(MetricsEndpoint {
        metrics,
        server,
        recorder,
    })
}

/// A running metrics endpoint; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` with the OpenMetrics text of `registry` (which holds `metrics`, see
/// [`Metrics::encode`]) on `addr`, in a task of the current runtime, until the returned handle
/// is dropped. Other paths answer 404, other methods 405.
///
/// # Errors
/// [`MetricsError::Bind`] when `addr` cannot be bound.
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) -> Result<MetricsServer, MetricsError> {
    let bind_error = |source| MetricsError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let exposed = Arc::new(Exposed { registry, metrics });
    let task = tokio::spawn(accept_loop(listener, exposed));
    Ok(MetricsServer { addr, task })
}

/// What the endpoint serves.
struct Exposed {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

async fn accept_loop(listener: TcpListener, exposed: Arc<Exposed>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let exposed = Arc::clone(&exposed);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let exposed = Arc::clone(&exposed);
                async move { Ok::<_, Infallible>(respond(&request, &exposed)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

fn respond(request: &Request<Incoming>, exposed: &Exposed) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: try /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let Ok(text) = exposed.metrics.encode(&exposed.registry) else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;
