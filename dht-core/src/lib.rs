//! # dht-core: a sans-IO Kademlia engine for the BitTorrent Mainline DHT
//!
//! This crate contains no networking code, reads no clock and uses no global random
//! number generator. Everything enters as an input ([`Node::handle_datagram`],
//! [`Node::handle_timeout`], [`Node::start`] with a [`Request`]) stamped with the
//! caller's `now`, and everything leaves as an output ([`Node::poll_transmit`],
//! [`Node::poll_timeout`], [`Node::poll_event`]), so the same engine runs on a UDP
//! socket, over QUIC, and inside a deterministic simulator.
//!
//! Protocol: BEP 5 (KRPC, routing, tokens), BEP 32 (IPv6), BEP 42 (secure ids),
//! BEP 33 (scrapes), BEP 43 (read-only nodes), BEP 44 (arbitrary data), BEP 51 (sampling).
//!
//! The API is what this root exports. Two modules are public as namespaces because
//! they are the wire: [`bencode`] (the codec, which another overlay reuses) and
//! [`krpc`] (KRPC messages, for tools that speak the protocol directly). The store
//! conformance suite ships behind the `conformance` feature.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use dht_core::{Config, Id, Node, Request, RoutingSnapshot, Store, StoreCounts, StoreError};
//! use dht_core::{StoredItem, StoredPeer, UnixMillis};
//!
//! // A custom store: the engine keeps its items, peers and routing table only through
//! // this trait. This one keeps nothing; dht-store-mem and dht-store-sled keep all.
//! #[derive(Debug, Default)]
//! struct NoStore;
//!
//! impl Store for NoStore {
//!     fn get_item(&self, _: &Id) -> Result<Option<StoredItem>, StoreError> { Ok(None) }
//!     fn put_item(&mut self, _: StoredItem) -> Result<(), StoreError> { Ok(()) }
//!     fn remove_item(&mut self, _: &Id) -> Result<bool, StoreError> { Ok(false) }
//!     fn put_peer(&mut self, _: &Id, _: StoredPeer) -> Result<(), StoreError> { Ok(()) }
//!     fn get_peers(&self, _: &Id) -> Result<Vec<StoredPeer>, StoreError> { Ok(vec![]) }
//!     fn remove_peer(&mut self, _: &Id, _: &SocketAddr) -> Result<bool, StoreError> {
//!         Ok(false)
//!     }
//!     fn info_hashes(&self, _: &Id, _: usize) -> Result<Vec<Id>, StoreError> { Ok(vec![]) }
//!     fn counts(&self) -> Result<StoreCounts, StoreError> { Ok(StoreCounts::default()) }
//!     fn expire(&mut self, _: UnixMillis) -> Result<(usize, usize), StoreError> { Ok((0, 0)) }
//!     fn save_routing(&mut self, _: &RoutingSnapshot) -> Result<(), StoreError> { Ok(()) }
//!     fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError> { Ok(None) }
//! }
//!
//! let now = Instant::now();
//! let mut node = Node::new(Config::with_seed(7), NoStore, now, 1_700_000_000_000)?;
//! let seed = "192.0.2.1:6881".parse()?;
//! let qid = node.start(now, Request::Bootstrap { seeds: vec![seed] })?;
//! while let Some(t) = node.poll_transmit() {
//!     assert_eq!(t.to, seed); // hand t.payload to a socket
//! }
//! # let _ = qid;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Driving a node by hand
//!
//! The whole I/O loop a runtime owes the engine, over a blocking
//! [`std::net::UdpSocket`]: send what it wants sent, hand it what arrived, fire its
//! timer when due, collect finished queries. Two nodes on loopback, one pings the other:
//!
//! ```
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
//! use dht_core::{Config, Event, Node, Outcome, Request};
//! use dht_store_mem::MemStore;
//!
//! struct Host { node: Node<MemStore>, socket: UdpSocket }
//!
//! impl Host {
//!     fn bind(seed: u64) -> Result<Host, Box<dyn std::error::Error>> {
//!         let socket = UdpSocket::bind("127.0.0.1:0")?;
//!         socket.set_read_timeout(Some(Duration::from_millis(5)))?;
//!         let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
//!         let node = Node::new(Config::with_seed(seed), MemStore::new(), Instant::now(), wall)?;
//!         Ok(Host { node, socket })
//!     }
//!
//!     /// One turn of the loop; returns a finished query, if any.
//!     fn turn(&mut self) -> std::io::Result<Option<Event>> {
//!         while let Some(t) = self.node.poll_transmit() {
//!             self.socket.send_to(&t.payload, t.to)?;
//!         }
//!         let mut buf = [0u8; 1500];
//!         if let Ok((len, from)) = self.socket.recv_from(&mut buf) {
//!             self.node.handle_datagram(Instant::now(), from, None, &buf[..len]);
//!         }
//!         if self.node.poll_timeout().is_some_and(|at| at <= Instant::now()) {
//!             self.node.handle_timeout(Instant::now());
//!         }
//!         Ok(self.node.poll_event())
//!     }
//! }
//!
//! let (mut a, mut b) = (Host::bind(1)?, Host::bind(2)?);
//! let ping = b.node.start(Instant::now(), Request::Ping { addr: a.socket.local_addr()? })?;
//! let deadline = Instant::now() + Duration::from_secs(10);
//! let outcome = loop {
//!     assert!(Instant::now() < deadline, "no answer within 10 s");
//!     a.turn()?; // a answers the ping
//!     if let Some(Event::QueryDone(done)) = b.turn()? {
//!         if done.id == ping {
//!             break done.outcome;
//!         }
//!     }
//! };
//! let Outcome::Ping { node: Some(pong) } = outcome else { panic!("{outcome:?}") };
//! assert_eq!(pong.id, a.node.id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
pub mod bencode;
mod bep33;
mod bep42;
mod bep44;
mod compact;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod contact;
mod defense;
mod disjoint;
mod id;
pub mod kernel;
pub mod krpc;
mod lookup;
mod node;
mod overlay;
mod requests;
mod routing;
mod store;
mod token;
mod transport;

