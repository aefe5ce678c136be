//! # dht-chord: a sans-IO Chord node, for research and comparison
//!
//! Chord (Stoica, Morris, Karger, Kaashoek and Balakrishnan, SIGCOMM 2001) beside the
//! Kademlia of `dht-core`, so that the two designs can be measured on the same
//! simulated network with the same workload. It is **not** for the public BitTorrent
//! DHT, which speaks Kademlia only.
//!
//! Like `dht-core`, this crate contains no networking code, reads no clock and uses
//! no global RNG: a [`ChordNode`] is fed datagrams ([`ChordNode::handle_datagram`]),
//! time ([`ChordNode::handle_timeout`]) and commands, each stamped with the caller's
//! `now`, and is drained with [`ChordNode::poll_transmit`], then
//! [`ChordNode::poll_timeout`], then [`ChordNode::poll_event`]. Its randomness is a
//! ChaCha8 RNG seeded from [`Config::seed`], and its collections are BTreeMaps, so one
//! seed replays one run. It reuses dht-core's 160-bit [`dht_core::Id`], its
//! [`dht_core::Store`] trait, its bencode codec and compact node encoding, its shell
//! types ([`QueryId`], [`Transmit`], [`QueryStats`], [`QueryDone`] and [`Event`] over
//! Chord's [`Outcome`], [`Peer`] as [`dht_core::NodeInfo`]), and implements
//! [`dht_core::Overlay`], so `dht-node`'s runtime runs it as a process.
//!
//! ## A ring in memory
//! Three nodes on virtual time, wired by a loop that hands each datagram to the node
//! at its address: the first creates a ring, the others join through it, and once
//! `stabilize` and `fix_fingers` have settled them, one node puts a value and another
//! gets it back. A runtime (`dht-node`) or the simulator (`dht-sim`) is this loop
//! with sockets or a modelled network in place of the direct hand-over.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//!
//! use dht_chord::{ChordNode, Config, Event, Outcome, QueryDone, Request};
//! use dht_core::Id;
//! use dht_store_mem::MemStore;
//!
//! /// Runs the nodes for `d` of virtual time: every datagram is delivered at once (no
//! /// loss, no delay) and time jumps to the earliest timer any node asked for.
//! fn run(nodes: &mut [ChordNode<MemStore>], now: &mut Instant, d: Duration) -> Vec<QueryDone> {
//!     let (end, mut done) = (*now + d, Vec::new());
//!     loop {
//!         let mut idle = true;
//!         for i in 0..nodes.len() {
//!             let from = nodes[i].config().addr;
//!             while let Some(t) = nodes[i].poll_transmit() {
//!                 idle = false;
//!                 if let Some(to) = nodes.iter_mut().find(|n| n.config().addr == t.to) {
//!                     to.handle_datagram(*now, from, None, &t.payload);
//!                 }
//!             }
//!             while let Some(Event::QueryDone(q)) = nodes[i].poll_event() {
//!                 done.push(q);
//!             }
//!         }
//!         if idle {
//!             match nodes.iter().filter_map(|n| n.poll_timeout()).min() {
//!                 Some(t) if t <= end => *now = t.max(*now),
//!                 _ => return done,
//!             }
//!             nodes.iter_mut().for_each(|n| n.handle_timeout(*now));
//!         }
//!     }
//! }
//!
//! let mut now = Instant::now(); // the caller's clock: a node never reads one
//! let addrs: Vec<SocketAddr> = (0..3)
//!     .map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i)))
//!     .collect();
//! let mut nodes: Vec<ChordNode<MemStore>> = (0..3)
//!     .map(|i| ChordNode::new(Config::new(addrs[i], i as u64), MemStore::new(), now))
//!     .collect();
//! nodes[0].start(now, Request::Join { bootstrap: vec![] })?; // a ring of one
//! for node in &mut nodes[1..] {
//!     node.start(now, Request::Join { bootstrap: vec![addrs[0]] })?;
//! }
//! run(&mut nodes, &mut now, Duration::from_secs(10));
//! assert!(nodes.iter().all(|n| n.is_settled()));
//!
//! let value = b"5:hello".to_vec(); // one bencoded value; its key is its SHA-1
//! let put = nodes[1].start(now, Request::Put { value: value.clone() })?;
//! let done = run(&mut nodes, &mut now, Duration::from_secs(1));
//! assert!(done.iter().any(|d| d.id == put
//!     && matches!(d.outcome, Outcome::Stored { stored_at: Some(_), .. })));
//!
//! let get = nodes[2].start(now, Request::Get { target: Id::sha1(&value) })?;
//! let done = run(&mut nodes, &mut now, Duration::from_secs(1));
//! let got = done.into_iter().find(|d| d.id == get).map(|d| d.outcome);
//! assert_eq!(got, Some(Outcome::Value { value: Some(value) }));
//! # Ok::<(), dht_chord::BadValue>(())
//! ```
//!
//! A node that has not joined and has [`Config::gateways`] is a client: its lookups
//! start at those ring members, and the ring never learns of it (`dht-node --overlay
//! chord put` and `get`).
//!
//! ## The protocol, as in the paper
//! - Identifiers are 160-bit (SHA-1, m = 160) on a circle; a key lives at its
//!   *successor*, the first node at or after it clockwise ([`ring`]).
//! - Each node keeps a finger table (finger i is the successor of n + 2^i), a
//!   successor list of r entries ([`Config::successors`]) and a predecessor.
//! - `stabilize`, `notify`, `fix_fingers` and `check_predecessor` run on jittered
//!   timers ([`Config`]).
//! - Lookups are iterative: the querying node asks one node at a time and
//!   measures the latency itself, as Kademlia's lookups do.
//! - A key is stored at its successor, which copies it to its next r - 1 successors;
//!   a joining node receives the keys it now owns from its successor; a node that
//!   leaves hands its keys to its successor and tells its neighbours of each other.
//! - Two additions the paper leaves open: every pass of `fix_fingers` ends with a
//!   lookup of the node's own id from its farthest fingers (the global check of the
//!   paper's Section 7), which repairs interleaved successor chains that racing joins
//!   can leave and stabilize never undoes; and a lookup whose key predecessor is dead
//!   ends with the successor list of the closest node that answered (the querier's own
//!   when none did).
//! - A member whose r successors all fail at once (the paper assumes they do not)
//!   takes the nearest node it still knows clockwise, a finger, and stabilize walks it
//!   back to its true successor; until that successor names it as predecessor, it
//!   answers no `find_successor` as `found`, since live nodes may lie between.
//!
//! ## Wire messages
//! KRPC-shaped bencoded dictionaries (`t`, `y`, `q`, `a`, `r`, `e`, as in BEP 5).
//! Every query's `a` holds the sender's `id`; every response's `r` holds the
//! responder's `id`. A node is a byte string of 26 bytes (id, IPv4, port) or 38
//! (id, IPv6, port); a list of nodes is a bencoded list of such strings.
//!
//! | `q` | arguments `a` | response `r` |
//! | --- | --- | --- |
//! | `ping` | `id` | `id` |
//! | `find_successor` | `id`, `target` | `found` = 1 and `nodes` = the responder's successor list when `target` lies in (responder, successor]; else `nodes` = the nodes closest preceding `target`, closest first |
//! | `get_predecessor` | `id` | `predecessor` (if known), `successors` |
//! | `notify` | `id` (the sender may be the responder's predecessor) | `id` |
//! | `get` | `id`, `target` | `v` when held |
//! | `put` | `id`, `v` (a bencoded value of at most 1000 bytes, key SHA-1(v)), `replica` (1 when the owner copies it to a successor) | `id` |
//! | `leave` | `id`, `predecessor` (to the successor), `successors` (to the predecessor) | `id` |
//!
//! Errors are `e` = `[code, message]`: 203 for a malformed query, 204 for an
//! unknown method, 202 when the store fails. Only queries are answered; replies are
//! accepted only from the address asked, under a live 4-byte transaction id, and a
//! reply from another id than the one asked there counts as the asked node's failure.

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

mod config;
mod lookup;
mod maintenance;
mod node;
mod ops;
mod overlay;
mod request;
pub mod ring;
mod trace;
pub mod wire;

pub use config::Config;
pub use dht_core::{QueryId, Transmit};
pub use node::{ChordNode, NodeStats};
pub use request::{BadValue, Event, Outcome, QueryDone, QueryStats, Request};
pub use wire::Peer;
