//! Streams on the virtual network: requests on streams the network opens, one reply
//! each, connections and the identify handshake, for overlays that speak the stream
//! half of [`dht_core::Overlay`] (IPFS's Kademlia). Datagram overlays never emit a
//! stream output, so nothing here runs for them, draws from the RNG or touches the
//! event hash: their runs replay as before.
//!
//! The model, as the libp2p transport does it on loopback:
//! - A request ([`dht_core::Output::Request`]) to a dead or unknown peer fails at once
//!   (a refused dial): [`Input::StreamFailed`] at the asker at the current virtual time.
//! - Otherwise the request reaches the peer after the link's latency as
//!   [`Input::StreamRequest`] on an inbound stream id the network assigns, `from` the
//!   asker's [`AddressBook::source`] (its connection's address, not its listen one).
//! - A reply ([`dht_core::Output::Reply`]) reaches the asker after the link's latency
//!   as [`Input::StreamReply`] on the asker's own stream id, a reset
//!   ([`dht_core::Output::Reset`]) as [`Input::StreamFailed`].
//! - The network keeps each request's deadline, as a transport does: a stream with no
//!   reply by then ends in [`Input::StreamFailed`] at the deadline, and a reply after
//!   it is dropped. So a lost request or reply (the loss model applies to each), a
//!   peer that died meanwhile or one that never answers ends where the trait says it
//!   does, whether or not the overlay keeps a timer of its own.
//! - The first exchange between two nodes opens their connection: each gets
//!   [`Input::Connected`], then, after the request, [`Input::Identified`] with the
//!   other's peer (listen addresses) and [`SimOverlay::protocols`], both ways, as
//!   libp2p's identify runs on each new connection.
//!
//! Every stream delivery is folded into the event hash with a tag byte, so two runs
//! with equal hashes also carried the same streams.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use dht_core::{Input, StreamId};
use rand_chacha::rand_core::RngCore;
use sha1::Digest;

use super::{Network, SimOverlay, What};
use crate::address::{AddressBook, SYBIL_BIT};
use crate::rng::unit;

/// A stream event due at a node.
pub(super) enum Delivery {
    /// A request from `from` on its stream `stream`, arriving at `to`.
    Request {
        from: u32,
        to: u32,
        stream: StreamId,
        payload: Vec<u8>,
    },
    /// The reply on `to`'s outbound stream `stream`.
    Reply {
        to: u32,
        stream: StreamId,
        payload: Vec<u8>,
    },
    /// `to`'s outbound stream `stream` failed (refused dial, reset) or its deadline
    /// passed; ignored when the stream already ended.
    Failed { to: u32, stream: StreamId },
    /// A connection with `peer` opened at `at`; `inbound`: `peer` dialed it.
    Connected { at: u32, peer: u32, inbound: bool },
    /// Identify on the connection told `at` what `peer` is.
    Identified { at: u32, peer: u32 },
}

/// The network's stream state.
#[derive(Default)]
pub(super) struct Streams {
    /// Outbound streams waiting for their reply: (asker, the asker's stream).
    /// Each with the inbound stream it became at the peer, once the request arrived,
    /// so that the peer's side closes when the asker's does (a request that gets no
    /// reply, as ADD_PROVIDER, leaves nothing behind).
    open: BTreeMap<(u32, StreamId), Option<(u32, StreamId)>>,
    /// Inbound streams not answered yet: (server, inbound id) -> (asker, its stream).
    inbound: BTreeMap<(u32, StreamId), (u32, StreamId)>,
    /// The last inbound stream id handed out (one numbering for the whole network).
    next_inbound: u64,
    /// Pairs of nodes (lower index first) with a connection.
    connected: BTreeSet<(u32, u32)>,
}

// Tags of the stream deliveries in the event hash.
const TAG_REQUEST: u8 = 1;
const TAG_REPLY: u8 = 2;
const TAG_FAILED: u8 = 3;
const TAG_CONNECTED: u8 = 4;
const TAG_IDENTIFIED: u8 = 5;

impl<N: SimOverlay> Network<N> {
    fn is_live_node(&self, i: u32) -> bool {
        i & SYBIL_BIT == 0 && self.alive.get(i as usize).copied().unwrap_or(false)
    }

    /// Does the loss model drop this stream message?
    fn stream_lost(&mut self) -> bool {
        if self.cfg.loss > 0.0 && unit(self.rng.next_u64()) < self.cfg.loss {
            self.stats.lost += 1;
            self.stats.stream_lost += 1;
            return true;
        }
        false
    }

