//! The `/ipfs/kad/1.0.0` behaviour: the swarm-wide half of [`crate::handler`]. It
//! bounds connections (in total and per IP), routes each outbound request to a
//! connection of its peer (dialing the addresses the engine gave when there is none),
//! and hands negotiated streams up to the host.
//!
//! The per-IP bound counts established and pending inbound connections by the remote
//! IP; loopback and private sources are exempt unless [`Limits::exempt_local`] is off,
//! as in the QUIC transport.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use dht_core::{Locality, StreamId};
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, DialFailure};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, DialError, FromSwarm, ListenFailure, NetworkBehaviour,
    NotifyHandler, Stream, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use crate::handler::{HandlerIn, HandlerOut, KadHandler, StreamGuard};

/// The transport's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open or being set up, in and out: 512.
    pub max_connections: usize,
    /// Connections from one IP (IPv6: one address): 8.
    pub max_connections_per_ip: usize,
    /// Loopback and private sources are exempt from the per-IP bound (default true), so
    /// that a test on loopback or a fleet on one LAN is not capped at 8 connections.
    pub exempt_local: bool,
    /// Inbound kad streams alive at once on one connection: 32, what rust-libp2p takes.
    pub max_inbound_streams: usize,
    /// How long an inbound stream may stay silent before we close it: 60 s.
    pub inbound_idle: std::time::Duration,
    /// Largest message read from a stream, request or reply, before it is parsed:
    /// 128 KiB (the engine's own limits are tighter per direction).
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            max_connections_per_ip: 8,
            exempt_local: true,
            max_inbound_streams: 32,
            inbound_idle: crate::INBOUND_IDLE,
            max_message_bytes: 128 * 1024,
        }
    }
}

/// What the behaviour reports to the host.
#[derive(Debug)]
pub enum KadEvent {
    /// A peer opened a kad stream to us.
    Inbound {
        /// The authenticated peer at the connection's remote address, as the engine
        /// takes it.
        from: dht_ipfs::PeerInfo,
        /// The stream.
        stream: Stream,
        /// Held while the stream is used.
        guard: StreamGuard,
    },
    /// Our stream for request `id` is open.
    Outbound(StreamId, Stream, StreamGuard),
    /// Our stream for request `id` could not be opened.
    OutboundFailed(StreamId),
}

/// See the module doc.
#[derive(Debug)]
pub struct KadStreams {
    server: bool,
    limits: Limits,
    /// Established connections: peer and remote address, and the two as the engine
    /// takes a request's sender (built once here, not per request; `None` for a
    /// PeerId the engine cannot hold, whose streams are reset).
    connections: HashMap<ConnectionId, (PeerId, Multiaddr, Option<dht_ipfs::PeerInfo>)>,
    /// Inbound connections in their handshake, by remote IP.
    pending_inbound: HashMap<ConnectionId, Option<IpAddr>>,
    /// Requests waiting for a connection to their peer, with their deadlines.
    waiting: HashMap<PeerId, Vec<(StreamId, Instant)>>,
    events: VecDeque<ToSwarm<KadEvent, HandlerIn>>,
}

/// The IP of a multiaddr's first `/ip4` or `/ip6` component.
pub(crate) fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

impl KadStreams {
    pub(crate) fn new(server: bool, limits: Limits) -> KadStreams {
        KadStreams {
            server,
            limits,
            connections: HashMap::new(),
            pending_inbound: HashMap::new(),
            waiting: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends request `id` to `peer` on a new stream: on an open connection, else once a
    /// dial to `addrs` connects.
    pub(crate) fn open(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        id: StreamId,
        deadline: Instant,
    ) {
        if let Some(conn) = self.connection_to(&peer) {
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(conn),
                event: HandlerIn::Open(id),
            });
            return;
        }
        self.waiting.entry(peer).or_default().push((id, deadline));
        self.events.push_back(ToSwarm::Dial {
            opts: DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
        });
    }

    /// Fails requests whose deadline passed while they waited for a dial.
    pub(crate) fn expire(&mut self, now: Instant) {
        let mut failed = Vec::new();
        self.waiting.retain(|_, w| {
            w.retain(|(id, deadline)| {
                let keep = *deadline > now;
                if !keep {
                    failed.push(*id);
                }
                keep
            });
            !w.is_empty()
        });
        for id in failed {
            self.events
                .push_back(ToSwarm::GenerateEvent(KadEvent::OutboundFailed(id)));
        }
    }

