//! Streams on the virtual network: requests on streams the network opens, one reply
//! each, connections with their handshake and idle close, and the identify handshake,
//! for overlays that speak the stream half of [`dht_core::Overlay`] (IPFS's Kademlia).
//! Datagram overlays never emit a stream output, so nothing here runs for them, draws
//! from the RNG or touches the event hash: their runs replay as before.
//!
//! The model, as the libp2p transport does it over TCP:
//! - A request ([`dht_core::Output::Request`]) to a dead or unknown peer fails at once
//!   (a refused dial): [`Input::StreamFailed`] at the asker at the current virtual time.
//! - A request to a peer with no open connection dials it first: the handshake takes
//!   [`SimConfig::handshake_rtts`] round trips of the link (3 by default: TCP,
//!   noise, yamux, each agreed by multistream-select), then both sides get
//!   [`Input::Connected`]. Requests to a peer whose connection is still being made wait
//!   for it; requests on an open connection leave at once.
//! - The request then reaches the peer after the link's latency as
//!   [`Input::StreamRequest`] on an inbound stream id the network assigns, `from` the
//!   asker's [`AddressBook::source`] (its connection's address, not its listen one).
//!   With it, on a new connection, comes [`Input::Identified`] with the other's peer
//!   (listen addresses) and [`SimOverlay::protocols`], both ways, as libp2p's identify
//!   runs on each new connection.
//! - A reply ([`dht_core::Output::Reply`]) reaches the asker after the link's latency
//!   as [`Input::StreamReply`] on the asker's own stream id, a reset
//!   ([`dht_core::Output::Reset`]) as [`Input::StreamFailed`].
//! - The network keeps each request's deadline, as a transport does: a stream with no
//!   reply by then ends in [`Input::StreamFailed`] at the deadline, and a reply after
//!   it is dropped. So a lost request or reply (the loss model applies to each), a
//!   peer that died meanwhile or one that never answers ends where the trait says it
//!   does, whether or not the overlay keeps a timer of its own.
//! - A connection with no stream activity for [`SimConfig::idle_timeout`] (60 s, as
//!   libp2p's idle connection timeout) closes: each live side gets
//!   [`Input::Disconnected`], and the next request pays the handshake again.
//!
//! The network also keeps, for each outbound stream, the handshake time on its causal
//! chain: what the stream waited for a connection, plus what the input that made the
//! asker send it had waited so. A tracked command that ends on an input carries that
//! input's wait ([`Network::take_dial_wait`]), so an experiment can report a lookup's
//! time in request round trips alone and with the handshakes counted.
//!
//! Every stream delivery is folded into the event hash with a tag byte, so two runs
//! with equal hashes also carried the same streams.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dht_core::{Input, QueryId, StreamId};
use rand_chacha::rand_core::RngCore;

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
    /// Connection `id` between the pair may have been idle long enough to close.
    IdleCheck { pair: (u32, u32), id: u64 },
}

/// An outbound stream waiting for its reply.
struct Open {
    /// The inbound stream it became at the peer, once the request arrived, so that
    /// the peer's side closes when the asker's does (a request that gets no reply, as
    /// ADD_PROVIDER, leaves nothing behind).
    at_peer: Option<(u32, StreamId)>,
    /// Handshake time on its causal chain (ns): see the module doc.
    dial_wait: u64,
    /// When the stream ends without a reply (ns): scheduled only once the request
    /// or reply is lost, or the peer dead or silent (see [`Network::fail_at_deadline`]).
    deadline: u64,
}

/// A connection between two nodes.
struct Connection {
    /// Numbers connections, so that an idle check of a closed one is ignored.
    id: u64,
    /// When the handshake is done (ns).
    ready_at: u64,
    /// The last stream activity on it, past or scheduled (ns).
    last_active: u64,
}

/// The network's stream state.
#[derive(Default)]
pub(super) struct Streams {
    /// Outbound streams waiting for their reply: (asker, the asker's stream).
    open: BTreeMap<(u32, StreamId), Open>,
    /// Inbound streams not answered yet: (server, inbound id) -> (asker, its stream).
    inbound: BTreeMap<(u32, StreamId), (u32, StreamId)>,
    /// The last inbound stream id handed out (one numbering for the whole network).
    next_inbound: u64,
    /// Open connections, by pair of nodes (lower index first).
    connections: BTreeMap<(u32, u32), Connection>,
    /// The last connection id handed out.
    next_connection: u64,
    /// Handshake time on the causal chain of the input being handled (ns).
    chain_wait: u64,
    /// That wait for tracked commands that ended, until taken.
    dial_waits: BTreeMap<(u32, QueryId), u64>,
}

