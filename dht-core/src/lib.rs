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
//! use std::time::Instant;
//! use dht_core::{Config, Node, Request, Id};
//! # #[derive(Debug, Default)] struct NoStore;
//! # impl dht_core::Store for NoStore {
//! #   fn get_item(&self, _: &Id) -> Result<Option<dht_core::StoredItem>, dht_core::StoreError> { Ok(None) }
//! #   fn put_item(&mut self, _: dht_core::StoredItem) -> Result<(), dht_core::StoreError> { Ok(()) }
//! #   fn remove_item(&mut self, _: &Id) -> Result<bool, dht_core::StoreError> { Ok(false) }
//! #   fn put_peer(&mut self, _: &Id, _: dht_core::StoredPeer) -> Result<(), dht_core::StoreError> { Ok(()) }
//! #   fn get_peers(&self, _: &Id) -> Result<Vec<dht_core::StoredPeer>, dht_core::StoreError> { Ok(vec![]) }
//! #   fn remove_peer(&mut self, _: &Id, _: &std::net::SocketAddr) -> Result<bool, dht_core::StoreError> { Ok(false) }
//! #   fn info_hashes(&self, _: &Id, _: usize) -> Result<Vec<Id>, dht_core::StoreError> { Ok(vec![]) }
//! #   fn counts(&self) -> Result<dht_core::StoreCounts, dht_core::StoreError> { Ok(Default::default()) }
//! #   fn expire(&mut self, _: dht_core::UnixMillis) -> Result<(usize, usize), dht_core::StoreError> { Ok((0, 0)) }
//! #   fn save_routing(&mut self, _: &dht_core::RoutingSnapshot) -> Result<(), dht_core::StoreError> { Ok(()) }
//! #   fn load_routing(&self) -> Result<Option<dht_core::RoutingSnapshot>, dht_core::StoreError> { Ok(None) }
//! # }
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
pub use bep44::{immutable_target, mutable_target, signing_buffer, verify, Item, MutableItem};
pub use compact::{compact_node_len, put_compact_node, read_compact_node};
pub use config::{key_derived_id, Config, ConfigError, IdPolicy, Limits, KEY_ID_DOMAIN};
pub use defense::{
    is_local, is_unusable, locality, prefix_of, source_of, Bep42Mode, Defense, Locality,
    RateLimiter, Verdict,
};
pub use id::{from_hex, to_hex, Distance, Id, NodeId, NodeInfo, ParseIdError, ID_LEN};
pub use lookup::{Candidates, Diversity, MAX_ATTEMPTS};
pub use node::{
    ErrorCode, ErrorCounts, Event, Family, KrpcMethod, MethodCounts, Node, NodeStats, Outcome,
    QueryDone, QueryId, QueryStats, RefusalCounts, RefusalReason, Request, RequestError, Transmit,
};
pub use overlay::{Input, Output, Overlay, StreamId};
pub use routing::{Entry, Health, Insert, RoutingTable, Stamp};
pub use store::{
    Commit, RoutingSnapshot, SnapshotNode, Store, StoreCounts, StoreError, StoredItem, StoredPeer,
    UnixMillis,
};
pub use transport::{OutDatagram, RecvSlot, Transport, RECV_BUF_LEN};