    /// Node `from` opens `stream` to `to` with `payload` ([`dht_core::Output::Request`]).
    pub(super) fn open_stream(
        &mut self,
        from: u32,
        to: &N::Peer,
        stream: StreamId,
        payload: Vec<u8>,
        deadline: Instant,
    ) {
        self.streams.open.insert((from, stream), None);
        let target = self.book.index_of(to).filter(|&t| self.is_live_node(t));
        let Some(t) = target else {
            // Nobody listens there: the dial is refused at once.
            self.push(
                self.now,
                What::Stream(Delivery::Failed { to: from, stream }),
            );
            return;
        };
        let deadline =
            (deadline.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
        self.push(
            deadline,
            What::Stream(Delivery::Failed { to: from, stream }),
        );
        let at = self.now + self.link_delay(from, t).as_nanos() as u64;
        let first = self.streams.connected.insert((from.min(t), from.max(t)));
        if first {
            self.push(
                at,
                What::Stream(Delivery::Connected {
                    at: t,
                    peer: from,
                    inbound: true,
                }),
            );
            self.push(
                at,
                What::Stream(Delivery::Connected {
                    at: from,
                    peer: t,
                    inbound: false,
                }),
            );
        }
        if !self.stream_lost() {
            let request = Delivery::Request {
                from,
                to: t,
                stream,
                payload,
            };
            self.push(at, What::Stream(request));
        }
        if first {
            self.push(at, What::Stream(Delivery::Identified { at: from, peer: t }));
            self.push(at, What::Stream(Delivery::Identified { at: t, peer: from }));
        }
    }

    /// Node `server` answers its inbound `stream`: `Some` reply
    /// ([`dht_core::Output::Reply`]) or a reset (`None`, [`dht_core::Output::Reset`]).
    /// An unknown stream is ignored.
    pub(super) fn answer_stream(&mut self, server: u32, stream: StreamId, reply: Option<Vec<u8>>) {
        let Some((asker, asked)) = self.streams.inbound.remove(&(server, stream)) else {
            return;
        };
        if self.stream_lost() {
            return;
        }
        let at = self.now + self.link_delay(server, asker).as_nanos() as u64;
        let d = match reply {
            Some(payload) => Delivery::Reply {
                to: asker,
                stream: asked,
                payload,
            },
            None => Delivery::Failed {
                to: asker,
                stream: asked,
            },
        };
        self.push(at, What::Stream(d));
    }

    fn hash_stream(&mut self, at: u64, tag: u8, node: u32, other: u64, payload: &[u8]) {
        self.hasher.update([tag]);
        self.hasher.update(at.to_be_bytes());
        self.hasher.update(node.to_be_bytes());
        self.hasher.update(other.to_be_bytes());
        self.hasher.update((payload.len() as u32).to_be_bytes());
        self.hasher.update(payload);
    }

    /// Hands stream event `d`, due at `at` (the current time), to its node.
    pub(super) fn deliver_stream(&mut self, at: u64, d: Delivery) {
        let now = self.now_instant();
        match d {
            Delivery::Request {
                from,
                to,
                stream,
                payload,
            } => {
                if !self.is_live_node(to) {
                    // The asker's deadline ends its stream.
                    self.stats.to_dead += 1;
                    return;
                }
                let Some(slot) = self.streams.open.get_mut(&(from, stream)) else {
                    // The asker's stream ended (its deadline passed) on the way.
                    return;
                };
                self.streams.next_inbound += 1;
                let inbound = StreamId(self.streams.next_inbound);
                *slot = Some((to, inbound));
                self.streams.inbound.insert((to, inbound), (from, stream));
                self.stats.stream_requests += 1;
                self.hash_stream(at, TAG_REQUEST, to, u64::from(from), &payload);
                let input = Input::StreamRequest {
                    from: self.book.source(from),
                    stream: inbound,
                    bytes: &payload,
                };
                self.nodes[to as usize].handle_input(now, input);
                self.drain(to as usize);
            }
            Delivery::Reply {
                to,
                stream,
                payload,
            } => {
                // Too late (the deadline ended the stream) or the asker died.
                if self.streams.open.remove(&(to, stream)).is_none() || !self.is_live_node(to) {
                    return;
                }
                self.stats.stream_replies += 1;
                self.hash_stream(at, TAG_REPLY, to, stream.0, &payload);
                let input = Input::StreamReply {
                    stream,
                    bytes: &payload,
                };
                self.nodes[to as usize].handle_input(now, input);
                self.drain(to as usize);
            }
            Delivery::Failed { to, stream } => {
                let Some(at_peer) = self.streams.open.remove(&(to, stream)) else {
                    return;
                };
                // The peer's side of the stream closes with it: a late answer is lost.
                if let Some(inbound) = at_peer {
                    self.streams.inbound.remove(&inbound);
                }
                if !self.is_live_node(to) {
                    return;
                }
                self.stats.streams_failed += 1;
                self.hash_stream(at, TAG_FAILED, to, stream.0, &[]);
                let input = Input::StreamFailed { stream };
                self.nodes[to as usize].handle_input(now, input);
                self.drain(to as usize);
            }
            Delivery::Connected {
                at: i,
                peer,
                inbound,
            } => {
                if !self.is_live_node(i) {
                    return;
                }
                self.hash_stream(at, TAG_CONNECTED, i, u64::from(peer), &[]);
                let peer = if inbound {
                    self.book.source(peer)
                } else {
                    self.book.peer(peer)
                };
                self.nodes[i as usize].handle_input(now, Input::Connected { peer });
                self.drain(i as usize);
            }
            Delivery::Identified { at: i, peer } => {
                if !self.is_live_node(i) || !self.is_live_node(peer) {
                    return;
                }
                self.hash_stream(at, TAG_IDENTIFIED, i, u64::from(peer), &[]);
                let protocols = self.nodes[peer as usize].protocols();
                let input = Input::Identified {
                    peer: self.book.peer(peer),
                    protocols: &protocols,
                };
                self.nodes[i as usize].handle_input(now, input);
                self.drain(i as usize);
            }
        }
    }
}