impl Streams {
    /// A tracked command of node `i` ended on the input being handled.
    pub(super) fn command_done(&mut self, i: u32, q: QueryId) {
        if self.chain_wait > 0 {
            self.dial_waits.insert((i, q), self.chain_wait);
        }
    }
}

// Tags of the stream deliveries in the event hash.
const TAG_REQUEST: u8 = 1;
const TAG_REPLY: u8 = 2;
const TAG_FAILED: u8 = 3;
const TAG_CONNECTED: u8 = 4;
const TAG_IDENTIFIED: u8 = 5;
const TAG_DISCONNECTED: u8 = 6;

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

    /// The handshake time on the causal chain of tracked command `q` of node `i`,
    /// which ended on an input that waited so (see the stream model in
    /// `net/stream.rs`); zero for a command that waited for no handshake, and once
    /// taken.
    pub fn take_dial_wait(&mut self, i: usize, q: QueryId) -> Duration {
        let ns = self.streams.dial_waits.remove(&(i as u32, q));
        Duration::from_nanos(ns.unwrap_or(0))
    }

    /// Connections open now (handshakes under way included).
    pub fn connections(&self) -> usize {
        self.streams.connections.len()
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
        let target = self.book.index_of(to).filter(|&t| self.is_live_node(t));
        let Some(t) = target else {
            // Nobody listens there: the dial is refused at once.
            let dial_wait = self.streams.chain_wait;
            let open = Open {
                at_peer: None,
                dial_wait,
                deadline: self.now,
            };
            self.streams.open.insert((from, stream), open);
            self.push(
                self.now,
                What::Stream(Delivery::Failed { to: from, stream }),
            );
            return;
        };
        let deadline =
            (deadline.saturating_duration_since(self.base).as_nanos() as u64).max(self.now);
        let one_way = self.link_delay(from, t).as_nanos() as u64;
        let pair = (from.min(t), from.max(t));
        let (ready_at, first) = match self.streams.connections.get(&pair) {
            Some(c) => (c.ready_at.max(self.now), false),
            None => {
                let handshake = 2 * u64::from(self.cfg.handshake_rtts) * one_way;
                (self.now + handshake, true)
            }
        };
        let at = ready_at + one_way;
        let dial_wait = self.streams.chain_wait + (ready_at - self.now);
        let open = Open {
            at_peer: None,
            dial_wait,
            deadline,
        };
        self.streams.open.insert((from, stream), open);
        if first {
            self.streams.next_connection += 1;
            let id = self.streams.next_connection;
            let c = Connection {
                id,
                ready_at,
                last_active: at,
            };
            self.streams.connections.insert(pair, c);
            let idle = at + self.cfg.idle_timeout.as_nanos() as u64;
            self.push(idle, What::Stream(Delivery::IdleCheck { pair, id }));
            let inbound = Delivery::Connected {
                at: t,
                peer: from,
                inbound: true,
            };
            self.push(ready_at, What::Stream(inbound));
            let outbound = Delivery::Connected {
                at: from,
                peer: t,
                inbound: false,
            };
            self.push(ready_at, What::Stream(outbound));
        } else {
            self.touch(pair, at);
        }
        if self.stream_lost() {
            self.fail_at_deadline(from, stream);
        } else {
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

    /// Ends `asker`'s outbound `stream` at its deadline: its request or reply will not
    /// arrive. Most streams get their reply long before, so the deadline is scheduled
    /// only then, which keeps the event queue to the events that happen.
    fn fail_at_deadline(&mut self, asker: u32, stream: StreamId) {
        if let Some(open) = self.streams.open.get(&(asker, stream)) {
            let at = open.deadline.max(self.now);
            self.push(at, What::Stream(Delivery::Failed { to: asker, stream }));
        }
    }

    /// Stream activity on the pair's connection at `at`: it stays open until
    /// `idle_timeout` after.
    fn touch(&mut self, pair: (u32, u32), at: u64) {
        if let Some(c) = self.streams.connections.get_mut(&pair) {
            c.last_active = c.last_active.max(at);
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
            self.fail_at_deadline(asker, asked);
            return;
        }
        let at = self.now + self.link_delay(server, asker).as_nanos() as u64;
        let late = self
            .streams
            .open
            .get(&(asker, asked))
            .is_none_or(|o| at > o.deadline);
        if late {
            // The deadline ends the stream first: the reply finds it closed.
            self.fail_at_deadline(asker, asked);
            return;
        }
        self.touch((server.min(asker), server.max(asker)), at);
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
        self.hasher.update(&[tag]);
        self.hasher.update(&at.to_be_bytes());
        self.hasher.update(&node.to_be_bytes());
        self.hasher.update(&other.to_be_bytes());
        self.hasher.update(&(payload.len() as u32).to_be_bytes());
        self.hasher.update(payload);
    }

    /// Hands `input` to node `i` with `dial_wait` as the handshake time on its causal
    /// chain, and collects what it sends.
    fn feed(&mut self, i: u32, input: Input<'_, N::Peer>, dial_wait: u64) {
        let now = self.now_instant();
        self.streams.chain_wait = dial_wait;
        self.nodes[i as usize].handle_input(now, input);
        self.drain(i as usize);
        self.streams.chain_wait = 0;
    }

    /// Hands stream event `d`, due at `at` (the current time), to its node.
    pub(super) fn deliver_stream(&mut self, at: u64, d: Delivery) {
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
                    self.fail_at_deadline(from, stream);
                    return;
                }
                let Some(slot) = self.streams.open.get_mut(&(from, stream)) else {
                    // The asker's stream ended (its deadline passed) on the way.
                    return;
                };
                self.streams.next_inbound += 1;
                let inbound = StreamId(self.streams.next_inbound);
                slot.at_peer = Some((to, inbound));
                self.streams.inbound.insert((to, inbound), (from, stream));
                self.stats.stream_requests += 1;
                self.hash_stream(at, TAG_REQUEST, to, u64::from(from), &payload);
                let input = Input::StreamRequest {
                    from: self.book.source(from),
                    stream: inbound,
                    bytes: &payload,
                };
                self.feed(to, input, 0);
                if self.streams.inbound.contains_key(&(to, inbound)) {
                    // Not answered at once (ADD_PROVIDER never is): the deadline closes it.
                    self.fail_at_deadline(from, stream);
                }
            }
            Delivery::Reply {
                to,
                stream,
                payload,
            } => {
                // Too late (the deadline ended the stream) or the asker died.
                let Some(open) = self.streams.open.remove(&(to, stream)) else {
                    return;
                };
                if !self.is_live_node(to) {
                    return;
                }
                self.stats.stream_replies += 1;
                self.hash_stream(at, TAG_REPLY, to, stream.0, &payload);
                let input = Input::StreamReply {
                    stream,
                    bytes: &payload,
                };
                self.feed(to, input, open.dial_wait);
            }
            Delivery::Failed { to, stream } => {
                let Some(open) = self.streams.open.remove(&(to, stream)) else {
                    return;
                };
                // The peer's side of the stream closes with it: a late answer is lost.
                if let Some(inbound) = open.at_peer {
                    self.streams.inbound.remove(&inbound);
                }
                if !self.is_live_node(to) {
                    return;
                }
                self.stats.streams_failed += 1;
                self.hash_stream(at, TAG_FAILED, to, stream.0, &[]);
                self.feed(to, Input::StreamFailed { stream }, open.dial_wait);
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
                self.feed(i, Input::Connected { peer }, 0);
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
                self.feed(i, input, 0);
            }
            Delivery::IdleCheck { pair, id } => self.idle_check(at, pair, id),
        }
    }

    /// Closes connection `id` of `pair` if it has been idle for `idle_timeout`, or
    /// checks again when it will have been.
    fn idle_check(&mut self, at: u64, pair: (u32, u32), id: u64) {
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        let Some(c) = self.streams.connections.get(&pair).filter(|c| c.id == id) else {
            return;
        };
        let due = c.last_active + idle;
        if due > at {
            self.push(due, What::Stream(Delivery::IdleCheck { pair, id }));
            return;
        }
        self.streams.connections.remove(&pair);
        for (i, peer) in [(pair.0, pair.1), (pair.1, pair.0)] {
            if !self.is_live_node(i) {
                continue;
            }
            self.hash_stream(at, TAG_DISCONNECTED, i, u64::from(peer), &[]);
            // The side that dialed knows the peer by its listen address, the other by
            // the connection's source; either way the PeerId is what names it.
            let peer = self.book.peer(peer);
            self.feed(i, Input::Disconnected { peer }, 0);
        }
    }
}
