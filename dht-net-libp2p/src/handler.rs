//! The `/ipfs/kad/1.0.0` half of one connection: a libp2p `ConnectionHandler` that
//! negotiates our outbound streams (at most [`MAX_OUTBOUND_STREAMS`] open or opening at
//! once; more wait in a queue) and accepts inbound ones (at most `max_inbound` alive;
//! one more is dropped, which resets it). It moves no bytes: each negotiated stream goes
//! up to the behaviour with a [`StreamGuard`], and the task that reads and writes it
//! holds the guard until it is done, so counting live guards counts live streams.
//!
//! In client mode the handler does not listen on the protocol at all, so identify does
//! not list it and no peer routes to us.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use dht_core::StreamId;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::swarm::derive_prelude::Either;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{ConnectionHandler, ConnectionHandlerEvent, Stream, SubstreamProtocol};
use libp2p::StreamProtocol;

use crate::KAD;

/// Outbound streams open or opening at once on one connection: rust-libp2p drops the
/// 33rd inbound stream of a connection, and go and js keep fewer; 16 leaves room for
/// the other side's own requests.
pub const MAX_OUTBOUND_STREAMS: usize = 16;

/// Held by whoever uses a stream; the handler counts live guards.
#[derive(Debug, Clone)]
pub struct StreamGuard(#[allow(dead_code)] Arc<()>);

/// What the behaviour tells a handler.
#[derive(Debug)]
pub enum HandlerIn {
    /// Open an outbound stream for our request `StreamId`.
    Open(StreamId),
    /// Switch between server (accepting the protocol) and client.
    SetServer(bool),
}

/// What a handler tells the behaviour.
#[derive(Debug)]
pub enum HandlerOut {
    /// An inbound stream was negotiated.
    Inbound(Stream, StreamGuard),
    /// Our outbound stream for `StreamId` was negotiated.
    Outbound(StreamId, Stream, StreamGuard),
    /// Our outbound stream for `StreamId` could not be opened.
    OutboundFailed(StreamId),
}

/// The per-connection state.
#[derive(Debug)]
pub struct KadHandler {
    server: bool,
    max_inbound: usize,
    inbound: Arc<()>,
    outbound: Arc<()>,
    /// Requested opens not yet asked of the muxer.
    queued: VecDeque<StreamId>,
    /// Opens asked of the muxer, not yet negotiated.
    opening: usize,
    events: VecDeque<HandlerOut>,
}

impl KadHandler {
    pub(crate) fn new(server: bool, max_inbound: usize) -> KadHandler {
        KadHandler {
            server,
            max_inbound,
            inbound: Arc::new(()),
            outbound: Arc::new(()),
            queued: VecDeque::new(),
            opening: 0,
            events: VecDeque::new(),
        }
    }

    fn live(counter: &Arc<()>) -> usize {
        Arc::strong_count(counter) - 1
    }
}

type Inbound = Either<ReadyUpgrade<StreamProtocol>, DeniedUpgrade>;

impl ConnectionHandler for KadHandler {
    type FromBehaviour = HandlerIn;
    type ToBehaviour = HandlerOut;
    type InboundProtocol = Inbound;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = StreamId;

    fn listen_protocol(&self) -> SubstreamProtocol<Inbound, ()> {
        let upgrade = if self.server {
            Inbound::Left(ReadyUpgrade::new(KAD))
        } else {
            Inbound::Right(DeniedUpgrade)
        };
        SubstreamProtocol::new(upgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        // A connection stays while it carries streams or has requests to send; idle
        // ones close after the swarm's idle timeout.
        Self::live(&self.inbound) + Self::live(&self.outbound) + self.opening > 0
            || !self.queued.is_empty()
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, StreamId, HandlerOut>> {
        if let Some(e) = self.events.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(e));
        }
        if Self::live(&self.outbound) + self.opening < MAX_OUTBOUND_STREAMS {
            if let Some(id) = self.queued.pop_front() {
                self.opening += 1;
                return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                    protocol: SubstreamProtocol::new(ReadyUpgrade::new(KAD), id),
                });
            }
        }
        Poll::Pending
    }

    fn poll_close(&mut self, _cx: &mut Context<'_>) -> Poll<Option<HandlerOut>> {
        // Requests still queued when the connection closes fail now, not at their
        // deadline.
        if let Some(e) = self.events.pop_front() {
            return Poll::Ready(Some(e));
        }
        Poll::Ready(self.queued.pop_front().map(HandlerOut::OutboundFailed))
    }

    fn on_behaviour_event(&mut self, event: HandlerIn) {
        match event {
            HandlerIn::Open(id) => self.queued.push_back(id),
            HandlerIn::SetServer(server) => self.server = server,
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Inbound, Self::OutboundProtocol, (), StreamId>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol, ..
            }) => {
                let stream = match protocol {
                    futures::future::Either::Left(s) => s,
                    futures::future::Either::Right(never) => match never {},
                };
                // Over the bound, or no longer a server: dropping the stream resets it.
                if self.server && Self::live(&self.inbound) < self.max_inbound {
                    let guard = StreamGuard(self.inbound.clone());
                    self.events.push_back(HandlerOut::Inbound(stream, guard));
                }
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: id,
            }) => {
                self.opening = self.opening.saturating_sub(1);
                let guard = StreamGuard(self.outbound.clone());
                self.events
                    .push_back(HandlerOut::Outbound(id, stream, guard));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: id, .. }) => {
                self.opening = self.opening.saturating_sub(1);
                self.events.push_back(HandlerOut::OutboundFailed(id));
            }
            _ => {}
        }
    }
}
