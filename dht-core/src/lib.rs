//! # dht-core: a sans-IO Kademlia engine for the BitTorrent Mainline DHT
//!
//! This crate contains no networking code, reads no clock and uses no global random
//! number generator. Everything enters as an input (`handle_datagram`, `handle_timeout`,
//! commands) stamped with the caller's `now`, and everything leaves as an output
//! (`poll_transmit`, `poll_timeout`, `poll_event`), so the same engine runs on a UDP
//! socket, over QUIC, and inside a deterministic simulator.
//!
//! Protocol: BEP 5 (KRPC, routing, tokens), BEP 32 (IPv6), BEP 42 (secure ids),
//! BEP 43 (read-only nodes), BEP 44 (arbitrary data), BEP 51 (sampling).
pub mod bencode;
pub mod bep42;
pub mod bep44;
mod codec;
pub mod config;
pub mod conformance;
pub mod id;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod routing;
pub mod store;
pub mod token;
pub mod transport;

pub use config::{Config, IdPolicy, Limits};
pub use id::{Id, NodeId, NodeInfo};
pub use node::{
    Event, Family, Node, NodeStats, Outcome, QueryDone, QueryId, QueryStats, Transmit, LOCAL,
};
pub use store::Store;
