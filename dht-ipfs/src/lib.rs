//! # dht-ipfs: a sans-IO node of IPFS's Kademlia DHT
//!
//! The Amino DHT's protocol (`/ipfs/kad/1.0.0`, libp2p's `specs/kad-dht`) on
//! `dht-core`'s protocol-neutral kernel: 256-bit keys (SHA-256 of a PeerId, a record
//! key or a content multihash), its routing table, lookups and request table.
//!
//! Like `dht-core`, this crate does no I/O, reads no clock and uses no global RNG. It
//! implements [`dht_core::Overlay`] with streams: a request arrives on a stream with
//! its sender's authenticated PeerId, the node answers on it or resets it, and asks
//! its own questions on streams it names; connections and identify results arrive as
//! inputs. Transports (libp2p over TCP + noise + yamux) and the simulator drive it.
#![forbid(unsafe_code)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod mem;
mod node;
mod peer;
mod store;
mod validate;
pub mod wire;

pub use mem::MemStore;
pub use node::{grind_preimage, Config, Mode, Node, Outcome, Request, RequestError, KAD_PROTOCOL};
pub use peer::{
    ip_of, key_of, InvalidPeerId, Key, PeerId, PeerInfo, MAX_ADDRS, MAX_INLINE_KEY_LEN,
};
pub use store::{
    Store, StoreCounts, StoreError, StoreLimits, StoredProvider, StoredRecord, UnixMillis,
};
pub use validate::{
    validate_pk, Namespaces, RecordError, RecordPolicy, Validator, MAX_PUBLIC_KEY_LEN,
    PERMISSIVE_MAX_VALUE, PK_PREFIX,
};
