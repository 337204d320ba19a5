//! [`MemTransport`]: one peer's [`Transport`] on a [`MemHub`](super::MemHub).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use blockstore::Blockstore;
use datatransfer_message::{ChannelId, Message, PeerId};

use super::exchange::{self, Exchange, StopHow};
use super::{Hub, Peer, lock};
use crate::error::TransportError;
use crate::events::EventsHandler;
use crate::transport::{Capabilities, OpenChannel, StoreName, Transport};

/// One peer's in-memory [`Transport`]; it supports pause and resume. See the
/// [module documentation](super) for how it moves data and how it differs from graphsync.
///
/// Cloning gives another handle to the same transport.
pub struct MemTransport<B> {
    hub: Arc<Hub<B>>,
    peer: Arc<Peer<B>>,
}

impl<B> Clone for MemTransport<B> {
    fn clone(&self) -> Self {
        MemTransport {
            hub: Arc::clone(&self.hub),
            peer: Arc::clone(&self.peer),
        }
    }
}

impl<B: Blockstore + Send + Sync + 'static> MemTransport<B> {
    pub(super) fn new(hub: Arc<Hub<B>>, peer: Arc<Peer<B>>) -> Self {
        MemTransport { hub, peer }
    }

    /// The local peer.
    pub fn peer(&self) -> &PeerId {
        &self.peer.id
    }

    /// Registers another block store under `name`, for
    /// [`OpenChannel::store`](crate::OpenChannel::store) (Go: `UseStore`). A second store
    /// under the same name replaces the first.
    pub fn register_store(&self, name: StoreName, store: Arc<B>) {
        lock(&self.peer.stores).insert(name, store);
    }

    /// The channels this transport tracks (running, finished and not yet cleaned up), sorted.
    pub fn channels(&self) -> Vec<ChannelId> {
        let mut channels: Vec<ChannelId> = lock(&self.peer.exchanges).keys().cloned().collect();
        channels.sort();
        channels
    }

    fn check_running(&self) -> Result<(), TransportError> {
        if self.peer.is_shut_down() {
            Err(TransportError::ShutDown)
        } else {
            Ok(())
        }
    }

    fn exchange(&self, channel: &ChannelId) -> Result<Arc<Exchange>, TransportError> {
        self.check_running()?;
        lock(&self.peer.exchanges)
            .get(channel)
            .cloned()
            .ok_or_else(|| TransportError::UnknownChannel {
                channel: channel.clone(),
            })
    }
}

impl<B: Blockstore + Send + Sync + 'static> Transport for MemTransport<B> {
    fn set_events_handler(&self, handler: Arc<dyn EventsHandler>) -> Result<(), TransportError> {
        self.peer
            .handler
            .set(handler)
            .map_err(|_| TransportError::HandlerAlreadySet)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::none().with_pause(true)
    }

    async fn open_channel(&self, open: OpenChannel) -> Result<(), TransportError> {
        self.check_running()?;
        let handler = self.peer.handler().ok_or(TransportError::HandlerNotSet)?;
        let channel = open.channel.clone();
        if open.data_sender == self.peer.id {
            return Err(TransportError::OpenToSelf { channel });
        }
        let store = match &open.store {
            None => Arc::clone(&self.peer.store),
            Some(name) => lock(&self.peer.stores).get(name).cloned().ok_or_else(|| {
                TransportError::UnknownStore {
                    channel: channel.clone(),
                    store: name.clone(),
                }
            })?,
        };
        let previous = lock(&self.peer.exchanges).get(&channel).cloned();
        if let Some(previous) = previous {
            previous.stop(StopHow::Abort).await;
        } else if lock(&self.peer.exchanges).len() >= self.hub.config.max_channels {
            return Err(TransportError::TooManyChannels {
                channel,
                limit: self.hub.config.max_channels,
            });
        }
        let exchange = Arc::new(Exchange::new(
            channel.clone(),
            self.peer.id.clone(),
            open.data_sender.clone(),
        ));
        lock(&self.peer.exchanges).insert(channel.clone(), Arc::clone(&exchange));
        if handler.on_channel_opened(&channel).is_err() {
            // Go cleans up and ignores the channel's data.
            exchange.finish_unstarted();
            return Ok(());
        }
        (self.hub.spawn)(Box::pin(exchange::run(
            Arc::clone(&self.hub),
            exchange,
            Arc::clone(&self.peer),
            handler,
            store,
            open,
        )));
        Ok(())
    }

    async fn attach(&self, channel: ChannelId, message: Message) -> Result<(), TransportError> {
        let exchange = self.exchange(&channel)?;
        let side = exchange.side_of(&self.peer.id);
        exchange.attach(side, message, self.hub.config.control_queue)
    }

    async fn close_channel(&self, channel: ChannelId) -> Result<(), TransportError> {
        let exchange = self.exchange(&channel)?;
        let side = exchange.side_of(&self.peer.id);
        exchange.stop(StopHow::Close(side)).await;
        Ok(())
    }

    async fn cleanup_channel(&self, channel: ChannelId) {
        let exchange = lock(&self.peer.exchanges).remove(&channel);
        if let Some(exchange) = exchange {
            exchange.stop(StopHow::Abort).await;
        }
    }

    async fn shutdown(&self) -> Result<(), TransportError> {
        self.peer.shut_down.store(true, Ordering::Release);
        let exchanges: Vec<Arc<Exchange>> = lock(&self.peer.exchanges).values().cloned().collect();
        for exchange in exchanges {
            exchange.stop(StopHow::Abort).await;
        }
        // Exchanges where the peer takes part elsewhere see it gone and fail.
        self.hub.wake_exchanges();
        Ok(())
    }

    async fn pause_channel(&self, channel: ChannelId) -> Result<(), TransportError> {
        let exchange = self.exchange(&channel)?;
        exchange.pause(exchange.side_of(&self.peer.id))?;
        exchange.wake();
        Ok(())
    }

    async fn resume_channel(
        &self,
        channel: ChannelId,
        message: Message,
    ) -> Result<(), TransportError> {
        let exchange = self.exchange(&channel)?;
        let side = exchange.side_of(&self.peer.id);
        exchange.resume(side, message, self.hub.config.control_queue)
    }
}