pub use bep33::{ScrapeFilter, SCRAPE_FILTER_LEN};
pub use bep42::{is_exempt as is_bep42_exempt, is_valid as is_secure_id, secure_id};
pub use bep44::{immutable_target, mutable_target, signing_buffer, Item, MutableItem};
pub use compact::{compact_node_len, put_compact_node, read_compact_node};
pub use config::{key_derived_id, Config, ConfigError, IdPolicy, Limits, KEY_ID_DOMAIN};
pub use defense::{is_local, is_unusable, locality, source_of, Bep42Mode, Defense, Locality};
pub use id::{from_hex, to_hex, Distance, Id, NodeInfo, ParseIdError, ID_LEN};
pub use node::{
    ErrorCode, ErrorCounts, Event, Family, KrpcMethod, MethodCounts, Node, NodeStats, NodeTable,
    Outcome, QueryDone, QueryId, QueryStats, RefusalCounts, RefusalReason, Request, RequestError,
    Transmit,
};
pub use overlay::{Input, Output, Overlay, StreamId};
pub use store::{
    Commit, RoutingSnapshot, SnapshotNode, Store, StoreCounts, StoreError, StoredItem, StoredPeer,
    UnixMillis,
};
pub use transport::{OutDatagram, RecvSlot, Transport, RECV_BUF_LEN};

/// Not part of the API: engine parts that only this workspace's benches reach into
/// (the per-source rate limiter, timed on its own in `benches/limiter.rs`).
///
/// Hidden from the docs and from `api/dht-core.txt`, with no semver promise. A
/// module rather than a feature because a bench of this crate cannot turn on a
/// feature of its own library without `required-features`, which would drop it from
/// `cargo bench`'s default run; a user who never names this module never sees it.
#[doc(hidden)]
pub mod internals {
    pub use crate::defense::{RateLimiter, Verdict};
}