    /// Server or client, on every connection from now on.
    pub(crate) fn set_server(&mut self, server: bool) {
        self.server = server;
        for (conn, (peer, ..)) in &self.connections {
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id: *peer,
                handler: NotifyHandler::One(*conn),
                event: HandlerIn::SetServer(server),
            });
        }
    }

    /// Established connections.
    pub(crate) fn connection_count(&self) -> usize {
        self.connections.len()
    }

    fn connection_to(&self, peer: &PeerId) -> Option<ConnectionId> {
        self.connections
            .iter()
            .find(|(_, (p, ..))| p == peer)
            .map(|(c, _)| *c)
    }

    /// Whether the per-IP bound applies to `ip`.
    fn bounded(&self, ip: IpAddr) -> bool {
        !self.limits.exempt_local || dht_core::locality(ip) == Locality::Public
    }

    fn check_total(&self) -> Result<(), ConnectionDenied> {
        if self.connections.len() + self.pending_inbound.len() >= self.limits.max_connections {
            return Err(ConnectionDenied::new(LimitExceeded("connections")));
        }
        Ok(())
    }

    fn handler(&self) -> KadHandler {
        KadHandler::new(self.server, self.limits.max_inbound_streams)
    }
}

/// A connection refused by a bound.
#[derive(Debug, thiserror::Error)]
#[error("connection limit reached: {0}")]
pub struct LimitExceeded(&'static str);

impl NetworkBehaviour for KadStreams {
    type ConnectionHandler = KadHandler;
    type ToSwarm = KadEvent;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check_total()?;
        let ip = ip_of(remote_addr);
        if let Some(ip) = ip.filter(|ip| self.bounded(*ip)) {
            let same = self
                .connections
                .values()
                .filter(|(_, a, _)| ip_of(a) == Some(ip))
                .count()
                + self
                    .pending_inbound
                    .values()
                    .filter(|p| **p == Some(ip))
                    .count();
            if same >= self.limits.max_connections_per_ip {
                return Err(ConnectionDenied::new(LimitExceeded("per IP")));
            }
        }
        self.pending_inbound.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.check_total()?;
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                self.pending_inbound.remove(&connection_id);
                let remote = endpoint.get_remote_address().clone();
                let from = dht_ipfs::PeerId::from_bytes(&peer_id.to_bytes())
                    .ok()
                    .map(|id| dht_ipfs::PeerInfo::new(id, [remote.clone()]));
                self.connections
                    .insert(connection_id, (peer_id, remote, from));
                for (id, _) in self.waiting.remove(&peer_id).unwrap_or_default() {
                    self.events.push_back(ToSwarm::NotifyHandler {
                        peer_id,
                        handler: NotifyHandler::One(connection_id),
                        event: HandlerIn::Open(id),
                    });
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.connections.remove(&connection_id);
            }
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.pending_inbound.remove(&connection_id);
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(peer),
                error,
                ..
            }) => {
                // A dial refused because one is already under way leaves the
                // requests to that one.
                if matches!(error, DialError::DialPeerConditionFalse(_)) {
                    return;
                }
                if self.connection_to(&peer).is_some() {
                    return;
                }
                for (id, _) in self.waiting.remove(&peer).unwrap_or_default() {
                    self.events
                        .push_back(ToSwarm::GenerateEvent(KadEvent::OutboundFailed(id)));
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        let event = match event {
            HandlerOut::Inbound(stream, guard) => {
                let Some((_, _, Some(from))) = self.connections.get(&connection_id) else {
                    return;
                };
                KadEvent::Inbound {
                    from: from.clone(),
                    stream,
                    guard,
                }
            }
            HandlerOut::Outbound(id, stream, guard) => KadEvent::Outbound(id, stream, guard),
            HandlerOut::OutboundFailed(id) => KadEvent::OutboundFailed(id),
        };
        self.events.push_back(ToSwarm::GenerateEvent(event));
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<KadEvent, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }
}
