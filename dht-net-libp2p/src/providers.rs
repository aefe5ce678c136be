//! Providers as a lookup learns them ([`ProviderStream`], from
//! [`crate::IpfsHandle::provider_stream`]), and what peers told us in identify
//! ([`Identified`], from [`crate::IpfsHandle::identified`]).
//!
//! The host keeps a [`Streaming`] per GetProviders query a stream follows. After every
//! turn of its loop it sends each provider the engine has newly found
//! (`dht_ipfs::Node::providers_found`), one per PeerId, and at the query's end those
//! of the outcome not sent yet; then the stream ends. A stream dropped before that
//! wakes the host, which cancels its query, so that a client gone away stops the
//! lookup at once.

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use dht_ipfs::{PeerId, PeerInfo};
use tokio::sync::mpsc;

use crate::handle::Command;

/// The providers of one key, each once, as the lookup finds them (those this host
/// stores come first); it ends when the lookup does. Dropping it cancels the lookup.
#[derive(Debug)]
pub struct ProviderStream {
    records: mpsc::UnboundedReceiver<PeerInfo>,
    /// The host's commands, to wake it when the stream drops.
    host: mpsc::Sender<Command>,
}

impl Drop for ProviderStream {
    fn drop(&mut self) {
        // Closed first, so that the host, woken, finds the stream abandoned. A full
        // command queue wakes it anyway.
        self.records.close();
        let _ = self.host.try_send(Command::Wake);
    }
}

impl futures::Stream for ProviderStream {
    type Item = PeerInfo;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PeerInfo>> {
        self.records.poll_recv(cx)
    }
}

/// What a peer we are connected to told us in identify.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Identified {
    /// The peer with the listen addresses it listed (those we keep: see `IpfsHost`'s
    /// address rules).
    pub peer: PeerInfo,
    /// The protocols it listed (`/ipfs/kad/1.0.0`, `/ipfs/bitswap/1.2.0`, …), as it
    /// wrote them.
    pub protocols: Vec<String>,
}

/// The host's side of one [`ProviderStream`].
#[derive(Debug)]
pub(crate) struct Streaming {
    /// Unbounded: the engine collects at most a few hundred providers per query
    /// (`MAX_PROVIDERS_FOUND`), and each is sent once.
    records: mpsc::UnboundedSender<PeerInfo>,
    sent: HashSet<PeerId>,
}

impl Streaming {
    /// A stream and the host's side of it.
    pub(crate) fn new(host: mpsc::Sender<Command>) -> (Streaming, ProviderStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let streaming = Streaming {
            records: tx,
            sent: HashSet::new(),
        };
        (streaming, ProviderStream { records: rx, host })
    }

    /// Whether the stream was dropped.
    pub(crate) fn abandoned(&self) -> bool {
        self.records.is_closed()
    }

    /// Sends those of `found` not sent yet. `found` only grows while the query runs
    /// (one entry per PeerId), so as many entries as were sent means nothing is new.
    pub(crate) fn send_new<'a>(&mut self, found: impl ExactSizeIterator<Item = &'a PeerInfo>) {
        if found.len() == self.sent.len() {
            return;
        }
        for p in found {
            if self.sent.insert(p.id().clone()) {
                let _ = self.records.send(p.clone());
            }
        }
    }
}
